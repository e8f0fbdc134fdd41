//! Options of DSL operations, after Kafka Streams': [`Consumed`], [`Produced`], [`Grouped`],
//! [`Materialized`], [`Repartitioned`]. Names given here become node, store and internal topic
//! names, so that a changed topology keeps its state.

use std::collections::BTreeMap;

use streams_core::serde::SerdeRef;
use streams_core::TimestampExtractor;

/// Adds `with_key_serde` and `with_value_serde`, the same on every option that carries a key
/// and a value serde (in fields `key_serde` and `value_serde`).
macro_rules! serde_setters {
    ($($options:ident),+) => {$(
        impl<K, V> $options<K, V> {
            /// Sets the key serde.
            pub fn with_key_serde(mut self, serde: SerdeRef<K>) -> Self {
                self.key_serde = Some(serde);
                self
            }
            /// Sets the value serde.
            pub fn with_value_serde(mut self, serde: SerdeRef<V>) -> Self {
                self.value_serde = Some(serde);
                self
            }
        }
    )+};
}

serde_setters!(Consumed, Produced, Grouped, Materialized);

/// How a source topic is read: serdes, timestamp extractor, source node name.
pub struct Consumed<K, V> {
    pub(crate) key_serde: Option<SerdeRef<K>>,
    pub(crate) value_serde: Option<SerdeRef<V>>,
    pub(crate) extractor: Option<TimestampExtractor<K, V>>,
    pub(crate) name: Option<String>,
}

impl<K, V> Default for Consumed<K, V> {
    fn default() -> Self {
        Consumed {
            key_serde: None,
            value_serde: None,
            extractor: None,
            name: None,
        }
    }
}

impl<K, V> Consumed<K, V> {
    /// Reads keys and values with these serdes.
    pub fn with(key_serde: SerdeRef<K>, value_serde: SerdeRef<V>) -> Self {
        Consumed {
            key_serde: Some(key_serde),
            value_serde: Some(value_serde),
            ..Default::default()
        }
    }
    /// Names the source node.
    pub fn as_name(name: &str) -> Self {
        Consumed {
            name: Some(name.to_string()),
            ..Default::default()
        }
    }
    /// Takes each record's timestamp from `f(record, partition_time)` (for example a field of the value).
    pub fn with_timestamp_extractor(
        mut self,
        f: impl Fn(&streams_core::Record<K, V>, i64) -> i64 + Send + Sync + 'static,
    ) -> Self {
        self.extractor = Some(std::sync::Arc::new(f));
        self
    }
    /// Names the source node.
    pub fn with_name(mut self, name: &str) -> Self {
        self.name = Some(name.to_string());
        self
    }
}

/// How records are written to a topic: serdes and sink node name.
pub struct Produced<K, V> {
    pub(crate) key_serde: Option<SerdeRef<K>>,
    pub(crate) value_serde: Option<SerdeRef<V>>,
    pub(crate) name: Option<String>,
}

impl<K, V> Default for Produced<K, V> {
    fn default() -> Self {
        Produced {
            key_serde: None,
            value_serde: None,
            name: None,
        }
    }
}

impl<K, V> Produced<K, V> {
    /// Writes keys and values with these serdes.
    pub fn with(key_serde: SerdeRef<K>, value_serde: SerdeRef<V>) -> Self {
        Produced {
            key_serde: Some(key_serde),
            value_serde: Some(value_serde),
            name: None,
        }
    }
    /// Names the sink node.
    pub fn as_name(name: &str) -> Self {
        Produced {
            name: Some(name.to_string()),
            ..Default::default()
        }
    }
    /// Names the sink node.
    pub fn with_name(mut self, name: &str) -> Self {
        self.name = Some(name.to_string());
        self
    }
}

/// How a stream is grouped: the name of its repartition topic and nodes, and its serdes.
pub struct Grouped<K, V> {
    pub(crate) name: Option<String>,
    pub(crate) key_serde: Option<SerdeRef<K>>,
    pub(crate) value_serde: Option<SerdeRef<V>>,
}

impl<K, V> Default for Grouped<K, V> {
    fn default() -> Self {
        Grouped {
            name: None,
            key_serde: None,
            value_serde: None,
        }
    }
}

impl<K, V> Grouped<K, V> {
    /// Names the repartition topic `<name>-repartition` (when one is needed).
    pub fn as_name(name: &str) -> Self {
        Grouped {
            name: Some(name.to_string()),
            ..Default::default()
        }
    }
    /// Uses these serdes for the repartition topic and the store's key.
    pub fn with(key_serde: SerdeRef<K>, value_serde: SerdeRef<V>) -> Self {
        Grouped {
            name: None,
            key_serde: Some(key_serde),
            value_serde: Some(value_serde),
        }
    }
}

