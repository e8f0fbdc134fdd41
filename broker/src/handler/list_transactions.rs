//! ListTransactions: every transactional id with its producer id and state, filtered by
//! state names, producer ids and (v1+) the age of the open transaction. Unknown state names
//! are echoed back, as Kafka does.

use super::sb;
use crate::state::BrokerState;
use crate::txn::state::TxnState;
use kafka_protocol::messages::list_transactions_response::TransactionState;
use kafka_protocol::messages::{
    ListTransactionsRequest, ListTransactionsResponse, ProducerId, TransactionalId,
};
use std::sync::Arc;

pub(crate) fn handle(
    state: &Arc<BrokerState>,
    req: ListTransactionsRequest,
) -> ListTransactionsResponse {
    let known = |name: &str| TxnState::ALL.iter().any(|s| s.name() == name);
    let unknown_filters = req
        .state_filters
        .iter()
        .filter(|f| !known(f.as_str()))
        .cloned()
        .collect();
    let now = crate::util::now_ms();
    let states = state
        .txns
        .list()
        .into_iter()
        .filter(|m| {
            req.state_filters.is_empty()
                || req
                    .state_filters
                    .iter()
                    .any(|f| f.as_str() == m.state.name())
        })
        .filter(|m| {
            req.producer_id_filters.is_empty()
                || req.producer_id_filters.contains(&ProducerId(m.producer_id))
        })
        .filter(|m| {
            // Only open transactions older than the duration, when one is given.
            req.duration_filter < 0
                || (m.start_ms >= 0 && now.saturating_sub(m.start_ms) >= req.duration_filter)
        })
        .map(|m| {
            TransactionState::default()
                .with_transactional_id(TransactionalId(sb(m.transactional_id)))
                .with_producer_id(ProducerId(m.producer_id))
                .with_transaction_state(sb(m.state.name()))
        })
        .collect();
    ListTransactionsResponse::default()
        .with_unknown_state_filters(unknown_filters)
        .with_transaction_states(states)
}
