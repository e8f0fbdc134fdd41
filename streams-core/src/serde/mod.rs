//! Serdes: the [`Serde`] trait, Kafka-compatible built-ins ([`Serdes`]) and [`DefaultSerde`].
//!
//! Integer and float serdes are byte-compatible with Kafka's Java serializers (big-endian, fixed
//! width), strings are UTF-8, and JSON works for any serde type. A null on the wire is `None`
//! here: only [`Serdes::nullable`] (and `Option<T>`'s default serde) accept it, every other serde
//! rejects it with an error, so a null never turns silently into a value.

mod format;
mod windowed;

pub use format::SerdeFormat;

use std::marker::PhantomData;
use std::sync::Arc;

use crate::window::Windowed;
use windowed::{SessionWindowedSerde, TimeWindowedSerde};

/// Why bytes could not be turned into a value or back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SerdeError(pub String);

/// Turns values of `T` into bytes and back. `None` bytes are Kafka's null.
///
/// Implement it for your own formats; wrap it in an `Arc` to hand it to the DSL.
///
/// ```
/// use streams_core::serde::{Serde, SerdeError, Serdes};
/// struct Upper;
/// impl Serde<String> for Upper {
///     fn serialize(&self, _topic: &str, v: &String) -> Result<Option<Vec<u8>>, SerdeError> {
///         Ok(Some(v.to_uppercase().into_bytes()))
///     }
///     fn deserialize(&self, topic: &str, b: Option<&[u8]>) -> Result<String, SerdeError> {
///         Serdes::string().deserialize(topic, b)
///     }
/// }
/// assert_eq!(Upper.serialize("t", &"a".to_string()).unwrap(), Some(b"A".to_vec()));
/// ```
pub trait Serde<T>: Send + Sync + 'static {
    /// Serializes `value` for `topic` (`None`: write a null).
    fn serialize(&self, topic: &str, value: &T) -> Result<Option<Vec<u8>>, SerdeError>;
    /// Deserializes bytes read from `topic` (`None`: the record had a null).
    fn deserialize(&self, topic: &str, bytes: Option<&[u8]>) -> Result<T, SerdeError>;
    /// Serializes `value` for `topic` into `buf` (cleared first) and returns `false` for a null.
    ///
    /// Sink nodes call this with a buffer they keep, so a serde that overrides it sends records
    /// without allocating; the default goes through [`Serde::serialize`].
    ///
    /// ```
    /// use streams_core::serde::Serdes;
    /// let mut buf = Vec::new();
    /// assert!(Serdes::i32().serialize_into("t", &7, &mut buf).unwrap());
    /// assert_eq!(buf, [0, 0, 0, 7]);
    /// assert!(!Serdes::nullable(Serdes::i32()).serialize_into("t", &None, &mut buf).unwrap());
    /// ```
    fn serialize_into(
        &self,
        topic: &str,
        value: &T,
        buf: &mut Vec<u8>,
    ) -> Result<bool, SerdeError> {
        buf.clear();
        match self.serialize(topic, value)? {
            Some(bytes) => {
                *buf = bytes;
                Ok(true)
            }
            None => Ok(false),
        }
    }
    /// What the bytes are, for tools that show stored data as text (the HTTP query server):
    /// the built-in serdes say; a serde of your own is [`SerdeFormat::Opaque`] unless it
    /// overrides this.
    fn format(&self) -> SerdeFormat {
        SerdeFormat::Opaque
    }
}

/// A shared serde, as the DSL and the topology hold them.
pub type SerdeRef<T> = Arc<dyn Serde<T>>;

/// The serde of each built-in type: the one the DSL uses when no serde is given.
///
/// The DSL picks a serde by type only for the built-in types (`String`, `Vec<u8>`, `i64`, `i32`,
/// `i16`, `f64`, `f32`, `bool`, `()`, `serde_json::Value`) and their `Option`s; it does not look
/// for implementations of this trait on your own types. For those, register a serde per type on
/// the builder (`StreamsBuilder::with_default_serde(Serdes::json::<Tweet>())`), or name it where
/// the type enters or leaves a topic or a store (`Consumed::with`, `Produced::with`,
/// `Grouped::with`, `Materialized::with`):
/// ```
/// use streams_core::serde::{DefaultSerde, Serdes};
/// let i64_serde = <i64 as DefaultSerde>::default_serde();
/// assert_eq!(i64_serde.serialize("t", &1).unwrap(), Serdes::i64().serialize("t", &1).unwrap());
/// ```
pub trait DefaultSerde: Sized + 'static {
    /// The serde used for this type when none is given.
    fn default_serde() -> SerdeRef<Self>;
}

