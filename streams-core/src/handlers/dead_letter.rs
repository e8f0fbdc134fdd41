//! The headers of a dead-letter record (KIP-1034): the original headers, then what failed and
//! where the record came from.

use std::error::Error as _;

use super::ErrorHandlerContext;
use crate::error::StreamsError;
use crate::record::Headers;

/// Kafka Streams' dead-letter header names (KIP-1034).
pub(crate) const EXCEPTION: &str = "__streams.errors.exception";
pub(crate) const MESSAGE: &str = "__streams.errors.message";
pub(crate) const STACKTRACE: &str = "__streams.errors.stacktrace";
pub(crate) const TOPIC: &str = "__streams.errors.topic";
pub(crate) const PARTITION: &str = "__streams.errors.partition";
pub(crate) const OFFSET: &str = "__streams.errors.offset";

/// The headers of the dead-letter record for `error` on the record of `context`: its own
/// headers first, then the six of KIP-1034, as UTF-8 text like Java's (`exception` is
/// `<kind>: <message>` as Java's `toString`; partition and offset are decimal, -1 when unknown;
/// `stacktrace` is the panic's backtrace, or else the error's chain of causes).
pub(crate) fn dead_letter_record(
    context: &ErrorHandlerContext<'_>,
    error: &StreamsError,
    backtrace: Option<&str>,
) -> Headers {
    let message = error.to_string();
    let stack = match backtrace {
        Some(b) => b.to_string(),
        None => {
            let mut chain = message.clone();
            let mut source = error.source();
            while let Some(s) = source {
                chain.push_str("\ncaused by: ");
                chain.push_str(&s.to_string());
                source = s.source();
            }
            chain
        }
    };
    let mut headers = context.headers.clone();
    let text = |v: String| Some(v.into_bytes());
    headers.push((
        EXCEPTION.into(),
        text(format!("{}: {message}", error.kind())),
    ));
    headers.push((MESSAGE.into(), text(message)));
    headers.push((STACKTRACE.into(), text(stack)));
    // A punctuation's or a delivery report's error has no source topic: a null header, as Java's.
    headers.push((TOPIC.into(), context.topic.map(|t| t.as_bytes().to_vec())));
    headers.push((
        PARTITION.into(),
        text(context.partition.unwrap_or(-1).to_string()),
    ));
    headers.push((
        OFFSET.into(),
        text(context.offset.unwrap_or(-1).to_string()),
    ));
    headers
}
