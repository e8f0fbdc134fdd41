//! What log compaction does with transactions, as Kafka's cleaner does: [`Transactions`] tells
//! aborted transactional batches (which compaction removes) from committed ones (compacted like
//! any others), and decides when a transaction marker may go.
//!
//! A marker stays while any batch of its transaction is still in the log: replaying the log
//! (producer state without a snapshot) must see every transaction end, and a `read_committed`
//! consumer needs an abort marker to stop dropping its producer's records. "Still in the log"
//! means seen by the pass removing the marker, kept or not: data removed by a pass is only
//! gone from disk once that pass swapped its segment in, so its marker goes at a later pass
//! (as in Kafka, where aborted data and its marker go in two cleanings). A marker then also
//! waits out `delete.retention.ms` after it was written, so that a consumer that read the data
//! before it was removed still sees the transaction end.

use super::batch::BatchHeader;
use super::txn_index::AbortedTxn;
use std::collections::{HashMap, HashSet};

/// Transaction bookkeeping of one compaction pass.
#[derive(Debug, Default)]
pub(super) struct Transactions {
    /// Aborted transactions of the whole log by producer id: (first offset, marker offset).
    aborted: HashMap<i64, Vec<(i64, i64)>>,
    /// Producers with a data batch seen since their last marker, in offset order.
    data_seen: HashSet<i64>,
}

impl Transactions {
    /// From the aborted transactions of every segment's aborted-transaction index.
    pub(super) fn new(entries: &[AbortedTxn]) -> Transactions {
        let mut aborted: HashMap<i64, Vec<(i64, i64)>> = HashMap::new();
        for e in entries {
            aborted
                .entry(e.producer_id)
                .or_default()
                .push((e.first_offset, e.last_offset));
        }
        Transactions {
            aborted,
            data_seen: HashSet::new(),
        }
    }

    /// Whether a data batch belongs to an aborted transaction. Only meaningful below the last
    /// stable offset, where every transaction has ended.
    pub(super) fn is_aborted(&self, h: &BatchHeader) -> bool {
        h.is_transactional()
            && !h.is_control()
            && self.aborted.get(&h.producer_id).is_some_and(|ranges| {
                ranges
                    .iter()
                    .any(|&(first, marker)| first <= h.base_offset && h.base_offset < marker)
            })
    }

    /// Notes a transactional data batch read by pass 2 (in offset order), kept or not.
    pub(super) fn on_data(&mut self, h: &BatchHeader) {
        if h.is_transactional() && !h.is_control() {
            self.data_seen.insert(h.producer_id);
        }
    }

    /// At a marker read by pass 2 (in offset order): whether it may be removed, given whether
    /// `delete.retention.ms` has passed since it was written. Ends the producer's transaction.
    pub(super) fn marker_removable(&mut self, h: &BatchHeader, retention_passed: bool) -> bool {
        let data_left = self.data_seen.remove(&h.producer_id);
        !data_left && retention_passed
    }
}

