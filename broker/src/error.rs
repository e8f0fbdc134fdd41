//! The crate's one error type, [`Error`], for failures that stop an operation of the broker itself.
//!
//! Conditions a Kafka client is told about (unknown topic, bad CRC, stale generation) are wire
//! error codes in responses, not values of this type.

use std::path::PathBuf;

/// Everything that can fail inside the broker, named by the operation that failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Binding or accepting on the listen address failed.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address that was asked for.
        addr: String,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// A file or directory of the data directory could not be read or written.
    #[error("storage I/O on {path}: {source}")]
    Storage {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// Another broker process already uses the data directory.
    #[error("data directory {path} is in use by another broker")]
    DataDirLocked {
        /// The data directory.
        path: PathBuf,
    },
    /// A metadata file (topics, offsets, broker identity) holds something we cannot parse.
    #[error("corrupt metadata file {path}: {reason}")]
    CorruptMetadata {
        /// The file involved.
        path: PathBuf,
        /// What was wrong with it.
        reason: String,
    },
    /// A request frame could not be read or decoded; the connection that sent it is closed.
    #[error("bad request from {peer}: {reason}")]
    BadRequest {
        /// The client's address.
        peer: String,
        /// What was wrong with the frame.
        reason: String,
    },
    /// A response could not be encoded for the version the client negotiated.
    #[error("cannot encode {api} v{version} response: {reason}")]
    Encode {
        /// The API whose response failed.
        api: String,
        /// The negotiated version.
        version: i16,
        /// The encoder's message.
        reason: String,
    },
    /// A partition's log was left in an unknown state by a panic and could not be reopened
    /// from its files; requests for that partition fail until a reopen succeeds.
    #[error("partition {partition} unavailable: reopening its log after a panic failed: {source}")]
    PartitionUnavailable {
        /// The partition (its directory name, `topic-index`).
        partition: String,
        /// Why the reopen failed.
        source: Box<Error>,
    },
    /// Reading from or writing to a client socket failed.
    #[error("connection I/O with {peer}: {source}")]
    Connection {
        /// The client's address.
        peer: String,
        /// The underlying I/O error.
        source: std::io::Error,
    },
}

impl Error {
    /// Wraps an I/O error on `path` as a storage error.
    pub(crate) fn storage(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Storage {
            path: path.into(),
            source,
        }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
