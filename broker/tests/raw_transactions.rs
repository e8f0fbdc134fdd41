//! The transaction APIs at the protocol level, through raw requests: the error codes Kafka
//! returns for misuse and fencing, what read_committed Fetch, ListOffsets and OffsetFetch
//! report while a transaction is open and after it aborts, and the admin APIs.

mod common;

use bytes::Bytes;
use common::{create_topic, produce_request, txn_batch, Client};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use streams_broker::{Broker, BrokerConfig};

const INVALID_PRODUCER_EPOCH: i16 = 47;
const INVALID_TXN_STATE: i16 = 48;
const INVALID_PRODUCER_ID_MAPPING: i16 = 49;
const INVALID_TRANSACTION_TIMEOUT: i16 = 50;
const UNSTABLE_OFFSET_COMMIT: i16 = 88;
const PRODUCER_FENCED: i16 = 90;
const TRANSACTIONAL_ID_NOT_FOUND: i16 = 105;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

async fn init(c: &mut Client, id: &str, timeout_ms: i32) -> InitProducerIdResponse {
    let req = InitProducerIdRequest::default()
        .with_transactional_id(Some(TransactionalId(s(id))))
        .with_transaction_timeout_ms(timeout_ms);
    c.call(ApiKey::InitProducerId, 4, &req).await
}

async fn add_partition(c: &mut Client, version: i16, pid: i64, epoch: i16, topic: &str) -> i16 {
    let req = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(TransactionalId(s("tx")))
        .with_v3_and_below_producer_id(ProducerId(pid))
        .with_v3_and_below_producer_epoch(epoch)
        .with_v3_and_below_topics(vec![
            add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                .with_name(TopicName(s(topic)))
                .with_partitions(vec![0]),
        ]);
    let resp: AddPartitionsToTxnResponse = c.call(ApiKey::AddPartitionsToTxn, version, &req).await;
    resp.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code
}

async fn end(c: &mut Client, pid: i64, epoch: i16, commit: bool) -> i16 {
    let req = EndTxnRequest::default()
        .with_transactional_id(TransactionalId(s("tx")))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_committed(commit);
    let resp: EndTxnResponse = c.call(ApiKey::EndTxn, 1, &req).await;
    resp.error_code
}

async fn produce(c: &mut Client, topic: &str, records: Bytes) -> i16 {
    let resp: ProduceResponse = c
        .call(ApiKey::Produce, 9, &produce_request(topic, records))
        .await;
    resp.responses[0].partition_responses[0].error_code
}

/// Fetch v12 of partition 0 from offset 0 with an isolation level.
async fn fetch(c: &mut Client, topic: &str, isolation: i8) -> fetch_response::PartitionData {
    let req = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_isolation_level(isolation)
        .with_topics(vec![fetch_request::FetchTopic::default()
            .with_topic(TopicName(s(topic)))
            .with_partitions(vec![
                fetch_request::FetchPartition::default().with_partition_max_bytes(1 << 20)
            ])]);
    let resp: FetchResponse = c.call(ApiKey::Fetch, 12, &req).await;
    resp.responses[0].partitions[0].clone()
}

async fn latest(c: &mut Client, topic: &str, isolation: i8) -> i64 {
    let req = ListOffsetsRequest::default()
        .with_isolation_level(isolation)
        .with_topics(vec![list_offsets_request::ListOffsetsTopic::default()
            .with_name(TopicName(s(topic)))
            .with_partitions(vec![
                list_offsets_request::ListOffsetsPartition::default().with_timestamp(-1),
            ])]);
    let resp: ListOffsetsResponse = c.call(ApiKey::ListOffsets, 7, &req).await;
    resp.topics[0].partitions[0].offset
}

/// OffsetFetch v7 of group "g", partition 0 of `topic`: (error, offset).
async fn offset_fetch(c: &mut Client, topic: &str, require_stable: bool) -> (i16, i64) {
    let req = OffsetFetchRequest::default()
        .with_group_id(GroupId(s("g")))
        .with_require_stable(require_stable)
        .with_topics(Some(vec![
            offset_fetch_request::OffsetFetchRequestTopic::default()
                .with_name(TopicName(s(topic)))
                .with_partition_indexes(vec![0]),
        ]));
    let resp: OffsetFetchResponse = c.call(ApiKey::OffsetFetch, 7, &req).await;
    let p = &resp.topics[0].partitions[0];
    (p.error_code, p.committed_offset)
}

