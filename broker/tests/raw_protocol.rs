//! Tests that speak the Kafka protocol directly (through the `kafka-protocol` crate) to check
//! what a well-behaved client cannot provoke: corrupt batches, duplicates, bad frames.

mod common;

use bytes::{Buf, BufMut, BytesMut};
use common::*;
use kafka_protocol::messages::api_versions_response::ApiVersionsResponse;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use std::time::{Duration, Instant};
use streams_broker::{Broker, BrokerConfig};
use tokio::io::AsyncWriteExt;

#[tokio::test]
async fn corrupt_and_oversized_batches_are_refused_and_not_written() {
    let broker = Broker::start(BrokerConfig {
        max_message_bytes: 1000,
        ..Default::default()
    })
    .await
    .unwrap();
    let mut c = Client::connect(&broker).await;
    create_topic(&mut c, "crc").await;
    let good = batch(2, None);
    let mut bad = BytesMut::from(&good[..]);
    let last = bad.len() - 1;
    bad[last] ^= 0x55;
    assert_eq!(
        produce(&mut c, "crc", bad.freeze()).await.0,
        2,
        "CORRUPT_MESSAGE"
    );
    // Truncated batch.
    assert_eq!(
        produce(&mut c, "crc", good.slice(..good.len() - 3)).await.0,
        2
    );
    assert_eq!(
        produce(&mut c, "crc", batch(20, None)).await.0,
        10,
        "MESSAGE_TOO_LARGE"
    );
    assert_eq!(
        high_watermark(&mut c, "crc").await,
        0,
        "nothing was written"
    );
    assert_eq!(produce(&mut c, "crc", good).await, (0, 0));
    assert_eq!(high_watermark(&mut c, "crc").await, 2);
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn idempotent_retry_gets_original_offset_and_gaps_are_refused() {
    let broker = Broker::start(BrokerConfig::default()).await.unwrap();
    let mut c = Client::connect(&broker).await;
    create_topic(&mut c, "idem").await;
    let init: InitProducerIdResponse = c
        .call(
            ApiKey::InitProducerId,
            4,
            &InitProducerIdRequest::default().with_transaction_timeout_ms(60000),
        )
        .await;
    assert_eq!(init.error_code, 0);
    let pid = init.producer_id.0;
    assert!(pid >= 0);
    let first = batch(3, Some((pid, init.producer_epoch, 0)));
    assert_eq!(produce(&mut c, "idem", first.clone()).await, (0, 0));
    assert_eq!(
        produce(&mut c, "idem", batch(2, Some((pid, 0, 3)))).await,
        (0, 3)
    );
    // A retry of the first batch: same offsets, not written again.
    assert_eq!(produce(&mut c, "idem", first).await, (0, 0));
    assert_eq!(high_watermark(&mut c, "idem").await, 5);
    // A gap in sequence numbers.
    assert_eq!(
        produce(&mut c, "idem", batch(1, Some((pid, 0, 9)))).await.0,
        45,
        "OUT_OF_ORDER_SEQUENCE_NUMBER"
    );
    assert_eq!(high_watermark(&mut c, "idem").await, 5);
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn bad_frames_close_only_their_connection() {
    let broker = Broker::start(BrokerConfig {
        max_request_bytes: 1 << 20,
        ..Default::default()
    })
    .await
    .unwrap();
    let mut healthy = Client::connect(&broker).await;
    let v: ApiVersionsResponse = healthy
        .call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())
        .await;
    assert_eq!(v.error_code, 0);

    // A length prefix over socket.request.max.bytes: closed before anything is allocated.
    let mut huge = Client::connect(&broker).await;
    huge.stream
        .write_all(&(i32::MAX).to_be_bytes())
        .await
        .unwrap();
    assert!(huge.is_closed().await);

    // Garbage that is a valid frame but no request.
    let mut garbage = Client::connect(&broker).await;
    garbage
        .stream
        .write_all(&[0, 0, 0, 6, 0x7f, 0x7f, 0, 0, 0, 1])
        .await
        .unwrap();
    assert!(garbage.is_closed().await);

    // A Metadata request whose topics array claims i32::MAX entries.
    let mut hostile = Client::connect(&broker).await;
    let mut frame = BytesMut::new();
    frame.put_i32(0);
    RequestHeader::default()
        .with_request_api_key(ApiKey::Metadata as i16)
        .with_request_api_version(1)
        .with_correlation_id(1)
        .encode(&mut frame, 1)
        .unwrap();
    frame.put_i32(i32::MAX);
    let len = (frame.len() - 4) as i32;
    frame[..4].copy_from_slice(&len.to_be_bytes());
    hostile.stream.write_all(&frame).await.unwrap();
    assert!(hostile.is_closed().await);

    // A frame cut short by the client going away.
    let mut truncated = Client::connect(&broker).await;
    truncated
        .stream
        .write_all(&[0, 0, 0, 100, 0, 18, 0, 3])
        .await
        .unwrap();
    drop(truncated);

    // The first connection is still served.
    let v: ApiVersionsResponse = healthy
        .call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())
        .await;
    assert_eq!(v.error_code, 0);
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn unknown_api_versions_version_gets_v0_error_with_our_range() {
    let broker = Broker::start(BrokerConfig::default()).await.unwrap();
    let mut c = Client::connect(&broker).await;
    c.send(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())
        .await;
    // Same request but claiming version 42: rewrite the version field in a fresh frame.
    let mut frame = BytesMut::new();
    frame.put_i32(0);
    RequestHeader::default()
        .with_request_api_key(ApiKey::ApiVersions as i16)
        .with_request_api_version(42)
        .with_correlation_id(2)
        .encode(&mut frame, 2)
        .unwrap();
    frame.put_u8(0);
    let len = (frame.len() - 4) as i32;
    frame[..4].copy_from_slice(&len.to_be_bytes());
    let _ = c.recv_body(0).await;
    c.stream.write_all(&frame).await.unwrap();
    c.correlation = 2;
    let mut body = c.recv_body(0).await;
    let resp = ApiVersionsResponse::decode(&mut body, 0).unwrap();
    assert_eq!(resp.error_code, 35);
    assert!(resp
        .api_keys
        .iter()
        .any(|k| k.api_key == ApiKey::ApiVersions as i16 && k.max_version == 4));
    assert!(!body.has_remaining());
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn fetch_long_polls_and_wakes_on_produce() {
    let broker = Broker::start(BrokerConfig::default()).await.unwrap();
    let mut c = Client::connect(&broker).await;
    create_topic(&mut c, "poll").await;
    let fetch = FetchRequest::default()
        .with_max_wait_ms(10_000)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_topics(vec![fetch_request::FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_static_str("poll")))
            .with_partitions(vec![
                fetch_request::FetchPartition::default().with_partition_max_bytes(1 << 20)
            ])]);
    // An empty partition answers with records = Some(empty) once max_wait passes.
    let short = fetch.clone().with_max_wait_ms(100);
    let resp: FetchResponse = c.call(ApiKey::Fetch, 12, &short).await;
    let p = &resp.responses[0].partitions[0];
    assert_eq!(p.records.as_ref().map(|r| r.len()), Some(0));
    assert_eq!((p.high_watermark, p.last_stable_offset), (0, 0));

    let started = Instant::now();
    c.send(ApiKey::Fetch, 12, &fetch).await;
    let mut producer = Client::connect(&broker).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent = batch(3, None);
    assert_eq!(produce(&mut producer, "poll", sent.clone()).await, (0, 0));
    let mut body = c.recv_body(ApiKey::Fetch.response_header_version(12)).await;
    let resp = FetchResponse::decode(&mut body, 12).unwrap();
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(300) && elapsed < Duration::from_secs(5),
        "{elapsed:?}"
    );
    let p = &resp.responses[0].partitions[0];
    assert_eq!(p.high_watermark, 3);
    assert_eq!(
        p.records.as_ref().unwrap(),
        &sent,
        "stored bytes are served as sent"
    );
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_second_broker_cannot_open_the_same_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let config = BrokerConfig {
        data_dir: Some(dir.path().to_path_buf()),
        ..Default::default()
    };
    let first = Broker::start(config.clone()).await.unwrap();
    let second = Broker::start(config.clone()).await;
    assert!(
        matches!(second, Err(streams_broker::Error::DataDirLocked { .. })),
        "{second:?}"
    );
    first.shutdown().await.unwrap();
    Broker::start(config)
        .await
        .unwrap()
        .shutdown()
        .await
        .unwrap();
}

