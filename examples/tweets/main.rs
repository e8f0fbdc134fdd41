//! Tweet aggregation: hashtag counts, tweets per user and tweets per country from JSON tweets.
//!
//! Shows: JSON values with a user type, event time taken from a field (`timestamp_ms`), one
//! input feeding several aggregations through named repartition topics, a stream-table left
//! join (tweets re-keyed by user, joined with the `users` table), and what happens to bad
//! records: malformed JSON (the deserialization handler), a tweet without a user (a fallible
//! `try_map_values` and the processing handler) and a record too large to send (the production
//! handler). By default each stops the application with an error naming topic, partition and
//! offset; with `--config deserialization.exception.handler=log-and-continue` (and likewise
//! `processing.exception.handler`, `production.exception.handler`) they are skipped and counted,
//! and `--config errors.dead.letter.queue.topic.name=tweets-dlq` writes them, with headers
//! saying what failed, to that topic.
//!
//! Run it:
//! - `cargo run --example tweets` starts the bundled broker in-process, generates 1000 tweets
//!   and their users, prints the top hashtags, users and countries, and exits.
//! - `cargo run --example tweets -- --bootstrap-servers HOST:PORT [--generate N]` produces the
//!   users to `users` and N generated tweets to `tweets` (both created with 4 partitions if
//!   missing), then runs until SIGINT or SIGTERM, writing `hashtag-counts`,
//!   `user-tweet-counts` and `country-tweet-counts`.
//! - `cargo run --example tweets -- --http 127.0.0.1:8080` serves the stores over HTTP and a
//!   live dashboard at that address, with the bundled broker and 1000 generated tweets unless
//!   `--bootstrap-servers` says otherwise, until SIGINT or SIGTERM. Several instances with
//!   `--http` on different ports answer for the whole application, each forwarding a key to
//!   the instance that holds it.

// The topology, in its own file so that the tests run exactly this one (they include the file
// and use parts of it that this program does not).
#[path = "topology.rs"]
#[allow(dead_code)]
pub mod tweets;

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use streams::{KafkaStreams, Serdes, StreamsConfig};
use streams_testkit as testing;
use tweets::hashtags;

#[derive(Parser, Debug)]
#[command(about = "Hashtag and per-user tweet counts on streams")]
struct Args {
    /// Kafka cluster to run against; without it, an in-process bundled broker is used.
    #[arg(long)]
    bootstrap_servers: Option<String>,
    /// Application id.
    #[arg(long, default_value = tweets::APPLICATION_ID)]
    application_id: String,
    /// Topic of JSON tweets.
    #[arg(long, default_value = tweets::INPUT_TOPIC)]
    input_topic: String,
    /// Produce this many generated tweets to the input topic first.
    #[arg(long)]
    generate: Option<u64>,
    /// Local state directory (state.dir).
    #[arg(long)]
    state_dir: Option<String>,
    /// Serve interactive queries and the dashboard over HTTP on this address (ip:port).
    #[arg(long, value_name = "IP:PORT")]
    http: Option<String>,
    /// Print the topology and exit: `text` (Kafka Streams' description), `mermaid` or `dot`
    /// (Graphviz).
    #[arg(long, value_name = "FORMAT", value_parser = ["text", "mermaid", "dot"])]
    describe: Option<String>,
    /// Any other Kafka Streams or client property, as key=value (repeatable).
    #[arg(long = "config", value_name = "KEY=VALUE")]
    config: Vec<String>,
}

fn config(args: &Args, bootstrap: &str) -> anyhow::Result<StreamsConfig> {
    let mut c = StreamsConfig::new(&args.application_id, bootstrap);
    if let Some(dir) = &args.state_dir {
        c = c.set("state.dir", dir);
    }
    for kv in &args.config {
        let (k, v) = kv
            .split_once('=')
            .with_context(|| format!("--config `{kv}` is not KEY=VALUE"))?;
        c = c.set(k, v);
    }
    if let Some(addr) = &args.http {
        c = c.set("http.listen", addr);
    }
    Ok(c)
}

/// The dashboard, compiled into the binary: no file or network is needed to show it.
fn add_dashboard(app: &mut KafkaStreams) {
    app.add_http_page(
        "/",
        "text/html; charset=utf-8",
        include_str!("dashboard/index.html"),
    );
    app.add_http_page(
        "/app.js",
        "text/javascript; charset=utf-8",
        include_str!("dashboard/app.js"),
    );
}

/// Runs `topology` with the HTTP server on until SIGINT or SIGTERM.
async fn serve(args: &Args, topology: streams::Topology, bootstrap: &str) -> anyhow::Result<()> {
    let mut app = KafkaStreams::new(topology, config(args, bootstrap)?)?;
    add_dashboard(&mut app);
    app.start()?;
    let addr = args.http.as_deref().unwrap_or_default();
    println!("dashboard: http://{addr}/  (stores: http://{addr}/v1/stores)");
    eprintln!("tweets running against {bootstrap}; SIGINT or SIGTERM stops it");
    app.run_until_signal().await?;
    Ok(())
}

