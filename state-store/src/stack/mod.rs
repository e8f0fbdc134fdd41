//! [`KeyValueStoreStack`]: the layered store Kafka Streams builds, \[cache\] -> \[changelogging\] ->
//! engine.
//!
//! The stack's methods are grouped by path: `read` (cache over engine), `write` (into the cache, or
//! through to engine and changelog) and `write_out` (dirty cache entries out to both).

mod read;

pub use read::ScanPage;
mod write;
mod write_out;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use crate::cache::RecordCache;
use crate::{CacheBudget, ChangelogWriter, KeyValueEngine, Result};

/// The layered store Kafka Streams builds: \[cache\] -> \[changelogging\] -> engine.
///
/// * Without a cache, every write goes to the engine and then, when logged, to the changelog.
/// * With a cache, writes stay in a record cache where repeated updates of a key fold into one,
///   until [`flush_cache`](Self::flush_cache) (at commit) or eviction under memory pressure writes
///   them to the engine and changelog. Both return the written entries as [`FlushedEntry`]s, which
///   the owner forwards downstream: that is why a cached count emits far fewer updates than it
///   reads records.
///
/// Reads see the cache first, then the engine.
///
/// ```
/// use state_store::{CacheBudget, ChangelogWriter, InMemoryEngine, KeyValueStoreStack};
/// use std::sync::{Arc, Mutex};
///
/// /// Counts changelog writes; the streams core produces them to the changelog topic instead.
/// struct Counter(Arc<Mutex<usize>>);
/// impl ChangelogWriter for Counter {
///     fn log(&mut self, _store: &str, _key: &[u8], _value: Option<&[u8]>, _timestamp: i64) {
///         *self.0.lock().unwrap() += 1;
///     }
/// }
///
/// let logged = Arc::new(Mutex::new(0));
/// let budget = CacheBudget::new(10 * 1024 * 1024);
/// let mut store = KeyValueStoreStack::new(Box::new(InMemoryEngine::new("counts")))
///     .with_changelog(Box::new(Counter(logged.clone())))
///     .with_cache(budget.clone());
///
/// for count in 1..=10u32 {
///     // Nothing is evicted with this much room.
///     assert!(store.put(b"apple", Some(&count.to_be_bytes()), 1_000)?.is_empty());
/// }
/// assert_eq!(store.get(b"apple")?, Some(10u32.to_be_bytes().to_vec()));
/// assert_eq!(*logged.lock().unwrap(), 0);
///
/// // At commit: ten updates reach the changelog and downstream as one.
/// let flushed = store.flush_cache()?;
/// assert_eq!(flushed.len(), 1);
/// assert_eq!(flushed[0].new_value, Some(10u32.to_be_bytes().to_vec()));
/// assert_eq!(flushed[0].old_value, None);
/// assert_eq!(*logged.lock().unwrap(), 1);
/// store.flush()?;
///
/// store.close()?;
/// assert_eq!(budget.used_bytes(), 0);
/// # Ok::<(), state_store::StoreError>(())
/// ```
///
/// [`FlushedEntry`]: crate::FlushedEntry
pub struct KeyValueStoreStack {
    engine: Box<dyn KeyValueEngine>,
    /// `None` for stores with logging disabled (their state is lost with the machine).
    changelog: Option<Box<dyn ChangelogWriter>>,
    /// `None` when caching is disabled: writes then go straight through.
    cache: Option<RecordCache>,
    /// The last key a cached store's `get` found in neither the cache nor the engine. A put of
    /// that key right after (an aggregation opening a new key or window) makes a cache entry that
    /// knows the engine holds nothing, so writing it out skips reading the engine for the old
    /// value. The engine gains a key only when its cache entry is written out, and a put takes
    /// the memo, so it cannot go stale; restores and range deletes clear it anyway.
    missing: std::cell::RefCell<Vec<u8>>,
}

impl std::fmt::Debug for KeyValueStoreStack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyValueStoreStack")
            .field("name", &self.engine.name())
            .field("persistent", &self.engine.persistent())
            .field("logged", &self.is_logged())
            .field("cache", &self.cache)
            .finish()
    }
}

impl KeyValueStoreStack {
    /// A stack of just `engine`: no cache, no changelog.
    pub fn new(engine: Box<dyn KeyValueEngine>) -> Self {
        KeyValueStoreStack {
            engine,
            changelog: None,
            cache: None,
            missing: std::cell::RefCell::new(Vec::new()),
        }
    }

    /// Every write through the stack (or every cache flush, when cached) is also logged.
    pub fn with_changelog(mut self, writer: Box<dyn ChangelogWriter>) -> Self {
        self.changelog = Some(writer);
        self
    }

    /// Puts go to a record cache first; repeated updates of a key fold until flush_cache() or
    /// eviction.
    ///
    /// The cache charges its entries to `budget`, shared with the other caches of the stream
    /// thread. Call this while building the stack; a second call replaces the cache, dropping its
    /// unflushed entries.
    pub fn with_cache(mut self, budget: Arc<CacheBudget>) -> Self {
        self.cache = Some(RecordCache::new(budget));
        self
    }

    /// The store's name.
    pub fn name(&self) -> &str {
        self.engine.name()
    }

    /// Whether the engine keeps data across restarts.
    pub fn persistent(&self) -> bool {
        self.engine.persistent()
    }

    /// Whether writes are cached before reaching the engine.
    pub fn is_cached(&self) -> bool {
        self.cache.is_some()
    }

    /// Whether writes are logged to a changelog.
    pub fn is_logged(&self) -> bool {
        self.changelog.is_some()
    }

    /// flush_cache() must have been called first by the owner (it forwards the entries); this
    /// flushes the engine.
    pub fn flush(&mut self) -> Result<()> {
        self.engine.flush()
    }

    /// Makes the engine's writes since the last commit part of the store for good, with the
    /// changelog `offsets` they reflect (see [`KeyValueEngine::commit`]). The cache must have
    /// been flushed first.
    pub fn commit(&mut self, offsets: &crate::ChangelogOffsets) -> Result<()> {
        self.engine.commit(offsets)
    }

    /// Drops the cache's dirty entries and the engine's uncommitted writes (an aborted
    /// transaction's).
    pub fn abort(&mut self) -> Result<()> {
        self.missing.borrow_mut().clear();
        if let Some(cache) = &mut self.cache {
            cache.clear();
        }
        self.engine.abort()
    }

    /// The bytes of writes the engine holds back until the next commit.
    pub fn uncommitted_bytes(&self) -> usize {
        self.engine.uncommitted_bytes()
    }

    /// The changelog offsets the store recorded with its last commit.
    pub fn stored_offsets(&self) -> Result<crate::ChangelogOffsets> {
        self.engine.stored_offsets()
    }

    /// Releases cache budget, closes engine; dirty entries are NOT flushed (caller flushes
    /// first).
    pub fn close(&mut self) -> Result<()> {
        if let Some(cache) = &mut self.cache {
            cache.clear();
        }
        self.engine.close()
    }
}
