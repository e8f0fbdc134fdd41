//! [`TopologyDescription`]: the text form of a topology, in Kafka Streams' shape, so that it can
//! be pasted into the tools that visualise Kafka Streams topologies.

use std::fmt;

use super::{NodeKind, Topology};

/// A printable description of a topology's sub-topologies, nodes, topics and stores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopologyDescription {
    subtopologies: Vec<SubtopologyDescription>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct SubtopologyDescription {
    id: u32,
    nodes: Vec<NodeDescription>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct NodeDescription {
    kind: &'static str,
    name: String,
    detail: String,
    successors: Vec<String>,
    predecessors: Vec<String>,
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
                        }
                    })
                    .collect(),
            })
            .collect();
        TopologyDescription { subtopologies }
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
