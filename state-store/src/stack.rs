//! [`KeyValueStoreStack`]: the layered store Kafka Streams builds, [cache] -> [changelogging] ->
//! engine.

use std::cmp::Ordering;
use std::sync::Arc;

use crate::cache::{PendingWrite, RecordCache};
use crate::{CacheBudget, ChangelogWriter, FlushedEntry, KeyValue, KeyValueEngine, Result};

/// The layered store Kafka Streams builds: [cache] -> [changelogging] -> engine.
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

    /// Reads see the cache first (a cached delete reads as None).
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let Some(cache) = &self.cache else {
            return self.engine.get(key);
        };
        if let Some(entry) = cache.get(key) {
            return Ok(entry.value.clone());
        }
        let value = self.engine.get(key)?;
        if value.is_none() {
            let mut missing = self.missing.borrow_mut();
            missing.clear();
            missing.extend_from_slice(key);
        }
        Ok(value)
    }

    /// Whether `key` is the memo of the last missing read; takes the memo either way when it
    /// matches.
    fn take_missing(&self, key: &[u8]) -> bool {
        let mut missing = self.missing.borrow_mut();
        let matched = !missing.is_empty() && missing.as_slice() == key;
        if matched {
            missing.clear();
        }
        matched
    }

    /// value None = delete. Returns entries evicted from the cache by this put (already written
    /// to the changelog and the engine), for the caller to forward; always empty when not cached.
    pub fn put(
        &mut self,
        key: &[u8],
        value: Option<&[u8]>,
        timestamp: i64,
    ) -> Result<Vec<FlushedEntry>> {
        let absent_below = self.take_missing(key);
        match &mut self.cache {
            Some(cache) => {
                cache.put(key, value, timestamp, absent_below);
                self.evict()
            }
            None => {
                match value {
                    Some(value) => self.engine.put(key, value)?,
                    None => self.engine.delete(key)?,
                }
                // Log only what the engine accepted, so the changelog never runs ahead of it.
                if let Some(changelog) = &mut self.changelog {
                    changelog.log(self.engine.name(), key, value, timestamp);
                }
                Ok(Vec::new())
            }
        }
    }

    /// Returns the previous value; writes only when absent.
    pub fn put_if_absent(
        &mut self,
        key: &[u8],
        value: &[u8],
        timestamp: i64,
    ) -> Result<(Option<Vec<u8>>, Vec<FlushedEntry>)> {
        let previous = self.get(key)?;
        if previous.is_some() {
            return Ok((previous, Vec::new()));
        }
        let evicted = self.put(key, Some(value), timestamp)?;
        Ok((None, evicted))
    }

    /// Returns the previous value.
    pub fn delete(
        &mut self,
        key: &[u8],
        timestamp: i64,
    ) -> Result<(Option<Vec<u8>>, Vec<FlushedEntry>)> {
        let previous = self.get(key)?;
        let evicted = self.put(key, None, timestamp)?;
        Ok((previous, evicted))
    }

    /// Merged view of cache and engine, in key order, inclusive bounds.
    ///
    /// A cached value replaces the engine's for its key and a cached delete hides it.
    pub fn range(&self, from: Option<&[u8]>, to: Option<&[u8]>) -> Result<Vec<KeyValue>> {
        let stored = self.engine.range(from, to)?;
        let Some(cache) = &self.cache else {
            return Ok(stored);
        };
        let mut cached = cache.range(from, to).peekable();
        let mut stored = stored.into_iter().peekable();
        let mut merged = Vec::new();
        loop {
            let take_cached = match (cached.peek(), stored.peek()) {
                (None, None) => break,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (Some((cached_key, _)), Some((stored_key, _))) => {
                    match cached_key.as_slice().cmp(stored_key) {
                        Ordering::Less => true,
                        Ordering::Greater => false,
                        Ordering::Equal => {
                            // The cache holds the newer write of this key.
                            stored.next();
                            true
                        }
                    }
                }
            };
            if take_cached {
                let (key, entry) = cached.next().expect("peeked");
                if let Some(value) = &entry.value {
                    merged.push((key.clone(), value.clone()));
                }
            } else {
                merged.push(stored.next().expect("peeked"));
            }
        }
        Ok(merged)
    }

    /// Every entry of the merged view, in key order.
    pub fn all(&self) -> Result<Vec<KeyValue>> {
        self.range(None, None)
    }

    /// The engine's estimate; entries still only in the cache are not counted.
    pub fn approximate_num_entries(&self) -> Result<u64> {
        self.engine.approximate_num_entries()
    }

    /// Writes every dirty cache entry (in LRU order: least recently written first) to changelog +
    /// engine and returns them with old_value = the engine's value before the write. Empty when not
    /// cached.
    ///
    /// Entries stay cached, clean. A cached delete of a key the engine does not have is dropped
    /// silently: there is nothing to delete or to tell downstream.
    pub fn flush_cache(&mut self) -> Result<Vec<FlushedEntry>> {
        let Some(cache) = &mut self.cache else {
            return Ok(Vec::new());
        };
        let writes = cache.all_dirty_writes();
        let keys: Vec<Vec<u8>> = writes.iter().map(|w| w.key.clone()).collect();
        let flushed = write_entries(self.engine.as_mut(), self.changelog.as_deref_mut(), writes)?;
        // Only after the engine took them: on error the entries stay dirty for the next attempt.
        cache.mark_clean(keys);
        Ok(flushed)
    }

    /// flush_cache() must have been called first by the owner (it forwards the entries); this
    /// flushes the engine.
    pub fn flush(&mut self) -> Result<()> {
        self.engine.flush()
    }

    /// Restoration: writes straight to the engine (no cache, no changelog).
    ///
    /// Cached entries of the restored keys are dropped so that reads see the restored values.
    pub fn restore_batch(&mut self, batch: &[(Vec<u8>, Option<Vec<u8>>)]) -> Result<()> {
        self.missing.borrow_mut().clear();
        self.engine.write_batch(batch)?;
        if let Some(cache) = &mut self.cache {
            if !cache.is_empty() {
                for (key, _) in batch {
                    cache.remove(key);
                }
            }
        }
        Ok(())
    }

    /// Drops every entry with `from <= key < to`, cached or stored: expired time segments leave
    /// this way (their changelog records age out by the topic's retention, as in Kafka
    /// Streams).
    ///
    /// Dirty cache entries in the range are first written out like an eviction (engine and
    /// changelog) and returned for the owner to forward: a window's last update must reach
    /// downstream even when its segment expires before the next commit.
    pub fn drop_range(&mut self, from: &[u8], to: &[u8]) -> Result<Vec<FlushedEntry>> {
        self.missing.borrow_mut().clear();
        let mut flushed = Vec::new();
        if let Some(cache) = &mut self.cache {
            // In write order, as a flush: downstream, a later write forwarded first would move
            // stream time past windows whose earlier updates are still to come.
            let doomed = cache.keys_below_in_write_order(from, to);
            let writes = cache.dirty_writes(&doomed);
            flushed = write_entries(self.engine.as_mut(), self.changelog.as_deref_mut(), writes)?;
            for key in doomed {
                cache.remove(&key);
            }
        }
        self.engine.delete_range(from, to)?;
        Ok(flushed)
    }

    /// Releases cache budget, closes engine; dirty entries are NOT flushed (caller flushes
    /// first).
    pub fn close(&mut self) -> Result<()> {
        if let Some(cache) = &mut self.cache {
            cache.clear();
        }
        self.engine.close()
    }

    /// Evicts this store's least recently written entries while the shared budget is exceeded,
    /// writing the dirty ones; returns what was written.
    fn evict(&mut self) -> Result<Vec<FlushedEntry>> {
        let Some(cache) = &mut self.cache else {
            return Ok(Vec::new());
        };
        let victims = cache.eviction_victims();
        if victims.is_empty() {
            return Ok(Vec::new());
        }
        let writes = cache.dirty_writes(&victims);
        let flushed = write_entries(self.engine.as_mut(), self.changelog.as_deref_mut(), writes)?;
        // Removed only once written, so a failed write loses nothing.
        for key in &victims {
            cache.remove(key);
        }
        tracing::trace!(
            store = self.engine.name(),
            evicted = victims.len(),
            written = flushed.len(),
            "evicted cache entries"
        );
        Ok(flushed)
    }
}

