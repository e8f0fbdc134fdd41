//! Opening a log after a clean stop or a crash: closed segments are trusted through their
//! indexes, the active one is scanned and a torn tail cut, and producer state is reloaded.

use super::control::Marker;
use super::files::{
    read_log_start, remove_leftovers, remove_orphan_indexes, remove_segment_files, segment_bases,
};
use super::index::SegmentIndex;
use super::producers::{self, ProducerState};
use super::segment::{
    header_at, intact_batch_at, open_segment_file, read_at, segment_path, HeaderReader, Scanned,
    Segment,
};
use super::txn_index::{AbortedTxn, TxnIndex};
use super::{LogOptions, PartitionLog};
use crate::error::{Error, Result};
use std::path::Path;

impl PartitionLog {
    /// Opens (or creates) the log in `dir`, truncating a torn or corrupt tail.
    pub(crate) fn open(dir: &Path, options: LogOptions) -> Result<PartitionLog> {
        std::fs::create_dir_all(dir).map_err(|e| Error::storage(dir, e))?;
        remove_leftovers(dir)?;
        let bases = segment_bases(dir)?;
        remove_orphan_indexes(dir, &bases)?;
        let mut log = PartitionLog {
            dir: dir.to_path_buf(),
            segments: Vec::new(),
            next_offset: bases.first().copied().unwrap_or(0),
            log_start_offset: 0,
            producers: ProducerState::default(),
            snapshot_offset: None,
            options,
            compacted_up_to: 0,
        };
        for (i, &base) in bases.iter().enumerate() {
            let intact = match bases.get(i + 1) {
                Some(&end) => log.open_closed_segment(base, end)?,
                None => log.recover_active_segment(base)?,
            };
            if !intact {
                // Everything after a damaged spot is unreachable by offset: drop later segments.
                for &later in &bases[i + 1..] {
                    tracing::warn!(dir = %dir.display(), segment_base = later, "removing segment after corrupt data");
                    remove_segment_files(dir, later)?;
                }
                break;
            }
        }
        if log.segments.is_empty() {
            log.segments
                .push(Segment::create(dir, log.next_offset, &log.options)?);
        }
        let first_base = log.segments[0].base_offset;
        log.log_start_offset = read_log_start(dir)?.unwrap_or(first_base).max(first_base);
        log.log_start_offset = log.log_start_offset.min(log.next_offset);
        log.load_producer_state()?;
        Ok(log)
    }

    /// Opens a closed segment (`end` is the next segment's base) with its indexes, or rebuilds
    /// them from the segment if they cannot be trusted. Returns false if the segment had to be
    /// truncated, which makes it the last one.
    fn open_closed_segment(&mut self, base: i64, end: i64) -> Result<bool> {
        let path = segment_path(&self.dir, base);
        let file = open_segment_file(&path)?;
        let len = file.metadata().map_err(|e| Error::storage(&path, e))?.len();
        let interval = self.options.index_interval_bytes;
        let loaded = SegmentIndex::load_closed(&self.dir, base, interval, len, end, |position| {
            header_at(&file, &path, position, len)
        })?;
        let (index, trusted) = match loaded {
            Some(index) => (index, true),
            None => (SegmentIndex::create(&self.dir, base, "", interval)?, false),
        };
        let mut segment = Segment {
            base_offset: base,
            path,
            file,
            size: len,
            index,
            aborted: TxnIndex::load(&self.dir, base)?,
        };
        let mut intact = true;
        if !trusted {
            // Older segments were fsynced when rolled: headers are enough, CRCs are not checked.
            intact = self.scan_segment(&mut segment, 0, false)?;
            if intact {
                segment.index.close()?;
            }
        }
        self.segments.push(segment);
        Ok(intact)
    }

    /// Recovers the active segment: its indexes are cut back to their last entry that points at
    /// an intact batch, and the segment is scanned from there, with CRCs checked, entries
    /// re-added and a torn or corrupt tail truncated. Returns false if it truncated.
    fn recover_active_segment(&mut self, base: i64) -> Result<bool> {
        let path = segment_path(&self.dir, base);
        let file = open_segment_file(&path)?;
        let len = file.metadata().map_err(|e| Error::storage(&path, e))?.len();
        let interval = self.options.index_interval_bytes;
        let (index, resume) =
            SegmentIndex::load_active(&self.dir, base, interval, len, |position, batch_base| {
                intact_batch_at(&file, &path, position, len, batch_base)
            })?;
        let mut segment = Segment {
            base_offset: base,
            path,
            file,
            size: len,
            index,
            aborted: TxnIndex::load(&self.dir, base)?,
        };
        let intact = self.scan_segment(&mut segment, resume, true)?;
        // Aborts whose marker went with a torn tail are not aborts any more.
        segment.aborted.truncate_from(self.next_offset)?;
        self.segments.push(segment);
        Ok(intact)
    }

