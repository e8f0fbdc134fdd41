//! The suppression processor: a buffer (a logged in-memory store) of the latest update of each
//! key, ordered by the time it may be emitted, and emitted when stream time (or, for window
//! closes, optionally the wall clock) passes that time.
//!
//! The buffer's entries are keyed by buffer time (8 bytes, big-endian) then the key's bytes, so
//! a range scan finds what is due. Under a time limit, a key keeps the buffer time of its first
//! buffered update (later updates do not restart its timer, as in Kafka Streams), found through
//! an index entry `INDEX ++ key -> buffer time`, which sorts after every entry (timestamps are
//! not negative, so an entry's first byte is below 0x80).

use std::time::Duration;

use streams_core::serde::SerdeRef;
use streams_core::{
    Change, KeyValueStore, Processor, ProcessorContext, PunctuationId, PunctuationType, Record,
    Result, StreamsError,
};

use super::{BufferFull, Suppressed};
use crate::Data;

/// The first byte of index entries.
const INDEX: u8 = 0xff;

/// One buffered key: the last update's timestamp, the value before the first buffered
/// update (`prior`) and the latest value.
struct Entry {
    timestamp: i64,
    prior: Option<Vec<u8>>,
    new: Option<Vec<u8>>,
}

impl Entry {
    fn encode(&self) -> Vec<u8> {
        let prior = self.prior.as_deref().unwrap_or_default();
        let mut out = Vec::with_capacity(13 + prior.len() + self.new.as_ref().map_or(0, Vec::len));
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.push(u8::from(self.prior.is_some()) | if self.new.is_some() { 2 } else { 0 });
        out.extend_from_slice(&(prior.len() as u32).to_be_bytes());
        out.extend_from_slice(prior);
        if let Some(n) = &self.new {
            out.extend_from_slice(n);
        }
        out
    }

    fn decode(b: &[u8]) -> Option<Entry> {
        let timestamp = i64::from_be_bytes(b.get(..8)?.try_into().ok()?);
        let flags = *b.get(8)?;
        let len = u32::from_be_bytes(b.get(9..13)?.try_into().ok()?) as usize;
        let prior = b.get(13..13usize.checked_add(len)?)?;
        let rest = &b[13 + len..];
        Some(Entry {
            timestamp,
            prior: (flags & 1 != 0).then(|| prior.to_vec()),
            new: (flags & 2 != 0).then(|| rest.to_vec()),
        })
    }
}

/// The buffer key: buffer time (so the buffer is ordered by when keys are due), then the key.
fn buffer_key(end: i64, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + key.len());
    k.extend_from_slice(&end.to_be_bytes());
    k.extend_from_slice(key);
    k
}

fn index_key(key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + key.len());
    k.push(INDEX);
    k.extend_from_slice(key);
    k
}

/// When a buffered key is due.
pub(super) enum Due<K> {
    /// At the end of its window (read from the key) plus the grace.
    WindowClose {
        window_end: fn(&K) -> i64,
        grace: i64,
    },
    /// At its first buffered update's timestamp plus this wait.
    TimeLimit { wait: i64 },
}

// By hand: a derive would require `K: Copy`, and only a function pointer is copied.
impl<K> Clone for Due<K> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<K> Copy for Due<K> {}

/// The suppression processor of a table keyed by `K`.
pub(super) struct Suppress<K, V> {
    store_name: String,
    buffer: KeyValueStore<Vec<u8>, Vec<u8>>,
    key_serde: SerdeRef<K>,
    value_serde: SerdeRef<V>,
    config: Suppressed,
    due: Due<K>,
    /// How far behind stream time a buffer time must be to be emitted: grace or wait.
    delay: i64,
    observed: i64,
    records: u64,
    bytes: u64,
    /// The wall-clock close delay, when one is set.
    wall_clock_delay_ms: Option<i64>,
}

