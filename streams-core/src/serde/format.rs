//! [`SerdeFormat`]: what a serde's bytes are, so that tools can show stored data as JSON and read
//! keys typed as text.

use base64::Engine as _;

/// The format of a serde's bytes, as far as tools that show them need to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SerdeFormat {
    /// UTF-8 text ([`Serdes::string`](super::Serdes::string)).
    String,
    /// Raw bytes ([`Serdes::bytes`](super::Serdes::bytes)).
    Bytes,
    /// Big-endian 64-bit integer.
    I64,
    /// Big-endian 32-bit integer.
    I32,
    /// Big-endian 16-bit integer.
    I16,
    /// Big-endian IEEE 754 double.
    F64,
    /// Big-endian IEEE 754 float.
    F32,
    /// One byte, 0 or 1.
    Bool,
    /// JSON text ([`Serdes::json`](super::Serdes::json)).
    Json,
    /// Unknown to the library: a serde of the application's own.
    Opaque,
}

impl SerdeFormat {
    /// The format's name, as the HTTP query server lists it.
    pub fn name(self) -> &'static str {
        match self {
            SerdeFormat::String => "string",
            SerdeFormat::Bytes => "bytes",
            SerdeFormat::I64 => "i64",
            SerdeFormat::I32 => "i32",
            SerdeFormat::I16 => "i16",
            SerdeFormat::F64 => "f64",
            SerdeFormat::F32 => "f32",
            SerdeFormat::Bool => "bool",
            SerdeFormat::Json => "json",
            SerdeFormat::Opaque => "opaque",
        }
    }

    /// `bytes` as a JSON value, or `None` when this format has no JSON form for them (raw
    /// and opaque bytes, or bytes that do not parse as the format says).
    ///
    /// ```
    /// use streams_core::serde::SerdeFormat;
    /// assert_eq!(SerdeFormat::I64.to_json(&7i64.to_be_bytes()), Some(serde_json::json!(7)));
    /// assert_eq!(SerdeFormat::Opaque.to_json(b"x"), None);
    /// ```
    pub fn to_json(self, bytes: &[u8]) -> Option<serde_json::Value> {
        use serde_json::Value;
        let fixed = |n: usize| (bytes.len() == n).then_some(bytes);
        Some(match self {
            SerdeFormat::String => Value::String(std::str::from_utf8(bytes).ok()?.to_string()),
            SerdeFormat::I64 => i64::from_be_bytes(fixed(8)?.try_into().ok()?).into(),
            SerdeFormat::I32 => i32::from_be_bytes(fixed(4)?.try_into().ok()?).into(),
            SerdeFormat::I16 => i16::from_be_bytes(fixed(2)?.try_into().ok()?).into(),
            SerdeFormat::F64 => f64::from_be_bytes(fixed(8)?.try_into().ok()?).into(),
            SerdeFormat::F32 => f32::from_be_bytes(fixed(4)?.try_into().ok()?).into(),
            SerdeFormat::Bool => match bytes {
                [0] => false.into(),
                [1] => true.into(),
                _ => return None,
            },
            SerdeFormat::Json => serde_json::from_slice(bytes).ok()?,
            SerdeFormat::Bytes | SerdeFormat::Opaque => return None,
        })
    }

    /// `bytes` as JSON where the format allows, otherwise as base64 text: the value, and
    /// whether it is base64.
    pub fn to_json_or_base64(self, bytes: &[u8]) -> (serde_json::Value, bool) {
        match self.to_json(bytes) {
            Some(v) => (v, false),
            None => (
                base64::engine::general_purpose::STANDARD
                    .encode(bytes)
                    .into(),
                true,
            ),
        }
    }

    /// The bytes of a key typed as text: strings as they are, numbers and booleans parsed,
    /// JSON parsed (and re-written compactly, as the JSON serde writes it), raw bytes as
    /// base64. An opaque format cannot be typed.
    ///
    /// ```
    /// use streams_core::serde::SerdeFormat;
    /// assert_eq!(SerdeFormat::I32.parse_text("7").unwrap(), vec![0, 0, 0, 7]);
    /// assert!(SerdeFormat::I32.parse_text("seven").is_err());
    /// assert_eq!(SerdeFormat::String.parse_text("rust").unwrap(), b"rust".to_vec());
    /// ```
    pub fn parse_text(self, text: &str) -> Result<Vec<u8>, String> {
        fn num<T: std::str::FromStr>(text: &str, what: &str) -> Result<T, String> {
            text.trim()
                .parse()
                .map_err(|_| format!("`{text}` is not {what}"))
        }
        Ok(match self {
            SerdeFormat::String => text.as_bytes().to_vec(),
            SerdeFormat::I64 => num::<i64>(text, "a 64-bit integer")?.to_be_bytes().to_vec(),
            SerdeFormat::I32 => num::<i32>(text, "a 32-bit integer")?.to_be_bytes().to_vec(),
            SerdeFormat::I16 => num::<i16>(text, "a 16-bit integer")?.to_be_bytes().to_vec(),
            SerdeFormat::F64 => num::<f64>(text, "a number")?.to_be_bytes().to_vec(),
            SerdeFormat::F32 => num::<f32>(text, "a number")?.to_be_bytes().to_vec(),
            SerdeFormat::Bool => vec![u8::from(num::<bool>(text, "true or false")?)],
            SerdeFormat::Json => {
                let v: serde_json::Value =
                    serde_json::from_str(text).map_err(|e| format!("`{text}` is not JSON: {e}"))?;
                serde_json::to_vec(&v).map_err(|e| e.to_string())?
            }
            SerdeFormat::Bytes => base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(|e| format!("`{text}` is not base64: {e}"))?,
            SerdeFormat::Opaque => {
                return Err(
                    "the store's key serde is the application's own: keys cannot be typed as text"
                        .into(),
                )
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::SerdeFormat;
    use crate::serde::Serdes;

    #[test]
    fn built_in_serdes_say_their_format_and_round_trip_through_text() {
        assert_eq!(Serdes::string().format(), SerdeFormat::String);
        assert_eq!(Serdes::nullable(Serdes::i64()).format(), SerdeFormat::I64);
        assert_eq!(
            Serdes::json::<serde_json::Value>().format(),
            SerdeFormat::Json
        );
        for (format, text) in [
            (SerdeFormat::String, "héllo"),
            (SerdeFormat::I64, "-42"),
            (SerdeFormat::I16, "7"),
            (SerdeFormat::Bool, "true"),
            (SerdeFormat::Json, r#"{"a":[1,2]}"#),
        ] {
            let bytes = format.parse_text(text).unwrap();
            let json = format.to_json(&bytes).unwrap();
            let shown = match json {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            assert_eq!(shown, text, "{format:?}");
        }
        assert_eq!(
            SerdeFormat::Opaque.to_json_or_base64(&[0xff, 0]),
            (serde_json::json!("/wA="), true)
        );
        assert_eq!(SerdeFormat::String.to_json(&[0xff]), None, "not UTF-8");
        assert!(SerdeFormat::I64
            .parse_text("x")
            .unwrap_err()
            .contains("`x`"));
    }
}
