//! Windowed KStream-KStream joins: inner, left and outer, with [`JoinWindows`].
//!
//! Each side keeps its records in a window store (every record, duplicates included) for the
//! join window plus grace. A record joins with the other side's records of the same key whose
//! timestamps lie within the window around it; a result carries the larger timestamp. A left or
//! outer join holds a record that has found no partner in a shared "outer" store, and emits it
//! with `None` for the missing side only once its window has closed (stream time past its
//! timestamp + window + grace), so an unmatched result is never followed by a matched one.

use std::sync::Arc;
use std::time::Duration;

use streams_core::serde::{SerdeRef, Serdes};
use streams_core::{
    KeyValueStore, Processor, ProcessorContext, Record, Result, Stores, StreamsError, WindowStore,
};

use crate::kstream::KStream;
use crate::processors::FnProcessor;
use crate::Data;

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// How far apart in time two records of the same key may be to join: the other record at most
/// `before` earlier or `after` later than this one; records later than `grace` after the window
/// are dropped.
///
/// ```
/// use std::time::Duration;
/// use streams_dsl::stream_join::JoinWindows;
/// let w = JoinWindows::of_time_difference_and_grace(Duration::from_secs(5), Duration::from_secs(1))
///     .after(Duration::from_secs(10));
/// assert_eq!((w.before_ms(), w.after_ms(), w.grace_ms()), (5_000, 10_000, 1_000));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JoinWindows {
    before_ms: i64,
    after_ms: i64,
    grace_ms: i64,
}

impl JoinWindows {
    /// Records at most `difference` apart join; no late records are accepted.
    pub fn of_time_difference_with_no_grace(difference: Duration) -> Self {
        Self::of_time_difference_and_grace(difference, Duration::ZERO)
    }

    /// Records at most `difference` apart join; records up to `grace` late are accepted.
    pub fn of_time_difference_and_grace(difference: Duration, grace: Duration) -> Self {
        JoinWindows {
            before_ms: ms(difference),
            after_ms: ms(difference),
            grace_ms: ms(grace),
        }
    }

    /// How much earlier than this side's record the other side's may be.
    pub fn before(mut self, d: Duration) -> Self {
        self.before_ms = ms(d);
        self
    }

    /// How much later than this side's record the other side's may be.
    pub fn after(mut self, d: Duration) -> Self {
        self.after_ms = ms(d);
        self
    }

    /// `before` in milliseconds.
    pub fn before_ms(&self) -> i64 {
        self.before_ms
    }
    /// `after` in milliseconds.
    pub fn after_ms(&self) -> i64 {
        self.after_ms
    }
    /// `grace` in milliseconds.
    pub fn grace_ms(&self) -> i64 {
        self.grace_ms
    }
}

/// Serdes and names of a stream-stream join's stores (all optional).
pub struct StreamJoined<K, V1, V2> {
    name: Option<String>,
    key_serde: Option<SerdeRef<K>>,
    value_serde: Option<SerdeRef<V1>>,
    other_value_serde: Option<SerdeRef<V2>>,
    in_memory: bool,
}

impl<K, V1, V2> Default for StreamJoined<K, V1, V2> {
    fn default() -> Self {
        StreamJoined {
            name: None,
            key_serde: None,
            value_serde: None,
            other_value_serde: None,
            in_memory: false,
        }
    }
}

impl<K, V1, V2> StreamJoined<K, V1, V2> {
    /// The serdes of the key and of both sides' values.
    pub fn with(key: SerdeRef<K>, value: SerdeRef<V1>, other_value: SerdeRef<V2>) -> Self {
        StreamJoined {
            key_serde: Some(key),
            value_serde: Some(value),
            other_value_serde: Some(other_value),
            ..Default::default()
        }
    }
    /// Names the join: its stores are `<name>-this-join-store`, `<name>-other-join-store` and
    /// `<name>-outer-join-store`.
    pub fn with_name(mut self, name: &str) -> Self {
        self.name = Some(name.to_string());
        self
    }
    /// Keeps the join's stores in memory.
    pub fn in_memory(mut self) -> Self {
        self.in_memory = true;
        self
    }
}

/// Which join: which sides emit records that found no partner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Inner,
    Left,
    Outer,
}

/// `(key, this value, other value) -> result`, `None` for a side without a partner.
type Joiner<K, V1, V2, VR> = Arc<dyn Fn(&K, Option<&V1>, Option<&V2>) -> VR + Send + Sync>;

