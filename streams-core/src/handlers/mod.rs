//! Exception handlers: what happens to a record that cannot be deserialized, processed or produced.
//!
//! Three handlers, as in Kafka Streams (KIP-1033 and KIP-1065), each told where the record came
//! from ([`ErrorHandlerContext`]) and what failed:
//! - [`DeserializationExceptionHandler`]: a source record's key or value does not decode;
//! - [`ProcessingExceptionHandler`]: a processor (a DSL closure, a `try_*` operator, a user
//!   [`Processor`](crate::Processor)) returned an error or panicked;
//! - [`ProductionExceptionHandler`]: a record for a sink topic cannot be serialized or sent.
//!
//! A handler answers continue (skip the record, count it in `dropped-records`) or fail (stop the
//! stream thread with an error naming the record); the production handler may also ask to retry.
//! When `errors.dead.letter.queue.topic.name` is set, every record a handler continues past is
//! written to that topic (`dead_letter`), as KIP-1034 describes.

mod dead_letter;
mod panic;

pub(crate) use dead_letter::dead_letter_record;
pub(crate) use panic::catch_panic;

use std::fmt;
use std::sync::Arc;

use crate::error::{Result, StreamsError};
use crate::record::Headers;
use crate::task_id::TaskId;

/// Where a failed record came from: Kafka Streams' `ErrorHandlerContext`.
///
/// The source coordinates are those of the input record being processed when the error
/// happened; they are `None` for an error in a punctuation, and for a send that failed after
/// the record that caused it was processed (a delivery report).
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct ErrorHandlerContext<'a> {
    /// The source topic (as named on the cluster).
    pub topic: Option<&'a str>,
    /// The source partition.
    pub partition: Option<i32>,
    /// The source offset.
    pub offset: Option<i64>,
    /// The record's timestamp.
    pub timestamp: i64,
    /// The source record's headers.
    pub headers: &'a Headers,
    /// The processor node that failed (the source node for deserialization, the sink for
    /// production).
    pub processor_node_id: &'a str,
    /// The task.
    pub task_id: TaskId,
    /// The source record's key bytes. Kept only while a dead-letter topic is configured:
    /// otherwise every record's bytes would be copied for the rare one that fails.
    pub source_raw_key: Option<&'a [u8]>,
    /// The source record's value bytes (kept as [`Self::source_raw_key`] is).
    pub source_raw_value: Option<&'a [u8]>,
}

/// A deserialization or processing handler's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandlerResponse {
    /// Skip the record (dead-lettered when a dead-letter topic is set) and go on.
    Continue,
    /// Stop the stream thread with the error.
    Fail,
}

/// A production handler's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProductionResponse {
    /// Drop the record (dead-lettered when a dead-letter topic is set) and go on.
    Continue,
    /// Stop the stream thread with the error.
    Fail,
    /// Send the record again; for an error that cannot go away by retrying (a record too
    /// large, a serialization failure) this is [`ProductionResponse::Fail`], as in Kafka Streams.
    Retry,
}

/// Whether a serialization failure was the key's or the value's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SerializationOrigin {
    /// The key.
    Key,
    /// The value.
    Value,
}

/// A record bound for a sink topic, as bytes.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct ProducedRecord<'a> {
    /// The destination topic.
    pub topic: &'a str,
    /// The destination partition, when chosen.
    pub partition: Option<i32>,
    /// Key bytes.
    pub key: Option<&'a [u8]>,
    /// Value bytes.
    pub value: Option<&'a [u8]>,
    /// Timestamp.
    pub timestamp: i64,
}

/// Decides about a source record whose key or value does not deserialize
/// (`deserialization.exception.handler`).
pub trait DeserializationExceptionHandler: Send + Sync + 'static {
    /// `error` is a [`StreamsError::Deserialization`] naming the record.
    fn handle(&self, context: &ErrorHandlerContext<'_>, error: &StreamsError) -> HandlerResponse;
}

/// Decides about a record a processor failed on (`processing.exception.handler`, KIP-1033):
/// an error returned by a processor, a punctuation or a fallible DSL operator, or a panic in
/// user code ([`StreamsError::Panic`]).
pub trait ProcessingExceptionHandler: Send + Sync + 'static {
    /// Called at the node that failed; continuing skips the rest of that node's work on the
    /// record, and the nodes before it go on (other branches still see it).
    fn handle(&self, context: &ErrorHandlerContext<'_>, error: &StreamsError) -> HandlerResponse;
}

