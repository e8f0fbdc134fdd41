//! [`InMemoryEngine`]: a `BTreeMap` engine for non-persistent stores and for tests.

use std::collections::BTreeMap;
use std::ops::Bound;

use super::ChangelogOffsets;
use crate::{KeyValue, KeyValueEngine, Result, StoreError};

/// A non-persistent engine keeping every entry in a `BTreeMap`, so ranges come out in key order.
///
/// Its state lives only as long as the process; on restart a task restores it entirely from the
/// changelog.
///
/// ```
/// use state_store::{InMemoryEngine, KeyValueEngine};
///
/// let mut engine = InMemoryEngine::new("counts");
/// engine.put(b"apple", b"1")?;
/// engine.put(b"banana", b"2")?;
/// engine.put(b"cherry", b"3")?;
/// engine.delete(b"cherry")?;
///
/// assert_eq!(engine.get(b"apple")?, Some(b"1".to_vec()));
/// assert_eq!(engine.get(b"cherry")?, None);
/// // Bounds are inclusive and either may be open.
/// let keys: Vec<_> = engine.range(Some(b"b"), None)?.into_iter().map(|(k, _)| k).collect();
/// assert_eq!(keys, vec![b"banana".to_vec()]);
/// assert_eq!(engine.approximate_num_entries()?, 2);
/// # Ok::<(), state_store::StoreError>(())
/// ```
#[derive(Debug)]
pub struct InMemoryEngine {
    name: String,
    entries: BTreeMap<Vec<u8>, Vec<u8>>,
    offsets: ChangelogOffsets,
    /// Set by `close`, after which the map is dropped and every call fails, as for RocksDB, so
    /// that a use-after-close bug shows up with either engine.
    closed: bool,
}

impl InMemoryEngine {
    /// An empty engine for the store `name`.
    pub fn new(name: impl Into<String>) -> Self {
        InMemoryEngine {
            name: name.into(),
            entries: BTreeMap::new(),
            offsets: ChangelogOffsets::new(),
            closed: false,
        }
    }

    fn check_open(&self) -> Result<()> {
        if self.closed {
            Err(StoreError::Closed {
                store: self.name.clone(),
            })
        } else {
            Ok(())
        }
    }
}

impl KeyValueEngine for InMemoryEngine {
    fn name(&self) -> &str {
        &self.name
    }

    fn persistent(&self) -> bool {
        false
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.check_open()?;
        Ok(self.entries.get(key).cloned())
    }

    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.check_open()?;
        self.entries.insert(key.to_vec(), value.to_vec());
        Ok(())
    }

    fn delete(&mut self, key: &[u8]) -> Result<()> {
        self.check_open()?;
        self.entries.remove(key);
        Ok(())
    }

    fn range(&self, from: Option<&[u8]>, to: Option<&[u8]>) -> Result<Vec<KeyValue>> {
        self.check_open()?;
        if let (Some(from), Some(to)) = (from, to) {
            // BTreeMap::range panics on an inverted range; the trait promises an empty result.
            if from > to {
                return Ok(Vec::new());
            }
        }
        let start = from.map_or(Bound::Unbounded, Bound::Included);
        let end = to.map_or(Bound::Unbounded, Bound::Included);
        Ok(self
            .entries
            .range::<[u8], _>((start, end))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn scan(
        &self,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
        reverse: bool,
        limit: usize,
    ) -> Result<Vec<KeyValue>> {
        self.check_open()?;
        if super::is_empty_range(from, to) {
            return Ok(Vec::new());
        }
        let range = self.entries.range::<[u8], _>((from, to));
        let clone = |(k, v): (&Vec<u8>, &Vec<u8>)| (k.clone(), v.clone());
        Ok(if reverse {
            range.rev().take(limit).map(clone).collect()
        } else {
            range.take(limit).map(clone).collect()
        })
    }

    fn approximate_num_entries(&self) -> Result<u64> {
        self.check_open()?;
        Ok(self.entries.len() as u64)
    }

    fn write_batch(&mut self, batch: &[(Vec<u8>, Option<Vec<u8>>)]) -> Result<()> {
        self.check_open()?;
        for (key, value) in batch {
            match value {
                Some(value) => self.entries.insert(key.clone(), value.clone()),
                None => self.entries.remove(key),
            };
        }
        Ok(())
    }

    fn write_atomically(
        &mut self,
        ranges: &[(Vec<u8>, Vec<u8>)],
        batch: &[(Vec<u8>, Option<Vec<u8>>)],
        offsets: &ChangelogOffsets,
    ) -> Result<()> {
        self.check_open()?;
        for (from, to) in ranges {
            self.delete_range(from, to)?;
        }
        self.write_batch(batch)?;
        self.offsets
            .extend(offsets.iter().map(|(k, v)| (k.clone(), *v)));
        Ok(())
    }

    fn stored_offsets(&self) -> Result<ChangelogOffsets> {
        self.check_open()?;
        Ok(self.offsets.clone())
    }

    fn delete_range(&mut self, from: &[u8], to: &[u8]) -> Result<()> {
        self.check_open()?;
        if from >= to {
            return Ok(());
        }
        let doomed: Vec<Vec<u8>> = self
            .entries
            .range(from.to_vec()..to.to_vec())
            .map(|(k, _)| k.clone())
            .collect();
        for k in doomed {
            self.entries.remove(&k);
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.check_open()
    }

    fn close(&mut self) -> Result<()> {
        self.closed = true;
        self.entries = BTreeMap::new();
        Ok(())
    }
}
