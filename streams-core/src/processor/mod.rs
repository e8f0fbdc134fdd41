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
//! Kafka Streams, so the order of outputs follows the order of inputs.

mod context;
mod engine;
mod nodes;

pub(crate) use context::NodeContext;
pub use context::{Cancellable, ProcessorContext, PunctuationType};
pub(crate) use engine::{Latencies, NodeGraph, TaskCore, TaskNode, TaskStore};
pub(crate) use nodes::{
    ErasedProcessor, ProcessorAdapter, SinkProcessor, SourceProcessor, TopicChooser,
};

use crate::error::Result;
use crate::record::Record;

/// A node of the topology that receives records one at a time and forwards records downstream.
///
/// `process` is required; `init` (called once per task before the first record, after the task's
/// stores are restored) and `close` have empty defaults. Errors returned from any of them stop the
/// stream thread with an error naming the task and the processor.
pub trait Processor: Send + 'static {
    /// Key type of incoming records.
    type KIn: Send + 'static;
    /// Value type of incoming records.
    type VIn: Send + 'static;
    /// Key type of forwarded records.
    type KOut: Clone + Send + 'static;
    /// Value type of forwarded records.
    type VOut: Clone + Send + 'static;

    /// Prepares the processor: look up stores, schedule punctuations.
    fn init(&mut self, ctx: &mut ProcessorContext<'_, Self::KOut, Self::VOut>) -> Result<()> {
        let _ = ctx;
        Ok(())
    }

    /// Processes one record, forwarding any number of records through `ctx`.
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, Self::KOut, Self::VOut>,
        record: Record<Self::KIn, Self::VIn>,
    ) -> Result<()>;

    /// Releases resources when the task closes.
    fn close(&mut self) {}
}
