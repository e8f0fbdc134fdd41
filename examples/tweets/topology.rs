//! Tweet aggregation: hashtag counts and tweet counts per user from JSON tweets, and tweet counts
//! per country from a join with a table of users.
//!
//! Input `tweets`: JSON values `{"id", "user", "text", "timestamp_ms", "lang"}`, record
//! timestamps taken from `timestamp_ms`. Outputs: `hashtag-counts` (key: hashtag lower-cased
//! without `#`; value: i64 big-endian number of tweets containing it, counted once per tweet)
//! and `user-tweet-counts` (key: user; value: i64 big-endian), and `hashtag-counts-1m`: per
//! hashtag and 1-minute tumbling window of event time, the final count only (one record per
//! hashtag and window once the window closes: stream time past its end plus 5 s of grace), key
//! in Kafka Streams' time-windowed format (hashtag bytes + 8-byte window start), value i64
//! big-endian.
//!
//! With [`topology`] (or [`topology_with_countries`]) also: table `users` (key: user; JSON value
//! `{"user", "country"}`), and output `country-tweet-counts` (key: country; value: i64
//! big-endian): each tweet is re-keyed by its user, joined with the user's current row (a left
//! join: tweets of users not in the table count under `unknown`) and counted per country.

use std::collections::BTreeSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use streams::{
    BufferConfig, Consumed, Grouped, Joined, KStream, Materialized, Produced, Result, Serdes,
    StreamsBuilder, Suppressed, TimeWindows, Topology,
};

/// Default input topic.
pub const INPUT_TOPIC: &str = "tweets";
/// Hashtag counts topic.
pub const HASHTAG_TOPIC: &str = "hashtag-counts";
/// Per-user counts topic.
pub const USER_TOPIC: &str = "user-tweet-counts";
/// Final per-minute hashtag counts topic.
pub const HASHTAG_MINUTE_TOPIC: &str = "hashtag-counts-1m";
/// How late a tweet may arrive for its minute (event time).
pub const HASHTAG_MINUTE_GRACE: Duration = Duration::from_secs(5);
/// Users table topic.
pub const USERS_TOPIC: &str = "users";
/// Per-country counts topic.
pub const COUNTRY_TOPIC: &str = "country-tweet-counts";
/// The country of tweets whose user is not in the users table.
pub const UNKNOWN_COUNTRY: &str = "unknown";
/// Event time of the first generated tweet (the example's `--generate`).
pub const GENERATED_START_MS: i64 = 1_700_000_000_000;
/// Default application id.
pub const APPLICATION_ID: &str = "streams-tweets";

/// A row of the users table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// The user's name (also the row's key).
    pub user: String,
    /// Where the user lives.
    pub country: String,
}

/// A tweet as it arrives on the input topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tweet {
    /// Tweet id.
    pub id: String,
    /// Author.
    pub user: String,
    /// Text, with hashtags.
    pub text: String,
    /// Event time, milliseconds since the epoch.
    pub timestamp_ms: i64,
    /// Language code.
    pub lang: String,
}

impl Tweet {
    /// Whether the tweet can be counted: one without an author cannot be (it would count under
    /// an empty user). The topology checks every tweet with `try_filter`, so a bad one goes to
    /// the processing exception handler, which is told its topic, partition and offset.
    pub fn check(&self) -> std::result::Result<(), String> {
        if self.user.trim().is_empty() {
            return Err(format!("tweet `{}` has no user", self.id));
        }
        Ok(())
    }
}

/// The distinct hashtags of `text`, lower-cased, without `#`, in alphabetical order.
pub fn hashtags(text: &str) -> Vec<String> {
    let mut tags = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find('#') {
        rest = &rest[i + 1..];
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        if end > 0 {
            tags.insert(rest[..end].to_lowercase());
        }
        rest = &rest[end..];
    }
    tags.into_iter().collect()
}

/// The tweets topology reading `input` and the `users` table, writing the default output topics.
pub fn topology(input: &str) -> Result<Topology> {
    topology_with_countries(input, USERS_TOPIC, HASHTAG_TOPIC, USER_TOPIC, COUNTRY_TOPIC)
}

