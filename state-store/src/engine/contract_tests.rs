//! The [`KeyValueEngine`] contract as one suite of checks, each run as a test against every engine.

use std::ops::Bound::{Excluded, Included, Unbounded};

use tempfile::TempDir;

use super::rocks::tests::small_config;
use super::{rocksdb_dir, InMemoryEngine, KeyValueEngine, RocksDbEngine, TransactionalEngine};
use crate::{KeyValue, StoreError};

/// The name of every engine under test.
const STORE: &str = "contract-store";

/// An engine under test and the temporary directory it may live in. Fields drop in declaration
/// order, so the engine closes before its directory is removed.
struct Subject<E> {
    engine: E,
    _dir: Option<TempDir>,
}

fn open_memory() -> Subject<InMemoryEngine> {
    Subject {
        engine: InMemoryEngine::new(STORE),
        _dir: None,
    }
}

fn open_rocksdb() -> Subject<RocksDbEngine> {
    let dir = tempfile::tempdir().unwrap();
    // Neither `rocksdb/` nor the store's directory exists yet, so every RocksDB check also shows
    // that open creates the missing parents.
    let path = rocksdb_dir(dir.path(), STORE);
    Subject {
        engine: RocksDbEngine::open(STORE, &path, &small_config()).unwrap(),
        _dir: Some(dir),
    }
}

/// The transactional layer with every write held back (none committed): reads come from its
/// held writes alone.
fn open_transactional_memory() -> Subject<TransactionalEngine> {
    Subject {
        engine: TransactionalEngine::new(Box::new(InMemoryEngine::new(STORE))),
        _dir: None,
    }
}

fn open_transactional_rocksdb() -> Subject<TransactionalEngine> {
    let Subject { engine, _dir } = open_rocksdb();
    Subject {
        engine: TransactionalEngine::new(Box::new(engine)),
        _dir,
    }
}

/// Declares module `$engine` with one `#[test]` per contract check, each on a fresh engine from
/// `$open`, and a test that the engine's `persistent()` is `$persistent`.
macro_rules! contract_tests {
    ($engine:ident, $open:ident, persistent: $persistent:expr) => {
        contract_tests!(@each $engine, $open, $persistent, [
            get_put_delete,
            range_bounds_are_inclusive_and_optional,
            inclusive_upper_bound_does_not_include_longer_keys,
            keys_order_by_bytes,
            write_batch_applies_puts_and_deletes_in_order,
            delete_range_is_half_open,
            scan_pages_in_both_directions_within_bounds,
            closed_engine_refuses_use,
        ]);
    };
    (@each $engine:ident, $open:ident, $persistent:expr, [$($check:ident),+ $(,)?]) => {
        mod $engine {
            use super::*;

            #[test]
            fn reports_its_persistence() {
                assert_eq!($open().engine.persistent(), $persistent);
            }

            $(
                #[test]
                fn $check() {
                    let mut subject = $open();
                    super::$check(&mut subject.engine);
                }
            )+
        }
    };
}

contract_tests!(memory, open_memory, persistent: false);
contract_tests!(rocksdb, open_rocksdb, persistent: true);
contract_tests!(transactional_memory, open_transactional_memory, persistent: false);
contract_tests!(transactional_rocksdb, open_transactional_rocksdb, persistent: true);

fn kv(k: &str, v: &str) -> KeyValue {
    (k.as_bytes().to_vec(), v.as_bytes().to_vec())
}

fn get_put_delete(e: &mut dyn KeyValueEngine) {
    assert_eq!(e.name(), STORE);
    assert_eq!(e.get(b"a").unwrap(), None);
    e.put(b"a", b"1").unwrap();
    e.put(b"a", b"2").unwrap();
    assert_eq!(e.get(b"a").unwrap(), Some(b"2".to_vec()));
    e.delete(b"a").unwrap();
    assert_eq!(e.get(b"a").unwrap(), None);
    // Deleting an absent key is fine.
    e.delete(b"zz").unwrap();
}

fn range_bounds_are_inclusive_and_optional(e: &mut dyn KeyValueEngine) {
    for k in ["a", "b", "c", "d"] {
        e.put(k.as_bytes(), k.to_uppercase().as_bytes()).unwrap();
    }
    assert_eq!(e.get(b"b").unwrap(), Some(b"B".to_vec()));
    assert_eq!(e.get(b"x").unwrap(), None);
    assert_eq!(
        e.range(Some(b"b"), Some(b"c")).unwrap(),
        vec![kv("b", "B"), kv("c", "C")]
    );
    assert_eq!(
        e.range(None, Some(b"b")).unwrap(),
        vec![kv("a", "A"), kv("b", "B")]
    );
    assert_eq!(
        e.range(Some(b"c"), None).unwrap(),
        vec![kv("c", "C"), kv("d", "D")]
    );
    assert_eq!(
        e.range(Some(b"bb"), Some(b"cc")).unwrap(),
        vec![kv("c", "C")]
    );
    assert_eq!(e.range(Some(b"d"), Some(b"a")).unwrap(), vec![]);
    assert_eq!(e.all().unwrap().len(), 4);
    assert_eq!(e.approximate_num_entries().unwrap(), 4);

    e.delete(b"c").unwrap();
    assert_eq!(e.get(b"c").unwrap(), None);
    assert_eq!(
        e.all().unwrap(),
        vec![kv("a", "A"), kv("b", "B"), kv("d", "D")]
    );
}

