//! OffsetFetch: committed offsets of one group (before v8) or several (v8+); partitions without
//! a commit get offset -1, empty metadata and no error.

use super::sb;
use crate::group::offsets::Committed;
use crate::state::BrokerState;
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse, TopicName};
use std::collections::BTreeMap;
use std::sync::Arc;

type Found = BTreeMap<String, Vec<(i32, Option<Committed>)>>;

/// Looks up the asked partitions, or every committed partition when `topics` is `None`.
fn lookup(state: &BrokerState, group: &str, topics: Option<Vec<(String, Vec<i32>)>>) -> Found {
    let mut found = Found::new();
    match topics {
        Some(topics) => {
            for (topic, partitions) in topics {
                let entry = found.entry(topic.clone()).or_default();
                for p in partitions {
                    entry.push((p, state.groups.committed(group, &topic, p)));
                }
            }
        }
        None => {
            for ((topic, p), c) in state.groups.all_committed(group) {
                found.entry(topic).or_default().push((p, Some(c)));
            }
        }
    }
    found
}

fn parts(c: &Option<Committed>) -> (i64, i32, String) {
    match c {
        Some(c) => (
            c.offset,
            c.leader_epoch,
            c.metadata.clone().unwrap_or_default(),
        ),
        None => (-1, -1, String::new()),
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
                let found = lookup(state, g.group_id.as_str(), asked);
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
                                            .map(|(p, c)| {
                                                let (offset, epoch, metadata) = parts(c);
                                                OffsetFetchResponsePartitions::default()
                                                    .with_partition_index(*p)
                                                    .with_committed_offset(offset)
                                                    .with_committed_leader_epoch(epoch)
                                                    .with_metadata(Some(sb(metadata)))
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
    let found = lookup(state, req.group_id.as_str(), asked);
    OffsetFetchResponse::default().with_topics(
        found
            .into_iter()
            .map(|(topic, ps)| {
                OffsetFetchResponseTopic::default()
                    .with_name(TopicName(sb(topic)))
                    .with_partitions(
                        ps.iter()
                            .map(|(p, c)| {
                                let (offset, epoch, metadata) = parts(c);
                                OffsetFetchResponsePartition::default()
                                    .with_partition_index(*p)
                                    .with_committed_offset(offset)
                                    .with_committed_leader_epoch(epoch)
                                    .with_metadata(Some(sb(metadata)))
                            })
                            .collect(),
                    )
            })
            .collect(),
    )
}
