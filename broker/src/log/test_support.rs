//! Helpers shared by the log's unit tests: option presets, filling a log, and snapshots of what
//! a log holds and answers, to compare before and after a reopen.

use super::batch::tests::make_batch;
use super::segment::segment_path;
use super::{LogOptions, PartitionLog, DEFAULT_INDEX_INTERVAL_BYTES};
use std::path::{Path, PathBuf};

/// Segments large enough that the tests using this never roll.
pub(super) fn options() -> LogOptions {
    opts(1 << 20)
}

/// Segments of `segment_bytes`, Kafka's default index interval.
pub(super) fn opts(segment_bytes: u64) -> LogOptions {
    LogOptions {
        segment_bytes,
        index_interval_bytes: DEFAULT_INDEX_INTERVAL_BYTES,
    }
}

/// Small segments with many index entries: 2-record batches are about 110 bytes.
pub(super) fn indexed() -> LogOptions {
    LogOptions {
        segment_bytes: 1500,
        index_interval_bytes: 200,
    }
}

/// Appends `n` batches of 2 records, batch `i` with timestamps `1000 + 10i` and one more;
/// returns each batch as stored.
pub(super) fn fill(log: &mut PartitionLog, n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let mut b = make_batch(2, 1000 + 10 * i as i64, None);
            log.append(&mut b, false).unwrap();
            b
        })
        .collect()
}

/// Every index file of the partition, by name.
pub(super) fn index_files(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension()
                .is_some_and(|e| e == "index" || e == "timeindex")
        })
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect()
}

pub(super) type Answers = (Vec<Vec<u8>>, Vec<Option<(i64, i64)>>);

/// What the log answers: a one-record read of every offset, and timestamp lookups.
pub(super) fn answers(log: &PartitionLog) -> Answers {
    let reads = (log.log_start_offset()..log.next_offset())
        .map(|o| log.read(o, 1).unwrap().unwrap())
        .collect();
    let times = (990..1300)
        .step_by(7)
        .map(|ts| log.offset_for_timestamp(ts).unwrap())
        .collect();
    (reads, times)
}

pub(super) fn segment_file(dir: &Path, base: i64) -> PathBuf {
    segment_path(dir, base)
}
