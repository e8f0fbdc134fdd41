//! Typed state stores for processors: [`KeyValueStore`], [`WindowStore`] and [`SessionStore`]
//! handles over the byte-level store stacks of the `state-store` crate, and [`StoreBuilder`] /
//! [`Stores`] to declare them.

mod cached;
mod scan;
mod window;

pub use scan::StoreIterator;
pub(crate) use scan::{prefix_bounds, RawScan, RawStore};

pub use cached::{CacheFlush, CachedStore};
pub(crate) use window::SEGMENT_PREFIX;
use window::{Layout, Segments};
pub use window::{SessionStore, WindowStore};

mod global;

pub(crate) use global::GlobalStores;

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use state_store::{ChangelogWriter, FlushedEntry, KeyValueStoreStack};

use crate::collector::RecordCollector;
use crate::error::{Result, StreamsError};
use crate::serde::SerdeRef;
use crate::task_id::TaskId;

/// Declares a key-value store: its name, serdes, engine, caching and changelogging.
///
/// ```
/// use streams_core::{Stores, serde::Serdes};
/// let b = Stores::persistent_key_value("counts", Serdes::string(), Serdes::i64())
///     .with_caching_enabled()
///     .with_logging_enabled([("min.cleanable.dirty.ratio", "0.1")]);
/// assert_eq!(b.name(), "counts");
/// ```
pub struct StoreBuilder<K, V> {
    name: String,
    key_serde: SerdeRef<K>,
    value_serde: SerdeRef<V>,
    persistent: bool,
    caching: bool,
    logging: bool,
    log_config: BTreeMap<String, String>,
    kind: StoreKind,
}

/// What a store holds, beyond its serdes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StoreKind {
    KeyValue,
    Window {
        retention_ms: i64,
        window_size_ms: i64,
        retain_duplicates: bool,
    },
    Session {
        retention_ms: i64,
    },
}

/// Kafka Streams' segment interval: half the retention, at least a minute.
fn segment_interval(retention_ms: i64) -> i64 {
    (retention_ms / 2).max(60_000)
}

/// Constructors of store builders, after Kafka Streams' `Stores`.
pub struct Stores;

impl Stores {
    /// A RocksDB key-value store (logged, not cached, until told otherwise).
    pub fn persistent_key_value<K, V>(
        name: &str,
        key_serde: SerdeRef<K>,
        value_serde: SerdeRef<V>,
    ) -> StoreBuilder<K, V> {
        StoreBuilder {
            name: name.to_string(),
            key_serde,
            value_serde,
            persistent: true,
            caching: false,
            logging: true,
            log_config: BTreeMap::new(),
            kind: StoreKind::KeyValue,
        }
    }

    /// A RocksDB window store keeping windows of `window_size_ms` for `retention_ms` (at least
    /// window size + grace for an aggregation). With `retain_duplicates` every put is kept (the
    /// stream-stream join's store). Its changelog is `compact,delete` with the retention plus a
    /// day, as in Kafka Streams.
    ///
    /// ```
    /// use streams_core::{Stores, serde::Serdes};
    /// let b = Stores::persistent_window_store("clicks", 3_600_000, 60_000, false,
    ///     Serdes::string(), Serdes::i64());
    /// assert_eq!(b.name(), "clicks");
    /// ```
    pub fn persistent_window_store<K, V>(
        name: &str,
        retention_ms: i64,
        window_size_ms: i64,
        retain_duplicates: bool,
        key_serde: SerdeRef<K>,
        value_serde: SerdeRef<V>,
    ) -> StoreBuilder<K, V> {
        StoreBuilder {
            kind: StoreKind::Window {
                retention_ms,
                window_size_ms,
                retain_duplicates,
            },
            ..Stores::persistent_key_value(name, key_serde, value_serde)
        }
    }

    /// A RocksDB session store keeping sessions for `retention_ms` after they end.
    pub fn persistent_session_store<K, V>(
        name: &str,
        retention_ms: i64,
        key_serde: SerdeRef<K>,
        value_serde: SerdeRef<V>,
    ) -> StoreBuilder<K, V> {
        StoreBuilder {
            kind: StoreKind::Session { retention_ms },
            ..Stores::persistent_key_value(name, key_serde, value_serde)
        }
    }

    /// An in-memory key-value store, rebuilt from its changelog when a task starts.
    pub fn in_memory_key_value<K, V>(
        name: &str,
        key_serde: SerdeRef<K>,
        value_serde: SerdeRef<V>,
    ) -> StoreBuilder<K, V> {
        StoreBuilder {
            persistent: false,
            ..Stores::persistent_key_value(name, key_serde, value_serde)
        }
    }
}