impl<K: Data, V: Data> Suppress<K, V> {
    /// Opens the buffer (counting what it holds) and schedules the wall-clock close, if any.
    pub(super) fn init(
        ctx: &mut ProcessorContext<'_, K, Change<V>>,
        store: &str,
        key_serde: SerdeRef<K>,
        value_serde: SerdeRef<V>,
        config: Suppressed,
        due: Due<K>,
    ) -> Result<Self> {
        let buffer: KeyValueStore<Vec<u8>, Vec<u8>> = ctx.get_state_store(store)?;
        let (mut records, mut bytes) = (0, 0);
        for (k, v) in buffer.all()? {
            if k.first() != Some(&INDEX) {
                records += 1;
                bytes += (k.len() + v.len()) as u64;
            }
        }
        let delay = match due {
            Due::WindowClose { grace, .. } => grace,
            Due::TimeLimit { wait } => wait,
        };
        let wall_clock_delay_ms = config.wall_clock_close.map(|delay| {
            let every = delay
                .min(Duration::from_secs(1))
                .max(Duration::from_millis(1));
            ctx.schedule_punctuation(every, PunctuationType::WallClockTime);
            i64::try_from(delay.as_millis()).unwrap_or(i64::MAX)
        });
        Ok(Suppress {
            store_name: store.to_string(),
            buffer,
            key_serde,
            value_serde,
            config,
            due,
            delay,
            observed: -1,
            records,
            bytes,
            wall_clock_delay_ms,
        })
    }

    fn err(&self, message: String) -> StreamsError {
        StreamsError::StoreAccess {
            store: self.store_name.clone(),
            message,
        }
    }

