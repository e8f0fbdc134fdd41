//! The windowed key serdes, byte-compatible with Kafka Streams' windowed serializers.
//!
//! Applications get them from `Serdes::time_windowed` and `Serdes::session_windowed`.

use super::{Serde, SerdeError, SerdeRef};
use crate::window::{Window, Windowed};

/// Serde of time-windowed keys: the inner key's bytes, then the window start as 8 big-endian
/// bytes (Kafka Streams' `TimeWindowedSerde`). The end is not on the wire: the deserializer
/// adds the window size to the start.
pub(crate) struct TimeWindowedSerde<K> {
    inner: SerdeRef<K>,
    size_ms: i64,
}

impl<K> TimeWindowedSerde<K> {
    /// Windowed keys of `inner`, for windows of `size_ms`.
    pub(crate) fn new(inner: SerdeRef<K>, size_ms: i64) -> Self {
        TimeWindowedSerde { inner, size_ms }
    }
}

fn split_tail<'a>(
    bytes: Option<&'a [u8]>,
    n: usize,
    what: &str,
) -> Result<(&'a [u8], &'a [u8]), SerdeError> {
    let b = bytes.ok_or_else(|| SerdeError(format!("null {what}")))?;
    if b.len() < n {
        return Err(SerdeError(format!(
            "{what} of {} bytes is shorter than its {n}-byte window",
            b.len()
        )));
    }
    Ok(b.split_at(b.len() - n))
}

fn be_i64(b: &[u8]) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    i64::from_be_bytes(a)
}

fn inner_key_into<K: 'static>(
    inner: &SerdeRef<K>,
    topic: &str,
    key: &K,
    buf: &mut Vec<u8>,
) -> Result<(), SerdeError> {
    match inner.serialize_into(topic, key, buf)? {
        true => Ok(()),
        false => Err(SerdeError(
            "a windowed key must not serialize to null".into(),
        )),
    }
}

impl<K: Send + Sync + 'static> Serde<Windowed<K>> for TimeWindowedSerde<K> {
    fn serialize(&self, topic: &str, w: &Windowed<K>) -> Result<Option<Vec<u8>>, SerdeError> {
        let mut out = Vec::new();
        self.serialize_into(topic, w, &mut out)?;
        Ok(Some(out))
    }

    fn serialize_into(
        &self,
        topic: &str,
        w: &Windowed<K>,
        buf: &mut Vec<u8>,
    ) -> Result<bool, SerdeError> {
        inner_key_into(&self.inner, topic, &w.key, buf)?;
        buf.extend_from_slice(&w.window.start.to_be_bytes());
        Ok(true)
    }

    fn deserialize(&self, topic: &str, bytes: Option<&[u8]>) -> Result<Windowed<K>, SerdeError> {
        let (key, start) = split_tail(bytes, 8, "time-windowed key")?;
        let start = be_i64(start);
        Ok(Windowed::new(
            self.inner.deserialize(topic, Some(key))?,
            Window::new(start, start.saturating_add(self.size_ms)),
        ))
    }
}

/// Serde of session-windowed keys: the inner key's bytes, then the session end and the session
/// start as 8 big-endian bytes each (Kafka Streams' `SessionWindowedSerde`).
pub(crate) struct SessionWindowedSerde<K> {
    inner: SerdeRef<K>,
}

impl<K> SessionWindowedSerde<K> {
    /// Session-windowed keys of `inner`.
    pub(crate) fn new(inner: SerdeRef<K>) -> Self {
        SessionWindowedSerde { inner }
    }
}

impl<K: Send + Sync + 'static> Serde<Windowed<K>> for SessionWindowedSerde<K> {
    fn serialize(&self, topic: &str, w: &Windowed<K>) -> Result<Option<Vec<u8>>, SerdeError> {
        let mut out = Vec::new();
        self.serialize_into(topic, w, &mut out)?;
        Ok(Some(out))
    }

    fn serialize_into(
        &self,
        topic: &str,
        w: &Windowed<K>,
        buf: &mut Vec<u8>,
    ) -> Result<bool, SerdeError> {
        inner_key_into(&self.inner, topic, &w.key, buf)?;
        buf.extend_from_slice(&w.window.end.to_be_bytes());
        buf.extend_from_slice(&w.window.start.to_be_bytes());
        Ok(true)
    }

    fn deserialize(&self, topic: &str, bytes: Option<&[u8]>) -> Result<Windowed<K>, SerdeError> {
        let (key, times) = split_tail(bytes, 16, "session-windowed key")?;
        Ok(Windowed::new(
            self.inner.deserialize(topic, Some(key))?,
            Window::new(be_i64(&times[8..]), be_i64(times)),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serde::Serdes;

    #[test]
    fn session_keys_carry_end_then_start() {
        let serde = Serdes::session_windowed(Serdes::string());
        let w = Windowed::new("k".to_string(), Window::new(5, 9));
        let b = serde.serialize("t", &w).unwrap().unwrap();
        assert_eq!(b[0], b'k');
        assert_eq!(&b[1..9], &9i64.to_be_bytes());
        assert_eq!(&b[9..], &5i64.to_be_bytes());
        assert_eq!(serde.deserialize("t", Some(&b)).unwrap(), w);
        assert!(serde.deserialize("t", Some(b"short")).is_err());
    }
}