fn inclusive_upper_bound_does_not_include_longer_keys(e: &mut dyn KeyValueEngine) {
    e.put(b"b", b"1").unwrap();
    e.put(&[b'b', 0], b"2").unwrap();
    e.put(b"ba", b"3").unwrap();
    assert_eq!(e.range(None, Some(b"b")).unwrap(), vec![kv("b", "1")]);
}

fn keys_order_by_bytes(e: &mut dyn KeyValueEngine) {
    e.put(&[0xff], b"x").unwrap();
    e.put(&[0x00, 0x01], b"y").unwrap();
    e.put(&[0x00], b"z").unwrap();
    let keys: Vec<_> = e.all().unwrap().into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, vec![vec![0x00], vec![0x00, 0x01], vec![0xff]]);
}

fn write_batch_applies_puts_and_deletes_in_order(e: &mut dyn KeyValueEngine) {
    e.put(b"gone", b"1").unwrap();
    e.write_batch(&[
        (b"a".to_vec(), Some(b"1".to_vec())),
        (b"gone".to_vec(), None),
        (b"a".to_vec(), Some(b"2".to_vec())),
    ])
    .unwrap();
    assert_eq!(e.all().unwrap(), vec![kv("a", "2")]);
}

fn delete_range_is_half_open(e: &mut dyn KeyValueEngine) {
    for k in ["a", "b", "ba", "c", "d"] {
        e.put(k.as_bytes(), b"1").unwrap();
    }
    e.delete_range(b"b", b"c").unwrap();
    let keys: Vec<_> = e.all().unwrap().into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, vec![b"a".to_vec(), b"c".to_vec(), b"d".to_vec()]);
    // Empty and inverted ranges remove nothing.
    e.delete_range(b"c", b"c").unwrap();
    e.delete_range(b"d", b"a").unwrap();
    assert_eq!(e.all().unwrap().len(), 3);
}

fn closed_engine_refuses_use(e: &mut dyn KeyValueEngine) {
    e.put(b"a", b"1").unwrap();
    e.close().unwrap();
    // Closing twice is a no-op.
    e.close().unwrap();
    let err = e.get(b"a").unwrap_err();
    assert!(matches!(err, StoreError::Closed { .. }));
    assert!(err.to_string().contains(STORE), "{err}");
}

fn scan_pages_in_both_directions_within_bounds(e: &mut dyn KeyValueEngine) {
    for k in ["a", "b", "ba", "c", "d"] {
        e.put(k.as_bytes(), k.to_uppercase().as_bytes()).unwrap();
    }
    let keys = |page: Vec<KeyValue>| -> Vec<String> {
        page.into_iter()
            .map(|(k, _)| String::from_utf8(k).unwrap())
            .collect()
    };
    assert_eq!(
        keys(e.scan(Unbounded, Unbounded, false, 2).unwrap()),
        ["a", "b"]
    );
    // The next page starts just past the last key.
    assert_eq!(
        keys(e.scan(Excluded(b"b"), Unbounded, false, 2).unwrap()),
        ["ba", "c"]
    );
    assert_eq!(
        keys(e.scan(Unbounded, Unbounded, true, 2).unwrap()),
        ["d", "c"]
    );
    assert_eq!(
        keys(e.scan(Unbounded, Excluded(b"c"), true, 2).unwrap()),
        ["ba", "b"]
    );
    // An inclusive upper bound takes no longer key; both directions honour both bounds.
    assert_eq!(
        keys(e.scan(Included(b"b"), Included(b"c"), true, 10).unwrap()),
        ["c", "ba", "b"]
    );
    assert_eq!(
        keys(e.scan(Excluded(b"a"), Included(b"b"), false, 10).unwrap()),
        ["b"]
    );
    assert!(e
        .scan(Included(b"c"), Included(b"b"), false, 10)
        .unwrap()
        .is_empty());
    assert!(e
        .scan(Excluded(b"c"), Included(b"c"), true, 10)
        .unwrap()
        .is_empty());
    assert!(e.scan(Unbounded, Unbounded, false, 0).unwrap().is_empty());
}