impl<K: Data, V: Data> KStream<K, V> {
    /// Inner join with `other` within `windows`: `joiner(this, other)` for every pair of
    /// records of the same key at most the window apart.
    ///
    /// ```
    /// use std::time::Duration;
    /// use streams_dsl::{stream_join::JoinWindows, StreamsBuilder};
    /// let b = StreamsBuilder::new();
    /// let clicks = b.stream::<String, String>("clicks");
    /// let views = b.stream::<String, String>("views");
    /// clicks
    ///     .join_windowed(&views, |c, v| format!("{c}/{v}"),
    ///         JoinWindows::of_time_difference_with_no_grace(Duration::from_secs(60)))
    ///     .to("clicked-views");
    /// assert!(b.build().is_ok());
    /// ```
    pub fn join_windowed<V2: Data, VR: Data>(
        &self,
        other: &KStream<K, V2>,
        joiner: impl Fn(&V, &V2) -> VR + Send + Sync + 'static,
        windows: JoinWindows,
    ) -> KStream<K, VR> {
        self.join_windowed_with(other, joiner, windows, StreamJoined::default())
    }

    /// Like [`Self::join_windowed`], with serdes and names from `joined`.
    pub fn join_windowed_with<V2: Data, VR: Data>(
        &self,
        other: &KStream<K, V2>,
        joiner: impl Fn(&V, &V2) -> VR + Send + Sync + 'static,
        windows: JoinWindows,
        joined: StreamJoined<K, V, V2>,
    ) -> KStream<K, VR> {
        let j: Joiner<K, V, V2, VR> = Arc::new(move |_, a, b| {
            joiner(
                a.expect("inner joins have both sides"),
                b.expect("inner joins have both sides"),
            )
        });
        self.stream_join(other, j, windows, joined, Kind::Inner)
    }

    /// Left join with `other` within `windows`: every record of this stream gives a result,
    /// `joiner(this, None)` once its window closes without a partner.
    pub fn left_join_windowed<V2: Data, VR: Data>(
        &self,
        other: &KStream<K, V2>,
        joiner: impl Fn(&V, Option<&V2>) -> VR + Send + Sync + 'static,
        windows: JoinWindows,
    ) -> KStream<K, VR> {
        let j: Joiner<K, V, V2, VR> =
            Arc::new(move |_, a, b| joiner(a.expect("left joins always have this side"), b));
        self.stream_join(other, j, windows, StreamJoined::default(), Kind::Left)
    }

    /// Outer join with `other` within `windows`: records of either side without a partner give
    /// `joiner(Some(this), None)` or `joiner(None, Some(other))` once their window closes.
    pub fn outer_join_windowed<V2: Data, VR: Data>(
        &self,
        other: &KStream<K, V2>,
        joiner: impl Fn(Option<&V>, Option<&V2>) -> VR + Send + Sync + 'static,
        windows: JoinWindows,
    ) -> KStream<K, VR> {
        let j: Joiner<K, V, V2, VR> = Arc::new(move |_, a, b| joiner(a, b));
        self.stream_join(other, j, windows, StreamJoined::default(), Kind::Outer)
    }

