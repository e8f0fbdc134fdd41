//! A deterministic, stable-toolchain stand-in for the cargo-fuzz targets: mutates valid requests
//! of every supported API and feeds them to the same entry point (`fuzzing::handle_frame`), and
//! mutated record batches to `fuzzing::handle_batch` (which gives them a valid CRC); neither
//! may panic.

use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, StrBytes};
use streams_broker::fuzzing::{handle_batch, handle_frame};

fn frame<R: Encodable>(key: ApiKey, version: i16, req: &R) -> Vec<u8> {
    let mut b = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(1)
        .with_client_id(Some(StrBytes::from_static_str("fuzz")))
        .encode(&mut b, key.request_header_version(version))
        .unwrap();
    req.encode(&mut b, version).unwrap();
    b.to_vec()
}

fn seeds() -> Vec<Vec<u8>> {
    let topic = TopicName(StrBytes::from_static_str("fz"));
    let group = GroupId(StrBytes::from_static_str("g"));
    let mut out = Vec::new();
    for v in [0, 4, 9, 12] {
        out.push(frame(
            ApiKey::Metadata,
            v,
            &MetadataRequest::default().with_topics(Some(vec![
                metadata_request::MetadataRequestTopic::default().with_name(Some(topic.clone())),
            ])),
        ));
    }
    for v in [3, 9, 11] {
        let mut records = BytesMut::new();
        records.put_bytes(0, 61);
        out.push(frame(
            ApiKey::Produce,
            v,
            &ProduceRequest::default().with_acks(1).with_topic_data(vec![
                produce_request::TopicProduceData::default()
                    .with_name(topic.clone())
                    .with_partition_data(vec![produce_request::PartitionProduceData::default()
                        .with_records(Some(records.freeze()))]),
            ]),
        ));
    }
    for v in [4, 12] {
        out.push(frame(
            ApiKey::Fetch,
            v,
            &FetchRequest::default()
                .with_max_wait_ms(1)
                .with_topics(vec![fetch_request::FetchTopic::default()
                    .with_topic(topic.clone())
                    .with_partitions(vec![fetch_request::FetchPartition::default()])]),
        ));
    }
    for v in [0, 5, 9] {
        out.push(frame(
            ApiKey::JoinGroup,
            v,
            &JoinGroupRequest::default()
                .with_group_id(group.clone())
                .with_session_timeout_ms(10_000)
                .with_protocol_type(StrBytes::from_static_str("consumer"))
                .with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default(
                )
                .with_name(StrBytes::from_static_str("range"))]),
        ));
    }
    out.push(frame(
        ApiKey::SyncGroup,
        5,
        &SyncGroupRequest::default().with_group_id(group.clone()),
    ));
    out.push(frame(
        ApiKey::Heartbeat,
        4,
        &HeartbeatRequest::default().with_group_id(group.clone()),
    ));
    out.push(frame(
        ApiKey::OffsetCommit,
        8,
        &OffsetCommitRequest::default().with_group_id(group.clone()),
    ));
    out.push(frame(
        ApiKey::OffsetFetch,
        8,
        &OffsetFetchRequest::default(),
    ));
    out.push(frame(
        ApiKey::ListOffsets,
        7,
        &ListOffsetsRequest::default(),
    ));
    out.push(frame(
        ApiKey::CreateTopics,
        7,
        &CreateTopicsRequest::default().with_topics(vec![
            create_topics_request::CreatableTopic::default()
                .with_name(topic.clone())
                .with_num_partitions(2)
                .with_replication_factor(-1),
        ]),
    ));
    out.push(frame(
        ApiKey::DescribeConfigs,
        4,
        &DescribeConfigsRequest::default(),
    ));
    out.push(frame(
        ApiKey::ApiVersions,
        3,
        &ApiVersionsRequest::default(),
    ));
    out.push(frame(
        ApiKey::InitProducerId,
        4,
        &InitProducerIdRequest::default(),
    ));
    out.push(frame(ApiKey::LeaveGroup, 5, &LeaveGroupRequest::default()));
    out.push(frame(
        ApiKey::DescribeGroups,
        5,
        &DescribeGroupsRequest::default(),
    ));
    out.push(frame(ApiKey::ListGroups, 4, &ListGroupsRequest::default()));
    out.push(frame(
        ApiKey::FindCoordinator,
        4,
        &FindCoordinatorRequest::default(),
    ));
    out.push(frame(
        ApiKey::DeleteRecords,
        2,
        &DeleteRecordsRequest::default(),
    ));
    out.push(frame(
        ApiKey::CreatePartitions,
        3,
        &CreatePartitionsRequest::default(),
    ));
    out.push(frame(
        ApiKey::OffsetForLeaderEpoch,
        4,
        &OffsetForLeaderEpochRequest::default(),
    ));
    out
}

