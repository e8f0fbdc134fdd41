//! Reads: batches by offset for Fetch, and the offset lookups of ListOffsets (by timestamp and
//! for the largest timestamp), each starting from the segment indexes.

use super::batch;
use super::PartitionLog;
use crate::error::Result;
use kafka_protocol::error::ResponseError;

impl PartitionLog {
    /// Whole batches starting with the one that holds `offset`, up to `max_bytes` but always at
    /// least one batch. Empty at the end of the log. (Fetch uses [`read_below`](Self::read_below).)
    #[cfg(test)]
    pub(crate) fn read(
        &self,
        offset: i64,
        max_bytes: usize,
    ) -> Result<Result<Vec<u8>, ResponseError>> {
        self.read_below(offset, max_bytes, self.next_offset)
    }

    /// Like [`read`](Self::read), but only batches that start below `end` (for `read_committed`
    /// the last stable offset: a batch belongs to one producer, so it is either wholly below an
    /// open transaction's first offset or not). Empty if `offset` is at or past `end`.
    pub(crate) fn read_below(
        &self,
        offset: i64,
        max_bytes: usize,
        end: i64,
    ) -> Result<Result<Vec<u8>, ResponseError>> {
        if offset < self.log_start_offset || offset > self.next_offset {
            return Ok(Err(ResponseError::OffsetOutOfRange));
        }
        if offset >= end.min(self.next_offset) {
            return Ok(Ok(Vec::new()));
        }
        let first = self
            .segments
            .partition_point(|s| s.base_offset <= offset)
            .max(1)
            - 1;
        for segment in &self.segments[first..] {
            let Some((position, h)) = segment.locate(offset)? else {
                continue;
            };
            // One read of up to `max_bytes` (at least the first batch), cut back to whole
            // batches: cheaper than reading the headers in between one by one.
            let want = (max_bytes as u64)
                .min(segment.size - position)
                .max(h.total_len() as u64);
            let mut bytes = segment.read(position, want as usize)?;
            bytes.truncate(batch::batches_below(&bytes, end));
            return Ok(Ok(bytes));
        }
        Ok(Ok(Vec::new()))
    }

    /// The aborted transactions a `read_committed` consumer of `[from, to)` must know about:
    /// those whose abort marker is at or after `from` and whose first offset is before `to`,
    /// as (producer id, first offset). Markers live in the segment they were written to, which
    /// is never before the one that holds `from` if the marker is at or after it.
    pub(crate) fn aborted_transactions(&self, from: i64, to: i64) -> Vec<(i64, i64)> {
        let first = self
            .segments
            .partition_point(|s| s.base_offset <= from)
            .max(1)
            - 1;
        let mut out = Vec::new();
        for segment in &self.segments[first..] {
            for e in segment.aborted.entries() {
                if e.last_offset >= from && e.first_offset < to {
                    out.push((e.producer_id, e.first_offset));
                }
            }
        }
        out
    }

    /// Offset of the first record with a timestamp >= `timestamp`, with that batch's max
    /// timestamp; `None` if every record is older.
    pub(crate) fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<(i64, i64)>> {
        for (i, segment) in self.segments.iter().enumerate() {
            if self.segment_end(i) <= self.log_start_offset
                || segment
                    .index
                    .max_timestamp()
                    .is_none_or(|(max, _)| max < timestamp)
            {
                continue;
            }
            let from = segment
                .index
                .offset_for_timestamp(timestamp)
                .max(self.log_start_offset);
            let mut headers = segment.headers(segment.index.position_for(from));
            while let Some((position, h)) = headers.next_batch()? {
                if h.last_offset() < from || h.max_timestamp < timestamp {
                    continue;
                }
                let bytes = segment.read(position, h.total_len())?;
                let offset = batch::first_offset_at_or_after(&bytes, timestamp)
                    .unwrap_or(h.base_offset)
                    .max(self.log_start_offset);
                return Ok(Some((offset, h.max_timestamp)));
            }
        }
        Ok(None)
    }

    /// Last offset and timestamp of the earliest batch with the largest timestamp (ListOffsets
    /// -3), from the segments' indexes; only a segment that DeleteRecords cut into is scanned.
    pub(crate) fn max_timestamp_offset(&self) -> Result<Option<(i64, i64)>> {
        let mut best: Option<(i64, i64, usize)> = None;
        for (i, segment) in self.segments.iter().enumerate() {
            if self.segment_end(i) <= self.log_start_offset {
                continue;
            }
            let candidate = if segment.base_offset < self.log_start_offset {
                let mut max: Option<(i64, i64)> = None;
                if let Some((position, _)) = segment.locate(self.log_start_offset)? {
                    let mut headers = segment.headers(position);
                    while let Some((_, h)) = headers.next_batch()? {
                        if max.is_none_or(|(ts, _)| h.max_timestamp > ts) {
                            max = Some((h.max_timestamp, h.base_offset));
                        }
                    }
                }
                max
            } else {
                segment.index.max_timestamp()
            };
            if let Some((ts, offset)) = candidate {
                if best.is_none_or(|(best_ts, _, _)| ts > best_ts) {
                    best = Some((ts, offset, i));
                }
            }
        }
        let Some((ts, offset, i)) = best else {
            return Ok(None);
        };
        Ok(self.segments[i]
            .locate(offset)?
            .map(|(_, h)| (h.last_offset(), ts)))
    }
}