fn generate(bootstrap: &str, topic: &str, n: u64) -> anyhow::Result<BTreeMap<String, i64>> {
    testing::create_topic(bootstrap, topic, 4)?;
    testing::create_topic(bootstrap, tweets::USERS_TOPIC, 4)?;
    // The users exist a minute before the first tweet in event time: the join reads the
    // table as of each tweet's time, so users stamped with today's clock would be unknown to
    // every (older) generated tweet.
    testing::produce(
        bootstrap,
        tweets::USERS_TOPIC,
        tweets::generated_users().iter().map(|u| {
            (
                Some(u.user.clone().into_bytes()),
                Some(serde_json::to_vec(u).expect("user to JSON")),
                Some(tweets::GENERATED_START_MS - 60_000),
            )
        }),
    )?;
    let mut tags = BTreeMap::new();
    let tweets = tweets::generated_tweets(n);
    for t in &tweets {
        for h in hashtags(&t.text) {
            *tags.entry(h).or_insert(0) += 1;
        }
    }
    testing::produce(
        bootstrap,
        topic,
        tweets.iter().map(|t| {
            (
                Some(t.id.clone().into_bytes()),
                Some(serde_json::to_vec(t).expect("tweet to JSON")),
                Some(t.timestamp_ms),
            )
        }),
    )?;
    Ok(tags)
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
    let topology = tweets::topology(&args.input_topic)?;
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
        if let Some(n) = args.generate {
            let (b, t) = (bootstrap.clone(), args.input_topic.clone());
            tokio::task::spawn_blocking(move || generate(&b, &t, n)).await??;
            eprintln!("produced {n} tweets to {}", args.input_topic);
        }
        if args.http.is_some() {
            return serve(&args, topology, bootstrap).await;
        }
        let mut app = KafkaStreams::new(topology, config(&args, bootstrap)?)?;
        app.start()?;
        eprintln!("tweets running against {bootstrap}; SIGINT or SIGTERM stops it");
        app.run_until_signal().await?;
        return Ok(());
    }

    let broker = streams_broker::Broker::start(Default::default()).await?;
    let bootstrap = broker.bootstrap_servers();
    eprintln!("started the bundled broker at {bootstrap}");
    let n = args.generate.unwrap_or(1000);
    let (b, t) = (bootstrap.clone(), args.input_topic.clone());
    let expected = tokio::task::spawn_blocking(move || generate(&b, &t, n)).await??;
    if args.http.is_some() {
        eprintln!("produced {n} tweets to {}", args.input_topic);
        serve(&args, topology, &bootstrap).await?;
        broker.shutdown().await?;
        return Ok(());
    }
    let mut app = KafkaStreams::new(
        topology,
        config(&args, &bootstrap)?.set("commit.interval.ms", "200"),
    )?;
    app.start()?;
    let (b, exp) = (bootstrap.clone(), expected.clone());
    let counts = tokio::task::spawn_blocking(move || {
        testing::read_table(
            &b,
            tweets::HASHTAG_TOPIC,
            Serdes::string(),
            Serdes::nullable(Serdes::i64()),
            Duration::from_secs(60),
            |t| exp.iter().all(|(h, n)| t.get(h) == Some(n)),
        )
    })
    .await??;
    let b = bootstrap.clone();
    let users = tokio::task::spawn_blocking(move || {
        testing::read_table(
            &b,
            tweets::USER_TOPIC,
            Serdes::string(),
            Serdes::nullable(Serdes::i64()),
            Duration::from_secs(10),
            |t| t.values().sum::<i64>() == n as i64,
        )
    })
    .await??;
    let b = bootstrap.clone();
    let countries = tokio::task::spawn_blocking(move || {
        testing::read_table(
            &b,
            tweets::COUNTRY_TOPIC,
            Serdes::string(),
            Serdes::nullable(Serdes::i64()),
            Duration::from_secs(30),
            |t| t.values().sum::<i64>() == n as i64,
        )
    })
    .await??;
    tokio::task::spawn_blocking(move || app.close()).await??;
    broker.shutdown().await?;

    let mut top: Vec<(String, i64)> = counts.into_iter().collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    println!("top hashtags of {n} tweets:");
    for (h, c) in top.iter().take(10) {
        println!("  #{h:<18} {c}");
    }
    let mut users: Vec<(String, i64)> = users.into_iter().collect();
    users.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    println!("most active users:");
    for (u, c) in users.iter().take(5) {
        println!("  {u:<18} {c}");
    }
    let mut countries: Vec<(String, i64)> = countries.into_iter().collect();
    countries.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    println!("tweets per country:");
    for (c, n) in &countries {
        println!("  {c:<18} {n}");
    }
    let want = tweets::country_counts(&tweets::generated_tweets(n));
    anyhow::ensure!(
        countries.len() == want.len() && countries.iter().all(|(c, k)| want.get(c) == Some(k)),
        "tweets per country differ from the expected {want:?}"
    );
    anyhow::ensure!(
        top.len() == expected.len() && top.iter().all(|(h, c)| expected.get(h) == Some(c)),
        "hashtag counts differ from the expected ones"
    );
    Ok(())
}
