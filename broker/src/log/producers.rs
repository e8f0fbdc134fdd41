//! Idempotent-producer state of one partition: [`ProducerState`] decides whether a batch is new,
//! a retry or out of order, and is saved in snapshot files ([`write_snapshot`],
//! [`load_snapshot`]) so that it outlives the batches it was learnt from: retention,
//! DeleteRecords and compaction delete batches, not what the broker knows about their producers.
//!
//! `NNNNNNNNNNNNNNNNNNNN.snapshot`, named by the log offset it was taken at, holds the state
//! built from every batch below that offset. It is written at each segment roll and at clean
//! shutdown, replaced atomically, and the two newest are kept. On open the newest snapshot that
//! reads back whole is loaded and only the batches from its offset on are replayed from the log.
//!
//! It also knows each producer's open transaction in this partition (the offset of its first
//! batch), which is what the last stable offset is made of.
//!
//! Format, big-endian: version u16 (2) | crc32c u32 of everything after it | offset i64 |
//! producer count u32 | per producer: producer id i64, epoch i16, open transaction's first
//! offset i64 (-1 for none), batch count u8, then per remembered batch, oldest first: first
//! sequence i32, last sequence i32, base offset i64. Version 1 (written before transactions)
//! lacks the first offset and is still read.
//! A snapshot with the wrong checksum or length (torn by a crash, damaged on disk) is ignored and
//! deleted: the state then comes from an older snapshot or from the whole log.

use super::batch::BatchHeader;
use super::control::Marker;
use crate::error::{Error, Result};
use kafka_protocol::error::ResponseError;
use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};

/// How many recent batches per producer are remembered to answer duplicates, as in Kafka.
const PRODUCER_DEDUP_WINDOW: usize = 5;

const SNAPSHOT_VERSION: u16 = 2;
/// The format before transactions: no open-transaction offset.
const SNAPSHOT_VERSION_NO_TXN: u16 = 1;
/// Version and checksum.
const SNAPSHOT_PREAMBLE: usize = 6;
/// How many snapshot files a partition keeps: the newest, and one to fall back on.
const SNAPSHOTS_KEPT: usize = 2;

/// What an idempotent append should do, decided before anything is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SequenceCheck {
    /// Write the batch.
    Append,
    /// A retry of a batch already written at this base offset: answer with it, write nothing.
    Duplicate(i64),
}

/// Sequence bookkeeping for one idempotent producer on one partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct ProducerEntry {
    epoch: i16,
    /// The last few batches, newest last: (first sequence, last sequence, base offset).
    recent: VecDeque<(i32, i32, i64)>,
    /// Offset of the first batch of the producer's open transaction here, until its marker.
    txn_first_offset: Option<i64>,
}

/// A transaction a marker just ended in this partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EndedTxn {
    pub(crate) producer_id: i64,
    pub(crate) first_offset: i64,
    pub(crate) marker: Marker,
}

/// The idempotent producers of one partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ProducerState {
    producers: HashMap<i64, ProducerEntry>,
}

impl ProducerState {
    /// Decides whether an idempotent producer's batch is new, a retry, or out of order.
    pub(crate) fn check(&self, h: &BatchHeader) -> Result<SequenceCheck, ResponseError> {
        if h.producer_id < 0 || h.base_sequence < 0 {
            return Ok(SequenceCheck::Append);
        }
        let Some(entry) = self.producers.get(&h.producer_id) else {
            return if h.base_sequence == 0 {
                Ok(SequenceCheck::Append)
            } else {
                // The producer's state is gone (or never existed here): let the client reset.
                Err(ResponseError::UnknownProducerId)
            };
        };
        if h.producer_epoch < entry.epoch {
            return Err(ResponseError::InvalidProducerEpoch);
        }
        if h.producer_epoch > entry.epoch {
            return if h.base_sequence == 0 {
                Ok(SequenceCheck::Append)
            } else {
                Err(ResponseError::OutOfOrderSequenceNumber)
            };
        }
        if let Some(&(_, _, base)) = entry
            .recent
            .iter()
            .find(|(first, last, _)| *first == h.base_sequence && *last == h.last_sequence())
        {
            return Ok(SequenceCheck::Duplicate(base));
        }
        let last_seq = entry.recent.back().map_or(-1, |(_, last, _)| *last);
        let expected = if last_seq == i32::MAX {
            0
        } else {
            last_seq + 1
        };
        if h.base_sequence == expected {
            Ok(SequenceCheck::Append)
        } else {
            Err(ResponseError::OutOfOrderSequenceNumber)
        }
    }

