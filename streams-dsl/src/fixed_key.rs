//! [`KStream::process_values`]: Processor API processors that cannot change the key
//! ([`FixedKeyProcessor`], Kafka Streams' `FixedKeyProcessor`), so the stream after them needs
//! no repartition before a grouping or a join.

use std::time::Duration;

use streams_core::{
    Headers, Processor, ProcessorContext, PunctuationId, PunctuationType, Record, RecordMetadata,
    Result, Scheduled, TaskId,
};

use crate::kstream::KStream;
use crate::Data;

/// A record whose key its processor can read but not replace: the only way to forward one is
/// [`FixedKeyRecord::with_value`] of a record received, which keeps the key.
#[derive(Debug, Clone, PartialEq)]
pub struct FixedKeyRecord<K, V> {
    key: K,
    value: V,
    timestamp: i64,
    headers: Headers,
}

impl<K, V> FixedKeyRecord<K, V> {
    /// The key.
    pub fn key(&self) -> &K {
        &self.key
    }

    /// The value.
    pub fn value(&self) -> &V {
        &self.value
    }

    /// The timestamp.
    pub fn timestamp(&self) -> i64 {
        self.timestamp
    }

    /// The headers.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// The headers, to change.
    pub fn headers_mut(&mut self) -> &mut Headers {
        &mut self.headers
    }

    /// The value, taken out.
    pub fn into_value(self) -> V {
        self.value
    }

    /// The same key, timestamp and headers with `value`.
    pub fn with_value<V2>(self, value: V2) -> FixedKeyRecord<K, V2> {
        FixedKeyRecord {
            key: self.key,
            value,
            timestamp: self.timestamp,
            headers: self.headers,
        }
    }

    /// The same record with `timestamp`.
    pub fn with_timestamp(mut self, timestamp: i64) -> Self {
        self.timestamp = timestamp;
        self
    }
}

/// A processor of [`KStream::process_values`]: it sees each record's key but forwards only
/// [`FixedKeyRecord`]s made from the records it received, so keys never change. It is made per
/// task by the function given to `process_values`, which takes its store handles and schedules
/// its punctuations through the [`FixedKeyContext`].
pub trait FixedKeyProcessor: Send + 'static {
    /// Key type.
    type K: Clone + Send + 'static;
    /// Value type of incoming records.
    type VIn: Send + 'static;
    /// Value type of forwarded records.
    type VOut: Clone + Send + 'static;

    /// Processes one record, forwarding any number of records with its key through `ctx`.
    fn process(
        &mut self,
        ctx: &mut FixedKeyContext<'_, '_, Self::K, Self::VOut>,
        record: FixedKeyRecord<Self::K, Self::VIn>,
    ) -> Result<()>;

    /// Runs the punctuation `id`, due at `timestamp`. A punctuation has no record to forward
    /// from: it can update stores and state, as in Kafka Streams.
    fn punctuate(
        &mut self,
        ctx: &mut FixedKeyContext<'_, '_, Self::K, Self::VOut>,
        id: PunctuationId,
        timestamp: i64,
    ) -> Result<()> {
        let _ = (ctx, id, timestamp);
        Ok(())
    }

    /// Releases resources when the task closes.
    fn close(&mut self) {}
}

/// A fixed-key processor's handle on its task: the [`ProcessorContext`] without the ways to
/// forward a record of another key.
pub struct FixedKeyContext<'c, 'a, K, V> {
    inner: &'c mut ProcessorContext<'a, K, V>,
}

impl<'c, 'a, K: Clone + Send + 'static, V: Clone + Send + 'static> FixedKeyContext<'c, 'a, K, V> {
    /// Wraps a processor context.
    pub fn new(inner: &'c mut ProcessorContext<'a, K, V>) -> Self {
        FixedKeyContext { inner }
    }

    /// Forwards `record` to every child.
    pub fn forward(&mut self, record: FixedKeyRecord<K, V>) -> Result<()> {
        self.inner.forward(Record {
            key: record.key,
            value: record.value,
            timestamp: record.timestamp,
            headers: record.headers,
        })
    }

    /// Forwards `record` to the child named `child` only.
    pub fn forward_to(&mut self, child: &str, record: FixedKeyRecord<K, V>) -> Result<()> {
        self.inner.forward_to(
            child,
            Record {
                key: record.key,
                value: record.value,
                timestamp: record.timestamp,
                headers: record.headers,
            },
        )
    }

    /// Schedules this processor's [`FixedKeyProcessor::punctuate`] every `interval`.
    pub fn schedule_punctuation(&mut self, interval: Duration, kind: PunctuationType) -> Scheduled {
        self.inner.schedule_punctuation(interval, kind)
    }

    /// The key-value store `name` (see [`ProcessorContext::get_state_store`]).
    pub fn get_state_store<SK: 'static, SV: 'static>(
        &self,
        name: &str,
    ) -> Result<streams_core::KeyValueStore<SK, SV>> {
        self.inner.get_state_store(name)
    }

