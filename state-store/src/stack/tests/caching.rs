//! Stack tests of the record cache: folding, flush order, eviction, budget and merged ranges.

use super::*;

#[test]
fn old_values_after_a_missing_read_are_right() {
    let (mut s, _) = stack(Some(room_for(1)));
    // A read that finds nothing, then a put: written out with no old value.
    assert_eq!(s.get(b"a").unwrap(), None);
    assert!(s.put(b"a", Some(b"1"), 1).unwrap().is_empty());
    // `b` pushes `a` out: the engine has a = 1 now, and `a` is no longer cached.
    assert_eq!(
        s.put(b"b", Some(b"1"), 2).unwrap(),
        vec![entry("a", Some("1"), None, 1)]
    );
    // A put of `a` with no read before it must find the engine's value as the old one, and
    // so must a put after a read that found `b` in the cache.
    assert_eq!(s.get(b"b").unwrap(), Some(b("1")));
    assert_eq!(
        s.put(b"a", Some(b"2"), 3).unwrap(),
        vec![entry("b", Some("1"), None, 2)]
    );
    assert_eq!(
        s.flush_cache().unwrap(),
        vec![entry("a", Some("2"), Some("1"), 3)]
    );
    // A missing read of one key says nothing of another.
    assert_eq!(s.get(b"c").unwrap(), None);
    // (`a`, clean, leaves the cache without being written.)
    assert!(s.put(b"b", Some(b"2"), 4).unwrap().is_empty());
    assert_eq!(
        s.flush_cache().unwrap(),
        vec![entry("b", Some("2"), Some("1"), 4)]
    );
    // Deleting a key that was read as missing writes nothing.
    assert_eq!(s.get(b"d").unwrap(), None);
    let (previous, _) = s.delete(b"d", 5).unwrap();
    assert_eq!(previous, None);
    assert!(s.flush_cache().unwrap().is_empty());
}

#[test]
fn cache_folds_repeated_puts_into_one_write() {
    let (mut s, log) = stack(Some(CacheBudget::new(1 << 20)));
    for i in 0..10 {
        let evicted = s
            .put(b"k", Some(format!("v{i}").as_bytes()), 100 + i)
            .unwrap();
        assert!(evicted.is_empty());
    }
    assert_eq!(s.get(b"k").unwrap(), Some(b("v9")));
    assert!(log.records().is_empty());
    // Not in the engine yet.
    assert_eq!(s.approximate_num_entries().unwrap(), 0);

    assert_eq!(
        s.flush_cache().unwrap(),
        vec![entry("k", Some("v9"), None, 109)]
    );
    assert_eq!(log.records(), vec![logged("store", "k", Some("v9"), 109)]);
    assert_eq!(s.approximate_num_entries().unwrap(), 1);
    // Nothing dirty any more.
    assert!(s.flush_cache().unwrap().is_empty());
    assert_eq!(log.records().len(), 1);

    // The next flush reports the engine's value as the old one.
    s.put(b"k", Some(b"v10"), 200).unwrap();
    s.put(b"k", Some(b"v11"), 201).unwrap();
    assert_eq!(
        s.flush_cache().unwrap(),
        vec![entry("k", Some("v11"), Some("v9"), 201)]
    );
    assert_eq!(log.records().len(), 2);
}

#[test]
fn flush_cache_goes_least_recently_written_first() {
    let (mut s, log) = stack(Some(CacheBudget::new(1 << 20)));
    s.put(b"b", Some(b"1"), 1).unwrap();
    s.put(b"a", Some(b"1"), 2).unwrap();
    s.put(b"c", Some(b"1"), 3).unwrap();
    s.put(b"b", Some(b"2"), 4).unwrap();
    let keys: Vec<_> = s
        .flush_cache()
        .unwrap()
        .into_iter()
        .map(|e| e.key)
        .collect();
    assert_eq!(keys, vec![b("a"), b("c"), b("b")]);
    let logged_keys: Vec<_> = log.records().into_iter().map(|r| r.1).collect();
    assert_eq!(logged_keys, keys);
}

#[test]
fn cached_tombstones() {
    let (mut s, log) = stack(Some(CacheBudget::new(1 << 20)));
    s.put(b"k", Some(b"v"), 1).unwrap();
    s.flush_cache().unwrap();

    assert_eq!(s.delete(b"k", 2).unwrap(), (Some(b("v")), vec![]));
    // The cached delete hides the engine's value.
    assert_eq!(s.get(b"k").unwrap(), None);
    assert_eq!(s.all().unwrap(), vec![]);
    assert_eq!(s.put_if_absent(b"k", b"w", 3).unwrap(), (None, vec![]));
    s.delete(b"k", 4).unwrap();

    assert_eq!(
        s.flush_cache().unwrap(),
        vec![entry("k", None, Some("v"), 4)]
    );
    assert_eq!(
        log.records(),
        vec![
            logged("store", "k", Some("v"), 1),
            logged("store", "k", None, 4)
        ]
    );
    assert_eq!(s.approximate_num_entries().unwrap(), 0);
}