/// The built-in serdes.
///
/// ```
/// use streams_core::serde::Serdes;
/// let long = Serdes::i64();
/// assert_eq!(long.serialize("t", &1).unwrap(), Some(vec![0, 0, 0, 0, 0, 0, 0, 1]));
/// assert_eq!(long.deserialize("t", Some(&[0, 0, 0, 0, 0, 0, 1, 0])).unwrap(), 256);
/// assert!(long.deserialize("t", None).is_err());
/// assert_eq!(Serdes::nullable(Serdes::i64()).deserialize("t", None).unwrap(), None);
/// ```
pub struct Serdes;

impl Serdes {
    /// UTF-8 strings (Kafka's `StringSerde`).
    pub fn string() -> SerdeRef<String> {
        Arc::new(StringSerde)
    }
    /// Bytes as they are (Kafka's `ByteArraySerde`).
    pub fn bytes() -> SerdeRef<Vec<u8>> {
        Arc::new(BytesSerde)
    }
    /// 8-byte big-endian (Kafka's `LongSerde`).
    pub fn i64() -> SerdeRef<i64> {
        Arc::new(FixedSerde::<i64>(PhantomData))
    }
    /// 4-byte big-endian (Kafka's `IntegerSerde`).
    pub fn i32() -> SerdeRef<i32> {
        Arc::new(FixedSerde::<i32>(PhantomData))
    }
    /// 2-byte big-endian (Kafka's `ShortSerde`).
    pub fn i16() -> SerdeRef<i16> {
        Arc::new(FixedSerde::<i16>(PhantomData))
    }
    /// IEEE 754 big-endian (Kafka's `DoubleSerde`).
    pub fn f64() -> SerdeRef<f64> {
        Arc::new(FixedSerde::<f64>(PhantomData))
    }
    /// IEEE 754 big-endian (Kafka's `FloatSerde`).
    pub fn f32() -> SerdeRef<f32> {
        Arc::new(FixedSerde::<f32>(PhantomData))
    }
    /// One byte, 1 or 0 (Kafka's `BooleanSerde`).
    pub fn bool() -> SerdeRef<bool> {
        Arc::new(BoolSerde)
    }
    /// Ignores the bytes on read and writes null: for keys or values an application does not use.
    pub fn unit() -> SerdeRef<()> {
        Arc::new(UnitSerde)
    }
    /// JSON through serde_json, for any serde type.
    pub fn json<T>() -> SerdeRef<T>
    where
        T: serde::Serialize + serde::de::DeserializeOwned + Send + Sync + 'static,
    {
        Arc::new(JsonSerde::<T>(PhantomData))
    }
    /// Null-aware wrapper: a null reads as `None` and `None` writes a null.
    pub fn nullable<T: 'static>(inner: SerdeRef<T>) -> SerdeRef<Option<T>> {
        Arc::new(NullableSerde(inner))
    }
    /// Time-windowed keys (inner key + 8-byte window start), for windows of `window_size_ms`
    /// (Kafka Streams' `TimeWindowedSerde`). The end is not on the wire: the deserializer adds
    /// the window size to the start.
    ///
    /// ```
    /// use streams_core::serde::{Serde, Serdes};
    /// use streams_core::window::{Window, Windowed};
    /// let serde = Serdes::time_windowed(Serdes::string(), 60_000);
    /// let w = Windowed::new("rust".to_string(), Window::new(120_000, 180_000));
    /// let bytes = serde.serialize("t", &w).unwrap().unwrap();
    /// assert_eq!(&bytes[..4], b"rust");
    /// assert_eq!(&bytes[4..], &120_000i64.to_be_bytes());
    /// assert_eq!(serde.deserialize("t", Some(&bytes)).unwrap(), w);
    /// ```
    pub fn time_windowed<K: Send + Sync + 'static>(
        inner: SerdeRef<K>,
        window_size_ms: i64,
    ) -> SerdeRef<Windowed<K>> {
        Arc::new(TimeWindowedSerde::new(inner, window_size_ms))
    }
    /// Session-windowed keys (inner key + 8-byte end + 8-byte start), as Kafka Streams'
    /// `SessionWindowedSerde`.
    pub fn session_windowed<K: Send + Sync + 'static>(inner: SerdeRef<K>) -> SerdeRef<Windowed<K>> {
        Arc::new(SessionWindowedSerde::new(inner))
    }
}

