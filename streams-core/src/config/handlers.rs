//! The exception handlers' properties: set in code or named (Kafka's class names or ours), and
//! the dead-letter topic.

use std::sync::Arc;

use super::{
    StreamsConfig, DEAD_LETTER_QUEUE_TOPIC_NAME, DESERIALIZATION_EXCEPTION_HANDLER,
    PROCESSING_EXCEPTION_HANDLER, PRODUCTION_EXCEPTION_HANDLER,
};
use crate::error::{Result, StreamsError};
use crate::handlers::{
    self, BuiltIn, DefaultProductionExceptionHandler, ErrorHandlers, LogAndContinue, LogAndFail,
};

impl StreamsConfig {
    /// The exception handlers: set in code, or named by their properties (Kafka's class names
    /// or ours), and the dead-letter topic.
    pub(super) fn error_handlers(&self) -> Result<ErrorHandlers> {
        let mut out = ErrorHandlers::default();
        let pick =
            |names: &[&'static str], in_code: bool| -> Result<Option<(&'static str, &str)>> {
                let set: Vec<_> = names
                    .iter()
                    .filter_map(|n| self.get(n).map(|v| (*n, v)))
                    .collect();
                if let (true, Some((name, _))) = (in_code, set.first()) {
                    return Err(StreamsError::config(
                        name,
                        "is set, and a handler is also set in code; keep one",
                    ));
                }
                Ok(set.first().copied())
            };
        let deserialization = [
            DESERIALIZATION_EXCEPTION_HANDLER,
            "default.deserialization.exception.handler",
        ];
        match (
            &self.handlers.deserialization,
            pick(&deserialization, self.handlers.deserialization.is_some())?,
        ) {
            (Some(h), _) => out.deserialization = h.clone(),
            (None, Some((name, v))) => {
                out.deserialization = match handlers::parse_built_in(name, v, false)? {
                    BuiltIn::LogAndContinue => Arc::new(LogAndContinue),
                    _ => Arc::new(LogAndFail),
                }
            }
            (None, None) => {}
        }
        match (
            &self.handlers.processing,
            pick(
                &[PROCESSING_EXCEPTION_HANDLER],
                self.handlers.processing.is_some(),
            )?,
        ) {
            (Some(h), _) => out.processing = h.clone(),
            (None, Some((name, v))) => {
                out.processing = match handlers::parse_built_in(name, v, false)? {
                    BuiltIn::LogAndContinue => Arc::new(LogAndContinue),
                    _ => Arc::new(LogAndFail),
                }
            }
            (None, None) => {}
        }
        let production = [
            PRODUCTION_EXCEPTION_HANDLER,
            "default.production.exception.handler",
        ];
        match (
            &self.handlers.production,
            pick(&production, self.handlers.production.is_some())?,
        ) {
            (Some(h), _) => out.production = h.clone(),
            (None, Some((name, v))) => {
                out.production = match handlers::parse_built_in(name, v, true)? {
                    BuiltIn::LogAndContinue => Arc::new(LogAndContinue),
                    BuiltIn::LogAndFail => Arc::new(LogAndFail),
                    BuiltIn::DefaultProduction => Arc::new(DefaultProductionExceptionHandler),
                }
            }
            (None, None) => {}
        }
        if let Some(topic) = self.get(DEAD_LETTER_QUEUE_TOPIC_NAME).map(str::trim) {
            let valid = !topic.is_empty()
                && topic.len() <= 249
                && topic
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
                && topic != "."
                && topic != "..";
            if !valid {
                return Err(StreamsError::config(
                    DEAD_LETTER_QUEUE_TOPIC_NAME,
                    format!("`{topic}` is not a valid topic name (1 to 249 of ASCII letters, digits, '.', '_' and '-')"),
                ));
            }
            out.dead_letter_topic = Some(topic.into());
        }
        Ok(out)
    }
}
