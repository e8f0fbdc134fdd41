//! Log compaction of a partition: which records of the closed segments survive, and the
//! crash-safe swap of a rewritten segment. The record-level surgery is in [`super::compaction`].

use super::batch::BatchHeader;
use super::compact_txn::Transactions;
use super::files::{sync_dir, CLEANED};
use super::index::{self, SegmentIndex};
use super::segment::open_segment_file;
use super::{compaction, control, PartitionLog};
use crate::error::{Error, Result};
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::os::unix::fs::FileExt;

impl PartitionLog {
    /// Rewrites closed segments keeping, per key, only the latest record (log compaction).
    /// `drop_tombstones_before` is a timestamp: tombstones in batches older than it go too, and
    /// so do transaction markers whose transaction has no data left (see [`compact_txn`]).
    /// Records of aborted transactions go. Only segments wholly below the last stable offset
    /// are rewritten, and only committed records count as newer values of their keys.
    /// Returns how many records were removed. The active segment is never touched, and a
    /// partition is only cleaned again once new segments have closed.
    pub(crate) fn compact(&mut self, drop_tombstones_before: i64) -> Result<usize> {
        // Every transaction below the last stable offset has ended: it is known whether its
        // records count. Segments reaching past it wait.
        let stable = self.last_stable_offset();
        let cleanable = (0..self.segments.len() - 1)
            .take_while(|&i| self.segment_end(i) <= stable)
            .count();
        if cleanable == 0 || self.compacted_up_to >= self.segment_end(cleanable - 1) {
            return Ok(0);
        }
        let clean_end = self.segment_end(cleanable - 1);
        let mut txns = Transactions::new(&self.segments);
        // Pass 1: the latest offset of every key among the committed records below the last
        // stable offset (active segment included, so a key rewritten there drops its older
        // copies; an open transaction's records may still be aborted and do not count).
        let mut latest: HashMap<Vec<u8>, i64> = HashMap::new();
        'segments: for segment in &self.segments {
            let mut headers = segment.headers(0);
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
        for i in 0..cleanable {
            let segment = &self.segments[i];
            let mut out = Vec::new();
            let mut kept = Vec::new();
            let mut removed_markers = HashSet::new();
            let mut changed = false;
            let mut headers = segment.headers(0);
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
                let base = segment.base_offset;
                if !removed_markers.is_empty() {
                    // Before the segment: a crash in between leaves markers without entries,
                    // which is harmless as their transactions have no data left; the other
                    // way round, entries without markers would hide the producer's later
                    // transactions from read_committed consumers.
                    self.segments[i]
                        .aborted
                        .retain(|e| !removed_markers.contains(&e.last_offset))?;
                }
                self.replace_segment(base, &out, &kept)?;
            }
        }
        self.compacted_up_to = clean_end;
        Ok(removed)
    }

    /// Replaces closed segment `base_offset` with `bytes`, holding the batches `kept` (header,
    /// position). The new segment and its indexes are written beside the old ones (`.cleaned`)
    /// and fsynced; the old indexes are deleted before the segment is renamed over, so a crash
    /// leaves the old segment or the new one, never a segment with another's indexes (missing
    /// ones are rebuilt at start).
    fn replace_segment(
        &mut self,
        base_offset: i64,
        bytes: &[u8],
        kept: &[(BatchHeader, u64)],
    ) -> Result<()> {
        let i = self
            .segments
            .iter()
            .position(|s| s.base_offset == base_offset)
            .expect("segment being compacted exists");
        let path = self.segments[i].path.clone();
        let tmp = path.with_extension(format!("log{CLEANED}"));
        let f = File::create(&tmp).map_err(|e| Error::storage(&tmp, e))?;
        f.write_all_at(bytes, 0)
            .map_err(|e| Error::storage(&tmp, e))?;
        f.sync_all().map_err(|e| Error::storage(&tmp, e))?;
        let mut index = SegmentIndex::create(
            &self.dir,
            base_offset,
            CLEANED,
            self.options.index_interval_bytes,
        )?;
        for (header, position) in kept {
            index.on_append(header, *position)?;
        }
        index.close()?;
        index::remove_index_files(&self.dir, base_offset)?;
        std::fs::rename(&tmp, &path).map_err(|e| Error::storage(&path, e))?;
        index.rename_into_place(&self.dir)?;
        sync_dir(&self.dir);
        let file = open_segment_file(&path)?;
        // The segment keeps its aborted-transaction index (less the entries of removed abort
        // markers, dropped by the caller): aborted transactions whose data is gone but whose
        // marker stays keep their entries, which then match no record.
        let segment = &mut self.segments[i];
        segment.path = path;
        segment.file = file;
        segment.size = bytes.len() as u64;
        segment.index = index;
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
}
