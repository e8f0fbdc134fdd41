//! [`TopologyDescription`]: the text form of a topology, in Kafka Streams' shape, so that it can
//! be pasted into the tools that visualise Kafka Streams topologies; `picture` draws it as
//! Mermaid or Graphviz DOT.

use std::collections::BTreeSet;
use std::fmt;

use super::{NodeKind, Topology};

/// A printable description of a topology's sub-topologies, nodes, topics and stores.
///
/// `to_string()` is Kafka Streams' text; [`to_mermaid`](Self::to_mermaid) and
/// [`to_dot`](Self::to_dot) draw the same graph with its topics and stores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopologyDescription {
    pub(super) subtopologies: Vec<SubtopologyDescription>,
    /// Repartition topics, unprefixed.
    pub(super) repartition: BTreeSet<String>,
    /// Stores with a changelog topic.
    pub(super) logged: BTreeSet<String>,
    /// The application id internal topic names start with, once known.
    pub(super) application_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SubtopologyDescription {
    pub(super) id: u32,
    pub(super) nodes: Vec<NodeDescription>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct NodeDescription {
    pub(super) kind: &'static str,
    pub(super) name: String,
    detail: String,
    pub(super) successors: Vec<String>,
    predecessors: Vec<String>,
    /// A source's topics, or a sink's topic (none when chosen per record).
    pub(super) topics: Vec<String>,
    pub(super) stores: Vec<String>,
}

impl TopologyDescription {
    pub(crate) fn of(t: &Topology) -> Self {
        let subtopologies = t
            .subtopologies()
            .into_iter()
            .map(|s| SubtopologyDescription {
                id: s.id,
                nodes: s
                    .nodes
                    .iter()
                    .map(|&i| {
                        let n = &t.nodes[i];
                        let topics = match &n.kind {
                            NodeKind::Source { topics, .. } => topics.clone(),
                            NodeKind::Sink { topic } => topic.iter().cloned().collect(),
                            NodeKind::Processor => Vec::new(),
                        };
                        let (kind, detail) = match &n.kind {
                            NodeKind::Source { topics, .. } => {
                                ("Source", format!("(topics: [{}])", topics.join(", ")))
                            }
                            NodeKind::Processor => {
                                ("Processor", format!("(stores: [{}])", n.stores.join(", ")))
                            }
                            NodeKind::Sink { topic: Some(topic) } => {
                                ("Sink", format!("(topic: {topic})"))
                            }
                            NodeKind::Sink { topic: None } => (
                                "Sink",
                                "(extractor class: topic chosen per record)".to_string(),
                            ),
                        };
                        NodeDescription {
                            kind,
                            name: n.name.clone(),
                            detail,
                            successors: n
                                .children
                                .iter()
                                .map(|&c| t.nodes[c].name.clone())
                                .collect(),
                            predecessors: n
                                .parents
                                .iter()
                                .map(|&p| t.nodes[p].name.clone())
                                .collect(),
                            topics,
                            stores: n.stores.clone(),
                        }
                    })
                    .collect(),
            })
            .collect();
        TopologyDescription {
            subtopologies,
            repartition: t.repartition_topics.keys().cloned().collect(),
            logged: t
                .stores
                .iter()
                .filter(|(_, d)| d.factory.logging())
                .map(|(n, _)| n.clone())
                .collect(),
            application_id: None,
        }
    }

    /// Names internal topics (repartition and changelog topics) in pictures with this
    /// application id, as they are named on the cluster; without it they read
    /// `<application.id>-...`.
    pub fn with_application_id(mut self, application_id: &str) -> Self {
        self.application_id = Some(application_id.to_string());
        self
    }

    /// Number of sub-topologies.
    pub fn subtopology_count(&self) -> usize {
        self.subtopologies.len()
    }
}

impl fmt::Display for TopologyDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Topologies:")?;
        for (i, s) in self.subtopologies.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            writeln!(f, "   Sub-topology: {}", s.id)?;
            for n in &s.nodes {
                writeln!(f, "    {}: {} {}", n.kind, n.name, n.detail)?;
                if n.kind != "Sink" {
                    let succ = if n.successors.is_empty() {
                        "none".to_string()
                    } else {
                        n.successors.join(", ")
                    };
                    writeln!(f, "      --> {succ}")?;
                }
                if n.kind != "Source" {
                    let pred = if n.predecessors.is_empty() {
                        "none".to_string()
                    } else {
                        n.predecessors.join(", ")
                    };
                    writeln!(f, "      <-- {pred}")?;
                }
            }
        }
        Ok(())
    }
}
