//! Exactly-once on a three-node Apache Kafka cluster (`scripts/kafka-testbed start --nodes 3`:
//! replication factor 3, `min.insync.replicas=2`), with the node that coordinates the
//! application's group killed (kill -9) while input flows: the application recovers on the
//! other two, and its output, read `read_committed`, is still exact.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use rdkafka::consumer::{BaseConsumer, Consumer};

const EOS: (&str, &str) = ("processing.guarantee", "exactly_once_v2");

/// The three-node test bed `scripts/test` started: its bootstrap servers and its
/// `KAFKA_TESTBED_STATE` directory (for `scripts/kafka-testbed kill-node`). A missing variable
/// fails the test.
fn cluster() -> (String, String) {
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| {
            panic!("{name} must be set by scripts/test from the three-node Kafka test bed")
        })
    };
    (
        var("STREAMS_TEST_CLUSTER_BOOTSTRAP_SERVERS"),
        var("STREAMS_TEST_CLUSTER_STATE"),
    )
}

/// Runs `scripts/kafka-testbed <args>` on the three-node bed.
fn testbed(state: &str, args: &[&str]) {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/kafka-testbed");
    let status = Command::new(script)
        .args(args)
        .env("KAFKA_TESTBED_STATE", state)
        .status()
        .expect("run scripts/kafka-testbed");
    assert!(status.success(), "scripts/kafka-testbed {args:?}: {status}");
}

/// Starts the killed node again when the test ends, passed or not, so that the bed has three
/// nodes for whatever runs next.
struct Restart<'a> {
    state: &'a str,
    node: i32,
}

impl Drop for Restart<'_> {
    fn drop(&mut self) {
        testbed(self.state, &["start-node", &self.node.to_string()]);
    }
}

/// Kafka's `__consumer_offsets` partition for `group`: Java's `String.hashCode`, made
/// non-negative, modulo the topic's partitions.
fn offsets_partition(group: &str, partitions: i32) -> i32 {
    let h = group
        .encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(c as i32));
    let positive = if h == i32::MIN { 0 } else { h.abs() };
    positive % partitions
}

/// The broker that leads the group's `__consumer_offsets` partition: its coordinator.
fn group_coordinator(bootstrap: &str, group: &str) -> i32 {
    let consumer: BaseConsumer = rdkafka::config::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("metadata client");
    let md = consumer
        .fetch_metadata(Some("__consumer_offsets"), Duration::from_secs(30))
        .expect("metadata of __consumer_offsets");
    let topic = &md.topics()[0];
    let p = offsets_partition(group, topic.partitions().len() as i32);
    topic
        .partitions()
        .iter()
        .find(|m| m.id() == p)
        .map(|m| m.leader())
        .expect("the group's offsets partition")
}

#[test]
fn kill_minus_9_of_the_group_coordinator_node_keeps_every_update_exactly_once() {
    capture_logs();
    let (bootstrap, state) = cluster();
    let wc = WordCount::with_letter_sums(&bootstrap, 2);
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let input = FlowingInput::new(300, 20);
    let settings = [EOS, ("consumer.session.timeout.ms", "10000")];
    let (mut a, _) = wc.start_with(d1.path(), &settings);
    let (mut b, _) = wc.start_with(d2.path(), &settings);
    let producer = input.produce(&bootstrap, &wc.input);
    // Kill once the application has committed something, while input still flows.
    read_committed_updates(&bootstrap, &wc.output, Duration::from_secs(120), |u| {
        u.values().map(Vec::len).sum::<usize>() > 100
    });
    let node = group_coordinator(&bootstrap, &wc.app_id);
    eprintln!(
        "killing node {node}, the coordinator of group {}",
        wc.app_id
    );
    testbed(&state, &["kill-node", &node.to_string()]);
    let _restart = Restart {
        state: &state,
        node,
    };
    producer.join().unwrap();
    assert_output_exactly_once(&wc, &input, Duration::from_secs(240));
    a.close().unwrap();
    b.close().unwrap();
}

#[test]
fn the_offsets_partition_is_javas_string_hash() {
    // Java: "streams-wordcount".hashCode() == 1104121835, and 1104121835 % 50 == 35.
    assert_eq!(offsets_partition("streams-wordcount", 50), 35);
    // A negative hash: "wc-12345-678-9".hashCode() == -1308426776; Math.abs(..) % 50 == 26.
    assert_eq!(offsets_partition("wc-12345-678-9", 50), 26);
    assert_eq!(offsets_partition("Über-gröup", 50), 22);
    assert_eq!(offsets_partition("", 50), 0);
}
