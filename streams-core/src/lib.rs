//! # streams-core
//!
//! The core of streams, the Kafka Streams equivalent for Rust: records and serdes, the
//! configuration, the topology of processors, the tasks that run it, the runtime that runs tasks
//! on a Kafka cluster, and the [`TopologyTestDriver`] that runs them without one.
//!
//! ## Map
//! - [`record`]: [`Record`] (typed, what processors see), [`RawRecord`] (bytes, what topics hold), [`Change`].
//! - [`serde`]: the [`Serde`](serde::Serde) trait, Kafka-compatible [`Serdes`](serde::Serdes), [`DefaultSerde`](serde::DefaultSerde).
//! - [`config`]: [`StreamsConfig`] with Kafka Streams' property names and defaults.
//! - [`topology`]: [`Topology`], built by the DSL or by hand, and its [`TopologyDescription`].
//! - [`processor`]: the [`Processor`] trait and its [`ProcessorContext`] (forward, punctuate, stores).
//! - [`state`]: typed [`KeyValueStore`] handles and [`StoreBuilder`]s over the `state-store` crate.
//! - [`task`]: [`TaskId`] and the stream task: timestamp-ordered processing of one partition.
//! - [`runtime`]: [`KafkaStreams`], the only module doing I/O (rdkafka and tokio).
//! - [`test_driver`]: [`TopologyTestDriver`], synchronous and broker-free.
//! - [`time`]: the injected [`Clock`](time::Clock).
//! - [`window`]: [`Windowed`](window::Windowed) keys, time, sliding and session windows, windowed serdes.
//!
//! ## Guarantees
//! Topology, processor and task code is synchronous and deterministic; only the runtime does
//! I/O. Processing is at-least-once: offsets are committed only after caches and stores are
//! flushed, every produced record is acknowledged and task checkpoints are written.

mod collector;
pub mod config;
pub mod error;
pub mod processor;
pub mod record;
pub mod runtime;
pub mod serde;
pub mod state;
pub mod task;
mod task_id;
pub mod test_driver;
pub mod time;
pub mod topology;
pub mod window;

pub use collector::RecordCollector;
pub use config::StreamsConfig;
pub use error::{Result, StreamsError};
pub use processor::{Cancellable, Processor, ProcessorContext, PunctuationType};
pub use record::{Change, Headers, RawRecord, Record, RecordMetadata};
pub use runtime::{KafkaStreams, State, StateRestoreListener};
pub use state::{
    CacheFlush, CachedStore, KeyValueStore, SessionStore, StoreBuilder, Stores, WindowStore,
};
pub use task::TaskMetrics;
pub use task_id::TaskId;
pub use test_driver::{TestInputTopic, TestOutputTopic, TopologyTestDriver};
pub use topology::{TimestampExtractor, Topology, TopologyDescription};
pub use window::{SessionWindows, SlidingWindows, TimeWindows, Window, Windowed};
