//! The bundled Kafka-protocol broker (work in progress).
mod error;
mod config;
mod log;
mod persist;
mod protocol;
pub use config::{BrokerConfig, FlushPolicy};
pub use error::{Error, Result};
