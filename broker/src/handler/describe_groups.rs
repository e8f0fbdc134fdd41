//! DescribeGroups: state, protocol and members of each group; unknown groups are reported Dead,
//! as Kafka does before v6.

use super::sb;
use crate::group::state::GroupState;
use crate::state::BrokerState;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};
use std::sync::Arc;

pub(crate) fn handle(
    state: &Arc<BrokerState>,
    req: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let groups = req
        .groups
        .into_iter()
        .map(|id| match state.groups.describe(id.as_str()) {
            Some(g) => DescribedGroup::default()
                .with_group_id(id)
                .with_group_state(sb(g.state.name()))
                .with_protocol_type(sb(g.protocol_type))
                .with_protocol_data(sb(g.protocol_name))
                .with_members(
                    g.members
                        .into_iter()
                        .map(|m| {
                            DescribedGroupMember::default()
                                .with_member_id(sb(m.id))
                                .with_group_instance_id(m.instance_id.map(sb))
                                .with_client_id(sb(m.client_id))
                                .with_client_host(sb(m.client_host))
                                .with_member_metadata(m.metadata)
                                .with_member_assignment(m.assignment)
                        })
                        .collect(),
                ),
            None => DescribedGroup::default()
                .with_group_id(id)
                .with_group_state(sb(GroupState::Dead.name())),
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}
