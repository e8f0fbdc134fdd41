//! Logging in to real clusters, on the Apache Kafka test bed's SASL and TLS listeners (the
//! bundled broker has neither): PLAIN and SCRAM, TLS with the test bed's throwaway CA, and a
//! client certificate where the broker requires one. rdkafka's clients and our group member
//! log in alike; refusals fail start naming the broker and what was refused.

mod common;

use common::*;
use streams::KafkaStreams;

/// Starts the word count with `props` and checks it counts exactly, then closes it.
fn counts_exactly(wc: &WordCount, props: &[(&str, &str)], seed: u64) {
    let plain = kafka_bootstrap();
    let dir = tempfile::tempdir().unwrap();
    let (mut app, _) = wc.start_with(dir.path(), props);
    let input = lines(seed, 300);
    produce_lines(&plain, &wc.input, &input);
    let expected = expected_counts(&input);
    assert_eq!(read_counts(&plain, &wc.output, &expected), expected);
    app.close().unwrap();
}

/// Starts the word count with `props` and returns start's error.
fn start_error(wc: &WordCount, props: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let topology = wordcount::topology(&wc.input, &wc.output).unwrap();
    let mut config = wc.config(dir.path());
    for (k, v) in props {
        config = config.set(*k, *v);
    }
    let mut app = KafkaStreams::new(topology, config).unwrap();
    app.start().unwrap_err().to_string()
}

/// The Apache Kafka test bed's SASL_PLAINTEXT listener (the bundled broker has no SASL): with
/// the right credentials the application counts exactly, its group member logging in like
/// its Kafka clients; with a wrong password, start fails naming the broker and the mechanism.
#[test]
fn the_application_logs_in_with_sasl_plain_and_wrong_credentials_fail_start() {
    let plain = kafka_bootstrap();
    let sasl = kafka_sasl_bootstrap();
    let mut wc = WordCount::new(&plain, 2);
    wc.bootstrap = sasl.clone();
    let login = |password: &'static str| {
        [
            ("security.protocol", "SASL_PLAINTEXT"),
            ("sasl.mechanism", "PLAIN"),
            ("sasl.username", "streams"),
            ("sasl.password", password),
        ]
    };
    let dir = tempfile::tempdir().unwrap();
    let (mut app, _) = wc.start_with(dir.path(), &login("streams-secret"));
    let input = lines(61, 300);
    produce_lines(&plain, &wc.input, &input);
    let expected = expected_counts(&input);
    assert_eq!(read_counts(&plain, &wc.output, &expected), expected);
    app.close().unwrap();

    let topology = wordcount::topology(&wc.input, &wc.output).unwrap();
    let mut config = wc.config(dir.path());
    for (k, v) in login("wrong") {
        config = config.set(k, v);
    }
    let mut app = KafkaStreams::new(topology, config).unwrap();
    let e = app.start().unwrap_err().to_string();
    assert!(
        e.contains(&sasl) && e.contains("PLAIN") && e.contains("SaslAuthenticationFailed"),
        "{e}"
    );
}

