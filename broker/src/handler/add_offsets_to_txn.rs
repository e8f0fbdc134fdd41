//! AddOffsetsToTxn: adds a consumer group to the producer's open transaction, so that its
//! TxnOffsetCommit offsets are applied when the transaction commits.

use crate::state::BrokerState;
use kafka_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse};
use std::sync::Arc;

/// First version that knows PRODUCER_FENCED (KIP-588).
const PRODUCER_FENCED_VERSION: i16 = 2;

pub(crate) fn handle(
    state: &Arc<BrokerState>,
    version: i16,
    req: AddOffsetsToTxnRequest,
) -> AddOffsetsToTxnResponse {
    let result = state
        .txns
        .add_group(
            req.transactional_id.as_str(),
            req.producer_id.0,
            req.producer_epoch,
            req.group_id.as_str(),
            crate::util::now_ms(),
        )
        .map_err(super::storage_error)
        .and_then(|r| r);
    let error = result
        .err()
        .map(|e| super::fenced_for_version(e, version, PRODUCER_FENCED_VERSION));
    AddOffsetsToTxnResponse::default().with_error_code(super::code(error))
}