    fn stream_join<V2: Data, VR: Data>(
        &self,
        other: &KStream<K, V2>,
        joiner: Joiner<K, V, V2, VR>,
        windows: JoinWindows,
        joined: StreamJoined<K, V, V2>,
        kind: Kind,
    ) -> KStream<K, VR> {
        let b = self.b.clone();
        if windows.before_ms < 0 || windows.after_ms < 0 || windows.before_ms + windows.after_ms < 0
        {
            b.borrow_mut().fail(StreamsError::topology(
                "",
                format!(
                    "join window before ({} ms) and after ({} ms) must not be negative",
                    windows.before_ms, windows.after_ms
                ),
            ));
        }
        let this_name = self.node_name("KSTREAM-JOINTHIS-");
        let other_name = b.borrow_mut().new_name("KSTREAM-JOINOTHER-");
        let merge = b.borrow_mut().new_name("KSTREAM-MERGE-");
        let base = joined.name.clone().unwrap_or_else(|| this_name.clone());
        // Key changes upstream: both sides go through repartition topics so that equal keys
        // meet in one task.
        let left = if self.repartition_required {
            self.through_repartition_topic(
                &format!("{base}-left"),
                joined.key_serde.clone(),
                joined.value_serde.clone(),
                None,
            )
        } else {
            self.clone()
        };
        let right = if other.repartition_required {
            other.through_repartition_topic(
                &format!("{base}-right"),
                joined.key_serde.clone(),
                joined.other_value_serde.clone(),
                None,
            )
        } else {
            other.clone()
        };
        let mut inner = b.borrow_mut();
        let k = inner.serde(
            joined
                .key_serde
                .clone()
                .or(left.key_serde.clone())
                .or(right.key_serde.clone()),
            &format!("the key of join `{base}`"),
        );
        let v1 = inner.serde(
            joined.value_serde.clone().or(left.value_serde.clone()),
            &format!("this side's value of join `{base}`"),
        );
        let v2 = inner.serde(
            joined
                .other_value_serde
                .clone()
                .or(right.value_serde.clone()),
            &format!("the other side's value of join `{base}`"),
        );
        let (this_store, other_store, outer_store) = match &joined.name {
            Some(n) => (
                format!("{n}-this-join-store"),
                format!("{n}-other-join-store"),
                format!("{n}-outer-join-store"),
            ),
            None => {
                let t = format!("{this_name}-store");
                let o = format!("{other_name}-store");
                let s = inner.new_name("KSTREAM-OUTERSHARED-");
                for n in [&t, &o] {
                    inner.topology.note_generated_name("store", n);
                }
                (t, o, format!("{s}-store"))
            }
        };
        let span = windows.before_ms.saturating_add(windows.after_ms);
        let retention = span.saturating_add(windows.grace_ms).saturating_add(1);
        let persistent = !joined.in_memory;
        let this_sb = join_store(
            &this_store,
            retention,
            span + 1,
            k.clone(),
            v1.clone(),
            persistent,
        );
        let other_sb = join_store(
            &other_store,
            retention,
            span + 1,
            k.clone(),
            v2.clone(),
            persistent,
        );
        let outer_sb = (kind != Kind::Inner).then(|| {
            Stores::persistent_key_value(&outer_store, Serdes::bytes(), Serdes::bytes())
                .persistent(persistent)
                .with_caching_disabled()
        });
        let shared = Arc::new(Shared {
            key_serde: k.clone(),
            left_serde: v1.clone(),
            right_serde: v2.clone(),
            joiner,
            windows,
            outer_store: outer_sb.as_ref().map(|_| outer_store.clone()),
        });
        let (left_parent, right_parent) = (left.node.clone(), right.node.clone());
        let (tn, on, mn) = (this_name.clone(), other_name.clone(), merge.clone());
        let (ts, os) = (this_store.clone(), other_store.clone());
        let left_unmatched = kind != Kind::Inner;
        let right_unmatched = kind == Kind::Outer;
        inner.apply(move |t| {
            let sh: Arc<dyn SharedJoin<K, V, V2, VR>> = shared.clone();
            let (a, o) = (ts.clone(), os.clone());
            t.add_processor(
                &tn,
                move |ctx| {
                    JoinSide::<K, V, V2, VR>::init(ctx, sh.clone(), true, left_unmatched, &a, &o)
                },
                &[&left_parent],
            )?;
            let sh: Arc<dyn SharedJoin<K, V2, V, VR>> = Arc::new(Flipped(shared.clone()));
            let (a, o) = (ts.clone(), os.clone());
            t.add_processor(
                &on,
                move |ctx| {
                    JoinSide::<K, V2, V, VR>::init(ctx, sh.clone(), false, right_unmatched, &o, &a)
                },
                &[&right_parent],
            )?;
            t.add_processor(
                &mn,
                |_| {
                    Ok(FnProcessor::<K, VR, K, VR, _>::new(Arc::new(
                        |ctx: &mut ProcessorContext<'_, K, VR>, r: Record<K, VR>| ctx.forward(r),
                    )))
                },
                &[&tn, &on],
            )?;
            t.add_state_store(this_sb, &[&tn, &on])?;
            t.add_state_store(other_sb, &[&tn, &on])?;
            if let Some(sb) = outer_sb {
                t.add_state_store(sb, &[&tn, &on])?;
            }
            Ok(())
        });
        drop(inner);
        KStream::new(b, merge, Some(k), None, false)
    }
}

/// A side's store: every record (duplicates kept) for the window plus grace, uncached.
fn join_store<K, V>(
    name: &str,
    retention: i64,
    size: i64,
    k: SerdeRef<K>,
    v: SerdeRef<V>,
    persistent: bool,
) -> streams_core::StoreBuilder<K, V> {
    Stores::persistent_window_store(name, retention, size, true, k, v)
        .persistent(persistent)
        .with_caching_disabled()
}

