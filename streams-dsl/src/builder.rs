//! [`StreamsBuilder`]: entry point of the DSL; builds a [`Topology`].
//!
//! Generated names follow Kafka Streams: `KSTREAM-<OPERATION>-<10-digit index>`, the index
//! counting every node and store created so far. Stores and repartition topics without a user
//! name are derived from such names (for example `KSTREAM-AGGREGATE-STATE-STORE-0000000003` and
//! `KSTREAM-AGGREGATE-STATE-STORE-0000000003-repartition`); they change when operators are
//! inserted before them, so name them (Grouped, Materialized) in applications that keep state,
//! or set `ensure.explicit.internal.resource.naming=true` to refuse generated ones.

use std::any::{Any, TypeId};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use streams_core::internals::builtin_serde;
use streams_core::serde::{SerdeRef, Serdes};
use streams_core::{Result, StoreBuilder, StreamsError, Topology};

use crate::kstream::KStream;
use crate::ktable::KTable;
use crate::options::{Consumed, Materialized};
use crate::processors::TableSource;
use crate::Data;

pub(crate) type Shared = Rc<RefCell<BuilderInner>>;

pub(crate) struct BuilderInner {
    pub(crate) topology: Topology,
    index: usize,
    /// The first error met while building; `build()` returns it.
    error: Option<StreamsError>,
    serdes: HashMap<TypeId, Box<dyn Any>>,
    /// Grace period (ms) of the windows of windowed tables, by the node that emits them: what
    /// `suppress(until_window_closes)` waits for.
    pub(crate) window_grace: HashMap<String, i64>,
}

impl BuilderInner {
    /// `<prefix><10-digit index>`, Kafka Streams' generated name.
    pub(crate) fn new_name(&mut self, prefix: &str) -> String {
        let n = format!("{prefix}{:010}", self.index);
        self.index += 1;
        n
    }

    /// Records an error of a building step (the first one wins).
    pub(crate) fn fail(&mut self, e: StreamsError) {
        if self.error.is_none() {
            self.error = Some(e);
        }
    }

    /// The store name `m` gives, else a generated one, `<prefix><index>` (noted as generated).
    pub(crate) fn store_name<K, V>(&mut self, m: &Materialized<K, V>, prefix: &str) -> String {
        match &m.store_name {
            Some(n) => n.clone(),
            None => {
                let n = self.new_name(prefix);
                self.topology.note_generated_name("store", &n);
                n
            }
        }
    }

    /// Runs a topology call, keeping its error for `build()`.
    pub(crate) fn apply(&mut self, f: impl FnOnce(&mut Topology) -> Result<()>) {
        if let Err(e) = f(&mut self.topology) {
            self.fail(e);
        }
    }

    /// The serde for `T`: the one given, else one registered on the builder, else the built-in
    /// one of the type; else an error naming what needed it.
    pub(crate) fn serde<T: 'static>(
        &mut self,
        given: Option<SerdeRef<T>>,
        what: &str,
    ) -> SerdeRef<T> {
        if let Some(s) = given {
            return s;
        }
        if let Some(s) = self
            .serdes
            .get(&TypeId::of::<T>())
            .and_then(|b| b.downcast_ref::<SerdeRef<T>>())
        {
            return s.clone();
        }
        if let Some(s) = builtin_serde::<T>() {
            return s;
        }
        self.fail(StreamsError::topology(what, format!(
            "no serde for {} of {what}: pass one (Consumed, Produced, Grouped, Materialized) or register it with StreamsBuilder::with_default_serde",
            std::any::type_name::<T>()
        )));
        // Hand back a serde that fails, so building can go on to report this error.
        std::sync::Arc::new(Missing::<T>(std::marker::PhantomData))
    }
}

struct Missing<T>(std::marker::PhantomData<fn() -> T>);
impl<T: 'static> streams_core::serde::Serde<T> for Missing<T> {
    fn serialize(
        &self,
        _: &str,
        _: &T,
    ) -> std::result::Result<Option<Vec<u8>>, streams_core::serde::SerdeError> {
        Err(streams_core::serde::SerdeError(
            "no serde configured".into(),
        ))
    }
    fn deserialize(
        &self,
        _: &str,
        _: Option<&[u8]>,
    ) -> std::result::Result<T, streams_core::serde::SerdeError> {
        Err(streams_core::serde::SerdeError(
            "no serde configured".into(),
        ))
    }
}

/// Builds a topology with the DSL.
///
/// ```
/// use streams_dsl::{StreamsBuilder, Produced};
/// use streams_core::serde::Serdes;
/// let builder = StreamsBuilder::new();
/// builder
///     .stream::<Option<String>, String>("streams-plaintext-input")
///     .flat_map_values(|line| line.to_lowercase().split(' ').map(str::to_string).collect::<Vec<_>>())
///     .group_by(|_, word| word.clone())
///     .count()
///     .to_stream()
///     .to("streams-wordcount-output");
/// let topology = builder.build().unwrap();
/// assert_eq!(topology.describe().subtopology_count(), 2);
/// ```
pub struct StreamsBuilder {
    pub(crate) inner: Shared,
}

