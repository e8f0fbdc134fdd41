//! # streams-dsl
//!
//! The typed DSL of streams, after Kafka Streams': a [`StreamsBuilder`] makes [`KStream`]s and
//! [`KTable`]s from topics; their operations build a [`Topology`](streams_core::Topology) that
//! the runtime (`KafkaStreams`) or the `TopologyTestDriver` runs.
//!
//! ## Map
//! - [`builder`]: [`StreamsBuilder`] and the naming of generated nodes, stores and topics.
//! - [`kstream`]: [`KStream`] (filter, map, flat_map, select_key, split, merge, to, repartition,
//!   process, group_by, ...) and [`BranchedKStream`].
//! - [`fixed_key`]: [`KStream::process_values`] and its [`FixedKeyProcessor`]s, which cannot
//!   change the key.
//! - [`print`](mod@print): [`KStream::print`] and [`Printed`].
//! - `to_table`: [`KStream::to_table`].
//! - [`ktable`]: [`KTable`] (filter, map_values, to_stream, group_by).
//! - [`grouped`]: [`KGroupedStream`] and [`KGroupedTable`] (count, reduce, aggregate).
//! - [`windowed`]: [`TimeWindowedKStream`] (tumbling, hopping, sliding) and
//!   [`SessionWindowedKStream`]: windowed count, reduce, aggregate, emit strategies.
//! - [`stream_join`]: windowed KStream-KStream joins ([`stream_join::JoinWindows`]).
//! - [`suppress`]: final results of windowed tables ([`suppress::Suppressed`]).
//! - [`join`]: stream-table, table-table and stream-global-table joins, [`Joined`], [`GlobalKTable`].
//! - [`fk_join`]: foreign-key table joins, [`TableJoined`].
//! - [`options`]: [`Consumed`], [`Produced`], [`Grouped`], [`Materialized`], [`Repartitioned`].
//!
//! Inside: `fallible` adds the `try_*` operators to [`KStream`] (closures returning `Result`,
//! whose errors go to the processing exception handler); `aggregation` is the one path every count, reduce and aggregate is built through,
//! `processors` holds the processors behind stateless operations, tables and key-value
//! aggregations.
//!
//! ## Serdes
//! An operation that writes bytes (a sink, a repartition topic, a store) takes its serdes from,
//! in order: the options given to it, the serdes carried from upstream (a source's serdes stay
//! with the stream until an operation changes the type), the builder's
//! [`StreamsBuilder::with_default_serde`], and the built-in serde of the type (String, `Vec<u8>`,
//! i64, i32, i16, f64, f32, bool, `()` and their `Option`s). If none applies, `build()` fails
//! naming the node.

mod aggregation;
pub mod builder;
mod fallible;
pub mod fixed_key;
pub mod fk_join;
pub mod grouped;
pub mod join;
pub mod kstream;
pub mod ktable;
pub mod options;
pub mod print;
mod processors;
pub mod stream_join;
pub mod suppress;
mod to_table;
pub mod windowed;

pub use builder::StreamsBuilder;
pub use fixed_key::{FixedKeyContext, FixedKeyProcessor, FixedKeyRecord};
pub use fk_join::TableJoined;
pub use grouped::{KGroupedStream, KGroupedTable};
pub use join::{GlobalKTable, Joined};
pub use kstream::{BranchedKStream, KStream};
pub use ktable::KTable;
pub use options::{Consumed, Grouped, Materialized, Produced, Repartitioned};
pub use print::Printed;
pub use windowed::{EmitStrategy, SessionWindowedKStream, TimeWindowedKStream};

/// What keys and values of the DSL must be: cloneable (a record can go to several children),
/// sendable to stream threads, and owned.
pub trait Data: Clone + Send + Sync + 'static {}
impl<T: Clone + Send + Sync + 'static> Data for T {}
