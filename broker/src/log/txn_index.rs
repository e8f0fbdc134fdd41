//! The aborted-transaction index of a segment: [`TxnIndex`] lists the transactions whose abort
//! marker is in that segment, so a `read_committed` Fetch can tell the client which records to
//! drop ([`AbortedTxn`]).
//!
//! `NNNNNNNNNNNNNNNNNNNN.txnindex`, beside the segment and named by the same base offset, has
//! Kafka's layout: fixed 34-byte big-endian entries, no header: version i16 (0), producer id
//! i64, first offset i64 (the transaction's first batch in this partition), last offset i64 (the
//! abort marker), last stable offset i64 (the LSO right after the marker). An entry is appended
//! right after its marker is; the file is fsynced with the segment when it rolls and at clean
//! shutdown. A segment without aborts has no file. At start a trailing partial entry is cut,
//! and the active segment's entries are reconciled with its batches (see `recovery`): those
//! whose marker was cut off with a torn tail go, those whose write a crash prevented come back
//! from the producer-state replay.

use crate::error::{Error, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Bytes per entry.
const ENTRY_LEN: usize = 34;
const ENTRY_VERSION: i16 = 0;

/// One aborted transaction of a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AbortedTxn {
    pub(crate) producer_id: i64,
    /// Offset of the transaction's first batch in this partition.
    pub(crate) first_offset: i64,
    /// Offset of the abort marker.
    pub(crate) last_offset: i64,
    /// The partition's last stable offset once the marker was written.
    pub(crate) last_stable_offset: i64,
}

impl AbortedTxn {
    fn encode(&self) -> [u8; ENTRY_LEN] {
        let mut out = [0u8; ENTRY_LEN];
        out[0..2].copy_from_slice(&ENTRY_VERSION.to_be_bytes());
        out[2..10].copy_from_slice(&self.producer_id.to_be_bytes());
        out[10..18].copy_from_slice(&self.first_offset.to_be_bytes());
        out[18..26].copy_from_slice(&self.last_offset.to_be_bytes());
        out[26..34].copy_from_slice(&self.last_stable_offset.to_be_bytes());
        out
    }

    fn decode(b: &[u8]) -> Option<AbortedTxn> {
        let i64_at = |at: usize| -> Option<i64> {
            Some(i64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
        };
        if b.get(0..2)? != ENTRY_VERSION.to_be_bytes() {
            return None;
        }
        Some(AbortedTxn {
            producer_id: i64_at(2)?,
            first_offset: i64_at(10)?,
            last_offset: i64_at(18)?,
            last_stable_offset: i64_at(26)?,
        })
    }
}

/// Path of a segment's aborted-transaction index.
pub(crate) fn txn_index_path(dir: &Path, base_offset: i64) -> PathBuf {
    dir.join(format!("{base_offset:020}.txnindex"))
}

/// The aborted transactions whose markers are in one segment, in marker order.
#[derive(Debug)]
pub(crate) struct TxnIndex {
    path: PathBuf,
    entries: Vec<AbortedTxn>,
}

impl TxnIndex {
    /// An empty index for a new segment; a stale file of the same name is removed.
    pub(crate) fn create(dir: &Path, base_offset: i64) -> Result<TxnIndex> {
        let path = txn_index_path(dir, base_offset);
        remove_file_if_exists(&path)?;
        Ok(TxnIndex {
            path,
            entries: Vec::new(),
        })
    }

    /// Loads a segment's index: its whole, well-formed entries in increasing marker order; the
    /// file is cut back to them if anything follows (a torn append, damage).
    pub(crate) fn load(dir: &Path, base_offset: i64) -> Result<TxnIndex> {
        let path = txn_index_path(dir, base_offset);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(Error::storage(&path, e)),
        };
        let mut entries: Vec<AbortedTxn> = Vec::with_capacity(bytes.len() / ENTRY_LEN);
        for chunk in bytes.chunks_exact(ENTRY_LEN) {
            match AbortedTxn::decode(chunk) {
                Some(e)
                    if e.first_offset <= e.last_offset
                        && entries.last().is_none_or(|l| l.last_offset < e.last_offset) =>
                {
                    entries.push(e)
                }
                _ => break,
            }
        }
        let index = TxnIndex { path, entries };
        if index.entries.len() * ENTRY_LEN != bytes.len() {
            tracing::warn!(file = %index.path.display(), kept = index.entries.len(), "cutting a damaged aborted-transaction index");
            index.rewrite()?;
        }
        Ok(index)
    }

