//! The examples draw their topologies (`--describe=text|mermaid|dot`), and Graphviz (Debian's
//! `graphviz`, which scripts/test installs) renders the DOT they print.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::*;

fn describe(example_name: &str, format: &str) -> String {
    let out = Command::new(example(example_name))
        .args(["--describe", format, "--application-id", "app"])
        .output()
        .expect("the example runs");
    assert!(out.status.success(), "{example_name} --describe {format}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_examples_print_their_topologies_and_graphviz_renders_them() {
    for name in ["wordcount", "tweets"] {
        let text = describe(name, "text");
        assert!(text.starts_with("Topologies:"), "{text}");
        let mermaid = describe(name, "mermaid");
        assert!(mermaid.starts_with("flowchart TB") && mermaid.contains("subgraph sub1"));
        let dot = describe(name, "dot");
        // Every sub-topology, and the internal topics with the application id.
        let subs = text.matches("Sub-topology:").count();
        assert_eq!(dot.matches("subgraph cluster_").count(), subs, "{dot}");
        assert!(
            dot.contains("-repartition\"") && dot.contains("-changelog\""),
            "{dot}"
        );
        assert!(dot.contains("label=\"app-"), "{dot}");

        let mut render = Command::new("dot")
            .arg("-Tsvg")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("Graphviz `dot` runs (install Debian's graphviz; scripts/test does)");
        render
            .stdin
            .take()
            .unwrap()
            .write_all(dot.as_bytes())
            .unwrap();
        let svg = render.wait_with_output().unwrap();
        assert!(svg.status.success(), "dot rejected {name}'s DOT:\n{dot}");
        assert!(String::from_utf8_lossy(&svg.stdout).contains("<svg"));
    }
}