fn require<'a>(topic: &str, bytes: Option<&'a [u8]>) -> Result<&'a [u8], SerdeError> {
    bytes.ok_or_else(|| {
        SerdeError(format!(
            "null where a value was expected on topic `{topic}` (use Serdes::nullable or an Option type to accept nulls)"
        ))
    })
}

struct StringSerde;
impl Serde<String> for StringSerde {
    fn serialize(&self, _: &str, value: &String) -> Result<Option<Vec<u8>>, SerdeError> {
        Ok(Some(value.as_bytes().to_vec()))
    }
    fn serialize_into(
        &self,
        _: &str,
        value: &String,
        buf: &mut Vec<u8>,
    ) -> Result<bool, SerdeError> {
        buf.clear();
        buf.extend_from_slice(value.as_bytes());
        Ok(true)
    }
    fn deserialize(&self, topic: &str, bytes: Option<&[u8]>) -> Result<String, SerdeError> {
        let b = require(topic, bytes)?;
        String::from_utf8(b.to_vec()).map_err(|e| SerdeError(format!("invalid UTF-8: {e}")))
    }
    fn format(&self) -> SerdeFormat {
        SerdeFormat::String
    }
}

struct BytesSerde;
impl Serde<Vec<u8>> for BytesSerde {
    fn serialize(&self, _: &str, value: &Vec<u8>) -> Result<Option<Vec<u8>>, SerdeError> {
        Ok(Some(value.clone()))
    }
    fn serialize_into(
        &self,
        _: &str,
        value: &Vec<u8>,
        buf: &mut Vec<u8>,
    ) -> Result<bool, SerdeError> {
        buf.clear();
        buf.extend_from_slice(value);
        Ok(true)
    }
    fn deserialize(&self, topic: &str, bytes: Option<&[u8]>) -> Result<Vec<u8>, SerdeError> {
        Ok(require(topic, bytes)?.to_vec())
    }
    fn format(&self) -> SerdeFormat {
        SerdeFormat::Bytes
    }
}

/// Fixed-width big-endian numbers.
trait BigEndian: Sized + Send + Sync + 'static {
    const WIDTH: usize;
    const JAVA_NAME: &'static str;
    const FORMAT: SerdeFormat;
    fn to_be(&self) -> Vec<u8>;
    fn write_be(&self, buf: &mut Vec<u8>);
    fn from_be(b: &[u8]) -> Self;
}

macro_rules! big_endian {
    ($t:ty, $w:expr, $name:expr, $format:ident) => {
        impl BigEndian for $t {
            const WIDTH: usize = $w;
            const JAVA_NAME: &'static str = $name;
            const FORMAT: SerdeFormat = SerdeFormat::$format;
            fn to_be(&self) -> Vec<u8> {
                self.to_be_bytes().to_vec()
            }
            fn write_be(&self, buf: &mut Vec<u8>) {
                buf.extend_from_slice(&self.to_be_bytes());
            }
            fn from_be(b: &[u8]) -> Self {
                let mut a = [0u8; $w];
                a.copy_from_slice(b);
                <$t>::from_be_bytes(a)
            }
        }
    };
}
big_endian!(i64, 8, "Long", I64);
big_endian!(i32, 4, "Integer", I32);
big_endian!(i16, 2, "Short", I16);
big_endian!(f64, 8, "Double", F64);
big_endian!(f32, 4, "Float", F32);

