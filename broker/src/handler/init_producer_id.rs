//! InitProducerId: hands idempotent producers a fresh id (epoch 0), or bumps the epoch of the id
//! they already hold (KIP-360) so they can reset their sequences.

use crate::state::BrokerState;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use std::sync::Arc;

pub(crate) fn handle(
    state: &Arc<BrokerState>,
    req: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let resp = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    if req.transactional_id.as_ref().is_some_and(|t| !t.is_empty()) {
        // Transactions (exactly-once) are not implemented yet: fail fast and clearly instead of
        // pretending, so transactional clients do not hang.
        return resp.with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code());
    }
    if req.producer_id.0 >= 0 && req.producer_epoch >= 0 {
        if req.producer_epoch >= i16::MAX - 1 {
            // Epoch exhausted: a new id instead.
        } else {
            return resp
                .with_producer_id(req.producer_id)
                .with_producer_epoch(req.producer_epoch + 1);
        }
    }
    match state.producer_ids.allocate() {
        Ok(id) => resp.with_producer_id(ProducerId(id)).with_producer_epoch(0),
        Err(e) => resp.with_error_code(super::storage_error(e).code()),
    }
}
