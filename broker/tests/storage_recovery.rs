//! What the broker's storage keeps across restarts and crashes, seen through the Kafka protocol
//! and the partition directory: segment indexes on disk (rebuilt when missing or damaged, with
//! the same answers), a torn tail after `kill -9` cut to the last whole batch with a consistent
//! index, and idempotent-producer state that outlives the batches it was learnt from.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use streams_broker::{Broker, BrokerConfig, BrokerHandle};

async fn start(dir: &Path) -> BrokerHandle {
    Broker::start(BrokerConfig {
        data_dir: Some(dir.to_path_buf()),
        log_cleanup_interval: Duration::from_millis(50),
        ..Default::default()
    })
    .await
    .unwrap()
}

fn partition_dir(data_dir: &Path, topic: &str) -> PathBuf {
    data_dir.join(format!("logs/{topic}-0"))
}

/// Files of a partition directory with one of these extensions, by name.
fn files_with(dir: &Path, extensions: &[&str]) -> std::collections::BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension()
                .is_some_and(|e| extensions.iter().any(|x| e == *x))
        })
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect()
}

fn index_files(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    files_with(dir, &["index", "timeindex"])
}

/// `.index` entries: (relative offset, position).
fn offset_entries(bytes: &[u8]) -> Vec<(u32, u32)> {
    assert_eq!(bytes.len() % 8, 0, "whole entries");
    bytes
        .chunks(8)
        .map(|c| {
            (
                u32::from_be_bytes(c[..4].try_into().unwrap()),
                u32::from_be_bytes(c[4..].try_into().unwrap()),
            )
        })
        .collect()
}

/// `.timeindex` entries: (timestamp, relative offset).
fn time_entries(bytes: &[u8]) -> Vec<(i64, u32)> {
    assert_eq!(bytes.len() % 12, 0, "whole entries");
    bytes
        .chunks(12)
        .map(|c| {
            (
                i64::from_be_bytes(c[..8].try_into().unwrap()),
                u32::from_be_bytes(c[8..].try_into().unwrap()),
            )
        })
        .collect()
}

/// Batch `i` holds offsets `3i..3i+3` with timestamps `ts0 + 100i + 0..3`.
async fn produce_batches(c: &mut Client, topic: &str, n: i64, ts0: i64) {
    for i in 0..n {
        let b = batch_at(3, None, ts0 + 100 * i);
        assert_eq!(produce(c, topic, b).await, (0, 3 * i));
    }
}

/// The first (offset, batch max timestamp) at or after `ts` among `n` batches laid out as by
/// [`produce_batches`].
fn expected_for_timestamp(ts: i64, n: i64, ts0: i64) -> Option<(i64, i64)> {
    (0..n)
        .flat_map(|i| (0..3).map(move |j| (3 * i + j, ts0 + 100 * i + j, ts0 + 100 * i + 2)))
        .find(|(_, t, _)| *t >= ts)
        .map(|(offset, _, max)| (offset, max))
}

/// Timestamps worth asking about for batches from `ts0`.
fn probes(ts0: i64) -> Vec<i64> {
    let mut ts = vec![0, ts0 - 1, ts0, ts0 + 1, ts0 + 2, ts0 + 3, ts0 + 99];
    ts.extend((0..70).map(|i| ts0 + 100 * i + i % 4));
    ts
}

/// Everything a client can ask about the partition: every offset fetched one batch at a time,
/// a fetch of everything, timestamp lookups, max timestamp, earliest and latest.
async fn answers(c: &mut Client, topic: &str, ts0: i64) -> Vec<String> {
    let hwm = high_watermark(c, topic).await;
    let mut out = Vec::new();
    for offset in 0..=hwm {
        out.push(format!(
            "fetch {offset}: {:?}",
            fetch(c, topic, offset, 1).await
        ));
    }
    out.push(format!(
        "fetch all: {:?}",
        fetch(c, topic, 0, 1 << 20).await
    ));
    for ts in probes(ts0).into_iter().chain([-3, -2, -1]) {
        out.push(format!("ts {ts}: {:?}", list_offset(c, topic, ts).await));
    }
    out
}