impl<K, V> StoreBuilder<K, V> {
    /// The store's name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Puts go through a record cache that folds updates of a key until commit.
    pub fn with_caching_enabled(mut self) -> Self {
        self.caching = true;
        self
    }
    /// Every put goes straight to the store.
    pub fn with_caching_disabled(mut self) -> Self {
        self.caching = false;
        self
    }
    /// Writes go to the changelog topic `<application.id>-<name>-changelog`, created with these
    /// topic configs (in addition to cleanup.policy=compact).
    pub fn with_logging_enabled<I, S1, S2>(mut self, config: I) -> Self
    where
        I: IntoIterator<Item = (S1, S2)>,
        S1: Into<String>,
        S2: Into<String>,
    {
        self.logging = true;
        self.log_config = config
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        self
    }
    /// No changelog: the store is lost with its local state.
    pub fn with_logging_disabled(mut self) -> Self {
        self.logging = false;
        self
    }
    /// Chooses RocksDB (`true`) or memory (`false`).
    pub fn persistent(mut self, persistent: bool) -> Self {
        self.persistent = persistent;
        self
    }
}

/// What the task needs to know of a store declaration, without its types.
pub(crate) trait StoreFactory: Send + Sync {
    fn persistent(&self) -> bool;
    fn caching(&self) -> bool;
    fn logging(&self) -> bool;
    /// Changelog topic configs besides `cleanup.policy=compact`; a windowed changelog keeps
    /// records `additional_retention_ms` longer than its store
    /// (`windowstore.changelog.additional.retention.ms`, against clock drift).
    fn log_config(&self, additional_retention_ms: i64) -> BTreeMap<String, String>;
    /// Bytes of engine-key prefix that changelog keys leave out (segmented stores).
    fn changelog_key_offset(&self) -> usize;
    /// The typed handle processors get over the task's store cell, the bytes view queries
    /// use, and for segmented stores the mapping of restored changelog keys to engine keys.
    fn open(&self, cell: Arc<StoreCell>) -> OpenedStore;
    /// The store's kind and the formats of its serdes, for tools that show it.
    fn shape(&self) -> StoreShape;
}

/// What [`StoreFactory::open`] makes of a task's store cell.
pub(crate) struct OpenedStore {
    pub(crate) handle: Arc<dyn Any + Send + Sync>,
    pub(crate) raw: RawStore,
    pub(crate) restore_key: Option<KeyMapper>,
}

/// A store's kind and serde formats, without its types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StoreShape {
    /// `key-value`, `window` or `session`.
    pub(crate) kind: &'static str,
    pub(crate) key: crate::serde::SerdeFormat,
    pub(crate) value: crate::serde::SerdeFormat,
    /// Window stores: the window size.
    pub(crate) window_size_ms: Option<i64>,
}

/// Maps a restored changelog key to the key the engine stores it under.
pub(crate) type KeyMapper = Arc<dyn Fn(&[u8]) -> Vec<u8> + Send + Sync>;

