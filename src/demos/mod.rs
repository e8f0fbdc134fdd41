//! The topologies behind the examples, so that tests drive exactly what the examples run.
//!
//! - [`wordcount`]: Kafka Streams' WordCountDemo, byte for byte on the wire.
//! - [`tweets`]: hashtag and per-user tweet counts from JSON tweets.

pub mod tweets;
pub mod wordcount;
