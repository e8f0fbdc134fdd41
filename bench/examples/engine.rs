//! The processing engine alone, without Kafka: the benchmark's passthrough, count and wordcount
//! topologies driven through the `TopologyTestDriver` with raw input bytes, one thread, a commit
//! every so many records. Prints the CPU seconds of each workload, so that a change to the engine
//! (nodes, contexts, stores) can be compared before and after without the Kafka client's cost
//! and noise: `cargo run --release -p streams-bench --example engine -- [records] [rounds]
//! [commit every] [workloads]` (1,000,000 records, 3 rounds, a commit every 100,000 records, and
//! `passthrough,count,wordcount` by default).

use std::time::Instant;

use streams::prelude::*;

const KEYS: u64 = 10_000;

/// User plus system CPU seconds of this process so far, from `/proc/self/stat` (Linux).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // The fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')').expect("command name") + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks = |i: usize| fields[i].parse::<f64>().expect("clock ticks");
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

/// Record `i`'s key and value: one of 10,000 keys, eight words of 10,000.
fn record(i: u64) -> (Vec<u8>, Vec<u8>) {
    let key = format!("key{:05}", i.wrapping_mul(2_654_435_761) % KEYS);
    let words: Vec<String> = (0..8)
        .map(|w| format!("word{:07}", (i * 8 + w).wrapping_mul(40_503) % KEYS))
        .collect();
    (key.into_bytes(), words.join(" ").into_bytes())
}

fn topology(workload: &str) -> Topology {
    let b = StreamsBuilder::new();
    let input = b.stream::<String, String>("input");
    match workload {
        "passthrough" => input.to("output"),
        "count" => input.group_by_key().count().to_stream().to("output"),
        _ => input
            .flat_map_values(|line| {
                line.split_whitespace()
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .group_by(|_, word| word.clone())
            .count()
            .to_stream()
            .to("output"),
    }
    b.build().expect("the topology builds")
}

/// CPU seconds to push `input` through `workload`, committing every `commit_every` records.
fn run(workload: &str, input: &[(Vec<u8>, Vec<u8>)], commit_every: u64) -> f64 {
    let driver = TopologyTestDriver::new(
        topology(workload),
        StreamsConfig::new("engine", "unused:9092"),
    )
    .expect("the driver starts");
    driver.commit_only_when_told();
    let output = driver.create_output_topic("output", Serdes::bytes(), Serdes::bytes());
    let started = cpu_seconds();
    let mut out = 0usize;
    for (i, (k, v)) in input.iter().enumerate() {
        driver
            .pipe_raw(
                "input",
                Some(k.clone()),
                Some(v.clone()),
                i as i64,
                Vec::new(),
            )
            .expect("the record is processed");
        if (i as u64 + 1) % commit_every == 0 {
            driver.commit().expect("the commit");
            out += output.read_records_to_list().len();
        }
    }
    driver.commit().expect("the commit");
    out += output.read_records_to_list().len();
    let cpu = cpu_seconds() - started;
    assert!(out > 0, "{workload} produced nothing");
    cpu
}

fn main() {
    let mut args = std::env::args().skip(1);
    let records: u64 = args
        .next()
        .map_or(1_000_000, |a| a.parse().expect("records"));
    let rounds: usize = args.next().map_or(3, |a| a.parse().expect("rounds"));
    let commit_every: u64 = args
        .next()
        .map_or(100_000, |a| a.parse().expect("commit every"));
    let workloads = args
        .next()
        .unwrap_or_else(|| "passthrough,count,wordcount".to_string());
    let input: Vec<_> = (0..records).map(record).collect();
    println!("| workload | records | CPU s per round | best | wall s (last) |");
    println!("|---|--:|---|--:|--:|");
    for workload in workloads.split(',') {
        let mut cpu = Vec::new();
        let mut wall = 0.0;
        for _ in 0..rounds {
            let t = Instant::now();
            cpu.push(run(workload, &input, commit_every));
            wall = t.elapsed().as_secs_f64();
        }
        let best = cpu.iter().copied().fold(f64::INFINITY, f64::min);
        let all: Vec<String> = cpu.iter().map(|c| format!("{c:.2}")).collect();
        println!(
            "| {workload} | {records} | {} | {best:.2} | {wall:.2} |",
            all.join(" ")
        );
    }
}
