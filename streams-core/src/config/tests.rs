//! Tests of the configuration: Kafka Streams' names and defaults, refusals naming the property.

use super::security::ClientCert;
use super::*;
use crate::handlers::HandlerResponse;

fn context(headers: &crate::record::Headers) -> crate::handlers::ErrorHandlerContext<'_> {
    crate::handlers::ErrorHandlerContext {
        topic: Some("t"),
        partition: Some(0),
        offset: Some(1),
        timestamp: 2,
        headers,
        processor_node_id: "KSTREAM-SOURCE-0000000000",
        task_id: crate::TaskId {
            subtopology: 0,
            partition: 0,
        },
        source_raw_key: None,
        source_raw_value: None,
    }
}

fn deserialization_response(r: &ResolvedConfig) -> HandlerResponse {
    let h = Vec::new();
    r.handlers
        .deserialization
        .handle(&context(&h), &StreamsError::user("x"))
}

fn processing_response(r: &ResolvedConfig) -> HandlerResponse {
    let h = Vec::new();
    r.handlers
        .processing
        .handle(&context(&h), &StreamsError::user("x"))
}

#[test]
fn defaults_match_kafka_streams() {
    let r = StreamsConfig::new("app", "h:1").resolve().unwrap();
    assert_eq!(r.commit_interval, Duration::from_secs(30));
    assert_eq!(r.cache_max_bytes, 10 * 1024 * 1024);
    assert_eq!(deserialization_response(&r), HandlerResponse::Fail);
    assert_eq!(processing_response(&r), HandlerResponse::Fail);
    assert!(r.handlers.dead_letter_topic.is_none());
    assert_eq!(r.replication_factor, -1);
    assert_eq!(r.consumer["group.id"], "app");
    assert_eq!(r.consumer["auto.offset.reset"], "earliest");
    assert_eq!(r.producer["linger.ms"], "100");
    assert!(r.state_dir.ends_with("kafka-streams"));
}

#[test]
fn missing_and_invalid_values_name_the_property() {
    let e = StreamsConfig::default().resolve().unwrap_err().to_string();
    assert!(e.contains("application.id"), "{e}");
    let e = StreamsConfig::default()
        .set(APPLICATION_ID, "a")
        .resolve()
        .unwrap_err()
        .to_string();
    assert!(e.contains("bootstrap.servers"), "{e}");
    for (k, v) in [
        (COMMIT_INTERVAL_MS, "-5"),
        (PROCESSING_GUARANTEE, "exactly_once"),
        (PROCESSING_GUARANTEE, "exactly_once_beta"),
        (PROCESSING_GUARANTEE, "maybe"),
        (DESERIALIZATION_EXCEPTION_HANDLER, "Whatever"),
        (REPLICATION_FACTOR, "0"),
        (APPLICATION_ID, "a b"),
    ] {
        let e = StreamsConfig::new("app", "h:1")
            .set(k, v)
            .resolve()
            .unwrap_err()
            .to_string();
        assert!(e.contains(k), "{k}={v}: {e}");
    }
}

#[test]
fn assignor_settings_are_read_with_kafka_streams_names_and_defaults() {
    let c = StreamsConfig::new("app", "h:1");
    assert_eq!(c.assignment_config().unwrap(), AssignmentConfig::default());
    assert!(c.client_tags().unwrap().is_empty());
    let c = c
        .set(NUM_STANDBY_REPLICAS, "2")
        .set(MAX_WARMUP_REPLICAS, "4")
        .set(ACCEPTABLE_RECOVERY_LAG, "0")
        .set(PROBING_REBALANCE_INTERVAL_MS, "60000")
        .set(RACK_AWARE_ASSIGNMENT_TAGS, " zone , rack")
        .set("client.tag.zone", "eu-1a")
        .set("client.tag.rack", "r7");
    let a = c.assignment_config().unwrap();
    assert_eq!(a.num_standby_replicas, 2);
    assert_eq!(a.max_warmup_replicas, 4);
    assert_eq!(a.acceptable_recovery_lag, 0);
    assert_eq!(a.probing_rebalance_interval, Duration::from_secs(60));
    assert_eq!(a.rack_aware_assignment_tags, ["zone", "rack"]);
    assert_eq!(c.client_tags().unwrap()["zone"], "eu-1a");
}

