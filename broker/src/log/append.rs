//! The write path: appending batches, rolling to a new segment when the active one is full,
//! producer-state snapshots, and the checkpoint that makes a clean shutdown replay nothing.

use super::batch::{self, BatchHeader};
use super::control::{self, Marker};
use super::producers;
use super::segment::Segment;
use super::txn_index::AbortedTxn;
use super::{PartitionLog, LEADER_EPOCH};
use crate::error::{Error, Result};
use std::os::unix::fs::FileExt;

/// Largest segment, whatever `segment.bytes` says: index entries hold positions as 32-bit
/// numbers (Kafka caps `segment.bytes` at `i32::MAX` for the same reason).
const MAX_SEGMENT_BYTES: u64 = i32::MAX as u64;

impl PartitionLog {
    /// Appends one validated batch, assigning it the next offsets. Returns its base offset.
    pub(crate) fn append(&mut self, batch: &mut [u8], fsync: bool) -> Result<i64> {
        let base_offset = self.next_offset;
        batch::assign_offset(batch, base_offset, LEADER_EPOCH);
        let header = BatchHeader::parse(batch).expect("validated batch has a header");
        let active = self.segments.last().expect("a log always has a segment");
        let max_bytes = self.options.segment_bytes.min(MAX_SEGMENT_BYTES);
        let full = active.size + batch.len() as u64 > max_bytes
            // Index entries hold offsets relative to the segment base as 32-bit numbers.
            || header.last_offset() - active.base_offset > i64::from(i32::MAX);
        if active.size > 0 && full {
            self.roll()?;
        }
        let active = self
            .segments
            .last_mut()
            .expect("a log always has a segment");
        active
            .file
            .write_all_at(batch, active.size)
            .map_err(|e| Error::storage(&active.path, e))?;
        if fsync {
            active
                .file
                .sync_data()
                .map_err(|e| Error::storage(&active.path, e))?;
        }
        // Until here nothing counts the batch: after an error the next append overwrites it.
        active.index.on_append(&header, active.size)?;
        active.size += batch.len() as u64;
        self.next_offset = header.last_offset() + 1;
        let marker = if header.is_control() {
            control::marker_kind(batch)
        } else {
            None
        };
        let ended = self.producers.record(&header, marker);
        if let Some(ended) = ended.filter(|e| e.marker == Marker::Abort) {
            // After the marker, so that a crash in between leaves an entry missing (the
            // replay at the next start adds it back), never one without its marker.
            let entry = AbortedTxn {
                producer_id: ended.producer_id,
                first_offset: ended.first_offset,
                last_offset: base_offset,
                last_stable_offset: self.last_stable_offset(),
            };
            let active = self
                .segments
                .last_mut()
                .expect("a log always has a segment");
            active.aborted.append(entry)?;
        }
        Ok(base_offset)
    }

    /// Writes the marker that ends `producer_id`'s transaction in this partition (with the
    /// epoch the coordinator holds for it, which fences older ones) and returns its offset.
    pub(crate) fn append_marker(
        &mut self,
        producer_id: i64,
        epoch: i16,
        marker: Marker,
        timestamp: i64,
        fsync: bool,
    ) -> Result<i64> {
        let mut batch = control::marker_batch(producer_id, epoch, marker, timestamp);
        self.append(&mut batch, fsync)
    }

    /// Starts a new active segment at the next offset. The old one and its indexes are fsynced
    /// first, so that recovery only ever has to distrust the last segment, and the producer
    /// state is snapshotted, so that the next start replays no more than the new segment.
    pub(super) fn roll(&mut self) -> Result<()> {
        if let Some(old) = self.segments.last_mut() {
            old.file
                .sync_all()
                .map_err(|e| Error::storage(&old.path, e))?;
            old.index.close()?;
            old.aborted.sync()?;
        }
        self.write_producer_snapshot()?;
        let segment = Segment::create(&self.dir, self.next_offset, &self.options)?;
        self.segments.push(segment);
        Ok(())
    }

    /// Saves the producer state as of the end of the log, unless that snapshot exists already.
    fn write_producer_snapshot(&mut self) -> Result<()> {
        if self.snapshot_offset == Some(self.next_offset) {
            return Ok(());
        }
        producers::write_snapshot(&self.dir, self.next_offset, &self.producers)?;
        self.snapshot_offset = Some(self.next_offset);
        Ok(())
    }