#[cfg(test)]
mod tests {
    use crate::log::batch::tests::make_keyed_batch;
    use crate::log::batch::BatchHeader;
    use crate::log::compaction;
    use crate::log::control::{marker_kind, Marker};
    use crate::log::test_support::options;
    use crate::log::PartitionLog;
    use bytes::BytesMut;
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };

    /// A transactional batch of producer `pid` (epoch 0) with these keys and values.
    fn txn_batch(pid: i64, seq: i32, records: &[(&str, &str)]) -> Vec<u8> {
        let records: Vec<Record> = records
            .iter()
            .enumerate()
            .map(|(i, (k, v))| Record {
                transactional: true,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: pid,
                producer_epoch: 0,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                sequence: seq + i as i32,
                timestamp: 1000,
                key: Some(bytes::Bytes::from(k.to_string())),
                value: Some(bytes::Bytes::from(v.to_string())),
                headers: Default::default(),
            })
            .collect();
        let mut out = BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        };
        RecordBatchEncoder::encode(&mut out, &records, &options).unwrap();
        out.to_vec()
    }

    fn put(log: &mut PartitionLog, records: &[(&str, Option<&str>)]) {
        log.append(&mut make_keyed_batch(records, 1000), false)
            .unwrap();
    }

    /// What the log holds, offset by offset: "key=value" or the marker.
    fn contents(log: &PartitionLog) -> Vec<(i64, String)> {
        let mut out = Vec::new();
        let mut offset = 0;
        while offset < log.next_offset() {
            let bytes = log.read(offset, 1 << 20).unwrap().unwrap();
            if bytes.is_empty() {
                break;
            }
            let mut pos = 0;
            while pos < bytes.len() {
                let h = BatchHeader::parse(&bytes[pos..]).unwrap();
                let batch = &bytes[pos..pos + h.total_len()];
                assert_eq!(crc32c::crc32c(&batch[21..]), h.crc);
                match marker_kind(batch) {
                    Some(m) => out.push((h.base_offset, format!("{m:?}({})", h.producer_id))),
                    None => {
                        for r in compaction::records(batch).unwrap() {
                            let key = String::from_utf8(r.key.unwrap().to_vec()).unwrap();
                            out.push((r.offset, key));
                        }
                    }
                }
                offset = h.last_offset() + 1;
                pos += h.total_len();
            }
        }
        out
    }

    fn expect(items: &[(i64, &str)]) -> Vec<(i64, String)> {
        items.iter().map(|(o, s)| (*o, s.to_string())).collect()
    }

    #[test]
    fn aborted_records_go_committed_ones_compact_and_markers_go_once_safe() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), options()).unwrap();
        put(&mut log, &[("a", Some("1")), ("b", Some("1"))]); // 0, 1
        log.append(&mut txn_batch(7, 0, &[("a", "2")]), false)
            .unwrap(); // 2
        log.append_marker(7, 0, Marker::Abort, 1000, false).unwrap(); // 3
        log.append(&mut txn_batch(8, 0, &[("b", "2")]), false)
            .unwrap(); // 4
        log.append_marker(8, 0, Marker::Commit, 1000, false)
            .unwrap(); // 5
        log.roll().unwrap();
        put(&mut log, &[("c", Some("1"))]); // 6, in the active segment
        assert_eq!(log.aborted_transactions(0, 7), vec![(7, 2)]);

        // The aborted a@2 goes and does not replace a@0; the committed b@4 replaces b@1. Both
        // markers stay: their transactions' data was still there when this pass began.
        assert_eq!(log.compact(i64::MAX).unwrap(), 2);
        let after_first = expect(&[
            (0, "a"),
            (3, "Abort(7)"),
            (4, "b"),
            (5, "Commit(8)"),
            (6, "c"),
        ]);
        assert_eq!(contents(&log), after_first);
        assert_eq!(log.aborted_transactions(0, 7), vec![(7, 2)]);

        // Within delete.retention.ms of the markers nothing more goes (a reopened log
        // compacts its closed segments again).
        drop(log);
        let mut log = PartitionLog::open(dir.path(), options()).unwrap();
        assert_eq!(log.compact(1000).unwrap(), 0);
        assert_eq!(contents(&log), after_first);

        // Past it, the abort marker goes with its index entry; the commit marker stays while
        // b@4 of its transaction does.
        drop(log);
        let mut log = PartitionLog::open(dir.path(), options()).unwrap();
        assert_eq!(log.compact(i64::MAX).unwrap(), 1);
        let after_second = expect(&[(0, "a"), (4, "b"), (5, "Commit(8)"), (6, "c")]);
        assert_eq!(contents(&log), after_second);
        assert!(log.aborted_transactions(0, 7).is_empty());

        // Once b@4 is superseded (by b@7, closed by a roll) and gone, its marker goes too.
        put(&mut log, &[("b", Some("3"))]); // 7
        log.roll().unwrap();
        assert_eq!(log.compact(i64::MAX).unwrap(), 1, "b@4");
        drop(log);
        let mut log = PartitionLog::open(dir.path(), options()).unwrap();
        assert_eq!(log.compact(i64::MAX).unwrap(), 1, "the commit marker");
        assert_eq!(contents(&log), expect(&[(0, "a"), (6, "c"), (7, "b")]));
        drop(log);
        let log = PartitionLog::open(dir.path(), options()).unwrap();
        assert_eq!(log.next_offset(), 8);
        assert_eq!(log.last_stable_offset(), 8, "no transaction left open");
        assert!(log.aborted_transactions(0, 8).is_empty());
    }

    #[test]
    fn compaction_stops_at_the_last_stable_offset() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), options()).unwrap();
        put(&mut log, &[("a", Some("1"))]); // 0
        log.roll().unwrap();
        put(&mut log, &[("b", Some("1"))]); // 1
        log.roll().unwrap();
        log.append(&mut txn_batch(9, 0, &[("a", "2"), ("b", "2")]), false)
            .unwrap(); // 2, 3: open
        put(&mut log, &[("b", Some("3"))]); // 4
        log.roll().unwrap();
        put(&mut log, &[("d", Some("1"))]); // 5, active
        assert_eq!(log.last_stable_offset(), 2);
        // Segments [0], [1] are below the stable offset; the open transaction's a@2 does not
        // count as a newer a, and b@4 above the stable offset not as a newer b.
        assert_eq!(log.compact(i64::MAX).unwrap(), 0);
        let all = expect(&[(0, "a"), (1, "b"), (2, "a"), (3, "b"), (4, "b"), (5, "d")]);
        assert_eq!(contents(&log), all);

        // Once committed, the transaction's records count: a@0 goes; b@1 and b@3 give way
        // to b@4. Segment [2, 5) is cleaned now that it is below the stable offset.
        log.append_marker(9, 0, Marker::Commit, 1000, false)
            .unwrap(); // 6
        log.roll().unwrap();
        assert_eq!(log.last_stable_offset(), 7);
        assert_eq!(log.compact(i64::MAX).unwrap(), 3);
        assert_eq!(
            contents(&log),
            expect(&[(2, "a"), (4, "b"), (5, "d"), (6, "Commit(9)")])
        );
    }
}