/// What both sides of one join share.
struct Shared<K, V1, V2, VR> {
    key_serde: SerdeRef<K>,
    left_serde: SerdeRef<V1>,
    right_serde: SerdeRef<V2>,
    /// `(key, left, right) -> result`.
    joiner: Joiner<K, V1, V2, VR>,
    windows: JoinWindows,
    outer_store: Option<String>,
}

/// One side of a join: `VT` is this side's value type, `VO` the other's. The left side has
/// `VT = V1`; the right side `VT = V2` and calls the joiner with the arguments swapped back.
struct JoinSide<K, VT, VO, VR> {
    shared: Arc<dyn SharedJoin<K, VT, VO, VR>>,
    left_side: bool,
    emits_unmatched: bool,
    this_store_name: String,
    this_store: WindowStore<K, VT>,
    other_store: WindowStore<K, VO>,
    /// The records waiting for a partner, for left and outer joins.
    outer: Option<KeyValueStore<Vec<u8>, Vec<u8>>>,
}

/// The join's shared part seen from one side: (this, other) in that side's terms.
trait SharedJoin<K, VT, VO, VR>: Send + Sync {
    fn join(&self, key: &K, this: Option<&VT>, other: Option<&VO>) -> VR;
    fn key_serde(&self) -> &SerdeRef<K>;
    fn this_serde(&self) -> &SerdeRef<VT>;
    fn other_serde(&self) -> &SerdeRef<VO>;
    fn windows(&self) -> JoinWindows;
    fn outer_store(&self) -> Option<&str>;
}

/// The left side sees the join as declared.
impl<K: Data, V1: Data, V2: Data, VR: Data> SharedJoin<K, V1, V2, VR> for Shared<K, V1, V2, VR> {
    fn join(&self, key: &K, this: Option<&V1>, other: Option<&V2>) -> VR {
        (self.joiner)(key, this, other)
    }
    fn key_serde(&self) -> &SerdeRef<K> {
        &self.key_serde
    }
    fn this_serde(&self) -> &SerdeRef<V1> {
        &self.left_serde
    }
    fn other_serde(&self) -> &SerdeRef<V2> {
        &self.right_serde
    }
    fn windows(&self) -> JoinWindows {
        self.windows
    }
    fn outer_store(&self) -> Option<&str> {
        self.outer_store.as_deref()
    }
}

/// The right side: its "this" is the join's right.
struct Flipped<K, V1, V2, VR>(Arc<Shared<K, V1, V2, VR>>);

impl<K: Data, V1: Data, V2: Data, VR: Data> SharedJoin<K, V2, V1, VR> for Flipped<K, V1, V2, VR> {
    fn join(&self, key: &K, this: Option<&V2>, other: Option<&V1>) -> VR {
        (self.0.joiner)(key, other, this)
    }
    fn key_serde(&self) -> &SerdeRef<K> {
        &self.0.key_serde
    }
    fn this_serde(&self) -> &SerdeRef<V2> {
        &self.0.right_serde
    }
    fn other_serde(&self) -> &SerdeRef<V1> {
        &self.0.left_serde
    }
    fn windows(&self) -> JoinWindows {
        // The window seen from the right is mirrored.
        JoinWindows {
            before_ms: self.0.windows.after_ms,
            after_ms: self.0.windows.before_ms,
            grace_ms: self.0.windows.grace_ms,
        }
    }
    fn outer_store(&self) -> Option<&str> {
        self.0.outer_store.as_deref()
    }
}

/// The outer store's key: record timestamp (so unmatched records come out in time order), the
/// side (0 left, 1 right), the key's bytes.
fn outer_key(ts: i64, left: bool, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(9 + key.len());
    k.extend_from_slice(&ts.to_be_bytes());
    k.push(if left { 0 } else { 1 });
    k.extend_from_slice(key);
    k
}

impl<K: Data, VT: Data, VO: Data, VR: Data> JoinSide<K, VT, VO, VR> {
    fn init(
        ctx: &mut ProcessorContext<'_, K, VR>,
        shared: Arc<dyn SharedJoin<K, VT, VO, VR>>,
        left_side: bool,
        emits_unmatched: bool,
        this_store: &str,
        other_store: &str,
    ) -> Result<Self> {
        let outer = match shared.outer_store() {
            Some(name) => Some(ctx.get_state_store(name)?),
            None => None,
        };
        Ok(JoinSide {
            left_side,
            emits_unmatched,
            this_store_name: this_store.to_string(),
            this_store: ctx.get_store(this_store)?,
            other_store: ctx.get_store(other_store)?,
            outer,
            shared,
        })
    }