    /// Whether no idempotent producer wrote here.
    pub(crate) fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// The first offset of the oldest open transaction: the last stable offset, if any
    /// transaction is open.
    pub(crate) fn first_unstable_offset(&self) -> Option<i64> {
        self.producers
            .values()
            .filter_map(|e| e.txn_first_offset)
            .min()
    }

    /// Whether the producer has an open transaction in this partition.
    #[cfg(test)]
    fn has_open_txn(&self, producer_id: i64) -> bool {
        self.producers
            .get(&producer_id)
            .is_some_and(|e| e.txn_first_offset.is_some())
    }

    /// Learns from a batch written to the log (appended now, or replayed at open); `marker` is
    /// what a control batch holds. A marker ends the producer's open transaction, which is
    /// returned, and carries the epoch the coordinator fenced it with: older epochs are refused
    /// from then on and the new one starts its sequences at 0.
    pub(crate) fn record(&mut self, h: &BatchHeader, marker: Option<Marker>) -> Option<EndedTxn> {
        if h.producer_id < 0 {
            return None;
        }
        if h.is_control() {
            let marker = marker?;
            let entry = self.producers.entry(h.producer_id).or_default();
            if h.producer_epoch > entry.epoch {
                entry.epoch = h.producer_epoch;
                entry.recent.clear();
            }
            let first_offset = entry.txn_first_offset.take()?;
            return Some(EndedTxn {
                producer_id: h.producer_id,
                first_offset,
                marker,
            });
        }
        if h.base_sequence < 0 {
            return None;
        }
        let entry = self.producers.entry(h.producer_id).or_default();
        if h.producer_epoch != entry.epoch {
            entry.epoch = h.producer_epoch;
            entry.recent.clear();
        }
        if h.is_transactional() && entry.txn_first_offset.is_none() {
            entry.txn_first_offset = Some(h.base_offset);
        }
        entry
            .recent
            .push_back((h.base_sequence, h.last_sequence(), h.base_offset));
        if entry.recent.len() > PRODUCER_DEDUP_WINDOW {
            entry.recent.pop_front();
        }
        None
    }

    fn encode(&self, offset: i64) -> Vec<u8> {
        let mut out = Vec::with_capacity(18 + self.producers.len() * 64);
        out.extend_from_slice(&SNAPSHOT_VERSION.to_be_bytes());
        out.extend_from_slice(&[0; 4]); // checksum, filled in below
        out.extend_from_slice(&offset.to_be_bytes());
        out.extend_from_slice(&(self.producers.len() as u32).to_be_bytes());
        let mut ids: Vec<&i64> = self.producers.keys().collect();
        ids.sort_unstable();
        for id in ids {
            let entry = &self.producers[id];
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(&entry.epoch.to_be_bytes());
            out.extend_from_slice(&entry.txn_first_offset.unwrap_or(-1).to_be_bytes());
            out.push(entry.recent.len() as u8);
            for (first, last, base) in &entry.recent {
                out.extend_from_slice(&first.to_be_bytes());
                out.extend_from_slice(&last.to_be_bytes());
                out.extend_from_slice(&base.to_be_bytes());
            }
        }
        let crc = crc32c::crc32c(&out[SNAPSHOT_PREAMBLE..]);
        out[2..SNAPSHOT_PREAMBLE].copy_from_slice(&crc.to_be_bytes());
        out
    }

    /// The snapshot's offset and state; `None` unless the bytes are exactly one whole snapshot.
    fn decode(bytes: &[u8]) -> Option<(i64, ProducerState)> {
        let mut r = Reader(bytes);
        let version = r.u16()?;
        if version != SNAPSHOT_VERSION && version != SNAPSHOT_VERSION_NO_TXN {
            return None;
        }
        let crc = r.u32()?;
        if crc32c::crc32c(r.0) != crc {
            return None;
        }
        let offset = r.i64()?;
        let count = r.u32()?;
        let mut producers = HashMap::new();
        for _ in 0..count {
            let id = r.i64()?;
            let epoch = r.u16()? as i16;
            let txn_first_offset = if version == SNAPSHOT_VERSION {
                Some(r.i64()?).filter(|o| *o >= 0)
            } else {
                None
            };
            let batches = r.u8()?;
            let mut recent = VecDeque::with_capacity(usize::from(batches));
            for _ in 0..batches {
                recent.push_back((r.u32()? as i32, r.u32()? as i32, r.i64()?));
            }
            producers.insert(
                id,
                ProducerEntry {
                    epoch,
                    recent,
                    txn_first_offset,
                },
            );
        }
        r.0.is_empty()
            .then_some((offset, ProducerState { producers }))
    }
}