#[test]
fn assignor_settings_reach_the_resolved_configuration() {
    let r = StreamsConfig::new("app", "h:1")
        .set(NUM_STANDBY_REPLICAS, "1")
        .set(MAX_WARMUP_REPLICAS, "3")
        .set(ACCEPTABLE_RECOVERY_LAG, "5")
        .set(PROBING_REBALANCE_INTERVAL_MS, "120000")
        .set(RACK_AWARE_ASSIGNMENT_TAGS, "zone")
        .set("client.tag.zone", "a")
        .set(APPLICATION_SERVER, "node-1.example:8080")
        .resolve()
        .unwrap();
    assert_eq!(r.assignment.num_standby_replicas, 1);
    assert_eq!(r.assignment.max_warmup_replicas, 3);
    assert_eq!(r.assignment.acceptable_recovery_lag, 5);
    assert_eq!(
        r.assignment.probing_rebalance_interval,
        Duration::from_secs(120)
    );
    assert_eq!(r.assignment.rack_aware_assignment_tags, ["zone"]);
    assert_eq!(r.client_tags["zone"], "a");
    let host = r.application_server.unwrap();
    assert_eq!((host.host.as_str(), host.port), ("node-1.example", 8080));
    // Not passed on to the Kafka clients, which would reject them.
    assert!(is_streams_property("client.tag.zone"));
    assert!(!r.consumer.contains_key("client.tag.zone"));
    assert!(!r.consumer.contains_key(APPLICATION_SERVER));
    for bad in ["node-1", ":80", "h:port", "h:70000"] {
        let e = StreamsConfig::new("app", "h:1")
            .set(APPLICATION_SERVER, bad)
            .resolve()
            .unwrap_err()
            .to_string();
        assert!(e.contains(APPLICATION_SERVER) && e.contains(bad), "{e}");
    }
}

#[test]
fn invalid_assignor_settings_name_the_property() {
    for (k, v, extra) in [
        (MAX_WARMUP_REPLICAS, "0", None),
        (ACCEPTABLE_RECOVERY_LAG, "-1", None),
        (PROBING_REBALANCE_INTERVAL_MS, "59999", None),
        (NUM_STANDBY_REPLICAS, "x", None),
        (RACK_AWARE_ASSIGNMENT_TAGS, "zone", None),
        (RACK_AWARE_ASSIGNMENT_TAGS, "a,b,c,d,e,f", None),
        ("client.tag.k", "v".repeat(31).leak() as &str, None),
        ("client.tag.abcdefghijklmnopqrstu", "v", None),
        ("client.tag.", "v", None),
        (CLIENT_TAG_PREFIX, "", Some(6)),
    ] {
        let mut c = StreamsConfig::new("app", "h:1");
        match extra {
            Some(n) => {
                for i in 0..n {
                    c = c.set(format!("client.tag.k{i}"), "v");
                }
            }
            None => c = c.set(k, v),
        }
        let e = c.assignment_config().unwrap_err().to_string();
        assert!(e.contains(k), "{k}={v}: {e}");
    }
}

#[test]
fn settings_the_runtime_depends_on_are_refused_naming_the_property() {
    for (k, v) in [
        (
            "consumer.partition.assignment.strategy",
            "cooperative-sticky",
        ),
        ("partition.assignment.strategy", "range"),
        ("consumer.enable.auto.commit", "true"),
        ("enable.auto.commit", "true"),
    ] {
        let e = StreamsConfig::new("app", "h:1")
            .set(k, v)
            .resolve()
            .unwrap_err()
            .to_string();
        assert!(e.contains(k) && e.contains(v), "{k}={v}: {e}");
    }
    // Asking for what the runtime does anyway is fine.
    let r = StreamsConfig::new("app", "h:1")
        .set("enable.auto.commit", "false")
        .resolve()
        .unwrap();
    assert_eq!(r.consumer["enable.auto.commit"], "false");
    assert!(!r.consumer.contains_key("partition.assignment.strategy"));
}

#[test]
fn prefixes_route_client_properties() {
    let r = StreamsConfig::new("app", "h:1")
        .set("consumer.fetch.wait.max.ms", "10")
        .set("producer.linger.ms", "5")
        .set("admin.request.timeout.ms", "1000")
        .set("topic.min.insync.replicas", "1")
        .set("socket.timeout.ms", "2000")
        .set(
            DESERIALIZATION_EXCEPTION_HANDLER,
            "org.apache.kafka.streams.errors.LogAndContinueExceptionHandler",
        )
        .resolve()
        .unwrap();
    assert_eq!(r.consumer["fetch.wait.max.ms"], "10");
    assert_eq!(r.producer["linger.ms"], "5");
    assert!(!r.producer.contains_key("fetch.wait.max.ms"));
    assert_eq!(r.admin["request.timeout.ms"], "1000");
    assert_eq!(r.topic["min.insync.replicas"], "1");
    assert_eq!(r.consumer["socket.timeout.ms"], "2000");
    assert_eq!(r.producer["socket.timeout.ms"], "2000");
    assert_eq!(deserialization_response(&r), HandlerResponse::Continue);
    assert!(!r.consumer.contains_key(COMMIT_INTERVAL_MS));
}