#[cfg(test)]
mod tests {
    use crate::log::batch::tests::make_batch;
    use crate::log::test_support::{answers, indexed, options};
    use crate::log::PartitionLog;
    use kafka_protocol::error::ResponseError;

    #[test]
    fn append_read_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), options()).unwrap();
        let mut b1 = make_batch(3, 1000, None);
        let mut b2 = make_batch(2, 2000, None);
        assert_eq!(log.append(&mut b1, false).unwrap(), 0);
        assert_eq!(log.append(&mut b2, false).unwrap(), 3);
        assert_eq!(log.next_offset(), 5);
        // A mid-batch offset is served from the batch that holds it.
        let read = log.read(1, 1).unwrap().unwrap();
        assert_eq!(read, b1);
        let read = log.read(0, 1 << 20).unwrap().unwrap();
        assert_eq!(read.len(), b1.len() + b2.len());
        assert!(log.read(5, 100).unwrap().unwrap().is_empty());
        assert_eq!(
            log.read(6, 100).unwrap(),
            Err(ResponseError::OffsetOutOfRange)
        );
        assert_eq!(log.offset_for_timestamp(1001).unwrap(), Some((1, 1002)));
        assert_eq!(log.offset_for_timestamp(2001).unwrap(), Some((4, 2001)));
        drop(log);
        let log = PartitionLog::open(dir.path(), options()).unwrap();
        assert_eq!(log.next_offset(), 5);
        assert_eq!(log.read(3, 1).unwrap().unwrap(), b2);
    }

    #[test]
    fn timestamp_lookups_are_the_same_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), indexed()).unwrap();
        // Timestamps that go back and forth, as producers' create times may.
        for i in 0..40i64 {
            let ts = 1000 + 10 * i + if i % 3 == 0 { 200 } else { 0 };
            log.append(&mut make_batch(2, ts, None), false).unwrap();
        }
        let before = answers(&log);
        let max = log.max_timestamp_offset().unwrap();
        // The answers agree with a plain scan of every batch.
        for (k, ts) in (990..1300).step_by(7).enumerate() {
            let expected = (0..40i64)
                .map(|i| (i, 1000 + 10 * i + if i % 3 == 0 { 200 } else { 0 }))
                .find(|(_, t)| t + 1 >= ts)
                .map(|(i, t)| (2 * i + i64::from(t < ts), t + 1));
            assert_eq!(before.1[k], expected, "ts {ts}");
        }
        assert_eq!(max, Some((79, 1591)));
        drop(log);
        let log = PartitionLog::open(dir.path(), indexed()).unwrap();
        assert_eq!(answers(&log), before);
        assert_eq!(log.max_timestamp_offset().unwrap(), max);
    }

    #[test]
    fn read_committed_stops_at_the_stable_offset_and_lists_aborts() {
        use crate::log::batch::tests::make_txn_batch;
        use crate::log::control::Marker;
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), options()).unwrap();
        let plain = make_batch(2, 1000, None);
        log.append(&mut plain.clone(), false).unwrap(); // 0-1
        log.append(&mut make_txn_batch(2, 1000, (7, 0, 0)), false)
            .unwrap(); // 2-3
        log.append(&mut make_batch(1, 1000, None), false).unwrap(); // 4
        assert_eq!(log.last_stable_offset(), 2);
        assert_eq!(log.read_below(0, 1 << 20, 2).unwrap().unwrap(), plain);
        assert!(log.read_below(2, 1 << 20, 2).unwrap().unwrap().is_empty());
        assert_eq!(
            log.append_marker(7, 0, Marker::Abort, 1000, false).unwrap(),
            5
        );
        assert_eq!(log.last_stable_offset(), 6);
        assert_eq!(log.aborted_transactions(0, 6), vec![(7, 2)]);
        assert_eq!(log.aborted_transactions(5, 6), vec![(7, 2)]);
        assert!(
            log.aborted_transactions(6, 6).is_empty(),
            "marker before the fetch"
        );
        assert!(
            log.aborted_transactions(0, 2).is_empty(),
            "starts after the range"
        );
        log.append(&mut make_txn_batch(1, 1000, (8, 0, 0)), false)
            .unwrap(); // 6
        assert_eq!(
            log.append_marker(8, 0, Marker::Commit, 1000, false)
                .unwrap(),
            7
        );
        assert_eq!(log.last_stable_offset(), 8);
        assert_eq!(log.aborted_transactions(0, 8), vec![(7, 2)]);
        drop(log);
        let log = PartitionLog::open(dir.path(), options()).unwrap();
        assert_eq!(log.last_stable_offset(), 8);
        assert_eq!(log.aborted_transactions(0, 8), vec![(7, 2)]);
    }
}
