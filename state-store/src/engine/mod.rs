//! The byte-level [`KeyValueEngine`] trait and its two implementations, [`InMemoryEngine`] and
//! [`RocksDbEngine`].
//!
//! Both pass one suite of contract tests (`contract_tests`); a new engine joins it with one line
//! there, so engines cannot drift apart on what the trait promises.

mod memory;
mod rocks;
mod txn;

#[cfg(test)]
mod contract_tests;

pub use memory::InMemoryEngine;
pub use rocks::{rocksdb_dir, RocksDbConfig, RocksDbEngine};
pub use txn::TransactionalEngine;

use std::collections::HashMap;
use std::ops::Bound;

use crate::{KeyValue, Result};

/// Changelog offsets a store's contents reflect: (topic, partition) -> the next offset to read.
pub type ChangelogOffsets = HashMap<(String, i32), i64>;

/// Whether `(from, to)` holds no key: an inverted range, or a single key excluded at either end.
/// (`BTreeMap::range` panics on some of these; every scan treats them as empty.)
pub(crate) fn is_empty_range(from: Bound<&[u8]>, to: Bound<&[u8]>) -> bool {
    match (from, to) {
        (Bound::Included(f), Bound::Included(t)) => f > t,
        (Bound::Included(f) | Bound::Excluded(f), Bound::Included(t) | Bound::Excluded(t)) => {
            f >= t
        }
        _ => false,
    }
}

/// The smallest key greater than `key`: `key` followed by a zero byte.
pub(crate) fn successor(key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(key.len() + 1);
    k.extend_from_slice(key);
    k.push(0);
    k
}

/// A byte-level key-value engine: RocksDB or memory. Keys are ordered lexicographically by bytes.
///
/// This is the innermost layer of a store; [`KeyValueStoreStack`](crate::KeyValueStoreStack) adds
/// caching and changelogging on top. Engines know nothing of changelogs: a write here is never
/// logged. After [`close`](Self::close) every other method fails with
/// [`StoreError::Closed`](crate::StoreError::Closed).
pub trait KeyValueEngine: Send {
    /// The store's name (also the name of its changelog topic's store part).
    fn name(&self) -> &str;

    /// Whether the data survives a restart (RocksDB) or not (memory).
    fn persistent(&self) -> bool;

    /// The value stored under `key`, if any.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>>;

    /// Stores `value` under `key`, replacing any previous value.
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()>;

    /// Removes `key`; removing an absent key is not an error.
    fn delete(&mut self, key: &[u8]) -> Result<()>;

    /// Entries with from <= key <= to (both inclusive, either bound may be open), in key order.
    ///
    /// `from > to` yields no entries.
    fn range(&self, from: Option<&[u8]>, to: Option<&[u8]>) -> Result<Vec<KeyValue>>;

    /// Every entry, in key order; the same as `range(None, None)`.
    fn all(&self) -> Result<Vec<KeyValue>> {
        self.range(None, None)
    }

    /// At most `limit` entries within `(from, to)`, in key order, or in reverse key order with
    /// `reverse`: one page of a scan. A caller pages through a store larger than memory by
    /// asking again from just past the last key it got.
    fn scan(
        &self,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
        reverse: bool,
        limit: usize,
    ) -> Result<Vec<KeyValue>>;

    /// The number of entries, exact for memory and estimated by RocksDB.
    fn approximate_num_entries(&self) -> Result<u64>;

    /// Statistics worth watching (RocksDB's memory, compaction and block cache properties),
    /// named as RocksDB names them without its `rocksdb.` prefix; none for an engine that has
    /// none.
    fn statistics(&self) -> Result<Vec<(&'static str, u64)>> {
        Ok(Vec::new())
    }

    /// Apply a batch of restored changelog records atomically-ish (value None = delete). Used by
    /// restoration; bypasses logging and caching.
    ///
    /// The cache layer also uses it to write a flush in one go. Later records of the same key win.
    fn write_batch(&mut self, batch: &[(Vec<u8>, Option<Vec<u8>>)]) -> Result<()>;

    /// Writes restored changelog records (value None = delete). The same as
    /// [`write_batch`](Self::write_batch) except in a [`TransactionalEngine`], where restored
    /// records are committed data and go past its uncommitted writes straight to disk.
    fn restore_batch(&mut self, batch: &[(Vec<u8>, Option<Vec<u8>>)]) -> Result<()> {
        self.write_batch(batch)
    }

    /// Removes every entry with `from <= key < to` (`ranges`, first), then writes `batch`, and
    /// records `offsets` as the changelog offsets the store now reflects, all in one write that
    /// a crash of the process leaves whole or absent (RocksDB: one batch through its
    /// write-ahead log). [`stored_offsets`](Self::stored_offsets) then returns them.
    fn write_atomically(
        &mut self,
        ranges: &[(Vec<u8>, Vec<u8>)],
        batch: &[(Vec<u8>, Option<Vec<u8>>)],
        offsets: &ChangelogOffsets,
    ) -> Result<()>;

    /// The changelog offsets recorded by the last [`write_atomically`](Self::write_atomically)
    /// that named each partition (kept across restarts by persistent engines).
    fn stored_offsets(&self) -> Result<ChangelogOffsets>;

    /// Makes the writes since the last commit part of the store for good, with `offsets`
    /// recorded alongside them (see [`write_atomically`](Self::write_atomically)). Only a
    /// [`TransactionalEngine`] holds writes back; any other engine just records the offsets.
    fn commit(&mut self, offsets: &ChangelogOffsets) -> Result<()> {
        self.write_atomically(&[], &[], offsets)
    }

    /// Drops the writes since the last commit (a [`TransactionalEngine`]'s; no other engine
    /// holds any back).
    fn abort(&mut self) -> Result<()> {
        Ok(())
    }

    /// The bytes of writes held back until the next commit.
    fn uncommitted_bytes(&self) -> usize {
        0
    }

    /// Removes every entry with `from <= key < to` without logging it: how segmented stores drop
    /// an expired time segment in one cheap operation (RocksDB writes one range tombstone).
    fn delete_range(&mut self, from: &[u8], to: &[u8]) -> Result<()>;

    /// Make everything written so far durable (RocksDB: flush memtables; memory: no-op).
    fn flush(&mut self) -> Result<()>;

    /// Releases the engine's resources; persistent engines flush first. Closing twice is a no-op.
    fn close(&mut self) -> Result<()>;
}
