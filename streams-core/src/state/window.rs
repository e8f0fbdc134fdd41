//! Window and session stores: typed handles over a key-value stack whose keys are prefixed by a
//! time segment, so that a whole segment expires with one range delete.
//!
//! Keys in the engine and the cache are `segment (8 bytes) | changelog key`; the changelog key
//! is Kafka Streams' layout, so the changelog topic reads like Kafka Streams':
//! - window stores: `key | window start (8) | sequence number (4)`, segmented by window start;
//! - session stores: `key | session end (8) | session start (8)`, segmented by session end.
//!
//! All numbers are big-endian. A segment spans `segment interval` milliseconds (Kafka Streams'
//! default: half the retention, at least a minute); a segment is dropped once stream time (the
//! largest timestamp the store has seen) has moved past it by the retention period.

use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::sync::Arc;

use state_store::FlushedEntry;

use crate::error::{Result, StreamsError};
use crate::serde::SerdeRef;
use crate::state::{CacheFlush, CachedStore, StoreCell};
use crate::window::{Window, Windowed};

/// Bytes of the segment prefix of every engine key.
pub(crate) const SEGMENT_PREFIX: usize = 8;
const UNKNOWN: i64 = i64::MIN;

/// How a segmented store lays out its keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    /// `key | start | seq`, segmented by start.
    Window,
    /// `key | end | start`, segmented by end.
    Session,
}

impl Layout {
    fn suffix(self) -> usize {
        match self {
            Layout::Window => 12,
            Layout::Session => 16,
        }
    }

    /// The timestamp a changelog key is segmented by.
    fn segment_time(self, changelog_key: &[u8]) -> Option<i64> {
        let n = changelog_key.len().checked_sub(self.suffix())?;
        Some(be_i64(&changelog_key[n..n + 8]))
    }
}

pub(super) fn be_i64(b: &[u8]) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    i64::from_be_bytes(a)
}

/// The segments of one store of one task, shared by its handle clones and its restorer.
pub(crate) struct Segments {
    layout: Layout,
    retention_ms: i64,
    interval_ms: i64,
    /// Largest timestamp put or restored; `UNKNOWN` until the first put, restore or scan.
    observed: AtomicI64,
    /// Segments below this one are dropped.
    min_live: AtomicI64,
    /// Next sequence number of a store retaining duplicates.
    seq: AtomicU32,
}

impl Segments {
    pub(crate) fn new(layout: Layout, retention_ms: i64, interval_ms: i64) -> Self {
        Segments {
            layout,
            retention_ms,
            interval_ms: interval_ms.max(1),
            observed: AtomicI64::new(UNKNOWN),
            min_live: AtomicI64::new(0),
            seq: AtomicU32::new(0),
        }
    }

    fn id(&self, ts: i64) -> i64 {
        ts.max(0) / self.interval_ms
    }

    /// Maps a restored changelog key to its engine key, noting its time (and sequence number).
    pub(crate) fn engine_key(&self, changelog_key: &[u8]) -> Vec<u8> {
        let ts = self.layout.segment_time(changelog_key).unwrap_or(0);
        self.observed.fetch_max(ts, Ordering::Relaxed);
        self.note_seq(changelog_key);
        let mut k = Vec::with_capacity(SEGMENT_PREFIX + changelog_key.len());
        k.extend_from_slice(&self.id(ts).to_be_bytes());
        k.extend_from_slice(changelog_key);
        k
    }

    /// Keeps new sequence numbers above those of stored records, so that a put after a restart
    /// never overwrites a record kept under the same key and time.
    fn note_seq(&self, changelog_key: &[u8]) {
        if self.layout == Layout::Window && changelog_key.len() >= 12 {
            let b = &changelog_key[changelog_key.len() - 4..];
            let seq = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
            self.seq.fetch_max(seq.wrapping_add(1), Ordering::Relaxed);
        }
    }

    fn min_live_for(&self, observed: i64) -> i64 {
        self.id(observed.saturating_sub(self.retention_ms))
    }
}

/// Finds the store's stream time when nothing told it yet (opened over existing data and nothing
/// restored): the largest time in the store, or -1 when empty.
fn ensure_observed(cell: &StoreCell, seg: &Segments) -> Result<i64> {
    let o = seg.observed.load(Ordering::Relaxed);
    if o != UNKNOWN {
        return Ok(o);
    }
    let entries = cell.with_stack(|s| s.all())?;
    let mut max = -1;
    for k in entries.iter().filter_map(|(k, _)| k.get(SEGMENT_PREFIX..)) {
        max = max.max(seg.layout.segment_time(k).unwrap_or(-1));
        seg.note_seq(k);
    }
    seg.observed.fetch_max(max, Ordering::Relaxed);
    Ok(seg.observed.load(Ordering::Relaxed))
}

