//! Interactive queries with Kafka Streams' IQv2 semantics: a [`StateQueryRequest`] names a store
//! and a typed [`Query`]; each partition of the store this instance hosts answers on its own,
//! with a result or a [`QueryFailure`] saying why not.
//!
//! ```
//! use streams_core::{KeyQuery, RangeQuery, StateQueryRequest};
//! let one = StateQueryRequest::in_store("counts").with_query(KeyQuery::<String, i64>::with_key("rust".into()));
//! let all = StateQueryRequest::in_store("counts")
//!     .with_query(RangeQuery::<String, i64>::with_no_bounds().with_descending_keys())
//!     .with_partitions([0, 1])
//!     .enable_stale_stores();
//! assert_eq!(one.store(), "counts");
//! assert!(all.stale_stores_enabled());
//! ```

mod hosted;
mod position;
mod queries;

pub(crate) use hosted::{HostedStores, Role};
pub use position::{Position, PositionBound};
pub use queries::{
    ApproximateCountQuery, KeyQuery, PrefixScanQuery, RangeQuery, WindowKeyQuery, WindowRangeQuery,
};

use std::collections::{BTreeMap, BTreeSet};

use crate::state::RawStore;

/// Why one partition of a query has no result (Kafka Streams' `FailureReason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailureReason {
    /// The query does not apply to the store: another kind of store (a key query on a window
    /// store), or other key and value types than the store's.
    UnknownQueryType,
    /// The partition is here only as a standby or is being restored, and the query did not
    /// enable stale stores.
    NotActive,
    /// The partition has not processed its input up to the request's [`PositionBound`].
    NotUpToBound,
    /// The partition's task is not hosted by this instance (now).
    NotPresent,
    /// The store has no such partition.
    DoesNotExist,
    /// The store failed while answering: closed under the query (its task moved or closed),
    /// or data that does not deserialize.
    StoreException,
}

/// One partition's failure: the reason and a message naming the store and partition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason:?}: {message}")]
pub struct QueryFailure {
    /// Why.
    pub reason: FailureReason,
    /// What happened, naming the store and partition.
    pub message: String,
}

impl QueryFailure {
    pub(crate) fn new(reason: FailureReason, message: impl Into<String>) -> Self {
        QueryFailure {
            reason,
            message: message.into(),
        }
    }
}

/// One partition's answer.
pub type QueryResult<R> = std::result::Result<R, QueryFailure>;

/// A query of one store: implemented by [`KeyQuery`], [`RangeQuery`], [`PrefixScanQuery`],
/// [`ApproximateCountQuery`], [`WindowKeyQuery`] and [`WindowRangeQuery`].
pub trait Query: Send + Sync + 'static {
    /// What one partition answers.
    type Output: Send;
    /// Runs against one partition of the store.
    #[doc(hidden)]
    fn run(&self, store: &QueryTarget<'_>) -> QueryResult<Self::Output>;
}

/// One partition of a store as a query sees it. Only the library makes these.
#[doc(hidden)]
pub struct QueryTarget<'a> {
    pub(crate) name: &'a str,
    pub(crate) partition: i32,
    pub(crate) raw: &'a RawStore,
    pub(crate) handle: &'a (dyn std::any::Any + Send + Sync),
}

impl QueryTarget<'_> {
    /// The typed handle of the store, or why the query does not apply.
    pub(crate) fn handle<H: 'static>(&self, query: &str, kind: &str) -> QueryResult<&H> {
        self.handle.downcast_ref::<H>().ok_or_else(|| {
            let found = match self.raw {
                RawStore::KeyValue(_) => "key-value",
                RawStore::Window { .. } => "window",
                RawStore::Session { .. } => "session",
            };
            let message = if found == kind {
                format!(
                    "{query} on store `{}`: the store's key and value types are not the query's",
                    self.name
                )
            } else {
                format!(
                    "{query} needs a {kind} store; `{}` is a {found} store",
                    self.name
                )
            };
            QueryFailure::new(FailureReason::UnknownQueryType, message)
        })
    }

    /// A store error as this partition's failure.
    pub(crate) fn failed(&self, e: crate::StreamsError) -> QueryFailure {
        QueryFailure::new(
            FailureReason::StoreException,
            format!("store `{}` partition {}: {e}", self.name, self.partition),
        )
    }
}

/// The first step of a request: the store. See [`StateQueryRequest::in_store`].
#[derive(Debug, Clone)]
pub struct InStore {
    store: String,
}

impl InStore {
    /// The query to run on the store's partitions.
    pub fn with_query<Q: Query>(self, query: Q) -> StateQueryRequest<Q> {
        StateQueryRequest {
            store: self.store,
            query,
            partitions: None,
            stale: false,
            bound: PositionBound::Unbounded,
        }
    }
}

/// A query of one store, on all its partitions hosted here or on some (Kafka Streams'
/// `StateQueryRequest`). By default only active, running partitions answer.
#[derive(Debug, Clone)]
pub struct StateQueryRequest<Q> {
    store: String,
    query: Q,
    partitions: Option<BTreeSet<i32>>,
    stale: bool,
    bound: PositionBound,
}