    fn serde_err(&self, e: streams_core::serde::SerdeError) -> StreamsError {
        StreamsError::Serialization {
            target: format!("join store `{}`", self.this_store_name),
            source: e,
        }
    }

    fn key_bytes(&self, key: &K) -> Result<Vec<u8>> {
        self.shared
            .key_serde()
            .serialize(&self.this_store_name, key)
            .map_err(|e| self.serde_err(e))?
            .ok_or_else(|| StreamsError::StoreAccess {
                store: self.this_store_name.clone(),
                message: "a join key must not serialize to null".into(),
            })
    }

    /// Emits the records held in the outer store whose window has closed, oldest first.
    fn emit_unmatched(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, VR>,
        stream_time: i64,
    ) -> Result<()> {
        let Some(outer) = self.outer.clone() else {
            return Ok(());
        };
        let w = self.shared.windows();
        let limit = stream_time - w.grace_ms - w.before_ms.min(w.after_ms) - 1;
        if limit < 0 {
            return Ok(());
        }
        let to = limit.saturating_add(1).to_be_bytes().to_vec();
        for (k, v) in outer.range(&vec![0u8; 8], &to)? {
            if k.len() < 9 {
                continue;
            }
            let te = i64::from_be_bytes(k[..8].try_into().expect("8 bytes"));
            let this_side = (k[8] == 0) == self.left_side;
            let lookback = if this_side { w.after_ms } else { w.before_ms };
            if te > limit || te + lookback + w.grace_ms >= stream_time {
                continue;
            }
            let store = &self.this_store_name;
            let key = self
                .shared
                .key_serde()
                .deserialize(store, Some(&k[9..]))
                .map_err(|e| self.serde_err(e))?;
            let result = if this_side {
                let v = self
                    .shared
                    .this_serde()
                    .deserialize(store, Some(&v))
                    .map_err(|e| self.serde_err(e))?;
                self.shared.join(&key, Some(&v), None)
            } else {
                let v = self
                    .shared
                    .other_serde()
                    .deserialize(store, Some(&v))
                    .map_err(|e| self.serde_err(e))?;
                self.shared.join(&key, None, Some(&v))
            };
            outer.delete(&k)?;
            ctx.forward(Record::new(key, result, te))?;
        }
        Ok(())
    }
}

impl<K: Data, VT: Data, VO: Data, VR: Data> Processor for JoinSide<K, VT, VO, VR> {
    type KIn = K;
    type VIn = VT;
    type KOut = K;
    type VOut = VR;

    fn process(&mut self, ctx: &mut ProcessorContext<'_, K, VR>, r: Record<K, VT>) -> Result<()> {
        let w = self.shared.windows();
        let stream_time = ctx.current_stream_time_ms();
        let ts = r.timestamp;
        if ts + w.after_ms + w.grace_ms < stream_time {
            tracing::debug!(store = %self.this_store_name, timestamp = ts, "dropping a record too late to join");
            ctx.record_dropped();
            return Ok(());
        }
        self.this_store.put(&r.key, Some(&r.value), ts)?;
        let matches = self.other_store.fetch_range(
            &r.key,
            ts - w.before_ms,
            ts.saturating_add(w.after_ms),
        )?;
        if matches.is_empty() {
            if let Some(outer) = self.outer.as_ref().filter(|_| self.emits_unmatched) {
                let key = self.key_bytes(&r.key)?;
                let value = self
                    .shared
                    .this_serde()
                    .serialize(&self.this_store_name, &r.value)
                    .map_err(|e| self.serde_err(e))?
                    .unwrap_or_default();
                outer.put(&outer_key(ts, self.left_side, &key), &value)?;
            }
        } else {
            let key = match &self.outer {
                Some(_) => Some(self.key_bytes(&r.key)?),
                None => None,
            };
            for (other_ts, other) in matches {
                if let (Some(outer), Some(key)) = (&self.outer, &key) {
                    // The other record has found a partner: it will not come out unmatched.
                    outer.delete(&outer_key(other_ts, !self.left_side, key))?;
                }
                let result = self.shared.join(&r.key, Some(&r.value), Some(&other));
                ctx.forward(Record::new(r.key.clone(), result, ts.max(other_ts)))?;
            }
        }
        self.emit_unmatched(ctx, stream_time)
    }
}