/// Notes a write at `ts`; returns false when its segment has already expired. Drops the
/// segments that expire because of it.
fn advance(cell: &StoreCell, seg: &Segments, ts: i64) -> Result<bool> {
    let observed = ensure_observed(cell, seg)?.max(ts);
    seg.observed.fetch_max(observed, Ordering::Relaxed);
    let min_live = seg.min_live_for(observed);
    if seg.id(ts) < min_live {
        return Ok(false);
    }
    let dropped_below = seg.min_live.load(Ordering::Relaxed);
    if min_live > dropped_below {
        // Everything below `min_live`, including segments left from before a restart.
        let from = 0i64.to_be_bytes();
        let to = min_live.to_be_bytes();
        // What the cache still held for those segments is written out and forwarded first.
        let mut inner = cell.lock();
        let flushed = inner
            .stack
            .drop_range(&from, &to)
            .map_err(|e| cell.err(e))?;
        cell.note_evicted(&mut inner, flushed);
        seg.min_live.store(min_live, Ordering::Relaxed);
    }
    Ok(true)
}

/// The live segment ids from the one holding `from` to the one holding `to`.
pub(super) fn live_segments(
    cell: &StoreCell,
    seg: &Segments,
    from: i64,
    to: i64,
) -> Result<Vec<i64>> {
    let observed = ensure_observed(cell, seg)?;
    if observed < 0 {
        return Ok(Vec::new());
    }
    let lo = seg.id(from).max(seg.min_live_for(observed));
    let hi = seg.id(to).min(seg.id(observed));
    Ok((lo..=hi).collect())
}

pub(super) fn serialize_key<K: 'static>(
    cell: &StoreCell,
    serde: &SerdeRef<K>,
    key: &K,
) -> Result<Vec<u8>> {
    match serde.serialize(&cell.name, key) {
        Ok(Some(b)) => Ok(b),
        Ok(None) => Err(StreamsError::StoreAccess {
            store: cell.name.to_string(),
            message: "a store key must not serialize to null".into(),
        }),
        Err(source) => Err(StreamsError::Serialization {
            target: format!("store `{}`", cell.name),
            source,
        }),
    }
}

fn serialize_value<V: 'static>(
    cell: &StoreCell,
    serde: &SerdeRef<V>,
    v: &V,
) -> Result<Option<Vec<u8>>> {
    serde
        .serialize(&cell.name, v)
        .map_err(|source| StreamsError::Serialization {
            target: format!("store `{}`", cell.name),
            source,
        })
}

pub(super) fn decode<T: 'static>(
    cell: &StoreCell,
    serde: &SerdeRef<T>,
    part: &str,
    b: &[u8],
) -> Result<T> {
    serde
        .deserialize(&cell.name, Some(b))
        .map_err(|e| StreamsError::StoreAccess {
            store: cell.name.to_string(),
            message: format!("stored {part} does not deserialize: {e}"),
        })
}

pub(super) fn corrupt(cell: &StoreCell, key: &[u8]) -> StreamsError {
    StreamsError::StoreAccess {
        store: cell.name.to_string(),
        message: format!(
            "stored key of {} bytes is too short for its window",
            key.len()
        ),
    }
}

/// A window store of a task: values per key and window start, kept for the retention period.
/// Cheap to clone; all clones are the same store.
///
/// A store retaining duplicates (the stream-stream join's) keeps every put of a key and window
/// start under its own sequence number; otherwise a put replaces the window's value.
pub struct WindowStore<K, V> {
    pub(super) cell: Arc<StoreCell>,
    pub(super) key_serde: SerdeRef<K>,
    pub(super) value_serde: SerdeRef<V>,
    pub(super) seg: Arc<Segments>,
    retain_duplicates: bool,
    pub(super) window_size_ms: i64,
}

impl<K, V> Clone for WindowStore<K, V> {
    fn clone(&self) -> Self {
        WindowStore {
            cell: self.cell.clone(),
            key_serde: self.key_serde.clone(),
            value_serde: self.value_serde.clone(),
            seg: self.seg.clone(),
            retain_duplicates: self.retain_duplicates,
            window_size_ms: self.window_size_ms,
        }
    }
}

impl<K: 'static, V: 'static> WindowStore<K, V> {
    pub(crate) fn new(
        cell: Arc<StoreCell>,
        key_serde: SerdeRef<K>,
        value_serde: SerdeRef<V>,
        seg: Arc<Segments>,
        retain_duplicates: bool,
        window_size_ms: i64,
    ) -> Self {
        WindowStore {
            cell,
            key_serde,
            value_serde,
            seg,
            retain_duplicates,
            window_size_ms,
        }
    }

