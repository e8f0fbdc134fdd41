//! The Processor API and the engine that runs it.
//!
//! The [`Processor`] trait and its [`ProcessorContext`] (`context`: forward, punctuate, stores),
//! the type-erased nodes the topology is built from (`nodes`), and `TaskCore`, which runs one
//! task's nodes (`engine`).
//!
//! The context, the nodes and the engine use each other (a context is a handle on the engine,
//! the engine runs nodes through contexts): that cycle is this module's, and none leaves it. The
//! engine reads the topology through the `NodeGraph` trait only, so the topology, which builds
//! the nodes, sits above this module.
//!
//! Records move depth-first: `forward` calls each child's `process` before it returns, as in
//! Kafka Streams, so the order of outputs follows the order of inputs. A record crosses an edge
//! in a slot on the forwarding node's stack (`Option<Record<K, V>>` behind `&mut dyn Any`) that
//! the child takes it out of: no heap allocation per hop, one type check.
//!
//! A processor is made in its task, once the task's stores are restored, by the function given
//! to `add_processor`: it receives the context, takes its typed store handles and schedules its
//! punctuations, and returns the processor, which keeps them. Punctuations it schedules with
//! [`ProcessorContext::schedule_punctuation`] call back [`Processor::punctuate`] with `&mut self`.

mod context;
mod engine;
mod nodes;

pub(crate) use context::NodeContext;
pub use context::{Cancellable, ProcessorContext, PunctuationId, PunctuationType, Scheduled};
pub(crate) use engine::{Latencies, NodeGraph, TaskCore, TaskNode, TaskStore};
pub(crate) use nodes::{
    ErasedProcessor, MakeProcessor, ProcessorAdapter, SinkProcessor, SourceProcessor, TopicChooser,
};

use crate::error::Result;
use crate::record::Record;

/// A node of the topology that receives records one at a time and forwards records downstream.
///
/// A processor is made per task by the function given to `add_processor`, which gets the
/// [`ProcessorContext`] once the task's stores are restored: that is where a processor takes its
/// store handles (typed, kept in its fields) and schedules its punctuations. `process` is
/// required; `punctuate` (for punctuations scheduled with
/// [`ProcessorContext::schedule_punctuation`]) and `close` have empty defaults.
///
/// An error returned from `process` or `punctuate` goes to the processing exception handler
/// (`processing.exception.handler`), which skips the record or stops the stream thread with an
/// error naming the task, the processor and the record.
pub trait Processor: Send + 'static {
    /// Key type of incoming records.
    type KIn: Send + 'static;
    /// Value type of incoming records.
    type VIn: Send + 'static;
    /// Key type of forwarded records.
    type KOut: Clone + Send + 'static;
    /// Value type of forwarded records.
    type VOut: Clone + Send + 'static;

    /// Processes one record, forwarding any number of records through `ctx`.
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, Self::KOut, Self::VOut>,
        record: Record<Self::KIn, Self::VIn>,
    ) -> Result<()>;

    /// Runs the punctuation `id` (as returned by [`ProcessorContext::schedule_punctuation`]),
    /// due at `timestamp` (stream time or wall-clock time, as scheduled).
    fn punctuate(
        &mut self,
        ctx: &mut ProcessorContext<'_, Self::KOut, Self::VOut>,
        id: PunctuationId,
        timestamp: i64,
    ) -> Result<()> {
        let _ = (ctx, id, timestamp);
        Ok(())
    }

    /// Releases resources when the task closes.
    fn close(&mut self) {}
}
