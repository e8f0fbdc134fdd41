//! [`KStream`]: a record stream (insert semantics) and its operations, and
//! [`BranchedKStream`] for `split`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use streams_core::serde::SerdeRef;
use streams_core::{Processor, ProcessorContext, Record, Result};

use crate::builder::Shared;
use crate::grouped::KGroupedStream;
use crate::options::{Grouped, Produced, Repartitioned};
use crate::processors::FnProcessor;
use crate::Data;

/// A stream of records. Operations return new streams; a stream can feed several operations.
///
/// Key-changing operations (`map`, `flat_map`, `select_key`, `process`) mark the stream so that
/// the next grouping repartitions it through `<application.id>-<name>-repartition`.
pub struct KStream<K, V> {
    pub(crate) b: Shared,
    pub(crate) node: String,
    pub(crate) key_serde: Option<SerdeRef<K>>,
    pub(crate) value_serde: Option<SerdeRef<V>>,
    pub(crate) repartition_required: bool,
    next_name: Option<String>,
}

impl<K, V> Clone for KStream<K, V> {
    fn clone(&self) -> Self {
        KStream {
            b: self.b.clone(),
            node: self.node.clone(),
            key_serde: self.key_serde.clone(),
            value_serde: self.value_serde.clone(),
            repartition_required: self.repartition_required,
            next_name: self.next_name.clone(),
        }
    }
}