#[test]
fn put_then_delete_of_a_new_key_writes_nothing() {
    let (mut s, log) = stack(Some(CacheBudget::new(1 << 20)));
    s.put(b"k", Some(b"v"), 1).unwrap();
    s.delete(b"k", 2).unwrap();
    assert!(s.flush_cache().unwrap().is_empty());
    assert!(log.records().is_empty());
    assert_eq!(s.get(b"k").unwrap(), None);
}

#[test]
fn eviction_under_a_tiny_budget_writes_and_returns_the_oldest() {
    let budget = room_for(2);
    let (mut s, log) = stack(Some(budget.clone()));
    assert!(s.put(b"a", Some(b"1"), 1).unwrap().is_empty());
    assert!(s.put(b"b", Some(b"1"), 2).unwrap().is_empty());
    assert_eq!(budget.used_bytes(), budget.max_bytes());

    assert_eq!(
        s.put(b"c", Some(b"1"), 3).unwrap(),
        vec![entry("a", Some("1"), None, 1)]
    );
    assert_eq!(log.records(), vec![logged("store", "a", Some("1"), 1)]);
    assert_eq!(budget.used_bytes(), budget.max_bytes());
    // Still readable, now from the engine.
    assert_eq!(s.get(b"a").unwrap(), Some(b("1")));

    // Rewriting `b` makes `c` the oldest; an evicted entry's old value is the engine's.
    s.put(b"b", Some(b"2"), 4).unwrap();
    assert_eq!(
        s.put(b"a", Some(b"2"), 5).unwrap(),
        vec![entry("c", Some("1"), None, 3)]
    );
    assert_eq!(
        s.put(b"d", Some(b"1"), 6).unwrap(),
        vec![entry("b", Some("2"), None, 4)]
    );
    assert_eq!(
        s.put(b"e", Some(b"1"), 7).unwrap(),
        vec![entry("a", Some("2"), Some("1"), 5)]
    );
    assert_eq!(log.records().len(), 4);
}

#[test]
fn evicting_clean_entries_writes_nothing() {
    let budget = room_for(2);
    let (mut s, log) = stack(Some(budget));
    s.put(b"a", Some(b"1"), 1).unwrap();
    s.put(b"b", Some(b"1"), 2).unwrap();
    s.flush_cache().unwrap();
    assert_eq!(log.records().len(), 2);
    assert!(s.put(b"c", Some(b"1"), 3).unwrap().is_empty());
    assert_eq!(log.records().len(), 2);
    assert_eq!(s.get(b"a").unwrap(), Some(b("1")));
}

#[test]
fn budget_is_shared_between_stacks() {
    let budget = room_for(3);
    let (mut first, first_log) = stack(Some(budget.clone()));
    let (mut second, second_log) = stack(Some(budget.clone()));
    first.put(b"a", Some(b"1"), 1).unwrap();
    first.put(b"b", Some(b"1"), 2).unwrap();
    second.put(b"x", Some(b"1"), 3).unwrap();
    assert_eq!(budget.used_bytes(), budget.max_bytes());

    // Over budget: the writing store evicts its own entries, not the other store's.
    assert_eq!(
        second.put(b"y", Some(b"1"), 4).unwrap(),
        vec![entry("x", Some("1"), None, 3)]
    );
    assert!(first_log.records().is_empty());
    assert_eq!(second_log.records().len(), 1);
    assert_eq!(
        first.put(b"c", Some(b"1"), 5).unwrap(),
        vec![entry("a", Some("1"), None, 1)]
    );
    assert_eq!(budget.used_bytes(), budget.max_bytes());

    // Closing one store gives its share back; dropping the other does too.
    first.close().unwrap();
    assert_eq!(budget.used_bytes(), 2 + CACHE_ENTRY_OVERHEAD);
    drop(second);
    assert_eq!(budget.used_bytes(), 0);
}

#[test]
fn zero_budget_writes_through() {
    let budget = CacheBudget::new(0);
    let (mut s, log) = stack(Some(budget.clone()));
    assert_eq!(
        s.put(b"a", Some(b"1"), 1).unwrap(),
        vec![entry("a", Some("1"), None, 1)]
    );
    assert_eq!(
        s.put(b"a", Some(b"2"), 2).unwrap(),
        vec![entry("a", Some("2"), Some("1"), 2)]
    );
    assert_eq!(
        s.delete(b"a", 3).unwrap(),
        (Some(b("2")), vec![entry("a", None, Some("2"), 3)])
    );
    assert_eq!(log.records().len(), 3);
    assert_eq!(budget.used_bytes(), 0);
    assert!(s.flush_cache().unwrap().is_empty());
}

