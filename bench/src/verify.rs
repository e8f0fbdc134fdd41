//! Checks an application's output against what its input must produce. Entry point:
//! [`verify`]; [`read_topic`] reads a whole topic as it is now.

use std::collections::HashMap;
use std::fmt::Debug;
use std::hash::Hash;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::workload::{Checksum, Expected};

const TIMEOUT: Duration = Duration::from_secs(30);

/// Calls `f(key, value)` for every record of `topic`, from each partition's start to its high
/// watermark when the read starts.
pub(crate) fn read_topic(
    bootstrap: &str,
    topic: &str,
    mut f: impl FnMut(Option<&[u8]>, Option<&[u8]>),
) -> anyhow::Result<u64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "streams-bench-verifier")
        .set("enable.auto.commit", "false")
        // Committed records only: under exactly-once an aborted write must not count.
        .set("isolation.level", "read_committed")
        .create()
        .context("creating a consumer")?;
    let md = consumer
        .fetch_metadata(Some(topic), TIMEOUT)
        .with_context(|| format!("metadata of `{topic}`"))?;
    let mut tpl = TopicPartitionList::new();
    let mut remaining: HashMap<i32, i64> = HashMap::new();
    for t in md.topics() {
        for p in t.partitions() {
            let (lo, hi) = consumer
                .fetch_watermarks(topic, p.id(), TIMEOUT)
                .with_context(|| format!("watermarks of `{topic}` [{}]", p.id()))?;
            if hi > lo {
                remaining.insert(p.id(), hi);
                tpl.add_partition_offset(topic, p.id(), Offset::Beginning)?;
            }
        }
    }
    if remaining.is_empty() {
        return Ok(0);
    }
    consumer.assign(&tpl)?;
    let mut n = 0;
    let mut last_progress = Instant::now();
    while !remaining.is_empty() {
        match consumer.poll(Duration::from_millis(200)) {
            Some(m) => {
                let m = m.with_context(|| format!("reading `{topic}`"))?;
                if let Some(&hi) = remaining.get(&m.partition()) {
                    if m.offset() < hi {
                        f(m.key(), m.payload());
                        n += 1;
                    }
                    if m.offset() + 1 >= hi {
                        remaining.remove(&m.partition());
                    }
                }
                last_progress = Instant::now();
            }
            // Under exactly-once the last offset is a transaction marker, never delivered: a
            // partition whose position has reached the end is done.
            None if at_end(&consumer, topic, &mut remaining) => last_progress = Instant::now(),
            None if last_progress.elapsed() > TIMEOUT => {
                bail!("reading `{topic}`: nothing for {TIMEOUT:?}, {remaining:?} left")
            }
            None => {}
        }
    }
    Ok(n)
}

/// Drops the partitions whose read position has reached their end; true if any did.
fn at_end(consumer: &BaseConsumer, topic: &str, remaining: &mut HashMap<i32, i64>) -> bool {
    let Ok(positions) = consumer.position() else {
        return false;
    };
    let before = remaining.len();
    remaining.retain(|p, hi| {
        !matches!(
            positions.find_partition(topic, *p).map(|e| e.offset()),
            Some(Offset::Offset(o)) if o >= *hi
        )
    });
    remaining.len() < before
}

/// Compares counts by key: the number of keys that differ and up to three examples.
pub(crate) fn compare_counts<K: Eq + Hash + Debug + Ord>(
    expected: &HashMap<K, i64>,
    got: &HashMap<K, i64>,
) -> Result<(), String> {
    let mut wrong: Vec<(&K, i64, Option<i64>)> = expected
        .iter()
        .filter(|(k, v)| got.get(*k) != Some(*v))
        .map(|(k, v)| (k, *v, got.get(k).copied()))
        .collect();
    let extra = got.keys().filter(|k| !expected.contains_key(*k)).count();
    if wrong.is_empty() && extra == 0 {
        return Ok(());
    }
    wrong.sort();
    let examples: Vec<String> = wrong
        .iter()
        .take(3)
        .map(|(k, want, got)| format!("{k:?}: want {want}, got {got:?}"))
        .collect();
    Err(format!(
        "{} of {} keys wrong, {extra} unexpected (e.g. {})",
        wrong.len(),
        expected.len(),
        examples.join("; ")
    ))
}

