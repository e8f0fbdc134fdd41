//! Pictures of a topology: [`TopologyDescription::to_mermaid`] and
//! [`TopologyDescription::to_dot`] draw its sub-topologies, nodes, topics and stores, with the
//! repartition and changelog topics the runtime creates.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::description::TopologyDescription;

/// What a picture draws besides the nodes: topics and stores, each once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Extra {
    /// A topic the application reads or writes (its own input or output).
    Topic,
    /// A repartition topic between two sub-topologies.
    Repartition,
    /// A store's changelog topic.
    Changelog,
    Store,
}

/// The graph of a description, with stable ids for every node, topic and store.
struct Graph<'a> {
    d: &'a TopologyDescription,
    /// Node name -> id.
    nodes: BTreeMap<&'a str, String>,
    /// (kind, label) -> id, in order of first use.
    extras: Vec<(Extra, String, String)>,
    /// (from id, to id, dashed).
    edges: Vec<(String, String, bool)>,
}

impl<'a> Graph<'a> {
    fn new(d: &'a TopologyDescription) -> Self {
        let mut g = Graph {
            d,
            nodes: BTreeMap::new(),
            extras: Vec::new(),
            edges: Vec::new(),
        };
        for s in &d.subtopologies {
            for n in &s.nodes {
                let id = format!("n{}", g.nodes.len());
                g.nodes.insert(&n.name, id);
            }
        }
        for s in &d.subtopologies {
            for n in &s.nodes {
                let me = g.nodes[n.name.as_str()].clone();
                for t in &n.topics {
                    let topic = g.topic(t);
                    match n.kind {
                        "Source" => g.edges.push((topic, me.clone(), false)),
                        _ => g.edges.push((me.clone(), topic, false)),
                    }
                }
                for succ in &n.successors {
                    let to = g.nodes[succ.as_str()].clone();
                    g.edges.push((me.clone(), to, false));
                }
                for store in &n.stores {
                    let id = g.extra(Extra::Store, store.clone());
                    g.edges.push((me.clone(), id.clone(), true));
                    if d.logged.contains(store) {
                        let name = format!("{}-{store}-changelog", g.app());
                        let changelog = g.extra(Extra::Changelog, name);
                        g.edges.push((id, changelog, true));
                    }
                }
            }
        }
        g.edges.dedup();
        g
    }

    fn app(&self) -> &str {
        self.d
            .application_id
            .as_deref()
            .unwrap_or("<application.id>")
    }

    fn topic(&mut self, t: &str) -> String {
        if self.d.repartition.contains(t) {
            let name = format!("{}-{t}", self.app());
            self.extra(Extra::Repartition, name)
        } else {
            self.extra(Extra::Topic, t.to_string())
        }
    }

    fn extra(&mut self, kind: Extra, label: String) -> String {
        if let Some((_, _, id)) = self
            .extras
            .iter()
            .find(|(k, l, _)| *k == kind && *l == label)
        {
            return id.clone();
        }
        let id = format!("x{}", self.extras.len());
        self.extras.push((kind, label, id.clone()));
        id
    }
}

/// Text safe inside a Mermaid `"..."` label.
fn mermaid_text(s: &str) -> String {
    s.replace('"', "#quot;")
        .replace('<', "#lt;")
        .replace('>', "#gt;")
}

