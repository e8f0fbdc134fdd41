//! Heartbeat: keeps a member's session alive and tells it when to rejoin.

use crate::state::BrokerState;
use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};
use std::sync::Arc;

pub(crate) fn handle(state: &Arc<BrokerState>, req: HeartbeatRequest) -> HeartbeatResponse {
    let result = state.groups.heartbeat(
        req.group_id.as_str(),
        req.member_id.as_str(),
        req.group_instance_id.as_deref(),
        req.generation_id,
    );
    HeartbeatResponse::default().with_error_code(result.err().map_or(0, |e| e.code()))
}
