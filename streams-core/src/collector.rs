//! [`RecordCollector`]: where a task's records (sinks, changelog writes) leave it.
//!
//! A leaf module, so that stores, sink nodes and tasks send records without knowing who receives
//! them: the runtime's producer or the test driver's list.

use crate::error::{Result, StreamsError};
use crate::record::Headers;

/// Where processed records leave the task: the producer in the runtime, a list in the test
/// driver. Changelog writes go through it too.
pub(crate) trait RecordCollector: Send + Sync {
    /// Sends a record; `partition` `None` lets the producer's partitioner (murmur2 of the key,
    /// as in Java) choose.
    fn send(
        &self,
        topic: &str,
        partition: Option<i32>,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        timestamp: i64,
        headers: &Headers,
    ) -> Result<()>;

    /// Says which task the next records are sent for, so that a failed delivery report names
    /// it to the production handler.
    fn set_task(&self, task: crate::task_id::TaskId) {
        let _ = task;
    }

    /// Records an error found where it cannot be returned (a changelog write inside a store);
    /// the task raises it at its next check.
    fn fail(&self, error: StreamsError);

    /// The first recorded error, if any (sticky: a failed collector stays failed).
    fn check(&self) -> Result<()>;
}

/// A collector that drops every record: for tests of tasks and their lifecycle.
#[cfg(test)]
pub(crate) struct NullCollector;

#[cfg(test)]
impl RecordCollector for NullCollector {
    fn send(
        &self,
        _: &str,
        _: Option<i32>,
        _: Option<&[u8]>,
        _: Option<&[u8]>,
        _: i64,
        _: &Headers,
    ) -> Result<()> {
        Ok(())
    }
    fn fail(&self, _: StreamsError) {}
    fn check(&self) -> Result<()> {
        Ok(())
    }
}
