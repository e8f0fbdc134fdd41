//! The consumer protocol's envelope around our userData, and the leader's work: decode every
//! member's subscription, run the task assignor, encode each member's assignment.
//!
//! The envelope (ConsumerProtocolSubscription / ConsumerProtocolAssignment, version 0) lists
//! topics and partitions as a plain consumer group would, so that Kafka's tooling shows the
//! members and what they read; the tasks themselves travel in the userData.

use std::collections::BTreeMap;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::{
    ConsumerProtocolAssignment, TopicPartition as AssignedPartitions,
};
use kafka_protocol::messages::consumer_protocol_subscription::ConsumerProtocolSubscription;
use kafka_protocol::messages::TopicName;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use crate::assignment::{
    self, wire, AssignmentConfig, AssignmentInfo, AssignmentInput, Member, Subscription,
    Subtopology, TopicPartition,
};

/// How long the leader waits for the changelogs' end offsets.
const END_OFFSETS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Envelope version written; every Kafka since 0.9 reads it.
const ENVELOPE_VERSION: i16 = 0;

/// The JoinGroup metadata of a member: its topics and its userData.
pub(crate) fn encode_subscription(topics: &[String], s: &Subscription) -> Result<Bytes, String> {
    let user_data = wire::encode_subscription(s).map_err(|e| e.to_string())?;
    let mut env = ConsumerProtocolSubscription::default();
    env.topics = topics
        .iter()
        .map(|t| StrBytes::from_string(t.clone()))
        .collect();
    env.user_data = Some(Bytes::from(user_data));
    let mut buf = BytesMut::new();
    buf.put_i16(ENVELOPE_VERSION);
    env.encode(&mut buf, ENVELOPE_VERSION)
        .map_err(|e| format!("encoding the subscription: {e}"))?;
    Ok(buf.freeze())
}

fn decode_subscription(mut bytes: Bytes) -> Result<Subscription, String> {
    if bytes.remaining() < 2 {
        return Err("subscription shorter than its version".into());
    }
    let version = bytes.get_i16();
    let env = ConsumerProtocolSubscription::decode(&mut bytes, version.clamp(0, 3))
        .map_err(|e| format!("consumer subscription v{version}: {e}"))?;
    let user_data = env
        .user_data
        .ok_or("the subscription has no userData: not a member of this library")?;
    wire::decode_subscription(&user_data).map_err(|e| e.to_string())
}

/// A member's SyncGroup bytes: its partitions, and the userData with its tasks.
fn encode_assignment(
    info: &AssignmentInfo,
    partitions: BTreeMap<String, Vec<i32>>,
) -> Result<Bytes, String> {
    let user_data = wire::encode_assignment(info).map_err(|e| e.to_string())?;
    let mut env = ConsumerProtocolAssignment::default();
    env.assigned_partitions = partitions
        .into_iter()
        .map(|(t, ps)| {
            let mut a = AssignedPartitions::default();
            a.topic = TopicName(StrBytes::from_string(t));
            a.partitions = ps;
            a
        })
        .collect();
    env.user_data = Some(Bytes::from(user_data));
    let mut buf = BytesMut::new();
    buf.put_i16(ENVELOPE_VERSION);
    env.encode(&mut buf, ENVELOPE_VERSION)
        .map_err(|e| format!("encoding an assignment: {e}"))?;
    Ok(buf.freeze())
}

/// Decodes what SyncGroup gave this member. Empty bytes (the leader left us out) are an empty
/// assignment.
pub(crate) fn decode_assignment(mut bytes: Bytes) -> Result<Option<AssignmentInfo>, String> {
    if bytes.is_empty() {
        return Ok(None);
    }
    if bytes.remaining() < 2 {
        return Err("assignment shorter than its version".into());
    }
    let version = bytes.get_i16();
    let env = ConsumerProtocolAssignment::decode(&mut bytes, version.clamp(0, 3))
        .map_err(|e| format!("consumer assignment v{version}: {e}"))?;
    let Some(user_data) = env.user_data else {
        return Err(
            "the assignment has no userData: the leader is not a member of this library".into(),
        );
    };
    wire::decode_assignment(&user_data)
        .map(Some)
        .map_err(|e| e.to_string())
}

/// The leader's answer for every member of a generation. A member whose subscription cannot be
/// read gets nothing (and is named in the log); the others are assigned as usual.
pub(crate) fn assign(
    members: &[(String, Bytes)],
    subtopologies: &[Subtopology],
    changelog_end_offsets: BTreeMap<TopicPartition, i64>,
    config: &AssignmentConfig,
    now_ms: i64,
) -> Vec<(String, Bytes)> {
    let mut decoded = Vec::with_capacity(members.len());
    for (member_id, metadata) in members {
        match decode_subscription(metadata.clone()) {
            Ok(subscription) => decoded.push(Member {
                member_id: member_id.clone(),
                subscription,
            }),
            Err(e) => {
                tracing::warn!(member = %member_id, error = %e, "member left out of the assignment")
            }
        }
    }
    let input = AssignmentInput {
        members: decoded,
        subtopologies: subtopologies.to_vec(),
        changelog_end_offsets,
        now_ms,
    };
    let group = assignment::assign(&input, config);
    tracing::info!(
        members = input.members.len(),
        movements = group.movements.len(),
        revocations = group.revocations.len(),
        follow_up = ?group.follow_up,
        "assigned tasks"
    );
    let sources: BTreeMap<u32, &Vec<String>> = subtopologies
        .iter()
        .map(|s| (s.id, &s.source_topics))
        .collect();
    let mut out = Vec::new();
    for (member_id, _) in members {
        let Some(info) = group.info_for(member_id) else {
            continue;
        };
        let mut partitions: BTreeMap<String, Vec<i32>> = BTreeMap::new();
        for t in info.threads.iter().flat_map(|t| t.active.iter()) {
            for topic in sources.get(&t.subtopology).copied().into_iter().flatten() {
                partitions
                    .entry(topic.clone())
                    .or_default()
                    .push(t.partition);
            }
        }
        match encode_assignment(&info, partitions) {
            Ok(bytes) => out.push((member_id.clone(), bytes)),
            Err(e) => {
                tracing::error!(member = %member_id, error = %e, "could not encode an assignment")
            }
        }
    }
    out
}

/// The end offsets of every changelog partition of `subtopologies`, in one batched lookup:
/// the assignor measures each instance's lag on a task against them. On failure the map is
/// empty and the assignor falls back to the furthest checkpoint a member reports.
pub(crate) fn changelog_end_offsets(
    consumer: &BaseConsumer,
    subtopologies: &[Subtopology],
) -> BTreeMap<TopicPartition, i64> {
    let mut tpl = TopicPartitionList::new();
    for s in subtopologies {
        for topic in &s.changelog_topics {
            for p in 0..s.partitions {
                let _ = tpl.add_partition_offset(topic, p as i32, Offset::End);
            }
        }
    }
    if tpl.count() == 0 {
        return BTreeMap::new();
    }
    // A lookup "for time" -1 is ListOffsets LATEST, batched per broker.
    match consumer.offsets_for_times(tpl, END_OFFSETS_TIMEOUT) {
        Ok(found) => found
            .elements()
            .iter()
            .filter_map(|e| match (e.error(), e.offset()) {
                (Ok(()), Offset::Offset(o)) => Some((
                    TopicPartition {
                        topic: e.topic().to_string(),
                        partition: e.partition(),
                    },
                    o,
                )),
                _ => None,
            })
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "could not list the changelogs' end offsets: lags are measured against the furthest checkpoint");
            BTreeMap::new()
        }
    }
}
