//! Writes into a [`KeyValueStoreStack`]: puts and deletes through the layers, and restoration.

use super::KeyValueStoreStack;
use crate::{FlushedEntry, Result};

impl KeyValueStoreStack {
    /// value None = delete. Returns entries evicted from the cache by this put (already written
    /// to the changelog and the engine), for the caller to forward; always empty when not cached.
    pub fn put(
        &mut self,
        key: &[u8],
        value: Option<&[u8]>,
        timestamp: i64,
    ) -> Result<Vec<FlushedEntry>> {
        let absent_below = self.take_missing(key);
        match &mut self.cache {
            Some(cache) => {
                cache.put(key, value, timestamp, absent_below);
                self.evict()
            }
            None => {
                match value {
                    Some(value) => self.engine.put(key, value)?,
                    None => self.engine.delete(key)?,
                }
                // Log only what the engine accepted, so the changelog never runs ahead of it.
                if let Some(changelog) = &mut self.changelog {
                    changelog.log(self.engine.name(), key, value, timestamp);
                }
                Ok(Vec::new())
            }
        }
    }

    /// Returns the previous value; writes only when absent.
    pub fn put_if_absent(
        &mut self,
        key: &[u8],
        value: &[u8],
        timestamp: i64,
    ) -> Result<(Option<Vec<u8>>, Vec<FlushedEntry>)> {
        let previous = self.get(key)?;
        if previous.is_some() {
            return Ok((previous, Vec::new()));
        }
        let evicted = self.put(key, Some(value), timestamp)?;
        Ok((None, evicted))
    }

    /// Returns the previous value.
    pub fn delete(
        &mut self,
        key: &[u8],
        timestamp: i64,
    ) -> Result<(Option<Vec<u8>>, Vec<FlushedEntry>)> {
        let previous = self.get(key)?;
        let evicted = self.put(key, None, timestamp)?;
        Ok((previous, evicted))
    }

    /// Restoration: writes straight to the engine (no cache, no changelog).
    ///
    /// Cached entries of the restored keys are dropped so that reads see the restored values.
    pub fn restore_batch(&mut self, batch: &[(Vec<u8>, Option<Vec<u8>>)]) -> Result<()> {
        self.missing.borrow_mut().clear();
        self.engine.restore_batch(batch)?;
        if let Some(cache) = &mut self.cache {
            if !cache.is_empty() {
                for (key, _) in batch {
                    cache.remove(key);
                }
            }
        }
        Ok(())
    }
}
