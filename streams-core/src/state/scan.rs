//! Paged scans: iterators over a store that read one page at a time under the store's lock and
//! let go of it between pages, so that a scan of a store larger than memory works and the task
//! writing the store goes on while a query iterates.
//!
//! [`RawStore`] is the byte-level view interactive queries use (typed through the store's
//! handle, or shown as JSON by the HTTP server); [`StoreIterator`] is what typed scans return.

use std::collections::VecDeque;
use std::ops::Bound;
use std::sync::Arc;

use super::window::{be_i64, corrupt, decode, live_segments, serialize_key, Segments};
use super::{KeyValueStore, SessionStore, StoreCell, WindowStore, SEGMENT_PREFIX};
use crate::error::Result;
use crate::window::{Window, Windowed};

/// Entries one page reads from each of the cache and the engine.
const PAGE: usize = 512;

/// An iterator over a store's entries, read a page at a time. Each item is a `Result`: a store
/// closed (its task moved or closed) while the scan is under way ends it with an error naming
/// the store, never with a wrong or a missing-without-notice entry.
pub struct StoreIterator<T> {
    inner: Box<dyn Iterator<Item = Result<T>> + Send>,
}

impl<T> StoreIterator<T> {
    pub(crate) fn new(inner: impl Iterator<Item = Result<T>> + Send + 'static) -> Self {
        StoreIterator {
            inner: Box::new(inner),
        }
    }
}

impl<T> Iterator for StoreIterator<T> {
    type Item = Result<T>;
    fn next(&mut self) -> Option<Result<T>> {
        self.inner.next()
    }
}

impl<T> std::fmt::Debug for StoreIterator<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreIterator")
    }
}

/// A paged scan of one store's bytes within bounds.
pub(crate) struct RawScan {
    cell: Arc<StoreCell>,
    from: Bound<Vec<u8>>,
    to: Bound<Vec<u8>>,
    reverse: bool,
    page: VecDeque<(Vec<u8>, Vec<u8>)>,
    done: bool,
}

impl RawScan {
    pub(crate) fn new(
        cell: Arc<StoreCell>,
        from: Bound<Vec<u8>>,
        to: Bound<Vec<u8>>,
        reverse: bool,
    ) -> Self {
        RawScan {
            cell,
            from,
            to,
            reverse,
            page: VecDeque::new(),
            done: false,
        }
    }

    fn refill(&mut self) -> Result<()> {
        let (from, to) = (as_ref(&self.from), as_ref(&self.to));
        let page = self
            .cell
            .with_stack(|s| s.scan(from, to, self.reverse, PAGE))?;
        self.page = page.entries.into();
        match page.resume_after {
            Some(k) if self.reverse => self.to = Bound::Excluded(k),
            Some(k) => self.from = Bound::Excluded(k),
            None => self.done = true,
        }
        Ok(())
    }
}

fn as_ref(b: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match b {
        Bound::Included(k) => Bound::Included(k),
        Bound::Excluded(k) => Bound::Excluded(k),
        Bound::Unbounded => Bound::Unbounded,
    }
}

impl RawScan {
    /// The entries `pick` keeps, turned into what it returns; an error reading the store is
    /// passed on (and ends the scan).
    pub(crate) fn select<T>(
        self,
        mut pick: impl FnMut(Vec<u8>, Vec<u8>) -> Option<Result<T>> + Send,
    ) -> impl Iterator<Item = Result<T>> + Send {
        self.filter_map(move |e| match e {
            Ok((k, v)) => pick(k, v),
            Err(e) => Some(Err(e)),
        })
    }
}

impl Iterator for RawScan {
    type Item = Result<(Vec<u8>, Vec<u8>)>;
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(e) = self.page.pop_front() {
                return Some(Ok(e));
            }
            if self.done {
                return None;
            }
            if let Err(e) = self.refill() {
                self.done = true;
                return Some(Err(e));
            }
        }
    }
}

/// The bounds of the keys starting with `prefix`: from the prefix itself to (excluded) the
/// first key past all of them.
pub(crate) fn prefix_bounds(prefix: &[u8]) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return (Bound::Included(prefix.to_vec()), Bound::Excluded(end));
        }
    }
    (Bound::Included(prefix.to_vec()), Bound::Unbounded)
}