/// Big-endian reads from the front of a slice; `None` past its end.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take::<1>().map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take().map(u16::from_be_bytes)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take().map(u32::from_be_bytes)
    }
    fn i64(&mut self) -> Option<i64> {
        self.take().map(i64::from_be_bytes)
    }
}

fn snapshot_path(dir: &Path, offset: i64) -> PathBuf {
    dir.join(format!("{offset:020}.snapshot"))
}

/// Offsets of the snapshot files in `dir`, oldest first.
fn snapshot_offsets(dir: &Path) -> Result<Vec<i64>> {
    let mut offsets: Vec<i64> = std::fs::read_dir(dir)
        .map_err(|e| Error::storage(dir, e))?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            name.strip_suffix(".snapshot")?.parse::<i64>().ok()
        })
        .collect();
    offsets.sort_unstable();
    Ok(offsets)
}

fn remove_snapshot(dir: &Path, offset: i64) -> Result<()> {
    let path = snapshot_path(dir, offset);
    std::fs::remove_file(&path).map_err(|e| Error::storage(&path, e))
}

/// Saves `state`, the state as of log offset `offset`, and deletes all but the newest snapshots.
pub(crate) fn write_snapshot(dir: &Path, offset: i64, state: &ProducerState) -> Result<()> {
    crate::persist::write_atomically(&snapshot_path(dir, offset), &state.encode(offset))?;
    let offsets = snapshot_offsets(dir)?;
    for old in &offsets[..offsets.len().saturating_sub(SNAPSHOTS_KEPT)] {
        remove_snapshot(dir, *old)?;
    }
    Ok(())
}

