//! Start-up checks and internal topics: source topics must exist; repartition and changelog
//! topics are created with as many partitions as the sub-topology that uses them has tasks.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::types::RDKafkaErrorCode;

use crate::config::ResolvedConfig;
use crate::error::{Result, StreamsError};
use crate::state::changelog_topic;
use crate::topology::{NodeKind, Subtopology, Topology};

/// How the topology maps onto the cluster.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub(crate) subtopologies: Vec<Subtopology>,
    /// Physical source topic -> the sub-topology reading it.
    pub(crate) topic_to_sub: HashMap<String, u32>,
    /// Physical source topic -> its partition count.
    pub(crate) source_partitions: HashMap<String, i32>,
    /// The sub-topologies as the task assignor sees them (physical topic names).
    pub(crate) assignor: Vec<crate::assignment::Subtopology>,
}

impl Layout {
    /// The number of partitions (tasks) of the sub-topology holding `store`.
    pub(crate) fn store_partitions(&self, store: &str) -> Option<u32> {
        let sub = self
            .subtopologies
            .iter()
            .find(|s| s.stores.iter().any(|n| n == store))?;
        self.assignor.get(sub.id as usize).map(|a| a.partitions)
    }

    /// The layout of `subs`, whose tasks and source topics have the counts worked out.
    fn new(
        topology: &Topology,
        app: &str,
        subs: Vec<Subtopology>,
        task_counts: &[i32],
        counts: &HashMap<String, i32>,
    ) -> Layout {
        let mut topic_to_sub = HashMap::new();
        let mut source_partitions = HashMap::new();
        let mut assignor = Vec::new();
        for s in &subs {
            let mut sources = Vec::new();
            for t in &s.source_topics {
                let physical = topology.physical_topic(app, t);
                topic_to_sub.insert(physical.clone(), s.id);
                source_partitions.insert(physical.clone(), counts[t]);
                sources.push(physical);
            }
            let changelogs = s
                .stores
                .iter()
                .filter(|store| topology.stores[*store].factory.logging())
                .map(|store| changelog_topic(app, store))
                .collect();
            assignor.push(crate::assignment::Subtopology {
                id: s.id,
                partitions: u32::try_from(task_counts[s.id as usize]).unwrap_or(0),
                source_topics: sources,
                changelog_topics: changelogs,
            });
        }
        Layout {
            subtopologies: subs,
            topic_to_sub,
            source_partitions,
            assignor,
        }
    }

    /// The layout of `topology` with every topic and sub-topology at `partitions` (the
    /// multi-instance test driver, tests).
    pub(crate) fn uniform(topology: &Topology, app: &str, partitions: i32) -> Layout {
        let subs = topology.subtopologies();
        let counts = subs
            .iter()
            .flat_map(|s| s.source_topics.iter().map(|t| (t.clone(), partitions)))
            .collect();
        let task_counts = vec![partitions; subs.len()];
        Layout::new(topology, app, subs, &task_counts, &counts)
    }

    /// Every topic the stream threads read.
    pub(crate) fn subscriptions(&self) -> Vec<String> {
        let mut topics: Vec<String> = self.topic_to_sub.keys().cloned().collect();
        topics.sort();
        topics
    }

