//! ListGroups: every classic group, optionally filtered by state (v4+).

use super::sb;
use crate::state::BrokerState;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};
use std::sync::Arc;

pub(crate) fn handle(state: &Arc<BrokerState>, req: ListGroupsRequest) -> ListGroupsResponse {
    let groups = state
        .groups
        .list()
        .into_iter()
        .filter(|(_, s, _)| {
            req.states_filter.is_empty()
                || req
                    .states_filter
                    .iter()
                    .any(|f| f.eq_ignore_ascii_case(s.name()))
        })
        .filter(|_| {
            req.types_filter.is_empty()
                || req
                    .types_filter
                    .iter()
                    .any(|t| t.eq_ignore_ascii_case("classic"))
        })
        .map(|(id, s, protocol_type)| {
            ListedGroup::default()
                .with_group_id(GroupId(sb(id)))
                .with_protocol_type(sb(protocol_type))
                .with_group_state(sb(s.name()))
                .with_group_type(sb("classic"))
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}