#[tokio::test]
async fn incremental_alter_configs_sets_appends_and_deletes_topic_overrides() {
    use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
    use kafka_protocol::messages::incremental_alter_configs_request::{
        AlterConfigsResource, AlterableConfig,
    };
    let broker = Broker::start(BrokerConfig::default()).await.unwrap();
    let mut c = Client::connect(&broker).await;
    create_topic(&mut c, "alter").await;
    let op = |name: &'static str, op: i8, value: Option<&'static str>| {
        AlterableConfig::default()
            .with_name(StrBytes::from_static_str(name))
            .with_config_operation(op)
            .with_value(value.map(StrBytes::from_static_str))
    };
    let alter = |validate_only: bool, configs: Vec<AlterableConfig>| {
        IncrementalAlterConfigsRequest::default()
            .with_validate_only(validate_only)
            .with_resources(vec![AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(StrBytes::from_static_str("alter"))
                .with_configs(configs)])
    };
    let describe =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_static_str("alter"))
            .with_configuration_keys(None)]);
    // set retention.ms, append compact to cleanup.policy (default "delete")
    let resp: IncrementalAlterConfigsResponse = c
        .call(
            ApiKey::IncrementalAlterConfigs,
            1,
            &alter(
                false,
                vec![
                    op("retention.ms", 0, Some("5000")),
                    op("cleanup.policy", 2, Some("compact")),
                ],
            ),
        )
        .await;
    assert_eq!(resp.responses[0].error_code, 0);
    // validate_only changes nothing
    let resp: IncrementalAlterConfigsResponse = c
        .call(
            ApiKey::IncrementalAlterConfigs,
            1,
            &alter(true, vec![op("retention.ms", 1, None)]),
        )
        .await;
    assert_eq!(resp.responses[0].error_code, 0);
    let value = |resp: &DescribeConfigsResponse, name: &str| {
        resp.results[0]
            .configs
            .iter()
            .find(|e| e.name.as_str() == name)
            .and_then(|e| e.value.as_ref().map(|v| v.to_string()))
    };
    let described: DescribeConfigsResponse = c.call(ApiKey::DescribeConfigs, 4, &describe).await;
    assert_eq!(value(&described, "retention.ms").as_deref(), Some("5000"));
    assert_eq!(
        value(&described, "cleanup.policy").as_deref(),
        Some("delete,compact")
    );
    // delete the override: back to the default
    let resp: IncrementalAlterConfigsResponse = c
        .call(
            ApiKey::IncrementalAlterConfigs,
            0,
            &alter(false, vec![op("retention.ms", 1, None)]),
        )
        .await;
    assert_eq!(resp.responses[0].error_code, 0);
    let described: DescribeConfigsResponse = c.call(ApiKey::DescribeConfigs, 4, &describe).await;
    assert_eq!(
        value(&described, "retention.ms").as_deref(),
        Some("604800000")
    );
    // an unknown topic is refused
    let mut unknown = alter(false, vec![op("retention.ms", 0, Some("1"))]);
    unknown.resources[0].resource_name = StrBytes::from_static_str("no-such-topic");
    let resp: IncrementalAlterConfigsResponse =
        c.call(ApiKey::IncrementalAlterConfigs, 1, &unknown).await;
    assert_eq!(resp.responses[0].error_code, 3);
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn compacted_topics_refuse_batches_with_keyless_records() {
    let broker = Broker::start(BrokerConfig::default()).await.unwrap();
    let mut c = Client::connect(&broker).await;
    let req = CreateTopicsRequest::default().with_topics(vec![
        create_topics_request::CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("compacted")))
            .with_num_partitions(1)
            .with_replication_factor(-1)
            .with_configs(vec![create_topics_request::CreatableTopicConfig::default()
                .with_name(StrBytes::from_static_str("cleanup.policy"))
                .with_value(Some(StrBytes::from_static_str("compact")))]),
    ]);
    let resp: CreateTopicsResponse = c.call(ApiKey::CreateTopics, 7, &req).await;
    assert_eq!(resp.topics[0].error_code, 0);

    // Records 1 and 3 have no key: the whole batch is refused, naming them (KIP-467).
    let keyless = batch_with_keys(4, None, |i| i % 2 == 0);
    let resp: ProduceResponse = c
        .call(
            ApiKey::Produce,
            9,
            &produce_request("compacted", keyless.clone()),
        )
        .await;
    let p = &resp.responses[0].partition_responses[0];
    assert_eq!(p.error_code, 87, "INVALID_RECORD");
    let indexes: Vec<i32> = p.record_errors.iter().map(|e| e.batch_index).collect();
    assert_eq!(indexes, vec![1, 3]);
    assert!(p.record_errors[0]
        .batch_index_error_message
        .as_ref()
        .is_some_and(|m| m.contains("without key")));
    // Before v8 there is no room for record errors: the code alone.
    let resp: ProduceResponse = c
        .call(ApiKey::Produce, 7, &produce_request("compacted", keyless))
        .await;
    assert_eq!(resp.responses[0].partition_responses[0].error_code, 87);
    assert_eq!(
        high_watermark(&mut c, "compacted").await,
        0,
        "nothing written"
    );

    assert_eq!(produce(&mut c, "compacted", batch(3, None)).await, (0, 0));
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn partition_counts_are_capped_at_create_and_grow() {
    let broker = Broker::start(BrokerConfig::default()).await.unwrap();
    let mut c = Client::connect(&broker).await;
    let create = |name: &'static str, partitions: i32| {
        CreateTopicsRequest::default().with_topics(vec![
            create_topics_request::CreatableTopic::default()
                .with_name(TopicName(StrBytes::from_static_str(name)))
                .with_num_partitions(partitions)
                .with_replication_factor(-1),
        ])
    };
    let resp: CreateTopicsResponse = c
        .call(ApiKey::CreateTopics, 7, &create("huge", i32::MAX))
        .await;
    let t = &resp.topics[0];
    assert_eq!(t.error_code, 37, "INVALID_PARTITIONS");
    assert_eq!(
        t.error_message.as_deref(),
        Some("2147483647 partitions asked for; this broker allows at most 10000 per topic")
    );
    let resp: CreateTopicsResponse = c.call(ApiKey::CreateTopics, 7, &create("small", 2)).await;
    assert_eq!(resp.topics[0].error_code, 0);

    let grow = |count: i32| {
        CreatePartitionsRequest::default()
            .with_timeout_ms(1000)
            .with_topics(vec![
                create_partitions_request::CreatePartitionsTopic::default()
                    .with_name(TopicName(StrBytes::from_static_str("small")))
                    .with_count(count),
            ])
    };
    let resp: CreatePartitionsResponse = c.call(ApiKey::CreatePartitions, 3, &grow(10_001)).await;
    assert_eq!(resp.results[0].error_code, 37, "INVALID_PARTITIONS");
    assert_eq!(
        resp.results[0].error_message.as_deref(),
        Some("10001 partitions asked for; this broker allows at most 10000 per topic")
    );
    let resp: CreatePartitionsResponse = c.call(ApiKey::CreatePartitions, 3, &grow(3)).await;
    assert_eq!(resp.results[0].error_code, 0);
    let md: MetadataResponse = c
        .call(
            ApiKey::Metadata,
            9,
            &MetadataRequest::default()
                .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
                )
                .with_name(Some(TopicName(StrBytes::from_static_str("small"))))])),
        )
        .await;
    assert_eq!(md.topics[0].partitions.len(), 3);
    broker.shutdown().await.unwrap();
}
