//! Small helpers without a better home: ids ([`random_uuid`]) and wall-clock time ([`now_ms`]).

use std::hash::{BuildHasher, Hasher};
use std::time::{SystemTime, UNIX_EPOCH};
use uuid::Uuid;

/// 64 unpredictable bits from the standard library's randomly keyed hasher: enough for ids,
/// without another dependency.
pub(crate) fn random_u64() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    h.finish()
}

/// A random (version 4 shaped) UUID, never the all-zero one Kafka reserves.
pub(crate) fn random_uuid() -> Uuid {
    let bytes = ((u128::from(random_u64()) << 64) | u128::from(random_u64())).to_be_bytes();
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

/// Milliseconds since the Unix epoch, the unit of Kafka timestamps.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}
