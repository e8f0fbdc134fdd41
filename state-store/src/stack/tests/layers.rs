//! Stack tests of how the layers compose: uncached, unlogged, closed, over RocksDB.

use super::*;
use crate::{RocksDbConfig, RocksDbEngine};

#[test]
fn stack_is_send() {
    fn assert_send<T: Send>() {}
    assert_send::<KeyValueStoreStack>();
}

#[test]
fn layers_are_reported() {
    let plain = KeyValueStoreStack::new(Box::new(InMemoryEngine::new("plain")));
    assert_eq!(plain.name(), "plain");
    assert!(!plain.persistent() && !plain.is_cached() && !plain.is_logged());
    let (full, _) = stack(Some(CacheBudget::new(1024)));
    assert!(full.is_cached() && full.is_logged());
}

#[test]
fn uncached_writes_are_logged_in_order() {
    let (mut s, log) = stack(None);
    assert!(s.put(b"a", Some(b"1"), 10).unwrap().is_empty());
    assert!(s.put(b"a", Some(b"2"), 11).unwrap().is_empty());
    assert_eq!(
        s.put_if_absent(b"a", b"3", 12).unwrap(),
        (Some(b("2")), vec![])
    );
    assert_eq!(s.put_if_absent(b"b", b"1", 13).unwrap(), (None, vec![]));
    assert_eq!(s.delete(b"a", 14).unwrap(), (Some(b("2")), vec![]));
    assert_eq!(s.get(b"a").unwrap(), None);
    assert_eq!(s.get(b"b").unwrap(), Some(b("1")));
    assert_eq!(
        log.records(),
        vec![
            logged("store", "a", Some("1"), 10),
            logged("store", "a", Some("2"), 11),
            logged("store", "b", Some("1"), 13),
            logged("store", "a", None, 14),
        ]
    );
    assert!(s.flush_cache().unwrap().is_empty());
}

#[test]
fn unlogged_stack_writes_engine_only() {
    let mut s = KeyValueStoreStack::new(Box::new(InMemoryEngine::new("s")));
    s.put(b"a", Some(b"1"), 0).unwrap();
    assert_eq!(s.all().unwrap(), vec![(b("a"), b("1"))]);
}

#[test]
fn close_releases_budget_without_flushing() {
    let budget = CacheBudget::new(1 << 20);
    let (mut s, log) = stack(Some(budget.clone()));
    s.put(b"k", Some(b"v"), 1).unwrap();
    assert!(budget.used_bytes() > 0);
    s.close().unwrap();
    assert_eq!(budget.used_bytes(), 0);
    assert!(log.records().is_empty());
    assert!(matches!(s.get(b"k"), Err(crate::StoreError::Closed { .. })));
}

#[test]
fn cached_rocksdb_stack_persists_after_flush() {
    let dir = tempfile::tempdir().unwrap();
    let config = RocksDbConfig {
        block_cache_bytes: 1 << 20,
        ..RocksDbConfig::default()
    };
    let recorder = Recorder::default();
    let engine = RocksDbEngine::open("persisted", dir.path(), &config).unwrap();
    let mut s = KeyValueStoreStack::new(Box::new(engine))
        .with_changelog(Box::new(recorder.clone()))
        .with_cache(CacheBudget::new(1 << 20));
    assert!(s.persistent());
    s.put(b"a", Some(b"1"), 1).unwrap();
    s.put(b"a", Some(b"2"), 2).unwrap();
    s.put(b"b", Some(b"1"), 3).unwrap();
    assert_eq!(s.flush_cache().unwrap().len(), 2);
    s.flush().unwrap();
    s.close().unwrap();
    assert_eq!(
        recorder.records(),
        vec![
            logged("persisted", "a", Some("2"), 2),
            logged("persisted", "b", Some("1"), 3)
        ]
    );

    let engine = RocksDbEngine::open("persisted", dir.path(), &config).unwrap();
    let s = KeyValueStoreStack::new(Box::new(engine));
    assert_eq!(s.all().unwrap(), vec![(b("a"), b("2")), (b("b"), b("1"))]);
}