impl Default for StreamsBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl StreamsBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        StreamsBuilder {
            inner: Rc::new(RefCell::new(BuilderInner {
                topology: Topology::new(),
                index: 0,
                error: None,
                serdes: HashMap::new(),
                window_grace: HashMap::new(),
            })),
        }
    }

    /// Uses `serde` for every `T` that an operation needs a serde for and was not given one.
    pub fn with_default_serde<T: 'static>(self, serde: SerdeRef<T>) -> Self {
        self.inner
            .borrow_mut()
            .serdes
            .insert(TypeId::of::<T>(), Box::new(serde));
        self
    }

    /// A stream of the records of `topic`, with the serdes of `K` and `V`.
    pub fn stream<K: Data, V: Data>(&self, topic: &str) -> KStream<K, V> {
        self.stream_with(&[topic], Consumed::default())
    }

    /// A stream of the records of `topics`, read as `consumed` says.
    pub fn stream_with<K: Data, V: Data>(
        &self,
        topics: &[&str],
        consumed: Consumed<K, V>,
    ) -> KStream<K, V> {
        let mut b = self.inner.borrow_mut();
        let name = consumed
            .name
            .clone()
            .unwrap_or_else(|| b.new_name("KSTREAM-SOURCE-"));
        let k = b.serde(consumed.key_serde, &format!("the key of source `{name}`"));
        let v = b.serde(
            consumed.value_serde,
            &format!("the value of source `{name}`"),
        );
        let (ks, vs) = (k.clone(), v.clone());
        let extractor = consumed.extractor;
        b.apply(|t| {
            t.add_source_with_extractor(&name, topics, ks, vs, extractor)
                .map(|_| ())
        });
        drop(b);
        KStream::new(self.inner.clone(), name, Some(k), Some(v), false)
    }

    /// A table of the latest value per key of `topic` (a null value deletes the key), kept in a
    /// store with a changelog.
    pub fn table<K: Data, V: Data>(&self, topic: &str) -> KTable<K, V> {
        self.table_with(topic, Consumed::default(), Materialized::default())
    }

    /// A table of `topic`, read as `consumed` says and stored as `materialized` says.
    pub fn table_with<K: Data, V: Data>(
        &self,
        topic: &str,
        consumed: Consumed<K, V>,
        materialized: Materialized<K, V>,
    ) -> KTable<K, V> {
        let mut b = self.inner.borrow_mut();
        let source = consumed
            .name
            .clone()
            .unwrap_or_else(|| b.new_name("KSTREAM-SOURCE-"));
        let k = b.serde(
            consumed.key_serde.or(materialized.key_serde.clone()),
            &format!("the key of table `{topic}`"),
        );
        let v = b.serde(
            consumed.value_serde.or(materialized.value_serde.clone()),
            &format!("the value of table `{topic}`"),
        );
        let store = b.store_name(&materialized, &format!("{topic}-STATE-STORE-"));
        let node = b.new_name("KTABLE-SOURCE-");
        let (ks, vs) = (k.clone(), v.clone());
        // Tombstones are part of a table's input: read values as nullable.
        let nullable = Serdes::nullable(vs.clone());
        let extractor = consumed.extractor.map(|x| {
            let f: streams_core::TimestampExtractor<K, Option<V>> =
                std::sync::Arc::new(move |r: &streams_core::Record<K, Option<V>>, pt| {
                    match &r.value {
                        Some(v) => x(
                            &streams_core::Record {
                                key: r.key.clone(),
                                value: v.clone(),
                                timestamp: r.timestamp,
                                headers: Vec::new(),
                            },
                            pt,
                        ),
                        None => r.timestamp,
                    }
                });
            f
        });
        let store_builder = store_builder(&store, ks.clone(), vs.clone(), &materialized);
        let store_name = store.clone();
        b.apply(|t| {
            t.add_source_with_extractor(&source, &[topic], ks, nullable, extractor)?;
            t.add_processor(
                &node,
                move |ctx| TableSource::<K, V, Option<V>>::init(ctx, &store_name, Option::as_ref),
                &[&source],
            )?;
            t.add_state_store(store_builder, &[&node])?;
            Ok(())
        });
        drop(b);
        KTable::new(self.inner.clone(), node, Some(k), Some(v), Some(store))
    }

    /// Adds a store for processors added with [`KStream::process`].
    pub fn add_state_store<K: Send + Sync + 'static, V: Send + Sync + 'static>(
        &self,
        builder: StoreBuilder<K, V>,
    ) -> &Self {
        self.inner
            .borrow_mut()
            .apply(|t| t.add_state_store(builder, &[]).map(|_| ()));
        self
    }

    /// The topology, or the first error met while building it.
    pub fn build(self) -> Result<Topology> {
        let mut inner = self.inner.borrow_mut();
        match inner.error.take() {
            Some(e) => Err(e),
            None => Ok(std::mem::take(&mut inner.topology)),
        }
    }
}

/// A store declaration from `Materialized` options.
pub(crate) fn store_builder<K: Data, V: Data>(
    name: &str,
    k: SerdeRef<K>,
    v: SerdeRef<V>,
    m: &Materialized<K, V>,
) -> StoreBuilder<K, V> {
    let mut sb = streams_core::Stores::persistent_key_value(name, k, v).persistent(m.persistent);
    sb = if m.caching {
        sb.with_caching_enabled()
    } else {
        sb.with_caching_disabled()
    };
    if m.logging {
        sb.with_logging_enabled(m.log_config.clone())
    } else {
        sb.with_logging_disabled()
    }
}