/// A window's entry as bytes: key, window start, value.
pub(crate) type RawWindowed = (Vec<u8>, i64, Vec<u8>);
/// A session's entry as bytes: key, session start, session end, value.
pub(crate) type RawSession = (Vec<u8>, i64, i64, Vec<u8>);

/// A task's store as bytes, whatever its types: what queries run against.
#[derive(Clone)]
pub(crate) enum RawStore {
    KeyValue(Arc<StoreCell>),
    Window {
        cell: Arc<StoreCell>,
        seg: Arc<Segments>,
        size_ms: i64,
    },
    Session {
        cell: Arc<StoreCell>,
        seg: Arc<Segments>,
    },
}

impl RawStore {
    pub(crate) fn cell(&self) -> &Arc<StoreCell> {
        match self {
            RawStore::KeyValue(cell)
            | RawStore::Window { cell, .. }
            | RawStore::Session { cell, .. } => cell,
        }
    }

    /// `key`'s windows starting from `from` to `to` (inclusive), by start time.
    pub(crate) fn window_fetch(
        cell: &Arc<StoreCell>,
        seg: &Segments,
        key: Vec<u8>,
        from: i64,
        to: i64,
    ) -> Result<impl Iterator<Item = Result<(i64, Vec<u8>)>> + Send + 'static> {
        let cell = cell.clone();
        let segments = live_segments(&cell, seg, from, to)?;
        Ok(segments.into_iter().flat_map(move |s| {
            let lo = window_key(s, &key, from.max(0), 0);
            let hi = window_key(s, &key, to, u32::MAX);
            let key = key.clone();
            RawScan::new(
                cell.clone(),
                Bound::Included(lo),
                Bound::Included(hi),
                false,
            )
            .select(move |ek, v| {
                // A longer key starting with this key's bytes can sort inside the range.
                if ek.len() != SEGMENT_PREFIX + key.len() + 12
                    || ek[SEGMENT_PREFIX..][..key.len()] != key[..]
                {
                    return None;
                }
                let start = be_i64(&ek[ek.len() - 12..]);
                (from..=to).contains(&start).then_some(Ok((start, v)))
            })
        }))
    }

    /// Every key's windows starting from `from` to `to` (inclusive), segment by segment.
    pub(crate) fn window_fetch_all(
        cell: &Arc<StoreCell>,
        seg: &Segments,
        from: i64,
        to: i64,
    ) -> Result<impl Iterator<Item = Result<RawWindowed>> + Send + 'static> {
        let cell = cell.clone();
        let segments = live_segments(&cell, seg, from, to)?;
        Ok(segments.into_iter().flat_map(move |s| {
            let (lo, hi) = (s.to_be_bytes().to_vec(), (s + 1).to_be_bytes().to_vec());
            let cell2 = cell.clone();
            RawScan::new(
                cell.clone(),
                Bound::Included(lo),
                Bound::Excluded(hi),
                false,
            )
            .select(move |ek, v| {
                if ek.len() < SEGMENT_PREFIX + 12 {
                    return Some(Err(corrupt(&cell2, &ek)));
                }
                let n = ek.len() - 12;
                let start = be_i64(&ek[n..n + 8]);
                (from..=to)
                    .contains(&start)
                    .then(|| Ok((ek[SEGMENT_PREFIX..n].to_vec(), start, v)))
            })
        }))
    }

    /// Every session of `key`, by end time.
    pub(crate) fn sessions(
        cell: &Arc<StoreCell>,
        seg: &Segments,
        key: Vec<u8>,
    ) -> Result<impl Iterator<Item = Result<RawSession>> + Send + 'static> {
        let cell = cell.clone();
        let segments = live_segments(&cell, seg, 0, i64::MAX)?;
        Ok(segments.into_iter().flat_map(move |s| {
            let mut lo = s.to_be_bytes().to_vec();
            lo.extend_from_slice(&key);
            let mut hi = lo.clone();
            hi.extend_from_slice(&[0xff; 16]);
            let key = key.clone();
            RawScan::new(
                cell.clone(),
                Bound::Included(lo),
                Bound::Included(hi),
                false,
            )
            .select(move |ek, v| {
                if ek.len() != SEGMENT_PREFIX + key.len() + 16 {
                    return None;
                }
                let n = ek.len() - 16;
                let (end, start) = (be_i64(&ek[n..n + 8]), be_i64(&ek[n + 8..]));
                Some(Ok((key.clone(), start, end, v)))
            })
        }))
    }
}

