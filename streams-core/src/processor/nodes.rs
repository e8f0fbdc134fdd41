//! The type-erased nodes a topology is made of: sources, user processors and sinks.
//!
//! [`ErasedProcessor`] is how the engine runs every node; [`ProcessorAdapter`] puts a typed
//! [`Processor`] behind it.

use std::any::Any;
use std::marker::PhantomData;
use std::sync::Arc;

use super::engine::ProductionFailure;
use super::{NodeContext, Processor, ProcessorContext, PunctuationId};
use crate::error::{Result, StreamsError};
use crate::handlers::{ProducedRecord, SerializationOrigin};
use crate::record::Record;
use crate::serde::SerdeRef;

/// The task's view of one processor node, without types.
pub(crate) trait ErasedProcessor: Send {
    fn init(&mut self, ctx: &mut NodeContext<'_>) -> Result<()>;
    /// `record` is the forwarding node's slot, an `Option<Record<K, V>>` to take the record from.
    fn process(&mut self, ctx: &mut NodeContext<'_>, record: &mut dyn Any) -> Result<()>;
    fn punctuate(&mut self, ctx: &mut NodeContext<'_>, id: PunctuationId, ts: i64) -> Result<()> {
        let _ = (ctx, id, ts);
        Ok(())
    }
    fn close(&mut self);
}

/// Takes the `T` out of a forwarding node's slot (`Option<T>`).
fn take<T: 'static>(ctx: &NodeContext<'_>, slot: &mut dyn Any) -> Result<T> {
    slot.downcast_mut::<Option<T>>()
        .and_then(Option::take)
        .ok_or_else(|| {
            StreamsError::topology(
                ctx.node_name(),
                format!(
                    "node `{}` received a record that is not {}",
                    ctx.node_name(),
                    std::any::type_name::<T>()
                ),
            )
        })
}

/// Makes a processor in its task, given its context (see `Topology::add_processor`).
pub(crate) type MakeProcessor<P> = Arc<
    dyn Fn(&mut ProcessorContext<'_, <P as Processor>::KOut, <P as Processor>::VOut>) -> Result<P>
        + Send
        + Sync,
>;

/// Runs a typed [`Processor`] behind [`ErasedProcessor`]; the processor is made at `init`.
pub(crate) struct ProcessorAdapter<P: Processor> {
    make: MakeProcessor<P>,
    inner: Option<P>,
}

impl<P: Processor> ProcessorAdapter<P> {
    pub(crate) fn new(make: MakeProcessor<P>) -> Self {
        ProcessorAdapter { make, inner: None }
    }

    fn made(&mut self, ctx: &NodeContext<'_>) -> Result<&mut P> {
        self.inner.as_mut().ok_or_else(|| {
            StreamsError::topology(
                ctx.node_name(),
                format!(
                    "processor `{}` of task {} ran before it was initialized",
                    ctx.node_name(),
                    ctx.task.id
                ),
            )
        })
    }
}

impl<P: Processor> ErasedProcessor for ProcessorAdapter<P> {
    fn init(&mut self, ctx: &mut NodeContext<'_>) -> Result<()> {
        self.inner = Some((self.make)(&mut ProcessorContext::new(ctx.reborrow()))?);
        Ok(())
    }
    fn process(&mut self, ctx: &mut NodeContext<'_>, record: &mut dyn Any) -> Result<()> {
        let record = take::<Record<P::KIn, P::VIn>>(ctx, record)?;
        self.made(ctx)?
            .process(&mut ProcessorContext::new(ctx.reborrow()), record)
    }
    fn punctuate(&mut self, ctx: &mut NodeContext<'_>, id: PunctuationId, ts: i64) -> Result<()> {
        self.made(ctx)?
            .punctuate(&mut ProcessorContext::new(ctx.reborrow()), id, ts)
    }
    fn close(&mut self) {
        if let Some(p) = self.inner.as_mut() {
            p.close()
        }
    }
}

/// A source node: the record was decoded when it was queued; forward it.
pub(crate) struct SourceProcessor<K, V>(PhantomData<fn() -> (K, V)>);

impl<K, V> SourceProcessor<K, V> {
    pub(crate) fn new() -> Self {
        SourceProcessor(PhantomData)
    }
}

impl<K: Clone + Send + 'static, V: Clone + Send + 'static> ErasedProcessor
    for SourceProcessor<K, V>
{
    fn init(&mut self, _: &mut NodeContext<'_>) -> Result<()> {
        Ok(())
    }
    fn process(&mut self, ctx: &mut NodeContext<'_>, record: &mut dyn Any) -> Result<()> {
        // With one child (the usual case) the decoded record goes on in the slot it came in.
        if let Some(child) = ctx.task.only_child(ctx.node) {
            return ctx.process_child(child, record);
        }
        let record = take::<Record<K, V>>(ctx, record)?;
        ProcessorContext::<K, V>::new(ctx.reborrow()).forward(record)
    }
    fn close(&mut self) {}
}

/// Picks the topic of a record.
pub(crate) type TopicFn<K, V> = Arc<dyn Fn(&Record<K, V>) -> String + Send + Sync>;

/// How a sink picks its topic.
pub(crate) enum TopicChooser<K, V> {
    Fixed(String),
    Dynamic(TopicFn<K, V>),
}

impl<K, V> Clone for TopicChooser<K, V> {
    fn clone(&self) -> Self {
        match self {
            TopicChooser::Fixed(t) => TopicChooser::Fixed(t.clone()),
            TopicChooser::Dynamic(f) => TopicChooser::Dynamic(f.clone()),
        }
    }
}

/// How often a sink sends a record the production handler asks to retry.
const MAX_SEND_ATTEMPTS: u32 = 10;

/// A sink node: serializes and hands the record to the collector; what cannot be serialized or
/// sent goes to the production exception handler.
pub(crate) struct SinkProcessor<K, V> {
    chooser: TopicChooser<K, V>,
    /// The fixed topic as named on the cluster (repartition topics get the application id prefix).
    physical: Option<String>,
    key_serde: SerdeRef<K>,
    value_serde: SerdeRef<V>,
    /// Serialized key and value of the record being sent, kept between records: the producer
    /// copies them, so one buffer each serves every record.
    key_buf: Vec<u8>,
    value_buf: Vec<u8>,
}

impl<K, V> SinkProcessor<K, V> {
    pub(crate) fn new(
        chooser: TopicChooser<K, V>,
        key_serde: SerdeRef<K>,
        value_serde: SerdeRef<V>,
    ) -> Self {
        SinkProcessor {
            chooser,
            physical: None,
            key_serde,
            value_serde,
            key_buf: Vec::new(),
            value_buf: Vec::new(),
        }
    }
}

impl<K: Send + 'static, V: Send + 'static> ErasedProcessor for SinkProcessor<K, V> {
    fn init(&mut self, ctx: &mut NodeContext<'_>) -> Result<()> {
        if let TopicChooser::Fixed(t) = &self.chooser {
            self.physical = Some(ctx.physical_topic(t));
        }
        Ok(())
    }
    fn process(&mut self, ctx: &mut NodeContext<'_>, record: &mut dyn Any) -> Result<()> {
        let record = take::<Record<K, V>>(ctx, record)?;
        // The fixed topic is borrowed; only a per-record choice makes a new string.
        let chosen;
        let topic: &str = match (&self.physical, &self.chooser) {
            (Some(t), _) => t,
            (None, TopicChooser::Dynamic(f)) => {
                chosen = f(&record);
                &chosen
            }
            (None, TopicChooser::Fixed(t)) => {
                chosen = ctx.physical_topic(t);
                &chosen
            }
        };
        let node = ctx.node;
        let ser = |e| StreamsError::Serialization {
            target: topic.to_string(),
            source: e,
        };
        let key = match self
            .key_serde
            .serialize_into(topic, &record.key, &mut self.key_buf)
        {
            Ok(k) => k,
            Err(e) => {
                let failure = ProductionFailure::Serialization(SerializationOrigin::Key);
                ctx.task.production_failed(node, topic, failure, ser(e))?;
                return Ok(());
            }
        };
        let value = match self
            .value_serde
            .serialize_into(topic, &record.value, &mut self.value_buf)
        {
            Ok(v) => v,
            Err(e) => {
                let failure = ProductionFailure::Serialization(SerializationOrigin::Value);
                ctx.task.production_failed(node, topic, failure, ser(e))?;
                return Ok(());
            }
        };
        let (key, value) = (
            key.then_some(&self.key_buf[..]),
            value.then_some(&self.value_buf[..]),
        );
        // A refused send goes to the production handler; a retry it asks for is bounded, so a
        // record the cluster keeps refusing fails the thread instead of spinning.
        let mut attempts = 0;
        loop {
            let sent =
                ctx.collector()
                    .send(topic, None, key, value, record.timestamp, &record.headers);
            let error = match sent {
                Ok(()) => {
                    ctx.task.record_e2e_latency(node, record.timestamp);
                    return Ok(());
                }
                Err(e @ StreamsError::Production { .. }) => e,
                Err(other) => return Err(other),
            };
            let failure = ProductionFailure::Send(ProducedRecord {
                topic,
                partition: None,
                key,
                value,
                timestamp: record.timestamp,
            });
            attempts += 1;
            let retry = ctx.task.production_failed(node, topic, failure, error)?;
            if !retry {
                return Ok(());
            }
            if attempts >= MAX_SEND_ATTEMPTS {
                return Err(StreamsError::Production {
                    topic: topic.to_string(),
                    message: format!(
                        "still refused after {attempts} attempts (sink `{}` of task {})",
                        ctx.node_name(),
                        ctx.task.id
                    ),
                    retriable: false,
                });
            }
        }
    }
    fn close(&mut self) {}
}