#[test]
fn consumer_prefetch_is_bounded_and_refilled_promptly_unless_overridden() {
    let r = StreamsConfig::new("app", "h:1").resolve().unwrap();
    assert_eq!(r.consumer["queued.min.messages"], "20000");
    assert_eq!(r.consumer["queued.max.messages.kbytes"], "16384");
    assert_eq!(r.consumer["fetch.queue.backoff.ms"], "10");
    assert!(!r.producer.contains_key("fetch.queue.backoff.ms"));
    let r = StreamsConfig::new("app", "h:1")
        .set("consumer.fetch.queue.backoff.ms", "1000")
        .resolve()
        .unwrap();
    assert_eq!(r.consumer["fetch.queue.backoff.ms"], "1000");
}

#[test]
fn security_settings_the_clients_and_the_member_cannot_honour_are_refused() {
    for (props, named) in [
        (
            vec![("security.protocol", "carrier-pigeon")],
            "security.protocol",
        ),
        (
            vec![
                ("security.protocol", "SSL"),
                ("ssl.certificate.location", "client.pem"),
            ],
            "ssl.key.location",
        ),
        (
            vec![
                ("security.protocol", "SSL"),
                ("ssl.keystore.location", "client.p12"),
            ],
            "ssl.keystore.location",
        ),
        (
            vec![
                ("security.protocol", "SSL"),
                ("ssl.certificate.location", "client.pem"),
                ("ssl.key.location", "client.key"),
                ("ssl.key.password", "k"),
            ],
            "ssl.key.password",
        ),
        (
            vec![
                ("security.protocol", "SASL_SSL"),
                ("ssl.endpoint.identification.algorithm", "none"),
            ],
            "ssl.endpoint.identification.algorithm",
        ),
        (
            vec![
                ("security.protocol", "SASL_PLAINTEXT"),
                ("sasl.mechanism", "OAUTHBEARER"),
            ],
            "sasl.mechanism",
        ),
        (
            vec![
                ("security.protocol", "SASL_PLAINTEXT"),
                ("sasl.mechanisms", "PLAIN"),
                ("sasl.password", "p"),
            ],
            "sasl.username",
        ),
    ] {
        let mut c = StreamsConfig::new("app", "h:1");
        for (k, v) in &props {
            c = c.set(*k, *v);
        }
        let e = c.resolve().unwrap_err().to_string();
        assert!(e.contains(named), "{props:?}: {e}");
    }
    let r = StreamsConfig::new("app", "h:1")
        .set("consumer.security.protocol", "sasl_plaintext")
        .set("sasl.mechanism", "PLAIN")
        .set("sasl.username", "u")
        .set("sasl.password", "secret")
        .resolve()
        .unwrap();
    assert_eq!(
        r.security,
        Security {
            tls: None,
            sasl: Some(Sasl {
                mechanism: Mechanism::Plain,
                username: "u".into(),
                password: "secret".into()
            })
        }
    );
    assert!(!format!("{:?}", r.security).contains("secret"));
    let r = StreamsConfig::new("app", "h:1")
        .set("security.protocol", "SASL_SSL")
        .set("ssl.ca.location", "ca.pem")
        .set("ssl.certificate.location", "client.pem")
        .set("ssl.key.location", "client.key")
        .set("sasl.mechanism", "SCRAM-SHA-512")
        .set("sasl.username", "u")
        .set("sasl.password", "secret")
        .resolve()
        .unwrap();
    let tls = r.security.tls.as_ref().unwrap();
    assert_eq!(tls.ca.as_deref(), Some(std::path::Path::new("ca.pem")));
    assert_eq!(
        tls.client,
        Some(ClientCert {
            certificate: Pem::File("client.pem".into()),
            key: Pem::File("client.key".into()),
        })
    );
    assert_eq!(
        r.security.sasl.as_ref().unwrap().mechanism,
        Mechanism::ScramSha512
    );
    let r = StreamsConfig::new("app", "h:1")
        .set("security.protocol", "ssl")
        .resolve()
        .unwrap();
    assert_eq!(
        r.security,
        Security {
            tls: Some(Tls {
                ca: None,
                client: None
            }),
            sasl: None
        }
    );
}

