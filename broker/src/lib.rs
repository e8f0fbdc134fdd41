//! # streams-broker: a small, persistent Kafka-protocol broker
//!
//! The broker bundled with `streams` so that a first run, tests and local development need no
//! JVM. It speaks the real Kafka protocol (every message goes through the `kafka-protocol`
//! crate), so rdkafka, the Java clients and Kafka Streams talk to it as to a one-node Kafka.
//!
//! ## Entry points
//! - [`Broker::start`] with a [`BrokerConfig`] returns a [`BrokerHandle`]: its
//!   [`bootstrap_servers`](BrokerHandle::bootstrap_servers) for clients and a clean
//!   [`shutdown`](BrokerHandle::shutdown). The default config listens on 127.0.0.1 with an
//!   ephemeral port and keeps data in a temporary directory.
//! - The `streams-broker` binary wraps the same thing for the command line.
//!
//! ```no_run
//! # async fn demo() -> Result<(), streams_broker::Error> {
//! let broker = streams_broker::Broker::start(Default::default()).await?;
//! println!("bootstrap.servers={}", broker.bootstrap_servers());
//! broker.shutdown().await
//! # }
//! ```
//!
//! ## Map of the crate
//! - `server`: start/stop, accept loop, housekeeping tasks.
//! - `connection`: one task per client; frames capped before allocation; responses in order.
//! - `protocol`: request decoding (with a guard pass against hostile lengths), response
//!   encoding, the advertised API version table.
//! - `handler/`: one file per Kafka API.
//! - `log/`: a partition's segment files of raw batches, their sparse offset and time indexes
//!   on disk, idempotent-producer snapshots, batch validation, retention, compaction.
//! - `topics`: topic registry and `topics.json`.
//! - `group/`: classic group coordinator state machine and committed offsets.
//! - `txn/`: transaction coordinator: the per-id state machine, its persistence, markers,
//!   timeouts.
//! - `state`: what handlers share; broker identity and producer ids.
//! - `persist`: atomic small-file writes.
//!
//! ## Guarantees
//! - Batches are stored exactly as producers sent them (only base offset and leader epoch are
//!   patched, which the CRC does not cover); a batch with a bad CRC is refused and not written.
//! - After `kill -9`, a restart truncates a torn tail to the last whole batch. Acknowledged
//!   records survive a process crash under every [`FlushPolicy`]; under the default
//!   ([`FlushPolicy::AcksAll`]) acks=all records are fsynced before the answer and so also
//!   survive power loss.
//! - Topics, configs, committed offsets and idempotent-producer state survive restarts; producer
//!   state also outlives its batches (retention, DeleteRecords), through snapshot files.
//! - A missing or damaged index or producer snapshot is rebuilt, never a reason not to start.
//! - A malformed, truncated or oversized frame closes only the connection that sent it.
//! - Transactions: coordinator state is durable before it is acknowledged; a transaction found
//!   between its markers at start-up is completed before clients are served, so a crash loses
//!   no committed record and exposes no aborted one to `read_committed` readers.

mod config;
mod connection;
mod error;
mod group;
mod handler;
mod log;
mod persist;
mod protocol;
mod server;
mod state;
mod sync;
mod topics;
mod txn;
mod util;

#[doc(hidden)]
pub mod fuzzing;

pub use config::{BrokerConfig, FlushPolicy};
pub use error::{Error, Result};
pub use server::{Broker, BrokerHandle};
