//! The one error type of streams-core: [`StreamsError`], whose messages name what was involved.

use std::fmt;

use crate::record::RecordMetadata;
use crate::task_id::TaskId;

/// The input record an error happened on, for messages: ` on the record at topic `t` partition
/// p offset o`, or nothing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecordOrigin(pub Option<RecordMetadata>);

impl fmt::Display for RecordOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(m) => write!(
                f,
                " on the record at topic `{}` partition {} offset {}",
                m.topic, m.partition, m.offset
            ),
            None => Ok(()),
        }
    }
}

/// A failure while building, starting or running a streams application.
///
/// Every variant names the thing involved (topic, partition, offset, property, task, processor or
/// store) so that the message alone says where to look.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StreamsError {
    /// A configuration property is missing or has an invalid value.
    #[error("invalid configuration property `{property}`: {message}")]
    Config {
        /// The property's name, as Kafka Streams spells it.
        property: String,
        /// What is wrong with it.
        message: String,
    },
    /// The topology is malformed (unknown parent, duplicate name, mismatched types, ...).
    #[error("invalid topology: {message}")]
    Topology {
        /// The node, store or topic involved; empty when it is the topology as a whole.
        element: String,
        /// What is wrong, naming it.
        message: String,
    },
    /// A source topic the topology reads does not exist on the cluster.
    #[error("source topic `{topic}` does not exist on the cluster (create it before starting the application)")]
    MissingSourceTopic {
        /// The missing topic.
        topic: String,
    },
    /// An internal topic exists with a shape the topology cannot use.
    #[error("internal topic `{topic}`: {message}")]
    InternalTopic {
        /// The internal (repartition or changelog) topic.
        topic: String,
        /// What is wrong with it.
        message: String,
    },
    /// Topics that must be co-partitioned have different partition counts.
    #[error(
        "topics of sub-topology {subtopology} must have the same number of partitions: {counts}"
    )]
    CoPartitioning {
        /// The sub-topology reading the topics.
        subtopology: usize,
        /// Each topic with its partition count.
        counts: String,
    },
    /// A record's key or value could not be deserialized.
    #[error("failed to deserialize the {part} of the record at topic `{topic}` partition {partition} offset {offset}: {source}")]
    Deserialization {
        /// `key` or `value`.
        part: &'static str,
        /// Source topic of the record.
        topic: String,
        /// Partition of the record.
        partition: i32,
        /// Offset of the record.
        offset: i64,
        /// The serde's error.
        source: crate::serde::SerdeError,
    },
    /// A record has a timestamp the application cannot use.
    #[error("invalid timestamp {timestamp} of the record at topic `{topic}` partition {partition} offset {offset}")]
    InvalidTimestamp {
        /// The extracted timestamp.
        timestamp: i64,
        /// Source topic of the record.
        topic: String,
        /// Partition of the record.
        partition: i32,
        /// Offset of the record.
        offset: i64,
    },
    /// A key or value could not be serialized for a sink or a store.
    #[error("failed to serialize a record for `{target}`: {source}")]
    Serialization {
        /// The topic or store the bytes were for.
        target: String,
        /// The serde's error.
        source: crate::serde::SerdeError,
    },
    /// A processor failed while processing a record or a punctuation, and the processing
    /// exception handler chose to fail.
    #[error("processor `{processor}` of task {task} failed{record}: {message}")]
    Processing {
        /// The task the processor runs in.
        task: TaskId,
        /// The processor node's name.
        processor: String,
        /// The input record being processed (none in a punctuation).
        record: RecordOrigin,
        /// What the processor reported.
        message: String,
    },
    /// User code panicked (caught at the processor node it ran in).
    #[error("panicked{}: {message}", location.as_deref().map(|l| format!(" at {l}")).unwrap_or_default())]
    Panic {
        /// The panic's message.
        message: String,
        /// Where it panicked (`file:line:column`), when known.
        location: Option<String>,
    },
    /// A user processor reported an error (wrapped with its task and processor on the way out).
    #[error("{message}")]
    User {
        /// What the processor reported.
        message: String,
        /// The error behind it, when the processor gave one ([`StreamsError::user_error`]).
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// A state store failed.
    #[error("state store `{store}` of task {task}: {source}")]
    Store {
        /// The task owning the store.
        task: TaskId,
        /// The store's name.
        store: String,
        /// The store layer's error.
        source: state_store::StoreError,
    },
    /// A store a processor asked for is not connected to it, or has other types.
    #[error("state store `{store}`: {message}")]
    StoreAccess {
        /// The store's name.
        store: String,
        /// What went wrong.
        message: String,
    },
    /// A record could not be produced to its topic.
    #[error("failed to produce to topic `{topic}`: {message}")]
    Production {
        /// The destination topic.
        topic: String,
        /// The producer's error.
        message: String,
        /// Whether the cluster may accept the record if it is sent again (a timeout, a leader
        /// moving), as opposed to a record that is too large or a topic that does not exist.
        retriable: bool,
    },
    /// A Kafka client operation failed.
    #[error("{operation} failed: {source}")]
    Kafka {
        /// What was being done (commit offsets, create topics, ...).
        operation: String,
        /// The client's error.
        source: rdkafka::error::KafkaError,
    },
    /// Restoring a store from its changelog failed.
    #[error("restoring store `{store}` of task {task} from `{changelog}`: {message}")]
    Restore {
        /// The task owning the store.
        task: TaskId,
        /// The store being restored.
        store: String,
        /// Its changelog topic.
        changelog: String,
        /// What went wrong.
        message: String,
    },
    /// The group membership failed: the group (`application.id`), what was being done, why.
    #[error("consumer group `{group}`: {operation}: {message}")]
    Group {
        /// The group id.
        group: String,
        /// What the member was doing (joining, committing offsets, ...).
        operation: String,
        /// What went wrong, naming the broker where one is involved.
        message: String,
    },
    /// The application, a task or a test driver is not in a state that allows the call.
    #[error("illegal state: {message}")]
    IllegalState {
        /// What is in the wrong state (the application, a task, a stream thread...).
        subject: String,
        /// What was asked and why it cannot be done now.
        message: String,
    },
    /// An I/O error on a local file.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
}