fn be_i32(b: Option<&[u8]>) -> Option<i32> {
    Some(i32::from_be_bytes(b?.get(..4)?.try_into().ok()?))
}

fn be_i64(b: Option<&[u8]>) -> Option<i64> {
    Some(i64::from_be_bytes(b?.get(..8)?.try_into().ok()?))
}

/// Reads `topic` as a table of counts: the last value per key, keyed by `key(bytes)`.
fn read_counts<K: Eq + Hash>(
    bootstrap: &str,
    topic: &str,
    key: impl Fn(Option<&[u8]>) -> Option<K>,
) -> anyhow::Result<HashMap<K, i64>> {
    let mut m = HashMap::new();
    let mut bad = 0u64;
    read_topic(bootstrap, topic, |k, v| match (key(k), be_i64(v)) {
        (Some(k), Some(v)) => {
            m.insert(k, v);
        }
        _ => bad += 1,
    })?;
    if bad > 0 {
        bail!("{bad} records of `{topic}` are not a key and an 8-byte count");
    }
    Ok(m)
}

/// Checks the output topic (or, for restore, the application's own count of restored
/// records) against `expected`.
pub(crate) fn verify(
    bootstrap: &str,
    output: &str,
    expected: &Expected,
    restored: u64,
) -> anyhow::Result<Result<(), String>> {
    Ok(match expected {
        Expected::Records(want) => {
            let mut got = Checksum::default();
            read_topic(bootstrap, output, |k, v| got.add(k, v))?;
            if got == *want {
                Ok(())
            } else {
                Err(format!(
                    "{} records (checksum {:x}), want {} (checksum {:x})",
                    got.count, got.sum, want.count, want.sum
                ))
            }
        }
        Expected::ByKey(want) => compare_counts(want, &read_counts(bootstrap, output, be_i32)?),
        Expected::ByWord(want) => compare_counts(
            want,
            &read_counts(bootstrap, output, |k| {
                k.map(|b| String::from_utf8_lossy(b).into_owned())
            })?,
        ),
        Expected::ByWindow(want) => compare_counts(
            want,
            &read_counts(bootstrap, output, |k| {
                let k = k.filter(|k| k.len() == 12)?;
                Some((be_i32(Some(k))?, be_i64(Some(&k[4..]))?))
            })?,
        ),
        Expected::RestoredAtMost(most) => {
            if restored <= *most {
                Ok(())
            } else {
                Err(format!("restored {restored} records, at most {most} exist"))
            }
        }
        Expected::Restored(want) => {
            if restored == *want {
                Ok(())
            } else {
                Err(format!("restored {restored} records, want {want}"))
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_must_match_exactly() {
        let want: HashMap<i32, i64> = [(1, 2), (2, 5)].into_iter().collect();
        assert_eq!(compare_counts(&want, &want.clone()), Ok(()));
        let short: HashMap<i32, i64> = [(1, 2), (2, 4)].into_iter().collect();
        let e = compare_counts(&want, &short).unwrap_err();
        assert!(e.starts_with("1 of 2 keys wrong, 0 unexpected"), "{e}");
        assert!(e.contains("2: want 5, got Some(4)"), "{e}");
        let extra: HashMap<i32, i64> = [(1, 2), (2, 5), (3, 1)].into_iter().collect();
        assert!(compare_counts(&want, &extra)
            .unwrap_err()
            .contains("1 unexpected"));
        let missing: HashMap<i32, i64> = [(1, 2)].into_iter().collect();
        assert!(compare_counts(&want, &missing)
            .unwrap_err()
            .contains("got None"));
    }

    #[test]
    fn decodes_big_endian_keys_and_counts() {
        assert_eq!(be_i32(Some(&[0, 0, 1, 0])), Some(256));
        assert_eq!(be_i64(Some(&7i64.to_be_bytes())), Some(7));
        assert_eq!(be_i64(Some(&[1, 2])), None);
        assert_eq!(be_i32(None), None);
    }
}
