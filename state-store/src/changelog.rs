//! [`ChangelogWriter`]: where a logged store sends its writes; implemented by the streams core.

/// Where changelog writes go. Implemented by the streams core (it produces to the store's changelog
/// topic, to the task's partition).
///
/// Logging cannot fail here by design: the core's producer sends asynchronously and reports send
/// failures at commit (when it flushes), which is also when the store's writes must be durable.
pub trait ChangelogWriter: Send {
    /// Log one write of store `store`; value None is a delete (tombstone). `timestamp` is the
    /// record timestamp of the write.
    fn log(&mut self, store: &str, key: &[u8], value: Option<&[u8]>, timestamp: i64);
}