#[test]
fn group_instance_id_is_the_members_and_never_reaches_the_clients() {
    let r = StreamsConfig::new("app", "h:1")
        .set("consumer.group.instance.id", "instance-1")
        .resolve()
        .unwrap();
    assert_eq!(r.group_instance_id.as_deref(), Some("instance-1"));
    assert!(!r.consumer.contains_key("group.instance.id"));
    let r = StreamsConfig::new("app", "h:1")
        .set("group.instance.id", "instance-2")
        .resolve()
        .unwrap();
    assert_eq!(r.group_instance_id.as_deref(), Some("instance-2"));
    assert!(!r.producer.contains_key("group.instance.id"));
    let e = StreamsConfig::new("app", "h:1")
        .set("group.instance.id", " ")
        .resolve()
        .unwrap_err()
        .to_string();
    assert!(e.contains("group.instance.id"), "{e}");
}

#[test]
fn exactly_once_v2_reads_committed_data_and_commits_every_100_ms() {
    let r = StreamsConfig::new("app", "h:1")
        .set(PROCESSING_GUARANTEE, "exactly_once_v2")
        .resolve()
        .unwrap();
    assert!(r.exactly_once);
    assert_eq!(r.commit_interval, Duration::from_millis(100));
    assert_eq!(r.consumer["isolation.level"], "read_committed");
    assert_eq!(r.producer["transaction.timeout.ms"], "10000");
    let r = StreamsConfig::new("app", "h:1")
        .set(PROCESSING_GUARANTEE, "exactly_once_v2")
        .set(COMMIT_INTERVAL_MS, "1000")
        .resolve()
        .unwrap();
    assert_eq!(r.commit_interval, Duration::from_millis(1000));
    let r = StreamsConfig::new("app", "h:1").resolve().unwrap();
    assert!(!r.exactly_once);
    assert!(!r.consumer.contains_key("isolation.level"));
    for (k, v) in [
        ("consumer.isolation.level", "read_uncommitted"),
        ("producer.transactional.id", "mine"),
        ("enable.idempotence", "false"),
    ] {
        let e = StreamsConfig::new("app", "h:1")
            .set(PROCESSING_GUARANTEE, "exactly_once_v2")
            .set(k, v)
            .resolve()
            .unwrap_err()
            .to_string();
        let named = k
            .trim_start_matches("consumer.")
            .trim_start_matches("producer.");
        assert!(e.contains(named), "{k}: {e}");
    }
}

#[test]
fn metrics_recording_level_is_read_and_checked() {
    let r = StreamsConfig::new("a", "b:9092")
        .set("metrics.recording.level", "DEBUG")
        .resolve()
        .unwrap();
    assert_eq!(r.recording_level, crate::metrics::RecordingLevel::Debug);
    let e = StreamsConfig::new("a", "b:9092")
        .set("metrics.recording.level", "verbose")
        .resolve()
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("metrics.recording.level") && e.contains("verbose"),
        "{e}"
    );
}

#[test]
fn http_listen_becomes_the_application_server_unless_it_cannot_be_reached() {
    let r = StreamsConfig::new("a", "b:9092")
        .set("http.listen", "127.0.0.1:8080")
        .resolve()
        .unwrap();
    let host = r.application_server.unwrap();
    assert_eq!((host.host.as_str(), host.port), ("127.0.0.1", 8080));
    for (listen, why) in [
        ("0.0.0.0:8080", "application.server"),
        ("127.0.0.1:0", "port"),
        ("localhost", "ip:port"),
    ] {
        let e = StreamsConfig::new("a", "b:9092")
            .set("http.listen", listen)
            .resolve()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("http.listen") && e.contains(why),
            "{listen}: {e}"
        );
    }
    let r = StreamsConfig::new("a", "b:9092")
        .set("http.listen", "0.0.0.0:8080")
        .set("application.server", "host1:8080")
        .resolve()
        .unwrap();
    assert_eq!(r.application_server.unwrap().host, "host1");
}

/// Each property this library reads, with a value other than its default (and what it needs
/// beside it).
type Walked = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

