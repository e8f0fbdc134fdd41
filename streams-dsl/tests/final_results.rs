//! Final windowed results when stream time jumps far past the stores' retention: minutes of
//! records in order, then records days later that close every window. Every final result must
//! come out exactly once and exactly right, for suppression and emit-on-close, time and session
//! windows, RocksDB and in-memory stores, caching on and off.

use std::collections::BTreeMap;
use std::time::Duration;

use streams_core::serde::{SerdeRef, Serdes};
use streams_core::window::{SessionWindows, TimeWindows, Windowed};
use streams_core::{StreamsConfig, TopologyTestDriver};
use streams_dsl::suppress::{BufferConfig, Suppressed};
use streams_dsl::{EmitStrategy, KGroupedStream, KTable, Materialized, StreamsBuilder};

/// A minute-aligned epoch time, so that windows and segments look like a real run's.
const START_MS: i64 = 1_700_000_040_000;
const MINUTE_MS: i64 = 60_000;
const GRACE_MS: i64 = 5_000;
const SESSION_GAP_MS: i64 = 4_000;
const JUMP_MS: i64 = 2 * 24 * 60 * 60 * 1000;
const TAGS: [&str; 10] = [
    "rust",
    "kafka",
    "streaming",
    "tokio",
    "rocksdb",
    "async",
    "devops",
    "cloud",
    "bigdata",
    "realtime",
];

/// (timestamp, tags) of each input record: ten a second for ten minutes, each with 0-3 tags,
/// then 64 records two days later with tags of their own. For sessions, a tag is only used in
/// some 20-second blocks, so that sessions start and end all along the ten minutes.
fn input(sessions: bool) -> Vec<(i64, Vec<String>)> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut out = Vec::new();
    for i in 0..6_000i64 {
        let ts = START_MS + i * 100;
        let block = (ts - START_MS) / 20_000;
        let mut tags: Vec<String> = Vec::new();
        for _ in 0..next() % 4 {
            let t = (next() % TAGS.len() as u64) as usize;
            let active = !sessions || (block + t as i64) % 3 != 0;
            if active && !tags.iter().any(|x| x == TAGS[t]) {
                tags.push(TAGS[t].to_string());
            }
        }
        out.push((ts, tags));
    }
    let later = START_MS + 10 * MINUTE_MS + JUMP_MS;
    for i in 0..64 {
        out.push((later + i * 100, vec![format!("later{}", i % 4)]));
    }
    out
}

/// Final (tag, window start, window end) → count that every closed window must give.
fn expected_time_windows(input: &[(i64, Vec<String>)]) -> BTreeMap<(String, i64, i64), i64> {
    let close = input.last().map(|(t, _)| *t).unwrap_or(0) - GRACE_MS;
    let mut out = BTreeMap::new();
    for (ts, tags) in input {
        let start = ts - ts.rem_euclid(MINUTE_MS);
        if start + MINUTE_MS > close {
            continue;
        }
        for tag in tags {
            *out.entry((tag.clone(), start, start + MINUTE_MS))
                .or_insert(0) += 1;
        }
    }
    out
}

/// Final (tag, session start, session end) → count of every session closed by the end.
fn expected_sessions(input: &[(i64, Vec<String>)]) -> BTreeMap<(String, i64, i64), i64> {
    let close = input.last().map(|(t, _)| *t).unwrap_or(0) - GRACE_MS - SESSION_GAP_MS;
    let mut times: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for (ts, tags) in input {
        for tag in tags {
            times.entry(tag).or_default().push(*ts);
        }
    }
    let mut out = BTreeMap::new();
    for (tag, ts) in times {
        let mut session: Option<(i64, i64, i64)> = None;
        for t in ts {
            session = match session {
                Some((s, e, n)) if t - e <= SESSION_GAP_MS => Some((s, t, n + 1)),
                Some((s, e, n)) => {
                    if e < close {
                        out.insert((tag.to_string(), s, e), n);
                    }
                    Some((t, t, 1))
                }
                None => Some((t, t, 1)),
            };
        }
        if let Some((s, e, n)) = session {
            if e < close {
                out.insert((tag.to_string(), s, e), n);
            }
        }
    }
    out
}

