//! # streams-core
//!
//! The core of streams, the Kafka Streams equivalent for Rust: records and serdes, the
//! configuration, the topology of processors, the tasks that run it, the runtime that runs tasks
//! on a Kafka cluster, and the [`TopologyTestDriver`] that runs them without one.
//!
//! ## Map
//! One line per module. The public API is what this list names: the items re-exported at the
//! crate root, and the public modules [`config`], [`handlers`], [`serde`] and [`window`] (plus the hidden
//! [`internals`], for `streams-dsl`). Everything else is `pub(crate)`.
//! - `metrics`: Kafka Streams' metrics: [`Sensor`]s with Kafka's windowed rates, averages and maxima, [`ThreadSensors`] and [`TaskSensors`], and [`MetricValue`]s named as Kafka Streams names them (exposed as Prometheus text by the runtime).
//! - `record`: [`Record`] (typed, what processors see), [`RecordMetadata`], [`Change`], [`Headers`]; internally the raw records consumed from topics.
//! - `task_id`: [`TaskId`], a task's (sub-topology, partition).
//! - `assignment`: the task assignor (Kafka Streams' high-availability rules: active, standby and warm-up tasks per member and thread) as a pure function, and the versioned subscription/assignment userData it exchanges; internal, for the group membership to come.
//! - `time`: the injected clock (the system's, or the test driver's manual one); internal.
//! - [`window`]: [`Window`] and [`Windowed`] keys; time, sliding and session windows.
//! - [`serde`]: the [`Serde`](serde::Serde) trait, Kafka-compatible [`Serdes`](serde::Serdes) (windowed keys too), [`DefaultSerde`](serde::DefaultSerde).
//! - `error`: [`StreamsError`], whose messages name what was involved, and [`Result`].
//! - [`handlers`]: the deserialization, processing and production exception handlers ([`ProcessingExceptionHandler`]..., with Kafka Streams' built-ins), the context they are given, panics caught at a node, and dead-letter records.
//! - [`config`]: [`StreamsConfig`] with Kafka Streams' property names and defaults.
//! - `collector`: the record collector a task's records (sinks, changelogs) leave through; internal.
//! - `state`: typed stores ([`KeyValueStore`], [`WindowStore`], [`SessionStore`]) declared with [`StoreBuilder`] / [`Stores`], their caches ([`CachedStore`], [`CacheFlush`]), and the global stores.
//! - `processor`: the [`Processor`] trait and its [`ProcessorContext`] ([`PunctuationType`], [`PunctuationId`], [`Scheduled`], [`Cancellable`]), the type-erased nodes, and the engine that runs a task's nodes.
//! - `topology`: [`Topology`], built by the DSL or by hand, its [`TopologyDescription`] and [`TimestampExtractor`]s.
//! - `task`: the stream task, timestamp-ordered processing of one partition of a sub-topology, its stores' restoration and checkpoints; [`TaskMetrics`].
//! - `query`: interactive queries with IQv2 semantics: [`StateQueryRequest`], the typed [`Query`]s ([`KeyQuery`], [`RangeQuery`], [`WindowKeyQuery`]..), per-partition [`QueryResult`]s and [`FailureReason`]s; the registry of the stores an instance hosts.
//! - `runtime`: [`KafkaStreams`] ([`State`], [`StateRestoreListener`], [`StreamsMetrics`]), the only module doing I/O (rdkafka and tokio).
//! - `test_driver`: [`TopologyTestDriver`] ([`TestInputTopic`], [`TestOutputTopic`]), synchronous and broker-free.
//! - [`internals`]: plumbing for `streams-dsl`, hidden, with no stability promise.
//!
//! ## Layering
//! Which module may use which: each uses only modules of the lines above its own. No module
//! uses one of its own line or below, so the modules form no cycle; the one cycle, between the
//! processor context and the engine that runs a task's nodes, is inside `processor`.
//! 1. `metrics`, `record`, `task_id`, `time`, `window`: leaves, using no other module.
//! 2. `serde`: may use `window` (windowed keys). `assignment`: may use `task_id`.
//! 3. `error`: may use `serde`, `record`, `task_id`.
//! 4. `handlers`: may use `error`, `record`, `task_id`.
//! 5. `config`: may use the lines above (the assignor's settings, the handlers). `collector`:
//!    may use `error`, `record`, `task_id`.
//! 6. `state`: may use the lines above.
//! 7. `processor`: may use the lines above. It reads the topology it runs through its
//!    `NodeGraph` trait, which `Topology` implements, instead of using `topology`.
//! 8. `topology`: may use the lines above (its nodes come from `processor`, its stores from `state`).
//! 9. `task`: may use the lines above.
//! 10. `query`: may use the lines above.
//! 11. `runtime`, `test_driver`, `internals`: may use the lines above, not one another.
//!
//! ## Guarantees
//! Topology, processor and task code is synchronous and deterministic; only the runtime does
//! I/O. Processing is at-least-once: offsets are committed only after caches and stores are
//! flushed, every produced record is acknowledged and task checkpoints are written.

// In the order of the layering above.
mod metrics;
mod record;
mod task_id;
mod time;
pub mod window;

pub mod serde;

// Nothing calls the assignor outside its tests until the group membership (issue 10) runs
// it in the leader; `config` only checks its settings.
#[cfg_attr(not(test), allow(dead_code))]
mod assignment;

mod error;

pub mod handlers;

mod collector;
pub mod config;

mod state;

mod processor;

mod topology;

mod task;

mod query;

#[doc(hidden)]
pub mod internals;
mod runtime;
mod test_driver;

pub use config::StreamsConfig;
pub use error::{RecordOrigin, Result, StreamsError};
pub use handlers::{
    DefaultProductionExceptionHandler, DeserializationExceptionHandler, ErrorHandlerContext,
    HandlerResponse, LogAndContinue, LogAndFail, ProcessingExceptionHandler, ProducedRecord,
    ProductionExceptionHandler, ProductionResponse, SerializationOrigin,
};
pub use metrics::{MetricValue, RecordingLevel, Sensor, TaskSensors, ThreadSensors};
pub use processor::{
    Cancellable, Processor, ProcessorContext, PunctuationId, PunctuationType, Scheduled,
};
pub use query::{
    ApproximateCountQuery, FailureReason, InStore, KeyQuery, Position, PositionBound,
    PrefixScanQuery, Query, QueryFailure, QueryResult, QueryTarget, RangeQuery, StateQueryRequest,
    StateQueryResult, WindowKeyQuery, WindowRangeQuery,
};
pub use record::{Change, Headers, Record, RecordMetadata};
pub use runtime::{
    KafkaStreams, KeyQueryMetadata, MultiInstanceTestDriver, State, StateRestoreListener,
    StreamsMetadata, StreamsMetrics,
};
pub use state::{
    CacheFlush, CachedStore, KeyValueStore, SessionStore, StoreBuilder, StoreIterator, Stores,
    WindowStore,
};
pub use task::TaskMetrics;
pub use task_id::TaskId;
pub use test_driver::{TestInputTopic, TestOutputTopic, TopologyTestDriver};
pub use topology::{TimestampExtractor, Topology, TopologyDescription};
pub use window::{SessionWindows, SlidingWindows, TimeWindows, Window, Windowed};