const WALK: &[Walked] = &[
    (APPLICATION_ID, "other-app", &[]),
    (BOOTSTRAP_SERVERS, "other:9092", &[]),
    (NUM_STREAM_THREADS, "2", &[]),
    (STATE_DIR, "relative-state", &[]),
    (PROCESSING_GUARANTEE, "exactly_once_v2", &[]),
    (COMMIT_INTERVAL_MS, "1000", &[]),
    (STATESTORE_CACHE_MAX_BYTES, "0", &[]),
    (
        STATESTORE_UNCOMMITTED_MAX_BYTES,
        "1000",
        &[(PROCESSING_GUARANTEE, "exactly_once_v2")],
    ),
    ("cache.max.bytes.buffering", "0", &[]),
    (DESERIALIZATION_EXCEPTION_HANDLER, "log-and-continue", &[]),
    (
        "default.deserialization.exception.handler",
        "log-and-continue",
        &[],
    ),
    (PROCESSING_EXCEPTION_HANDLER, "log-and-continue", &[]),
    (PRODUCTION_EXCEPTION_HANDLER, "log-and-continue", &[]),
    (
        "default.production.exception.handler",
        "log-and-continue",
        &[],
    ),
    (DEAD_LETTER_QUEUE_TOPIC_NAME, "dead-letters", &[]),
    (MAX_TASK_IDLE_MS, "100", &[]),
    (BUFFERED_RECORDS_PER_PARTITION, "10", &[]),
    (REPLICATION_FACTOR, "3", &[]),
    (POLL_MS, "10", &[]),
    (NUM_STANDBY_REPLICAS, "1", &[]),
    (ACCEPTABLE_RECOVERY_LAG, "5", &[]),
    (MAX_WARMUP_REPLICAS, "3", &[]),
    (PROBING_REBALANCE_INTERVAL_MS, "120000", &[]),
    (
        RACK_AWARE_ASSIGNMENT_TAGS,
        "zone",
        &[("client.tag.zone", "a")],
    ),
    (APPLICATION_SERVER, "host:1", &[]),
    (HTTP_LISTEN, "127.0.0.1:8080", &[]),
    (HTTP_FORWARD_TIMEOUT_MS, "100", &[]),
    (METRICS_RECORDING_LEVEL, "DEBUG", &[]),
    (ENSURE_EXPLICIT_NAMING, "true", &[]),
    (TASK_TIMEOUT_MS, "1000", &[]),
    (REPARTITION_PURGE_INTERVAL_MS, "1000", &[]),
    (TOPOLOGY_OPTIMIZATION, "all", &[]),
    (WINDOWSTORE_CHANGELOG_ADDITIONAL_RETENTION_MS, "0", &[]),
    (STATE_CLEANUP_DELAY_MS, "1000", &[]),
    (CLIENT_ID, "my-client", &[]),
    (
        "default.key.serde",
        "org.apache.kafka.common.serialization.Serdes$StringSerde",
        &[],
    ),
    (
        "default.value.serde",
        "org.apache.kafka.common.serialization.Serdes$StringSerde",
        &[],
    ),
];

/// What a resolved configuration does: its fields, and what its handlers answer.
fn fingerprint(r: &ResolvedConfig) -> String {
    let h = Vec::new();
    let record = crate::handlers::ProducedRecord {
        topic: "t",
        partition: None,
        key: None,
        value: None,
        timestamp: 0,
    };
    let production = r.handlers.production.handle(
        &context(&h),
        &record,
        &StreamsError::Production {
            topic: "t".into(),
            message: "too large".into(),
            retriable: false,
        },
    );
    format!(
        "{r:?} {:?} {:?} {production:?}",
        deserialization_response(r),
        processing_response(r)
    )
}

#[test]
fn every_property_read_changes_the_configuration_or_is_refused_naming_itself() {
    // The walk covers every property there is, and no other.
    let mut walked: Vec<&str> = WALK.iter().map(|(k, _, _)| *k).collect();
    let mut known: Vec<&str> = STREAMS_PROPERTIES
        .iter()
        .copied()
        .chain(REFUSED.iter().map(|(k, _)| *k))
        .collect();
    walked.sort();
    known.sort();
    assert_eq!(walked, known);

    let base = StreamsConfig::new("app", "h:1");
    for (key, value, with) in WALK {
        // Compared with the same configuration without the property.
        let mut without = base.clone();
        for (k, v) in *with {
            without = without.set(*k, *v);
        }
        let baseline = fingerprint(&without.resolve().unwrap());
        let c = without.set(*key, *value);
        match c.resolve() {
            Ok(r) => assert_ne!(
                fingerprint(&r),
                baseline,
                "`{key}={value}` is accepted but changes nothing"
            ),
            Err(StreamsError::Config { property, .. }) => {
                assert_eq!(
                    property, *key,
                    "`{key}={value}` is refused naming another property"
                )
            }
            Err(e) => panic!("`{key}={value}`: {e}"),
        }
    }
    // What is refused says why.
    let e = base
        .clone()
        .set(TOPOLOGY_OPTIMIZATION, "all")
        .resolve()
        .unwrap_err();
    assert!(e.to_string().contains("only `none` is accepted"), "{e}");
    let e = base.set("default.value.serde", "x").resolve().unwrap_err();
    assert!(
        e.to_string().contains("StreamsBuilder::with_default_serde"),
        "{e}"
    );
}