    /// Scans `segment` (whose `size` is its file length) from `position`, adding index entries
    /// and setting the next offset; truncates at the first batch that is cut short, out of
    /// offset order, or (with `check_crc`) damaged. Returns false if it truncated.
    fn scan_segment(
        &mut self,
        segment: &mut Segment,
        position: u64,
        check_crc: bool,
    ) -> Result<bool> {
        let mut headers = HeaderReader::new(&segment.file, &segment.path, position, segment.size);
        let mut expected = segment.base_offset.max(self.next_offset);
        let mut end = position;
        let intact = loop {
            let (position, h) = match headers.next()? {
                Scanned::End => break true,
                Scanned::Invalid(_) => break false,
                Scanned::Batch(position, h) => (position, h),
            };
            let valid = h.base_offset >= expected
                && (!check_crc || {
                    let bytes = read_at(&segment.file, &segment.path, position, h.total_len())?;
                    crc32c::crc32c(&bytes[21..]) == h.crc
                });
            if !valid {
                break false;
            }
            segment.index.on_append(&h, position)?;
            expected = h.last_offset() + 1;
            end = position + h.total_len() as u64;
        };
        if !intact {
            tracing::warn!(
                segment = %segment.path.display(),
                position = end,
                file_len = segment.size,
                "truncating torn or corrupt tail"
            );
            segment
                .file
                .set_len(end)
                .map_err(|e| Error::storage(&segment.path, e))?;
            segment
                .file
                .sync_all()
                .map_err(|e| Error::storage(&segment.path, e))?;
        }
        segment.size = end;
        self.next_offset = expected;
        Ok(intact)
    }

    /// Loads the newest producer snapshot and replays the batches written after it; without a
    /// snapshot (a data directory from before snapshots, or every snapshot damaged), the whole
    /// log. An abort marker replayed without its aborted-transaction index entry (a crash came
    /// between the two writes) gets it back.
    fn load_producer_state(&mut self) -> Result<()> {
        let from = match producers::load_snapshot(&self.dir, self.next_offset)? {
            Some((offset, state)) => {
                self.producers = state;
                self.snapshot_offset = Some(offset);
                offset
            }
            None => i64::MIN,
        };
        let mut restored = Vec::new();
        for (i, segment) in self.segments.iter().enumerate() {
            let end = self
                .segments
                .get(i + 1)
                .map_or(self.next_offset, |s| s.base_offset);
            if end <= from {
                continue;
            }
            let mut missing = Vec::new();
            let mut headers = segment.headers(segment.index.position_for(from));
            loop {
                match headers.next_batch() {
                    Ok(Some((position, h))) if h.base_offset >= from => {
                        let marker = if h.is_control() {
                            super::control::marker_kind(&segment.read(position, h.total_len())?)
                        } else {
                            None
                        };
                        let ended = self.producers.record(&h, marker);
                        if let Some(ended) = ended.filter(|e| e.marker == Marker::Abort) {
                            if !segment.aborted.contains(h.base_offset) {
                                missing.push(AbortedTxn {
                                    producer_id: ended.producer_id,
                                    first_offset: ended.first_offset,
                                    last_offset: h.base_offset,
                                    last_stable_offset: self
                                        .producers
                                        .first_unstable_offset()
                                        .unwrap_or(h.base_offset + 1),
                                });
                            }
                        }
                    }
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(e) => {
                        // Reads of that spot will fail too; the rest of the log is still served.
                        tracing::error!(error = %e, "cannot replay producer state from a damaged segment");
                        break;
                    }
                }
            }
            restored.push((i, missing));
        }
        for (i, missing) in restored {
            for entry in missing {
                tracing::info!(dir = %self.dir.display(), marker = entry.last_offset, "restoring an aborted-transaction index entry");
                self.segments[i].aborted.append(entry)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::log::batch::tests::make_batch;
    use crate::log::batch::{self, BatchHeader};
    use crate::log::test_support::{answers, fill, index_files, indexed, options, segment_file};
    use crate::log::{PartitionLog, SequenceCheck};
    use kafka_protocol::error::ResponseError;
    use std::fs::OpenOptions;
    use std::os::unix::fs::FileExt;
    use std::path::Path;

    #[test]
    fn torn_tail_is_truncated_to_last_whole_batch() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), options()).unwrap();
        let mut b1 = make_batch(3, 1000, None);
        log.append(&mut b1, false).unwrap();
        log.append(&mut make_batch(2, 2000, None), false).unwrap();
        drop(log);
        let seg = dir.path().join(format!("{:020}.log", 0));
        let len = std::fs::metadata(&seg).unwrap().len();
        let f = OpenOptions::new().write(true).open(&seg).unwrap();
        f.set_len(len - 5).unwrap();
        drop(f);
        let mut log = PartitionLog::open(dir.path(), options()).unwrap();
        assert_eq!(log.next_offset(), 3);
        assert_eq!(std::fs::metadata(&seg).unwrap().len(), b1.len() as u64);
        assert_eq!(
            log.append(&mut make_batch(1, 3000, None), false).unwrap(),
            3
        );
    }

