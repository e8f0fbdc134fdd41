//! # streams
//!
//! Kafka Streams for Rust: build a topology with a typed DSL, keep state in RocksDB stores backed
//! by changelog topics, and run it on any Kafka cluster with tokio and rdkafka. Instances with the
//! same `application.id` share the work.
//!
//! This crate re-exports the workspace's crates:
//! - [`dsl`] (`streams-dsl`): [`StreamsBuilder`], [`KStream`], [`KTable`] and their options.
//! - [`core`] (`streams-core`): [`Topology`], the Processor API, serdes, [`StreamsConfig`], the
//!   [`KafkaStreams`] runtime and the [`TopologyTestDriver`].
//! - [`store`] (`state-store`): the byte-level stores, caches, changelogging and checkpoints.
//!
//! ```
//! use streams::prelude::*;
//!
//! let builder = StreamsBuilder::new();
//! builder
//!     .stream::<Option<String>, String>("streams-plaintext-input")
//!     .flat_map_values(|line| line.to_lowercase().split_whitespace().map(str::to_string).collect::<Vec<_>>())
//!     .group_by(|_, word| word.clone())
//!     .count()
//!     .to_stream()
//!     .to("streams-wordcount-output");
//! let topology = builder.build().unwrap();
//!
//! // Semantics without a broker:
//! let driver = TopologyTestDriver::new(topology, StreamsConfig::new("wordcount", "unused:9092")).unwrap();
//! let input = driver.create_input_topic("streams-plaintext-input", Serdes::nullable(Serdes::string()), Serdes::string());
//! let output = driver.create_output_topic("streams-wordcount-output", Serdes::string(), Serdes::nullable(Serdes::i64()));
//! input.pipe_input(None, "hello kafka hello".to_string());
//! let counts = output.read_key_values_to_map();
//! assert_eq!(counts["hello"], Some(2));
//! assert_eq!(counts["kafka"], Some(1));
//! ```

pub use state_store as store;
pub use streams_core as core;
pub use streams_dsl as dsl;

pub use streams_core::handlers::{
    DefaultProductionExceptionHandler, DeserializationExceptionHandler, ErrorHandlerContext,
    HandlerResponse, LogAndContinue, LogAndFail, ProcessingExceptionHandler, ProducedRecord,
    ProductionExceptionHandler, ProductionResponse, SerializationOrigin,
};
pub use streams_core::serde::{DefaultSerde, Serde, SerdeRef, Serdes};
pub use streams_core::{
    ApproximateCountQuery, Change, FailureReason, KafkaStreams, KeyQuery, KeyQueryMetadata,
    KeyValueStore, MultiInstanceTestDriver, Position, PositionBound, PrefixScanQuery, Processor,
    ProcessorContext, PunctuationId, PunctuationType, QueryFailure, QueryResult, RangeQuery,
    Record, Result, Scheduled, SessionStore, SessionWindows, SlidingWindows, State,
    StateQueryRequest, StateQueryResult, StateRestoreListener, StoreBuilder, StoreIterator, Stores,
    StreamsConfig, StreamsError, StreamsMetadata, TaskId, TimeWindows, Topology,
    TopologyTestDriver, Window, WindowKeyQuery, WindowRangeQuery, WindowStore, Windowed,
};
pub use streams_dsl::stream_join::JoinWindows;
pub use streams_dsl::suppress::{BufferConfig, Suppressed};
pub use streams_dsl::{
    Consumed, EmitStrategy, Grouped, KGroupedStream, KGroupedTable, KStream, KTable, Materialized,
    Produced, Repartitioned, SessionWindowedKStream, StreamsBuilder, TimeWindowedKStream,
};
pub use streams_dsl::{FixedKeyContext, FixedKeyProcessor, FixedKeyRecord, Printed};
pub use streams_dsl::{GlobalKTable, Joined, TableJoined};

/// Everything an application usually needs.
pub mod prelude {
    pub use crate::{
        BufferConfig, Consumed, Grouped, JoinWindows, KStream, KTable, KafkaStreams, Materialized,
        Produced, Record, Serdes, SessionWindows, SlidingWindows, State, StreamsBuilder,
        StreamsConfig, Suppressed, TimeWindows, Topology, TopologyTestDriver, Windowed,
    };
}

// The README and the guides in docs/ are compiled and run as doc tests (`cargo test --doc`), so
// their examples cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
#[cfg(doctest)]
#[doc = include_str!("../docs/windows.md")]
pub struct WindowsDoctests;
#[cfg(doctest)]
#[doc = include_str!("../docs/joins.md")]
pub struct JoinsDoctests;
#[cfg(doctest)]
#[doc = include_str!("../docs/dsl.md")]
pub struct DslDoctests;
#[cfg(doctest)]
#[doc = include_str!("../docs/semantics.md")]
pub struct SemanticsDoctests;
#[cfg(doctest)]
#[doc = include_str!("../docs/testing.md")]
pub struct TestingDoctests;
#[cfg(doctest)]
#[doc = include_str!("../docs/performance.md")]
pub struct PerformanceDoctests;