#[test]
fn range_merges_cache_over_engine() {
    let (mut s, _) = stack(Some(CacheBudget::new(1 << 20)));
    s.restore_batch(&[
        (b("a"), Some(b("A"))),
        (b("b"), Some(b("B"))),
        (b("c"), Some(b("C"))),
        (b("d"), Some(b("D"))),
    ])
    .unwrap();
    s.put(b"b", Some(b"B2"), 0).unwrap();
    s.delete(b"c", 0).unwrap();
    s.put(b"e", Some(b"E"), 0).unwrap();
    s.put(b"0", Some(b"zero"), 0).unwrap();
    s.delete(b"zz", 0).unwrap();

    let kv = |k: &str, v: &str| (b(k), b(v));
    assert_eq!(
        s.all().unwrap(),
        vec![
            kv("0", "zero"),
            kv("a", "A"),
            kv("b", "B2"),
            kv("d", "D"),
            kv("e", "E")
        ]
    );
    assert_eq!(
        s.range(Some(b"b"), Some(b"d")).unwrap(),
        vec![kv("b", "B2"), kv("d", "D")]
    );
    assert_eq!(s.range(Some(b"c"), Some(b"c")).unwrap(), vec![]);
    assert_eq!(
        s.range(None, Some(b"a")).unwrap(),
        vec![kv("0", "zero"), kv("a", "A")]
    );
    assert_eq!(
        s.range(Some(b"d"), None).unwrap(),
        vec![kv("d", "D"), kv("e", "E")]
    );
    assert_eq!(s.range(Some(b"e"), Some(b"a")).unwrap(), vec![]);
}

/// Pages through the whole merged view of `s` with pages of `limit`, applying `between` after
/// each page (writes while a scan is under way), and returns the keys seen.
fn scan_all(
    s: &mut KeyValueStoreStack,
    reverse: bool,
    limit: usize,
    mut between: impl FnMut(&mut KeyValueStoreStack),
) -> Vec<String> {
    use std::ops::Bound::{Excluded, Unbounded};
    let mut resume: Option<Vec<u8>> = None;
    let mut seen = Vec::new();
    loop {
        let bound = match &resume {
            Some(k) => Excluded(k.as_slice()),
            None => Unbounded,
        };
        let page = if reverse {
            s.scan(Unbounded, bound, true, limit).unwrap()
        } else {
            s.scan(bound, Unbounded, false, limit).unwrap()
        };
        seen.extend(
            page.entries
                .iter()
                .map(|(k, _)| String::from_utf8(k.clone()).unwrap()),
        );
        match page.resume_after {
            Some(k) => resume = Some(k),
            None => return seen,
        }
        between(s);
    }
}

#[test]
fn scans_page_through_cache_and_engine_in_both_directions() {
    let (mut s, _) = stack(Some(CacheBudget::new(1 << 20)));
    // Engine: a c e g; cache: b (new), c deleted, f (new), g updated.
    for k in ["a", "c", "e", "g"] {
        s.put(k.as_bytes(), Some(b"old"), 1).unwrap();
    }
    s.flush_cache().unwrap();
    s.put(b"b", Some(b"new"), 2).unwrap();
    s.delete(b"c", 2).unwrap();
    s.put(b"f", Some(b"new"), 2).unwrap();
    s.put(b"g", Some(b"new"), 2).unwrap();
    let expected = ["a", "b", "e", "f", "g"];
    for limit in 1..=6 {
        assert_eq!(
            scan_all(&mut s, false, limit, |_| {}),
            expected,
            "limit {limit}"
        );
        let mut reversed = expected.to_vec();
        reversed.reverse();
        assert_eq!(
            scan_all(&mut s, true, limit, |_| {}),
            reversed,
            "limit {limit}"
        );
    }
    let page = s.scan(
        std::ops::Bound::Unbounded,
        std::ops::Bound::Unbounded,
        false,
        10,
    );
    let g = page.unwrap().entries.pop().unwrap();
    assert_eq!(g, (b("g"), b("new")), "the cache's newer value wins");
}

#[test]
fn a_scan_written_to_between_pages_sees_each_key_once_and_in_order() {
    let (mut s, _) = stack(Some(CacheBudget::new(1 << 20)));
    for i in 0..100 {
        s.put(format!("k{i:03}").as_bytes(), Some(b"1"), 1).unwrap();
    }
    s.flush_cache().unwrap();
    let mut round = 0;
    let seen = scan_all(&mut s, false, 7, |s| {
        // Writes behind and ahead of the scan, a delete ahead of it, and a flush.
        round += 1;
        s.put(format!("k{:03}", round).as_bytes(), Some(b"2"), 2)
            .unwrap();
        s.put(format!("k{:03}x", 50 + round).as_bytes(), Some(b"2"), 2)
            .unwrap();
        s.delete(format!("k{:03}", 99 - round).as_bytes(), 2)
            .unwrap();
        if round % 3 == 0 {
            s.flush_cache().unwrap();
        }
    });
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(
        seen, sorted,
        "strictly ascending: no key twice, none out of order"
    );
    // Every key untouched by the writes is there; deleted keys ahead of the scan are not.
    for i in 0..60 {
        assert!(seen.contains(&format!("k{i:03}")), "k{i:03} missing");
    }
    assert!(seen.contains(&"k099".to_string()));
    assert!(
        !seen.contains(&"k098".to_string()),
        "deleted before the scan got there"
    );
}