    fn ser<T: 'static>(&self, serde: &SerdeRef<T>, v: &T) -> Result<Option<Vec<u8>>> {
        serde
            .serialize(&self.store_name, v)
            .map_err(|source| StreamsError::Serialization {
                target: format!("suppression buffer `{}`", self.store_name),
                source,
            })
    }

    fn de<T: 'static>(&self, serde: &SerdeRef<T>, b: Option<&[u8]>) -> Result<Option<T>> {
        b.map(|b| serde.deserialize(&self.store_name, Some(b)))
            .transpose()
            .map_err(|e| self.err(format!("buffered bytes do not deserialize: {e}")))
    }

    /// Forwards and removes the buffered window stored under `k`.
    fn emit(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<V>>,
        k: &[u8],
        v: &[u8],
    ) -> Result<()> {
        let e = Entry::decode(v).ok_or_else(|| self.err("corrupt buffered entry".into()))?;
        let key = self
            .de(&self.key_serde, k.get(8..))?
            .ok_or_else(|| self.err("buffered key without bytes".into()))?;
        let new = self.de(&self.value_serde, e.new.as_deref())?;
        let prior = self.de(&self.value_serde, e.prior.as_deref())?;
        self.buffer.delete(&k.to_vec())?;
        if matches!(self.due, Due::TimeLimit { .. }) {
            self.buffer.delete(&index_key(&k[8..]))?;
        }
        self.records = self.records.saturating_sub(1);
        self.bytes = self.bytes.saturating_sub((k.len() + v.len()) as u64);
        // A window that never had a result has nothing to delete downstream. A rate-limited
        // table forwards every delete, as Kafka Streams does.
        if new.is_none() && prior.is_none() && matches!(self.due, Due::WindowClose { .. }) {
            return Ok(());
        }
        ctx.forward(Record::new(key, Change::new(new, prior), e.timestamp))
    }

    /// Emits every key whose buffer time is at or before `close`.
    fn evict_closed(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<V>>,
        close: i64,
    ) -> Result<()> {
        if close < 0 {
            return Ok(());
        }
        let from = vec![0u8; 8];
        let to = close.saturating_add(1).to_be_bytes().to_vec();
        for (k, v) in self.buffer.range(&from, &to)? {
            if k.len() > 8 && k[..8] <= close.to_be_bytes()[..] {
                self.emit(ctx, &k, &v)?;
            }
        }
        Ok(())
    }

    fn buffer(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<V>>,
        r: Record<K, Change<V>>,
    ) -> Result<()> {
        self.observed = self.observed.max(r.timestamp);
        let key = self.ser(&self.key_serde, &r.key)?.ok_or_else(|| {
            self.err("a suppressed table's key must not serialize to null".into())
        })?;
        let bk = buffer_key(self.buffer_time(&r, &key)?, &key);
        let existing = self.buffer.get(&bk)?;
        let prior = match &existing {
            Some(e) => {
                Entry::decode(e)
                    .ok_or_else(|| self.err("corrupt buffered entry".into()))?
                    .prior
            }
            None => match &r.value.old_value {
                Some(o) => self.ser(&self.value_serde, o)?,
                None => None,
            },
        };
        let new = match &r.value.new_value {
            Some(n) => self.ser(&self.value_serde, n)?,
            None => None,
        };
        let entry = Entry {
            timestamp: r.timestamp,
            prior,
            new,
        }
        .encode();
        match &existing {
            Some(e) => self.bytes = self.bytes.saturating_sub((bk.len() + e.len()) as u64),
            None => self.records += 1,
        }
        self.bytes += (bk.len() + entry.len()) as u64;
        self.buffer.put(&bk, &entry)?;
        self.evict_closed(ctx, self.observed - self.delay)?;
        self.enforce_limits(ctx)
    }

    /// When the record's key is due, before the delay: its window's end, or under a time limit
    /// the timestamp of its first buffered update (kept in the index until it is emitted).
    fn buffer_time(&self, r: &Record<K, Change<V>>, key: &[u8]) -> Result<i64> {
        match self.due {
            Due::WindowClose { window_end, .. } => Ok(window_end(&r.key)),
            Due::TimeLimit { .. } => {
                let index = index_key(key);
                if let Some(t) = self.buffer.get(&index)? {
                    let bytes = t.get(..8).and_then(|b| <[u8; 8]>::try_from(b).ok());
                    return bytes
                        .map(i64::from_be_bytes)
                        .ok_or_else(|| self.err("corrupt buffer index entry".into()));
                }
                // Not negative, so that no entry's key starts with the index byte.
                let time = r.timestamp.max(0);
                self.buffer.put(&index, &time.to_be_bytes().to_vec())?;
                Ok(time)
            }
        }
    }

    fn over_limit(&self) -> bool {
        let b = &self.config.buffer;
        b.max_records.is_some_and(|m| self.records > m)
            || b.max_bytes.is_some_and(|m| self.bytes > m)
    }

    fn enforce_limits(&mut self, ctx: &mut ProcessorContext<'_, K, Change<V>>) -> Result<()> {
        if !self.over_limit() {
            return Ok(());
        }
        if self.config.buffer.when_full == BufferFull::ShutDown {
            return Err(self.err(format!(
                "suppression buffer is full ({} keys, {} bytes; limits {:?} keys, {:?} bytes) and is set to shut down when full",
                self.records, self.bytes, self.config.buffer.max_records, self.config.buffer.max_bytes
            )));
        }
        for (k, v) in self.buffer.all()? {
            // Index entries sort after every entry.
            if !self.over_limit() || k.first() == Some(&INDEX) {
                break;
            }
            self.emit(ctx, &k, &v)?;
        }
        Ok(())
    }
}

impl<K: Data, V: Data> Processor for Suppress<K, V> {
    type KIn = K;
    type VIn = Change<V>;
    type KOut = K;
    type VOut = Change<V>;

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<V>>,
        r: Record<K, Change<V>>,
    ) -> Result<()> {
        self.buffer(ctx, r)
    }

    /// The wall-clock close: windows whose end is `delay + grace` behind the wall clock.
    fn punctuate(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<V>>,
        _: PunctuationId,
        now: i64,
    ) -> Result<()> {
        let Some(delay_ms) = self.wall_clock_delay_ms else {
            return Ok(());
        };
        let close = now.saturating_sub(delay_ms).saturating_sub(self.delay);
        self.evict_closed(ctx, close)
    }
}