    /// The input partitions of task `id`: partition p of each of its sub-topology's source
    /// topics that has one (a stateless sub-topology may read topics of different sizes).
    pub(crate) fn task_partitions(&self, id: crate::task_id::TaskId) -> Vec<(String, i32)> {
        self.assignor
            .iter()
            .find(|s| s.id == id.subtopology)
            .map(|s| {
                s.source_topics
                    .iter()
                    .filter(|t| {
                        self.source_partitions
                            .get(*t)
                            .is_some_and(|n| id.partition < *n)
                    })
                    .map(|t| (t.clone(), id.partition))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Partition count and topic configs of an internal topic.
type TopicSpec = (i32, BTreeMap<String, String>);

const TIMEOUT: Duration = Duration::from_secs(30);

/// Checks sources, works out task counts and creates the internal topics.
pub(crate) fn prepare(topology: &Topology, config: &ResolvedConfig) -> Result<Layout> {
    let mut cc = ClientConfig::new();
    for (k, v) in &config.admin {
        cc.set(k, v);
    }
    let admin: AdminClient<DefaultClientContext> = cc
        .create()
        .map_err(|e| StreamsError::kafka("creating the admin client", e))?;
    let existing = topic_partitions(&admin)?;
    let app = &config.application_id;

    for t in topology
        .source_topics()
        .into_iter()
        .chain(topology.global_topics())
    {
        if !existing.contains_key(&t) {
            return Err(StreamsError::MissingSourceTopic { topic: t });
        }
    }

    let subs = topology.subtopologies();
    // Partition counts of the topics sub-topologies read, by unprefixed name; repartition topics
    // get the count of the sub-topology writing them unless the user fixed one.
    let mut counts: HashMap<String, i32> = HashMap::new();
    for t in topology.source_topics() {
        counts.insert(t.clone(), existing[&t]);
    }
    for (t, fixed) in &topology.repartition_topics {
        if let Some(n) = fixed {
            counts.insert(t.clone(), *n);
        }
    }
    copartition_repartition_topics(topology, &subs, &mut counts);
    let writers: Vec<(u32, String)> = subs
        .iter()
        .flat_map(|s| {
            s.nodes
                .iter()
                .filter_map(move |&i| match &topology.nodes[i].kind {
                    NodeKind::Sink { topic: Some(t) }
                        if topology.repartition_topics.contains_key(t) =>
                    {
                        Some((s.id, t.clone()))
                    }
                    _ => None,
                })
        })
        .collect();
    let mut task_counts = vec![0i32; subs.len()];
    // Sub-topologies form a DAG through repartition topics: iterate until every count is known.
    for _ in 0..=subs.len() {
        for s in &subs {
            let known: Vec<i32> = s
                .source_topics
                .iter()
                .filter_map(|t| counts.get(t).copied())
                .collect();
            if known.len() == s.source_topics.len() {
                task_counts[s.id as usize] = known.into_iter().max().unwrap_or(1);
            }
        }
        for (sub, topic) in &writers {
            let n = task_counts[*sub as usize];
            if n > 0 {
                counts.entry(topic.clone()).or_insert(n);
            }
        }
    }
    for s in &subs {
        if task_counts[s.id as usize] == 0 {
            return Err(StreamsError::topology(
                format!("sub-topology {}", s.id),
                format!(
                    "cannot work out the partition count of sub-topology {} (topics {:?})",
                    s.id, s.source_topics
                ),
            ));
        }
        // A stateful sub-topology's tasks must find partition p of every input on one member.
        let distinct: std::collections::BTreeSet<i32> =
            s.source_topics.iter().map(|t| counts[t]).collect();
        if !s.stores.is_empty() && distinct.len() > 1 {
            let list: Vec<String> = s
                .source_topics
                .iter()
                .map(|t| format!("{t}: {}", counts[t]))
                .collect();
            return Err(StreamsError::CoPartitioning {
                subtopology: s.id as usize,
                counts: list.join(", "),
            });
        }
    }

    // Internal topics to have: physical name -> (partitions, configs).
    let mut wanted: BTreeMap<String, TopicSpec> = BTreeMap::new();
    for t in topology.repartition_topics.keys() {
        let mut cfg = config.topic.clone();
        cfg.insert("cleanup.policy".into(), "delete".into());
        cfg.insert("retention.ms".into(), "-1".into());
        wanted.insert(topology.physical_topic(app, t), (counts[t], cfg));
    }
    for s in &subs {
        for store in &s.stores {
            let f = &topology.stores[store].factory;
            if !f.logging() {
                continue;
            }
            let mut cfg = config.topic.clone();
            cfg.insert("cleanup.policy".into(), "compact".into());
            cfg.extend(f.log_config(config.window_changelog_additional_retention_ms));
            wanted.insert(
                changelog_topic(app, store),
                (task_counts[s.id as usize], cfg),
            );
        }
    }

    // The dead-letter topic is created when missing, with as many partitions as the widest
    // input; one that exists is used whatever its shape (it is the user's, not internal).
    if let Some(dlq) = &config.handlers.dead_letter_topic {
        if !existing.contains_key(&**dlq) {
            let mut cfg = config.topic.clone();
            cfg.insert("cleanup.policy".into(), "delete".into());
            let n = counts.values().copied().max().unwrap_or(1);
            wanted.insert(dlq.to_string(), (n, cfg));
        }
    }

    let missing: Vec<(&String, &TopicSpec)> = wanted
        .iter()
        .filter(|(t, _)| !existing.contains_key(*t))
        .collect();
    for (t, (n, _)) in &wanted {
        if let Some(have) = existing.get(t.as_str()) {
            if have != n {
                return Err(StreamsError::InternalTopic {
                    topic: t.to_string(),
                    message: format!("has {have} partitions but the topology needs {n}; delete it or reset the application"),
                });
            }
        }
    }
    if !missing.is_empty() {
        let new_topics: Vec<NewTopic<'_>> = missing
            .iter()
            .map(|(t, (n, cfg))| {
                let mut nt =
                    NewTopic::new(t, *n, TopicReplication::Fixed(config.replication_factor));
                for (k, v) in cfg {
                    nt = nt.set(k, v);
                }
                nt
            })
            .collect();
        let opts = AdminOptions::new().operation_timeout(Some(TIMEOUT));
        let results = futures::executor::block_on(admin.create_topics(&new_topics, &opts))
            .map_err(|e| StreamsError::kafka("creating internal topics", e))?;
        for r in results {
            match r {
                Ok(t) => tracing::info!(topic = %t, "created internal topic"),
                // Another instance created it first: fine, its shape is checked below.
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((t, code)) => {
                    return Err(StreamsError::InternalTopic {
                        topic: t,
                        message: format!("could not be created: {code}"),
                    })
                }
            }
        }
        // Wait until metadata shows them, so the consumers' subscriptions see every partition.
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let now = topic_partitions(&admin)?;
            let pending: Vec<&String> = missing
                .iter()
                .map(|(t, _)| *t)
                .filter(|t| now.get(*t).copied().unwrap_or(0) == 0)
                .collect();
            if pending.is_empty() {
                for (t, (n, _)) in &missing {
                    if now[*t] != *n {
                        return Err(StreamsError::InternalTopic {
                            topic: t.to_string(),
                            message: format!(
                                "has {} partitions but the topology needs {n}",
                                now[*t]
                            ),
                        });
                    }
                }
                break;
            }
            if Instant::now() > deadline {
                return Err(StreamsError::InternalTopic {
                    topic: pending[0].clone(),
                    message: "created but not visible in metadata after 30 s".into(),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    for s in &subs {
        tracing::info!(subtopology = s.id, tasks = task_counts[s.id as usize], topics = ?s.source_topics, stores = ?s.stores, "sub-topology");
    }
    drop_in_background(admin);
    Ok(Layout::new(topology, app, subs, &task_counts, &counts))
}

/// A stateful sub-topology that reads user topics and repartition topics (a join after a
/// key-changing operation, the response topic of a foreign-key join) needs them co-partitioned:
/// as Kafka Streams does, the repartition topics whose count the user did not fix get the
/// partition count of the user topics rather than that of the sub-topology writing them.
fn copartition_repartition_topics(
    topology: &Topology,
    subs: &[Subtopology],
    counts: &mut HashMap<String, i32>,
) {
    for s in subs.iter().filter(|s| !s.stores.is_empty()) {
        let external = s
            .source_topics
            .iter()
            .filter(|t| !topology.repartition_topics.contains_key(*t))
            .filter_map(|t| counts.get(t).copied())
            .max();
        let Some(n) = external else { continue };
        for t in &s.source_topics {
            if let Some(None) = topology.repartition_topics.get(t) {
                counts.insert(t.clone(), n);
            }
        }
    }
}

fn topic_partitions(admin: &AdminClient<DefaultClientContext>) -> Result<HashMap<String, i32>> {
    let md = admin
        .inner()
        .fetch_metadata(None, TIMEOUT)
        .map_err(|e| StreamsError::kafka("fetching cluster metadata", e))?;
    Ok(md
        .topics()
        .iter()
        .filter(|t| t.error().is_none())
        .map(|t| (t.name().to_string(), t.partitions().len() as i32))
        .collect())
}

/// The partition counts of the source topics `layout` reads, as the cluster has them now (the
/// group member's leader looks for topics that gained partitions). Topics the metadata does not
/// list are left out.
pub(crate) fn current_source_partitions(
    consumer: &rdkafka::consumer::BaseConsumer,
    layout: &Layout,
) -> Result<HashMap<String, i32>> {
    use rdkafka::consumer::Consumer;
    let md = consumer
        .fetch_metadata(None, TIMEOUT)
        .map_err(|e| StreamsError::kafka("fetching cluster metadata", e))?;
    Ok(md
        .topics()
        .iter()
        .filter(|t| t.error().is_none() && layout.source_partitions.contains_key(t.name()))
        .map(|t| (t.name().to_string(), t.partitions().len() as i32))
        .collect())
}

/// Drops an rdkafka admin client on a thread of its own: dropping one joins its polling thread,
/// which wakes at most every 100 ms, and start-up or shutdown should not wait for that.
pub(crate) fn drop_in_background(admin: AdminClient<DefaultClientContext>) {
    let spawned = std::thread::Builder::new()
        .name("admin-client-drop".into())
        .spawn(move || drop(admin));
    if let Err(e) = spawned {
        tracing::debug!(error = %e, "could not spawn a thread to drop the admin client");
    }
}
