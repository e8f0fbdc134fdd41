//! SyncGroup: the leader hands in the assignment, every member (leader included) gets its part.

use super::{code, sb};
use crate::state::BrokerState;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};
use std::sync::Arc;

pub(crate) async fn handle(state: &Arc<BrokerState>, req: SyncGroupRequest) -> SyncGroupResponse {
    let assignments = req
        .assignments
        .into_iter()
        .map(|a| (a.member_id.to_string(), a.assignment))
        .collect();
    let outcome = state
        .groups
        .sync(
            req.group_id.as_str(),
            req.member_id.as_str(),
            req.group_instance_id.as_deref(),
            req.generation_id,
            assignments,
        )
        .await;
    // v5+ clients name the protocol they think was chosen; a mismatch is their error.
    let mismatch = |asked: &Option<kafka_protocol::protocol::StrBytes>, actual: &Option<String>| matches!((asked, actual), (Some(a), Some(b)) if a.as_str() != b);
    if outcome.error.is_none()
        && (mismatch(&req.protocol_type, &outcome.protocol_type)
            || mismatch(&req.protocol_name, &outcome.protocol_name))
    {
        return SyncGroupResponse::default()
            .with_error_code(ResponseError::InconsistentGroupProtocol.code());
    }
    SyncGroupResponse::default()
        .with_error_code(code(outcome.error))
        .with_protocol_type(outcome.protocol_type.map(sb))
        .with_protocol_name(outcome.protocol_name.map(sb))
        .with_assignment(outcome.assignment)
}
