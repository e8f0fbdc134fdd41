//! DeleteGroups: removes empty groups and their committed offsets.

use crate::state::BrokerState;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};
use std::sync::Arc;

pub(crate) fn handle(state: &Arc<BrokerState>, req: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let results = req
        .groups_names
        .into_iter()
        .map(|g| {
            let code = match state.groups.delete(g.as_str()) {
                Ok(Ok(())) => 0,
                Ok(Err(e)) => e.code(),
                Err(e) => super::storage_error(e).code(),
            };
            DeletableGroupResult::default()
                .with_group_id(g)
                .with_error_code(code)
        })
        .collect();
    DeleteGroupsResponse::default().with_results(results)
}
