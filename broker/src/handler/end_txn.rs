//! EndTxn: commits or aborts the producer's open transaction. The Prepare* state is made
//! durable first, then the markers are written to every partition of the transaction and the
//! staged offsets applied (see `txn::complete`), then the answer goes out. Runs on a blocking
//! thread: markers are fsynced.

use crate::state::BrokerState;
use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse};

/// First version that knows PRODUCER_FENCED (KIP-588).
const PRODUCER_FENCED_VERSION: i16 = 2;

pub(crate) fn handle(state: &BrokerState, version: i16, req: EndTxnRequest) -> EndTxnResponse {
    let id = req.transactional_id.as_str();
    let result = state
        .txns
        .end(
            id,
            req.producer_id.0,
            req.producer_epoch,
            req.committed,
            crate::util::now_ms(),
        )
        .map_err(super::storage_error)
        .and_then(|r| r);
    let resp = EndTxnResponse::default()
        .with_producer_id(kafka_protocol::messages::ProducerId(-1))
        .with_producer_epoch(-1);
    match result {
        Ok(Some(work)) => {
            // Once Prepare* is durable the outcome is decided, as in Kafka: if a marker
            // cannot be written now, the sweep finishes the job and the id answers
            // CONCURRENT_TRANSACTIONS until then.
            if let Err(e) = crate::txn::complete::finish(state, &work) {
                tracing::error!(transactional_id = id, error = %e, "cannot write transaction markers; the sweep retries");
            }
            resp
        }
        Ok(None) => resp,
        Err(e) => resp
            .with_error_code(super::fenced_for_version(e, version, PRODUCER_FENCED_VERSION).code()),
    }
}
