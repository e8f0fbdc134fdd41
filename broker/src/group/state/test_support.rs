//! Helpers shared by the group state machine's unit tests.

use super::{JoinParams, Reply};
use bytes::Bytes;
use std::time::Duration;
use tokio::sync::oneshot;

/// A JoinGroup of a dynamic member with one protocol, as a v4+ consumer sends it.
pub(super) fn params(member_id: &str) -> JoinParams {
    JoinParams {
        member_id: member_id.to_string(),
        instance_id: None,
        client_id: "c".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout: Duration::from_secs(10),
        rebalance_timeout: Duration::from_secs(30),
        protocol_type: "consumer".into(),
        protocols: vec![("range".into(), Bytes::from_static(b"m"))],
        require_known_member_id: true,
    }
}

/// The answer of a request that must not wait.
pub(super) fn now_or_panic<T: std::fmt::Debug>(r: Reply<T>) -> T {
    match r {
        Reply::Now(t) => t,
        Reply::Later(_) => panic!("expected an immediate reply"),
    }
}

/// The channel of a request that must wait for the rebalance.
pub(super) fn later<T: std::fmt::Debug>(r: Reply<T>) -> oneshot::Receiver<T> {
    match r {
        Reply::Later(rx) => rx,
        Reply::Now(t) => panic!("expected a parked reply, got {t:?}"),
    }
}
