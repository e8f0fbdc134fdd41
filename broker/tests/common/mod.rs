//! Raw Kafka-protocol helpers shared by the integration tests: a [`Client`] that sends requests
//! through the `kafka-protocol` crate, record batches, and the few calls most tests make.
#![allow(dead_code)] // each test crate uses its own subset

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use std::time::Duration;
use streams_broker::BrokerHandle;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, ToSocketAddrs};

pub(crate) struct Client {
    pub(crate) stream: TcpStream,
    pub(crate) correlation: i32,
}

impl Client {
    pub(crate) async fn connect(broker: &BrokerHandle) -> Client {
        Client::connect_to(broker.local_addr()).await
    }

    pub(crate) async fn connect_to(addr: impl ToSocketAddrs) -> Client {
        Client {
            stream: TcpStream::connect(addr).await.unwrap(),
            correlation: 0,
        }
    }

    pub(crate) async fn send<Req: Encodable>(&mut self, key: ApiKey, version: i16, req: &Req) {
        self.correlation += 1;
        let mut buf = BytesMut::new();
        buf.put_i32(0);
        RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(StrBytes::from_static_str("raw-test")))
            .encode(&mut buf, key.request_header_version(version))
            .unwrap();
        req.encode(&mut buf, version).unwrap();
        let len = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&len.to_be_bytes());
        self.stream.write_all(&buf).await.unwrap();
    }

    /// Reads one response frame, returning the body after the header.
    pub(crate) async fn recv_body(&mut self, header_version: i16) -> Bytes {
        let len = tokio::time::timeout(Duration::from_secs(10), self.stream.read_i32())
            .await
            .expect("response in time")
            .expect("response frame");
        let mut buf = vec![0u8; len as usize];
        self.stream.read_exact(&mut buf).await.unwrap();
        let mut buf = Bytes::from(buf);
        let header = ResponseHeader::decode(&mut buf, header_version).unwrap();
        assert_eq!(header.correlation_id, self.correlation);
        buf
    }

    pub(crate) async fn call<Req: Encodable, Resp: Decodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        req: &Req,
    ) -> Resp {
        self.send(key, version, req).await;
        let mut body = self.recv_body(key.response_header_version(version)).await;
        Resp::decode(&mut body, version).unwrap()
    }

    /// True if the broker closed the connection (EOF) within a few seconds.
    pub(crate) async fn is_closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(
            tokio::time::timeout(Duration::from_secs(5), self.stream.read(&mut b)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }
}

pub(crate) fn batch(n: i32, producer: Option<(i64, i16, i32)>) -> Bytes {
    batch_with_keys(n, producer, |_| true)
}

/// A batch of `n` keyed records with timestamps `ts0, ts0 + 1, ...`.
pub(crate) fn batch_at(n: i32, producer: Option<(i64, i16, i32)>, ts0: i64) -> Bytes {
    encode_batch(n, producer, |_| true, ts0)
}

/// A batch whose record `i` has a key if `keyed(i)`.
pub(crate) fn batch_with_keys(
    n: i32,
    producer: Option<(i64, i16, i32)>,
    keyed: impl Fn(i32) -> bool,
) -> Bytes {
    encode_batch(n, producer, keyed, 1_000)
}

/// A transactional batch of `n` keyed records from `producer` = (id, epoch, base sequence).
pub(crate) fn txn_batch(n: i32, producer: (i64, i16, i32)) -> Bytes {
    encode(n, Some(producer), |_| true, 1_000, true)
}

fn encode_batch(
    n: i32,
    producer: Option<(i64, i16, i32)>,
    keyed: impl Fn(i32) -> bool,
    ts0: i64,
) -> Bytes {
    encode(n, producer, keyed, ts0, false)
}

fn encode(
    n: i32,
    producer: Option<(i64, i16, i32)>,
    keyed: impl Fn(i32) -> bool,
    ts0: i64,
    transactional: bool,
) -> Bytes {
    let (pid, epoch, seq) = producer.unwrap_or((-1, -1, -1));
    let records: Vec<Record> = (0..n)
        .map(|i| Record {
            transactional,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: pid,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: i64::from(i),
            sequence: seq + i,
            timestamp: ts0 + i64::from(i),
            key: keyed(i).then(|| Bytes::from(format!("k{i}"))),
            value: Some(Bytes::from(vec![b'x'; 100])),
            headers: Default::default(),
        })
        .collect();
    let mut out = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut out,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .unwrap();
    out.freeze()
}

pub(crate) fn produce_request(topic: &str, records: Bytes) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records))])])
}

