//! Log compaction of a partition: which records of the closed segments survive, and the
//! crash-safe swap of a rewritten segment. The record-level surgery is in [`super::compaction`],
//! transactions in [`super::compact_txn`].
//!
//! Compaction holds the partition's lock only to plan ([`PartitionLog::plan_compaction`]: which
//! segments, the last stable offset, the aborted transactions, a file handle of its own per
//! segment) and to swap each rewritten segment in ([`PartitionLog::install_cleaned`]); both
//! passes over the data ([`Compaction::run`]) and the writing of the new segments happen
//! without it, so appends and fetches go on meanwhile. That is safe because only the active
//! segment is ever appended to (and only past the size planned with), and a closed segment
//! only ever changes by being deleted (retention, DeleteRecords, topic deletion) or by this
//! swap: a rewrite whose segment is gone or changed by then is dropped.

use super::batch::BatchHeader;
use super::compact_txn::Transactions;
use super::files::{sync_dir, CLEANED};
use super::index::{self, SegmentIndex};
use super::segment::{open_segment_file, read_at, HeaderReader};
use super::txn_index::AbortedTxn;
use super::{compaction, control, PartitionLog};
use crate::error::{Error, Result};
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// A segment as compaction reads it: a file handle of its own (opened under the log's lock, so
/// no one else moves its cursor and a later deletion does not matter) and its size then.
struct SegmentSnapshot {
    base_offset: i64,
    path: PathBuf,
    file: File,
    size: u64,
}

impl SegmentSnapshot {
    fn headers(&self) -> HeaderReader<'_> {
        HeaderReader::new(&self.file, &self.path, 0, self.size)
    }

    fn read(&self, position: u64, len: usize) -> Result<Vec<u8>> {
        read_at(&self.file, &self.path, position, len)
    }
}

/// One compaction of a log, planned under its lock, run without it.
pub(crate) struct Compaction {
    dir: PathBuf,
    index_interval_bytes: u64,
    /// Every segment, the active one included (up to its size when planned).
    segments: Vec<SegmentSnapshot>,
    /// How many leading segments are rewritten: the closed ones wholly below `stable`.
    cleanable: usize,
    /// The last stable offset when planned.
    stable: i64,
    aborted: Vec<AbortedTxn>,
}

/// A rewritten segment, written beside the old one (`.cleaned`), waiting to be swapped in.
pub(crate) struct Cleaned {
    base_offset: i64,
    /// The old segment's size when planned: if it differs at the swap, the segment changed.
    old_size: u64,
    size: u64,
    tmp: PathBuf,
    index: SegmentIndex,
    /// Offsets of the abort markers removed, whose aborted-transaction index entries go.
    removed_markers: HashSet<i64>,
}

impl PartitionLog {
    /// Compacts the log in one go, holding `&mut self` throughout (tests and fuzzing; the
    /// cleaner plans, runs and installs separately so as not to hold the lock). See
    /// [`Compaction::run`] for what goes. Returns how many records were removed.
    pub(crate) fn compact(&mut self, drop_tombstones_before: i64) -> Result<usize> {
        let Some(plan) = self.plan_compaction()? else {
            return Ok(0);
        };
        let (cleaned, removed) = plan.run(drop_tombstones_before)?;
        for c in cleaned {
            self.install_cleaned(c)?;
        }
        self.compaction_done(plan.clean_end());
        Ok(removed)
    }

    /// What a compaction needs, or `None` if there is nothing new to clean: only closed
    /// segments wholly below the last stable offset are rewritten (every transaction there
    /// has ended, so it is known whether its records count), and a partition is only cleaned
    /// again once more such segments exist.
    pub(crate) fn plan_compaction(&self) -> Result<Option<Compaction>> {
        let stable = self.last_stable_offset();
        let cleanable = (0..self.segments.len() - 1)
            .take_while(|&i| self.segment_end(i) <= stable)
            .count();
        if cleanable == 0 || self.compacted_up_to >= self.segment_end(cleanable - 1) {
            return Ok(None);
        }
        let mut segments = Vec::with_capacity(self.segments.len());
        let mut aborted = Vec::new();
        for s in &self.segments {
            let file = File::open(&s.path).map_err(|e| Error::storage(&s.path, e))?;
            segments.push(SegmentSnapshot {
                base_offset: s.base_offset,
                path: s.path.clone(),
                file,
                size: s.size,
            });
            aborted.extend_from_slice(s.aborted.entries());
        }
        Ok(Some(Compaction {
            dir: self.dir.clone(),
            index_interval_bytes: self.options.index_interval_bytes,
            segments,
            cleanable,
            stable,
            aborted,
        }))
    }

