//! Request dispatch: [`handle`] routes a decoded request to the module of its API (one file
//! per Kafka API) and returns the response body, or `None` when the client expects no answer.

mod add_offsets_to_txn;
mod add_partitions_to_txn;
mod alter_configs;
mod api_versions;
mod create_partitions;
mod create_topics;
mod delete_groups;
mod delete_records;
mod delete_topics;
mod describe_configs;
mod describe_groups;
mod describe_transactions;
mod end_txn;
mod fetch;
mod find_coordinator;
mod heartbeat;
mod init_producer_id;
mod join_group;
mod leave_group;
mod list_groups;
mod list_offsets;
mod list_transactions;
mod metadata;
mod offset_commit;
mod offset_fetch;
mod offset_for_leader_epoch;
mod produce;
mod sync_group;
mod txn_offset_commit;

use crate::protocol::Request;
use crate::state::BrokerState;
use kafka_protocol::messages::{RequestKind, ResponseKind};
use kafka_protocol::protocol::StrBytes;
use std::net::SocketAddr;
use std::sync::Arc;

/// What a handler knows about the request besides its body.
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    pub(crate) version: i16,
    pub(crate) client_id: String,
    pub(crate) peer: SocketAddr,
}

/// Runs the handler for one request.
pub(crate) async fn handle(
    state: &Arc<BrokerState>,
    request: Request,
    peer: SocketAddr,
) -> Option<ResponseKind> {
    let ctx = Ctx {
        version: request.header.request_api_version,
        client_id: request
            .header
            .client_id
            .as_ref()
            .map(|c| c.to_string())
            .unwrap_or_default(),
        peer,
    };
    let v = ctx.version;
    Some(match request.body {
        RequestKind::ApiVersions(_) => ResponseKind::ApiVersions(api_versions::handle()),
        RequestKind::Metadata(r) => ResponseKind::Metadata(metadata::handle(state, v, r)),
        RequestKind::Produce(r) if state.fsync_for(r.acks) => {
            // fsync blocks for milliseconds: keep it off the async workers, which serve every
            // other connection.
            let state = state.clone();
            let handled = tokio::task::spawn_blocking(move || produce::handle(&state, v, r))
                .await
                .expect("produce task panicked");
            ResponseKind::Produce(handled?)
        }
        RequestKind::Produce(r) => ResponseKind::Produce(produce::handle(state, v, r)?),
        RequestKind::Fetch(r) => ResponseKind::Fetch(fetch::handle(state, v, r).await),
        RequestKind::ListOffsets(r) => ResponseKind::ListOffsets(list_offsets::handle(state, v, r)),
        RequestKind::OffsetForLeaderEpoch(r) => {
            ResponseKind::OffsetForLeaderEpoch(offset_for_leader_epoch::handle(state, r))
        }
        RequestKind::InitProducerId(r) => {
            // May abort a transaction left open: markers are fsynced, off the async workers.
            let state = state.clone();
            let handled =
                tokio::task::spawn_blocking(move || init_producer_id::handle(&state, v, r))
                    .await
                    .expect("init producer id task panicked");
            ResponseKind::InitProducerId(handled)
        }
        RequestKind::AddPartitionsToTxn(r) => {
            ResponseKind::AddPartitionsToTxn(add_partitions_to_txn::handle(state, v, r))
        }
        RequestKind::AddOffsetsToTxn(r) => {
            ResponseKind::AddOffsetsToTxn(add_offsets_to_txn::handle(state, v, r))
        }
        RequestKind::EndTxn(r) => {
            let state = state.clone();
            let handled = tokio::task::spawn_blocking(move || end_txn::handle(&state, v, r))
                .await
                .expect("end txn task panicked");
            ResponseKind::EndTxn(handled)
        }
        RequestKind::TxnOffsetCommit(r) => {
            ResponseKind::TxnOffsetCommit(txn_offset_commit::handle(state, v, r))
        }
        RequestKind::DescribeTransactions(r) => {
            ResponseKind::DescribeTransactions(describe_transactions::handle(state, r))
        }
        RequestKind::ListTransactions(r) => {
            ResponseKind::ListTransactions(list_transactions::handle(state, r))
        }
        RequestKind::FindCoordinator(r) => {
            ResponseKind::FindCoordinator(find_coordinator::handle(state, v, r))
        }
        RequestKind::JoinGroup(r) => {
            ResponseKind::JoinGroup(join_group::handle(state, &ctx, r).await)
        }
        RequestKind::SyncGroup(r) => ResponseKind::SyncGroup(sync_group::handle(state, r).await),
        RequestKind::Heartbeat(r) => ResponseKind::Heartbeat(heartbeat::handle(state, r)),
        RequestKind::LeaveGroup(r) => ResponseKind::LeaveGroup(leave_group::handle(state, v, r)),
        RequestKind::OffsetCommit(r) => ResponseKind::OffsetCommit(offset_commit::handle(state, r)),
        RequestKind::OffsetFetch(r) => ResponseKind::OffsetFetch(offset_fetch::handle(state, v, r)),
        RequestKind::DescribeGroups(r) => {
            ResponseKind::DescribeGroups(describe_groups::handle(state, r))
        }
        RequestKind::ListGroups(r) => ResponseKind::ListGroups(list_groups::handle(state, r)),
        RequestKind::DeleteGroups(r) => ResponseKind::DeleteGroups(delete_groups::handle(state, r)),
        RequestKind::CreateTopics(r) => {
            ResponseKind::CreateTopics(create_topics::handle(state, v, r))
        }
        RequestKind::DeleteTopics(r) => ResponseKind::DeleteTopics(delete_topics::handle(state, r)),
        RequestKind::DescribeConfigs(r) => {
            ResponseKind::DescribeConfigs(describe_configs::handle(state, r))
        }
        RequestKind::DeleteRecords(r) => {
            ResponseKind::DeleteRecords(delete_records::handle(state, r))
        }
        RequestKind::AlterConfigs(r) => {
            ResponseKind::AlterConfigs(alter_configs::handle_alter(state, r))
        }
        RequestKind::IncrementalAlterConfigs(r) => {
            ResponseKind::IncrementalAlterConfigs(alter_configs::handle_incremental(state, r))
        }
        RequestKind::CreatePartitions(r) => {
            ResponseKind::CreatePartitions(create_partitions::handle(state, r))
        }
        other => {
            // decode_request only produces the kinds above; anything else is a wiring bug.
            tracing::error!(request = ?other, "no handler for request");
            return None;
        }
    })
}

