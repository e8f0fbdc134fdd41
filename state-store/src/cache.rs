//! The record cache: [`CacheBudget`] shared by a stream thread's caches, and the per-store LRU
//! behind [`KeyValueStoreStack::with_cache`](crate::KeyValueStoreStack::with_cache).

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Bytes counted for each cache entry on top of its key and value: the bookkeeping (the entry
/// itself, its LRU position, the tree nodes) costs memory too, and without it a cache of tiny
/// entries would look free.
pub const CACHE_ENTRY_OVERHEAD: usize = 64;

/// Memory budget shared by all caches of one stream thread (statestore.cache.max.bytes /
/// num.stream.threads).
///
/// Each cache adds its entries' sizes (key + value + [`CACHE_ENTRY_OVERHEAD`]) here; a cache that
/// finds the total above `max_bytes` after a put evicts its own least recently written entries.
#[derive(Debug)]
pub struct CacheBudget {
    max_bytes: usize,
    /// Relaxed atomics suffice: the count orders nothing else in memory, it only sizes the caches,
    /// and all caches of a budget normally run on one thread anyway.
    used_bytes: AtomicUsize,
}

impl CacheBudget {
    /// A budget of `max_bytes` for the caches that will share it; 0 makes every cache write
    /// through.
    pub fn new(max_bytes: usize) -> Arc<Self> {
        Arc::new(CacheBudget {
            max_bytes,
            used_bytes: AtomicUsize::new(0),
        })
    }

    /// The budget.
    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// Bytes currently held by all caches sharing this budget.
    pub fn used_bytes(&self) -> usize {
        self.used_bytes.load(Ordering::Relaxed)
    }

    fn add(&self, bytes: usize) {
        self.used_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    fn release(&self, bytes: usize) {
        self.used_bytes.fetch_sub(bytes, Ordering::Relaxed);
    }
}

/// A flushed or evicted cache entry, for forwarding downstream (Kafka Streams' cache flush
/// listener).
#[derive(Debug, Clone, PartialEq)]
pub struct FlushedEntry {
    /// The key written.
    pub key: Vec<u8>,
    /// The value written; `None` for a delete.
    pub new_value: Option<Vec<u8>>,
    /// The engine's value before this write.
    pub old_value: Option<Vec<u8>>,
    /// Record timestamp of the last write folded into this entry.
    pub timestamp: i64,
}

/// One cached key.
#[derive(Debug)]
pub(crate) struct CacheEntry {
    /// `None` is a cached delete (tombstone): it hides the engine's value until flushed.
    pub(crate) value: Option<Vec<u8>>,
    pub(crate) timestamp: i64,
    /// Written since the last flush, so the engine and changelog do not have it yet.
    pub(crate) dirty: bool,
    /// The engine is known to hold no value for this key: it was read as missing just before
    /// this entry was made, and the entry has not been written out since. Writing it out then
    /// needs no engine read for the old value.
    absent_below: bool,
    /// Position in `RecordCache::order`.
    seq: u64,
}

/// A write that must reach the engine and the changelog.
pub(crate) struct PendingWrite {
    pub(crate) key: Vec<u8>,
    /// `None`: a tombstone.
    pub(crate) value: Option<Vec<u8>>,
    pub(crate) timestamp: i64,
    /// The engine holds no value for the key (see `CacheEntry::absent_below`).
    pub(crate) absent_below: bool,
}

/// The cache of one store: entries by key (for gets and ordered ranges) plus their write order
/// (for eviction and flush order).
///
/// Only writes move an entry to the most-recent end: reads take `&self` so they can run while
/// ranges are open, and so "least recently used" here means least recently written, which is also
/// the order Kafka Streams flushes dirty entries in.
#[derive(Debug)]
pub(crate) struct RecordCache {
    budget: Arc<CacheBudget>,
    entries: BTreeMap<Vec<u8>, CacheEntry>,
    /// Write sequence number -> key; the first entry is the least recently written.
    order: BTreeMap<u64, Vec<u8>>,
    next_seq: u64,
    /// This cache's share of `budget.used_bytes`, given back on clear and drop.
    bytes: usize,
}

fn entry_size(key: &[u8], value: Option<&[u8]>) -> usize {
    key.len() + value.map_or(0, <[u8]>::len) + CACHE_ENTRY_OVERHEAD
}

impl RecordCache {
    pub(crate) fn new(budget: Arc<CacheBudget>) -> Self {
        RecordCache {
            budget,
            entries: BTreeMap::new(),
            order: BTreeMap::new(),
            next_seq: 0,
            bytes: 0,
        }
    }

    pub(crate) fn get(&self, key: &[u8]) -> Option<&CacheEntry> {
        self.entries.get(key)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Records a write: the entry becomes dirty and most recently written. `absent_below`: the
    /// engine is known to hold nothing for `key` (used when the key is not cached yet).
    pub(crate) fn put(
        &mut self,
        key: &[u8],
        value: Option<&[u8]>,
        timestamp: i64,
        absent_below: bool,
    ) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let size = entry_size(key, value);
        self.bytes += size;
        self.budget.add(size);
        if let Some(entry) = self.entries.get_mut(key) {
            // The hot path of an aggregation: a key written again. Update in place, reusing the
            // value's and the order entry's allocations.
            let old = entry_size(key, entry.value.as_deref());
            self.bytes -= old;
            self.budget.release(old);
            match (&mut entry.value, value) {
                (Some(v), Some(new)) => {
                    v.clear();
                    v.extend_from_slice(new);
                }
                (slot, new) => *slot = new.map(<[u8]>::to_vec),
            }
            entry.timestamp = timestamp;
            entry.dirty = true;
            let order_key = self.order.remove(&entry.seq);
            entry.seq = seq;
            self.order
                .insert(seq, order_key.unwrap_or_else(|| key.to_vec()));
            return;
        }
        self.order.insert(seq, key.to_vec());
        self.entries.insert(
            key.to_vec(),
            CacheEntry {
                value: value.map(<[u8]>::to_vec),
                timestamp,
                dirty: true,
                absent_below,
                seq,
            },
        );
    }

    pub(crate) fn remove(&mut self, key: &[u8]) {
        if let Some(old) = self.entries.remove(key) {
            self.order.remove(&old.seq);
            let size = entry_size(key, old.value.as_deref());
            self.bytes -= size;
            self.budget.release(size);
        }
    }

    /// The least recently written keys whose removal brings the shared budget back within its
    /// maximum (all keys if even that is not enough), oldest first; empty when within budget.
    pub(crate) fn eviction_victims(&self) -> Vec<Vec<u8>> {
        let max = self.budget.max_bytes();
        let mut used = self.budget.used_bytes();
        let mut victims = Vec::new();
        for key in self.order.values() {
            if used <= max {
                break;
            }
            let entry = &self.entries[key];
            used = used.saturating_sub(entry_size(key, entry.value.as_deref()));
            victims.push(key.clone());
        }
        victims
    }

    /// The dirty entries among `keys`, in the given order, as writes for the engine and changelog.
    pub(crate) fn dirty_writes<'a>(
        &self,
        keys: impl IntoIterator<Item = &'a Vec<u8>>,
    ) -> Vec<PendingWrite> {
        keys.into_iter()
            .filter_map(|key| {
                let entry = &self.entries[key];
                entry.dirty.then(|| PendingWrite {
                    key: key.clone(),
                    value: entry.value.clone(),
                    timestamp: entry.timestamp,
                    absent_below: entry.absent_below,
                })
            })
            .collect()
    }

    /// Every dirty entry, least recently written first.
    pub(crate) fn all_dirty_writes(&self) -> Vec<PendingWrite> {
        self.dirty_writes(self.order.values())
    }

    pub(crate) fn mark_clean(&mut self, keys: impl IntoIterator<Item = Vec<u8>>) {
        for key in keys {
            if let Some(entry) = self.entries.get_mut(&key) {
                entry.dirty = false;
                // The engine has the value now.
                entry.absent_below = false;
            }
        }
    }

    /// Cached entries (including tombstones) with from <= key <= to, in key order.
    pub(crate) fn range<'a>(
        &'a self,
        from: Option<&'a [u8]>,
        to: Option<&'a [u8]>,
    ) -> impl Iterator<Item = (&'a Vec<u8>, &'a CacheEntry)> + 'a {
        let inverted = matches!((from, to), (Some(f), Some(t)) if f > t);
        let start = from.map_or(Bound::Unbounded, Bound::Included);
        let end = to.map_or(Bound::Unbounded, Bound::Included);
        // BTreeMap::range panics on an inverted range; such a range is simply empty.
        let range = (!inverted).then(|| self.entries.range::<[u8], _>((start, end)));
        range.into_iter().flatten()
    }

    /// Cached entries (including tombstones) within `(from, to)`, in key order; reversible.
    pub(crate) fn scan<'a>(
        &'a self,
        from: Bound<&'a [u8]>,
        to: Bound<&'a [u8]>,
    ) -> impl DoubleEndedIterator<Item = (&'a Vec<u8>, &'a CacheEntry)> + 'a {
        let range = (!crate::engine::is_empty_range(from, to))
            .then(|| self.entries.range::<[u8], _>((from, to)));
        range.into_iter().flatten()
    }

    /// The keys with `from <= key < to`, least recently written first: the order in which
    /// writes must reach downstream processors when a range leaves the cache, as on a flush.
    pub(crate) fn keys_below_in_write_order(&self, from: &[u8], to: &[u8]) -> Vec<Vec<u8>> {
        let mut keys: Vec<(u64, &Vec<u8>)> = self
            .range(Some(from), Some(to))
            .filter(|(k, _)| k.as_slice() < to)
            .map(|(k, e)| (e.seq, k))
            .collect();
        keys.sort_unstable_by_key(|(seq, _)| *seq);
        keys.into_iter().map(|(_, k)| k.clone()).collect()
    }

    /// Drops every entry (dirty ones are lost) and gives the bytes back to the budget.
    pub(crate) fn clear(&mut self) {
        self.entries.clear();
        self.order.clear();
        self.budget.release(self.bytes);
        self.bytes = 0;
    }

    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for RecordCache {
    /// A store dropped without `close` must not keep charging the thread's shared budget.
    fn drop(&mut self) {
        self.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_charged_and_released() {
        let budget = CacheBudget::new(1000);
        let mut cache = RecordCache::new(budget.clone());
        cache.put(b"k", Some(b"vv"), 1, false);
        assert_eq!(budget.used_bytes(), 3 + CACHE_ENTRY_OVERHEAD);
        // Replacing an entry charges only the new size.
        cache.put(b"k", Some(b"v"), 2, false);
        assert_eq!(budget.used_bytes(), 2 + CACHE_ENTRY_OVERHEAD);
        cache.put(b"k", None, 3, false);
        assert_eq!(budget.used_bytes(), 1 + CACHE_ENTRY_OVERHEAD);
        assert_eq!(cache.bytes(), budget.used_bytes());
        drop(cache);
        assert_eq!(budget.used_bytes(), 0);
    }

    #[test]
    fn victims_are_least_recently_written_first() {
        let budget = CacheBudget::new(2 * (2 + CACHE_ENTRY_OVERHEAD));
        let mut cache = RecordCache::new(budget);
        cache.put(b"a", Some(b"1"), 0, false);
        cache.put(b"b", Some(b"1"), 0, false);
        assert!(cache.eviction_victims().is_empty());
        cache.put(b"c", Some(b"1"), 0, false);
        assert_eq!(cache.eviction_victims(), vec![b"a".to_vec()]);
        // Rewriting `a` makes `b` the oldest.
        cache.put(b"a", Some(b"2"), 0, false);
        assert_eq!(cache.eviction_victims(), vec![b"b".to_vec()]);
    }

    #[test]
    fn inverted_range_is_empty() {
        let mut cache = RecordCache::new(CacheBudget::new(1000));
        cache.put(b"a", Some(b"1"), 0, false);
        assert_eq!(cache.range(Some(b"b"), Some(b"a")).count(), 0);
        assert_eq!(cache.range(Some(b"a"), Some(b"a")).count(), 1);
    }
}