/// The newest usable snapshot at or below `log_end` (the log's next offset), with its offset.
/// Snapshots beyond the end of the log (taken before a torn tail was cut off) and unreadable
/// ones are deleted.
pub(crate) fn load_snapshot(dir: &Path, log_end: i64) -> Result<Option<(i64, ProducerState)>> {
    for offset in snapshot_offsets(dir)?.into_iter().rev() {
        let path = snapshot_path(dir, offset);
        if offset > log_end {
            tracing::warn!(snapshot = %path.display(), log_end, "producer snapshot beyond the end of the log, deleting it");
            remove_snapshot(dir, offset)?;
            continue;
        }
        let bytes = std::fs::read(&path).map_err(|e| Error::storage(&path, e))?;
        match ProducerState::decode(&bytes) {
            Some((at, state)) if at == offset => return Ok(Some((offset, state))),
            _ => {
                tracing::warn!(snapshot = %path.display(), "corrupt producer snapshot, deleting it");
                remove_snapshot(dir, offset)?;
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::super::batch::tests::{make_batch, make_txn_batch};
    use super::super::control::{marker_batch, Marker};
    use super::*;

    fn header(producer: (i64, i16, i32), records: i32, base_offset: i64) -> BatchHeader {
        let mut b = make_batch(records, 1000, Some(producer));
        super::super::batch::assign_offset(&mut b, base_offset, 0);
        BatchHeader::parse(&b).unwrap()
    }

    fn state() -> ProducerState {
        let mut state = ProducerState::default();
        for i in 0..7 {
            state.record(&header((7, 2, i * 2), 2, 100 + i64::from(i) * 2), None);
        }
        state.record(&header((9, 0, 0), 3, 200), None);
        state
    }

    #[test]
    fn snapshots_round_trip_and_keep_the_newest_two() {
        let dir = tempfile::tempdir().unwrap();
        let s = state();
        assert_eq!(s.producers[&7].recent.len(), PRODUCER_DEDUP_WINDOW);
        write_snapshot(dir.path(), 10, &ProducerState::default()).unwrap();
        write_snapshot(dir.path(), 150, &s).unwrap();
        write_snapshot(dir.path(), 203, &s).unwrap();
        assert_eq!(snapshot_offsets(dir.path()).unwrap(), vec![150, 203]);
        assert_eq!(
            load_snapshot(dir.path(), 203).unwrap(),
            Some((203, s.clone()))
        );
        // A snapshot past the end of the log is not used (the log lost its tail).
        assert_eq!(load_snapshot(dir.path(), 160).unwrap(), Some((150, s)));
        assert_eq!(snapshot_offsets(dir.path()).unwrap(), vec![150]);
    }

    #[test]
    fn torn_or_damaged_snapshots_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let s = state();
        write_snapshot(dir.path(), 150, &s).unwrap();
        write_snapshot(dir.path(), 203, &s).unwrap();
        let newest = snapshot_path(dir.path(), 203);
        let bytes = std::fs::read(&newest).unwrap();
        std::fs::write(&newest, &bytes[..bytes.len() - 7]).unwrap();
        assert_eq!(
            load_snapshot(dir.path(), 203).unwrap(),
            Some((150, s.clone()))
        );
        assert!(!newest.exists());
        let older = snapshot_path(dir.path(), 150);
        let mut bytes = std::fs::read(&older).unwrap();
        bytes[30] ^= 1;
        std::fs::write(&older, &bytes).unwrap();
        assert_eq!(load_snapshot(dir.path(), 203).unwrap(), None);
        // Every truncation of a snapshot is refused.
        let whole = s.encode(5);
        for len in 0..whole.len() {
            assert!(ProducerState::decode(&whole[..len]).is_none(), "{len}");
        }
        assert_eq!(ProducerState::decode(&whole), Some((5, s)));
    }

    fn appended(mut b: Vec<u8>, base_offset: i64) -> BatchHeader {
        super::super::batch::assign_offset(&mut b, base_offset, 0);
        BatchHeader::parse(&b).unwrap()
    }

    #[test]
    fn open_transactions_make_the_stable_offset_and_markers_end_them() {
        let mut s = ProducerState::default();
        assert_eq!(s.first_unstable_offset(), None);
        s.record(&appended(make_txn_batch(2, 1000, (7, 0, 0)), 10), None);
        s.record(&appended(make_txn_batch(1, 1000, (8, 0, 0)), 12), None);
        s.record(&appended(make_txn_batch(1, 1000, (7, 0, 2)), 13), None);
        assert_eq!(s.first_unstable_offset(), Some(10));
        assert!(s.has_open_txn(7) && s.has_open_txn(8));
        // A snapshot keeps the open transactions.
        let (_, copy) = ProducerState::decode(&s.encode(14)).unwrap();
        assert_eq!(copy, s);
        // Producer 7's abort, fenced with epoch 1: it ends its transaction...
        let marker = appended(marker_batch(7, 1, Marker::Abort, 1000), 14);
        let ended = s.record(&marker, Some(Marker::Abort));
        assert_eq!(
            ended,
            Some(EndedTxn {
                producer_id: 7,
                first_offset: 10,
                marker: Marker::Abort
            })
        );
        assert_eq!(s.first_unstable_offset(), Some(12));
        // ...refuses the old epoch, and lets the new one start at sequence 0.
        let stale = appended(make_txn_batch(1, 1000, (7, 0, 3)), 15);
        assert_eq!(s.check(&stale), Err(ResponseError::InvalidProducerEpoch));
        let fresh = appended(make_txn_batch(1, 1000, (7, 1, 0)), 15);
        assert_eq!(s.check(&fresh), Ok(SequenceCheck::Append));
        // A second marker for a transaction already ended ends nothing.
        assert_eq!(s.record(&marker, Some(Marker::Abort)), None);
        let commit = appended(marker_batch(8, 0, Marker::Commit, 1000), 15);
        assert_eq!(
            s.record(&commit, Some(Marker::Commit))
                .unwrap()
                .first_offset,
            12
        );
        assert_eq!(s.first_unstable_offset(), None);
    }

    #[test]
    fn version_1_snapshots_still_load() {
        let s = state();
        let mut v1 = Vec::new();
        v1.extend_from_slice(&SNAPSHOT_VERSION_NO_TXN.to_be_bytes());
        v1.extend_from_slice(&[0; 4]);
        v1.extend_from_slice(&5i64.to_be_bytes());
        v1.extend_from_slice(&(s.producers.len() as u32).to_be_bytes());
        let mut ids: Vec<&i64> = s.producers.keys().collect();
        ids.sort_unstable();
        for id in ids {
            let e = &s.producers[id];
            v1.extend_from_slice(&id.to_be_bytes());
            v1.extend_from_slice(&e.epoch.to_be_bytes());
            v1.push(e.recent.len() as u8);
            for (first, last, base) in &e.recent {
                v1.extend_from_slice(&first.to_be_bytes());
                v1.extend_from_slice(&last.to_be_bytes());
                v1.extend_from_slice(&base.to_be_bytes());
            }
        }
        let crc = crc32c::crc32c(&v1[SNAPSHOT_PREAMBLE..]);
        v1[2..SNAPSHOT_PREAMBLE].copy_from_slice(&crc.to_be_bytes());
        assert_eq!(ProducerState::decode(&v1), Some((5, s)));
    }
}
