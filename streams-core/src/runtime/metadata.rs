//! Where state lives: which instance (by `application.server`) runs or keeps each task, from
//! the assignment every member receives, for routing interactive queries.
//!
//! Pure functions over the latest host maps and the topology's layout; the runtime exposes
//! them as `KafkaStreams::metadata_for_all_clients` and friends.

use std::collections::BTreeSet;

use super::topics::Layout;
use crate::assignment::{HostInfo, HostMap};

/// One instance as interactive queries see it (Kafka Streams' `StreamsMetadata`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StreamsMetadata {
    /// Its `application.server` host.
    pub host: String,
    /// Its `application.server` port.
    pub port: u16,
    /// Stores of its active tasks.
    pub state_stores: BTreeSet<String>,
    /// Source partitions of its active tasks.
    pub topic_partitions: BTreeSet<(String, i32)>,
    /// Stores of its standby tasks (stale reads).
    pub standby_state_stores: BTreeSet<String>,
    /// Source partitions of its standby tasks.
    pub standby_topic_partitions: BTreeSet<(String, i32)>,
}

/// Where one key of one store lives (Kafka Streams' `KeyQueryMetadata`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyQueryMetadata {
    /// The instance running the key's task, as `(host, port)`, if one announced itself.
    pub active_host: Option<(String, u16)>,
    /// Instances keeping a standby of the key's task.
    pub standby_hosts: Vec<(String, u16)>,
    /// The key's partition (its task's partition).
    pub partition: i32,
}

/// The group's hosts as the last assignment told this member.
#[derive(Debug, Clone, Default)]
pub(crate) struct Hosts {
    pub(crate) active: HostMap,
    pub(crate) standby: HostMap,
}

/// Stores whose sub-topology reads one of `partitions`.
fn stores_of(layout: &Layout, partitions: &BTreeSet<(String, i32)>) -> BTreeSet<String> {
    layout
        .subtopologies
        .iter()
        .filter(|s| {
            let sources = &layout.assignor[s.id as usize].source_topics;
            partitions.iter().any(|(t, _)| sources.contains(t))
        })
        .flat_map(|s| s.stores.iter().cloned())
        .collect()
}

fn pairs(set: Option<&BTreeSet<crate::assignment::TopicPartition>>) -> BTreeSet<(String, i32)> {
    set.into_iter()
        .flatten()
        .map(|tp| (tp.topic.clone(), tp.partition))
        .collect()
}

/// Every instance that announced an `application.server`.
pub(crate) fn all_clients(layout: &Layout, hosts: &Hosts) -> Vec<StreamsMetadata> {
    let names: BTreeSet<&HostInfo> = hosts.active.keys().chain(hosts.standby.keys()).collect();
    names
        .into_iter()
        .map(|h| {
            let active = pairs(hosts.active.get(h));
            let standby = pairs(hosts.standby.get(h));
            StreamsMetadata {
                host: h.host.clone(),
                port: h.port,
                state_stores: stores_of(layout, &active),
                standby_state_stores: stores_of(layout, &standby),
                topic_partitions: active,
                standby_topic_partitions: standby,
            }
        })
        .collect()
}

/// The instances holding `store`, active or standby.
pub(crate) fn for_store(layout: &Layout, hosts: &Hosts, store: &str) -> Vec<StreamsMetadata> {
    all_clients(layout, hosts)
        .into_iter()
        .filter(|m| m.state_stores.contains(store) || m.standby_state_stores.contains(store))
        .collect()
}

/// Where the key whose serialized bytes are `key` lives in `store`: the partition Kafka's
/// default partitioner gives it among the store's task count, and the hosts of that task.
/// `None` if no sub-topology has the store.
pub(crate) fn for_key(
    layout: &Layout,
    hosts: &Hosts,
    store: &str,
    key: &[u8],
) -> Option<KeyQueryMetadata> {
    let sub = layout
        .subtopologies
        .iter()
        .find(|s| s.stores.iter().any(|n| n == store))?;
    let info = &layout.assignor[sub.id as usize];
    let tasks = i32::try_from(info.partitions).ok().filter(|n| *n > 0)?;
    let partition = default_partition(key, tasks);
    let holds = |map: &HostMap, h: &HostInfo| {
        map.get(h).is_some_and(|ps| {
            ps.iter()
                .any(|tp| tp.partition == partition && info.source_topics.contains(&tp.topic))
        })
    };
    let active_host = hosts
        .active
        .keys()
        .find(|h| holds(&hosts.active, h))
        .map(|h| (h.host.clone(), h.port));
    let standby_hosts = hosts
        .standby
        .keys()
        .filter(|h| holds(&hosts.standby, h))
        .map(|h| (h.host.clone(), h.port))
        .collect();
    Some(KeyQueryMetadata {
        active_host,
        standby_hosts,
        partition,
    })
}

/// Kafka's default partitioner for a keyed record: murmur2 of the key bytes, made positive,
/// modulo the partition count. Java producers, and rdkafka's `murmur2_random`, agree.
pub(crate) fn default_partition(key: &[u8], partitions: i32) -> i32 {
    (murmur2(key) & 0x7fff_ffff) % partitions
}

/// Kafka's murmur2 (seed 0x9747b28c), over little-endian 4-byte words.
fn murmur2(data: &[u8]) -> i32 {
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h: u32 = 0x9747_b28c ^ (data.len() as u32);
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if !rest.is_empty() {
        h ^= u32::from(rest[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

#[cfg(test)]
mod tests {
    use super::murmur2;

    #[test]
    fn murmur2_matches_kafkas() {
        // Kafka's own test vectors for its murmur2.
        for (input, hash) in [
            ("21", -973_932_308),
            ("foobar", -790_332_482),
            ("a-little-bit-long-string", -985_981_536),
            ("a-little-bit-longer-string", -1_486_304_829),
            (
                "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            ("abc", 479_470_107),
        ] {
            assert_eq!(murmur2(input.as_bytes()), hash, "{input}");
        }
    }
}