    /// Swaps a rewritten segment in. A segment deleted or changed since the plan keeps what it
    /// is now and the rewrite is deleted.
    pub(crate) fn install_cleaned(&mut self, mut c: Cleaned) -> Result<()> {
        let found = self
            .segments
            .iter()
            .position(|s| s.base_offset == c.base_offset);
        let Some(i) =
            found.filter(|&i| i + 1 < self.segments.len() && self.segments[i].size == c.old_size)
        else {
            return c.discard(&self.dir);
        };
        if !c.removed_markers.is_empty() {
            // Before the segment: a crash in between leaves markers without entries, which is
            // harmless as their transactions have no data left; the other way round, entries
            // without markers would hide the producer's later transactions from
            // read_committed consumers.
            self.segments[i]
                .aborted
                .retain(|e| !c.removed_markers.contains(&e.last_offset))?;
        }
        // The old indexes go before the segment is renamed over, so a crash leaves the old
        // segment or the new one, never a segment with another's indexes (missing ones are
        // rebuilt at start).
        index::remove_index_files(&self.dir, c.base_offset)?;
        let path = self.segments[i].path.clone();
        std::fs::rename(&c.tmp, &path).map_err(|e| Error::storage(&path, e))?;
        c.index.rename_into_place(&self.dir)?;
        sync_dir(&self.dir);
        let file = open_segment_file(&path)?;
        let segment = &mut self.segments[i];
        segment.file = file;
        segment.size = c.size;
        segment.index = c.index;
        Ok(())
    }

    /// Records that the closed segments below `clean_end` are compacted.
    pub(crate) fn compaction_done(&mut self, clean_end: i64) {
        self.compacted_up_to = self.compacted_up_to.max(clean_end);
    }
}

impl Compaction {
    /// The offset the cleaned segments end at.
    pub(crate) fn clean_end(&self) -> i64 {
        self.segments[self.cleanable].base_offset
    }

    /// Rewrites the cleanable segments keeping, per key, only the latest record; tombstones in
    /// batches older than `drop_tombstones_before` go too, and so do transaction markers
    /// whose transaction has no data left (see [`super::compact_txn`]). Records of aborted
    /// transactions go; only committed records count as newer values of their keys. Returns
    /// the rewritten segments (only those that changed) and how many records were removed.
    pub(crate) fn run(&self, drop_tombstones_before: i64) -> Result<(Vec<Cleaned>, usize)> {
        let mut txns = Transactions::new(&self.aborted);
        let stable = self.stable;
        // Pass 1: the latest offset of every key among the committed records below the last
        // stable offset (active segment included, so a key rewritten there drops its older
        // copies; an open transaction's records may still be aborted and do not count).
        let mut latest: HashMap<Vec<u8>, i64> = HashMap::new();
        'segments: for segment in &self.segments {
            let mut headers = segment.headers();
            while let Some((position, h)) = headers.next_batch()? {
                if h.last_offset() >= stable {
                    break 'segments;
                }
                if txns.is_aborted(&h) {
                    continue;
                }
                let bytes = segment.read(position, h.total_len())?;
                if let Some(records) = compaction::records(&bytes) {
                    for r in records {
                        if let Some(key) = r.key {
                            latest.insert(key.to_vec(), r.offset);
                        }
                    }
                }
            }
        }
        // Pass 2: rewrite each cleanable segment.
        let mut removed = 0;
        let mut cleaned = Vec::new();
        for segment in &self.segments[..self.cleanable] {
            let mut out = Vec::new();
            let mut kept = Vec::new();
            let mut removed_markers = HashSet::new();
            let mut changed = false;
            let mut headers = segment.headers();
            while let Some((position, h)) = headers.next_batch()? {
                let bytes = segment.read(position, h.total_len())?;
                let past_retention = h.max_timestamp < drop_tombstones_before;
                // Whole batches (markers, aborted data) go without looking into them.
                let whole = usize::try_from(h.record_count).unwrap_or(0);
                let batch = if h.is_control() {
                    let is_marker = control::marker_kind(&bytes).is_some();
                    if is_marker && txns.marker_removable(&h, past_retention) {
                        removed_markers.insert(h.base_offset);
                        removed += whole;
                        changed = true;
                        None
                    } else {
                        Some(bytes)
                    }
                } else if txns.is_aborted(&h) {
                    txns.on_data(&h);
                    removed += whole;
                    changed = true;
                    None
                } else {
                    txns.on_data(&h);
                    match compaction::retain(&bytes, |r| {
                        let newest = r.key.is_none_or(|k| latest.get(k) == Some(&r.offset));
                        newest && !(r.is_tombstone && past_retention)
                    }) {
                        compaction::Retained::All => Some(bytes),
                        compaction::Retained::Some(batch, dropped) => {
                            removed += dropped;
                            changed = true;
                            Some(batch)
                        }
                        compaction::Retained::None(dropped) => {
                            removed += dropped;
                            changed = true;
                            None
                        }
                    }
                };
                if let Some(batch) = batch {
                    let header = BatchHeader::parse(&batch).expect("a kept batch has a header");
                    kept.push((header, out.len() as u64));
                    out.extend_from_slice(&batch);
                }
            }
            if changed {
                cleaned.push(self.write_cleaned(segment, &out, &kept, removed_markers)?);
            }
        }
        Ok((cleaned, removed))
    }

    /// Writes the rewrite of `segment` (`bytes`, holding the batches `kept`: header, position)
    /// and its indexes beside it (`.cleaned`), fsynced, ready for the swap.
    fn write_cleaned(
        &self,
        segment: &SegmentSnapshot,
        bytes: &[u8],
        kept: &[(BatchHeader, u64)],
        removed_markers: HashSet<i64>,
    ) -> Result<Cleaned> {
        let tmp = segment.path.with_extension(format!("log{CLEANED}"));
        let f = File::create(&tmp).map_err(|e| Error::storage(&tmp, e))?;
        f.write_all_at(bytes, 0)
            .map_err(|e| Error::storage(&tmp, e))?;
        f.sync_all().map_err(|e| Error::storage(&tmp, e))?;
        let mut index = SegmentIndex::create(
            &self.dir,
            segment.base_offset,
            CLEANED,
            self.index_interval_bytes,
        )?;
        for (header, position) in kept {
            index.on_append(header, *position)?;
        }
        index.close()?;
        Ok(Cleaned {
            base_offset: segment.base_offset,
            old_size: segment.size,
            size: bytes.len() as u64,
            tmp,
            index,
            removed_markers,
        })
    }
}

