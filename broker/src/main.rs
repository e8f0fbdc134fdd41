//! `streams-broker`: runs the bundled Kafka-protocol broker from the command line.
//!
//! ```text
//! streams-broker --listen 127.0.0.1:9092 --data-dir ./broker-data [--partitions 4] [--flush never]
//! ```
//! Prints `listening on HOST:PORT` once it accepts connections; SIGINT or SIGTERM shut it down
//! cleanly (connections closed, logs flushed).

use anyhow::Context;
use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use streams_broker::{Broker, BrokerConfig, FlushPolicy};

/// A small, persistent Kafka-protocol broker.
#[derive(Debug, Parser)]
#[command(name = "streams-broker", version)]
struct Args {
    /// Address to listen on (loopback unless told otherwise; port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:9092")]
    listen: SocketAddr,
    /// Directory for topics, offsets and broker identity (created if missing).
    #[arg(long, default_value = "./broker-data")]
    data_dir: PathBuf,
    /// Partitions of auto-created topics.
    #[arg(long, default_value_t = 4)]
    partitions: i32,
    /// Host to advertise to clients (defaults to the listen IP).
    #[arg(long)]
    advertised_host: Option<String>,
    /// When to fsync appended batches: always, acks-all (default) or never.
    #[arg(long, default_value = "acks-all", value_parser = parse_flush)]
    flush: FlushPolicy,
    /// Do not create topics on Metadata requests.
    #[arg(long)]
    no_auto_create_topics: bool,
    /// How long the first rebalance of an empty group waits for more members
    /// (Kafka's group.initial.rebalance.delay.ms, whose default there is 3000).
    #[arg(long, default_value_t = 0)]
    group_initial_rebalance_delay_ms: u64,
    /// Accept CreateTopics with a replication factor above 1 and keep one copy (for client
    /// test suites written for three-broker clusters); refused by default.
    #[arg(long)]
    accept_any_replication_factor: bool,
}

fn parse_flush(s: &str) -> Result<FlushPolicy, String> {
    match s {
        "always" => Ok(FlushPolicy::Always),
        "acks-all" => Ok(FlushPolicy::AcksAll),
        "never" => Ok(FlushPolicy::Never),
        other => Err(format!(
            "unknown flush policy {other:?} (always, acks-all, never)"
        )),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let config = BrokerConfig {
        listen: args.listen,
        advertised_host: args.advertised_host,
        data_dir: Some(args.data_dir),
        default_partitions: args.partitions,
        flush: args.flush,
        auto_create_topics: !args.no_auto_create_topics,
        accept_any_replication_factor: args.accept_any_replication_factor,
        group_initial_rebalance_delay: Duration::from_millis(args.group_initial_rebalance_delay_ms),
        ..BrokerConfig::default()
    };
    let broker = Broker::start(config).await.context("starting the broker")?;
    println!("listening on {}", broker.bootstrap_servers());
    wait_for_signal().await?;
    eprintln!("shutting down");
    broker.shutdown().await.context("shutting down")?;
    Ok(())
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}