/// The tweets topology without the users join: reads `input`, writes `hashtag_topic`,
/// `user_topic` and the final per-minute counts to `minute_topic`.
pub fn topology_to(
    input: &str,
    hashtag_topic: &str,
    user_topic: &str,
    minute_topic: &str,
) -> Result<Topology> {
    let builder = StreamsBuilder::new();
    add_counts(&builder, input, hashtag_topic, user_topic, minute_topic);
    builder.build()
}

/// The whole tweets topology: hashtag and user counts from `input`, and per-country counts to
/// `country_topic` from the join of the tweets with the table of `users_topic`.
pub fn topology_with_countries(
    input: &str,
    users_topic: &str,
    hashtag_topic: &str,
    user_topic: &str,
    country_topic: &str,
) -> Result<Topology> {
    let builder = StreamsBuilder::new();
    let tweets = add_counts(
        &builder,
        input,
        hashtag_topic,
        user_topic,
        HASHTAG_MINUTE_TOPIC,
    );
    let users = builder.table_with::<String, User>(
        users_topic,
        Consumed::with(Serdes::string(), Serdes::json()),
        Materialized::as_store("users-store"),
    );
    tweets
        // Re-keyed by user: the join repartitions through `tweets-by-user-repartition`, so that
        // a tweet meets its user's row whatever the partitioning of the tweets topic.
        .select_key(|_, t| t.user.clone())
        .left_join_with(
            &users,
            |_, user| user.map_or_else(|| UNKNOWN_COUNTRY.to_string(), |u| u.country.clone()),
            Joined::as_name("tweets-by-user"),
        )
        .group_by_with(|_, country| country.clone(), Grouped::as_name("countries"))
        .count_with(Materialized::as_store("country-tweet-counts-store"))
        .to_stream()
        .to_with(
            country_topic,
            Produced::with(Serdes::string(), Serdes::nullable(Serdes::i64())),
        );
    builder.build()
}

/// Adds the hashtag, user and final per-minute hashtag counts; returns the tweets stream.
fn add_counts(
    builder: &StreamsBuilder,
    input: &str,
    hashtag_topic: &str,
    user_topic: &str,
    minute_topic: &str,
) -> KStream<Option<String>, Tweet> {
    let tweets = builder
        .stream_with::<Option<String>, Tweet>(
            &[input],
            Consumed::with(Serdes::nullable(Serdes::string()), Serdes::json::<Tweet>())
                .with_timestamp_extractor(|r, _| r.value.timestamp_ms),
        )
        .named("check-tweets")
        .try_filter(|_, t| t.check().map(|()| true));
    let counts = Produced::with(Serdes::string(), Serdes::nullable(Serdes::i64()));
    tweets
        .flat_map_values(|t: Tweet| hashtags(&t.text))
        .group_by_with(|_, tag| tag.clone(), Grouped::as_name("hashtags"))
        .count_with(Materialized::as_store("hashtag-counts-store"))
        .to_stream()
        .to_with(hashtag_topic, counts);
    tweets
        .group_by_with(|_, t| t.user.clone(), Grouped::as_name("users"))
        .count_with(Materialized::as_store("user-tweet-counts-store"))
        .to_stream()
        .to_with(
            user_topic,
            Produced::with(Serdes::string(), Serdes::nullable(Serdes::i64())),
        );
    hashtag_counts_per_minute(&tweets, minute_topic);
    tweets
}

/// Final per-minute hashtag counts of `tweets` into `topic`.
fn hashtag_counts_per_minute(tweets: &KStream<Option<String>, Tweet>, topic: &str) {
    tweets
        .flat_map_values(|t: Tweet| hashtags(&t.text))
        .group_by_with(|_, tag| tag.clone(), Grouped::as_name("hashtags-1m"))
        .windowed_by(TimeWindows::of_size_and_grace(
            Duration::from_secs(60),
            HASHTAG_MINUTE_GRACE,
        ))
        // Kept an hour, so that interactive queries (the dashboard) see the last closed
        // minutes, not only the windows still open.
        .count_with(
            Materialized::as_store("hashtag-counts-1m-store")
                .with_retention(Duration::from_secs(3600)),
        )
        .suppress(
            Suppressed::until_window_closes(BufferConfig::unbounded())
                .with_name("hashtag-counts-1m-final"),
        )
        .to_stream()
        .to(topic);
}

