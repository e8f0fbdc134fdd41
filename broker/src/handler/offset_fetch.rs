//! OffsetFetch: committed offsets of one group (before v8) or several (v8+); partitions without
//! a commit get offset -1, empty metadata and no error. With `require_stable` (v7+), a
//! partition whose offset an unfinished transaction has staged answers UNSTABLE_OFFSET_COMMIT,
//! so the client retries once the transaction ends.

use super::sb;
use crate::group::offsets::Committed;
use crate::state::BrokerState;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse, TopicName};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Per topic: (partition, committed offset, whether an unfinished transaction stages one).
type Found = BTreeMap<String, Vec<(i32, Option<Committed>, bool)>>;

/// Looks up the asked partitions, or every committed partition when `topics` is `None`.
fn lookup(
    state: &BrokerState,
    group: &str,
    topics: Option<Vec<(String, Vec<i32>)>>,
    require_stable: bool,
) -> Found {
    let unstable =
        |topic: &str, p: i32| require_stable && state.txns.has_pending_offset(group, topic, p);
    let mut found = Found::new();
    match topics {
        Some(topics) => {
            for (topic, partitions) in topics {
                let entry = found.entry(topic.clone()).or_default();
                for p in partitions {
                    let c = state.groups.committed(group, &topic, p);
                    entry.push((p, c, unstable(&topic, p)));
                }
            }
        }
        None => {
            for ((topic, p), c) in state.groups.all_committed(group) {
                let u = unstable(&topic, p);
                found.entry(topic).or_default().push((p, Some(c), u));
            }
        }
    }
    found
}

/// Offset, leader epoch, metadata and error code of one partition.
fn parts(c: &Option<Committed>, unstable: bool) -> (i64, i32, String, i16) {
    match c {
        _ if unstable => (
            -1,
            -1,
            String::new(),
            ResponseError::UnstableOffsetCommit.code(),
        ),
        Some(c) => (
            c.offset,
            c.leader_epoch,
            c.metadata.clone().unwrap_or_default(),
            0,
        ),
        None => (-1, -1, String::new(), 0),
    }
}

pub(crate) fn handle(
    state: &Arc<BrokerState>,
    version: i16,
    req: OffsetFetchRequest,
) -> OffsetFetchResponse {
    if version >= 8 {
        let groups = req
            .groups
            .into_iter()
            .map(|g| {
                let asked = g.topics.map(|ts| {
                    ts.into_iter()
                        .map(|t| (t.name.to_string(), t.partition_indexes))
                        .collect()
                });
                let found = lookup(state, g.group_id.as_str(), asked, req.require_stable);
                OffsetFetchResponseGroup::default()
                    .with_group_id(g.group_id)
                    .with_topics(
                        found
                            .into_iter()
                            .map(|(topic, ps)| {
                                OffsetFetchResponseTopics::default()
                                    .with_name(TopicName(sb(topic)))
                                    .with_partitions(
                                        ps.iter()
                                            .map(|(p, c, unstable)| {
                                                let (offset, epoch, metadata, error) =
                                                    parts(c, *unstable);
                                                OffsetFetchResponsePartitions::default()
                                                    .with_partition_index(*p)
                                                    .with_committed_offset(offset)
                                                    .with_committed_leader_epoch(epoch)
                                                    .with_metadata(Some(sb(metadata)))
                                                    .with_error_code(error)
                                            })
                                            .collect(),
                                    )
                            })
                            .collect(),
                    )
            })
            .collect();
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let asked = req.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.name.to_string(), t.partition_indexes))
            .collect()
    });
    let found = lookup(state, req.group_id.as_str(), asked, req.require_stable);
    OffsetFetchResponse::default().with_topics(
        found
            .into_iter()
            .map(|(topic, ps)| {
                OffsetFetchResponseTopic::default()
                    .with_name(TopicName(sb(topic)))
                    .with_partitions(
                        ps.iter()
                            .map(|(p, c, unstable)| {
                                let (offset, epoch, metadata, error) = parts(c, *unstable);
                                OffsetFetchResponsePartition::default()
                                    .with_partition_index(*p)
                                    .with_committed_offset(offset)
                                    .with_committed_leader_epoch(epoch)
                                    .with_metadata(Some(sb(metadata)))
                                    .with_error_code(error)
                            })
                            .collect(),
                    )
            })
            .collect(),
    )
}
