//! Tests of [`KeyValueStoreStack`], and the changelog recorder and builders they share.

mod bulk;
mod caching;
mod layers;

use std::sync::{Arc, Mutex};

use super::KeyValueStoreStack;
use crate::{CacheBudget, ChangelogWriter, FlushedEntry, InMemoryEngine, CACHE_ENTRY_OVERHEAD};

/// One changelog record: (store, key, value, timestamp).
type Logged = (String, Vec<u8>, Option<Vec<u8>>, i64);

/// Records every changelog write, shared with the test through the Arc.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Logged>>>);

impl Recorder {
    fn records(&self) -> Vec<Logged> {
        self.0.lock().unwrap().clone()
    }
}

impl ChangelogWriter for Recorder {
    fn log(&mut self, store: &str, key: &[u8], value: Option<&[u8]>, timestamp: i64) {
        self.0.lock().unwrap().push((
            store.to_string(),
            key.to_vec(),
            value.map(<[u8]>::to_vec),
            timestamp,
        ));
    }
}

fn b(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

fn logged(store: &str, key: &str, value: Option<&str>, timestamp: i64) -> Logged {
    (store.to_string(), b(key), value.map(b), timestamp)
}

fn entry(key: &str, new: Option<&str>, old: Option<&str>, timestamp: i64) -> FlushedEntry {
    FlushedEntry {
        key: b(key),
        new_value: new.map(b),
        old_value: old.map(b),
        timestamp,
    }
}

/// A logged stack over a memory engine, cached when `budget` is given.
fn stack(budget: Option<Arc<CacheBudget>>) -> (KeyValueStoreStack, Recorder) {
    let recorder = Recorder::default();
    let mut stack = KeyValueStoreStack::new(Box::new(InMemoryEngine::new("store")))
        .with_changelog(Box::new(recorder.clone()));
    if let Some(budget) = budget {
        stack = stack.with_cache(budget);
    }
    (stack, recorder)
}

/// Budget for exactly `n` entries of a one-byte key and one-byte value.
fn room_for(n: usize) -> Arc<CacheBudget> {
    CacheBudget::new(n * (2 + CACHE_ENTRY_OVERHEAD))
}
