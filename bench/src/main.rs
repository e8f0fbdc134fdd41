//! `streams-bench`: this project side by side with Java Kafka Streams and with the raw rdkafka
//! limit, on Apache Kafka and on the bundled broker.
//!
//! - `run [--quick] [--brokers ..] [--systems ..] [--workloads ..] [--records N]`: the harness
//!   ([`run`]). Starts the brokers, produces the deterministic input ([`workload::Input`]),
//!   runs each application as a child process measured from outside ([`measure`]), verifies its
//!   output ([`verify`]), and reports a table and a JSON-lines file ([`report`]).
//! - `app --system streams|raw-pipe|raw-consume --workload W ...`: one measured application
//!   ([`app`]); the Java one is bench/java ([`java`]).
//!
//! - `disorder --bootstrap-servers HOST:PORT`: how far event time jumps back in a repartition
//!   topic after a four-partition replay ([`disorder`]).
//! - `failover [--keys N] [--standbys 0,1]`: the time from kill -9 of one of two instances to
//!   the moved tasks' first output, this project against Java Kafka Streams ([`failover`]).
//!
//! Run it with a release build of the whole workspace (the bundled broker is
//! `streams-broker` next to this binary): `bench/run --quick` does both.

mod app;
mod brokers;
mod disorder;
mod failover;
mod java;
mod measure;
mod report;
mod run;
mod verify;
mod workload;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Benchmarks of streams side by side with Java Kafka Streams and raw rdkafka")]
struct Args {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Runs the benchmark: every workload, system and broker asked for.
    Run(run::RunArgs),
    /// Runs one application until it has processed its input (started by `run`).
    App(app::AppArgs),
    /// Measures the event-time disorder of a repartition topic after a replay.
    Disorder(disorder::DisorderArgs),
    /// Measures failover: kill -9 of one of two instances, with and without standbys.
    Failover(failover::FailoverArgs),
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Args::parse().command {
        Cmd::Run(args) => run::run(args),
        Cmd::App(args) => app::run(&args),
        Cmd::Disorder(args) => disorder::run(args),
        Cmd::Failover(args) => failover::run(args),
    }
}
