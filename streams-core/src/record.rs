//! Records as processors see them ([`Record`]) and as they arrive from a topic ([`RawRecord`]).

use std::sync::Arc;

/// Record headers: an ordered list of (key, value) pairs, as Kafka carries them.
pub type Headers = Vec<(String, Option<Vec<u8>>)>;

/// A typed record flowing through the topology: key, value, timestamp and headers.
///
/// ```
/// use streams_core::Record;
/// let r = Record::new("user-1".to_string(), 3i64, 1_000);
/// let doubled = r.clone().with_value(r.value * 2);
/// assert_eq!(doubled.value, 6);
/// assert_eq!(doubled.timestamp, 1_000);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Record<K, V> {
    /// The key.
    pub key: K,
    /// The value.
    pub value: V,
    /// Event time in milliseconds since the epoch.
    pub timestamp: i64,
    /// Headers carried along with the record.
    pub headers: Headers,
}

impl<K, V> Record<K, V> {
    /// A record without headers.
    pub fn new(key: K, value: V, timestamp: i64) -> Self {
        Record {
            key,
            value,
            timestamp,
            headers: Vec::new(),
        }
    }

    /// The same record with another key.
    pub fn with_key<K2>(self, key: K2) -> Record<K2, V> {
        Record {
            key,
            value: self.value,
            timestamp: self.timestamp,
            headers: self.headers,
        }
    }

    /// The same record with another value.
    pub fn with_value<V2>(self, value: V2) -> Record<K, V2> {
        Record {
            key: self.key,
            value,
            timestamp: self.timestamp,
            headers: self.headers,
        }
    }

    /// The same record with another timestamp.
    pub fn with_timestamp(mut self, timestamp: i64) -> Self {
        self.timestamp = timestamp;
        self
    }
}

/// A record as consumed from a topic, before deserialization.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RawRecord {
    /// Source topic.
    pub(crate) topic: Arc<str>,
    /// Source partition.
    pub(crate) partition: i32,
    /// Offset in that partition.
    pub(crate) offset: i64,
    /// The record's timestamp (create or log-append time).
    pub(crate) timestamp: i64,
    /// Key bytes; `None` is a null key.
    pub(crate) key: Option<Vec<u8>>,
    /// Value bytes; `None` is a null value (a tombstone for tables).
    pub(crate) value: Option<Vec<u8>>,
    /// Headers.
    pub(crate) headers: Headers,
}

impl RawRecord {
    /// This record's bytes, as a source node decodes them.
    pub(crate) fn bytes(&self) -> RecordBytes<'_> {
        RecordBytes {
            topic: &self.topic,
            partition: self.partition,
            offset: self.offset,
            timestamp: self.timestamp,
            key: self.key.as_deref(),
            value: self.value.as_deref(),
            headers: self.headers.clone(),
        }
    }
}

/// A consumed record's bytes, borrowed from where they arrived (the consumer's buffer, a test
/// driver's input) so that a source decodes them without copying them first.
pub(crate) struct RecordBytes<'a> {
    pub(crate) topic: &'a str,
    pub(crate) partition: i32,
    pub(crate) offset: i64,
    pub(crate) timestamp: i64,
    pub(crate) key: Option<&'a [u8]>,
    pub(crate) value: Option<&'a [u8]>,
    /// Owned: they move into the decoded record.
    pub(crate) headers: Headers,
}

/// What the exception handlers see of a source record beyond its coordinates: its headers and,
/// when a dead-letter topic is set, its bytes.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct SourceBytes {
    pub(crate) headers: Headers,
    pub(crate) key: Option<Vec<u8>>,
    pub(crate) value: Option<Vec<u8>>,
}

/// Where the record being processed came from: Kafka Streams' record context.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordMetadata {
    /// Source topic.
    pub topic: Arc<str>,
    /// Source partition.
    pub partition: i32,
    /// Offset in the source partition.
    pub offset: i64,
}

/// A change to a table row: the new value and, where known, the one it replaces.
///
/// `new_value == None` is a delete. KTable processors forward `Change`s so that downstream
/// aggregations can subtract the old value and add the new one.
#[derive(Debug, Clone, PartialEq)]
pub struct Change<V> {
    /// The value after the change (`None`: the row was deleted).
    pub new_value: Option<V>,
    /// The value before the change, when the upstream sends old values.
    pub old_value: Option<V>,
}

impl<V> Change<V> {
    /// A change from `old_value` to `new_value`.
    pub fn new(new_value: Option<V>, old_value: Option<V>) -> Self {
        Change {
            new_value,
            old_value,
        }
    }
}