/// The processor a DSL closure operation runs.
pub(crate) type Body<K, V, KO, VO> =
    dyn Fn(&mut ProcessorContext<'_, KO, VO>, Record<K, V>) -> Result<()> + Send + Sync;

impl<K: Data, V: Data> KStream<K, V> {
    pub(crate) fn new(
        b: Shared,
        node: String,
        key_serde: Option<SerdeRef<K>>,
        value_serde: Option<SerdeRef<V>>,
        repartition_required: bool,
    ) -> Self {
        KStream {
            b,
            node,
            key_serde,
            value_serde,
            repartition_required,
            next_name: None,
        }
    }

    /// Names the node of the next operation on the returned stream (Kafka Streams' `Named`).
    ///
    /// ```
    /// # use streams_dsl::StreamsBuilder;
    /// let b = StreamsBuilder::new();
    /// b.stream::<String, String>("in").named("drop-empty").filter(|_, v| !v.is_empty()).to("out");
    /// assert!(b.build().unwrap().describe().to_string().contains("Processor: drop-empty"));
    /// ```
    pub fn named(&self, name: &str) -> KStream<K, V> {
        let mut s = self.clone();
        s.next_name = Some(name.to_string());
        s
    }

    pub(crate) fn node_name(&self, prefix: &str) -> String {
        match &self.next_name {
            Some(n) => n.clone(),
            None => self.b.borrow_mut().new_name(prefix),
        }
    }

    pub(crate) fn add<KO: Data, VO: Data>(
        &self,
        prefix: &str,
        body: Arc<Body<K, V, KO, VO>>,
    ) -> String {
        let name = self.node_name(prefix);
        let parent = self.node.clone();
        let n = name.clone();
        self.b.borrow_mut().apply(move |t| {
            t.add_processor(
                &n,
                move |_| {
                    Ok(FnProcessor::<K, V, KO, VO, Body<K, V, KO, VO>>::new(
                        body.clone(),
                    ))
                },
                &[&parent],
            )
            .map(|_| ())
        });
        name
    }

    pub(crate) fn derive<K2: Data, V2: Data>(
        &self,
        node: String,
        k: Option<SerdeRef<K2>>,
        v: Option<SerdeRef<V2>>,
        repartition: bool,
    ) -> KStream<K2, V2> {
        KStream::new(self.b.clone(), node, k, v, repartition)
    }

    /// Keeps the records for which `pred` holds.
    pub fn filter(&self, pred: impl Fn(&K, &V) -> bool + Send + Sync + 'static) -> KStream<K, V> {
        self.try_filter(move |k, v| Ok::<_, Infallible>(pred(k, v)))
    }

    /// Drops the records for which `pred` holds.
    pub fn filter_not(
        &self,
        pred: impl Fn(&K, &V) -> bool + Send + Sync + 'static,
    ) -> KStream<K, V> {
        self.filter(move |k, v| !pred(k, v))
    }

    /// Replaces key and value.
    pub fn map<K2: Data, V2: Data>(
        &self,
        f: impl Fn(K, V) -> (K2, V2) + Send + Sync + 'static,
    ) -> KStream<K2, V2> {
        self.try_map(move |k, v| Ok::<_, Infallible>(f(k, v)))
    }

    /// Replaces the value; the key stays, so no repartition follows.
    pub fn map_values<V2: Data>(
        &self,
        f: impl Fn(V) -> V2 + Send + Sync + 'static,
    ) -> KStream<K, V2> {
        self.map_values_with_key(move |_, v| f(v))
    }

    /// Replaces the value, seeing the key.
    pub fn map_values_with_key<V2: Data>(
        &self,
        f: impl Fn(&K, V) -> V2 + Send + Sync + 'static,
    ) -> KStream<K, V2> {
        self.try_map_values_with_key(move |k, v| Ok::<_, Infallible>(f(k, v)))
    }

    /// Turns each record into any number of records.
    pub fn flat_map<K2: Data, V2: Data, I>(
        &self,
        f: impl Fn(K, V) -> I + Send + Sync + 'static,
    ) -> KStream<K2, V2>
    where
        I: IntoIterator<Item = (K2, V2)>,
    {
        self.try_flat_map(move |k, v| Ok::<_, Infallible>(f(k, v)))
    }

    /// Turns each value into any number of values with the same key.
    pub fn flat_map_values<V2: Data, I>(
        &self,
        f: impl Fn(V) -> I + Send + Sync + 'static,
    ) -> KStream<K, V2>
    where
        I: IntoIterator<Item = V2>,
    {
        self.try_flat_map_values(move |v| Ok::<_, Infallible>(f(v)))
    }

    /// Replaces the key.
    pub fn select_key<K2: Data>(
        &self,
        f: impl Fn(&K, &V) -> K2 + Send + Sync + 'static,
    ) -> KStream<K2, V> {
        let node = self.add::<K2, V>(
            "KSTREAM-KEY-SELECT-",
            Arc::new(move |ctx, r| {
                let k = f(&r.key, &r.value);
                ctx.forward(r.with_key(k))
            }),
        );
        self.derive(node, None, self.value_serde.clone(), true)
    }

    /// Calls `f` on each record and passes it on unchanged.
    pub fn peek(&self, f: impl Fn(&K, &V) + Send + Sync + 'static) -> KStream<K, V> {
        let node = self.add::<K, V>(
            "KSTREAM-PEEK-",
            Arc::new(move |ctx, r| {
                f(&r.key, &r.value);
                ctx.forward(r)
            }),
        );
        self.derive(
            node,
            self.key_serde.clone(),
            self.value_serde.clone(),
            self.repartition_required,
        )
    }

    /// Calls `f` on each record; the stream ends here.
    pub fn foreach(&self, f: impl Fn(&K, &V) + Send + Sync + 'static) {
        self.try_foreach(move |k, v| {
            f(k, v);
            Ok::<_, Infallible>(())
        })
    }

    /// Splits the stream by predicates: each record goes to the first branch that takes it.
    ///
    /// ```
    /// # use streams_dsl::StreamsBuilder;
    /// let b = StreamsBuilder::new();
    /// let branches = b.stream::<String, i64>("numbers").split("numbers-")
    ///     .branch("negative", |_, v| *v < 0)
    ///     .branch("zero", |_, v| *v == 0)
    ///     .default_branch("positive");
    /// branches["numbers-negative"].to("negative");
    /// branches["numbers-positive"].to("positive");
    /// ```
    pub fn split(&self, prefix: &str) -> BranchedKStream<K, V> {
        let name = self.node_name("KSTREAM-BRANCH-");
        let branches: Branches<K, V> = Arc::new(Mutex::new(Vec::new()));
        let shared = branches.clone();
        let parent = self.node.clone();
        let n = name.clone();
        self.b.borrow_mut().apply(move |t| {
            t.add_processor(
                &n,
                move |_| {
                    // The branches are all known by the time tasks are created.
                    let list = shared.lock().expect("branch list").clone();
                    Ok(FnProcessor::<K, V, K, V, Body<K, V, K, V>>::new(Arc::new(
                        move |ctx, r| {
                            for (pred, child) in &list {
                                if pred.as_ref().is_none_or(|p| p(&r.key, &r.value)) {
                                    return ctx.forward_to(child, r);
                                }
                            }
                            Ok(())
                        },
                    )))
                },
                &[&parent],
            )
            .map(|_| ())
        });
        BranchedKStream {
            parent: self.derive(
                name,
                self.key_serde.clone(),
                self.value_serde.clone(),
                self.repartition_required,
            ),
            prefix: prefix.to_string(),
            branches,
            result: HashMap::new(),
        }
    }

    /// One stream of the records of both.
    pub fn merge(&self, other: &KStream<K, V>) -> KStream<K, V> {
        let name = self.node_name("KSTREAM-MERGE-");
        let parents = [self.node.clone(), other.node.clone()];
        let n = name.clone();
        self.b.borrow_mut().apply(move |t| {
            t.add_processor(
                &n,
                |_| {
                    Ok(FnProcessor::<K, V, K, V, Body<K, V, K, V>>::new(Arc::new(
                        |ctx, r| ctx.forward(r),
                    )))
                },
                &[&parents[0], &parents[1]],
            )
            .map(|_| ())
        });
        self.derive(
            name,
            self.key_serde.clone(),
            self.value_serde.clone(),
            self.repartition_required || other.repartition_required,
        )
    }

    /// Writes the stream to `topic` with the stream's serdes.
    pub fn to(&self, topic: &str) {
        self.to_with(topic, Produced::default())
    }

    /// Writes the stream to `topic` as `produced` says.
    pub fn to_with(&self, topic: &str, produced: Produced<K, V>) {
        let (name, k, v) = self.sink(produced);
        let parent = self.node.clone();
        self.b
            .borrow_mut()
            .apply(|t| t.add_sink(&name, topic, k, v, &[&parent]).map(|_| ()));
    }

    /// Writes each record to the topic `chooser` picks for it.
    pub fn to_dynamic(
        &self,
        chooser: impl Fn(&K, &V) -> String + Send + Sync + 'static,
        produced: Produced<K, V>,
    ) {
        let (name, k, v) = self.sink(produced);
        let parent = self.node.clone();
        self.b.borrow_mut().apply(|t| {
            t.add_sink_with_extractor(
                &name,
                move |r: &Record<K, V>| chooser(&r.key, &r.value),
                k,
                v,
                &[&parent],
            )
            .map(|_| ())
        });
    }

    /// A sink's name and serdes as `produced` says: its name, else a generated one; its serdes,
    /// else the stream's.
    fn sink(&self, produced: Produced<K, V>) -> (String, SerdeRef<K>, SerdeRef<V>) {
        let name = produced
            .name
            .clone()
            .unwrap_or_else(|| self.node_name("KSTREAM-SINK-"));
        let mut b = self.b.borrow_mut();
        let k = b.serde(
            produced.key_serde.or(self.key_serde.clone()),
            &format!("the key of sink `{name}`"),
        );
        let v = b.serde(
            produced.value_serde.or(self.value_serde.clone()),
            &format!("the value of sink `{name}`"),
        );
        (name, k, v)
    }

    /// Repartitions the stream by key through an internal topic.
    pub fn repartition(&self) -> KStream<K, V> {
        self.repartition_with(Repartitioned::default())
    }

    /// Repartitions the stream as `r` says.
    pub fn repartition_with(&self, r: Repartitioned<K, V>) -> KStream<K, V> {
        let base = match &r.name {
            Some(n) => n.clone(),
            None => {
                let n = self.b.borrow_mut().new_name("KSTREAM-REPARTITION-");
                self.b
                    .borrow_mut()
                    .topology
                    .note_generated_name("repartition topic", &format!("{n}-repartition"));
                n
            }
        };
        self.through_repartition_topic(&base, r.key_serde, r.value_serde, r.partitions)
    }

    /// Sends the stream through `<base>-repartition` and returns the stream read back from it.
    pub(crate) fn through_repartition_topic(
        &self,
        base: &str,
        key_serde: Option<SerdeRef<K>>,
        value_serde: Option<SerdeRef<V>>,
        partitions: Option<i32>,
    ) -> KStream<K, V> {
        let topic = format!("{base}-repartition");
        let sink = format!("{base}-repartition-sink");
        let source = format!("{base}-repartition-source");
        let mut b = self.b.borrow_mut();
        let k = b.serde(
            key_serde.or(self.key_serde.clone()),
            &format!("the key of repartition topic `{topic}`"),
        );
        let v = b.serde(
            value_serde.or(self.value_serde.clone()),
            &format!("the value of repartition topic `{topic}`"),
        );
        let parent = self.node.clone();
        let (k2, v2) = (k.clone(), v.clone());
        b.apply(|t| {
            t.add_repartition_topic(&topic, partitions);
            t.add_sink(&sink, &topic, k2.clone(), v2.clone(), &[&parent])?;
            t.add_source(&source, &[&topic], k2, v2)?;
            Ok(())
        });
        drop(b);
        KStream::new(self.b.clone(), source, Some(k), Some(v), false)
    }

    /// Runs a Processor API processor, made in each task by `init` from its context, with
    /// access to `stores` (added with `StreamsBuilder::add_state_store`): `init` takes their
    /// typed handles for the processor to keep (see `Topology::add_processor`).
    pub fn process<P, F>(&self, init: F, stores: &[&str]) -> KStream<P::KOut, P::VOut>
    where
        P: Processor<KIn = K, VIn = V>,
        P::KOut: Data,
        P::VOut: Data,
        F: Fn(&mut ProcessorContext<'_, P::KOut, P::VOut>) -> Result<P> + Send + Sync + 'static,
    {
        let name = self.node_name("KSTREAM-PROCESSOR-");
        let parent = self.node.clone();
        let n = name.clone();
        let stores: Vec<String> = stores.iter().map(|s| s.to_string()).collect();
        self.b.borrow_mut().apply(move |t| {
            t.add_processor(&n, init, &[&parent])?;
            let refs: Vec<&str> = stores.iter().map(String::as_str).collect();
            t.connect_processor_and_state_stores(&n, &refs)?;
            Ok(())
        });
        KStream::new(self.b.clone(), name, None, None, true)
    }

    /// Groups by the current key (repartitioning first if the key changed upstream).
    pub fn group_by_key(&self) -> KGroupedStream<K, V> {
        self.group_by_key_with(Grouped::default())
    }

    /// Groups by the current key, as `grouped` says.
    pub fn group_by_key_with(&self, grouped: Grouped<K, V>) -> KGroupedStream<K, V> {
        KGroupedStream::new(self.clone(), grouped)
    }

    /// Groups by a new key computed from each record (repartitions).
    pub fn group_by<K2: Data>(
        &self,
        f: impl Fn(&K, &V) -> K2 + Send + Sync + 'static,
    ) -> KGroupedStream<K2, V> {
        self.group_by_with(f, Grouped::default())
    }

    /// Groups by a new key, as `grouped` says.
    pub fn group_by_with<K2: Data>(
        &self,
        f: impl Fn(&K, &V) -> K2 + Send + Sync + 'static,
        grouped: Grouped<K2, V>,
    ) -> KGroupedStream<K2, V> {
        self.select_key(f).group_by_key_with(grouped)
    }
}

type Predicate<K, V> = Arc<dyn Fn(&K, &V) -> bool + Send + Sync>;
/// The branches of a split, in order: predicate (none for the default branch) and child name.
type Branches<K, V> = Arc<Mutex<Vec<(Option<Predicate<K, V>>, String)>>>;

/// The branches of a split stream; finish with `default_branch` or `no_default_branch`.
pub struct BranchedKStream<K, V> {
    parent: KStream<K, V>,
    prefix: String,
    branches: Branches<K, V>,
    result: HashMap<String, KStream<K, V>>,
}

impl<K: Data, V: Data> BranchedKStream<K, V> {
    fn add_branch(&mut self, name: &str, pred: Option<Predicate<K, V>>) {
        let full = format!("{}{}", self.prefix, name);
        let child = full.clone();
        let parent = self.parent.node.clone();
        let c = child.clone();
        self.parent.b.borrow_mut().apply(move |t| {
            t.add_processor(
                &c,
                |_| {
                    Ok(FnProcessor::<K, V, K, V, Body<K, V, K, V>>::new(Arc::new(
                        |ctx, r| ctx.forward(r),
                    )))
                },
                &[&parent],
            )
            .map(|_| ())
        });
        self.branches
            .lock()
            .expect("branch list")
            .push((pred, child.clone()));
        let stream = KStream::new(
            self.parent.b.clone(),
            child,
            self.parent.key_serde.clone(),
            self.parent.value_serde.clone(),
            self.parent.repartition_required,
        );
        self.result.insert(full, stream);
    }

    /// A branch named `<prefix><name>` taking the records `pred` holds for (and no earlier branch took).
    pub fn branch(
        mut self,
        name: &str,
        pred: impl Fn(&K, &V) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.add_branch(name, Some(Arc::new(pred)));
        self
    }

    /// A last branch taking every record no other branch took; returns the branches by name.
    pub fn default_branch(mut self, name: &str) -> HashMap<String, KStream<K, V>> {
        self.add_branch(name, None);
        self.result
    }

    /// Drops records no branch took; returns the branches by name.
    pub fn no_default_branch(self) -> HashMap<String, KStream<K, V>> {
        self.result
    }
}
