//! What is measured: the workloads, systems and brokers (with their identifiers in the results),
//! and the deterministic input with what each workload must output for it.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

/// Generates `enum`s whose variants have fixed identifiers (used on the command line, in the
/// table and in the JSON lines).
macro_rules! identifiers {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $id:literal,)+ }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub(crate) enum $name {
            $($(#[$vdoc])* $variant,)+
        }

        impl $name {
            /// Every value, in the order results are reported.
            pub(crate) const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The identifier used on the command line and in results.
            pub(crate) fn id(self) -> &'static str {
                match self {
                    $($name::$variant => $id,)+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.id())
            }
        }

        impl FromStr for $name {
            type Err = String;

            fn from_str(s: &str) -> Result<Self, String> {
                $name::ALL
                    .iter()
                    .copied()
                    .find(|v| v.id() == s)
                    .ok_or_else(|| {
                        let ids: Vec<&str> = $name::ALL.iter().map(|v| v.id()).collect();
                        format!("`{s}` is not one of {}", ids.join(", "))
                    })
            }
        }
    };
}

identifiers!(
    /// A topology (after Kafka's own streams benchmark).
    Workload {
        /// Source to sink.
        Passthrough = "passthrough",
        /// Keeps even keys, upper-cases the value.
        FilterMap = "filter-map",
        /// Count by key.
        Count = "count",
        /// Splits values on whitespace, groups by word, counts.
        Wordcount = "wordcount",
        /// Count by key in 1-second tumbling windows without grace.
        WindowedCount = "windowed-count",
        /// Stream-table left join with a table of `TABLE_KEYS` keys.
        Join = "join",
        /// Rebuilds a count store from its changelog after local state is deleted.
        Restore = "restore",
        /// Restarts a count on its local state after the process died without closing (run
        /// it with `--guarantee exactly_once_v2`): what is restored, and how long until
        /// RUNNING. Kafka Streams wipes such a task's stores under exactly-once.
        CrashRestore = "crash-restore",
    }
);

identifiers!(
    /// Who processes the input.
    System {
        /// This project, release build.
        Streams = "streams",
        /// Java Kafka Streams (bench/java).
        Java = "kafka-streams-java",
        /// An rdkafka consumer piping to an rdkafka producer, no processing.
        RawPipe = "raw-pipe",
        /// An rdkafka consumer alone.
        RawConsume = "raw-consume",
    }
);

identifiers!(
    /// Where the topics live.
    Broker {
        /// Apache Kafka (scripts/kafka-testbed).
        Kafka = "kafka",
        /// This project's `streams-broker`.
        Bundled = "bundled",
    }
);

impl Workload {
    /// Whether the workload measures a restoration: its input is one record per key of the
    /// store, `--restore-keys` of them.
    pub(crate) fn restores(self) -> bool {
        matches!(self, Workload::Restore | Workload::CrashRestore)
    }
}

impl System {
    /// Whether this system runs `workload`: the raw clients have no topology, so they only give
    /// the limit of passthrough.
    pub(crate) fn runs(self, workload: Workload) -> bool {
        match self {
            System::Streams | System::Java => true,
            System::RawPipe | System::RawConsume => workload == Workload::Passthrough,
        }
    }
}

/// Distinct keys of the join's table.
pub(crate) const TABLE_KEYS: u32 = 10_000;
/// Width of the tumbling windows of `windowed-count`.
pub(crate) const WINDOW_MS: i64 = 1_000;
/// Event time advances by one second every this many input records.
const RECORDS_PER_EVENT_SECOND: u64 = 10_000;
/// Words are `word` and 7 digits: 11 characters, 12 with the separating space.
const WORD_WIDTH: usize = 12;

/// The deterministic input: record `i` has an integer key drawn from `keys`, a `value_bytes`
/// ASCII value of whitespace-separated words (each drawn from `keys` distinct words), and a
/// timestamp `base_ts + i / 10` ms (10,000 records per event-time second).
#[derive(Clone, Debug)]
pub(crate) struct Input {
    /// Number of records.
    pub(crate) records: u64,
    /// Keys are drawn from `0..keys`; words from as many distinct words.
    pub(crate) keys: u32,
    /// Length of every value.
    pub(crate) value_bytes: usize,
    /// Timestamp of record 0 (a whole second, so that windows line up with the input).
    pub(crate) base_ts: i64,
}

/// splitmix64: a cheap, well-mixed hash of the record index (no `rand` dependency needed).
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

