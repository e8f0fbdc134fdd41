//! Deleting from the front of the log: DeleteRecords moves the log start, and time and size
//! retention drop the oldest closed segments.

use super::files::{remove_segment_files, write_log_start};
use super::PartitionLog;
use crate::error::Result;
use kafka_protocol::error::ResponseError;

impl PartitionLog {
    /// Moves the log start forward to `offset` (DeleteRecords), deleting segments wholly below it.
    pub(crate) fn delete_records_before(
        &mut self,
        offset: i64,
    ) -> Result<Result<i64, ResponseError>> {
        if offset < 0 || offset > self.next_offset {
            return Ok(Err(ResponseError::OffsetOutOfRange));
        }
        if offset > self.log_start_offset {
            self.log_start_offset = offset;
            write_log_start(&self.dir, offset)?;
            self.delete_segments_below_start()?;
        }
        Ok(Ok(self.log_start_offset))
    }

    fn delete_segments_below_start(&mut self) -> Result<()> {
        if self.log_start_offset >= self.next_offset
            && self.segments.last().is_some_and(|s| s.size > 0)
        {
            self.roll()?;
        }
        while self.segments.len() > 1 {
            let next_base = self.segments[1].base_offset;
            if next_base > self.log_start_offset {
                break;
            }
            let old = self.segments.remove(0);
            remove_segment_files(&self.dir, old.base_offset)?;
        }
        Ok(())
    }

    /// Deletes the oldest closed segments while the log is over `retention_bytes` or a segment's
    /// newest record is older than `now_ms - retention_ms` (negative limits mean unlimited).
    /// Producer state is kept: a producer whose batches are all gone can still continue.
    pub(crate) fn apply_retention(
        &mut self,
        retention_ms: i64,
        retention_bytes: i64,
        now_ms: i64,
    ) -> Result<()> {
        let mut size = self.size_bytes() as i64;
        let mut new_start = self.log_start_offset;
        for (segment, next) in self.segments.iter().zip(&self.segments[1..]) {
            let newest = segment.index.max_timestamp().map_or(i64::MIN, |(ts, _)| ts);
            let too_old = retention_ms >= 0 && newest < now_ms.saturating_sub(retention_ms);
            let too_big = retention_bytes >= 0 && size > retention_bytes;
            if !(too_old || too_big) {
                break;
            }
            size -= segment.size as i64;
            new_start = new_start.max(next.base_offset);
        }
        if new_start > self.log_start_offset {
            tracing::debug!(dir = %self.dir.display(), new_start, "retention deletes segments");
            self.log_start_offset = new_start;
            write_log_start(&self.dir, new_start)?;
            self.delete_segments_below_start()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::log::batch::tests::make_batch;
    use crate::log::batch::BatchHeader;
    use crate::log::test_support::{fill, indexed, opts};
    use crate::log::{PartitionLog, SequenceCheck};
    use kafka_protocol::error::ResponseError;

    #[test]
    fn retention_by_size_and_time_deletes_oldest_closed_segments() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), opts(200)).unwrap();
        for i in 0..10 {
            log.append(&mut make_batch(2, 1000 + i, None), false)
                .unwrap();
        }
        let segments = log.segments.len();
        let size = log.size_bytes() as i64;
        // Unlimited: nothing happens.
        log.apply_retention(-1, -1, 10_000).unwrap();
        assert_eq!(log.segments.len(), segments);
        // By size: drop closed segments until under the limit; the active one always stays.
        log.apply_retention(-1, size / 2, 10_000).unwrap();
        assert!(log.size_bytes() as i64 <= size / 2 + 200);
        assert!(log.log_start_offset() > 0);
        let start = log.log_start_offset();
        assert_eq!(
            log.read(start - 1, 1).unwrap(),
            Err(ResponseError::OffsetOutOfRange)
        );
        // By time: everything older than now - 1s goes, except the active segment.
        log.apply_retention(1000, -1, 1_000_000).unwrap();
        assert_eq!(log.segments.len(), 1);
        assert_eq!(log.next_offset(), 20);
    }

    #[test]
    fn segments_roll_and_delete_records_drops_old_segments() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), opts(200)).unwrap();
        for i in 0..10 {
            log.append(&mut make_batch(2, 1000 + i, None), false)
                .unwrap();
        }
        assert!(log.segments.len() > 2);
        let before = log.segments.len();
        assert_eq!(log.delete_records_before(11).unwrap(), Ok(11));
        assert!(log.segments.len() < before);
        assert_eq!(
            log.read(10, 1).unwrap(),
            Err(ResponseError::OffsetOutOfRange)
        );
        assert!(!log.read(11, 1).unwrap().unwrap().is_empty());
        drop(log);
        let log = PartitionLog::open(dir.path(), opts(200)).unwrap();
        assert_eq!(log.log_start_offset(), 11);
        assert_eq!(log.next_offset(), 20);
    }

    #[test]
    fn producer_state_survives_deletion_of_its_batches_and_a_crash() {
        for how in ["delete-records", "retention"] {
            let dir = tempfile::tempdir().unwrap();
            let mut log = PartitionLog::open(dir.path(), indexed()).unwrap();
            for seq in [0, 2, 4] {
                log.append(&mut make_batch(2, 1000, Some((7, 0, seq))), false)
                    .unwrap();
            }
            // Other writers fill segments after the producer's, so all of its batches can go.
            fill(&mut log, 30);
            match how {
                "delete-records" => {
                    log.delete_records_before(log.next_offset())
                        .unwrap()
                        .unwrap();
                }
                _ => log.apply_retention(1000, -1, 1_000_000).unwrap(),
            }
            assert!(log.log_start_offset() > 6, "{how}");
            assert_eq!(
                log.read(0, 1).unwrap(),
                Err(ResponseError::OffsetOutOfRange)
            );
            // No checkpoint: dropped as in a crash; the snapshot taken at the last roll holds.
            drop(log);
            let log = PartitionLog::open(dir.path(), indexed()).unwrap();
            let next = make_batch(1, 1000, Some((7, 0, 6)));
            let h = BatchHeader::parse(&next).unwrap();
            assert_eq!(log.check_sequence(&h), Ok(SequenceCheck::Append), "{how}");
            let retry = make_batch(2, 1000, Some((7, 0, 4)));
            let h = BatchHeader::parse(&retry).unwrap();
            assert_eq!(
                log.check_sequence(&h),
                Ok(SequenceCheck::Duplicate(4)),
                "{how}: a retry still gets its original offset"
            );
            // Without snapshots, only the log is left to learn from: the producer is unknown.
            drop(log);
            for e in std::fs::read_dir(dir.path()).unwrap() {
                let p = e.unwrap().path();
                if p.extension().is_some_and(|e| e == "snapshot") {
                    std::fs::remove_file(p).unwrap();
                }
            }
            let log = PartitionLog::open(dir.path(), indexed()).unwrap();
            let h = BatchHeader::parse(&next).unwrap();
            assert_eq!(
                log.check_sequence(&h),
                Err(ResponseError::UnknownProducerId),
                "{how}"
            );
        }
    }
}
