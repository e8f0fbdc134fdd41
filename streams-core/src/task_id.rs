//! [`TaskId`]: a task's identity, (sub-topology, partition).
//!
//! A leaf module, so that errors, stores and the runtime name tasks without depending on `task`.

use std::fmt;

/// A task's identity: its sub-topology and partition, printed `<subtopology>_<partition>`.
///
/// ```
/// use streams_core::TaskId;
/// let id: TaskId = "1_3".parse().unwrap();
/// assert_eq!(id, TaskId { subtopology: 1, partition: 3 });
/// assert_eq!(id.to_string(), "1_3");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId {
    /// The sub-topology.
    pub subtopology: u32,
    /// The partition of the sub-topology's source topics.
    pub partition: i32,
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_{}", self.subtopology, self.partition)
    }
}

impl std::str::FromStr for TaskId {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let (a, b) = s
            .split_once('_')
            .ok_or_else(|| format!("`{s}` is not a task id like 0_1"))?;
        Ok(TaskId {
            subtopology: a
                .parse()
                .map_err(|_| format!("`{s}` is not a task id like 0_1"))?,
            partition: b
                .parse()
                .map_err(|_| format!("`{s}` is not a task id like 0_1"))?,
        })
    }
}