    /// Adds an aborted transaction (its marker was just written to the segment).
    pub(crate) fn append(&mut self, entry: AbortedTxn) -> Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| Error::storage(&self.path, e))?;
        f.write_all(&entry.encode())
            .map_err(|e| Error::storage(&self.path, e))?;
        self.entries.push(entry);
        Ok(())
    }

    /// Whether the abort marker at `last_offset` has its entry.
    pub(crate) fn contains(&self, last_offset: i64) -> bool {
        self.entries
            .binary_search_by_key(&last_offset, |e| e.last_offset)
            .is_ok()
    }

    /// Drops entries whose marker is at or after `end` (cut off with a torn tail).
    pub(crate) fn truncate_from(&mut self, end: i64) -> Result<()> {
        let keep = self.entries.partition_point(|e| e.last_offset < end);
        if keep < self.entries.len() {
            self.entries.truncate(keep);
            self.rewrite()?;
        }
        Ok(())
    }

    /// Keeps only the entries for which `keep` is true (compaction removed the others' markers).
    pub(crate) fn retain(&mut self, keep: impl Fn(&AbortedTxn) -> bool) -> Result<()> {
        let before = self.entries.len();
        self.entries.retain(keep);
        if self.entries.len() == before {
            return Ok(());
        }
        self.rewrite()
    }

    /// The entries, oldest marker first.
    pub(crate) fn entries(&self) -> &[AbortedTxn] {
        &self.entries
    }

    /// Forces the file to disk (nothing to do without one).
    pub(crate) fn sync(&self) -> Result<()> {
        if self.entries.is_empty() {
            return Ok(());
        }
        let f = std::fs::File::open(&self.path).map_err(|e| Error::storage(&self.path, e))?;
        f.sync_all().map_err(|e| Error::storage(&self.path, e))
    }

    fn rewrite(&self) -> Result<()> {
        if self.entries.is_empty() {
            return remove_file_if_exists(&self.path);
        }
        let bytes: Vec<u8> = self.entries.iter().flat_map(|e| e.encode()).collect();
        crate::persist::write_atomically(&self.path, &bytes)
    }
}

/// Deletes a segment's aborted-transaction index, if it has one.
pub(crate) fn remove_txn_index(dir: &Path, base_offset: i64) -> Result<()> {
    remove_file_if_exists(&txn_index_path(dir, base_offset))
}

fn remove_file_if_exists(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::storage(path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(pid: i64, first: i64, last: i64) -> AbortedTxn {
        AbortedTxn {
            producer_id: pid,
            first_offset: first,
            last_offset: last,
            last_stable_offset: last + 1,
        }
    }

    #[test]
    fn entries_round_trip_and_a_torn_tail_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let mut index = TxnIndex::create(dir.path(), 100).unwrap();
        assert!(
            !txn_index_path(dir.path(), 100).exists(),
            "no aborts, no file"
        );
        index.append(entry(7, 100, 105)).unwrap();
        index.append(entry(8, 101, 110)).unwrap();
        let path = txn_index_path(dir.path(), 100);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 68);
        let loaded = TxnIndex::load(dir.path(), 100).unwrap();
        assert_eq!(loaded.entries(), index.entries());
        assert!(loaded.contains(110) && !loaded.contains(101));
        // A torn third entry is cut away on load.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend_from_slice(&entry(9, 111, 120).encode()[..20]);
        std::fs::write(&path, &bytes).unwrap();
        let mut loaded = TxnIndex::load(dir.path(), 100).unwrap();
        assert_eq!(loaded.entries().len(), 2);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 68);
        loaded.truncate_from(106).unwrap();
        assert_eq!(loaded.entries(), &[entry(7, 100, 105)]);
        assert_eq!(
            TxnIndex::load(dir.path(), 100).unwrap().entries(),
            &[entry(7, 100, 105)]
        );
        loaded.truncate_from(0).unwrap();
        assert!(!path.exists());
    }
}