/// Decides about a record that cannot be sent to a sink topic (`production.exception.handler`):
/// too large, refused by the cluster, or not serializable. Changelog writes never come here:
/// a store whose changelog misses a write cannot be restored, so that always fails.
pub trait ProductionExceptionHandler: Send + Sync + 'static {
    /// A send failed; `error` is a [`StreamsError::Production`] (see its `retriable`).
    fn handle(
        &self,
        context: &ErrorHandlerContext<'_>,
        record: &ProducedRecord<'_>,
        error: &StreamsError,
    ) -> ProductionResponse;

    /// A sink's key or value serde failed; fails by default, as in Kafka Streams.
    fn handle_serialization(
        &self,
        context: &ErrorHandlerContext<'_>,
        topic: &str,
        error: &StreamsError,
        origin: SerializationOrigin,
    ) -> ProductionResponse {
        let _ = (context, topic, error, origin);
        ProductionResponse::Fail
    }
}

/// Logs the error and fails: Kafka Streams' `LogAndFailExceptionHandler` and
/// `LogAndFailProcessingExceptionHandler`, the default deserialization and processing handler.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogAndFail;

/// Logs the error and continues: Kafka Streams' `LogAndContinueExceptionHandler` and
/// `LogAndContinueProcessingExceptionHandler`; as a production handler it drops what cannot be
/// sent (Kafka Streams leaves that to user handlers).
#[derive(Debug, Clone, Copy, Default)]
pub struct LogAndContinue;

/// Kafka Streams' `DefaultProductionExceptionHandler`: retries what the cluster may accept
/// later, fails on anything else.
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultProductionExceptionHandler;

impl DeserializationExceptionHandler for LogAndFail {
    fn handle(&self, c: &ErrorHandlerContext<'_>, error: &StreamsError) -> HandlerResponse {
        tracing::error!(task = %c.task_id, node = c.processor_node_id, error = %error, "deserialization failed (log-and-fail)");
        HandlerResponse::Fail
    }
}

impl ProcessingExceptionHandler for LogAndFail {
    fn handle(&self, c: &ErrorHandlerContext<'_>, error: &StreamsError) -> HandlerResponse {
        tracing::error!(task = %c.task_id, node = c.processor_node_id, error = %error, "processing failed (log-and-fail)");
        HandlerResponse::Fail
    }
}

impl ProductionExceptionHandler for LogAndFail {
    fn handle(
        &self,
        c: &ErrorHandlerContext<'_>,
        r: &ProducedRecord<'_>,
        error: &StreamsError,
    ) -> ProductionResponse {
        tracing::error!(task = %c.task_id, topic = r.topic, error = %error, "production failed (log-and-fail)");
        ProductionResponse::Fail
    }
}

impl DeserializationExceptionHandler for LogAndContinue {
    fn handle(&self, c: &ErrorHandlerContext<'_>, error: &StreamsError) -> HandlerResponse {
        tracing::warn!(task = %c.task_id, node = c.processor_node_id, error = %error, "skipping a record that failed to deserialize (log-and-continue)");
        HandlerResponse::Continue
    }
}

impl ProcessingExceptionHandler for LogAndContinue {
    fn handle(&self, c: &ErrorHandlerContext<'_>, error: &StreamsError) -> HandlerResponse {
        tracing::warn!(task = %c.task_id, node = c.processor_node_id, error = %error, "skipping a record a processor failed on (log-and-continue)");
        HandlerResponse::Continue
    }
}

impl ProductionExceptionHandler for LogAndContinue {
    fn handle(
        &self,
        c: &ErrorHandlerContext<'_>,
        r: &ProducedRecord<'_>,
        error: &StreamsError,
    ) -> ProductionResponse {
        tracing::warn!(task = %c.task_id, topic = r.topic, error = %error, "dropping a record that could not be sent (log-and-continue)");
        ProductionResponse::Continue
    }

