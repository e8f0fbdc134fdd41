//! [`Position`] and [`PositionBound`]: how far a store has read its input, and how far a query
//! needs it to have read (Kafka Streams' consistency vectors, KIP-796).

use std::collections::BTreeMap;

/// Per input topic and partition, the offset of the last record a task processed: how far
/// the stores of a partition reflect the input.
///
/// ```
/// use streams_core::Position;
/// let p = Position::empty().with_component("clicks", 0, 41);
/// assert_eq!(p.offset("clicks", 0), Some(41));
/// assert!(p.covers(&Position::empty().with_component("clicks", 0, 40)));
/// assert!(!p.covers(&Position::empty().with_component("clicks", 1, 0)));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Position {
    offsets: BTreeMap<String, BTreeMap<i32, i64>>,
}

impl Position {
    /// No offsets.
    pub fn empty() -> Self {
        Position::default()
    }

    /// This position with `offset` for `topic`'s `partition` (the larger one if it had one).
    pub fn with_component(mut self, topic: &str, partition: i32, offset: i64) -> Self {
        self.advance(topic, partition, offset);
        self
    }

    fn advance(&mut self, topic: &str, partition: i32, offset: i64) {
        let o = self
            .offsets
            .entry(topic.to_string())
            .or_default()
            .entry(partition)
            .or_insert(offset);
        *o = (*o).max(offset);
    }

    /// The offset of `topic`'s `partition`, if this position has one.
    pub fn offset(&self, topic: &str, partition: i32) -> Option<i64> {
        self.offsets.get(topic)?.get(&partition).copied()
    }

    /// Every (topic, partition, offset).
    pub fn components(&self) -> impl Iterator<Item = (&str, i32, i64)> {
        self.offsets
            .iter()
            .flat_map(|(t, ps)| ps.iter().map(move |(p, o)| (t.as_str(), *p, *o)))
    }

    /// Takes the larger offset of each component of `other`.
    pub fn merge(&mut self, other: &Position) {
        for (t, p, o) in other.components() {
            self.advance(t, p, o);
        }
    }

    /// Whether this position has reached `bound` in every component `bound` names: as in Kafka
    /// Streams, a component this position lacks has not been reached.
    pub fn covers(&self, bound: &Position) -> bool {
        bound
            .components()
            .all(|(t, p, o)| self.offset(t, p).is_some_and(|mine| mine >= o))
    }

    /// From a task's next offsets to commit (one past the last processed record).
    pub(crate) fn from_next_offsets(next: &[(String, i32, i64)]) -> Self {
        let mut p = Position::empty();
        for (t, part, next) in next {
            p.advance(t, *part, next - 1);
        }
        p
    }
}

/// How fresh a query's partitions must be (Kafka Streams' `PositionBound`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum PositionBound {
    /// Any data will do.
    #[default]
    Unbounded,
    /// Only partitions whose position covers this one answer; the others answer
    /// [`FailureReason::NotUpToBound`](super::FailureReason::NotUpToBound).
    At(Position),
}

impl PositionBound {
    /// Any data will do.
    pub fn unbounded() -> Self {
        PositionBound::Unbounded
    }
    /// At least `position`.
    pub fn at(position: Position) -> Self {
        PositionBound::At(position)
    }
}