impl StateQueryRequest<()> {
    /// Starts a request on store `store`.
    pub fn in_store(store: &str) -> InStore {
        InStore {
            store: store.to_string(),
        }
    }
}

impl<Q: Query> StateQueryRequest<Q> {
    /// Only these partitions; each one not hosted here answers [`FailureReason::NotPresent`].
    pub fn with_partitions(mut self, partitions: impl IntoIterator<Item = i32>) -> Self {
        self.partitions = Some(partitions.into_iter().collect());
        self
    }

    /// Standby and restoring partitions answer too (their data may be behind the active's).
    pub fn enable_stale_stores(mut self) -> Self {
        self.stale = true;
        self
    }

    /// Only partitions that have processed their input up to `bound` answer (read your own
    /// writes: the bound is the position of records this application wrote).
    pub fn with_position_bound(mut self, bound: PositionBound) -> Self {
        self.bound = bound;
        self
    }

    /// The store queried.
    pub fn store(&self) -> &str {
        &self.store
    }

    /// Whether standby and restoring partitions answer.
    pub fn stale_stores_enabled(&self) -> bool {
        self.stale
    }

    /// The partitions asked for, `None` for all hosted here.
    pub fn partitions(&self) -> Option<&BTreeSet<i32>> {
        self.partitions.as_ref()
    }

    /// The query.
    pub fn query(&self) -> &Q {
        &self.query
    }
}

/// The answers of the partitions a request reached (Kafka Streams' `StateQueryResult`).
#[derive(Debug)]
pub struct StateQueryResult<R> {
    partitions: BTreeMap<i32, QueryResult<R>>,
    positions: BTreeMap<i32, Position>,
}

impl<R> StateQueryResult<R> {
    /// Each partition's answer.
    pub fn partition_results(&self) -> &BTreeMap<i32, QueryResult<R>> {
        &self.partitions
    }

    /// Each partition's answer, owned (iterators are consumed this way).
    pub fn into_partition_results(self) -> BTreeMap<i32, QueryResult<R>> {
        self.partitions
    }

    /// How far the partition that answered had processed its input when it answered.
    pub fn position(&self, partition: i32) -> Option<&Position> {
        self.positions.get(&partition)
    }

    /// The positions of every partition that answered, merged: a bound for later queries
    /// that must see at least what this one saw.
    pub fn merged_position(&self) -> Position {
        let mut p = Position::empty();
        for q in self.positions.values() {
            p.merge(q);
        }
        p
    }

    /// The one partition's answer, when exactly one answered (a key query routed to its
    /// partition); `None` otherwise.
    pub fn into_only_partition_result(self) -> Option<QueryResult<R>> {
        if self.partitions.len() != 1 {
            return None;
        }
        self.partitions.into_values().next()
    }
}

/// Runs `request` against the stores `hosted` holds. `partition_count` is the store's number of
/// partitions when known (requested partitions past it do not exist).
pub(crate) fn execute<Q: Query>(
    hosted: &HostedStores,
    request: &StateQueryRequest<Q>,
    partition_count: Option<i32>,
) -> StateQueryResult<Q::Output> {
    let found = hosted.find(&request.store);
    let mut partitions = BTreeMap::new();
    let mut positions = BTreeMap::new();
    let wanted: Vec<i32> = match &request.partitions {
        Some(p) => p.iter().copied().collect(),
        None => found.keys().copied().collect(),
    };
    for p in wanted {
        let answer = match found.get(&p) {
            _ if p < 0 || partition_count.is_some_and(|n| p >= n) => Err(QueryFailure::new(
                FailureReason::DoesNotExist,
                match partition_count {
                    Some(n) => {
                        format!("store `{}` has no partition {p}: it has {n}", request.store)
                    }
                    None => format!("store `{}` has no partition {p}", request.store),
                },
            )),
            None => Err(QueryFailure::new(
                FailureReason::NotPresent,
                format!(
                    "partition {p} of store `{}` is not hosted by this instance",
                    request.store
                ),
            )),
            Some(h) if h.role != Role::Running && !request.stale => Err(QueryFailure::new(
                FailureReason::NotActive,
                format!(
                    "partition {p} of store `{}` is {} here; enable stale stores to read it",
                    request.store,
                    h.role.describe()
                ),
            )),
            Some(h) => match &request.bound {
                PositionBound::At(bound) if !h.position.covers(bound) => Err(QueryFailure::new(
                    FailureReason::NotUpToBound,
                    format!(
                        "partition {p} of store `{}` is at {:?}, not yet at the bound {:?}",
                        request.store, h.position, bound
                    ),
                )),
                _ => {
                    let answer = request.query.run(&QueryTarget {
                        name: &request.store,
                        partition: p,
                        raw: &h.raw,
                        handle: h.handle.as_ref(),
                    });
                    positions.insert(p, h.position.clone());
                    answer
                }
            },
        };
        partitions.insert(p, answer);
    }
    StateQueryResult {
        partitions,
        positions,
    }
}