impl StreamsError {
    /// An error reported by user code (a processor, a punctuator or a DSL closure).
    ///
    /// The runtime adds the task and the processor's name when the error leaves the topology.
    pub fn user(message: impl std::fmt::Display) -> Self {
        StreamsError::User {
            message: message.to_string(),
            source: None,
        }
    }

    /// An error of user code that keeps the error behind it (its `source`), whose message it
    /// takes.
    pub fn user_error(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        StreamsError::User {
            message: error.to_string(),
            source: Some(Box::new(error)),
        }
    }

    /// A malformed topology: what is wrong with `element` (a node, store or topic; empty for
    /// the whole topology), in a message that names it.
    pub fn topology(element: impl Into<String>, message: impl std::fmt::Display) -> Self {
        StreamsError::Topology {
            element: element.into(),
            message: message.to_string(),
        }
    }

    pub(crate) fn illegal_state(
        subject: impl Into<String>,
        message: impl std::fmt::Display,
    ) -> Self {
        StreamsError::IllegalState {
            subject: subject.into(),
            message: message.to_string(),
        }
    }

    /// The variant's name, for dead-letter records (`__streams.errors.exception`).
    pub fn kind(&self) -> &'static str {
        match self {
            StreamsError::Config { .. } => "Config",
            StreamsError::Topology { .. } => "Topology",
            StreamsError::MissingSourceTopic { .. } => "MissingSourceTopic",
            StreamsError::InternalTopic { .. } => "InternalTopic",
            StreamsError::CoPartitioning { .. } => "CoPartitioning",
            StreamsError::Deserialization { .. } => "Deserialization",
            StreamsError::InvalidTimestamp { .. } => "InvalidTimestamp",
            StreamsError::Serialization { .. } => "Serialization",
            StreamsError::Processing { .. } => "Processing",
            StreamsError::Panic { .. } => "Panic",
            StreamsError::User { .. } => "User",
            StreamsError::Store { .. } => "Store",
            StreamsError::StoreAccess { .. } => "StoreAccess",
            StreamsError::Production { .. } => "Production",
            StreamsError::Kafka { .. } => "Kafka",
            StreamsError::Restore { .. } => "Restore",
            StreamsError::Group { .. } => "Group",
            StreamsError::IllegalState { .. } => "IllegalState",
            StreamsError::Io { .. } => "Io",
        }
    }

    /// Whether trying again may succeed (a send the cluster may accept later).
    pub fn is_retriable(&self) -> bool {
        matches!(
            self,
            StreamsError::Production {
                retriable: true,
                ..
            }
        )
    }

    pub(crate) fn config(property: &str, message: impl std::fmt::Display) -> Self {
        StreamsError::Config {
            property: property.to_string(),
            message: message.to_string(),
        }
    }

    pub(crate) fn kafka(operation: impl Into<String>, source: rdkafka::error::KafkaError) -> Self {
        StreamsError::Kafka {
            operation: operation.into(),
            source,
        }
    }
}

/// Result of streams-core operations.
pub type Result<T, E = StreamsError> = std::result::Result<T, E>;