/// The Apache Kafka test bed's SASL_SSL listener, its certificate from a throwaway CA: with
/// `ssl.ca.location` and the right credentials the application counts exactly (rdkafka's
/// clients and the group member both over TLS); with a wrong password start fails naming the
/// broker and the mechanism; without the CA (the system's certificates do not know it) start
/// fails naming the TLS handshake.
#[test]
fn the_application_runs_over_sasl_ssl_and_refusals_name_the_broker() {
    let plain = kafka_bootstrap();
    let (sasl_ssl, ca) = kafka_sasl_ssl();
    let mut wc = WordCount::new(&plain, 2);
    wc.bootstrap = sasl_ssl.clone();
    let login = |password: &'static str, ca: Option<&str>| {
        let mut props = vec![
            ("security.protocol".to_string(), "SASL_SSL".to_string()),
            ("sasl.mechanism".to_string(), "PLAIN".to_string()),
            ("sasl.username".to_string(), "streams".to_string()),
            ("sasl.password".to_string(), password.to_string()),
        ];
        if let Some(ca) = ca {
            props.push(("ssl.ca.location".to_string(), ca.to_string()));
        }
        props
    };
    let dir = tempfile::tempdir().unwrap();
    let good = login("streams-secret", Some(&ca));
    let good: Vec<(&str, &str)> = good.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (mut app, _) = wc.start_with(dir.path(), &good);
    let input = lines(62, 300);
    produce_lines(&plain, &wc.input, &input);
    let expected = expected_counts(&input);
    assert_eq!(read_counts(&plain, &wc.output, &expected), expected);
    app.close().unwrap();

    for (props, what) in [
        (login("wrong", Some(&ca)), "SaslAuthenticationFailed"),
        (login("streams-secret", None), "TLS handshake"),
    ] {
        let topology = wordcount::topology(&wc.input, &wc.output).unwrap();
        let mut config = wc.config(dir.path());
        for (k, v) in props {
            config = config.set(k, v);
        }
        let mut app = KafkaStreams::new(topology, config).unwrap();
        let e = app.start().unwrap_err().to_string();
        assert!(e.contains(&sasl_ssl) && e.contains(what), "{e}");
    }
}

/// SCRAM-SHA-256 over SASL_PLAINTEXT and SCRAM-SHA-512 over SASL_SSL (the test bed's user is
/// created with both at format time): the application counts exactly; a wrong password fails
/// start naming the broker and the mechanism.
#[test]
fn the_application_logs_in_with_scram_sha_256_and_sha_512() {
    let plain = kafka_bootstrap();
    let sasl = kafka_sasl_bootstrap();
    let (sasl_ssl, ca) = kafka_sasl_ssl();
    let scram = |mechanism: &'static str, password: &'static str| {
        [
            ("sasl.mechanism", mechanism),
            ("sasl.username", "streams"),
            ("sasl.password", password),
        ]
    };
    let mut wc = WordCount::new(&plain, 2);
    wc.bootstrap = sasl.clone();
    let mut props = vec![("security.protocol", "SASL_PLAINTEXT")];
    props.extend(scram("SCRAM-SHA-256", "streams-secret"));
    counts_exactly(&wc, &props, 63);

    let mut wc = WordCount::new(&plain, 2);
    wc.bootstrap = sasl_ssl.clone();
    let mut props = vec![
        ("security.protocol", "SASL_SSL"),
        ("ssl.ca.location", ca.as_str()),
    ];
    props.extend(scram("SCRAM-SHA-512", "streams-secret"));
    counts_exactly(&wc, &props, 64);

    let mut props = vec![
        ("security.protocol", "SASL_SSL"),
        ("ssl.ca.location", ca.as_str()),
    ];
    props.extend(scram("SCRAM-SHA-512", "wrong"));
    let e = start_error(&wc, &props);
    assert!(
        e.contains(&sasl_ssl)
            && e.contains("SCRAM-SHA-512")
            && e.contains("SaslAuthenticationFailed"),
        "{e}"
    );
}

/// The test bed's SSL listener requires a client certificate (`ssl.client.auth=required`):
/// with the one the test bed's CA signed, the application counts exactly (rdkafka's clients and
/// the group member both present it); without one, start fails naming the broker.
#[test]
fn the_application_presents_a_client_certificate_where_one_is_required() {
    let plain = kafka_bootstrap();
    let (mtls, ca, certificate, key) = kafka_mtls();
    let mut wc = WordCount::new(&plain, 2);
    wc.bootstrap = mtls.clone();
    counts_exactly(
        &wc,
        &[
            ("security.protocol", "SSL"),
            ("ssl.ca.location", ca.as_str()),
            ("ssl.certificate.location", certificate.as_str()),
            ("ssl.key.location", key.as_str()),
        ],
        65,
    );
    let e = start_error(
        &wc,
        &[
            ("security.protocol", "SSL"),
            ("ssl.ca.location", ca.as_str()),
        ],
    );
    assert!(e.contains(&mtls) && e.contains("client certificate"), "{e}");
}