async fn check_timestamp_lookups(c: &mut Client, topic: &str, n: i64, ts0: i64) {
    for ts in probes(ts0) {
        let (error, offset, timestamp) = list_offset(c, topic, ts).await;
        assert_eq!(error, 0);
        let expected = expected_for_timestamp(ts, n, ts0).unwrap_or((-1, -1));
        assert_eq!((offset, timestamp), expected, "timestamp {ts}");
    }
    let max = ts0 + 100 * (n - 1) + 2;
    assert_eq!(list_offset(c, topic, -3).await, (0, 3 * n - 1, max));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indexes_are_on_disk_and_rebuilt_the_same_when_missing_or_damaged() {
    const TOPIC: &str = "indexed";
    const TS0: i64 = 10_000;
    const BATCHES: i64 = 60;
    let data = tempfile::tempdir().unwrap();
    let dir = partition_dir(data.path(), TOPIC);
    let broker = start(data.path()).await;
    let mut c = Client::connect(&broker).await;
    // About 10 batches per segment and an index entry every 3 batches or so; records from 1970
    // are kept (no time retention).
    create_topic_with(
        &mut c,
        TOPIC,
        &[
            ("segment.bytes", "4000"),
            ("index.interval.bytes", "1000"),
            ("retention.ms", "-1"),
        ],
    )
    .await;
    produce_batches(&mut c, TOPIC, BATCHES, TS0).await;
    check_timestamp_lookups(&mut c, TOPIC, BATCHES, TS0).await;
    let expected = answers(&mut c, TOPIC, TS0).await;
    broker.shutdown().await.unwrap();

    // Every segment has both index files, in whole entries; closed ones have entries.
    let segments: Vec<String> = files_with(&dir, &["log"]).into_keys().collect();
    assert!(segments.len() >= 5, "{segments:?}");
    let indexes = index_files(&dir);
    assert_eq!(indexes.len(), 2 * segments.len(), "{:?}", indexes.keys());
    for (i, segment) in segments.iter().enumerate() {
        let base = segment.trim_end_matches(".log");
        let offsets = offset_entries(&indexes[&format!("{base}.index")]);
        let times = time_entries(&indexes[&format!("{base}.timeindex")]);
        if i + 1 < segments.len() {
            assert!(!offsets.is_empty() && !times.is_empty(), "{base}");
        }
        let batch_len = batch_at(3, None, TS0).len() as u64;
        let batches_in_segment = std::fs::metadata(dir.join(segment)).unwrap().len() / batch_len;
        assert!(
            (offsets.len() as u64) < batches_in_segment,
            "sparse: {base}"
        );
    }

    // Deleted: rebuilt at start, byte for byte, and the answers are the same.
    for name in indexes.keys() {
        std::fs::remove_file(dir.join(name)).unwrap();
    }
    let broker = start(data.path()).await;
    let mut c = Client::connect(&broker).await;
    assert_eq!(answers(&mut c, TOPIC, TS0).await, expected);
    check_timestamp_lookups(&mut c, TOPIC, BATCHES, TS0).await;
    broker.shutdown().await.unwrap();
    assert_eq!(index_files(&dir), indexes);

    // Damaged: a torn entry, garbage, an emptied file, an active index cut short.
    let name = |i: usize, ext: &str| format!("{}.{ext}", segments[i].trim_end_matches(".log"));
    let path = dir.join(name(0, "index"));
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(f.metadata().unwrap().len() - 3).unwrap();
    let path = dir.join(name(1, "timeindex"));
    let len = std::fs::metadata(&path).unwrap().len() as usize;
    std::fs::write(&path, vec![0x7f; len]).unwrap();
    std::fs::write(dir.join(name(2, "index")), b"").unwrap();
    let last = segments.len() - 1;
    let path = dir.join(name(last, "index"));
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(f.metadata().unwrap().len().saturating_sub(8))
        .unwrap();
    let broker = start(data.path()).await;
    let mut c = Client::connect(&broker).await;
    assert_eq!(answers(&mut c, TOPIC, TS0).await, expected);
    check_timestamp_lookups(&mut c, TOPIC, BATCHES, TS0).await;
    broker.shutdown().await.unwrap();
    assert_eq!(index_files(&dir), indexes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_torn_tail_is_cut_to_the_last_whole_batch_with_a_consistent_index() {
    const TOPIC: &str = "torn";
    const TS0: i64 = 50_000;
    const BATCHES: i64 = 20;
    let data = tempfile::tempdir().unwrap();
    let dir = partition_dir(data.path(), TOPIC);
    let broker = BrokerProcess::start(data.path());
    let mut c = Client::connect_to(&broker.addr).await;
    create_topic_with(&mut c, TOPIC, &[("index.interval.bytes", "500")]).await;
    produce_batches(&mut c, TOPIC, BATCHES, TS0).await;
    let before = answers(&mut c, TOPIC, TS0).await;
    drop(c);
    broker.kill();

    // Cut the last batch in half, as a crash in the middle of its write would.
    let segment = dir.join(format!("{:020}.log", 0));
    let len = std::fs::metadata(&segment).unwrap().len();
    assert_eq!(len % BATCHES as u64, 0, "equal-sized batches");
    let batch_len = len / BATCHES as u64;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap()
        .set_len(len - batch_len / 2)
        .unwrap();

    let broker = BrokerProcess::start(data.path());
    let mut c = Client::connect_to(&broker.addr).await;
    assert_eq!(
        std::fs::metadata(&segment).unwrap().len(),
        len - batch_len,
        "cut to the last whole batch"
    );
    assert_eq!(high_watermark(&mut c, TOPIC).await, 3 * (BATCHES - 1));
    // The index points at whole batches that are still there, with their offsets and the
    // largest timestamp up to each.
    let offsets = offset_entries(&std::fs::read(dir.join(format!("{:020}.index", 0))).unwrap());
    let times = time_entries(&std::fs::read(dir.join(format!("{:020}.timeindex", 0))).unwrap());
    assert!(offsets.len() >= 2, "{offsets:?}");
    assert_eq!(offsets.len(), times.len());
    for ((relative, position), (ts, ts_relative)) in offsets.iter().zip(&times) {
        let batch = u64::from(*position) / batch_len;
        assert_eq!(u64::from(*position) % batch_len, 0);
        assert!(batch < BATCHES as u64 - 1);
        assert_eq!(u64::from(*relative), 3 * batch);
        assert_eq!(
            (*ts, *ts_relative),
            (TS0 + 100 * batch as i64 + 2, *relative)
        );
    }
    // Everything below the cut reads as before; timestamp lookups see 19 batches.
    let after = answers(&mut c, TOPIC, TS0).await;
    let fetches = 3 * (BATCHES - 1) as usize;
    assert_eq!(after[..fetches], before[..fetches]);
    check_timestamp_lookups(&mut c, TOPIC, BATCHES - 1, TS0).await;
    // Appends continue at the next offset and are indexed.
    let b = batch_at(3, None, TS0 + 100 * 30);
    assert_eq!(produce(&mut c, TOPIC, b.clone()).await, (0, 57));
    assert_eq!(
        list_offset(&mut c, TOPIC, TS0 + 100 * 25).await,
        (0, 57, TS0 + 3002)
    );
    assert_eq!(fetch(&mut c, TOPIC, 58, 1).await.1.len(), b.len());
    drop(c);
    broker.kill();
}

/// Produces batches of 2 records for producer `pid` with the given first sequence numbers,
/// checking each lands at the expected offset.
async fn produce_idempotent(c: &mut Client, topic: &str, pid: (i64, i16), seqs: &[(i32, i64)]) {
    for &(seq, offset) in seqs {
        let b = batch_at(2, Some((pid.0, pid.1, seq)), 1_000);
        assert_eq!(produce(c, topic, b).await, (0, offset), "sequence {seq}");
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_producer_continues_after_retention_deleted_its_batches_and_a_restart() {
    const TOPIC: &str = "idem-retention";
    let data = tempfile::tempdir().unwrap();
    let broker = start(data.path()).await;
    let mut c = Client::connect(&broker).await;
    // Three of the producer's batches fill the first segment.
    create_topic_with(&mut c, TOPIC, &[("segment.bytes", "1000")]).await;
    let pid = init_producer_id(&mut c).await;
    produce_idempotent(&mut c, TOPIC, pid, &[(0, 0), (2, 2), (4, 4)]).await;
    // Recent records from another writer: the segments holding them stay.
    for i in 0..10 {
        let b = batch_at(2, None, now_ms());
        assert_eq!(produce(&mut c, TOPIC, b).await, (0, 6 + 2 * i));
    }
    // Retention (the producer's records are from 1970) deletes the producer's segment.
    let deadline = Instant::now() + Duration::from_secs(20);
    while list_offset(&mut c, TOPIC, -2).await.1 < 6 {
        assert!(Instant::now() < deadline, "retention did not run");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(fetch(&mut c, TOPIC, 4, 1).await.0, 1, "OFFSET_OUT_OF_RANGE");
    broker.shutdown().await.unwrap();

    let broker = start(data.path()).await;
    let mut c = Client::connect(&broker).await;
    assert_eq!(list_offset(&mut c, TOPIC, -2).await.1, 6);
    // The producer carries on with its next sequence (not UNKNOWN_PRODUCER_ID), and a retry of
    // its last batch before the restart is still recognised.
    produce_idempotent(&mut c, TOPIC, pid, &[(6, 26)]).await;
    produce_idempotent(&mut c, TOPIC, pid, &[(4, 4), (6, 26)]).await;
    let gap = batch_at(2, Some((pid.0, pid.1, 20)), 1_000);
    assert_eq!(
        produce(&mut c, TOPIC, gap).await.0,
        45,
        "OUT_OF_ORDER_SEQUENCE"
    );
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_producer_continues_after_delete_records_and_kill_9() {
    const TOPIC: &str = "idem-deleted";
    let data = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(data.path());
    let mut c = Client::connect_to(&broker.addr).await;
    create_topic_with(&mut c, TOPIC, &[("segment.bytes", "1000")]).await;
    let pid = init_producer_id(&mut c).await;
    produce_idempotent(&mut c, TOPIC, pid, &[(0, 0), (2, 2), (4, 4)]).await;
    for i in 0..4 {
        let b = batch_at(2, None, now_ms());
        assert_eq!(produce(&mut c, TOPIC, b).await, (0, 6 + 2 * i));
    }
    // Every record goes, so do the segments; then the broker dies without a clean shutdown.
    assert_eq!(delete_records(&mut c, TOPIC, -1).await, (0, 14));
    drop(c);
    broker.kill();
    let segments = files_with(&partition_dir(data.path(), TOPIC), &["log"]);
    assert_eq!(segments.len(), 1, "only an empty active segment is left");
    assert!(segments.values().all(|s| s.is_empty()));

    let broker = BrokerProcess::start(data.path());
    let mut c = Client::connect_to(&broker.addr).await;
    assert_eq!(list_offset(&mut c, TOPIC, -2).await.1, 14);
    produce_idempotent(&mut c, TOPIC, pid, &[(6, 14)]).await;
    drop(c);
    broker.kill();
}