impl Input {
    /// The key of record `i`.
    pub(crate) fn key(&self, i: u64) -> i32 {
        (mix(i) % u64::from(self.keys)) as i32
    }

    /// The number of words in each value.
    pub(crate) fn words_per_value(&self) -> usize {
        (self.value_bytes + 1) / WORD_WIDTH
    }

    /// The value of record `i`: words separated by one space, padded with spaces to
    /// `value_bytes` (trailing whitespace splits to nothing in both languages).
    pub(crate) fn value(&self, i: u64) -> String {
        let mut v = String::with_capacity(self.value_bytes);
        for j in 0..self.words_per_value() as u64 {
            if j > 0 {
                v.push(' ');
            }
            let w = mix(i.wrapping_mul(31).wrapping_add(j + 1)) % u64::from(self.keys);
            v.push_str(&word(w));
        }
        while v.len() < self.value_bytes {
            v.push(' ');
        }
        v
    }

    /// The timestamp of record `i`.
    pub(crate) fn timestamp(&self, i: u64) -> i64 {
        self.base_ts + (i * 1_000 / RECORDS_PER_EVENT_SECOND) as i64
    }

    /// The value of key `k` in the join's table.
    pub(crate) fn table_value(k: i32) -> String {
        format!("profile-{k:05}")
    }

    /// What the join emits for a stream value and its table value.
    pub(crate) fn joined(value: &str, table: Option<&str>) -> String {
        format!("{value}|{}", table.unwrap_or("null"))
    }
}

/// Word `n` of the vocabulary.
fn word(n: u64) -> String {
    format!("word{n:07}")
}

/// An order-independent checksum of a set of records: the wrapping sum of a 64-bit FNV-1a hash
/// of each key and value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Checksum {
    /// Records added.
    pub(crate) count: u64,
    /// Wrapping sum of the record hashes.
    pub(crate) sum: u64,
}

impl Checksum {
    /// Adds one record (a null key or value hashes differently from an empty one).
    pub(crate) fn add(&mut self, key: Option<&[u8]>, value: Option<&[u8]>) {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut eat = |b: u8| {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        };
        for part in [key, value] {
            match part {
                Some(bytes) => {
                    eat(1);
                    bytes.iter().for_each(|&b| eat(b));
                }
                None => eat(0),
            }
            eat(0xff);
        }
        self.count += 1;
        self.sum = self.sum.wrapping_add(h);
    }
}

/// What a workload's output must be, computed from the input alone.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Expected {
    /// Exactly these records, in any order.
    Records(Checksum),
    /// The last value written per key (a table): counts by key.
    ByKey(HashMap<i32, i64>),
    /// Counts by word.
    ByWord(HashMap<String, i64>),
    /// Counts by key and window start.
    ByWindow(HashMap<(i32, i64), i64>),
    /// Nothing read from a topic: the application reports the changelog records it restored.
    Restored(u64),
    /// The same, with at most this many restored (the changelog's records).
    RestoredAtMost(u64),
}

impl Input {
    /// Records every workload's sources process, repartition topics included: what the
    /// application waits for before it stops.
    pub(crate) fn processed(&self, workload: Workload) -> u64 {
        match workload {
            Workload::Wordcount => self.records * (1 + self.words_per_value() as u64),
            Workload::Join => self.records + u64::from(TABLE_KEYS),
            _ => self.records,
        }
    }