#[tokio::test]
async fn transaction_apis_answer_as_kafka_does() {
    let broker = Broker::start(BrokerConfig::default()).await.unwrap();
    let mut c = Client::connect(&broker).await;
    create_topic(&mut c, "t").await;
    create_topic(&mut c, "other").await;

    // Timeouts above transaction.max.timeout.ms (15 min) or not positive are refused.
    assert_eq!(
        init(&mut c, "tx", 900_001).await.error_code,
        INVALID_TRANSACTION_TIMEOUT
    );
    assert_eq!(
        init(&mut c, "tx", 0).await.error_code,
        INVALID_TRANSACTION_TIMEOUT
    );
    let first = init(&mut c, "tx", 60_000).await;
    assert_eq!((first.error_code, first.producer_epoch), (0, 0));
    let pid = first.producer_id.0;
    let again = init(&mut c, "tx", 60_000).await;
    assert_eq!((again.producer_id.0, again.producer_epoch), (pid, 1));

    // The fenced epoch: INVALID_PRODUCER_EPOCH before v2, PRODUCER_FENCED from v2.
    assert_eq!(
        add_partition(&mut c, 0, pid, 0, "t").await,
        INVALID_PRODUCER_EPOCH
    );
    assert_eq!(add_partition(&mut c, 2, pid, 0, "t").await, PRODUCER_FENCED);
    assert_eq!(
        add_partition(&mut c, 0, pid + 1, 1, "t").await,
        INVALID_PRODUCER_ID_MAPPING
    );
    assert_eq!(
        end(&mut c, pid, 1, true).await,
        INVALID_TXN_STATE,
        "nothing open"
    );

    // Only partitions in the transaction take its batches.
    assert_eq!(
        produce(&mut c, "t", txn_batch(2, (pid, 1, 0))).await,
        INVALID_TXN_STATE
    );
    assert_eq!(add_partition(&mut c, 0, pid, 1, "t").await, 0);
    assert_eq!(produce(&mut c, "t", txn_batch(2, (pid, 1, 0))).await, 0);
    assert_eq!(
        produce(&mut c, "other", txn_batch(1, (pid, 1, 2))).await,
        INVALID_TXN_STATE
    );

    // Open: read_committed sees nothing and a stable offset of 0.
    let open = fetch(&mut c, "t", 1).await;
    assert_eq!((open.high_watermark, open.last_stable_offset), (2, 0));
    assert!(open.records.unwrap().is_empty());
    assert!(!fetch(&mut c, "t", 0).await.records.unwrap().is_empty());
    assert_eq!(latest(&mut c, "t", 1).await, 0);
    assert_eq!(latest(&mut c, "t", 0).await, 2);

    // Offsets staged in the transaction are unstable until it ends.
    let add_offsets = AddOffsetsToTxnRequest::default()
        .with_transactional_id(TransactionalId(s("tx")))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(1)
        .with_group_id(GroupId(s("g")));
    let resp: AddOffsetsToTxnResponse = c.call(ApiKey::AddOffsetsToTxn, 0, &add_offsets).await;
    assert_eq!(resp.error_code, 0);
    let commit = TxnOffsetCommitRequest::default()
        .with_transactional_id(TransactionalId(s("tx")))
        .with_group_id(GroupId(s("g")))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(1)
        .with_generation_id(-1)
        .with_topics(vec![
            txn_offset_commit_request::TxnOffsetCommitRequestTopic::default()
                .with_name(TopicName(s("t")))
                .with_partitions(vec![
                    txn_offset_commit_request::TxnOffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(2),
                ]),
        ]);
    let resp: TxnOffsetCommitResponse = c.call(ApiKey::TxnOffsetCommit, 3, &commit).await;
    assert_eq!(resp.topics[0].partitions[0].error_code, 0);
    // KIP-447: a generation the group does not have is refused.
    let zombie = commit.clone().with_generation_id(5);
    let resp: TxnOffsetCommitResponse = c.call(ApiKey::TxnOffsetCommit, 3, &zombie).await;
    assert_eq!(
        resp.topics[0].partitions[0].error_code, 22,
        "ILLEGAL_GENERATION"
    );
    assert_eq!(
        offset_fetch(&mut c, "t", true).await,
        (UNSTABLE_OFFSET_COMMIT, -1)
    );
    assert_eq!(offset_fetch(&mut c, "t", false).await, (0, -1));

    // The admin view.
    let describe = DescribeTransactionsRequest::default()
        .with_transactional_ids(vec![TransactionalId(s("tx")), TransactionalId(s("nope"))]);
    let resp: DescribeTransactionsResponse =
        c.call(ApiKey::DescribeTransactions, 0, &describe).await;
    let tx = &resp.transaction_states[0];
    assert_eq!(tx.transaction_state.as_str(), "Ongoing");
    assert_eq!(
        (
            tx.producer_id.0,
            tx.producer_epoch,
            tx.transaction_timeout_ms
        ),
        (pid, 1, 60_000)
    );
    assert_eq!(tx.topics.len(), 1);
    assert_eq!(
        (tx.topics[0].topic.as_str(), tx.topics[0].partitions.clone()),
        ("t", vec![0])
    );
    assert_eq!(
        resp.transaction_states[1].error_code,
        TRANSACTIONAL_ID_NOT_FOUND
    );
    let list =
        ListTransactionsRequest::default().with_state_filters(vec![s("Ongoing"), s("Bogus")]);
    let resp: ListTransactionsResponse = c.call(ApiKey::ListTransactions, 1, &list).await;
    assert_eq!(resp.unknown_state_filters, vec![s("Bogus")]);
    assert_eq!(resp.transaction_states.len(), 1);
    assert_eq!(resp.transaction_states[0].transactional_id.as_str(), "tx");

    // Abort: the data and the marker are below the stable offset, and listed as aborted.
    assert_eq!(end(&mut c, pid, 1, false).await, 0);
    assert_eq!(end(&mut c, pid, 1, false).await, 0, "a retry");
    assert_eq!(end(&mut c, pid, 1, true).await, INVALID_TXN_STATE);
    let aborted = fetch(&mut c, "t", 1).await;
    assert_eq!((aborted.high_watermark, aborted.last_stable_offset), (3, 3));
    let list = aborted.aborted_transactions.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!((list[0].producer_id.0, list[0].first_offset), (pid, 0));
    assert_eq!(latest(&mut c, "t", 1).await, 3);
    assert_eq!(
        offset_fetch(&mut c, "t", true).await,
        (0, -1),
        "dropped with the abort"
    );
    let list = ListTransactionsRequest::default();
    let resp: ListTransactionsResponse = c.call(ApiKey::ListTransactions, 1, &list).await;
    assert_eq!(
        resp.transaction_states[0].transaction_state.as_str(),
        "CompleteAbort"
    );
    broker.shutdown().await.unwrap();
}