/// How a table is stored: store name, serdes, engine, caching and changelog.
///
/// ```
/// use streams_dsl::Materialized;
/// use streams_core::serde::Serdes;
/// let m: Materialized<String, i64> = Materialized::as_store("counts-store")
///     .with_value_serde(Serdes::i64())
///     .with_caching_disabled();
/// ```
pub struct Materialized<K, V> {
    pub(crate) store_name: Option<String>,
    pub(crate) key_serde: Option<SerdeRef<K>>,
    pub(crate) value_serde: Option<SerdeRef<V>>,
    pub(crate) caching: bool,
    pub(crate) logging: bool,
    pub(crate) log_config: BTreeMap<String, String>,
    pub(crate) persistent: bool,
    /// How long a window or session store keeps windows (at least size + grace).
    pub(crate) retention: Option<std::time::Duration>,
}

impl<K, V> Default for Materialized<K, V> {
    fn default() -> Self {
        Materialized {
            store_name: None,
            key_serde: None,
            value_serde: None,
            caching: true,
            logging: true,
            log_config: BTreeMap::new(),
            persistent: true,
            retention: None,
        }
    }
}

impl<K, V> Materialized<K, V> {
    /// A store named `name` (its changelog is `<application.id>-<name>-changelog`).
    pub fn as_store(name: &str) -> Self {
        Materialized {
            store_name: Some(name.to_string()),
            ..Default::default()
        }
    }
    /// A store with a generated name and these serdes.
    pub fn with(key_serde: SerdeRef<K>, value_serde: SerdeRef<V>) -> Self {
        Materialized {
            key_serde: Some(key_serde),
            value_serde: Some(value_serde),
            ..Default::default()
        }
    }
    /// Updates go downstream on every change instead of once per key per commit.
    pub fn with_caching_disabled(mut self) -> Self {
        self.caching = false;
        self
    }
    /// Updates are folded per key until commit (the default).
    pub fn with_caching_enabled(mut self) -> Self {
        self.caching = true;
        self
    }
    /// No changelog topic: the store cannot be restored elsewhere.
    pub fn with_logging_disabled(mut self) -> Self {
        self.logging = false;
        self
    }
    /// A changelog topic with these configs besides cleanup.policy=compact (the default is logging on).
    pub fn with_logging_enabled(
        mut self,
        config: impl IntoIterator<Item = (String, String)>,
    ) -> Self {
        self.logging = true;
        self.log_config = config.into_iter().collect();
        self
    }
    /// How long a window or session store keeps windows; it must be at least the window size
    /// plus grace (the default).
    pub fn with_retention(mut self, retention: std::time::Duration) -> Self {
        self.retention = Some(retention);
        self
    }

    /// Keeps the store in memory (rebuilt from the changelog on start) instead of RocksDB.
    pub fn in_memory(mut self) -> Self {
        self.persistent = false;
        self
    }
}

/// How [`KStream::repartition`](crate::KStream::repartition) repartitions: topic name, partition count, serdes.
pub struct Repartitioned<K, V> {
    pub(crate) name: Option<String>,
    pub(crate) partitions: Option<i32>,
    pub(crate) key_serde: Option<SerdeRef<K>>,
    pub(crate) value_serde: Option<SerdeRef<V>>,
}

impl<K, V> Default for Repartitioned<K, V> {
    fn default() -> Self {
        Repartitioned {
            name: None,
            partitions: None,
            key_serde: None,
            value_serde: None,
        }
    }
}

impl<K, V> Repartitioned<K, V> {
    /// Names the topic `<name>-repartition`.
    pub fn as_name(name: &str) -> Self {
        Repartitioned {
            name: Some(name.to_string()),
            ..Default::default()
        }
    }
    /// Uses these serdes for the topic.
    pub fn with(key_serde: SerdeRef<K>, value_serde: SerdeRef<V>) -> Self {
        Repartitioned {
            key_serde: Some(key_serde),
            value_serde: Some(value_serde),
            ..Default::default()
        }
    }
    /// Creates the topic with `n` partitions (default: as many as the upstream tasks).
    pub fn with_partitions(mut self, n: i32) -> Self {
        self.partitions = Some(n);
        self
    }
    /// Names the topic `<name>-repartition`.
    pub fn with_name(mut self, name: &str) -> Self {
        self.name = Some(name.to_string());
        self
    }
}