    /// The store's name.
    pub fn name(&self) -> &str {
        &self.cell.name
    }

    /// Whether puts go through a record cache.
    pub fn is_cached(&self) -> bool {
        self.cell.with_stack(|s| Ok(s.is_cached())).unwrap_or(false)
    }

    /// The largest timestamp the store has seen (-1 when none).
    pub fn observed_stream_time(&self) -> Result<i64> {
        ensure_observed(&self.cell, &self.seg)
    }

    fn engine_key(seg: i64, key: &[u8], start: i64, seq: u32) -> Vec<u8> {
        let mut k = Vec::with_capacity(SEGMENT_PREFIX + key.len() + 12);
        k.extend_from_slice(&seg.to_be_bytes());
        k.extend_from_slice(key);
        k.extend_from_slice(&start.to_be_bytes());
        k.extend_from_slice(&seq.to_be_bytes());
        k
    }

    /// (key bytes, window start) of an engine key.
    fn split(&self, k: &[u8]) -> Result<(Vec<u8>, i64)> {
        if k.len() < SEGMENT_PREFIX + 12 {
            return Err(corrupt(&self.cell, k));
        }
        let n = k.len() - 12;
        Ok((k[SEGMENT_PREFIX..n].to_vec(), be_i64(&k[n..n + 8])))
    }

    /// Puts `value` for `key` in the window starting at `window_start` (`None` deletes it).
    /// A put into an expired segment is dropped; so is a delete in a store retaining duplicates.
    pub fn put(&self, key: &K, value: Option<&V>, window_start: i64) -> Result<()> {
        if self.retain_duplicates && value.is_none() {
            return Ok(());
        }
        let k = serialize_key(&self.cell, &self.key_serde, key)?;
        let v = match value {
            Some(v) => serialize_value(&self.cell, &self.value_serde, v)?,
            None => None,
        };
        if !advance(&self.cell, &self.seg, window_start)? {
            tracing::debug!(store = %self.cell.name, window_start, "skipping a put into an expired segment");
            return Ok(());
        }
        let seq = if self.retain_duplicates {
            self.seg.seq.fetch_add(1, Ordering::Relaxed)
        } else {
            0
        };
        let key = Self::engine_key(self.seg.id(window_start), &k, window_start, seq);
        let ts = self.cell.current_ts.load(Ordering::Relaxed);
        let mut inner = self.cell.lock();
        let evicted = inner
            .stack
            .put(&key, v.as_deref(), ts)
            .map_err(|e| self.cell.err(e))?;
        self.cell.note_evicted(&mut inner, evicted);
        Ok(())
    }

    /// The value of `key` in the window starting at `window_start`.
    pub fn fetch(&self, key: &K, window_start: i64) -> Result<Option<V>> {
        let k = serialize_key(&self.cell, &self.key_serde, key)?;
        let engine_key = Self::engine_key(self.seg.id(window_start), &k, window_start, 0);
        match self.cell.with_stack(|s| s.get(&engine_key))? {
            Some(v) => Ok(Some(decode(&self.cell, &self.value_serde, "value", &v)?)),
            None => Ok(None),
        }
    }

    /// The values of `key` in windows starting from `time_from` to `time_to` (inclusive), by
    /// start time, as (window start, value).
    pub fn fetch_range(&self, key: &K, time_from: i64, time_to: i64) -> Result<Vec<(i64, V)>> {
        let k = serialize_key(&self.cell, &self.key_serde, key)?;
        let mut out = Vec::new();
        for seg in live_segments(&self.cell, &self.seg, time_from, time_to)? {
            let from = Self::engine_key(seg, &k, time_from.max(0), 0);
            let to = Self::engine_key(seg, &k, time_to, u32::MAX);
            for (ek, v) in self.cell.with_stack(|s| s.range(Some(&from), Some(&to)))? {
                // A longer key starting with this key's bytes can sort inside the range.
                if ek.len() != SEGMENT_PREFIX + k.len() + 12
                    || ek[SEGMENT_PREFIX..][..k.len()] != k[..]
                {
                    continue;
                }
                let (_, start) = self.split(&ek)?;
                if (time_from..=time_to).contains(&start) {
                    out.push((start, decode(&self.cell, &self.value_serde, "value", &v)?));
                }
            }
        }
        Ok(out)
    }