    fn handle_serialization(
        &self,
        c: &ErrorHandlerContext<'_>,
        topic: &str,
        error: &StreamsError,
        _: SerializationOrigin,
    ) -> ProductionResponse {
        tracing::warn!(task = %c.task_id, topic, error = %error, "dropping a record that could not be serialized (log-and-continue)");
        ProductionResponse::Continue
    }
}

impl ProductionExceptionHandler for DefaultProductionExceptionHandler {
    fn handle(
        &self,
        c: &ErrorHandlerContext<'_>,
        r: &ProducedRecord<'_>,
        error: &StreamsError,
    ) -> ProductionResponse {
        if error.is_retriable() {
            return ProductionResponse::Retry;
        }
        tracing::error!(task = %c.task_id, topic = r.topic, error = %error, "production failed");
        ProductionResponse::Fail
    }
}

/// The handlers an application runs with, and its dead-letter topic.
#[derive(Clone)]
pub(crate) struct ErrorHandlers {
    pub(crate) deserialization: Arc<dyn DeserializationExceptionHandler>,
    pub(crate) processing: Arc<dyn ProcessingExceptionHandler>,
    pub(crate) production: Arc<dyn ProductionExceptionHandler>,
    /// `errors.dead.letter.queue.topic.name`.
    pub(crate) dead_letter_topic: Option<Arc<str>>,
}

impl Default for ErrorHandlers {
    fn default() -> Self {
        ErrorHandlers {
            deserialization: Arc::new(LogAndFail),
            processing: Arc::new(LogAndFail),
            production: Arc::new(DefaultProductionExceptionHandler),
            dead_letter_topic: None,
        }
    }
}

impl fmt::Debug for ErrorHandlers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ErrorHandlers")
            .field("dead_letter_topic", &self.dead_letter_topic)
            .finish_non_exhaustive()
    }
}

/// User implementations of the handlers, set in code (they win over the properties, which
/// may then not be set too).
#[derive(Clone, Default)]
pub(crate) struct UserHandlers {
    pub(crate) deserialization: Option<Arc<dyn DeserializationExceptionHandler>>,
    pub(crate) processing: Option<Arc<dyn ProcessingExceptionHandler>>,
    pub(crate) production: Option<Arc<dyn ProductionExceptionHandler>>,
}

impl fmt::Debug for UserHandlers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserHandlers")
            .field("deserialization", &self.deserialization.is_some())
            .field("processing", &self.processing.is_some())
            .field("production", &self.production.is_some())
            .finish()
    }
}

/// Which built-in handler a property names: Kafka's class names (any package) or ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BuiltIn {
    LogAndFail,
    LogAndContinue,
    DefaultProduction,
}

/// Parses a handler property's value; the error lists what `property` accepts.
pub(crate) fn parse_built_in(property: &str, value: &str, production: bool) -> Result<BuiltIn> {
    let class = value.trim().rsplit('.').next().unwrap_or(value);
    let found = match class {
        "log-and-fail" | "LogAndFailExceptionHandler" | "LogAndFailProcessingExceptionHandler"
            if !production =>
        {
            Some(BuiltIn::LogAndFail)
        }
        "log-and-continue"
        | "LogAndContinueExceptionHandler"
        | "LogAndContinueProcessingExceptionHandler" => Some(BuiltIn::LogAndContinue),
        "log-and-fail" if production => Some(BuiltIn::LogAndFail),
        "default" | "DefaultProductionExceptionHandler" if production => {
            Some(BuiltIn::DefaultProduction)
        }
        _ => None,
    };
    found.ok_or_else(|| {
        let accepted = if production {
            "default (DefaultProductionExceptionHandler), log-and-fail, log-and-continue; \
             a handler of your own is set with StreamsConfig::with_production_exception_handler"
        } else if property.contains("processing") {
            "log-and-fail (LogAndFailProcessingExceptionHandler), log-and-continue \
             (LogAndContinueProcessingExceptionHandler); a handler of your own is set with \
             StreamsConfig::with_processing_exception_handler"
        } else {
            "log-and-fail (LogAndFailExceptionHandler), log-and-continue \
             (LogAndContinueExceptionHandler); a handler of your own is set with \
             StreamsConfig::with_deserialization_exception_handler"
        };
        StreamsError::config(property, format!("`{value}` is not one of {accepted}"))
    })
}