fn window_key(seg: i64, key: &[u8], start: i64, seq: u32) -> Vec<u8> {
    let mut k = Vec::with_capacity(SEGMENT_PREFIX + key.len() + 12);
    k.extend_from_slice(&seg.to_be_bytes());
    k.extend_from_slice(key);
    k.extend_from_slice(&start.to_be_bytes());
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

impl<K: Send + Sync + 'static, V: Send + Sync + 'static> KeyValueStore<K, V> {
    /// The store as bytes, for queries.
    pub(crate) fn raw(&self) -> RawStore {
        RawStore::KeyValue(self.cell.clone())
    }

    /// Entries within `(from, to)` in serialized-key order (or reverse), read a page at a time:
    /// the store may be larger than memory, and the task goes on writing it meanwhile.
    pub fn range_iter(
        &self,
        from: Bound<&K>,
        to: Bound<&K>,
        reverse: bool,
    ) -> Result<StoreIterator<(K, V)>> {
        let bound = |b: Bound<&K>| -> Result<Bound<Vec<u8>>> {
            Ok(match b {
                Bound::Included(k) => Bound::Included(self.key_bytes(k)?),
                Bound::Excluded(k) => Bound::Excluded(self.key_bytes(k)?),
                Bound::Unbounded => Bound::Unbounded,
            })
        };
        let (from, to) = (bound(from)?, bound(to)?);
        Ok(self.typed(RawScan::new(self.cell.clone(), from, to, reverse)))
    }

    /// Entries whose serialized key starts with `prefix`'s serialized bytes, in key order.
    pub fn prefix_scan(&self, prefix: &K) -> Result<StoreIterator<(K, V)>> {
        let (from, to) = prefix_bounds(&self.key_bytes(prefix)?);
        Ok(self.typed(RawScan::new(self.cell.clone(), from, to, false)))
    }

    fn typed(&self, scan: RawScan) -> StoreIterator<(K, V)> {
        let this = self.clone();
        StoreIterator::new(scan.select(move |k, v| {
            match (this.decode_key(&k), this.decode_value(Some(&v))) {
                (Ok(k), Ok(Some(v))) => Some(Ok((k, v))),
                (Ok(_), Ok(None)) => None,
                (Err(e), _) | (_, Err(e)) => Some(Err(e)),
            }
        }))
    }
}

impl<K: Send + Sync + 'static, V: Send + Sync + 'static> WindowStore<K, V> {
    /// The store as bytes, for queries.
    pub(crate) fn raw(&self) -> RawStore {
        RawStore::Window {
            cell: self.cell.clone(),
            seg: self.seg.clone(),
            size_ms: self.window_size_ms,
        }
    }

    /// `key`'s values in windows starting from `time_from` to `time_to` (inclusive), by start
    /// time, as (window start, value), read a page at a time.
    pub fn fetch_iter(
        &self,
        key: &K,
        time_from: i64,
        time_to: i64,
    ) -> Result<StoreIterator<(i64, V)>> {
        let k = serialize_key(&self.cell, &self.key_serde, key)?;
        let (cell, vs) = (self.cell.clone(), self.value_serde.clone());
        let raw = RawStore::window_fetch(&self.cell, &self.seg, k, time_from, time_to)?;
        Ok(StoreIterator::new(raw.map(move |e| {
            let (start, v) = e?;
            Ok((start, decode(&cell, &vs, "value", &v)?))
        })))
    }

    /// Every key's values in windows starting from `time_from` to `time_to` (inclusive), read
    /// a page at a time.
    pub fn fetch_all_iter(
        &self,
        time_from: i64,
        time_to: i64,
    ) -> Result<StoreIterator<(Windowed<K>, V)>> {
        let this = self.clone();
        let raw = RawStore::window_fetch_all(&self.cell, &self.seg, time_from, time_to)?;
        Ok(StoreIterator::new(raw.map(move |e| {
            let (k, start, v) = e?;
            Ok((
                Windowed::new(
                    decode(&this.cell, &this.key_serde, "key", &k)?,
                    Window::new(start, start.saturating_add(this.window_size_ms)),
                ),
                decode(&this.cell, &this.value_serde, "value", &v)?,
            ))
        })))
    }
}

impl<K: Send + Sync + 'static, V: Send + Sync + 'static> SessionStore<K, V> {
    /// The store as bytes, for queries.
    pub(crate) fn raw(&self) -> RawStore {
        RawStore::Session {
            cell: self.cell.clone(),
            seg: self.seg.clone(),
        }
    }

    /// Every live session of `key`, by end time, read a page at a time.
    pub fn sessions_iter(&self, key: &K) -> Result<StoreIterator<(Windowed<K>, V)>> {
        let k = serialize_key(&self.cell, &self.key_serde, key)?;
        let this = self.clone();
        let raw = RawStore::sessions(&self.cell, &self.seg, k)?;
        Ok(StoreIterator::new(raw.map(move |e| {
            let (k, start, end, v) = e?;
            Ok((
                Windowed::new(
                    decode(&this.cell, &this.key_serde, "key", &k)?,
                    Window::new(start, end),
                ),
                decode(&this.cell, &this.value_serde, "value", &v)?,
            ))
        })))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicI64;
    use std::sync::Arc;

    use state_store::{InMemoryEngine, KeyValueStoreStack};

    use super::prefix_bounds;
    use crate::serde::Serdes;
    use crate::state::{KeyValueStore, StoreCell, StoreFactory, Stores};
    use crate::task_id::TaskId;

    #[test]
    fn a_store_closed_under_a_scan_ends_it_with_an_error_naming_the_store() {
        let stack = KeyValueStoreStack::new(Box::new(InMemoryEngine::new("counts")));
        let task = TaskId {
            subtopology: 0,
            partition: 3,
        };
        let cell = Arc::new(StoreCell::new(task, stack, Arc::new(AtomicI64::new(0))));
        let builder = Stores::in_memory_key_value("counts", Serdes::string(), Serdes::i64());
        let opened = builder.open(cell.clone());
        let store = opened
            .handle
            .downcast_ref::<KeyValueStore<String, i64>>()
            .unwrap()
            .clone();
        for i in 0..2000 {
            store.put(&format!("k{i:04}"), &i).unwrap();
        }
        let mut it = store
            .range_iter(
                std::ops::Bound::Unbounded,
                std::ops::Bound::Unbounded,
                false,
            )
            .unwrap();
        assert_eq!(it.next().unwrap().unwrap(), ("k0000".to_string(), 0));
        // The task closes the store (it moved away): the rest of the page may still come,
        // then the scan ends with the store's error, not with a silent end.
        cell.with_stack(|s| s.close()).unwrap();
        let rest: Vec<_> = it.collect();
        let (ok, err): (Vec<_>, Vec<_>) = rest.into_iter().partition(|r| r.is_ok());
        assert!(ok.len() < 1999, "the scan did not read the closed store");
        assert_eq!(err.len(), 1, "one error, then the end");
        let e = err[0].as_ref().unwrap_err().to_string();
        assert!(e.contains("counts") && e.contains("0_3"), "{e}");
    }

    #[test]
    fn prefix_bounds_end_past_every_key_with_the_prefix() {
        use std::ops::Bound::{Excluded, Included, Unbounded};
        assert_eq!(
            prefix_bounds(b"ab"),
            (Included(b"ab".to_vec()), Excluded(b"ac".to_vec()))
        );
        assert_eq!(
            prefix_bounds(&[b'a', 0xff]),
            (Included(vec![b'a', 0xff]), Excluded(b"b".to_vec()))
        );
        assert_eq!(prefix_bounds(&[0xff]), (Included(vec![0xff]), Unbounded));
    }
}