    /// What `workload` must write for this input (for `restore`, whose input is one record
    /// per key, the store's size).
    pub(crate) fn expected(&self, workload: Workload) -> Expected {
        let key_bytes = |i: u64| self.key(i).to_be_bytes();
        match workload {
            Workload::Passthrough => {
                let mut c = Checksum::default();
                for i in 0..self.records {
                    c.add(Some(&key_bytes(i)), Some(self.value(i).as_bytes()));
                }
                Expected::Records(c)
            }
            Workload::FilterMap => {
                let mut c = Checksum::default();
                for i in (0..self.records).filter(|&i| self.key(i) % 2 == 0) {
                    let v = self.value(i).to_uppercase();
                    c.add(Some(&key_bytes(i)), Some(v.as_bytes()));
                }
                Expected::Records(c)
            }
            Workload::Join => {
                let mut c = Checksum::default();
                for i in 0..self.records {
                    let k = self.key(i);
                    let t = (k < TABLE_KEYS as i32).then(|| Input::table_value(k));
                    let v = Input::joined(&self.value(i), t.as_deref());
                    c.add(Some(&key_bytes(i)), Some(v.as_bytes()));
                }
                Expected::Records(c)
            }
            Workload::Count => {
                let mut m = HashMap::new();
                for i in 0..self.records {
                    *m.entry(self.key(i)).or_insert(0) += 1;
                }
                Expected::ByKey(m)
            }
            Workload::Wordcount => {
                let mut m = HashMap::new();
                for i in 0..self.records {
                    for w in self.value(i).split_whitespace() {
                        *m.entry(w.to_string()).or_insert(0) += 1;
                    }
                }
                Expected::ByWord(m)
            }
            Workload::WindowedCount => {
                let mut m = HashMap::new();
                for i in 0..self.records {
                    let ts = self.timestamp(i);
                    let start = ts - ts.rem_euclid(WINDOW_MS);
                    *m.entry((self.key(i), start)).or_insert(0) += 1;
                }
                Expected::ByWindow(m)
            }
            Workload::Restore => Expected::Restored(self.records),
            Workload::CrashRestore => Expected::RestoredAtMost(self.records),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(records: u64) -> Input {
        Input {
            records,
            keys: 10_000,
            value_bytes: 100,
            base_ts: 1_000_000,
        }
    }

    #[test]
    fn identifiers_round_trip() {
        for w in Workload::ALL {
            assert_eq!(w.id().parse::<Workload>().unwrap(), *w);
        }
        for s in System::ALL {
            assert_eq!(s.id().parse::<System>().unwrap(), *s);
        }
        assert_eq!("bundled".parse::<Broker>().unwrap(), Broker::Bundled);
        let e = "pasthrough".parse::<Workload>().unwrap_err();
        assert!(e.contains("passthrough, filter-map"), "{e}");
    }

    #[test]
    fn values_are_deterministic_words_of_the_requested_size() {
        let a = input(10);
        for i in 0..10 {
            let v = a.value(i);
            assert_eq!(v.len(), 100);
            assert_eq!(v, a.value(i));
            assert_eq!(v.split_whitespace().count(), 8);
            assert!(v
                .split_whitespace()
                .all(|w| w.len() == 11 && w.starts_with("word")));
            assert!((0..10_000).contains(&a.key(i)));
        }
        assert_ne!(a.value(0), a.value(1));
        let small = Input {
            value_bytes: 30,
            ..input(1)
        };
        assert_eq!(small.value(0).len(), 30);
        assert_eq!(small.words_per_value(), 2);
    }

    #[test]
    fn timestamps_advance_one_second_per_ten_thousand_records() {
        let a = input(0);
        assert_eq!(a.timestamp(0), 1_000_000);
        assert_eq!(a.timestamp(9_999), 1_000_999);
        assert_eq!(a.timestamp(10_000), 1_001_000);
    }

    #[test]
    fn expectations_add_up_to_the_input() {
        let a = input(5_000);
        let Expected::ByKey(counts) = a.expected(Workload::Count) else {
            panic!()
        };
        assert_eq!(counts.values().sum::<i64>(), 5_000);
        let Expected::ByWord(words) = a.expected(Workload::Wordcount) else {
            panic!()
        };
        assert_eq!(words.values().sum::<i64>(), 40_000);
        let Expected::ByWindow(windows) = a.expected(Workload::WindowedCount) else {
            panic!()
        };
        assert_eq!(windows.values().sum::<i64>(), 5_000);
        assert!(windows.keys().all(|(_, start)| start % WINDOW_MS == 0));
        let Expected::Records(all) = a.expected(Workload::Passthrough) else {
            panic!()
        };
        assert_eq!(all.count, 5_000);
        let Expected::Records(even) = a.expected(Workload::FilterMap) else {
            panic!()
        };
        assert!(even.count > 2_000 && even.count < 3_000, "{even:?}");
        assert_eq!(a.processed(Workload::Wordcount), 45_000);
        assert_eq!(a.processed(Workload::Join), 15_000);
    }

    #[test]
    fn checksums_ignore_order_but_not_content() {
        let (mut a, mut b, mut c) = (
            Checksum::default(),
            Checksum::default(),
            Checksum::default(),
        );
        a.add(Some(b"k1"), Some(b"v1"));
        a.add(Some(b"k2"), None);
        b.add(Some(b"k2"), None);
        b.add(Some(b"k1"), Some(b"v1"));
        c.add(Some(b"k1"), Some(b"v1"));
        c.add(Some(b"k2"), Some(b""));
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