/// A small deterministic generator of realistic tweets (xorshift, no dependency).
pub struct TweetGenerator {
    state: u64,
    next_id: u64,
    start_ms: i64,
}

const USERS: &[&str] = &[
    "ada", "grace", "linus", "margaret", "ken", "dennis", "barbara", "edsger", "donald", "frances",
    "alan", "john", "radia", "leslie", "tim", "guido", "bjarne", "james", "anders", "rob",
];
const TAGS: &[&str] = &[
    "rust",
    "kafka",
    "streaming",
    "DataEngineering",
    "opensource",
    "tokio",
    "rocksdb",
    "async",
    "devops",
    "cloud",
    "bigdata",
    "realtime",
    "jvm",
    "performance",
    "databases",
];
const WORDS: &[&str] = &[
    "just",
    "shipped",
    "a",
    "new",
    "release",
    "of",
    "our",
    "pipeline",
    "today",
    "loving",
    "how",
    "fast",
    "this",
    "is",
    "benchmarks",
    "look",
    "great",
    "reading",
    "about",
    "exactly-once",
    "state",
    "stores",
    "and",
    "joins",
    "with",
    "windows",
    "in",
    "production",
    "finally",
    "works",
];
const LANGS: &[&str] = &["en", "en", "en", "de", "fr", "es", "ja"];

/// The users of generated tweets with their countries (all but the last two: their tweets count
/// under [`UNKNOWN_COUNTRY`]).
pub fn generated_users() -> Vec<User> {
    const COUNTRIES: &[&str] = &["gb", "us", "fi", "de", "nl", "fr"];
    USERS[..USERS.len() - 2]
        .iter()
        .enumerate()
        .map(|(i, u)| User {
            user: u.to_string(),
            country: COUNTRIES[i % COUNTRIES.len()].to_string(),
        })
        .collect()
}

/// The first `n` tweets the example's `--generate` writes.
pub fn generated_tweets(n: u64) -> Vec<Tweet> {
    let mut g = TweetGenerator::new(42, GENERATED_START_MS);
    (0..n).map(|_| g.next_tweet()).collect()
}

/// Per country, how many of `tweets` come from a user living there (users not in the table of
/// [`generated_users`] under [`UNKNOWN_COUNTRY`]): what the per-country counts come to.
pub fn country_counts(tweets: &[Tweet]) -> std::collections::BTreeMap<String, i64> {
    let users = generated_users();
    let mut counts = std::collections::BTreeMap::new();
    for t in tweets {
        let country = users
            .iter()
            .find(|u| u.user == t.user)
            .map_or(UNKNOWN_COUNTRY, |u| u.country.as_str());
        *counts.entry(country.to_string()).or_insert(0) += 1;
    }
    counts
}

impl TweetGenerator {
    /// A generator whose tweets start at `start_ms`, one every 250 ms.
    pub fn new(seed: u64, start_ms: i64) -> Self {
        TweetGenerator {
            state: seed.max(1),
            next_id: 0,
            start_ms,
        }
    }

    fn next_u64(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.state = x;
        x
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[(self.next_u64() % from.len() as u64) as usize]
    }

    /// The next tweet.
    pub fn next_tweet(&mut self) -> Tweet {
        let n_words = 4 + (self.next_u64() % 10) as usize;
        let mut text: Vec<String> = (0..n_words).map(|_| self.pick(WORDS).to_string()).collect();
        let n_tags = (self.next_u64() % 4) as usize;
        for _ in 0..n_tags {
            let pos = (self.next_u64() % (text.len() as u64 + 1)) as usize;
            let tag = format!("#{}", self.pick(TAGS));
            text.insert(pos, tag);
        }
        let id = self.next_id;
        self.next_id += 1;
        Tweet {
            id: format!("{}", 1_000_000_000 + id),
            user: self.pick(USERS).to_string(),
            text: text.join(" "),
            timestamp_ms: self.start_ms + id as i64 * 250,
            lang: self.pick(LANGS).to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashtags_are_distinct_lower_cased_and_sorted() {
        assert_eq!(
            hashtags("#Rust and #kafka, #rust again #"),
            vec!["kafka", "rust"]
        );
        assert!(hashtags("no tags # here").is_empty());
    }
}