/// A `StrBytes` from an owned string.
pub(crate) fn sb(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

/// Logs a storage failure and turns it into the wire error clients retry on.
pub(crate) fn storage_error(e: crate::Error) -> kafka_protocol::error::ResponseError {
    tracing::error!(error = %e, "storage failure");
    kafka_protocol::error::ResponseError::KafkaStorageError
}

/// PRODUCER_FENCED exists only from a version on (KIP-588, one per API); older clients are told
/// INVALID_PRODUCER_EPOCH instead, as Kafka does.
pub(crate) fn fenced_for_version(
    e: kafka_protocol::error::ResponseError,
    version: i16,
    first_version_with_fenced: i16,
) -> kafka_protocol::error::ResponseError {
    use kafka_protocol::error::ResponseError;
    if e == ResponseError::ProducerFenced && version < first_version_with_fenced {
        ResponseError::InvalidProducerEpoch
    } else {
        e
    }
}

/// A partition's result in a per-partition answer: its index and what happened to it.
pub(crate) type PartitionOutcome<T> = (i32, Result<T, kafka_protocol::error::ResponseError>);

/// Gives `e` to every partition of an offset commit that had not failed on its own: the commit
/// as a whole failed (storage, fencing), so none of its offsets were kept.
pub(crate) fn fail_the_rest<K, T>(
    results: &mut [(K, Vec<PartitionOutcome<T>>)],
    e: kafka_protocol::error::ResponseError,
) {
    for (_, parts) in results.iter_mut() {
        for (_, r) in parts.iter_mut() {
            if r.is_ok() {
                *r = Err(e);
            }
        }
    }
}

/// The wire code of an optional error (0 for none).
pub(crate) fn code(e: Option<kafka_protocol::error::ResponseError>) -> i16 {
    e.map_or(0, |e| e.code())
}
