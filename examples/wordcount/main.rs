//! Word count: Kafka Streams' WordCountDemo in Rust.
//!
//! Shows: the DSL (flat_map_values, group_by, count, to_stream, to) on a real broker, with a
//! named store, a repartition topic and a changelog, byte-compatible with the Java demo's output
//! (String keys, 8-byte big-endian counts).
//!
//! Run it:
//! - `cargo run --example wordcount` starts the bundled broker in-process, feeds it sample text,
//!   prints the counts and exits: nothing to install.
//! - `cargo run --example wordcount -- --bootstrap-servers 127.0.0.1:9092` runs against any
//!   cluster until SIGINT or SIGTERM, reading `streams-plaintext-input` (which must exist) and
//!   writing `streams-wordcount-output`. Start more instances with the same
//!   `--application-id` to share the work.

// The topology, in its own file so that the tests run exactly this one (they include the file
// and use parts of it that this program does not).
#[path = "topology.rs"]
#[allow(dead_code)]
pub mod wordcount;

use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use streams::{KafkaStreams, Serdes, StreamsConfig};
use streams_testkit as testing;
use wordcount::split_words;

#[derive(Parser, Debug)]
#[command(about = "Kafka Streams' WordCountDemo on streams")]
struct Args {
    /// Kafka cluster to run against; without it, an in-process bundled broker runs sample text.
    #[arg(long)]
    bootstrap_servers: Option<String>,
    /// Application id: consumer group, internal topic prefix, state directory.
    #[arg(long, default_value = wordcount::APPLICATION_ID)]
    application_id: String,
    /// Topic of lines to count.
    #[arg(long, default_value = wordcount::INPUT_TOPIC)]
    input_topic: String,
    /// Topic of counts.
    #[arg(long, default_value = wordcount::OUTPUT_TOPIC)]
    output_topic: String,
    /// Also write, per first letter and 10-second window of the lines' timestamps, the summed
    /// lengths of the words to this topic (a windowed sum behind a second repartition).
    #[arg(long, value_name = "TOPIC")]
    letter_sums_topic: Option<String>,
    /// Local state directory (state.dir).
    #[arg(long)]
    state_dir: Option<String>,
    /// Print the topology and exit: `text` (Kafka Streams' description), `mermaid` or `dot`
    /// (Graphviz).
    #[arg(long, value_name = "FORMAT", value_parser = ["text", "mermaid", "dot"])]
    describe: Option<String>,
    /// Any other Kafka Streams or client property, as key=value (repeatable).
    #[arg(long = "config", value_name = "KEY=VALUE")]
    config: Vec<String>,
}

const SAMPLE: &[&str] = &[
    "all streams lead to kafka",
    "hello kafka streams",
    "join kafka summit",
    "Streams in Rust: no JVM, same semantics.",
    "hello rust, hello streams",
];

fn config(args: &Args, bootstrap: &str) -> anyhow::Result<StreamsConfig> {
    // The Java demo disables the cache so that every word read updates the output at once.
    let mut c =
        StreamsConfig::new(&args.application_id, bootstrap).set("statestore.cache.max.bytes", "0");
    if let Some(dir) = &args.state_dir {
        c = c.set("state.dir", dir);
    }
    for kv in &args.config {
        let (k, v) = kv
            .split_once('=')
            .with_context(|| format!("--config `{kv}` is not KEY=VALUE"))?;
        c = c.set(k, v);
    }
    Ok(c)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let topology = wordcount::topology_with_letter_sums(
        &args.input_topic,
        &args.output_topic,
        args.letter_sums_topic.as_deref(),
    )?;
    if let Some(format) = &args.describe {
        let description = topology
            .describe()
            .with_application_id(&args.application_id);
        print!(
            "{}",
            description.render(format).expect("a format clap accepted")
        );
        return Ok(());
    }

    if let Some(bootstrap) = &args.bootstrap_servers {
        println!("{}", topology.describe());
        let mut app = KafkaStreams::new(topology, config(&args, bootstrap)?)?;
        app.start()?;
        eprintln!("wordcount running against {bootstrap}; SIGINT or SIGTERM stops it");
        app.run_until_signal().await?;
        eprintln!("wordcount stopped cleanly");
        return Ok(());
    }

    // No cluster given: bring one up in-process.
    let broker = streams_broker::Broker::start(Default::default()).await?;
    let bootstrap = broker.bootstrap_servers();
    eprintln!("started the bundled broker at {bootstrap}");
    let (input, output) = (args.input_topic.clone(), args.output_topic.clone());
    let sums = args.letter_sums_topic.clone();
    let b = bootstrap.clone();
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        testing::create_topic(&b, &input, 4)?;
        testing::create_topic(&b, &output, 4)?;
        if let Some(sums) = &sums {
            testing::create_topic(&b, sums, 4)?;
        }
        testing::produce(
            &b,
            &input,
            SAMPLE
                .iter()
                .map(|l| (None, Some(l.as_bytes().to_vec()), None)),
        )?;
        Ok(())
    })
    .await??;

    let mut expected = std::collections::BTreeMap::<String, i64>::new();
    for line in SAMPLE {
        for w in split_words(line) {
            *expected.entry(w).or_default() += 1;
        }
    }
    // The in-process broker starts empty each run, so the local state starts empty too (state
    // left from an earlier run would be ahead of the new changelogs).
    let scratch = tempfile::tempdir()?;
    let mut c = config(&args, &bootstrap)?.set("commit.interval.ms", "100");
    if args.state_dir.is_none() {
        c = c.set(
            "state.dir",
            scratch.path().to_str().context("temp dir path")?,
        );
    }
    let mut app = KafkaStreams::new(topology, c)?;
    app.start()?;
    let (b, out, exp) = (
        bootstrap.clone(),
        args.output_topic.clone(),
        expected.clone(),
    );
    let counts = tokio::task::spawn_blocking(move || {
        testing::read_table(
            &b,
            &out,
            Serdes::string(),
            Serdes::nullable(Serdes::i64()),
            Duration::from_secs(60),
            |t| exp.iter().all(|(w, n)| t.get(w) == Some(n)),
        )
    })
    .await??;
    tokio::task::spawn_blocking(move || app.close()).await??;
    broker.shutdown().await?;

    let mut counts: Vec<(String, i64)> = counts.into_iter().collect();
    counts.sort();
    println!("{:<12} count", "word");
    for (w, n) in &counts {
        println!("{w:<12} {n}");
    }
    let ok =
        counts.len() == expected.len() && counts.iter().all(|(w, n)| expected.get(w) == Some(n));
    anyhow::ensure!(ok, "counts differ from the expected ones: {expected:?}");
    Ok(())
}