impl<K: Send + Sync + 'static, V: Send + Sync + 'static> StoreFactory for StoreBuilder<K, V> {
    fn persistent(&self) -> bool {
        self.persistent
    }
    fn caching(&self) -> bool {
        self.caching
    }
    fn logging(&self) -> bool {
        self.logging
    }
    fn log_config(&self, additional_retention_ms: i64) -> BTreeMap<String, String> {
        let mut c = BTreeMap::new();
        if let StoreKind::Window { retention_ms, .. } | StoreKind::Session { retention_ms } =
            self.kind
        {
            c.insert("cleanup.policy".to_string(), "compact,delete".to_string());
            c.insert(
                "retention.ms".to_string(),
                retention_ms
                    .saturating_add(additional_retention_ms)
                    .to_string(),
            );
        }
        c.extend(self.log_config.clone());
        c
    }
    fn changelog_key_offset(&self) -> usize {
        match self.kind {
            StoreKind::KeyValue => 0,
            _ => SEGMENT_PREFIX,
        }
    }
    fn shape(&self) -> StoreShape {
        let (kind, window_size_ms) = match self.kind {
            StoreKind::KeyValue => ("key-value", None),
            StoreKind::Window { window_size_ms, .. } => ("window", Some(window_size_ms)),
            StoreKind::Session { .. } => ("session", None),
        };
        StoreShape {
            kind,
            key: self.key_serde.format(),
            value: self.value_serde.format(),
            window_size_ms,
        }
    }
    fn open(&self, cell: Arc<StoreCell>) -> OpenedStore {
        let (ks, vs) = (self.key_serde.clone(), self.value_serde.clone());
        let (layout, retention_ms) = match self.kind {
            StoreKind::KeyValue => {
                let handle = KeyValueStore {
                    cell,
                    key_serde: ks,
                    value_serde: vs,
                };
                return OpenedStore {
                    raw: handle.raw(),
                    handle: Arc::new(handle),
                    restore_key: None,
                };
            }
            StoreKind::Window { retention_ms, .. } => (Layout::Window, retention_ms),
            StoreKind::Session { retention_ms } => (Layout::Session, retention_ms),
        };
        let seg = Arc::new(Segments::new(
            layout,
            retention_ms,
            segment_interval(retention_ms),
        ));
        let mapper = seg.clone();
        let mapper: KeyMapper = Arc::new(move |k: &[u8]| mapper.engine_key(k));
        let (handle, raw): (Arc<dyn Any + Send + Sync>, RawStore) = match self.kind {
            StoreKind::Window {
                window_size_ms,
                retain_duplicates,
                ..
            } => {
                let h = WindowStore::new(cell, ks, vs, seg, retain_duplicates, window_size_ms);
                let raw = h.raw();
                (Arc::new(h), raw)
            }
            _ => {
                let h = SessionStore::new(cell, ks, vs, seg);
                let raw = h.raw();
                (Arc::new(h), raw)
            }
        };
        OpenedStore {
            handle,
            raw,
            restore_key: Some(mapper),
        }
    }
}

/// One store of one task: its byte-level stack, plus the entries its cache evicted that still
/// have to be forwarded by the owning processor's flush listener.
pub(crate) struct StoreCell {
    pub(crate) name: Arc<str>,
    pub(crate) task: TaskId,
    inner: Mutex<StoreInner>,
    /// Set when `evicted` is non-empty, so the task checks without taking the lock per record.
    has_evicted: AtomicBool,
    /// The timestamp of the record (or punctuation) being processed: puts carry it to the cache
    /// and the changelog.
    current_ts: Arc<AtomicI64>,
}

struct StoreInner {
    stack: KeyValueStoreStack,
    evicted: Vec<FlushedEntry>,
    /// Per operation (`metrics::STORE_OPERATIONS`), its latencies in ns: only with
    /// `metrics.recording.level=DEBUG`, which costs two clock reads per operation.
    operations: Option<Box<[crate::metrics::Sensor; 6]>>,
}

/// A timed store operation: its index in `metrics::STORE_OPERATIONS`.
#[derive(Debug, Clone, Copy)]
pub(crate) enum StoreOp {
    Put = 0,
    PutIfAbsent = 1,
    Get = 2,
    Delete = 3,
    Range = 4,
    Flush = 5,
}

impl StoreCell {
    pub(crate) fn new(task: TaskId, stack: KeyValueStoreStack, current_ts: Arc<AtomicI64>) -> Self {
        StoreCell {
            name: stack.name().into(),
            task,
            inner: Mutex::new(StoreInner {
                stack,
                evicted: Vec::new(),
                operations: None,
            }),
            has_evicted: AtomicBool::new(false),
            current_ts,
        }
    }

