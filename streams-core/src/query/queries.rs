//! The typed queries: key, range, prefix and count queries of key-value stores; key and range
//! queries of window stores; the sessions of a key in session stores.

use std::marker::PhantomData;
use std::ops::Bound;

use super::{Query, QueryResult, QueryTarget};
use crate::state::{KeyValueStore, SessionStore, StoreIterator, WindowStore};
use crate::window::Windowed;

/// `K` and `V` are only the types the query expects of the store: a query is `Send + Sync`
/// whatever they are, since it holds none of them but its key.
type Types<K, V> = PhantomData<fn() -> (K, V)>;

/// The value of one key of a key-value store (Kafka Streams' `KeyQuery`).
#[derive(Debug, Clone)]
pub struct KeyQuery<K, V> {
    key: K,
    types: Types<K, V>,
}

impl<K, V> KeyQuery<K, V> {
    /// The value of `key`.
    pub fn with_key(key: K) -> Self {
        KeyQuery {
            key,
            types: PhantomData,
        }
    }

    /// The key asked for.
    pub fn key(&self) -> &K {
        &self.key
    }
}

impl<K, V> Query for KeyQuery<K, V>
where
    K: Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    type Output = Option<V>;
    fn run(&self, t: &QueryTarget<'_>) -> QueryResult<Option<V>> {
        let store = t.handle::<KeyValueStore<K, V>>("KeyQuery", "key-value")?;
        store.get(&self.key).map_err(|e| t.failed(e))
    }
}

/// The entries of a key-value store within key bounds, ascending or descending (Kafka Streams'
/// `RangeQuery`), as a [`StoreIterator`] read a page at a time.
#[derive(Debug, Clone)]
pub struct RangeQuery<K, V> {
    from: Option<K>,
    to: Option<K>,
    descending: bool,
    types: Types<K, V>,
}

impl<K, V> RangeQuery<K, V> {
    /// Keys from `from` to `to`, both included.
    pub fn with_range(from: K, to: K) -> Self {
        Self::bounds(Some(from), Some(to))
    }
    /// Keys from `from` (included).
    pub fn with_lower_bound(from: K) -> Self {
        Self::bounds(Some(from), None)
    }
    /// Keys up to `to` (included).
    pub fn with_upper_bound(to: K) -> Self {
        Self::bounds(None, Some(to))
    }
    /// Every key.
    pub fn with_no_bounds() -> Self {
        Self::bounds(None, None)
    }
    /// Largest key first.
    pub fn with_descending_keys(mut self) -> Self {
        self.descending = true;
        self
    }
    fn bounds(from: Option<K>, to: Option<K>) -> Self {
        RangeQuery {
            from,
            to,
            descending: false,
            types: PhantomData,
        }
    }
}

fn included<K>(k: &Option<K>) -> Bound<&K> {
    k.as_ref().map_or(Bound::Unbounded, Bound::Included)
}

impl<K, V> Query for RangeQuery<K, V>
where
    K: Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    type Output = StoreIterator<(K, V)>;
    fn run(&self, t: &QueryTarget<'_>) -> QueryResult<Self::Output> {
        let store = t.handle::<KeyValueStore<K, V>>("RangeQuery", "key-value")?;
        store
            .range_iter(included(&self.from), included(&self.to), self.descending)
            .map_err(|e| t.failed(e))
    }
}

/// The entries of a key-value store whose serialized key starts with the serialized prefix
/// (Kafka Streams' `prefixScan`): for string keys, the keys starting with a string.
#[derive(Debug, Clone)]
pub struct PrefixScanQuery<K, V> {
    prefix: K,
    types: Types<K, V>,
}

impl<K, V> PrefixScanQuery<K, V> {
    /// Keys starting with `prefix`.
    pub fn with_prefix(prefix: K) -> Self {
        PrefixScanQuery {
            prefix,
            types: PhantomData,
        }
    }
}

impl<K, V> Query for PrefixScanQuery<K, V>
where
    K: Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    type Output = StoreIterator<(K, V)>;
    fn run(&self, t: &QueryTarget<'_>) -> QueryResult<Self::Output> {
        let store = t.handle::<KeyValueStore<K, V>>("PrefixScanQuery", "key-value")?;
        store.prefix_scan(&self.prefix).map_err(|e| t.failed(e))
    }
}

/// The store's estimate of its number of entries (any kind of store).
#[derive(Debug, Clone, Copy, Default)]
pub struct ApproximateCountQuery;

impl Query for ApproximateCountQuery {
    type Output = u64;
    fn run(&self, t: &QueryTarget<'_>) -> QueryResult<u64> {
        let cell = t.raw.cell();
        cell.with_stack(|s| s.approximate_num_entries())
            .map_err(|e| t.failed(e))
    }
}

/// One key's windows whose start lies in a time range (Kafka Streams' `WindowKeyQuery`), as
/// (window start, value) by start time.
#[derive(Debug, Clone)]
pub struct WindowKeyQuery<K, V> {
    key: K,
    from: i64,
    to: i64,
    types: Types<K, V>,
}

impl<K, V> WindowKeyQuery<K, V> {
    /// `key`'s windows starting from `from` to `to` (milliseconds, both included).
    pub fn with_key_and_window_start_range(key: K, from: i64, to: i64) -> Self {
        WindowKeyQuery {
            key,
            from,
            to,
            types: PhantomData,
        }
    }
}

impl<K, V> Query for WindowKeyQuery<K, V>
where
    K: Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    type Output = StoreIterator<(i64, V)>;
    fn run(&self, t: &QueryTarget<'_>) -> QueryResult<Self::Output> {
        let store = t.handle::<WindowStore<K, V>>("WindowKeyQuery", "window")?;
        store
            .fetch_iter(&self.key, self.from, self.to)
            .map_err(|e| t.failed(e))
    }
}

/// Windows of every key whose start lies in a time range, of a window store; or every session
/// of one key, of a session store (Kafka Streams' `WindowRangeQuery`).
#[derive(Debug, Clone)]
pub struct WindowRangeQuery<K, V> {
    scope: Scope<K>,
    types: Types<K, V>,
}

#[derive(Debug, Clone)]
enum Scope<K> {
    Starts(i64, i64),
    Key(K),
}

impl<K, V> WindowRangeQuery<K, V> {
    /// Every key's windows starting from `from` to `to` (milliseconds, both included).
    pub fn with_window_start_range(from: i64, to: i64) -> Self {
        WindowRangeQuery {
            scope: Scope::Starts(from, to),
            types: PhantomData,
        }
    }
    /// Every session of `key` (session stores).
    pub fn with_key(key: K) -> Self {
        WindowRangeQuery {
            scope: Scope::Key(key),
            types: PhantomData,
        }
    }
}

impl<K, V> Query for WindowRangeQuery<K, V>
where
    K: Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    type Output = StoreIterator<(Windowed<K>, V)>;
    fn run(&self, t: &QueryTarget<'_>) -> QueryResult<Self::Output> {
        match &self.scope {
            Scope::Starts(from, to) => {
                let store = t.handle::<WindowStore<K, V>>("WindowRangeQuery by time", "window")?;
                store.fetch_all_iter(*from, *to).map_err(|e| t.failed(e))
            }
            Scope::Key(key) => {
                let store = t.handle::<SessionStore<K, V>>("WindowRangeQuery by key", "session")?;
                store.sessions_iter(key).map_err(|e| t.failed(e))
            }
        }
    }
}
