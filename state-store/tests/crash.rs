//! A process killed after commits: a transactional RocksDB store reopens as of its last commit,
//! with the changelog offsets of that commit, and none of the writes held back after it.

use std::path::Path;
use std::process::Command;

use state_store::{
    ChangelogOffsets, KeyValueEngine, RocksDbConfig, RocksDbEngine, TransactionalEngine,
};

/// Set in the child process: the directory it writes its store to before it aborts.
const CHILD: &str = "STATE_STORE_CRASH_CHILD";
const TEST: &str = "a_killed_process_leaves_the_store_as_of_its_last_commit";

fn offsets(next: i64) -> ChangelogOffsets {
    ChangelogOffsets::from([(("app-s-changelog".to_string(), 3), next)])
}

fn key(i: u32) -> Vec<u8> {
    format!("k{i:05}").into_bytes()
}

/// Two commits, then writes held back, then an abort: nothing is flushed, so what survives
/// came through the write-ahead log.
fn child(dir: &Path) -> ! {
    let engine = RocksDbEngine::open("s", dir, &RocksDbConfig::default()).unwrap();
    let mut e = TransactionalEngine::new(Box::new(engine));
    for i in 0..2_000 {
        e.put(&key(i), b"1").unwrap();
    }
    e.commit(&offsets(1_000)).unwrap();
    for i in 0..1_000 {
        e.put(&key(i), b"2").unwrap();
    }
    e.delete(&key(1_999)).unwrap();
    e.delete_range(&key(1_500), &key(1_600)).unwrap();
    e.commit(&offsets(2_000)).unwrap();
    // Held back, never committed.
    e.put(&key(0), b"held").unwrap();
    e.put(b"uncommitted", b"x").unwrap();
    e.delete(&key(1_000)).unwrap();
    std::process::abort();
}

#[test]
fn a_killed_process_leaves_the_store_as_of_its_last_commit() {
    if let Some(dir) = std::env::var_os(CHILD) {
        child(Path::new(&dir));
    }
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s");
    let status = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", TEST, "--nocapture", "--test-threads=1"])
        .env(CHILD, &store)
        .status()
        .unwrap();
    assert!(!status.success(), "the child aborts: {status}");

    let e = RocksDbEngine::open("s", &store, &RocksDbConfig::default()).unwrap();
    assert_eq!(e.stored_offsets().unwrap(), offsets(2_000));
    let all = e.all().unwrap();
    let expected: Vec<(Vec<u8>, Vec<u8>)> = (0..2_000)
        .filter(|i| !(1_500..1_600).contains(i) && *i != 1_999)
        .map(|i| {
            (
                key(i),
                if i < 1_000 {
                    b"2".to_vec()
                } else {
                    b"1".to_vec()
                },
            )
        })
        .collect();
    assert_eq!(all.len(), expected.len());
    assert!(
        all == expected,
        "the store is exactly as of the second commit"
    );
}