    fn lock(&self) -> MutexGuard<'_, StoreInner> {
        // A panic inside a store call poisons the lock; the data itself is still consistent
        // (every stack call either applies or fails whole), so keep going.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn err(&self, source: state_store::StoreError) -> StreamsError {
        StreamsError::Store {
            task: self.task,
            store: self.name.to_string(),
            source,
        }
    }

    pub(crate) fn with_stack<T>(
        &self,
        f: impl FnOnce(&mut KeyValueStoreStack) -> state_store::Result<T>,
    ) -> Result<T> {
        f(&mut self.lock().stack).map_err(|e| self.err(e))
    }

    /// Times this store's operations from now on (`metrics.recording.level=DEBUG`).
    pub(crate) fn time_operations(&self) {
        self.lock().operations.get_or_insert_with(Default::default);
    }

    /// The operations' sensors, when timed.
    pub(crate) fn operation_sensors(&self) -> Option<[crate::metrics::Sensor; 6]> {
        self.lock().operations.as_deref().copied()
    }

    /// Runs operation `op` on the stack (with the evictions it causes noted), timing it when
    /// operations are timed.
    fn op<T>(
        &self,
        op: StoreOp,
        f: impl FnOnce(&mut KeyValueStoreStack) -> state_store::Result<(T, Vec<FlushedEntry>)>,
    ) -> Result<T> {
        let mut inner = self.lock();
        let started = inner.operations.is_some().then(std::time::Instant::now);
        let (out, evicted) = f(&mut inner.stack).map_err(|e| self.err(e))?;
        self.note_evicted(&mut inner, evicted);
        if let (Some(started), Some(sensors)) = (started, inner.operations.as_mut()) {
            let ns = started.elapsed().as_nanos() as f64;
            sensors[op as usize].record(ns, crate::metrics::process_clock_ms());
        }
        Ok(out)
    }

    /// The stack's `flush`, timed as `flush`.
    pub(crate) fn flush(&self) -> Result<()> {
        self.op(StoreOp::Flush, |s| s.flush().map(|()| ((), Vec::new())))
    }

    fn note_evicted(&self, inner: &mut StoreInner, evicted: Vec<FlushedEntry>) {
        if !evicted.is_empty() {
            inner.evicted.extend(evicted);
            self.has_evicted.store(true, Ordering::Release);
        }
    }

    /// Entries evicted since the last call (cheap when there are none).
    pub(crate) fn take_evicted(&self) -> Vec<FlushedEntry> {
        if !self.has_evicted.swap(false, Ordering::Acquire) {
            return Vec::new();
        }
        std::mem::take(&mut self.lock().evicted)
    }
}

/// A typed key-value store of a task. Cheap to clone; all clones are the same store.
///
/// Keys are ordered by their serialized bytes (as in Kafka Streams), which is what `range` uses.
pub struct KeyValueStore<K, V> {
    cell: Arc<StoreCell>,
    key_serde: SerdeRef<K>,
    value_serde: SerdeRef<V>,
}

impl<K, V> Clone for KeyValueStore<K, V> {
    fn clone(&self) -> Self {
        KeyValueStore {
            cell: self.cell.clone(),
            key_serde: self.key_serde.clone(),
            value_serde: self.value_serde.clone(),
        }
    }
}

impl<K: 'static, V: 'static> KeyValueStore<K, V> {
    /// The store's name.
    pub fn name(&self) -> &str {
        &self.cell.name
    }

    fn key_bytes(&self, key: &K) -> Result<Vec<u8>> {
        match self.key_serde.serialize(&self.cell.name, key) {
            Ok(Some(b)) => Ok(b),
            Ok(None) => Err(StreamsError::StoreAccess {
                store: self.cell.name.to_string(),
                message: "a store key must not serialize to null".into(),
            }),
            Err(source) => Err(StreamsError::Serialization {
                target: format!("store `{}`", self.cell.name),
                source,
            }),
        }
    }

    fn value_bytes(&self, value: &V) -> Result<Option<Vec<u8>>> {
        self.value_serde
            .serialize(&self.cell.name, value)
            .map_err(|source| StreamsError::Serialization {
                target: format!("store `{}`", self.cell.name),
                source,
            })
    }

    fn decode_key(&self, b: &[u8]) -> Result<K> {
        self.key_serde
            .deserialize(&self.cell.name, Some(b))
            .map_err(|e| self.decode_err("key", e))
    }

    fn decode_value(&self, b: Option<&[u8]>) -> Result<Option<V>> {
        match b {
            None => Ok(None),
            Some(b) => self
                .value_serde
                .deserialize(&self.cell.name, Some(b))
                .map(Some)
                .map_err(|e| self.decode_err("value", e)),
        }
    }

    fn decode_err(&self, part: &str, e: crate::serde::SerdeError) -> StreamsError {
        StreamsError::StoreAccess {
            store: self.cell.name.to_string(),
            message: format!("stored {part} does not deserialize: {e}"),
        }
    }

    /// Whether puts go through a record cache (changes then reach the store, its changelog and
    /// the flush listener on commit or eviction).
    pub fn is_cached(&self) -> bool {
        self.cell.with_stack(|s| Ok(s.is_cached())).unwrap_or(false)
    }

    /// The value of `key`, if any.
    pub fn get(&self, key: &K) -> Result<Option<V>> {
        let k = self.key_bytes(key)?;
        let v = self
            .cell
            .op(StoreOp::Get, |s| s.get(&k).map(|v| (v, Vec::new())))?;
        self.decode_value(v.as_deref())
    }

