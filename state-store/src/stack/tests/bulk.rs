//! Stack tests of the paths past per-key writes: restoration and range drops.

use super::*;

#[test]
fn restore_bypasses_cache_and_changelog() {
    let (mut s, log) = stack(Some(CacheBudget::new(1 << 20)));
    s.put(b"k", Some(b"cached"), 1).unwrap();
    s.flush_cache().unwrap();
    s.restore_batch(&[(b("k"), Some(b("restored"))), (b("j"), Some(b("1")))])
        .unwrap();
    assert_eq!(s.get(b"k").unwrap(), Some(b("restored")));
    s.restore_batch(&[(b("j"), None)]).unwrap();
    assert_eq!(s.get(b"j").unwrap(), None);
    assert_eq!(log.records().len(), 1);
    assert!(s.flush_cache().unwrap().is_empty());
}

#[test]
fn drop_range_writes_out_dirty_cached_entries_before_dropping_them() {
    let (mut store, log) = stack(Some(CacheBudget::new(1 << 20)));
    store.put(b"a1", Some(b"old"), 1).unwrap();
    store.flush_cache().unwrap();
    store.put(b"a1", Some(b"new"), 2).unwrap();
    store.put(b"a2", Some(b"x"), 3).unwrap();
    store.put(b"b1", Some(b"kept"), 4).unwrap();
    let flushed = store.drop_range(b"a", b"b").unwrap();
    assert_eq!(
        flushed,
        vec![
            entry("a1", Some("new"), Some("old"), 2),
            entry("a2", Some("x"), None, 3)
        ]
    );
    assert_eq!(store.get(b"a1").unwrap(), None);
    assert_eq!(store.get(b"a2").unwrap(), None);
    assert_eq!(store.get(b"b1").unwrap(), Some(b"kept".to_vec()));
    // The last updates were logged before the range went.
    assert!(log
        .records()
        .contains(&logged("store", "a1", Some("new"), 2)));
}

#[test]
fn drop_range_forwards_in_write_order_like_a_flush() {
    let (mut store, _) = stack(Some(CacheBudget::new(1 << 20)));
    store.put(b"a2", Some(b"x"), 1).unwrap();
    store.put(b"a1", Some(b"y"), 2).unwrap();
    store.put(b"a3", Some(b"z"), 3).unwrap();
    store.put(b"a2", Some(b"w"), 4).unwrap();
    let keys: Vec<_> = store
        .drop_range(b"a", b"b")
        .unwrap()
        .into_iter()
        .map(|e| e.key)
        .collect();
    assert_eq!(keys, vec![b("a1"), b("a3"), b("a2")]);
}
