//! Reads of a [`KeyValueStoreStack`]: the cache over the engine, and the memo of missing keys.

use std::cmp::Ordering;

use super::KeyValueStoreStack;
use crate::{KeyValue, Result};

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
}
