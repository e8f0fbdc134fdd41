//! Kafka Streams' WordCountDemo: lines in, a running count per word out.
//!
//! Input `streams-plaintext-input` (any key, String lines); output `streams-wordcount-output`
//! with String keys and 8-byte big-endian i64 values, exactly what the Java demo writes.
//! Optionally, a second output: each first letter's summed word lengths per window of event
//! time (a windowed sum behind a second repartition).

use std::time::Duration;

use streams::{
    Consumed, Grouped, Materialized, Produced, Result, Serdes, StreamsBuilder, TimeWindows,
    Topology,
};

/// Default input topic of the demo.
pub const INPUT_TOPIC: &str = "streams-plaintext-input";
/// Default output topic of the demo.
pub const OUTPUT_TOPIC: &str = "streams-wordcount-output";
/// Default application id of the demo.
pub const APPLICATION_ID: &str = "streams-wordcount";
/// Name of the count store (its changelog is `<application.id>-counts-store-changelog`).
pub const STORE: &str = "counts-store";

/// Java's `line.toLowerCase().split("\\W+")`: `\W` is ASCII (anything but `[A-Za-z0-9_]`
/// separates), a leading separator gives an empty first token, trailing empty tokens are
/// dropped, and a line without separators is one token (even an empty line).
pub fn split_words(line: &str) -> Vec<String> {
    let is_sep = |c: char| !(c.is_ascii_alphanumeric() || c == '_');
    let lower = line.to_lowercase();
    if !lower.contains(is_sep) {
        return vec![lower];
    }
    let mut pieces = lower.split(is_sep);
    let first = pieces.next().unwrap_or_default();
    let rest: Vec<&str> = pieces.filter(|p| !p.is_empty()).collect();
    let mut words = Vec::with_capacity(rest.len() + 1);
    // An empty first token survives only if a word follows it (trailing empties are dropped).
    if !first.is_empty() || !rest.is_empty() {
        words.push(first.to_string());
    }
    words.extend(rest.into_iter().map(str::to_string));
    words
}

/// Name of the letter sums' window store (its changelog is
/// `<application.id>-letter-sums-store-changelog`).
pub const LETTER_SUMS_STORE: &str = "letter-sums-store";
/// The letter sums' tumbling windows of event time.
pub const LETTER_WINDOW: Duration = Duration::from_secs(10);
/// How late (in event time) a word may come and still count in its window: generous, so that
/// an instance that restarts after the others moved on loses nothing.
pub const LETTER_GRACE: Duration = Duration::from_secs(300);

/// The letter sums' output key: the first letter and the window's start in milliseconds.
pub fn letter_window_key(letter: &str, window_start_ms: i64) -> String {
    format!("{letter}@{window_start_ms}")
}

/// The WordCountDemo topology from `input` to `output`.
///
/// Like the Java demo it names its store `counts-store`, so its repartition topic is
/// `<application.id>-counts-store-repartition` and its changelog
/// `<application.id>-counts-store-changelog`.
pub fn topology(input: &str, output: &str) -> Result<Topology> {
    topology_with_letter_sums(input, output, None)
}

/// [`topology`], and with `letter_sums` also, per first letter and [`LETTER_WINDOW`] of the
/// lines' timestamps, the summed lengths of the words (key [`letter_window_key`], value an
/// 8-byte big-endian i64, one update per word).
pub fn topology_with_letter_sums(
    input: &str,
    output: &str,
    letter_sums: Option<&str>,
) -> Result<Topology> {
    let builder = StreamsBuilder::new();
    let words = builder
        .stream_with::<Option<Vec<u8>>, String>(
            &[input],
            Consumed::with(Serdes::nullable(Serdes::bytes()), Serdes::string()),
        )
        .flat_map_values(|line: String| split_words(&line));
    if let Some(sums) = letter_sums {
        words
            .filter(|_, word| !word.is_empty())
            .map(|_, word| (word[..1].to_string(), word.len() as i64))
            .group_by_key_with(Grouped::with(Serdes::string(), Serdes::i64()))
            .windowed_by(TimeWindows::of_size_and_grace(LETTER_WINDOW, LETTER_GRACE))
            .reduce_with(|a, b| a + b, Materialized::as_store(LETTER_SUMS_STORE))
            .to_stream()
            .map(|k, sum| (letter_window_key(&k.key, k.window.start), sum))
            .to_with(
                sums,
                Produced::with(Serdes::string(), Serdes::nullable(Serdes::i64())),
            );
    }
    words
        .group_by(|_, word| word.clone())
        .count_with(Materialized::as_store(STORE))
        .to_stream()
        .to_with(
            output,
            Produced::with(Serdes::string(), Serdes::nullable(Serdes::i64())),
        );
    builder.build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_like_java() {
        assert_eq!(split_words("Hello, World!"), vec!["hello", "world"]);
        assert_eq!(split_words(" all  streams"), vec!["", "all", "streams"]);
        assert_eq!(split_words("naïve café"), vec!["na", "ve", "caf"]);
        assert_eq!(split_words(""), vec![""]);
        assert!(split_words("!!!").is_empty());
        assert_eq!(split_words("a b"), vec!["a", "b"]);
        assert_eq!(split_words("a--b__c"), vec!["a", "b__c"]);
        assert_eq!(split_words("trailing. "), vec!["trailing"]);
        assert_eq!(split_words("-lead"), vec!["", "lead"]);
        assert_eq!(split_words("  "), Vec::<String>::new());
        assert_eq!(split_words("x"), vec!["x"]);
        assert_eq!(split_words("Über"), vec!["", "ber"]);
    }
}