/// Text safe inside a DOT `"..."` string.
fn dot_text(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

impl TopologyDescription {
    /// The description in `format`: `text` (Kafka Streams' own), `mermaid` or `dot`; `None`
    /// for another format.
    pub fn render(&self, format: &str) -> Option<String> {
        match format {
            "text" => Some(self.to_string()),
            "mermaid" => Some(self.to_mermaid()),
            "dot" => Some(self.to_dot()),
            _ => None,
        }
    }

    /// The topology as a Mermaid flowchart: a box per sub-topology holding its sources,
    /// processors and sinks; topics as parallelograms (repartition and changelog topics
    /// coloured), stores as cylinders tied to their processors by dotted lines.
    ///
    /// ```
    /// use streams_core::{Topology, serde::Serdes};
    /// let mut t = Topology::new();
    /// t.add_source("in", &["input"], Serdes::string(), Serdes::string()).unwrap();
    /// t.add_sink("out", "output", Serdes::string(), Serdes::string(), &["in"]).unwrap();
    /// let m = t.describe().to_mermaid();
    /// assert!(m.starts_with("flowchart TB"));
    /// assert!(m.contains(r#"[/"input"/]"#) && m.contains("subgraph sub0"));
    /// ```
    pub fn to_mermaid(&self) -> String {
        let g = Graph::new(self);
        let mut out = String::from("flowchart TB\n");
        for s in &self.subtopologies {
            let _ = writeln!(out, "  subgraph sub{}[\"Sub-topology {}\"]", s.id, s.id);
            for n in &s.nodes {
                let id = &g.nodes[n.name.as_str()];
                let label = mermaid_text(&format!("{}: {}", n.kind, n.name));
                let _ = writeln!(out, "    {id}[\"{label}\"]");
            }
            out.push_str("  end\n");
        }
        for (kind, label, id) in &g.extras {
            let label = mermaid_text(label);
            let _ = match kind {
                Extra::Store => writeln!(out, "  {id}[(\"{label}\")]"),
                _ => writeln!(out, "  {id}[/\"{label}\"/]"),
            };
        }
        for (from, to, dashed) in &g.edges {
            let arrow = if *dashed { "-.-" } else { "-->" };
            let _ = writeln!(out, "  {from} {arrow} {to}");
        }
        out.push_str("  classDef repartition fill:#fef3c7,stroke:#b45309\n");
        out.push_str("  classDef changelog fill:#ede9fe,stroke:#6d28d9\n");
        out.push_str("  classDef store fill:#dcfce7,stroke:#15803d\n");
        for (kind, class) in [
            (Extra::Repartition, "repartition"),
            (Extra::Changelog, "changelog"),
            (Extra::Store, "store"),
        ] {
            let ids: Vec<&str> = g
                .extras
                .iter()
                .filter(|(k, _, _)| *k == kind)
                .map(|(_, _, id)| id.as_str())
                .collect();
            if !ids.is_empty() {
                let _ = writeln!(out, "  class {} {class}", ids.join(","));
            }
        }
        out
    }

    /// The topology as a Graphviz DOT digraph (render with `dot -Tsvg`): a cluster per
    /// sub-topology, topics as parallelograms (repartition and changelog topics coloured),
    /// stores as cylinders tied to their processors by dashed lines.
    ///
    /// ```
    /// use streams_core::{Topology, serde::Serdes};
    /// let mut t = Topology::new();
    /// t.add_source("in", &["input"], Serdes::string(), Serdes::string()).unwrap();
    /// t.add_sink("out", "output", Serdes::string(), Serdes::string(), &["in"]).unwrap();
    /// let dot = t.describe().to_dot();
    /// assert!(dot.starts_with("digraph topology {") && dot.contains("subgraph cluster_0"));
    /// ```
    pub fn to_dot(&self) -> String {
        let g = Graph::new(self);
        let mut out = String::from("digraph topology {\n");
        out.push_str("  rankdir=TB;\n");
        out.push_str("  graph [fontname=\"Helvetica\", fontsize=11];\n");
        out.push_str("  node [fontname=\"Helvetica\", fontsize=10];\n");
        out.push_str("  edge [fontname=\"Helvetica\", fontsize=9];\n");
        for s in &self.subtopologies {
            let _ = writeln!(out, "  subgraph cluster_{} {{", s.id);
            let _ = writeln!(
                out,
                "    label=\"Sub-topology {}\"; style=\"rounded\"; color=\"#94a3b8\";",
                s.id
            );
            for n in &s.nodes {
                let id = &g.nodes[n.name.as_str()];
                let fill = match n.kind {
                    "Source" => "#dbeafe",
                    "Sink" => "#fee2e2",
                    _ => "#f1f5f9",
                };
                // `\n` is DOT's line break inside a label.
                let label = format!("{}\\n{}", dot_text(n.kind), dot_text(&n.name));
                let _ = writeln!(
                    out,
                    "    {id} [shape=box, style=\"rounded,filled\", fillcolor=\"{fill}\", label=\"{label}\"];"
                );
            }
            out.push_str("  }\n");
        }
        for (kind, label, id) in &g.extras {
            let (shape, fill) = match kind {
                Extra::Topic => ("parallelogram", "#ffffff"),
                Extra::Repartition => ("parallelogram", "#fef3c7"),
                Extra::Changelog => ("parallelogram", "#ede9fe"),
                Extra::Store => ("cylinder", "#dcfce7"),
            };
            let _ = writeln!(
                out,
                "  {id} [shape={shape}, style=filled, fillcolor=\"{fill}\", label=\"{}\"];",
                dot_text(label)
            );
        }
        for (from, to, dashed) in &g.edges {
            let style = if *dashed {
                " [style=dashed, arrowhead=none]"
            } else {
                ""
            };
            let _ = writeln!(out, "  {from} -> {to}{style};");
        }
        out.push_str("}\n");
        out
    }
}

#[cfg(test)]
mod tests {
    use crate::serde::Serdes;
    use crate::state::Stores;
    use crate::topology::Topology;
    use crate::{Processor, ProcessorContext, Record, Result};

    struct Pass;
    impl Processor for Pass {
        type KIn = String;
        type VIn = String;
        type KOut = String;
        type VOut = String;
        fn process(
            &mut self,
            ctx: &mut ProcessorContext<'_, String, String>,
            r: Record<String, String>,
        ) -> Result<()> {
            ctx.forward(r)
        }
    }

    /// in -> p (store s) -> sink to repartition topic r; r -> q -> out.
    fn topology() -> Topology {
        let mut t = Topology::new();
        t.add_source("in", &["input"], Serdes::string(), Serdes::string())
            .unwrap();
        t.add_processor("p", |_| Ok(Pass), &["in"]).unwrap();
        t.add_state_store(
            Stores::persistent_key_value("s", Serdes::string(), Serdes::i64()),
            &["p"],
        )
        .unwrap();
        t.add_sink("to-r", "r", Serdes::string(), Serdes::string(), &["p"])
            .unwrap();
        t.repartition_topics.insert("r".into(), None);
        t.add_source("from-r", &["r"], Serdes::string(), Serdes::string())
            .unwrap();
        t.add_sink(
            "out",
            "output",
            Serdes::string(),
            Serdes::string(),
            &["from-r"],
        )
        .unwrap();
        t
    }

    #[test]
    fn pictures_show_sub_topologies_topics_stores_and_internal_topics() {
        let d = topology().describe().with_application_id("app");
        let m = d.to_mermaid();
        for part in [
            "subgraph sub0[\"Sub-topology 0\"]",
            "subgraph sub1[\"Sub-topology 1\"]",
            "[/\"input\"/]",
            "[/\"app-r\"/]",
            "[(\"s\")]",
            "[/\"app-s-changelog\"/]",
            "[\"Processor: p\"]",
        ] {
            assert!(m.contains(part), "mermaid lacks {part}:\n{m}");
        }
        // Edges: input -> in -> p, p -.- s -.- changelog, p -> to-r -> app-r -> from-r.
        assert!(m.contains("x0 --> n0"), "{m}");
        assert!(m.contains("n0 --> n1"), "{m}");
        assert!(m.contains("n1 -.- x1") && m.contains("x1 -.- x2"), "{m}");
        assert!(m.contains("class x3 repartition"), "{m}");

        let dot = d.to_dot();
        for part in [
            "subgraph cluster_0 {",
            "subgraph cluster_1 {",
            "shape=cylinder",
            "label=\"app-s-changelog\"",
            "label=\"Processor\\np\"",
            "n1 -> x1 [style=dashed, arrowhead=none];",
        ] {
            assert!(dot.contains(part), "dot lacks {part}:\n{dot}");
        }
        // Without an application id, internal topics say where it goes.
        assert!(topology()
            .describe()
            .to_mermaid()
            .contains("#lt;application.id#gt;-r"));
    }
}