struct FixedSerde<T>(PhantomData<fn() -> T>);
impl<T: BigEndian> Serde<T> for FixedSerde<T> {
    fn serialize(&self, _: &str, value: &T) -> Result<Option<Vec<u8>>, SerdeError> {
        Ok(Some(value.to_be()))
    }
    fn serialize_into(&self, _: &str, value: &T, buf: &mut Vec<u8>) -> Result<bool, SerdeError> {
        buf.clear();
        value.write_be(buf);
        Ok(true)
    }
    fn deserialize(&self, topic: &str, bytes: Option<&[u8]>) -> Result<T, SerdeError> {
        let b = require(topic, bytes)?;
        if b.len() != T::WIDTH {
            return Err(SerdeError(format!(
                "size of data received by the {} deserializer is not {} but {}",
                T::JAVA_NAME,
                T::WIDTH,
                b.len()
            )));
        }
        Ok(T::from_be(b))
    }
    fn format(&self) -> SerdeFormat {
        T::FORMAT
    }
}

struct BoolSerde;
impl Serde<bool> for BoolSerde {
    fn serialize(&self, _: &str, value: &bool) -> Result<Option<Vec<u8>>, SerdeError> {
        Ok(Some(vec![u8::from(*value)]))
    }
    fn deserialize(&self, topic: &str, bytes: Option<&[u8]>) -> Result<bool, SerdeError> {
        match require(topic, bytes)? {
            [0] => Ok(false),
            [1] => Ok(true),
            other => Err(SerdeError(format!(
                "a boolean is one byte 0 or 1, got {} bytes",
                other.len()
            ))),
        }
    }
    fn format(&self) -> SerdeFormat {
        SerdeFormat::Bool
    }
}

struct UnitSerde;
impl Serde<()> for UnitSerde {
    fn serialize(&self, _: &str, _: &()) -> Result<Option<Vec<u8>>, SerdeError> {
        Ok(None)
    }
    fn serialize_into(&self, _: &str, _: &(), buf: &mut Vec<u8>) -> Result<bool, SerdeError> {
        buf.clear();
        Ok(false)
    }
    fn deserialize(&self, _: &str, _: Option<&[u8]>) -> Result<(), SerdeError> {
        Ok(())
    }
}

struct JsonSerde<T>(PhantomData<fn() -> T>);
impl<T> Serde<T> for JsonSerde<T>
where
    T: serde::Serialize + serde::de::DeserializeOwned + Send + Sync + 'static,
{
    fn serialize(&self, _: &str, value: &T) -> Result<Option<Vec<u8>>, SerdeError> {
        serde_json::to_vec(value)
            .map(Some)
            .map_err(|e| SerdeError(format!("JSON: {e}")))
    }
    fn serialize_into(&self, _: &str, value: &T, buf: &mut Vec<u8>) -> Result<bool, SerdeError> {
        buf.clear();
        serde_json::to_writer(&mut *buf, value).map_err(|e| SerdeError(format!("JSON: {e}")))?;
        Ok(true)
    }
    fn deserialize(&self, topic: &str, bytes: Option<&[u8]>) -> Result<T, SerdeError> {
        serde_json::from_slice(require(topic, bytes)?).map_err(|e| SerdeError(format!("JSON: {e}")))
    }
    fn format(&self) -> SerdeFormat {
        SerdeFormat::Json
    }
}

struct NullableSerde<T>(SerdeRef<T>);
impl<T: 'static> Serde<Option<T>> for NullableSerde<T> {
    fn serialize(&self, topic: &str, value: &Option<T>) -> Result<Option<Vec<u8>>, SerdeError> {
        match value {
            Some(v) => self.0.serialize(topic, v),
            None => Ok(None),
        }
    }
    fn serialize_into(
        &self,
        topic: &str,
        value: &Option<T>,
        buf: &mut Vec<u8>,
    ) -> Result<bool, SerdeError> {
        match value {
            Some(v) => self.0.serialize_into(topic, v, buf),
            None => {
                buf.clear();
                Ok(false)
            }
        }
    }
    fn deserialize(&self, topic: &str, bytes: Option<&[u8]>) -> Result<Option<T>, SerdeError> {
        match bytes {
            Some(_) => self.0.deserialize(topic, bytes).map(Some),
            None => Ok(None),
        }
    }
    fn format(&self) -> SerdeFormat {
        self.0.format()
    }
}