#[derive(Debug, Clone, Copy)]
enum Final {
    Suppress,
    OnWindowClose,
}

#[derive(Debug, Clone, Copy)]
struct Variant {
    final_by: Final,
    persistent: bool,
    caching: bool,
    /// Commit after this many input records (and at the end); 1 is the driver's default. The
    /// runtime commits every 30 s, so a fast replay runs minutes of event time between commits.
    commit_every: usize,
}

impl Variant {
    /// Suppression sits downstream of an aggregation that emits every update.
    fn emit(self) -> EmitStrategy {
        match self.final_by {
            Final::Suppress => EmitStrategy::OnWindowUpdate,
            Final::OnWindowClose => EmitStrategy::OnWindowClose,
        }
    }
}

fn variants() -> Vec<Variant> {
    let mut out = Vec::new();
    for final_by in [Final::Suppress, Final::OnWindowClose] {
        for persistent in [true, false] {
            for caching in [true, false] {
                for commit_every in [1, 2_500, usize::MAX] {
                    out.push(Variant {
                        final_by,
                        persistent,
                        caching,
                        commit_every,
                    });
                }
            }
        }
    }
    out
}

fn materialized(v: Variant) -> Materialized<String, i64> {
    let m = Materialized::as_store("counts");
    let m = if v.caching {
        m.with_caching_enabled()
    } else {
        m.with_caching_disabled()
    };
    if v.persistent {
        m
    } else {
        m.in_memory()
    }
}

fn finals(t: KTable<Windowed<String>, i64>, v: Variant) {
    let t = match v.final_by {
        Final::Suppress => t.suppress(Suppressed::until_window_closes(BufferConfig::unbounded())),
        Final::OnWindowClose => t,
    };
    t.to_stream().to("out");
}

