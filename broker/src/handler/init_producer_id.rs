//! InitProducerId: hands idempotent producers a fresh id (epoch 0), or bumps the epoch of the id
//! they already hold (KIP-360) so they can reset their sequences. With a `transactional.id` the
//! transaction coordinator answers: a new epoch that fences older producers of the id, after
//! aborting a transaction they left open.

use crate::state::BrokerState;
use crate::txn::state::InitDecision;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use std::sync::Arc;

/// First version that knows PRODUCER_FENCED (KIP-588).
const PRODUCER_FENCED_VERSION: i16 = 4;

pub(crate) fn handle(
    state: &Arc<BrokerState>,
    version: i16,
    req: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let resp = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    if let Some(id) = req.transactional_id.as_ref().filter(|t| !t.is_empty()) {
        return match transactional(state, id.as_str(), &req) {
            Ok((pid, epoch)) => resp
                .with_producer_id(ProducerId(pid))
                .with_producer_epoch(epoch),
            Err(e) => resp.with_error_code(
                super::fenced_for_version(e, version, PRODUCER_FENCED_VERSION).code(),
            ),
        };
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

/// The transactional path; runs on a blocking thread (it may write and fsync markers).
fn transactional(
    state: &BrokerState,
    id: &str,
    req: &InitProducerIdRequest,
) -> Result<(i64, i16), ResponseError> {
    let timeout = req.transaction_timeout_ms;
    if timeout <= 0 || timeout > state.txns.max_timeout_ms {
        return Err(ResponseError::InvalidTransactionTimeout);
    }
    let expected = (req.producer_id.0 >= 0).then_some((req.producer_id.0, req.producer_epoch));
    // At most twice: once to fence and abort a transaction left open, once more for the epoch.
    for _ in 0..2 {
        let now = crate::util::now_ms();
        let decision = state
            .txns
            .init(id, timeout, expected, now, || state.producer_ids.allocate())
            .map_err(super::storage_error)??;
        match decision {
            InitDecision::Ready(pid, epoch) => return Ok((pid, epoch)),
            InitDecision::AbortFirst(abort) => {
                tracing::info!(
                    transactional_id = id,
                    "fencing an open transaction for a new producer"
                );
                if let Err(e) = crate::txn::complete::finish(state, &abort) {
                    // The sweep retries; meanwhile the id answers CONCURRENT_TRANSACTIONS.
                    tracing::error!(transactional_id = id, error = %e, "cannot write abort markers");
                    return Err(ResponseError::ConcurrentTransactions);
                }
            }
        }
    }
    Err(ResponseError::ConcurrentTransactions)
}