macro_rules! default_serde {
    ($t:ty, $f:ident) => {
        impl DefaultSerde for $t {
            fn default_serde() -> SerdeRef<Self> {
                Serdes::$f()
            }
        }
    };
}
default_serde!(String, string);
default_serde!(Vec<u8>, bytes);
default_serde!(i64, i64);
default_serde!(i32, i32);
default_serde!(i16, i16);
default_serde!(f64, f64);
default_serde!(f32, f32);
default_serde!(bool, bool);
default_serde!((), unit);

impl<T: DefaultSerde> DefaultSerde for Option<T> {
    fn default_serde() -> SerdeRef<Self> {
        Serdes::nullable(T::default_serde())
    }
}

impl DefaultSerde for serde_json::Value {
    fn default_serde() -> SerdeRef<Self> {
        Serdes::json()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `serialize_into` must write exactly what `serialize` returns, into a buffer that held
    /// something longer before.
    fn same_bytes<T: 'static>(serde: &SerdeRef<T>, value: &T) {
        let mut buf = vec![0xAA; 64];
        let written = serde.serialize_into("t", value, &mut buf).unwrap();
        let expected = serde.serialize("t", value).unwrap();
        assert_eq!(written.then_some(buf), expected);
    }

    #[test]
    fn serialize_into_matches_serialize() {
        same_bytes(&Serdes::string(), &"héllo".to_string());
        same_bytes(&Serdes::string(), &String::new());
        same_bytes(&Serdes::bytes(), &vec![1, 2, 3]);
        same_bytes(&Serdes::i64(), &-3);
        same_bytes(&Serdes::i32(), &70_000);
        same_bytes(&Serdes::i16(), &-2);
        same_bytes(&Serdes::f64(), &1.5);
        same_bytes(&Serdes::f32(), &-0.25);
        same_bytes(&Serdes::bool(), &true);
        same_bytes(&Serdes::unit(), &());
        same_bytes(&Serdes::json::<Vec<u32>>(), &vec![1, 2]);
        same_bytes(&Serdes::nullable(Serdes::i32()), &Some(5));
        same_bytes(&Serdes::nullable(Serdes::i32()), &None);
        let w = crate::window::Windowed::new("k".to_string(), crate::window::Window::new(10, 20));
        same_bytes(&Serdes::time_windowed(Serdes::string(), 10), &w);
        same_bytes(&Serdes::session_windowed(Serdes::string()), &w);
    }

    #[test]
    fn numbers_match_java_serializers() {
        assert_eq!(
            Serdes::i32().serialize("t", &-2).unwrap().unwrap(),
            vec![0xff, 0xff, 0xff, 0xfe]
        );
        assert_eq!(
            Serdes::f64().serialize("t", &1.0).unwrap().unwrap(),
            vec![0x3f, 0xf0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(Serdes::i16().deserialize("t", Some(&[1, 2])).unwrap(), 258);
        let err = Serdes::i64().deserialize("t", Some(&[1, 2])).unwrap_err();
        assert!(err.0.contains("not 8 but 2"), "{err}");
    }

    #[test]
    fn null_is_rejected_unless_nullable() {
        let err = Serdes::string().deserialize("words", None).unwrap_err();
        assert!(err.0.contains("words"));
        assert_eq!(
            Option::<String>::default_serde()
                .deserialize("t", None)
                .unwrap(),
            None
        );
        assert_eq!(
            Option::<String>::default_serde()
                .serialize("t", &Some("a".into()))
                .unwrap(),
            Some(b"a".to_vec())
        );
        assert_eq!(Serdes::unit().deserialize("t", Some(b"x")).unwrap(), ());
    }

    #[test]
    fn json_round_trips_and_reports_errors() {
        #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
        struct T {
            a: i64,
        }
        let s = Serdes::json::<T>();
        let b = s.serialize("t", &T { a: 5 }).unwrap();
        assert_eq!(s.deserialize("t", b.as_deref()).unwrap(), T { a: 5 });
        assert!(s
            .deserialize("t", Some(b"{"))
            .unwrap_err()
            .0
            .starts_with("JSON"));
        assert!(String::default_serde()
            .deserialize("t", Some(&[0xff]))
            .is_err());
    }
}
