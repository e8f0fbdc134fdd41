//! Stateless stream operators: filter, map, flat_map, peek, foreach, split and merge.

use std::sync::{Arc, Mutex};

use streams_core::serde::Serdes;
use streams_dsl::StreamsBuilder;

use super::{driver, kv, s};

#[test]
fn filter_and_filter_not_keep_the_matching_records() {
    let b = StreamsBuilder::new();
    let src = b.stream::<String, String>("in");
    src.filter(|_, v| v.starts_with('a')).to("a");
    src.filter_not(|_, v| v.starts_with('a')).to("not-a");
    let d = driver(b);
    let input = d.create_input_topic("in", s(), s());
    for (k, v) in [kv("1", "apple"), kv("2", "banana"), kv("3", "avocado")] {
        input.pipe_input(k, v);
    }
    let a = d.create_output_topic("a", s(), s());
    let not_a = d.create_output_topic("not-a", s(), s());
    assert_eq!(
        a.read_key_values_to_list(),
        vec![kv("1", "apple"), kv("3", "avocado")]
    );
    assert_eq!(not_a.read_key_values_to_list(), vec![kv("2", "banana")]);
}

#[test]
fn map_and_map_values_transform_keeping_timestamps() {
    let b = StreamsBuilder::new();
    let src = b.stream::<String, String>("in");
    src.map(|k, v| (v, k.len() as i64)).to("swapped");
    src.map_values(|v| v.to_uppercase()).to("upper");
    src.map_values_with_key(|k, v| format!("{k}:{v}"))
        .to("joined");
    let d = driver(b);
    d.create_input_topic("in", s(), s())
        .pipe_input_at("key".into(), "value".into(), 42);
    let swapped = d
        .create_output_topic("swapped", s(), Serdes::i64())
        .read_record();
    assert_eq!(
        (swapped.key.as_str(), swapped.value, swapped.timestamp),
        ("value", 3, 42)
    );
    assert_eq!(
        d.create_output_topic("upper", s(), s()).read_key_value(),
        kv("key", "VALUE")
    );
    assert_eq!(
        d.create_output_topic("joined", s(), s()).read_value(),
        "key:value"
    );
}

#[test]
fn flat_map_and_flat_map_values_emit_zero_or_more_records() {
    let b = StreamsBuilder::new();
    let src = b.stream::<String, String>("in");
    src.flat_map_values(|v: String| v.split(' ').map(str::to_string).collect::<Vec<_>>())
        .to("words");
    src.flat_map(|k: String, v: String| {
        v.chars()
            .map(move |c| (c.to_string(), k.clone()))
            .collect::<Vec<_>>()
    })
    .to("chars");
    let d = driver(b);
    let input = d.create_input_topic("in", s(), s());
    input.pipe_input("k".into(), "ab cd".into());
    input.pipe_input("e".into(), "".into());
    assert_eq!(
        d.create_output_topic("words", s(), s())
            .read_key_values_to_list(),
        vec![kv("k", "ab"), kv("k", "cd"), kv("e", "")]
    );
    let chars = d
        .create_output_topic("chars", s(), s())
        .read_key_values_to_list();
    assert_eq!(chars.len(), 5);
    assert_eq!(chars[2], kv(" ", "k"));
}

#[test]
fn peek_and_foreach_see_every_record() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let done = Arc::new(Mutex::new(Vec::new()));
    let b = StreamsBuilder::new();
    let (s1, d1) = (seen.clone(), done.clone());
    b.stream::<String, String>("in")
        .peek(move |k, _| s1.lock().unwrap().push(k.clone()))
        .foreach(move |_, v| d1.lock().unwrap().push(v.clone()));
    let d = driver(b);
    let input = d.create_input_topic("in", s(), s());
    input.pipe_input("1".into(), "one".into());
    input.pipe_input("2".into(), "two".into());
    assert_eq!(*seen.lock().unwrap(), vec!["1", "2"]);
    assert_eq!(*done.lock().unwrap(), vec!["one", "two"]);
}

#[test]
fn split_sends_each_record_to_the_first_matching_branch() {
    let b = StreamsBuilder::new();
    let branches = b
        .stream::<String, i64>("numbers")
        .split("n-")
        .branch("negative", |_, v| *v < 0)
        .branch("small", |_, v| *v < 10)
        .default_branch("large");
    assert_eq!(branches.len(), 3);
    for (name, stream) in &branches {
        stream.to(name);
    }
    let d = driver(b);
    let input = d.create_input_topic("numbers", s(), Serdes::i64());
    for v in [-1, 5, 50, -7, 9] {
        input.pipe_input("k".into(), v);
    }
    let read = |t: &str| {
        d.create_output_topic(t, s(), Serdes::i64())
            .read_values_to_list()
    };
    assert_eq!(read("n-negative"), vec![-1, -7]);
    assert_eq!(read("n-small"), vec![5, 9]);
    assert_eq!(read("n-large"), vec![50]);

    let b = StreamsBuilder::new();
    let branches = b
        .stream::<String, i64>("numbers")
        .split("")
        .branch("even", |_, v| v % 2 == 0)
        .no_default_branch();
    branches["even"].to("even");
    let d = driver(b);
    let input = d.create_input_topic("numbers", s(), Serdes::i64());
    for v in 1..=4 {
        input.pipe_input("k".into(), v);
    }
    assert_eq!(
        d.create_output_topic("even", s(), Serdes::i64())
            .read_values_to_list(),
        vec![2, 4]
    );
}

#[test]
fn merge_interleaves_both_inputs() {
    let b = StreamsBuilder::new();
    let a = b.stream::<String, String>("a");
    let c = b.stream::<String, String>("b");
    a.merge(&c).to("merged");
    let d = driver(b);
    d.create_input_topic("a", s(), s())
        .pipe_input("1".into(), "from-a".into());
    d.create_input_topic("b", s(), s())
        .pipe_input("2".into(), "from-b".into());
    assert_eq!(
        d.create_output_topic("merged", s(), s())
            .read_values_to_list(),
        vec!["from-a", "from-b"]
    );
}
