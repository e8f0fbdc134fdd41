//! Queries of the partitions this instance hosts, on bytes: what the HTTP handlers run on
//! tokio's blocking pool before turning the answer into JSON.

use std::ops::Bound;

use axum::http::StatusCode;

use super::ApiError;
use crate::error::StreamsError;
use crate::query::{HostedStores, Role};
use crate::state::{RawScan, RawStore};

/// Some entries of a partition, and whether more were left out.
type Page<T> = Result<(Vec<T>, bool), ApiError>;

/// One hosted, active and running partition of a store.
pub(crate) struct Partition {
    pub(crate) store: String,
    pub(crate) partition: i32,
    pub(crate) raw: RawStore,
}

/// Partition `p` of `store` if it runs here; `Ok(None)` when it is not hosted here; an error
/// when it is here but restoring or a standby (it cannot answer for the application now).
pub(crate) fn partition(
    hosted: &HostedStores,
    store: &str,
    p: i32,
) -> Result<Option<Partition>, ApiError> {
    match hosted.find(store).remove(&p) {
        None => Ok(None),
        Some(h) if h.role == Role::Standby => Ok(None),
        Some(h) if h.role != Role::Running => Err(ApiError::unavailable(format!(
            "partition {p} of store `{store}` is {} on this instance; retry shortly",
            h.role.describe()
        ))),
        Some(h) => Ok(Some(Partition {
            store: store.to_string(),
            partition: p,
            raw: h.raw,
        })),
    }
}

/// Every running partition of `store` hosted here; an error if one is restoring.
pub(crate) fn partitions(hosted: &HostedStores, store: &str) -> Result<Vec<Partition>, ApiError> {
    let mut out = Vec::new();
    for p in hosted.find(store).into_keys() {
        out.extend(partition(hosted, store, p)?);
    }
    Ok(out)
}

impl Partition {
    fn failed(&self, e: StreamsError) -> ApiError {
        if let StreamsError::Store {
            source: state_store::StoreError::Closed { .. },
            ..
        } = e
        {
            // The task moved or closed under the query: a defined, retryable answer.
            return ApiError::unavailable(format!(
                "partition {} of store `{}` closed during the query (its task moved); retry",
                self.partition, self.store
            ));
        }
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "store_error",
            format!("store `{}` partition {}: {e}", self.store, self.partition),
        )
    }

    fn wrong_kind(&self, wanted: &str) -> ApiError {
        ApiError::bad_request(format!("store `{}` is not a {wanted} store", self.store))
    }

    /// The value of `key`.
    pub(crate) fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, ApiError> {
        let RawStore::KeyValue(cell) = &self.raw else {
            return Err(self.wrong_kind("key-value"));
        };
        cell.with_stack(|s| s.get(key)).map_err(|e| self.failed(e))
    }

    /// At most `limit` entries within the bounds, in key order (or reversed); and whether
    /// there were more.
    pub(crate) fn range(
        &self,
        from: Bound<Vec<u8>>,
        to: Bound<Vec<u8>>,
        reverse: bool,
        limit: usize,
    ) -> Page<(Vec<u8>, Vec<u8>)> {
        let RawStore::KeyValue(cell) = &self.raw else {
            return Err(self.wrong_kind("key-value"));
        };
        let scan = RawScan::new(cell.clone(), from, to, reverse);
        bounded(scan, limit).map_err(|e| self.failed(e))
    }

    /// `key`'s windows starting from `from` to `to`, as (start, end, value).
    pub(crate) fn windows_of(
        &self,
        key: Vec<u8>,
        from: i64,
        to: i64,
        limit: usize,
    ) -> Page<(i64, i64, Vec<u8>)> {
        let RawStore::Window { cell, seg, size_ms } = &self.raw else {
            return Err(self.wrong_kind("window"));
        };
        let size = *size_ms;
        let it = RawStore::window_fetch(cell, seg, key, from, to).map_err(|e| self.failed(e))?;
        let (entries, more) = bounded(it, limit).map_err(|e| self.failed(e))?;
        let entries = entries
            .into_iter()
            .map(|(start, v)| (start, start.saturating_add(size), v))
            .collect();
        Ok((entries, more))
    }

    /// Every key's windows starting from `from` to `to`, as (key, start, end, value).
    pub(crate) fn windows(
        &self,
        from: i64,
        to: i64,
        limit: usize,
    ) -> Page<(Vec<u8>, i64, i64, Vec<u8>)> {
        let RawStore::Window { cell, seg, size_ms } = &self.raw else {
            return Err(self.wrong_kind("window"));
        };
        let size = *size_ms;
        let it = RawStore::window_fetch_all(cell, seg, from, to).map_err(|e| self.failed(e))?;
        let (entries, more) = bounded(it, limit).map_err(|e| self.failed(e))?;
        let entries = entries
            .into_iter()
            .map(|(k, start, v)| (k, start, start.saturating_add(size), v))
            .collect();
        Ok((entries, more))
    }

    /// `key`'s sessions, as (start, end, value).
    pub(crate) fn sessions(&self, key: Vec<u8>, limit: usize) -> Page<(i64, i64, Vec<u8>)> {
        let RawStore::Session { cell, seg } = &self.raw else {
            return Err(self.wrong_kind("session"));
        };
        let it = RawStore::sessions(cell, seg, key).map_err(|e| self.failed(e))?;
        let (entries, more) = bounded(it, limit).map_err(|e| self.failed(e))?;
        Ok((
            entries.into_iter().map(|(_, s, e, v)| (s, e, v)).collect(),
            more,
        ))
    }
}

/// The first `limit` items, and whether more followed.
fn bounded<T>(
    mut it: impl Iterator<Item = crate::error::Result<T>>,
    limit: usize,
) -> crate::error::Result<(Vec<T>, bool)> {
    let mut out = Vec::new();
    for item in it.by_ref() {
        if out.len() == limit {
            return Ok((out, true));
        }
        out.push(item?);
    }
    Ok((out, false))
}
