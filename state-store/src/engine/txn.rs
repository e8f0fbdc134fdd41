//! [`TransactionalEngine`]: writes held in memory until their transaction commits, so that an
//! engine on disk never holds uncommitted data.

use std::collections::BTreeMap;
use std::ops::Bound;

use super::{is_empty_range, ChangelogOffsets};
use crate::{KeyValue, KeyValueEngine, Result, StoreError};

/// A held-back write: its key, and its value or `None` for a delete.
type Held<'a> = (&'a Vec<u8>, &'a Option<Vec<u8>>);

/// Bytes charged per held-back write on top of its key and value (map node, lengths).
const ENTRY_OVERHEAD: usize = 48;

/// An engine over another whose writes wait in memory until [`commit`](KeyValueEngine::commit),
/// which applies them together with the changelog offsets they reflect in one atomic write.
///
/// Under exactly-once this is what spares a crashed task a full restore: its store on disk is
/// always as of its last committed transaction, and records where the changelog was then, so a
/// restart restores only what was committed after that (at most one commit interval). Kafka
/// Streams instead wipes the stores of a task that crashed and restores them from scratch.
///
/// Reads see the held-back writes (read-your-writes): a get, range or scan merges them over the
/// engine below. Restored records ([`restore_batch`](KeyValueEngine::restore_batch)) are
/// committed data and go straight to the engine below.
///
/// ```
/// use state_store::{ChangelogOffsets, InMemoryEngine, KeyValueEngine, TransactionalEngine};
///
/// let mut store = TransactionalEngine::new(Box::new(InMemoryEngine::new("counts")));
/// store.put(b"apple", b"1")?;
/// assert_eq!(store.get(b"apple")?, Some(b"1".to_vec()), "reads see uncommitted writes");
/// store.abort()?;
/// assert_eq!(store.get(b"apple")?, None, "an abort drops them");
///
/// store.put(b"apple", b"2")?;
/// let offsets = ChangelogOffsets::from([(("app-counts-changelog".to_string(), 0), 1)]);
/// store.commit(&offsets)?;
/// assert_eq!(store.get(b"apple")?, Some(b"2".to_vec()));
/// assert_eq!(store.stored_offsets()?, offsets);
/// # Ok::<(), state_store::StoreError>(())
/// ```
pub struct TransactionalEngine {
    inner: Box<dyn KeyValueEngine>,
    /// Writes since the last commit: a value, or `None` for a delete.
    pending: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// Range deletes since the last commit (`from <= key < to`), older than every entry of
    /// `pending` they cover: a write into a deleted range lands in `pending` after it.
    deleted: Vec<(Vec<u8>, Vec<u8>)>,
    bytes: usize,
    /// Restored records were written below since the engine's last flush.
    restored_unflushed: bool,
    /// Set by `close`: writes are refused, as the engine below refuses them.
    closed: bool,
}

impl std::fmt::Debug for TransactionalEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransactionalEngine")
            .field("name", &self.inner.name())
            .field("pending", &self.pending.len())
            .field("deleted_ranges", &self.deleted.len())
            .field("bytes", &self.bytes)
            .finish()
    }
}

impl TransactionalEngine {
    /// Holds back the writes to `inner` until each commit.
    pub fn new(inner: Box<dyn KeyValueEngine>) -> Self {
        TransactionalEngine {
            inner,
            pending: BTreeMap::new(),
            deleted: Vec::new(),
            bytes: 0,
            restored_unflushed: false,
            closed: false,
        }
    }

    fn check_open(&self) -> Result<()> {
        if self.closed {
            Err(StoreError::Closed {
                store: self.inner.name().to_string(),
            })
        } else {
            Ok(())
        }
    }

    /// Whether a pending range delete covers `key`.
    fn in_deleted_range(&self, key: &[u8]) -> bool {
        self.deleted
            .iter()
            .any(|(from, to)| from.as_slice() <= key && key < to.as_slice())
    }

    fn hold(&mut self, key: &[u8], value: Option<&[u8]>) {
        let size = key.len() + value.map_or(0, <[u8]>::len) + ENTRY_OVERHEAD;
        if let Some(old) = self.pending.insert(key.to_vec(), value.map(<[u8]>::to_vec)) {
            self.bytes = self
                .bytes
                .saturating_sub(key.len() + old.map_or(0, |v| v.len()) + ENTRY_OVERHEAD);
        }
        self.bytes += size;
    }

