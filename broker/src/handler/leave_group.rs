//! LeaveGroup: removes members (one before v3, a batch identified by member or instance id
//! from v3) and starts a rebalance for the rest.

use crate::state::BrokerState;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};
use std::sync::Arc;

pub(crate) fn handle(
    state: &Arc<BrokerState>,
    version: i16,
    req: LeaveGroupRequest,
) -> LeaveGroupResponse {
    let group = req.group_id.as_str();
    if version < 3 {
        let result = state.groups.leave(group, req.member_id.as_str(), None);
        return LeaveGroupResponse::default().with_error_code(result.err().map_or(0, |e| e.code()));
    }
    let members = req
        .members
        .into_iter()
        .map(|m| {
            let result =
                state
                    .groups
                    .leave(group, m.member_id.as_str(), m.group_instance_id.as_deref());
            MemberResponse::default()
                .with_member_id(m.member_id)
                .with_group_instance_id(m.group_instance_id)
                .with_error_code(result.err().map_or(0, |e| e.code()))
        })
        .collect();
    LeaveGroupResponse::default().with_members(members)
}