    /// Every key's values in windows starting from `time_from` to `time_to` (inclusive).
    pub fn fetch_all(&self, time_from: i64, time_to: i64) -> Result<Vec<(Windowed<K>, V)>> {
        let mut out = Vec::new();
        for seg in live_segments(&self.cell, &self.seg, time_from, time_to)? {
            let from = seg.to_be_bytes();
            let to = (seg + 1).to_be_bytes();
            for (ek, v) in self.cell.with_stack(|s| s.range(Some(&from), Some(&to)))? {
                if ek.len() < SEGMENT_PREFIX + 12 || ek[..SEGMENT_PREFIX] != from {
                    continue;
                }
                let (k, start) = self.split(&ek)?;
                if (time_from..=time_to).contains(&start) {
                    out.push((
                        Windowed::new(
                            decode(&self.cell, &self.key_serde, "key", &k)?,
                            Window::new(start, start.saturating_add(self.window_size_ms)),
                        ),
                        decode(&self.cell, &self.value_serde, "value", &v)?,
                    ));
                }
            }
        }
        Ok(out)
    }

    /// Every live entry.
    pub fn all(&self) -> Result<Vec<(Windowed<K>, V)>> {
        self.fetch_all(0, i64::MAX)
    }
}

/// A session store of a task: one aggregate per key and session window.
/// Cheap to clone; all clones are the same store.
pub struct SessionStore<K, V> {
    pub(super) cell: Arc<StoreCell>,
    pub(super) key_serde: SerdeRef<K>,
    pub(super) value_serde: SerdeRef<V>,
    pub(super) seg: Arc<Segments>,
}

impl<K, V> Clone for SessionStore<K, V> {
    fn clone(&self) -> Self {
        SessionStore {
            cell: self.cell.clone(),
            key_serde: self.key_serde.clone(),
            value_serde: self.value_serde.clone(),
            seg: self.seg.clone(),
        }
    }
}

impl<K: 'static, V: 'static> SessionStore<K, V> {
    pub(crate) fn new(
        cell: Arc<StoreCell>,
        key_serde: SerdeRef<K>,
        value_serde: SerdeRef<V>,
        seg: Arc<Segments>,
    ) -> Self {
        SessionStore {
            cell,
            key_serde,
            value_serde,
            seg,
        }
    }

    /// The store's name.
    pub fn name(&self) -> &str {
        &self.cell.name
    }

    /// Whether puts go through a record cache.
    pub fn is_cached(&self) -> bool {
        self.cell.with_stack(|s| Ok(s.is_cached())).unwrap_or(false)
    }

    fn engine_key(seg: i64, key: &[u8], end: i64, start: i64) -> Vec<u8> {
        let mut k = Vec::with_capacity(SEGMENT_PREFIX + key.len() + 16);
        k.extend_from_slice(&seg.to_be_bytes());
        k.extend_from_slice(key);
        k.extend_from_slice(&end.to_be_bytes());
        k.extend_from_slice(&start.to_be_bytes());
        k
    }

    fn decode_session(&self, ek: &[u8]) -> Result<Windowed<K>> {
        if ek.len() < SEGMENT_PREFIX + 16 {
            return Err(corrupt(&self.cell, ek));
        }
        let n = ek.len() - 16;
        Ok(Windowed::new(
            decode(&self.cell, &self.key_serde, "key", &ek[SEGMENT_PREFIX..n])?,
            Window::new(be_i64(&ek[n + 8..]), be_i64(&ek[n..n + 8])),
        ))
    }

    fn write(&self, session: &Windowed<K>, value: Option<Vec<u8>>) -> Result<()> {
        let k = serialize_key(&self.cell, &self.key_serde, &session.key)?;
        let end = session.window.end;
        if !advance(&self.cell, &self.seg, end)? {
            tracing::debug!(store = %self.cell.name, end, "skipping a session write into an expired segment");
            return Ok(());
        }
        let key = Self::engine_key(self.seg.id(end), &k, end, session.window.start);
        let ts = self.cell.current_ts.load(Ordering::Relaxed);
        let mut inner = self.cell.lock();
        let evicted = inner
            .stack
            .put(&key, value.as_deref(), ts)
            .map_err(|e| self.cell.err(e))?;
        self.cell.note_evicted(&mut inner, evicted);
        Ok(())
    }

    /// Stores the aggregate of `session`.
    pub fn put(&self, session: &Windowed<K>, value: &V) -> Result<()> {
        let v = serialize_value(&self.cell, &self.value_serde, value)?;
        self.write(session, v)
    }

    /// Removes `session`.
    pub fn remove(&self, session: &Windowed<K>) -> Result<()> {
        self.write(session, None)
    }

