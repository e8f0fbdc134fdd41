//! How dirty entries leave a stack's cache for engine and changelog: flushes, evictions, drops.

use super::KeyValueStoreStack;
use crate::cache::PendingWrite;
use crate::{ChangelogWriter, FlushedEntry, KeyValueEngine, Result};

impl KeyValueStoreStack {
    /// Writes every dirty cache entry (in LRU order: least recently written first) to changelog +
    /// engine and returns them with old_value = the engine's value before the write. Empty when not
    /// cached.
    ///
    /// Entries stay cached, clean. A cached delete of a key the engine does not have is dropped
    /// silently: there is nothing to delete or to tell downstream.
    pub fn flush_cache(&mut self) -> Result<Vec<FlushedEntry>> {
        let Some(cache) = &mut self.cache else {
            return Ok(Vec::new());
        };
        let writes = cache.all_dirty_writes();
        let keys: Vec<Vec<u8>> = writes.iter().map(|w| w.key.clone()).collect();
        let flushed = write_entries(self.engine.as_mut(), self.changelog.as_deref_mut(), writes)?;
        // Only after the engine took them: on error the entries stay dirty for the next attempt.
        cache.mark_clean(keys);
        Ok(flushed)
    }

    /// Drops every entry with `from <= key < to`, cached or stored: expired time segments leave
    /// this way (their changelog records age out by the topic's retention, as in Kafka
    /// Streams).
    ///
    /// Dirty cache entries in the range are first written out like an eviction (engine and
    /// changelog) and returned for the owner to forward: a window's last update must reach
    /// downstream even when its segment expires before the next commit.
    pub fn drop_range(&mut self, from: &[u8], to: &[u8]) -> Result<Vec<FlushedEntry>> {
        self.missing.borrow_mut().clear();
        let mut flushed = Vec::new();
        if let Some(cache) = &mut self.cache {
            // In write order, as a flush: downstream, a later write forwarded first would move
            // stream time past windows whose earlier updates are still to come.
            let doomed = cache.keys_below_in_write_order(from, to);
            let writes = cache.dirty_writes(&doomed);
            flushed = write_entries(self.engine.as_mut(), self.changelog.as_deref_mut(), writes)?;
            for key in doomed {
                cache.remove(&key);
            }
        }
        self.engine.delete_range(from, to)?;
        Ok(flushed)
    }

    /// Evicts this store's least recently written entries while the shared budget is exceeded,
    /// writing the dirty ones; returns what was written.
    pub(super) fn evict(&mut self) -> Result<Vec<FlushedEntry>> {
        let Some(cache) = &mut self.cache else {
            return Ok(Vec::new());
        };
        let victims = cache.eviction_victims();
        if victims.is_empty() {
            return Ok(Vec::new());
        }
        let writes = cache.dirty_writes(&victims);
        let flushed = write_entries(self.engine.as_mut(), self.changelog.as_deref_mut(), writes)?;
        // Removed only once written, so a failed write loses nothing.
        for key in &victims {
            cache.remove(key);
        }
        tracing::trace!(
            store = self.engine.name(),
            evicted = victims.len(),
            written = flushed.len(),
            "evicted cache entries"
        );
        Ok(flushed)
    }
}

/// Writes cached entries to the engine in one batch, then logs them; returns them with the
/// engine's previous values.
fn write_entries(
    engine: &mut dyn KeyValueEngine,
    changelog: Option<&mut (dyn ChangelogWriter + 'static)>,
    writes: Vec<PendingWrite>,
) -> Result<Vec<FlushedEntry>> {
    let mut flushed = Vec::with_capacity(writes.len());
    for PendingWrite {
        key,
        value: new_value,
        timestamp,
        absent_below,
    } in writes
    {
        let old_value = match absent_below {
            true => None,
            false => engine.get(&key)?,
        };
        if new_value.is_none() && old_value.is_none() {
            // Deleting what the engine never had (e.g. put then delete within one commit):
            // as in Kafka Streams, neither written, logged nor forwarded.
            continue;
        }
        flushed.push(FlushedEntry {
            key,
            new_value,
            old_value,
            timestamp,
        });
    }
    if flushed.is_empty() {
        return Ok(flushed);
    }
    let batch: Vec<(Vec<u8>, Option<Vec<u8>>)> = flushed
        .iter()
        .map(|entry| (entry.key.clone(), entry.new_value.clone()))
        .collect();
    engine.write_batch(&batch)?;
    if let Some(changelog) = changelog {
        for entry in &flushed {
            changelog.log(
                engine.name(),
                &entry.key,
                entry.new_value.as_deref(),
                entry.timestamp,
            );
        }
    }
    Ok(flushed)
}