    fn clear(&mut self) {
        self.pending.clear();
        self.deleted.clear();
        self.bytes = 0;
    }
}

impl KeyValueEngine for TransactionalEngine {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn persistent(&self) -> bool {
        self.inner.persistent()
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.check_open()?;
        match self.pending.get(key) {
            Some(v) => Ok(v.clone()),
            None if self.in_deleted_range(key) => Ok(None),
            None => self.inner.get(key),
        }
    }

    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.check_open()?;
        self.hold(key, Some(value));
        Ok(())
    }

    fn delete(&mut self, key: &[u8]) -> Result<()> {
        self.check_open()?;
        self.hold(key, None);
        Ok(())
    }

    fn range(&self, from: Option<&[u8]>, to: Option<&[u8]>) -> Result<Vec<KeyValue>> {
        let lo = from.map_or(Bound::Unbounded, Bound::Included);
        let hi = to.map_or(Bound::Unbounded, Bound::Included);
        self.scan(lo, hi, false, usize::MAX)
    }

    fn scan(
        &self,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
        reverse: bool,
        limit: usize,
    ) -> Result<Vec<KeyValue>> {
        self.check_open()?;
        if limit == 0 || is_empty_range(from, to) {
            return Ok(Vec::new());
        }
        if self.pending.is_empty() && self.deleted.is_empty() {
            return self.inner.scan(from, to, reverse, limit);
        }
        let held = self.pending.range::<[u8], _>((from, to));
        let mut held: Box<dyn Iterator<Item = Held<'_>>> = if reverse {
            Box::new(held.rev())
        } else {
            Box::new(held)
        };
        let mut next_held = held.next();
        // Whether `a` comes before `b` in the scan's order.
        let before = |a: &[u8], b: &[u8]| if reverse { a > b } else { a < b };
        let mut out = Vec::new();
        // The engine below is read a page at a time: held deletes may hide some of a page.
        let page_size = limit.max(64);
        let (mut lo, mut hi) = (from.map(<[u8]>::to_vec), to.map(<[u8]>::to_vec));
        loop {
            let page = self.inner.scan(
                lo.as_ref().map(Vec::as_slice),
                hi.as_ref().map(Vec::as_slice),
                reverse,
                page_size,
            )?;
            let exhausted = page.len() < page_size;
            let last = page.last().map(|(k, _)| k.clone());
            for (key, value) in page {
                while let Some((k, v)) = next_held.filter(|(k, _)| before(k, &key)) {
                    if let Some(v) = v {
                        out.push((k.clone(), v.clone()));
                        if out.len() == limit {
                            return Ok(out);
                        }
                    }
                    next_held = held.next();
                }
                match next_held {
                    Some((k, v)) if *k == key => {
                        if let Some(v) = v {
                            out.push((key, v.clone()));
                        }
                        next_held = held.next();
                    }
                    _ if self.in_deleted_range(&key) => {}
                    _ => out.push((key, value)),
                }
                if out.len() == limit {
                    return Ok(out);
                }
            }
            if exhausted {
                while let Some((k, v)) = next_held {
                    if let Some(v) = v {
                        out.push((k.clone(), v.clone()));
                        if out.len() == limit {
                            break;
                        }
                    }
                    next_held = held.next();
                }
                return Ok(out);
            }
            let last = last.expect("a full page is not empty");
            if reverse {
                hi = Bound::Excluded(last);
            } else {
                lo = Bound::Excluded(last);
            }
        }
    }

    fn approximate_num_entries(&self) -> Result<u64> {
        let below = self.inner.approximate_num_entries()?;
        let added = self.pending.values().filter(|v| v.is_some()).count() as u64;
        Ok(below.saturating_add(added))
    }

    fn statistics(&self) -> Result<Vec<(&'static str, u64)>> {
        self.inner.statistics()
    }

    fn write_batch(&mut self, batch: &[(Vec<u8>, Option<Vec<u8>>)]) -> Result<()> {
        self.check_open()?;
        for (key, value) in batch {
            self.hold(key, value.as_deref());
        }
        Ok(())
    }

    fn restore_batch(&mut self, batch: &[(Vec<u8>, Option<Vec<u8>>)]) -> Result<()> {
        self.restored_unflushed = true;
        self.inner.restore_batch(batch)
    }

    /// Writes straight through to the engine below, past the held-back writes (as restores).
    fn write_atomically(
        &mut self,
        ranges: &[(Vec<u8>, Vec<u8>)],
        batch: &[(Vec<u8>, Option<Vec<u8>>)],
        offsets: &ChangelogOffsets,
    ) -> Result<()> {
        self.inner.write_atomically(ranges, batch, offsets)
    }

    fn stored_offsets(&self) -> Result<ChangelogOffsets> {
        self.inner.stored_offsets()
    }

    fn commit(&mut self, offsets: &ChangelogOffsets) -> Result<()> {
        let batch: Vec<(Vec<u8>, Option<Vec<u8>>)> =
            std::mem::take(&mut self.pending).into_iter().collect();
        let ranges = std::mem::take(&mut self.deleted);
        self.bytes = 0;
        self.inner.write_atomically(&ranges, &batch, offsets)
    }

    fn abort(&mut self) -> Result<()> {
        self.clear();
        Ok(())
    }

    fn uncommitted_bytes(&self) -> usize {
        self.bytes
    }

    fn delete_range(&mut self, from: &[u8], to: &[u8]) -> Result<()> {
        self.check_open()?;
        if from >= to {
            return Ok(());
        }
        let doomed: Vec<Vec<u8>> = self
            .pending
            .range::<[u8], _>((Bound::Included(from), Bound::Excluded(to)))
            .map(|(k, _)| k.clone())
            .collect();
        for k in doomed {
            if let Some(v) = self.pending.remove(&k) {
                self.bytes = self
                    .bytes
                    .saturating_sub(k.len() + v.map_or(0, |v| v.len()) + ENTRY_OVERHEAD);
            }
        }
        self.bytes += from.len() + to.len() + ENTRY_OVERHEAD;
        self.deleted.push((from.to_vec(), to.to_vec()));
        Ok(())
    }

    /// Flushes the engine below only when restored records wait in its memory: committed writes
    /// reached it through its write-ahead log already, and held-back ones must not reach disk.
    fn flush(&mut self) -> Result<()> {
        if self.restored_unflushed {
            self.inner.flush()?;
            self.restored_unflushed = false;
        }
        Ok(())
    }

    /// Drops what was not committed, then closes the engine below.
    fn close(&mut self) -> Result<()> {
        self.clear();
        self.closed = true;
        self.inner.close()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::ops::Bound::{self, Excluded, Included, Unbounded};

    use super::*;
    use crate::InMemoryEngine;

    /// A small deterministic generator (xorshift), so that a failure replays.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self, n: u64) -> u64 {
            self.0 ^= self.0.wrapping_shl(13);
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0.wrapping_shl(17);
            self.0 % n
        }
        fn key(&mut self) -> Vec<u8> {
            // Few keys, some prefixes of others, so that ops collide and bounds fall between.
            let n = self.next(40);
            if n % 7 == 0 {
                format!("k{}", n / 10).into_bytes()
            } else {
                format!("k{n:02}").into_bytes()
            }
        }
        fn bound(&mut self) -> Bound<Vec<u8>> {
            match self.next(3) {
                0 => Unbounded,
                1 => Included(self.key()),
                _ => Excluded(self.key()),
            }
        }
    }

    fn model_scan(
        m: &BTreeMap<Vec<u8>, Vec<u8>>,
        from: &Bound<Vec<u8>>,
        to: &Bound<Vec<u8>>,
        reverse: bool,
        limit: usize,
    ) -> Vec<KeyValue> {
        let range = m.iter().filter(|(k, _)| {
            let after_from = match from {
                Unbounded => true,
                Included(f) => *k >= f,
                Excluded(f) => *k > f,
            };
            let before_to = match to {
                Unbounded => true,
                Included(t) => *k <= t,
                Excluded(t) => *k < t,
            };
            after_from && before_to
        });
        let all: Vec<KeyValue> = range.map(|(k, v)| (k.clone(), v.clone())).collect();
        if reverse {
            all.into_iter().rev().take(limit).collect()
        } else {
            all.into_iter().take(limit).collect()
        }
    }

    /// Random puts, deletes, range deletes, batches, commits and aborts against a model of what
    /// reads must see (committed state plus held writes) and of what the engine below must
    /// hold (committed state only): gets and scans in both directions, any bounds and limits,
    /// agree with the model after every step.
    #[test]
    fn reads_merge_held_writes_over_the_committed_state_exactly() {
        for seed in 1..=20u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let mut e = TransactionalEngine::new(Box::new(InMemoryEngine::new("s")));
            let mut committed: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
            let mut visible = committed.clone();
            for step in 0..600 {
                match rng.next(20) {
                    0..=7 => {
                        let (k, v) = (rng.key(), format!("v{step}").into_bytes());
                        e.put(&k, &v).unwrap();
                        visible.insert(k, v);
                    }
                    8..=10 => {
                        let k = rng.key();
                        e.delete(&k).unwrap();
                        visible.remove(&k);
                    }
                    11 => {
                        let (a, b) = (rng.key(), rng.key());
                        e.delete_range(&a, &b).unwrap();
                        visible.retain(|k, _| !(a <= *k && *k < b));
                    }
                    12 => {
                        let batch: Vec<(Vec<u8>, Option<Vec<u8>>)> = (0..3)
                            .map(|i| {
                                let v = (i != 1).then(|| format!("b{step}.{i}").into_bytes());
                                (rng.key(), v)
                            })
                            .collect();
                        e.write_batch(&batch).unwrap();
                        for (k, v) in batch {
                            match v {
                                Some(v) => visible.insert(k, v),
                                None => visible.remove(&k),
                            };
                        }
                    }
                    13 | 14 => {
                        let offsets = ChangelogOffsets::from([(("c".to_string(), 0), step as i64)]);
                        e.commit(&offsets).unwrap();
                        assert_eq!(e.uncommitted_bytes(), 0);
                        assert_eq!(e.stored_offsets().unwrap(), offsets);
                        committed = visible.clone();
                    }
                    15 => {
                        e.abort().unwrap();
                        visible = committed.clone();
                    }
                    _ => {}
                }
                let below = e.inner.all().unwrap();
                let expected_below: Vec<KeyValue> = committed
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                assert_eq!(below, expected_below, "seed {seed} step {step}: below");
                for _ in 0..3 {
                    let k = rng.key();
                    assert_eq!(e.get(&k).unwrap(), visible.get(&k).cloned());
                    let (from, to) = (rng.bound(), rng.bound());
                    let reverse = rng.next(2) == 0;
                    let limit = [1, 2, 5, 100, usize::MAX][rng.next(5) as usize];
                    let got = e
                        .scan(
                            from.as_ref().map(Vec::as_slice),
                            to.as_ref().map(Vec::as_slice),
                            reverse,
                            limit,
                        )
                        .unwrap();
                    let want = model_scan(&visible, &from, &to, reverse, limit);
                    assert_eq!(
                        got, want,
                        "seed {seed} step {step}: scan {from:?}..{to:?} reverse {reverse} limit {limit}"
                    );
                }
                let all = e.all().unwrap();
                assert_eq!(all.len(), visible.len(), "seed {seed} step {step}: all");
            }
        }
    }

    #[test]
    fn a_scan_pages_past_many_held_deletes() {
        let mut e = TransactionalEngine::new(Box::new(InMemoryEngine::new("s")));
        for i in 0..500u32 {
            e.put(format!("k{i:03}").as_bytes(), b"v").unwrap();
        }
        e.commit(&ChangelogOffsets::new()).unwrap();
        // Every key but the last held deleted: the first page of the engine below is all
        // hidden, and so are the next ones.
        for i in 0..499u32 {
            e.delete(format!("k{i:03}").as_bytes()).unwrap();
        }
        let page = e.scan(Unbounded, Unbounded, false, 1).unwrap();
        assert_eq!(page, vec![(b"k499".to_vec(), b"v".to_vec())]);
        let page = e.scan(Unbounded, Unbounded, true, 1).unwrap();
        assert_eq!(page, vec![(b"k499".to_vec(), b"v".to_vec())]);
        assert!(e.uncommitted_bytes() > 499 * 4);
    }

    #[test]
    fn restored_records_go_below_and_are_flushed_once() {
        let mut e = TransactionalEngine::new(Box::new(InMemoryEngine::new("s")));
        e.put(b"held", b"1").unwrap();
        e.restore_batch(&[(b"restored".to_vec(), Some(b"2".to_vec()))])
            .unwrap();
        assert_eq!(
            e.inner.all().unwrap(),
            vec![(b"restored".to_vec(), b"2".to_vec())],
            "the restored record is below, the held write is not"
        );
        assert!(e.restored_unflushed);
        e.flush().unwrap();
        assert!(!e.restored_unflushed);
        assert_eq!(e.get(b"held").unwrap(), Some(b"1".to_vec()));
    }
}