impl Cleaned {
    /// Deletes the rewrite (its segment changed or went since the plan).
    fn discard(self, dir: &Path) -> Result<()> {
        let (offsets, times) = index::index_paths(dir, self.base_offset, CLEANED);
        for path in [self.tmp, offsets, times] {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::storage(&path, e)),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::log::batch::tests::make_keyed_batch;
    use crate::log::batch::BatchHeader;
    use crate::log::compaction;
    use crate::log::files::CLEANED;
    use crate::log::test_support::{answers, index_files, indexed, opts};
    use crate::log::PartitionLog;

    #[test]
    fn compaction_keeps_the_latest_value_per_key() {
        let dir = tempfile::tempdir().unwrap();
        let opts = opts(150);
        let mut log = PartitionLog::open(dir.path(), opts).unwrap();
        let batches: Vec<Vec<(&str, Option<&str>)>> = vec![
            vec![("a", Some("1")), ("b", Some("1"))],
            vec![("a", Some("2")), ("c", Some("1"))],
            vec![("b", None), ("d", Some("1"))],
            vec![("a", Some("3"))],
            vec![("e", Some("1"))],
        ];
        for b in &batches {
            log.append(&mut make_keyed_batch(b, 1000), false).unwrap();
        }
        assert!(log.segments.len() >= 3, "rolled: {}", log.segments.len());
        let removed = log.compact(0).unwrap();
        assert_eq!(removed, 3, "a@0, b@1, a@2 are superseded");
        let mut seen = Vec::new();
        let mut offset = 0;
        while offset < log.next_offset() {
            let bytes = log.read(offset, 1 << 20).unwrap().unwrap();
            let mut pos = 0;
            while pos < bytes.len() {
                let h = BatchHeader::parse(&bytes[pos..]).unwrap();
                let batch_bytes = &bytes[pos..pos + h.total_len()];
                assert_eq!(crc32c::crc32c(&batch_bytes[21..]), h.crc);
                for r in compaction::records(batch_bytes).unwrap() {
                    if r.offset >= offset {
                        seen.push((
                            String::from_utf8(r.key.unwrap().to_vec()).unwrap(),
                            r.offset,
                        ));
                    }
                }
                offset = h.last_offset() + 1;
                pos += h.total_len();
            }
        }
        let keys: Vec<(&str, i64)> = seen.iter().map(|(k, o)| (k.as_str(), *o)).collect();
        assert_eq!(keys, vec![("c", 3), ("b", 4), ("d", 5), ("a", 6), ("e", 7)]);
        // Tombstones older than the horizon go on the next pass over newly closed segments.
        drop(log);
        let mut log = PartitionLog::open(dir.path(), opts).unwrap();
        assert_eq!(
            log.next_offset(),
            8,
            "offsets survive compaction and reopen"
        );
        assert_eq!(log.compact(i64::MAX).unwrap(), 1, "the tombstone for b");
    }

    #[test]
    fn compaction_rewrites_indexes_with_the_segment() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), indexed()).unwrap();
        let keys = ["a", "b", "c", "d"];
        for i in 0..40 {
            let value = i.to_string();
            let batch = [(keys[i % 4], Some(value.as_str()))];
            log.append(&mut make_keyed_batch(&batch, 1000 + i as i64), false)
                .unwrap();
        }
        assert!(log.compact(0).unwrap() > 0);
        let after = answers(&log);
        let files = index_files(dir.path());
        assert!(!std::fs::read_dir(dir.path()).unwrap().any(|e| e
            .unwrap()
            .path()
            .to_string_lossy()
            .ends_with(CLEANED)));
        // The rewritten indexes are what a rebuild from the new segments gives.
        drop(log);
        for name in files.keys() {
            std::fs::remove_file(dir.path().join(name)).unwrap();
        }
        let log = PartitionLog::open(dir.path(), indexed()).unwrap();
        assert_eq!(index_files(dir.path()), files);
        assert_eq!(answers(&log), after);
    }

    #[test]
    fn appends_between_plan_and_swap_are_kept_and_deleted_segments_are_not_recreated() {
        use crate::log::test_support::options;
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), options()).unwrap();
        let put = |log: &mut PartitionLog, k: &str, v: &str| {
            log.append(&mut make_keyed_batch(&[(k, Some(v))], 1000), false)
                .unwrap();
        };
        put(&mut log, "a", "1"); // 0
        put(&mut log, "b", "1"); // 1
        log.roll().unwrap();
        put(&mut log, "a", "2"); // 2
        log.roll().unwrap();
        put(&mut log, "c", "1"); // 3, active
        let plan = log.plan_compaction().unwrap().unwrap();
        // Meanwhile (the cleaner holds no lock now) b is rewritten and a segment rolls: the
        // plan does not know b@4, so b@1 stays this time; nothing appended is lost.
        put(&mut log, "b", "2"); // 4
        log.roll().unwrap();
        let (cleaned, removed) = plan.run(0).unwrap();
        assert_eq!(removed, 1, "a@0");
        for c in cleaned {
            log.install_cleaned(c).unwrap();
        }
        log.compaction_done(plan.clean_end());
        let offsets = |log: &PartitionLog| -> Vec<i64> {
            (0..log.next_offset())
                .filter(|&o| {
                    let bytes = log.read(o, 1).unwrap().unwrap();
                    compaction::records(&bytes)
                        .unwrap()
                        .iter()
                        .any(|r| r.offset == o)
                })
                .collect()
        };
        assert_eq!(offsets(&log), vec![1, 2, 3, 4]);
        // The next pass sees b@4 (its segment closed since).
        assert_eq!(log.compact(0).unwrap(), 1, "b@1");
        assert_eq!(offsets(&log), vec![2, 3, 4]);

        // A segment deleted between plan and swap stays deleted; its rewrite is dropped.
        put(&mut log, "c", "2"); // 5
        log.roll().unwrap();
        let plan = log.plan_compaction().unwrap().unwrap();
        let (cleaned, removed) = plan.run(0).unwrap();
        assert_eq!((cleaned.len(), removed), (1, 1), "c@3");
        assert_eq!(log.delete_records_before(5).unwrap(), Ok(5));
        let segments: Vec<i64> = log.segments.iter().map(|s| s.base_offset).collect();
        assert_eq!(segments, vec![5, 6], "the one holding c@3 went");
        for c in cleaned {
            log.install_cleaned(c).unwrap();
        }
        let after: Vec<i64> = log.segments.iter().map(|s| s.base_offset).collect();
        assert_eq!(after, segments);
        assert_eq!(log.log_start_offset(), 5);
        assert!(!std::fs::read_dir(dir.path()).unwrap().any(|e| e
            .unwrap()
            .path()
            .to_string_lossy()
            .ends_with(CLEANED)));
    }
}