    /// Makes everything written so far durable at a clean shutdown: the active segment and its
    /// indexes are fsynced and the producer state is snapshotted at the end of the log, so the
    /// next start replays nothing.
    pub(crate) fn checkpoint(&mut self) -> Result<()> {
        if let Some(active) = self.segments.last() {
            active
                .file
                .sync_data()
                .map_err(|e| Error::storage(&active.path, e))?;
            active.index.sync()?;
            active.aborted.sync()?;
        }
        if self.size_bytes() == 0 && self.producers.is_empty() {
            // Nothing to replay and nothing to remember: no file for an empty partition.
            return Ok(());
        }
        self.write_producer_snapshot()
    }
}

#[cfg(test)]
mod tests {
    use crate::log::index;
    use crate::log::test_support::{fill, index_files, indexed};
    use crate::log::PartitionLog;

    #[test]
    fn index_files_are_written_sparse_and_closed_with_the_segment() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), indexed()).unwrap();
        let batches = fill(&mut log, 40);
        let bases: Vec<i64> = log.segments.iter().map(|s| s.base_offset).collect();
        assert!(bases.len() >= 3, "rolled: {bases:?}");
        let files = index_files(dir.path());
        for (i, segment) in log.segments.iter().enumerate() {
            let index = &files[&format!("{:020}.index", segment.base_offset)];
            let time = &files[&format!("{:020}.timeindex", segment.base_offset)];
            let entries = index.len() / index::OFFSET_ENTRY_LEN;
            assert_eq!(index.len() % index::OFFSET_ENTRY_LEN, 0);
            assert_eq!(entries, segment.index.len());
            // Sparse: about one entry per 200 bytes, far fewer than batches.
            let batches_in_segment = (segment.size / batches[0].len() as u64) as usize;
            assert!(entries >= 1 && entries < batches_in_segment, "{entries}");
            let time_entries = time.len() / index::TIME_ENTRY_LEN;
            if i + 1 < log.segments.len() {
                // A closed segment's time index ends with its largest timestamp, added at the
                // roll unless the last pair had it already.
                assert!(time_entries == entries || time_entries == entries + 1);
                let last = &time[time.len() - index::TIME_ENTRY_LEN..];
                let ts = i64::from_be_bytes(last[..8].try_into().unwrap());
                assert_eq!(Some(ts), segment.index.max_timestamp().map(|m| m.0));
                let newest_batch = (log.segments[i + 1].base_offset - 2) / 2;
                assert_eq!(ts, 1000 + 10 * newest_batch + 1);
            } else {
                assert_eq!(time_entries, entries);
            }
        }
        // Every batch is found through the index: reads return exactly the stored batches.
        let mut offset = 0;
        for b in &batches {
            assert_eq!(&log.read(offset + 1, 1).unwrap().unwrap(), b);
            offset += 2;
        }
        assert_eq!(log.offset_for_timestamp(1001).unwrap(), Some((1, 1001)));
        assert_eq!(log.offset_for_timestamp(1002).unwrap(), Some((2, 1011)));
        assert_eq!(log.offset_for_timestamp(1391).unwrap(), Some((79, 1391)));
        assert_eq!(log.offset_for_timestamp(1392).unwrap(), None);
        assert_eq!(log.max_timestamp_offset().unwrap(), Some((79, 1391)));
        // Deleting segments deletes their indexes.
        log.delete_records_before(bases[2]).unwrap().unwrap();
        let files = index_files(dir.path());
        assert!(!files.contains_key(&format!("{:020}.index", bases[0])));
        assert!(!files.contains_key(&format!("{:020}.timeindex", bases[1])));
        assert!(files.contains_key(&format!("{:020}.index", bases[2])));
    }

    #[test]
    fn an_empty_partition_checkpoints_without_a_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), indexed()).unwrap();
        log.checkpoint().unwrap();
        assert_eq!(log.snapshot_offset, None);
        fill(&mut log, 1);
        log.checkpoint().unwrap();
        assert_eq!(log.snapshot_offset, Some(2));
        assert!(dir.path().join(format!("{:020}.snapshot", 2)).exists());
    }
}