pub(crate) async fn produce(c: &mut Client, topic: &str, records: Bytes) -> (i16, i64) {
    let resp: ProduceResponse = c
        .call(ApiKey::Produce, 9, &produce_request(topic, records))
        .await;
    let p = &resp.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

pub(crate) async fn create_topic(c: &mut Client, topic: &str) {
    let req = CreateTopicsRequest::default().with_topics(vec![
        create_topics_request::CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_num_partitions(1)
            .with_replication_factor(-1),
    ]);
    let resp: CreateTopicsResponse = c.call(ApiKey::CreateTopics, 7, &req).await;
    assert_eq!(resp.topics[0].error_code, 0);
}

pub(crate) async fn high_watermark(c: &mut Client, topic: &str) -> i64 {
    let req = ListOffsetsRequest::default().with_topics(vec![
        list_offsets_request::ListOffsetsTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(vec![
                list_offsets_request::ListOffsetsPartition::default().with_timestamp(-1)
            ]),
    ]);
    let resp: ListOffsetsResponse = c.call(ApiKey::ListOffsets, 7, &req).await;
    resp.topics[0].partitions[0].offset
}

fn topic_name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_string()))
}

/// Creates a one-partition topic with config overrides.
pub(crate) async fn create_topic_with(c: &mut Client, topic: &str, configs: &[(&str, &str)]) {
    let configs = configs
        .iter()
        .map(|(name, value)| {
            create_topics_request::CreatableTopicConfig::default()
                .with_name(StrBytes::from_string(name.to_string()))
                .with_value(Some(StrBytes::from_string(value.to_string())))
        })
        .collect();
    let req = CreateTopicsRequest::default().with_topics(vec![
        create_topics_request::CreatableTopic::default()
            .with_name(topic_name(topic))
            .with_num_partitions(1)
            .with_replication_factor(-1)
            .with_configs(configs),
    ]);
    let resp: CreateTopicsResponse = c.call(ApiKey::CreateTopics, 7, &req).await;
    assert_eq!(resp.topics[0].error_code, 0);
}

/// ListOffsets for partition 0: (error, offset, timestamp).
pub(crate) async fn list_offset(c: &mut Client, topic: &str, timestamp: i64) -> (i16, i64, i64) {
    let req = ListOffsetsRequest::default().with_topics(vec![
        list_offsets_request::ListOffsetsTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(vec![
                list_offsets_request::ListOffsetsPartition::default().with_timestamp(timestamp)
            ]),
    ]);
    let resp: ListOffsetsResponse = c.call(ApiKey::ListOffsets, 7, &req).await;
    let p = &resp.topics[0].partitions[0];
    (p.error_code, p.offset, p.timestamp)
}

/// Fetches partition 0 from `offset` without waiting: (error, records).
pub(crate) async fn fetch(
    c: &mut Client,
    topic: &str,
    offset: i64,
    max_bytes: i32,
) -> (i16, Bytes) {
    let req = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_max_bytes(max_bytes)
        .with_topics(vec![fetch_request::FetchTopic::default()
            .with_topic(topic_name(topic))
            .with_partitions(vec![fetch_request::FetchPartition::default()
                .with_fetch_offset(offset)
                .with_partition_max_bytes(max_bytes)])]);
    let resp: FetchResponse = c.call(ApiKey::Fetch, 12, &req).await;
    let p = &resp.responses[0].partitions[0];
    (p.error_code, p.records.clone().unwrap_or_default())
}

/// DeleteRecords on partition 0 (-1: up to the high watermark): (error, low watermark).
pub(crate) async fn delete_records(c: &mut Client, topic: &str, offset: i64) -> (i16, i64) {
    let req = DeleteRecordsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![delete_records_request::DeleteRecordsTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(vec![
                delete_records_request::DeleteRecordsPartition::default().with_offset(offset),
            ])]);
    let resp: DeleteRecordsResponse = c.call(ApiKey::DeleteRecords, 2, &req).await;
    let p = &resp.topics[0].partitions[0];
    (p.error_code, p.low_watermark)
}

/// A fresh idempotent producer id and epoch.
pub(crate) async fn init_producer_id(c: &mut Client) -> (i64, i16) {
    let init: InitProducerIdResponse = c
        .call(
            ApiKey::InitProducerId,
            4,
            &InitProducerIdRequest::default().with_transaction_timeout_ms(60000),
        )
        .await;
    assert_eq!(init.error_code, 0);
    (init.producer_id.0, init.producer_epoch)
}

/// The `streams-broker` binary running on a free port; killed (SIGKILL) when dropped, so a
/// failing test leaves no process behind.
pub(crate) struct BrokerProcess {
    child: std::process::Child,
    pub(crate) addr: String,
}

impl BrokerProcess {
    pub(crate) fn start(data_dir: &std::path::Path) -> BrokerProcess {
        use std::io::BufRead;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_streams-broker"))
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(["--partitions", "1"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("broker binary starts");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let Some(addr) = line.trim().strip_prefix("listening on ") else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("unexpected first line {line:?}");
        };
        BrokerProcess {
            addr: addr.to_string(),
            child,
        }
    }

    /// kill -9, as a crash.
    pub(crate) fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