    /// Sets `key` to `value` (a value that serializes to null deletes the key).
    pub fn put(&self, key: &K, value: &V) -> Result<()> {
        let k = self.key_bytes(key)?;
        let v = self.value_bytes(value)?;
        let ts = self.cell.current_ts.load(Ordering::Relaxed);
        self.cell.op(StoreOp::Put, |s| {
            s.put(&k, v.as_deref(), ts).map(|evicted| ((), evicted))
        })
    }

    /// Sets `key` to `value` only when it has no value; returns the existing value.
    pub fn put_if_absent(&self, key: &K, value: &V) -> Result<Option<V>> {
        let k = self.key_bytes(key)?;
        let Some(v) = self.value_bytes(value)? else {
            return self.get(key);
        };
        let ts = self.cell.current_ts.load(Ordering::Relaxed);
        let old = self
            .cell
            .op(StoreOp::PutIfAbsent, |s| s.put_if_absent(&k, &v, ts))?;
        self.decode_value(old.as_deref())
    }

    /// Deletes `key`; returns the value it had.
    pub fn delete(&self, key: &K) -> Result<Option<V>> {
        let k = self.key_bytes(key)?;
        let ts = self.cell.current_ts.load(Ordering::Relaxed);
        let old = self.cell.op(StoreOp::Delete, |s| s.delete(&k, ts))?;
        self.decode_value(old.as_deref())
    }

    /// Entries with `from <= key <= to` in serialized-key order.
    pub fn range(&self, from: &K, to: &K) -> Result<Vec<(K, V)>> {
        let (f, t) = (self.key_bytes(from)?, self.key_bytes(to)?);
        let entries = self.cell.op(StoreOp::Range, |s| {
            s.range(Some(&f), Some(&t)).map(|e| (e, Vec::new()))
        })?;
        self.decode_entries(entries)
    }

    /// Every entry, in serialized-key order.
    pub fn all(&self) -> Result<Vec<(K, V)>> {
        let entries = self
            .cell
            .op(StoreOp::Range, |s| s.all().map(|e| (e, Vec::new())))?;
        self.decode_entries(entries)
    }

    /// An estimate of the number of keys.
    pub fn approximate_num_entries(&self) -> Result<u64> {
        self.cell.with_stack(|s| s.approximate_num_entries())
    }

    fn decode_entries(&self, entries: Vec<(Vec<u8>, Vec<u8>)>) -> Result<Vec<(K, V)>> {
        entries
            .into_iter()
            .filter_map(
                |(k, v)| match (self.decode_key(&k), self.decode_value(Some(&v))) {
                    (Ok(k), Ok(Some(v))) => Some(Ok((k, v))),
                    (Ok(_), Ok(None)) => None,
                    (Err(e), _) | (_, Err(e)) => Some(Err(e)),
                },
            )
            .collect()
    }

    pub(crate) fn decode_flush(&self, e: FlushedEntry) -> Result<CacheFlush<K, V>> {
        Ok(CacheFlush {
            key: self.decode_key(&e.key)?,
            new_value: self.decode_value(e.new_value.as_deref())?,
            old_value: self.decode_value(e.old_value.as_deref())?,
            timestamp: e.timestamp,
        })
    }
}

impl<K: Send + Sync + 'static, V: Send + Sync + 'static> CachedStore for KeyValueStore<K, V> {
    type Key = K;
    type Value = V;
    fn store_name(&self) -> &str {
        &self.cell.name
    }
    fn decode_flushed(&self, e: FlushedEntry) -> Result<CacheFlush<K, V>> {
        self.decode_flush(e)
    }
}

/// Writes a store's changes to its changelog partition through the task's record collector.
pub(crate) struct CollectorChangelogWriter {
    pub(crate) collector: Arc<dyn RecordCollector>,
    pub(crate) topic: String,
    pub(crate) partition: i32,
    /// Engine-key prefix left out of changelog keys (the segment of segmented stores).
    pub(crate) key_offset: usize,
}

impl ChangelogWriter for CollectorChangelogWriter {
    fn log(&mut self, _store: &str, key: &[u8], value: Option<&[u8]>, timestamp: i64) {
        if let Err(e) = self.collector.send(
            &self.topic,
            Some(self.partition),
            Some(key.get(self.key_offset..).unwrap_or_default()),
            value,
            timestamp,
            &Vec::new(),
        ) {
            self.collector.fail(e);
        }
    }
}

/// `<application.id>-<store>-changelog`.
pub(crate) fn changelog_topic(application_id: &str, store: &str) -> String {
    format!("{application_id}-{store}-changelog")
}