    #[test]
    fn idempotent_sequences_and_duplicates_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), options()).unwrap();
        let mut b = make_batch(2, 1000, Some((7, 0, 0)));
        let h = batch::validate_batch(&b, 1 << 20).unwrap();
        assert_eq!(log.check_sequence(&h), Ok(SequenceCheck::Append));
        log.append(&mut b, false).unwrap();
        let h = BatchHeader::parse(&b).unwrap();
        assert_eq!(log.check_sequence(&h), Ok(SequenceCheck::Duplicate(0)));
        let gap = make_batch(1, 1000, Some((7, 0, 5)));
        let hg = BatchHeader::parse(&gap).unwrap();
        assert_eq!(
            log.check_sequence(&hg),
            Err(ResponseError::OutOfOrderSequenceNumber)
        );
        drop(log);
        let log = PartitionLog::open(dir.path(), options()).unwrap();
        assert_eq!(log.check_sequence(&h), Ok(SequenceCheck::Duplicate(0)));
        let next = make_batch(1, 1000, Some((7, 0, 2)));
        let hn = BatchHeader::parse(&next).unwrap();
        assert_eq!(log.check_sequence(&hn), Ok(SequenceCheck::Append));
        let mut log = log;
        log.append(&mut make_batch(1, 1000, Some((7, 1, 0))), false)
            .unwrap();
        let stale = make_batch(1, 1000, Some((7, 0, 3)));
        let hs = BatchHeader::parse(&stale).unwrap();
        assert_eq!(
            log.check_sequence(&hs),
            Err(ResponseError::InvalidProducerEpoch)
        );
    }

    #[test]
    fn closed_segments_are_not_read_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), indexed()).unwrap();
        let batches = fill(&mut log, 40);
        let second = log.segments[1].base_offset;
        drop(log);
        // Damage a batch header in the middle of the first segment. A scan at open would stop
        // there and cut the log; with trusted indexes the segment is not even read.
        let first = segment_file(dir.path(), 0);
        let len = std::fs::metadata(&first).unwrap().len();
        let f = OpenOptions::new().write(true).open(&first).unwrap();
        f.write_all_at(&[9], batches[0].len() as u64 * 3 + 16)
            .unwrap();
        drop(f);
        let log = PartitionLog::open(dir.path(), indexed()).unwrap();
        assert_eq!(std::fs::metadata(&first).unwrap().len(), len);
        assert_eq!(log.next_offset(), 80);
        assert!(log.read(6, 1).is_err(), "the damage shows where it is read");
        assert_eq!(
            log.read(second, 1).unwrap().unwrap().len(),
            batches[0].len()
        );
    }

    #[test]
    fn missing_or_damaged_index_files_are_rebuilt_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), indexed()).unwrap();
        fill(&mut log, 40);
        let bases: Vec<i64> = log.segments.iter().map(|s| s.base_offset).collect();
        let expected_answers = answers(&log);
        let max = log.max_timestamp_offset().unwrap();
        drop(log);
        let expected_files = index_files(dir.path());
        type Damage<'a> = (&'static str, Box<dyn Fn(&Path) + 'a>);
        let damages: Vec<Damage<'_>> = vec![
            (
                "all deleted",
                Box::new(|d: &Path| {
                    for name in index_files(d).keys() {
                        std::fs::remove_file(d.join(name)).unwrap();
                    }
                }),
            ),
            (
                "partial entry",
                Box::new(|d: &Path| {
                    let p = d.join(format!("{:020}.index", bases[0]));
                    let f = OpenOptions::new().write(true).open(&p).unwrap();
                    f.set_len(f.metadata().unwrap().len() - 3).unwrap();
                }),
            ),
            (
                "time index emptied",
                Box::new(|d: &Path| {
                    std::fs::write(d.join(format!("{:020}.timeindex", bases[1])), b"").unwrap();
                }),
            ),
            (
                "garbage entries",
                Box::new(|d: &Path| {
                    let p = d.join(format!("{:020}.index", bases[1]));
                    let len = std::fs::metadata(&p).unwrap().len() as usize;
                    std::fs::write(&p, vec![0x5a; len]).unwrap();
                    let p = d.join(format!("{:020}.timeindex", bases[0]));
                    let len = std::fs::metadata(&p).unwrap().len() as usize;
                    std::fs::write(&p, vec![0xa5; len]).unwrap();
                }),
            ),
            (
                "entry pointing at the wrong batch",
                Box::new(|d: &Path| {
                    let p = d.join(format!("{:020}.index", bases[0]));
                    let mut bytes = std::fs::read(&p).unwrap();
                    let last = bytes.len() - 1;
                    bytes[last] = bytes[last].wrapping_add(1);
                    std::fs::write(&p, bytes).unwrap();
                }),
            ),
            (
                "active segment's indexes deleted",
                Box::new(|d: &Path| {
                    let last = bases.last().unwrap();
                    std::fs::remove_file(d.join(format!("{last:020}.index"))).unwrap();
                    std::fs::remove_file(d.join(format!("{last:020}.timeindex"))).unwrap();
                }),
            ),
        ];
        for (what, damage) in damages {
            damage(dir.path());
            let log = PartitionLog::open(dir.path(), indexed()).unwrap();
            assert_eq!(index_files(dir.path()), expected_files, "{what}");
            assert_eq!(answers(&log), expected_answers, "{what}");
            assert_eq!(log.max_timestamp_offset().unwrap(), max, "{what}");
        }
    }

    #[test]
    fn torn_tail_recovery_keeps_the_index_consistent() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), indexed()).unwrap();
        let batches = fill(&mut log, 44);
        let active = log.segments.last().unwrap().base_offset;
        assert!(log.segments.last().unwrap().index.len() >= 2);
        drop(log);
        // Cut the last batch in half, as a crash during its write would.
        let seg = segment_file(dir.path(), active);
        let len = std::fs::metadata(&seg).unwrap().len();
        let last_len = batches.last().unwrap().len() as u64;
        OpenOptions::new()
            .write(true)
            .open(&seg)
            .unwrap()
            .set_len(len - last_len / 2)
            .unwrap();
        let mut log = PartitionLog::open(dir.path(), indexed()).unwrap();
        assert_eq!(std::fs::metadata(&seg).unwrap().len(), len - last_len);
        assert_eq!(log.next_offset(), 86);
        let recovered = (index_files(dir.path()), answers(&log));
        // The same content appended from scratch gives the same index files and answers.
        let fresh = tempfile::tempdir().unwrap();
        let mut reference = PartitionLog::open(fresh.path(), indexed()).unwrap();
        fill(&mut reference, 43);
        assert_eq!(recovered, (index_files(fresh.path()), answers(&reference)));
        // And appends continue from there, indexed.
        assert_eq!(
            log.append(&mut make_batch(2, 5000, None), false).unwrap(),
            86
        );
        assert_eq!(log.offset_for_timestamp(5000).unwrap(), Some((86, 5001)));
        // A torn tail ahead of the last index entry: cut into the batch an entry points at.
        drop(log);
        let log = PartitionLog::open(dir.path(), indexed()).unwrap();
        let segment = log.segments.last().unwrap();
        let last_entry = segment.index.position_for(i64::MAX);
        assert!(last_entry > 0);
        drop(log);
        OpenOptions::new()
            .write(true)
            .open(&seg)
            .unwrap()
            .set_len(last_entry + 10)
            .unwrap();
        let log = PartitionLog::open(dir.path(), indexed()).unwrap();
        assert_eq!(std::fs::metadata(&seg).unwrap().len(), last_entry);
        let segment = log.segments.last().unwrap();
        assert!(segment.index.position_for(i64::MAX) < last_entry);
        assert_eq!(
            log.read(log.next_offset() - 1, 1).unwrap().unwrap().len(),
            batches[0].len()
        );
    }

    #[test]
    fn producer_state_replays_the_log_after_its_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), indexed()).unwrap();
        let mut seq = 0;
        for _ in 0..20 {
            log.append(&mut make_batch(2, 1000, Some((7, 0, seq))), false)
                .unwrap();
            seq += 2;
        }
        assert!(log.segments.len() >= 2);
        let snapshot = log.snapshot_offset.unwrap();
        assert!(snapshot > 0 && snapshot < log.next_offset());
        // Crash: the state after the snapshot comes from the active segment.
        drop(log);
        let mut log = PartitionLog::open(dir.path(), indexed()).unwrap();
        let next = make_batch(1, 1000, Some((7, 0, seq)));
        assert_eq!(
            log.check_sequence(&BatchHeader::parse(&next).unwrap()),
            Ok(SequenceCheck::Append)
        );
        // A clean shutdown snapshots the end of the log: nothing to replay next time.
        log.checkpoint().unwrap();
        assert_eq!(log.snapshot_offset, Some(log.next_offset()));
        drop(log);
        let log = PartitionLog::open(dir.path(), indexed()).unwrap();
        assert_eq!(log.snapshot_offset, Some(log.next_offset()));
        assert_eq!(
            log.check_sequence(&BatchHeader::parse(&next).unwrap()),
            Ok(SequenceCheck::Append)
        );
        // A torn newest snapshot is ignored: the older one plus the log give the same state.
        drop(log);
        let newest = dir.path().join(format!("{:020}.snapshot", 40));
        let bytes = std::fs::read(&newest).unwrap();
        std::fs::write(&newest, &bytes[..bytes.len() / 2]).unwrap();
        let log = PartitionLog::open(dir.path(), indexed()).unwrap();
        assert_eq!(log.snapshot_offset, Some(snapshot));
        assert_eq!(
            log.check_sequence(&BatchHeader::parse(&next).unwrap()),
            Ok(SequenceCheck::Append)
        );
        let stale = make_batch(1, 1000, Some((7, 0, seq - 2)));
        assert_eq!(
            log.check_sequence(&BatchHeader::parse(&stale).unwrap()),
            Err(ResponseError::OutOfOrderSequenceNumber)
        );
    }

    #[test]
    fn aborted_index_and_open_transactions_are_rebuilt_after_a_crash() {
        use crate::log::batch::tests::make_txn_batch;
        use crate::log::control::Marker;
        use crate::log::txn_index::txn_index_path;
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), indexed()).unwrap();
        fill(&mut log, 20); // closed segments and a snapshot at the last roll
        let start = log.next_offset();
        let base = log.segments.last().unwrap().base_offset;
        log.append(&mut make_txn_batch(2, 1000, (7, 0, 0)), false)
            .unwrap();
        log.append(&mut make_txn_batch(1, 1000, (8, 0, 0)), false)
            .unwrap();
        let abort = log.append_marker(7, 1, Marker::Abort, 1000, false).unwrap();
        let expected = log.aborted_transactions(0, i64::MAX);
        assert_eq!(expected, vec![(7, start)]);
        assert_eq!(log.last_stable_offset(), start + 2);
        drop(log);
        // Crash between the marker and its index entry: the entry comes back from the replay.
        std::fs::remove_file(txn_index_path(dir.path(), base)).unwrap();
        let mut log = PartitionLog::open(dir.path(), indexed()).unwrap();
        assert_eq!(log.aborted_transactions(0, i64::MAX), expected);
        assert_eq!(
            log.last_stable_offset(),
            start + 2,
            "producer 8 is still open"
        );
        let stale = make_txn_batch(1, 1000, (7, 0, 2));
        assert_eq!(
            log.check_sequence(&BatchHeader::parse(&stale).unwrap()),
            Err(ResponseError::InvalidProducerEpoch),
            "the marker's epoch fences the old producer after a restart"
        );
        // A torn marker: the abort is undone, the transaction open again.
        let commit = log
            .append_marker(8, 0, Marker::Commit, 1000, false)
            .unwrap();
        assert_eq!(commit, abort + 1);
        drop(log);
        let seg = segment_file(dir.path(), base);
        let len = std::fs::metadata(&seg).unwrap().len();
        let f = OpenOptions::new().write(true).open(&seg).unwrap();
        f.set_len(len - 3).unwrap();
        drop(f);
        let log = PartitionLog::open(dir.path(), indexed()).unwrap();
        assert_eq!(log.next_offset(), commit);
        assert_eq!(log.last_stable_offset(), start + 2);
        assert_eq!(log.aborted_transactions(0, i64::MAX), expected);
    }
}