    /// The aggregate of `key`'s session `[start, end]`.
    pub fn fetch_session(&self, key: &K, start: i64, end: i64) -> Result<Option<V>> {
        let k = serialize_key(&self.cell, &self.key_serde, key)?;
        let ek = Self::engine_key(self.seg.id(end), &k, end, start);
        match self.cell.with_stack(|s| s.get(&ek))? {
            Some(v) => Ok(Some(decode(&self.cell, &self.value_serde, "value", &v)?)),
            None => Ok(None),
        }
    }

    /// `key`'s sessions ending at or after `earliest_end` and starting at or before
    /// `latest_start`: the sessions a record at `t` with gap `g` touches are
    /// `find_sessions(key, t - g, t + g)`.
    pub fn find_sessions(
        &self,
        key: &K,
        earliest_end: i64,
        latest_start: i64,
    ) -> Result<Vec<(Windowed<K>, V)>> {
        let k = serialize_key(&self.cell, &self.key_serde, key)?;
        let mut out = Vec::new();
        for seg in live_segments(&self.cell, &self.seg, earliest_end, i64::MAX)? {
            let from = Self::engine_key(seg, &k, earliest_end.max(0), 0);
            let to = Self::engine_key(seg, &k, i64::MAX, i64::MAX);
            for (ek, v) in self.cell.with_stack(|s| s.range(Some(&from), Some(&to)))? {
                if ek.len() != SEGMENT_PREFIX + k.len() + 16
                    || ek[SEGMENT_PREFIX..][..k.len()] != k[..]
                {
                    continue;
                }
                let session = self.decode_session(&ek)?;
                if session.window.end >= earliest_end && session.window.start <= latest_start {
                    out.push((session, decode(&self.cell, &self.value_serde, "value", &v)?));
                }
            }
        }
        Ok(out)
    }

    /// Every live session.
    pub fn all(&self) -> Result<Vec<(Windowed<K>, V)>> {
        self.fetch_ending(0, i64::MAX)
    }

    /// Every key's sessions ending from `end_from` to `end_to` (inclusive).
    pub fn fetch_ending(&self, end_from: i64, end_to: i64) -> Result<Vec<(Windowed<K>, V)>> {
        let mut out = Vec::new();
        for seg in live_segments(&self.cell, &self.seg, end_from, end_to)? {
            let from = seg.to_be_bytes();
            let to = (seg + 1).to_be_bytes();
            for (ek, v) in self.cell.with_stack(|s| s.range(Some(&from), Some(&to)))? {
                if ek[..SEGMENT_PREFIX.min(ek.len())] != from {
                    continue;
                }
                let session = self.decode_session(&ek)?;
                if (end_from..=end_to).contains(&session.window.end) {
                    out.push((session, decode(&self.cell, &self.value_serde, "value", &v)?));
                }
            }
        }
        Ok(out)
    }
}

fn decode_opt<T: 'static>(
    cell: &StoreCell,
    serde: &SerdeRef<T>,
    b: Option<&[u8]>,
) -> Result<Option<T>> {
    b.map(|b| decode(cell, serde, "value", b)).transpose()
}

impl<K: Send + Sync + 'static, V: Send + Sync + 'static> CachedStore for WindowStore<K, V> {
    type Key = Windowed<K>;
    type Value = V;
    fn store_name(&self) -> &str {
        &self.cell.name
    }
    fn decode_flushed(&self, e: FlushedEntry) -> Result<CacheFlush<Windowed<K>, V>> {
        let (k, start) = self.split(&e.key)?;
        Ok(CacheFlush {
            key: Windowed::new(
                decode(&self.cell, &self.key_serde, "key", &k)?,
                Window::new(start, start.saturating_add(self.window_size_ms)),
            ),
            new_value: decode_opt(&self.cell, &self.value_serde, e.new_value.as_deref())?,
            old_value: decode_opt(&self.cell, &self.value_serde, e.old_value.as_deref())?,
            timestamp: e.timestamp,
        })
    }
}

impl<K: Send + Sync + 'static, V: Send + Sync + 'static> CachedStore for SessionStore<K, V> {
    type Key = Windowed<K>;
    type Value = V;
    fn store_name(&self) -> &str {
        &self.cell.name
    }
    fn decode_flushed(&self, e: FlushedEntry) -> Result<CacheFlush<Windowed<K>, V>> {
        Ok(CacheFlush {
            key: self.decode_session(&e.key)?,
            new_value: decode_opt(&self.cell, &self.value_serde, e.new_value.as_deref())?,
            old_value: decode_opt(&self.cell, &self.value_serde, e.old_value.as_deref())?,
            timestamp: e.timestamp,
        })
    }
}
