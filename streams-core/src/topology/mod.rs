//! [`Topology`]: the graph of source, processor and sink nodes with their stores; building it is
//! separate from running it. Sub-topologies split at repartition topics.

mod description;
mod picture;

pub use description::TopologyDescription;

use std::any::{Any, TypeId};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use crate::error::{Result, StreamsError};
use crate::processor::{
    ErasedProcessor, MakeProcessor, NodeGraph, Processor, ProcessorAdapter, ProcessorContext,
    SinkProcessor, SourceProcessor, TopicChooser,
};
use crate::record::{Record, RecordBytes};
use crate::serde::SerdeRef;
use crate::state::{GlobalStores, StoreBuilder, StoreFactory};
use crate::task_id::TaskId;

/// Turns a consumed record into a typed payload and its timestamp (at enqueue time, so that a
/// task can order records by timestamp before processing them).
pub(crate) type SourceDecoder = Arc<
    dyn Fn(RecordBytes<'_>, i64) -> std::result::Result<(Box<dyn Any + Send>, i64), DecodeError>
        + Send
        + Sync,
>;

/// Why a source could not decode a record.
pub(crate) enum DecodeError {
    Key(crate::serde::SerdeError),
    Value(crate::serde::SerdeError),
}

/// Picks a record's timestamp: `(record, partition time) -> timestamp`.
pub type TimestampExtractor<K, V> = Arc<dyn Fn(&Record<K, V>, i64) -> i64 + Send + Sync>;

pub(crate) type ProcessorFactory = Arc<dyn Fn() -> Box<dyn ErasedProcessor> + Send + Sync>;

pub(crate) enum NodeKind {
    Source {
        topics: Vec<String>,
        decoder: SourceDecoder,
    },
    Processor,
    Sink {
        topic: Option<String>,
    },
}

pub(crate) struct NodeDef {
    pub(crate) name: String,
    pub(crate) kind: NodeKind,
    pub(crate) factory: ProcessorFactory,
    pub(crate) parents: Vec<usize>,
    pub(crate) children: Vec<usize>,
    pub(crate) stores: Vec<String>,
    out_type: Option<(TypeId, &'static str)>,
}

pub(crate) struct StoreDef {
    pub(crate) factory: Arc<dyn StoreFactory>,
    pub(crate) processors: Vec<usize>,
}

/// A global store: a copy of a whole topic (every partition) in every instance.
pub(crate) struct GlobalStoreDef {
    /// The topic the store mirrors; it is its own changelog.
    pub(crate) topic: String,
    pub(crate) factory: Arc<dyn StoreFactory>,
}

/// A sub-topology: the nodes of one connected part of the graph, and the topics it reads.
#[derive(Debug, Clone)]
pub(crate) struct Subtopology {
    pub(crate) id: u32,
    pub(crate) nodes: Vec<usize>,
    pub(crate) source_topics: Vec<String>,
    pub(crate) stores: Vec<String>,
}

/// A processing graph: sources read topics, processors transform records and use state stores,
/// sinks write topics.
///
/// The DSL (`StreamsBuilder`) builds one for you; the Processor API builds one by hand:
///
/// ```
/// use streams_core::{Topology, Processor, ProcessorContext, Record, Result, serde::Serdes};
///
/// struct Upper;
/// impl Processor for Upper {
///     type KIn = String; type VIn = String; type KOut = String; type VOut = String;
///     fn process(&mut self, ctx: &mut ProcessorContext<'_, String, String>, r: Record<String, String>) -> Result<()> {
///         let v = r.value.to_uppercase();
///         ctx.forward(r.with_value(v))
///     }
/// }
///
/// let mut t = Topology::new();
/// t.add_source("in", &["input"], Serdes::string(), Serdes::string()).unwrap();
/// t.add_processor("upper", |_| Ok(Upper), &["in"]).unwrap();
/// t.add_sink("out", "output", Serdes::string(), Serdes::string(), &["upper"]).unwrap();
/// assert!(t.describe().to_string().contains("Processor: upper (stores: [])"));
/// ```
#[derive(Default)]
pub struct Topology {
    pub(crate) nodes: Vec<NodeDef>,
    by_name: HashMap<String, usize>,
    pub(crate) stores: BTreeMap<String, StoreDef>,
    /// Repartition topics (unprefixed name -> partition count if fixed by the user).
    pub(crate) repartition_topics: BTreeMap<String, Option<i32>>,
    /// Store and topic names the DSL generated (checked by ensure.explicit.internal.resource.naming).
    pub(crate) generated_names: Vec<(String, String)>,
    /// Global stores by name: filled from their topics outside of tasks, readable by every task.
    pub(crate) global_stores: BTreeMap<String, GlobalStoreDef>,
}

impl Topology {
    /// An empty topology.
    pub fn new() -> Self {
        Topology::default()
    }

    /// Adds a source node reading `topics` with the given serdes and the records' own timestamps.
    pub fn add_source<K, V>(
        &mut self,
        name: &str,
        topics: &[&str],
        key_serde: SerdeRef<K>,
        value_serde: SerdeRef<V>,
    ) -> Result<&mut Self>
    where
        K: Clone + Send + 'static,
        V: Clone + Send + 'static,
    {
        self.add_source_with_extractor(name, topics, key_serde, value_serde, None)
    }

    /// Adds a source node whose record timestamps come from `extractor` (for example a field of
    /// the value), or from the records themselves when `None`.
    pub fn add_source_with_extractor<K, V>(
        &mut self,
        name: &str,
        topics: &[&str],
        key_serde: SerdeRef<K>,
        value_serde: SerdeRef<V>,
        extractor: Option<TimestampExtractor<K, V>>,
    ) -> Result<&mut Self>
    where
        K: Clone + Send + 'static,
        V: Clone + Send + 'static,
    {
        if topics.is_empty() {
            return Err(StreamsError::topology(
                name,
                format!("source `{name}` names no topic"),
            ));
        }
        for t in topics {
            if let Some(other) = self.source_of(t) {
                return Err(StreamsError::topology(*t, format!(
                    "topic `{t}` is already read by source `{other}`; a topic can have one source node"
                )));
            }
            if let Some((store, _)) = self.global_stores.iter().find(|(_, g)| g.topic == *t) {
                return Err(StreamsError::topology(*t, format!(
                    "topic `{t}` backs global store `{store}`; it cannot also be read by source `{name}`"
                )));
            }
        }
        let decoder: SourceDecoder = Arc::new(move |raw: RecordBytes<'_>, partition_time: i64| {
            let key = key_serde
                .deserialize(raw.topic, raw.key)
                .map_err(DecodeError::Key)?;
            let value = value_serde
                .deserialize(raw.topic, raw.value)
                .map_err(DecodeError::Value)?;
            let mut record = Record {
                key,
                value,
                timestamp: raw.timestamp,
                headers: raw.headers,
            };
            if let Some(x) = &extractor {
                record.timestamp = x(&record, partition_time);
            }
            let ts = record.timestamp;
            // In the slot the source node forwards it from (see `crate::processor`).
            Ok((Box::new(Some(record)) as Box<dyn Any + Send>, ts))
        });
        let factory: ProcessorFactory =
            Arc::new(|| Box::new(SourceProcessor::<K, V>::new()) as Box<dyn ErasedProcessor>);
        self.add_node(
            name,
            NodeKind::Source {
                topics: topics.iter().map(|t| t.to_string()).collect(),
                decoder,
            },
            factory,
            &[],
            None,
            Some(type_of::<Record<K, V>>()),
        )?;
        Ok(self)
    }

    /// Adds a processor node fed by `parents`. In each task, once the task's stores are
    /// restored, `init` makes the processor from its context: it takes the typed handles of the
    /// stores connected to the node and schedules punctuations there, and the processor keeps
    /// them. A processor with nothing to set up is made with `|_| Ok(MyProcessor)`.
    pub fn add_processor<P, F>(
        &mut self,
        name: &str,
        init: F,
        parents: &[&str],
    ) -> Result<&mut Self>
    where
        P: Processor,
        F: Fn(&mut ProcessorContext<'_, P::KOut, P::VOut>) -> Result<P> + Send + Sync + 'static,
    {
        if parents.is_empty() {
            return Err(StreamsError::topology(
                name,
                format!("processor `{name}` has no parent"),
            ));
        }
        let make: MakeProcessor<P> = Arc::new(init);
        let factory: ProcessorFactory = Arc::new(move || {
            Box::new(ProcessorAdapter::new(make.clone())) as Box<dyn ErasedProcessor>
        });
        self.add_node(
            name,
            NodeKind::Processor,
            factory,
            parents,
            Some(type_of::<Record<P::KIn, P::VIn>>()),
            Some(type_of::<Record<P::KOut, P::VOut>>()),
        )?;
        Ok(self)
    }

    /// Adds a sink node writing to `topic`.
    pub fn add_sink<K, V>(
        &mut self,
        name: &str,
        topic: &str,
        key_serde: SerdeRef<K>,
        value_serde: SerdeRef<V>,
        parents: &[&str],
    ) -> Result<&mut Self>
    where
        K: Clone + Send + 'static,
        V: Clone + Send + 'static,
    {
        self.add_sink_inner(
            name,
            Some(topic.to_string()),
            TopicChooser::Fixed(topic.to_string()),
            key_serde,
            value_serde,
            parents,
        )
    }

    /// Adds a sink node that picks each record's topic with `chooser` (Kafka's TopicNameExtractor).
    pub fn add_sink_with_extractor<K, V, F>(
        &mut self,
        name: &str,
        chooser: F,
        key_serde: SerdeRef<K>,
        value_serde: SerdeRef<V>,
        parents: &[&str],
    ) -> Result<&mut Self>
    where
        K: Clone + Send + 'static,
        V: Clone + Send + 'static,
        F: Fn(&Record<K, V>) -> String + Send + Sync + 'static,
    {
        self.add_sink_inner(
            name,
            None,
            TopicChooser::Dynamic(Arc::new(chooser)),
            key_serde,
            value_serde,
            parents,
        )
    }

    fn add_sink_inner<K, V>(
        &mut self,
        name: &str,
        topic: Option<String>,
        chooser: TopicChooser<K, V>,
        key_serde: SerdeRef<K>,
        value_serde: SerdeRef<V>,
        parents: &[&str],
    ) -> Result<&mut Self>
    where
        K: Clone + Send + 'static,
        V: Clone + Send + 'static,
    {
        if parents.is_empty() {
            return Err(StreamsError::topology(
                name,
                format!("sink `{name}` has no parent"),
            ));
        }
        let factory: ProcessorFactory = Arc::new(move || {
            Box::new(SinkProcessor::new(
                chooser.clone(),
                key_serde.clone(),
                value_serde.clone(),
            )) as Box<dyn ErasedProcessor>
        });
        self.add_node(
            name,
            NodeKind::Sink { topic },
            factory,
            parents,
            Some(type_of::<Record<K, V>>()),
            None,
        )?;
        Ok(self)
    }

    /// Adds a state store and connects it to `processors` (which may be empty, to connect later).
    pub fn add_state_store<K, V>(
        &mut self,
        builder: StoreBuilder<K, V>,
        processors: &[&str],
    ) -> Result<&mut Self>
    where
        K: Send + Sync + 'static,
        V: Send + Sync + 'static,
    {
        let name = builder.name().to_string();
        if self.stores.contains_key(&name) || self.global_stores.contains_key(&name) {
            return Err(StreamsError::topology(
                name.as_str(),
                format!("store `{name}` is already added"),
            ));
        }
        self.stores.insert(
            name.clone(),
            StoreDef {
                factory: Arc::new(builder),
                processors: Vec::new(),
            },
        );
        let names: Vec<&str> = vec![name.as_str()];
        for p in processors {
            self.connect_processor_and_state_stores(p, &names)?;
        }
        Ok(self)
    }

    /// Adds a global store: every instance holds every partition of `topic` in it, read from
    /// the beginning before processing starts and kept up to date while running (Kafka Streams'
    /// global state store). The topic is the store's changelog: records are copied as they are
    /// (a null value deletes the key), so the builder's serdes must be the topic's. Connect
    /// processors to it with [`Self::connect_processor_and_state_stores`]; they only read it.
    /// Global stores are held in memory and rebuilt from the topic at each start.
    pub fn add_global_store<K, V>(
        &mut self,
        builder: StoreBuilder<K, V>,
        topic: &str,
    ) -> Result<&mut Self>
    where
        K: Send + Sync + 'static,
        V: Send + Sync + 'static,
    {
        let name = builder.name().to_string();
        if self.stores.contains_key(&name) || self.global_stores.contains_key(&name) {
            return Err(StreamsError::topology(
                name.as_str(),
                format!("store `{name}` is already added"),
            ));
        }
        if let Some(other) = self.source_of(topic) {
            return Err(StreamsError::topology(topic, format!(
                "topic `{topic}` is read by source `{other}`; it cannot also back global store `{name}`"
            )));
        }
        if let Some((other, _)) = self.global_stores.iter().find(|(_, g)| g.topic == topic) {
            return Err(StreamsError::topology(
                topic,
                format!("topic `{topic}` already backs global store `{other}`"),
            ));
        }
        self.global_stores.insert(
            name,
            GlobalStoreDef {
                topic: topic.to_string(),
                factory: Arc::new(builder.with_caching_disabled().with_logging_disabled()),
            },
        );
        Ok(self)
    }

    /// Topics that back global stores (read whole by every instance, never by tasks).
    pub fn global_topics(&self) -> BTreeSet<String> {
        self.global_stores
            .values()
            .map(|g| g.topic.clone())
            .collect()
    }

    /// Gives `processor` access to `stores`.
    pub fn connect_processor_and_state_stores(
        &mut self,
        processor: &str,
        stores: &[&str],
    ) -> Result<&mut Self> {
        let idx = self.index_of(processor)?;
        if !matches!(self.nodes[idx].kind, NodeKind::Processor) {
            return Err(StreamsError::topology(
                processor,
                format!("`{processor}` is not a processor; only processors use stores"),
            ));
        }
        for s in stores {
            if self.global_stores.contains_key(*s) {
                // Global stores do not tie processors into one sub-topology: every task reads them.
                if !self.nodes[idx].stores.iter().any(|x| x == s) {
                    self.nodes[idx].stores.push(s.to_string());
                }
                continue;
            }
            let def = self.stores.get_mut(*s).ok_or_else(|| {
                StreamsError::topology(*s, format!("store `{s}` is not added to the topology"))
            })?;
            if !def.processors.contains(&idx) {
                def.processors.push(idx);
            }
            if !self.nodes[idx].stores.iter().any(|x| x == s) {
                self.nodes[idx].stores.push(s.to_string());
            }
        }
        Ok(self)
    }

    /// The topology's shape, printed like Kafka Streams' `TopologyDescription`.
    pub fn describe(&self) -> TopologyDescription {
        TopologyDescription::of(self)
    }

    /// Names of the state stores (global stores included).
    pub fn store_names(&self) -> Vec<String> {
        self.stores
            .keys()
            .chain(self.global_stores.keys())
            .cloned()
            .collect()
    }

    /// Every topic the topology reads that is not internal (they must exist before start).
    pub fn source_topics(&self) -> BTreeSet<String> {
        self.nodes
            .iter()
            .filter_map(|n| match &n.kind {
                NodeKind::Source { topics, .. } => Some(topics.clone()),
                _ => None,
            })
            .flatten()
            .filter(|t| !self.repartition_topics.contains_key(t))
            .collect()
    }

    pub(crate) fn source_of(&self, topic: &str) -> Option<&str> {
        self.nodes.iter().find_map(|n| match &n.kind {
            NodeKind::Source { topics, .. } if topics.iter().any(|t| t == topic) => {
                Some(n.name.as_str())
            }
            _ => None,
        })
    }

    pub(crate) fn index_of(&self, name: &str) -> Result<usize> {
        self.by_name
            .get(name)
            .copied()
            .ok_or_else(|| StreamsError::topology(name, format!("no node named `{name}`")))
    }

    fn add_node(
        &mut self,
        name: &str,
        kind: NodeKind,
        factory: ProcessorFactory,
        parents: &[&str],
        in_type: Option<(TypeId, &'static str)>,
        out_type: Option<(TypeId, &'static str)>,
    ) -> Result<usize> {
        if name.is_empty() {
            return Err(StreamsError::topology("", "a node name must not be empty"));
        }
        if self.by_name.contains_key(name) {
            return Err(StreamsError::topology(
                name,
                format!("a node named `{name}` already exists"),
            ));
        }
        let idx = self.nodes.len();
        let mut parent_idx = Vec::with_capacity(parents.len());
        for p in parents {
            let pi = self.index_of(p)?;
            let parent = &self.nodes[pi];
            let Some(out) = parent.out_type else {
                return Err(StreamsError::topology(
                    name,
                    format!("sink `{p}` cannot be the parent of `{name}`"),
                ));
            };
            if let Some(inp) = in_type {
                if inp.0 != out.0 {
                    return Err(StreamsError::topology(
                        name,
                        format!("`{p}` forwards {} but `{name}` takes {}", out.1, inp.1),
                    ));
                }
            }
            parent_idx.push(pi);
        }
        for &pi in &parent_idx {
            self.nodes[pi].children.push(idx);
        }
        self.nodes.push(NodeDef {
            name: name.to_string(),
            kind,
            factory,
            parents: parent_idx,
            children: Vec::new(),
            stores: Vec::new(),
            out_type,
        });
        self.by_name.insert(name.to_string(), idx);
        Ok(idx)
    }

    /// Splits the graph into sub-topologies: connected parts, where processors sharing a store
    /// belong together and repartition topics separate (their sink and source are distinct nodes).
    pub(crate) fn subtopologies(&self) -> Vec<Subtopology> {
        let n = self.nodes.len();
        let mut parent: Vec<usize> = (0..n).collect();
        fn find(p: &mut [usize], mut x: usize) -> usize {
            while p[x] != x {
                p[x] = p[p[x]];
                x = p[x];
            }
            x
        }
        let union = |p: &mut Vec<usize>, a: usize, b: usize| {
            let (ra, rb) = (find(p, a), find(p, b));
            if ra != rb {
                let (lo, hi) = (ra.min(rb), ra.max(rb));
                p[hi] = lo;
            }
        };
        for (i, node) in self.nodes.iter().enumerate() {
            for &p in &node.parents {
                union(&mut parent, i, p);
            }
        }
        for def in self.stores.values() {
            for w in def.processors.windows(2) {
                union(&mut parent, w[0], w[1]);
            }
        }
        let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for i in 0..n {
            let r = find(&mut parent, i);
            groups.entry(r).or_default().push(i);
        }
        groups
            .into_values()
            .enumerate()
            .map(|(id, nodes)| {
                let mut source_topics = Vec::new();
                let mut stores = BTreeSet::new();
                for &i in &nodes {
                    if let NodeKind::Source { topics, .. } = &self.nodes[i].kind {
                        source_topics.extend(topics.iter().cloned());
                    }
                    stores.extend(
                        self.nodes[i]
                            .stores
                            .iter()
                            .filter(|s| !self.global_stores.contains_key(*s))
                            .cloned(),
                    );
                }
                Subtopology {
                    id: id as u32,
                    nodes,
                    source_topics,
                    stores: stores.into_iter().collect(),
                }
            })
            .collect()
    }

    /// Checks what can only be checked once the graph is complete.
    pub(crate) fn validate(&self, ensure_explicit_naming: bool) -> Result<()> {
        for (name, def) in &self.stores {
            if def.processors.is_empty() {
                return Err(StreamsError::topology(
                    name.as_str(),
                    format!("store `{name}` is not connected to any processor"),
                ));
            }
        }
        if ensure_explicit_naming && !self.generated_names.is_empty() {
            let list: Vec<String> = self
                .generated_names
                .iter()
                .map(|(k, n)| format!("{k} `{n}`"))
                .collect();
            return Err(StreamsError::config(
                crate::config::ENSURE_EXPLICIT_NAMING,
                format!(
                    "these names were generated; name them with Named, Grouped or Materialized: {}",
                    list.join(", ")
                ),
            ));
        }
        Ok(())
    }

    /// Opens (empty, in memory) the global stores of this topology, for an instance or a test
    /// driver to fill from their topics.
    pub(crate) fn open_global_stores(&self) -> GlobalStores {
        // Kafka Streams describes global stores after the other sub-topologies; their errors name
        // that sub-topology with partition -1 (they belong to no task).
        let id = TaskId {
            subtopology: self.subtopologies().len() as u32,
            partition: -1,
        };
        GlobalStores::new(
            id,
            self.global_stores
                .iter()
                .map(|(name, def)| (name.as_str(), def.topic.as_str(), &*def.factory)),
        )
    }

    /// The topic name on the cluster: repartition topics carry the application id as a prefix.
    pub(crate) fn physical_topic(&self, application_id: &str, topic: &str) -> String {
        if self.repartition_topics.contains_key(topic) {
            format!("{application_id}-{topic}")
        } else {
            topic.to_string()
        }
    }
}

/// How the engine sees the topology it runs.
impl NodeGraph for Topology {
    fn node_name(&self, node: usize) -> &str {
        &self.nodes[node].name
    }

    fn node_stores(&self, node: usize) -> &[String] {
        &self.nodes[node].stores
    }

    fn physical_topic(&self, application_id: &str, topic: &str) -> String {
        Topology::physical_topic(self, application_id, topic)
    }
}

fn type_of<T: 'static>() -> (TypeId, &'static str) {
    (TypeId::of::<T>(), std::any::type_name::<T>())
}

impl std::fmt::Debug for Topology {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.describe())
    }
}
