//! What a processor sees of a store's record cache: [`CachedStore`] and its [`CacheFlush`]es.
//!
//! Every typed store implements [`CachedStore`], so that a processor can forward what the cache
//! writes out (`ProcessorContext::on_cache_flush`).

use state_store::FlushedEntry;

use crate::error::Result;

/// An entry written from a store's record cache to the store (on commit or eviction), typed.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheFlush<K, V> {
    /// The key.
    pub key: K,
    /// The value now in the store (`None`: deleted).
    pub new_value: Option<V>,
    /// The value the store held before the cached updates.
    pub old_value: Option<V>,
    /// Timestamp of the last update of the key.
    pub timestamp: i64,
}

/// Stores whose record cache can tell the owning processor what it writes out: key-value,
/// window and session stores. See [`ProcessorContext::on_cache_flush`](crate::ProcessorContext::on_cache_flush).
pub trait CachedStore: Clone + Send + Sync + 'static {
    /// The key type flushed entries carry.
    type Key: Send + Sync + 'static;
    /// The value type flushed entries carry.
    type Value: Send + Sync + 'static;
    /// The store's name.
    fn store_name(&self) -> &str;
    #[doc(hidden)]
    fn decode_flushed(&self, e: FlushedEntry) -> Result<CacheFlush<Self::Key, Self::Value>>;
}