    /// The store `name` as handle type `S` (see [`ProcessorContext::get_store`]).
    pub fn get_store<S: Clone + 'static>(&self, name: &str) -> Result<S> {
        self.inner.get_store(name)
    }

    /// Topic, partition and offset of the record being processed (`None` in a punctuation).
    pub fn record_metadata(&self) -> Option<&RecordMetadata> {
        self.inner.record_metadata()
    }

    /// The task this processor runs in.
    pub fn task_id(&self) -> TaskId {
        self.inner.task_id()
    }

    /// The task's stream time.
    pub fn current_stream_time_ms(&self) -> i64 {
        self.inner.current_stream_time_ms()
    }

    /// Wall-clock time from the task's clock.
    pub fn current_system_time_ms(&self) -> i64 {
        self.inner.current_system_time_ms()
    }

    /// Name of this processor node.
    pub fn processor_name(&self) -> &str {
        self.inner.processor_name()
    }
}

/// Runs a [`FixedKeyProcessor`] as a [`Processor`] whose output key is its input key.
struct FixedKeyAdapter<P>(P);

impl<P: FixedKeyProcessor> Processor for FixedKeyAdapter<P> {
    type KIn = P::K;
    type VIn = P::VIn;
    type KOut = P::K;
    type VOut = P::VOut;

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, P::K, P::VOut>,
        r: Record<P::K, P::VIn>,
    ) -> Result<()> {
        let record = FixedKeyRecord {
            key: r.key,
            value: r.value,
            timestamp: r.timestamp,
            headers: r.headers,
        };
        self.0.process(&mut FixedKeyContext::new(ctx), record)
    }

    fn punctuate(
        &mut self,
        ctx: &mut ProcessorContext<'_, P::K, P::VOut>,
        id: PunctuationId,
        timestamp: i64,
    ) -> Result<()> {
        self.0
            .punctuate(&mut FixedKeyContext::new(ctx), id, timestamp)
    }

    fn close(&mut self) {
        self.0.close()
    }
}

impl<K: Data, V: Data> KStream<K, V> {
    /// Runs a fixed-key processor, made in each task by `init` from its context, with access to
    /// `stores`: like [`KStream::process`], but the key cannot change, so the result is
    /// repartitioned only if this stream had to be (Kafka Streams' `processValues`).
    ///
    /// ```
    /// use streams_core::Result;
    /// use streams_dsl::fixed_key::{FixedKeyContext, FixedKeyProcessor, FixedKeyRecord};
    /// use streams_dsl::StreamsBuilder;
    ///
    /// /// Numbers each key's values: `a`, `b`, `a` become `1:a`, `1:b`, `2:a`.
    /// struct Numbered(streams_core::KeyValueStore<String, i64>);
    /// impl FixedKeyProcessor for Numbered {
    ///     type K = String; type VIn = String; type VOut = String;
    ///     fn process(&mut self, ctx: &mut FixedKeyContext<'_, '_, String, String>,
    ///                r: FixedKeyRecord<String, String>) -> Result<()> {
    ///         let n = self.0.get(r.key())?.unwrap_or(0) + 1;
    ///         self.0.put(r.key(), &n)?;
    ///         let v = format!("{n}:{}", r.value());
    ///         ctx.forward(r.with_value(v))
    ///     }
    /// }
    /// let b = StreamsBuilder::new();
    /// b.add_state_store(streams_core::Stores::in_memory_key_value(
    ///     "seen", streams_core::serde::Serdes::string(), streams_core::serde::Serdes::i64()));
    /// b.stream::<String, String>("in")
    ///     .process_values(|ctx| Ok(Numbered(ctx.get_state_store("seen")?)), &["seen"])
    ///     .group_by_key()
    ///     .count();
    /// assert!(!b.build().unwrap().describe().to_string().contains("repartition"));
    /// ```
    pub fn process_values<P, F>(&self, init: F, stores: &[&str]) -> KStream<K, P::VOut>
    where
        P: FixedKeyProcessor<K = K, VIn = V>,
        P::VOut: Data,
        F: Fn(&mut FixedKeyContext<'_, '_, K, P::VOut>) -> Result<P> + Send + Sync + 'static,
    {
        let name = self.node_name("KSTREAM-PROCESSVALUES-");
        let parent = self.node.clone();
        let n = name.clone();
        let stores: Vec<String> = stores.iter().map(|s| s.to_string()).collect();
        self.b.borrow_mut().apply(move |t| {
            t.add_processor(
                &n,
                move |ctx| Ok(FixedKeyAdapter(init(&mut FixedKeyContext::new(ctx))?)),
                &[&parent],
            )?;
            let refs: Vec<&str> = stores.iter().map(String::as_str).collect();
            t.connect_processor_and_state_stores(&n, &refs)?;
            Ok(())
        });
        self.derive(
            name,
            self.key_serde.clone(),
            None,
            self.repartition_required,
        )
    }
}