/// Writes cached entries to the engine in one batch, then logs them; returns them with the
/// engine's previous values.
fn write_entries(
    engine: &mut dyn KeyValueEngine,
    changelog: Option<&mut (dyn ChangelogWriter + 'static)>,
    writes: Vec<PendingWrite>,
) -> Result<Vec<FlushedEntry>> {
    let mut flushed = Vec::with_capacity(writes.len());
    for PendingWrite {
        key,
        value: new_value,
        timestamp,
        absent_below,
    } in writes
    {
        let old_value = match absent_below {
            true => None,
            false => engine.get(&key)?,
        };
        if new_value.is_none() && old_value.is_none() {
            // Deleting what the engine never had (e.g. put then delete within one commit):
            // as in Kafka Streams, neither written, logged nor forwarded.
            continue;
        }
        flushed.push(FlushedEntry {
            key,
            new_value,
            old_value,
            timestamp,
        });
    }
    if flushed.is_empty() {
        return Ok(flushed);
    }
    let batch: Vec<(Vec<u8>, Option<Vec<u8>>)> = flushed
        .iter()
        .map(|entry| (entry.key.clone(), entry.new_value.clone()))
        .collect();
    engine.write_batch(&batch)?;
    if let Some(changelog) = changelog {
        for entry in &flushed {
            changelog.log(
                engine.name(),
                &entry.key,
                entry.new_value.as_deref(),
                entry.timestamp,
            );
        }
    }
    Ok(flushed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CacheBudget, InMemoryEngine, RocksDbConfig, RocksDbEngine, CACHE_ENTRY_OVERHEAD};
    use std::sync::Mutex;

    /// One changelog record: (store, key, value, timestamp).
    type Logged = (String, Vec<u8>, Option<Vec<u8>>, i64);

    /// Records every changelog write, shared with the test through the Arc.
    #[derive(Clone, Default)]
    struct Recorder(Arc<Mutex<Vec<Logged>>>);

    impl Recorder {
        fn records(&self) -> Vec<Logged> {
            self.0.lock().unwrap().clone()
        }
    }

    impl ChangelogWriter for Recorder {
        fn log(&mut self, store: &str, key: &[u8], value: Option<&[u8]>, timestamp: i64) {
            self.0.lock().unwrap().push((
                store.to_string(),
                key.to_vec(),
                value.map(<[u8]>::to_vec),
                timestamp,
            ));
        }
    }

    fn b(s: &str) -> Vec<u8> {
        s.as_bytes().to_vec()
    }

    fn logged(store: &str, key: &str, value: Option<&str>, timestamp: i64) -> Logged {
        (store.to_string(), b(key), value.map(b), timestamp)
    }

    fn entry(key: &str, new: Option<&str>, old: Option<&str>, timestamp: i64) -> FlushedEntry {
        FlushedEntry {
            key: b(key),
            new_value: new.map(b),
            old_value: old.map(b),
            timestamp,
        }
    }

    /// A logged stack over a memory engine, cached when `budget` is given.
    fn stack(budget: Option<Arc<CacheBudget>>) -> (KeyValueStoreStack, Recorder) {
        let recorder = Recorder::default();
        let mut stack = KeyValueStoreStack::new(Box::new(InMemoryEngine::new("store")))
            .with_changelog(Box::new(recorder.clone()));
        if let Some(budget) = budget {
            stack = stack.with_cache(budget);
        }
        (stack, recorder)
    }

    /// Budget for exactly `n` entries of a one-byte key and one-byte value.
    fn room_for(n: usize) -> Arc<CacheBudget> {
        CacheBudget::new(n * (2 + CACHE_ENTRY_OVERHEAD))
    }

    #[test]
    fn old_values_after_a_missing_read_are_right() {
        let (mut s, _) = stack(Some(room_for(1)));
        // A read that finds nothing, then a put: written out with no old value.
        assert_eq!(s.get(b"a").unwrap(), None);
        assert!(s.put(b"a", Some(b"1"), 1).unwrap().is_empty());
        // `b` pushes `a` out: the engine has a = 1 now, and `a` is no longer cached.
        assert_eq!(
            s.put(b"b", Some(b"1"), 2).unwrap(),
            vec![entry("a", Some("1"), None, 1)]
        );
        // A put of `a` with no read before it must find the engine's value as the old one, and
        // so must a put after a read that found `b` in the cache.
        assert_eq!(s.get(b"b").unwrap(), Some(b("1")));
        assert_eq!(
            s.put(b"a", Some(b"2"), 3).unwrap(),
            vec![entry("b", Some("1"), None, 2)]
        );
        assert_eq!(
            s.flush_cache().unwrap(),
            vec![entry("a", Some("2"), Some("1"), 3)]
        );
        // A missing read of one key says nothing of another.
        assert_eq!(s.get(b"c").unwrap(), None);
        // (`a`, clean, leaves the cache without being written.)
        assert!(s.put(b"b", Some(b"2"), 4).unwrap().is_empty());
        assert_eq!(
            s.flush_cache().unwrap(),
            vec![entry("b", Some("2"), Some("1"), 4)]
        );
        // Deleting a key that was read as missing writes nothing.
        assert_eq!(s.get(b"d").unwrap(), None);
        let (previous, _) = s.delete(b"d", 5).unwrap();
        assert_eq!(previous, None);
        assert!(s.flush_cache().unwrap().is_empty());
    }

    #[test]
    fn stack_is_send() {
        fn assert_send<T: Send>() {}
        assert_send::<KeyValueStoreStack>();
    }

    #[test]
    fn layers_are_reported() {
        let plain = KeyValueStoreStack::new(Box::new(InMemoryEngine::new("plain")));
        assert_eq!(plain.name(), "plain");
        assert!(!plain.persistent() && !plain.is_cached() && !plain.is_logged());
        let (full, _) = stack(Some(CacheBudget::new(1024)));
        assert!(full.is_cached() && full.is_logged());
    }

    #[test]
    fn uncached_writes_are_logged_in_order() {
        let (mut s, log) = stack(None);
        assert!(s.put(b"a", Some(b"1"), 10).unwrap().is_empty());
        assert!(s.put(b"a", Some(b"2"), 11).unwrap().is_empty());
        assert_eq!(
            s.put_if_absent(b"a", b"3", 12).unwrap(),
            (Some(b("2")), vec![])
        );
        assert_eq!(s.put_if_absent(b"b", b"1", 13).unwrap(), (None, vec![]));
        assert_eq!(s.delete(b"a", 14).unwrap(), (Some(b("2")), vec![]));
        assert_eq!(s.get(b"a").unwrap(), None);
        assert_eq!(s.get(b"b").unwrap(), Some(b("1")));
        assert_eq!(
            log.records(),
            vec![
                logged("store", "a", Some("1"), 10),
                logged("store", "a", Some("2"), 11),
                logged("store", "b", Some("1"), 13),
                logged("store", "a", None, 14),
            ]
        );
        assert!(s.flush_cache().unwrap().is_empty());
    }

    #[test]
    fn unlogged_stack_writes_engine_only() {
        let mut s = KeyValueStoreStack::new(Box::new(InMemoryEngine::new("s")));
        s.put(b"a", Some(b"1"), 0).unwrap();
        assert_eq!(s.all().unwrap(), vec![(b("a"), b("1"))]);
    }

    #[test]
    fn cache_folds_repeated_puts_into_one_write() {
        let (mut s, log) = stack(Some(CacheBudget::new(1 << 20)));
        for i in 0..10 {
            let evicted = s
                .put(b"k", Some(format!("v{i}").as_bytes()), 100 + i)
                .unwrap();
            assert!(evicted.is_empty());
        }
        assert_eq!(s.get(b"k").unwrap(), Some(b("v9")));
        assert!(log.records().is_empty());
        // Not in the engine yet.
        assert_eq!(s.approximate_num_entries().unwrap(), 0);

        assert_eq!(
            s.flush_cache().unwrap(),
            vec![entry("k", Some("v9"), None, 109)]
        );
        assert_eq!(log.records(), vec![logged("store", "k", Some("v9"), 109)]);
        assert_eq!(s.approximate_num_entries().unwrap(), 1);
        // Nothing dirty any more.
        assert!(s.flush_cache().unwrap().is_empty());
        assert_eq!(log.records().len(), 1);

        // The next flush reports the engine's value as the old one.
        s.put(b"k", Some(b"v10"), 200).unwrap();
        s.put(b"k", Some(b"v11"), 201).unwrap();
        assert_eq!(
            s.flush_cache().unwrap(),
            vec![entry("k", Some("v11"), Some("v9"), 201)]
        );
        assert_eq!(log.records().len(), 2);
    }

    #[test]
    fn flush_cache_goes_least_recently_written_first() {
        let (mut s, log) = stack(Some(CacheBudget::new(1 << 20)));
        s.put(b"b", Some(b"1"), 1).unwrap();
        s.put(b"a", Some(b"1"), 2).unwrap();
        s.put(b"c", Some(b"1"), 3).unwrap();
        s.put(b"b", Some(b"2"), 4).unwrap();
        let keys: Vec<_> = s
            .flush_cache()
            .unwrap()
            .into_iter()
            .map(|e| e.key)
            .collect();
        assert_eq!(keys, vec![b("a"), b("c"), b("b")]);
        let logged_keys: Vec<_> = log.records().into_iter().map(|r| r.1).collect();
        assert_eq!(logged_keys, keys);
    }

    #[test]
    fn cached_tombstones() {
        let (mut s, log) = stack(Some(CacheBudget::new(1 << 20)));
        s.put(b"k", Some(b"v"), 1).unwrap();
        s.flush_cache().unwrap();

        assert_eq!(s.delete(b"k", 2).unwrap(), (Some(b("v")), vec![]));
        // The cached delete hides the engine's value.
        assert_eq!(s.get(b"k").unwrap(), None);
        assert_eq!(s.all().unwrap(), vec![]);
        assert_eq!(s.put_if_absent(b"k", b"w", 3).unwrap(), (None, vec![]));
        s.delete(b"k", 4).unwrap();

        assert_eq!(
            s.flush_cache().unwrap(),
            vec![entry("k", None, Some("v"), 4)]
        );
        assert_eq!(
            log.records(),
            vec![
                logged("store", "k", Some("v"), 1),
                logged("store", "k", None, 4)
            ]
        );
        assert_eq!(s.approximate_num_entries().unwrap(), 0);
    }

    #[test]
    fn put_then_delete_of_a_new_key_writes_nothing() {
        let (mut s, log) = stack(Some(CacheBudget::new(1 << 20)));
        s.put(b"k", Some(b"v"), 1).unwrap();
        s.delete(b"k", 2).unwrap();
        assert!(s.flush_cache().unwrap().is_empty());
        assert!(log.records().is_empty());
        assert_eq!(s.get(b"k").unwrap(), None);
    }

    #[test]
    fn eviction_under_a_tiny_budget_writes_and_returns_the_oldest() {
        let budget = room_for(2);
        let (mut s, log) = stack(Some(budget.clone()));
        assert!(s.put(b"a", Some(b"1"), 1).unwrap().is_empty());
        assert!(s.put(b"b", Some(b"1"), 2).unwrap().is_empty());
        assert_eq!(budget.used_bytes(), budget.max_bytes());

        assert_eq!(
            s.put(b"c", Some(b"1"), 3).unwrap(),
            vec![entry("a", Some("1"), None, 1)]
        );
        assert_eq!(log.records(), vec![logged("store", "a", Some("1"), 1)]);
        assert_eq!(budget.used_bytes(), budget.max_bytes());
        // Still readable, now from the engine.
        assert_eq!(s.get(b"a").unwrap(), Some(b("1")));

        // Rewriting `b` makes `c` the oldest; an evicted entry's old value is the engine's.
        s.put(b"b", Some(b"2"), 4).unwrap();
        assert_eq!(
            s.put(b"a", Some(b"2"), 5).unwrap(),
            vec![entry("c", Some("1"), None, 3)]
        );
        assert_eq!(
            s.put(b"d", Some(b"1"), 6).unwrap(),
            vec![entry("b", Some("2"), None, 4)]
        );
        assert_eq!(
            s.put(b"e", Some(b"1"), 7).unwrap(),
            vec![entry("a", Some("2"), Some("1"), 5)]
        );
        assert_eq!(log.records().len(), 4);
    }

    #[test]
    fn evicting_clean_entries_writes_nothing() {
        let budget = room_for(2);
        let (mut s, log) = stack(Some(budget));
        s.put(b"a", Some(b"1"), 1).unwrap();
        s.put(b"b", Some(b"1"), 2).unwrap();
        s.flush_cache().unwrap();
        assert_eq!(log.records().len(), 2);
        assert!(s.put(b"c", Some(b"1"), 3).unwrap().is_empty());
        assert_eq!(log.records().len(), 2);
        assert_eq!(s.get(b"a").unwrap(), Some(b("1")));
    }

    #[test]
    fn budget_is_shared_between_stacks() {
        let budget = room_for(3);
        let (mut first, first_log) = stack(Some(budget.clone()));
        let (mut second, second_log) = stack(Some(budget.clone()));
        first.put(b"a", Some(b"1"), 1).unwrap();
        first.put(b"b", Some(b"1"), 2).unwrap();
        second.put(b"x", Some(b"1"), 3).unwrap();
        assert_eq!(budget.used_bytes(), budget.max_bytes());

        // Over budget: the writing store evicts its own entries, not the other store's.
        assert_eq!(
            second.put(b"y", Some(b"1"), 4).unwrap(),
            vec![entry("x", Some("1"), None, 3)]
        );
        assert!(first_log.records().is_empty());
        assert_eq!(second_log.records().len(), 1);
        assert_eq!(
            first.put(b"c", Some(b"1"), 5).unwrap(),
            vec![entry("a", Some("1"), None, 1)]
        );
        assert_eq!(budget.used_bytes(), budget.max_bytes());

        // Closing one store gives its share back; dropping the other does too.
        first.close().unwrap();
        assert_eq!(budget.used_bytes(), 2 + CACHE_ENTRY_OVERHEAD);
        drop(second);
        assert_eq!(budget.used_bytes(), 0);
    }

    #[test]
    fn zero_budget_writes_through() {
        let budget = CacheBudget::new(0);
        let (mut s, log) = stack(Some(budget.clone()));
        assert_eq!(
            s.put(b"a", Some(b"1"), 1).unwrap(),
            vec![entry("a", Some("1"), None, 1)]
        );
        assert_eq!(
            s.put(b"a", Some(b"2"), 2).unwrap(),
            vec![entry("a", Some("2"), Some("1"), 2)]
        );
        assert_eq!(
            s.delete(b"a", 3).unwrap(),
            (Some(b("2")), vec![entry("a", None, Some("2"), 3)])
        );
        assert_eq!(log.records().len(), 3);
        assert_eq!(budget.used_bytes(), 0);
        assert!(s.flush_cache().unwrap().is_empty());
    }

    #[test]
    fn range_merges_cache_over_engine() {
        let (mut s, _) = stack(Some(CacheBudget::new(1 << 20)));
        s.restore_batch(&[
            (b("a"), Some(b("A"))),
            (b("b"), Some(b("B"))),
            (b("c"), Some(b("C"))),
            (b("d"), Some(b("D"))),
        ])
        .unwrap();
        s.put(b"b", Some(b"B2"), 0).unwrap();
        s.delete(b"c", 0).unwrap();
        s.put(b"e", Some(b"E"), 0).unwrap();
        s.put(b"0", Some(b"zero"), 0).unwrap();
        s.delete(b"zz", 0).unwrap();

        let kv = |k: &str, v: &str| (b(k), b(v));
        assert_eq!(
            s.all().unwrap(),
            vec![
                kv("0", "zero"),
                kv("a", "A"),
                kv("b", "B2"),
                kv("d", "D"),
                kv("e", "E")
            ]
        );
        assert_eq!(
            s.range(Some(b"b"), Some(b"d")).unwrap(),
            vec![kv("b", "B2"), kv("d", "D")]
        );
        assert_eq!(s.range(Some(b"c"), Some(b"c")).unwrap(), vec![]);
        assert_eq!(
            s.range(None, Some(b"a")).unwrap(),
            vec![kv("0", "zero"), kv("a", "A")]
        );
        assert_eq!(
            s.range(Some(b"d"), None).unwrap(),
            vec![kv("d", "D"), kv("e", "E")]
        );
        assert_eq!(s.range(Some(b"e"), Some(b"a")).unwrap(), vec![]);
    }

    #[test]
    fn restore_bypasses_cache_and_changelog() {
        let (mut s, log) = stack(Some(CacheBudget::new(1 << 20)));
        s.put(b"k", Some(b"cached"), 1).unwrap();
        s.flush_cache().unwrap();
        s.restore_batch(&[(b("k"), Some(b("restored"))), (b("j"), Some(b("1")))])
            .unwrap();
        assert_eq!(s.get(b"k").unwrap(), Some(b("restored")));
        s.restore_batch(&[(b("j"), None)]).unwrap();
        assert_eq!(s.get(b"j").unwrap(), None);
        assert_eq!(log.records().len(), 1);
        assert!(s.flush_cache().unwrap().is_empty());
    }

    #[test]
    fn drop_range_writes_out_dirty_cached_entries_before_dropping_them() {
        let (mut store, log) = stack(Some(CacheBudget::new(1 << 20)));
        store.put(b"a1", Some(b"old"), 1).unwrap();
        store.flush_cache().unwrap();
        store.put(b"a1", Some(b"new"), 2).unwrap();
        store.put(b"a2", Some(b"x"), 3).unwrap();
        store.put(b"b1", Some(b"kept"), 4).unwrap();
        let flushed = store.drop_range(b"a", b"b").unwrap();
        assert_eq!(
            flushed,
            vec![
                entry("a1", Some("new"), Some("old"), 2),
                entry("a2", Some("x"), None, 3)
            ]
        );
        assert_eq!(store.get(b"a1").unwrap(), None);
        assert_eq!(store.get(b"a2").unwrap(), None);
        assert_eq!(store.get(b"b1").unwrap(), Some(b"kept".to_vec()));
        // The last updates were logged before the range went.
        assert!(log
            .records()
            .contains(&logged("store", "a1", Some("new"), 2)));
    }

    #[test]
    fn drop_range_forwards_in_write_order_like_a_flush() {
        let (mut store, _) = stack(Some(CacheBudget::new(1 << 20)));
        store.put(b"a2", Some(b"x"), 1).unwrap();
        store.put(b"a1", Some(b"y"), 2).unwrap();
        store.put(b"a3", Some(b"z"), 3).unwrap();
        store.put(b"a2", Some(b"w"), 4).unwrap();
        let keys: Vec<_> = store
            .drop_range(b"a", b"b")
            .unwrap()
            .into_iter()
            .map(|e| e.key)
            .collect();
        assert_eq!(keys, vec![b("a1"), b("a3"), b("a2")]);
    }

    #[test]
    fn close_releases_budget_without_flushing() {
        let budget = CacheBudget::new(1 << 20);
        let (mut s, log) = stack(Some(budget.clone()));
        s.put(b"k", Some(b"v"), 1).unwrap();
        assert!(budget.used_bytes() > 0);
        s.close().unwrap();
        assert_eq!(budget.used_bytes(), 0);
        assert!(log.records().is_empty());
        assert!(matches!(s.get(b"k"), Err(crate::StoreError::Closed { .. })));
    }

    #[test]
    fn cached_rocksdb_stack_persists_after_flush() {
        let dir = tempfile::tempdir().unwrap();
        let config = RocksDbConfig {
            block_cache_bytes: 1 << 20,
            ..RocksDbConfig::default()
        };
        let recorder = Recorder::default();
        let engine = RocksDbEngine::open("persisted", dir.path(), &config).unwrap();
        let mut s = KeyValueStoreStack::new(Box::new(engine))
            .with_changelog(Box::new(recorder.clone()))
            .with_cache(CacheBudget::new(1 << 20));
        assert!(s.persistent());
        s.put(b"a", Some(b"1"), 1).unwrap();
        s.put(b"a", Some(b"2"), 2).unwrap();
        s.put(b"b", Some(b"1"), 3).unwrap();
        assert_eq!(s.flush_cache().unwrap().len(), 2);
        s.flush().unwrap();
        s.close().unwrap();
        assert_eq!(
            recorder.records(),
            vec![
                logged("persisted", "a", Some("2"), 2),
                logged("persisted", "b", Some("1"), 3)
            ]
        );

        let engine = RocksDbEngine::open("persisted", dir.path(), &config).unwrap();
        let s = KeyValueStoreStack::new(Box::new(engine));
        assert_eq!(s.all().unwrap(), vec![(b("a"), b("2")), (b("b"), b("1"))]);
    }
}