/// The tweets' shape: one record per tweet, split into hashtags, grouped by hashtag (a
/// repartition).
fn hashtags(b: &StreamsBuilder) -> KGroupedStream<String, String> {
    b.stream::<String, String>("tweets")
        .flat_map_values(|text| {
            text.split_whitespace()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .group_by(|_, tag| tag.clone())
}

/// Pipes `input` and returns every output record as ((tag, start, end), count), in order.
fn run(
    b: StreamsBuilder,
    v: Variant,
    input: &[(i64, Vec<String>)],
    key_serde: SerdeRef<Windowed<String>>,
) -> Vec<((String, i64, i64), Option<i64>)> {
    let d = TopologyTestDriver::new(
        b.build().expect("topology builds"),
        StreamsConfig::new("final-results", "unused:9092"),
    )
    .expect("driver starts");
    if v.commit_every > 1 {
        d.commit_only_when_told();
    }
    let tweets = d.create_input_topic("tweets", Serdes::string(), Serdes::string());
    let out = d.create_output_topic("out", key_serde, Serdes::nullable(Serdes::i64()));
    for (i, (ts, tags)) in input.iter().enumerate() {
        tweets.pipe_input_at(format!("tweet-{i}"), tags.join(" "), *ts);
        if (i + 1) % v.commit_every == 0 {
            d.commit().expect("commit");
        }
    }
    d.commit().expect("commit");
    out.read_key_values_to_list()
        .into_iter()
        .map(|(k, v)| ((k.key, k.window.start, k.window.end), v))
        .collect()
}

/// Every expected final result exactly once, with its exact count, and nothing else.
fn assert_exactly(
    v: Variant,
    got: Vec<((String, i64, i64), Option<i64>)>,
    expected: &BTreeMap<(String, i64, i64), i64>,
) {
    let mut seen: BTreeMap<(String, i64, i64), Vec<Option<i64>>> = BTreeMap::new();
    for (k, c) in got {
        seen.entry(k).or_default().push(c);
    }
    let missing: Vec<_> = expected.keys().filter(|k| !seen.contains_key(*k)).collect();
    let wrong: Vec<_> = seen
        .iter()
        .filter(|(k, c)| expected.get(*k).map(|e| vec![Some(*e)]) != Some(c.to_vec()))
        .collect();
    assert!(
        missing.is_empty() && wrong.is_empty(),
        "{v:?}: {} of {} final results missing (first: {:?}); {} emitted wrongly, repeated or \
         not final (first: {:?})",
        missing.len(),
        expected.len(),
        missing.first(),
        wrong.len(),
        wrong.first()
    );
}

#[test]
fn time_windows_give_every_final_count_across_a_jump_of_days() {
    let input = input(false);
    let expected = expected_time_windows(&input);
    assert_eq!(expected.len(), 100, "ten tags in ten minutes");
    for v in variants() {
        let b = StreamsBuilder::new();
        let windowed = hashtags(&b).windowed_by(TimeWindows::of_size_and_grace(
            Duration::from_millis(MINUTE_MS as u64),
            Duration::from_millis(GRACE_MS as u64),
        ));
        finals(
            windowed.emit_strategy(v.emit()).count_with(materialized(v)),
            v,
        );
        let got = run(
            b,
            v,
            &input,
            Serdes::time_windowed(Serdes::string(), MINUTE_MS),
        );
        assert_exactly(v, got, &expected);
    }
}

#[test]
fn session_windows_give_every_final_session_across_a_jump_of_days() {
    let input = input(true);
    let expected = expected_sessions(&input);
    assert!(expected.len() > 100, "sessions all along the ten minutes");
    for v in variants() {
        let b = StreamsBuilder::new();
        let windowed =
            hashtags(&b).windowed_by_session(SessionWindows::of_inactivity_gap_and_grace(
                Duration::from_millis(SESSION_GAP_MS as u64),
                Duration::from_millis(GRACE_MS as u64),
            ));
        finals(
            windowed.emit_strategy(v.emit()).count_with(materialized(v)),
            v,
        );
        let got = run(b, v, &input, Serdes::session_windowed(Serdes::string()));
        assert_exactly(v, got, &expected);
    }
}

/// A left join's records that found no partner wait in the join's outer store until their
/// window closes; a jump of days closes them all at once. Every left record comes out exactly
/// once: joined with its partner, or unmatched.
#[test]
fn left_join_emits_every_unmatched_record_across_a_jump_of_days() {
    use streams_dsl::stream_join::JoinWindows;
    for commit_every in [1, 2_500, usize::MAX] {
        let b = StreamsBuilder::new();
        let left = b.stream::<String, String>("left");
        let right = b.stream::<String, String>("right");
        left.left_join_windowed(
            &right,
            |l, r| format!("{l}/{}", r.map_or("unmatched", String::as_str)),
            JoinWindows::of_time_difference_and_grace(
                Duration::from_millis(500),
                Duration::from_millis(GRACE_MS as u64),
            ),
        )
        .to("out");
        let d = TopologyTestDriver::new(
            b.build().expect("topology builds"),
            StreamsConfig::new("join-jump", "unused:9092"),
        )
        .expect("driver starts");
        if commit_every > 1 {
            d.commit_only_when_told();
        }
        let l = d.create_input_topic("left", Serdes::string(), Serdes::string());
        let r = d.create_input_topic("right", Serdes::string(), Serdes::string());
        let out = d.create_output_topic("out", Serdes::string(), Serdes::string());
        let mut expected = Vec::new();
        // One left record a second for ten minutes over ten keys; every third has a partner.
        for i in 0..600i64 {
            let (key, ts) = (format!("k{}", i % 10), START_MS + i * 1_000);
            l.pipe_input_at(key.clone(), format!("L{i}"), ts);
            if i % 3 == 0 {
                r.pipe_input_at(key.clone(), format!("R{i}"), ts);
                expected.push((key, format!("L{i}/R{i}")));
            } else {
                expected.push((key, format!("L{i}/unmatched")));
            }
            if (i as usize + 1) % commit_every == 0 {
                d.commit().expect("commit");
            }
        }
        l.pipe_input_at("later".into(), "L-later".into(), START_MS + JUMP_MS);
        d.commit().expect("commit");
        let mut got = out.read_key_values_to_list();
        got.sort();
        expected.sort();
        assert_eq!(got, expected, "committing every {commit_every} records");
    }
}
