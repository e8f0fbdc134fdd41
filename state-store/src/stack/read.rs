//! Reads of a [`KeyValueStoreStack`]: the cache over the engine, and the memo of missing keys.

use std::cmp::Ordering;
use std::ops::Bound;

use super::KeyValueStoreStack;
use crate::{KeyValue, Result};

/// One page of a [`KeyValueStoreStack::scan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanPage {
    /// Entries of the merged view (cache over engine), in the scan's direction.
    pub entries: Vec<KeyValue>,
    /// The last key this page covered when more may follow: the next page starts just past
    /// it (an exclusive lower bound going forward, an exclusive upper one in reverse). `None`
    /// when the range is exhausted.
    pub resume_after: Option<Vec<u8>>,
}

impl KeyValueStoreStack {
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
    pub(super) fn take_missing(&self, key: &[u8]) -> bool {
        let mut missing = self.missing.borrow_mut();
        let matched = !missing.is_empty() && missing.as_slice() == key;
        if matched {
            missing.clear();
        }
        matched
    }

    /// Merged view of cache and engine, in key order, inclusive bounds.
    ///
    /// A cached value replaces the engine's for its key and a cached delete hides it.
    pub fn range(&self, from: Option<&[u8]>, to: Option<&[u8]>) -> Result<Vec<KeyValue>> {
        fn bound(b: Option<&[u8]>) -> Bound<&[u8]> {
            b.map_or(Bound::Unbounded, Bound::Included)
        }
        // One page as large as the whole range.
        Ok(self
            .scan(bound(from), bound(to), false, usize::MAX)?
            .entries)
    }

    /// One page of the merged view within `(from, to)`: at most about `limit` entries from
    /// each of the cache and the engine, in key order or, with `reverse`, in reverse. A scan
    /// pages with [`ScanPage::resume_after`], so that no page holds the whole store and the
    /// caller may let go of the store between pages.
    pub fn scan(
        &self,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
        reverse: bool,
        limit: usize,
    ) -> Result<ScanPage> {
        let limit = limit.max(1);
        let stored = self.engine.scan(from, to, reverse, limit)?;
        // How far each source has been read: everything up to the nearer of the two edges is
        // known from both, so only that much of the merge is certain.
        let mut edge = (stored.len() == limit).then(|| stored[stored.len() - 1].0.clone());
        let mut cached: Vec<(&Vec<u8>, &Option<Vec<u8>>)> = Vec::new();
        if let Some(cache) = &self.cache {
            let entries = cache.scan(from, to).map(|(k, e)| (k, &e.value));
            cached = if reverse {
                entries.rev().take(limit).collect()
            } else {
                entries.take(limit).collect()
            };
            if cached.len() == limit {
                let last = cached[cached.len() - 1].0;
                let nearer = match &edge {
                    None => true,
                    Some(e) => (last < e) != reverse,
                };
                if nearer {
                    edge = Some(last.clone());
                }
            }
        }
        // Whether `key` lies at or before the edge, in the scan's direction.
        let within = |key: &[u8]| match &edge {
            None => true,
            Some(e) => {
                if reverse {
                    key >= e.as_slice()
                } else {
                    key <= e.as_slice()
                }
            }
        };
        let before = |a: &[u8], b: &[u8]| {
            if reverse {
                a.cmp(b).reverse()
            } else {
                a.cmp(b)
            }
        };
        let mut cached = cached.into_iter().filter(|(k, _)| within(k)).peekable();
        let mut stored = stored.into_iter().filter(|(k, _)| within(k)).peekable();
        let mut entries = Vec::new();
        loop {
            let take_cached = match (cached.peek(), stored.peek()) {
                (None, None) => break,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (Some((ck, _)), Some((sk, _))) => match before(ck, sk) {
                    Ordering::Less => true,
                    Ordering::Greater => false,
                    Ordering::Equal => {
                        // The cache holds the newer write of this key.
                        stored.next();
                        true
                    }
                },
            };
            if take_cached {
                let (key, value) = cached.next().expect("peeked");
                if let Some(value) = value {
                    entries.push((key.clone(), value.clone()));
                }
            } else {
                entries.push(stored.next().expect("peeked"));
            }
        }
        Ok(ScanPage {
            entries,
            resume_after: edge,
        })
    }

    /// Every entry of the merged view, in key order.
    pub fn all(&self) -> Result<Vec<KeyValue>> {
        self.range(None, None)
    }

    /// The engine's estimate; entries still only in the cache are not counted.
    pub fn approximate_num_entries(&self) -> Result<u64> {
        self.engine.approximate_num_entries()
    }

    /// The engine's statistics (RocksDB's memory, compaction and block cache properties).
    pub fn engine_statistics(&self) -> Result<Vec<(&'static str, u64)>> {
        self.engine.statistics()
    }
}