/// xorshift64*: reproducible without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut b = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        match rng.below(6) {
            0 if !b.is_empty() => {
                let i = rng.below(b.len());
                b[i] ^= 1 << rng.below(8);
            }
            1 if !b.is_empty() => {
                let i = rng.below(b.len());
                b[i] = [0x00, 0x7f, 0x80, 0xff][rng.below(4)];
            }
            2 => b.truncate(rng.below(b.len() + 1)),
            3 if b.len() >= 4 => {
                // A hostile length somewhere.
                let i = rng.below(b.len() - 3);
                b[i..i + 4].copy_from_slice(&[0x7f, 0xff, 0xff, 0xff]);
            }
            4 => {
                let i = rng.below(b.len() + 1);
                b.insert(i, rng.next() as u8);
            }
            _ if b.len() >= 5 => {
                // A hostile unsigned varint.
                let i = rng.below(b.len() - 4);
                b[i..i + 5].copy_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
            }
            _ => {}
        }
    }
    b
}

#[test]
fn mutated_requests_never_panic() {
    let seeds = seeds();
    for (i, s) in seeds.iter().enumerate() {
        assert!(handle_frame(s), "seed {i} decodes");
    }
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut decoded = 0;
    for _ in 0..10_000 {
        let seed = &seeds[rng.below(seeds.len())];
        decoded += usize::from(handle_frame(&mutate(&mut rng, seed)));
    }
    // The mutations must reach the handlers, not only the decoder's error paths.
    assert!(decoded > 1000, "only {decoded} mutated frames decoded");
}

/// Valid batches: keyed records with a tombstone, the same as a transaction, and an
/// idempotent producer's.
fn batch_seeds() -> Vec<Vec<u8>> {
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };
    let mut out = Vec::new();
    for (pid, transactional) in [(-1, false), (7, true), (8, false)] {
        let records: Vec<Record> = (0..3)
            .map(|i| Record {
                transactional,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: pid,
                producer_epoch: if pid < 0 { -1 } else { 0 },
                timestamp_type: TimestampType::Creation,
                offset: i,
                sequence: if pid < 0 { -1 } else { i as i32 },
                timestamp: 1000 + i,
                key: Some(bytes::Bytes::from(format!("k{i}"))),
                value: (i != 1).then(|| bytes::Bytes::from(format!("v{i}"))),
                headers: Default::default(),
            })
            .collect();
        let mut b = BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        };
        RecordBatchEncoder::encode(&mut b, &records, &options).unwrap();
        out.push(b.to_vec());
    }
    out
}

/// Also writes extreme values over whole header fields (offsets, deltas, timestamps, counts).
fn mutate_batch(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut b = mutate(rng, input);
    if rng.below(2) == 0 && b.len() >= 61 {
        // (offset, width) of base offset, last offset delta, base and max timestamp, producer
        // id, base sequence, record count.
        let fields = [(0, 8), (23, 4), (27, 8), (35, 8), (43, 8), (53, 4), (57, 4)];
        let (at, width) = fields[rng.below(fields.len())];
        let value: [u8; 8] = [
            i64::MAX.to_be_bytes(),
            i64::MIN.to_be_bytes(),
            (-1i64).to_be_bytes(),
            (i64::from(i32::MAX)).to_be_bytes(),
        ][rng.below(4)];
        b[at..at + width].copy_from_slice(&value[8 - width..]);
    }
    b
}

#[test]
fn mutated_batches_with_valid_crcs_never_panic() {
    let seeds = batch_seeds();
    for (i, s) in seeds.iter().enumerate() {
        assert!(handle_batch(s), "seed {i} is appended");
    }
    let mut rng = Rng(0x5eed_1234_abcd_0002);
    let mut appended = 0;
    for _ in 0..2_000 {
        let seed = &seeds[rng.below(seeds.len())];
        appended += usize::from(handle_batch(&mutate_batch(&mut rng, seed)));
    }
    // The mutations must reach the log (append, compaction), not only validation.
    assert!(
        appended > 200,
        "only {appended} mutated batches were appended"
    );
}
