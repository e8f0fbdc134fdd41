//! Foreign-key table joins: [`KTable::join_on_foreign_key`] and
//! [`KTable::left_join_on_foreign_key`], built as Kafka Streams builds them, so that the two
//! tables may differ in key type and partitioning:
//!
//! 1. Each change of a left row sends a *subscription* keyed by the row's foreign key to
//!    `<application.id>-<name>-subscription-registration-topic`: the row's primary key, a hash of
//!    its new value and an instruction (unsubscribe the old foreign key, subscribe the new one).
//! 2. The right side, co-partitioned with that topic, keeps the subscriptions in a store keyed by
//!    (foreign key, primary key), and answers each with the right row's current value on
//!    `<application.id>-<name>-subscription-response-topic`, keyed by the primary key. A change of
//!    a right row answers every subscription to its key again.
//! 3. The left side joins a response with the left row's current value, unless the row changed
//!    since the subscription was sent (its hash differs): such a stale response is dropped, a
//!    newer one is on its way. The result is stored, so that each change forwards the old
//!    joined value too (a deleted result row forwards a `Change` with no new value).
//!
//! A foreign key that serializes to null subscribes to nothing. An inner join has no result for
//! the row (the record is counted as dropped); a left join sends the subscription with a null
//! key, which the right side answers with no value, so the row joins with `None`, as in Kafka
//! Streams 3.7 and later.
//!
//! This module holds the API and the wiring of the nodes, topics and stores; `left` and `right`
//! hold the processors of each table's side, `wire` the messages between them.

mod left;
mod right;
mod wire;

use std::sync::Arc;

use streams_core::serde::{SerdeRef, Serdes};

use crate::builder::store_builder;
use crate::ktable::KTable;
use crate::options::Materialized;
use crate::Data;
use left::{ResponseJoin, SubscriptionSend};
use right::{ForeignChange, SubscriptionReceive};
use wire::{Response, ResponseSerde, Subscription, SubscriptionSerde};

/// Options of a foreign-key join: the name its internal topics and stores derive from.
///
/// ```
/// use streams_dsl::TableJoined;
/// // Topics `<application.id>-orders-customers-subscription-registration-topic` and
/// // `<application.id>-orders-customers-subscription-response-topic`.
/// let t = TableJoined::as_name("orders-customers");
/// ```
#[derive(Debug, Clone, Default)]
pub struct TableJoined {
    pub(crate) name: Option<String>,
}

impl TableJoined {
    /// Names the join's internal topics `<name>-subscription-registration-topic` and
    /// `<name>-subscription-response-topic` and its subscription store `<name>-subscription-store`.
    pub fn as_name(name: &str) -> Self {
        TableJoined {
            name: Some(name.to_string()),
        }
    }
}

/// Picks the foreign key of a left row from its key and value.
type FkExtractor<K, V, KO> = Arc<dyn Fn(&K, &V) -> KO + Send + Sync>;
/// `(left value, right value if any) -> result`, `None` for no result row.
type FkJoiner<V, VO, VR> = Arc<dyn Fn(&V, Option<&VO>) -> Option<VR> + Send + Sync>;

impl<K: Data, V: Data> KTable<K, V> {
    /// Joins each row of this table with the row of `other` whose key `fk` extracts from its
    /// value (inner join): a row whose foreign key is not in `other` has no result. Changes of
    /// the foreign key, updates and deletes on either side update or delete result rows.
    ///
    /// ```
    /// use streams_dsl::StreamsBuilder;
    /// let b = StreamsBuilder::new();
    /// // orders: order id -> customer id; customers: customer id -> name.
    /// let orders = b.table::<String, String>("orders");
    /// let customers = b.table::<String, String>("customers");
    /// orders
    ///     .join_on_foreign_key(&customers, |customer| customer.clone(), |_, name| name.clone())
    ///     .to_stream()
    ///     .to("order-customer-names");
    /// assert!(b.build().is_ok());
    /// ```
    pub fn join_on_foreign_key<KO: Data, VO: Data, VR: Data>(
        &self,
        other: &KTable<KO, VO>,
        fk: impl Fn(&V) -> KO + Send + Sync + 'static,
        joiner: impl Fn(&V, &VO) -> VR + Send + Sync + 'static,
    ) -> KTable<K, VR> {
        self.join_on_foreign_key_with(
            other,
            fk,
            joiner,
            TableJoined::default(),
            Materialized::default(),
        )
    }

    /// Like [`Self::join_on_foreign_key`], named as `named` says, the result stored as
    /// `materialized` says.
    pub fn join_on_foreign_key_with<KO: Data, VO: Data, VR: Data>(
        &self,
        other: &KTable<KO, VO>,
        fk: impl Fn(&V) -> KO + Send + Sync + 'static,
        joiner: impl Fn(&V, &VO) -> VR + Send + Sync + 'static,
        named: TableJoined,
        materialized: Materialized<K, VR>,
    ) -> KTable<K, VR> {
        self.join_on_foreign_key_kv(other, move |_, v| fk(v), joiner, named, materialized)
    }

    /// Like [`Self::join_on_foreign_key_with`], with the foreign key extracted from the row's key
    /// and value (KIP-1104).
    ///
    /// ```
    /// use streams_dsl::{Materialized, StreamsBuilder, TableJoined};
    /// let b = StreamsBuilder::new();
    /// // line items keyed `order/line`: the order is in the key.
    /// let items = b.table::<String, String>("order-lines");
    /// let orders = b.table::<String, String>("orders");
    /// items
    ///     .join_on_foreign_key_kv(
    ///         &orders,
    ///         |key, _| key.split('/').next().unwrap_or_default().to_string(),
    ///         |item, order| format!("{item} in {order}"),
    ///         TableJoined::default(),
    ///         Materialized::default(),
    ///     )
    ///     .to_stream()
    ///     .to("items-with-orders");
    /// assert!(b.build().is_ok());
    /// ```
    pub fn join_on_foreign_key_kv<KO: Data, VO: Data, VR: Data>(
        &self,
        other: &KTable<KO, VO>,
        fk: impl Fn(&K, &V) -> KO + Send + Sync + 'static,
        joiner: impl Fn(&V, &VO) -> VR + Send + Sync + 'static,
        named: TableJoined,
        materialized: Materialized<K, VR>,
    ) -> KTable<K, VR> {
        self.fk_join(
            other,
            Arc::new(fk),
            Arc::new(move |v, o| o.map(|o| joiner(v, o))),
            false,
            named,
            materialized,
        )
    }

    /// Left foreign-key join: every row of this table has a result, `joiner(row, the row of
    /// `other` its foreign key names, if any)`; a row whose foreign key is null joins with
    /// `None`.
    pub fn left_join_on_foreign_key<KO: Data, VO: Data, VR: Data>(
        &self,
        other: &KTable<KO, VO>,
        fk: impl Fn(&V) -> KO + Send + Sync + 'static,
        joiner: impl Fn(&V, Option<&VO>) -> VR + Send + Sync + 'static,
    ) -> KTable<K, VR> {
        self.left_join_on_foreign_key_with(
            other,
            fk,
            joiner,
            TableJoined::default(),
            Materialized::default(),
        )
    }

    /// Like [`Self::left_join_on_foreign_key`], named as `named` says, the result stored as
    /// `materialized` says.
    pub fn left_join_on_foreign_key_with<KO: Data, VO: Data, VR: Data>(
        &self,
        other: &KTable<KO, VO>,
        fk: impl Fn(&V) -> KO + Send + Sync + 'static,
        joiner: impl Fn(&V, Option<&VO>) -> VR + Send + Sync + 'static,
        named: TableJoined,
        materialized: Materialized<K, VR>,
    ) -> KTable<K, VR> {
        self.left_join_on_foreign_key_kv(other, move |_, v| fk(v), joiner, named, materialized)
    }

    /// Like [`Self::left_join_on_foreign_key_with`], with the foreign key extracted from the
    /// row's key and value (KIP-1104).
    pub fn left_join_on_foreign_key_kv<KO: Data, VO: Data, VR: Data>(
        &self,
        other: &KTable<KO, VO>,
        fk: impl Fn(&K, &V) -> KO + Send + Sync + 'static,
        joiner: impl Fn(&V, Option<&VO>) -> VR + Send + Sync + 'static,
        named: TableJoined,
        materialized: Materialized<K, VR>,
    ) -> KTable<K, VR> {
        self.fk_join(
            other,
            Arc::new(fk),
            Arc::new(move |v, o| Some(joiner(v, o))),
            true,
            named,
            materialized,
        )
    }

    fn fk_join<KO: Data, VO: Data, VR: Data>(
        &self,
        other: &KTable<KO, VO>,
        fk: FkExtractor<K, V, KO>,
        joiner: FkJoiner<V, VO, VR>,
        left: bool,
        named: TableJoined,
        m: Materialized<K, VR>,
    ) -> KTable<K, VR> {
        let (left_node, left_store) = self.materialized_store(None);
        let (right_node, right_store) = other.materialized_store(None);
        let mut b = self.b.borrow_mut();
        let base = match &named.name {
            Some(n) => n.clone(),
            None => b.new_name("KTABLE-FK-JOIN-"),
        };
        let registration = format!("{base}-subscription-registration-topic");
        let response = format!("{base}-subscription-response-topic");
        let subscriptions = format!("{base}-subscription-store");
        let result_store = match &m.store_name {
            Some(s) => s.clone(),
            None => b.new_name("KTABLE-FK-JOIN-OUTPUT-STATE-STORE-"),
        };
        if named.name.is_none() {
            b.topology
                .note_generated_name("repartition topic", &registration)
                .note_generated_name("repartition topic", &response)
                .note_generated_name("store", &subscriptions);
        }
        if m.store_name.is_none() {
            b.topology.note_generated_name("store", &result_store);
        }
        let k = b.serde(
            self.key_serde.clone(),
            &format!("the primary key of foreign-key join `{base}`"),
        );
        let v = b.serde(
            self.value_serde.clone(),
            &format!("the left value of foreign-key join `{base}`"),
        );
        let ko = b.serde(
            other.key_serde.clone(),
            &format!("the foreign key of foreign-key join `{base}`"),
        );
        let vo = b.serde(
            other.value_serde.clone(),
            &format!("the right value of foreign-key join `{base}`"),
        );
        let vr = b.serde(
            m.value_serde.clone(),
            &format!("the value of store `{result_store}`"),
        );
        let result_sb = store_builder(&result_store, k.clone(), vr.clone(), &m);
        let subs_sb = store_builder(
            &subscriptions,
            Serdes::bytes(),
            Serdes::bytes(),
            &Materialized::<Vec<u8>, Vec<u8>>::default().with_caching_disabled(),
        );
        let send = b.new_name("KTABLE-FK-JOIN-SUBSCRIPTION-REGISTRATION-");
        let receive = b.new_name("KTABLE-FK-JOIN-SUBSCRIPTION-PROCESSOR-");
        let foreign = b.new_name("KTABLE-FK-JOIN-FOREIGN-PROCESSOR-");
        let output = b.new_name("KTABLE-FK-JOIN-OUTPUT-");
        let (reg_sink, reg_source) = (
            format!("{registration}-sink"),
            format!("{registration}-source"),
        );
        let (resp_sink, resp_source) = (format!("{response}-sink"), format!("{response}-source"));
        let sub_serde: SerdeRef<Subscription> = Arc::new(SubscriptionSerde);
        let resp_serde: SerdeRef<Response<VO>> = Arc::new(ResponseSerde(vo.clone()));
        let out = output.clone();
        let (table_key, table_store) = (k.clone(), result_store.clone());
        b.apply(move |t| {
            // Left side: subscribe each row to its foreign key.
            let (pk, lv, ko2) = (k.clone(), v.clone(), ko.clone());
            t.add_processor(
                &send,
                move |_| {
                    Ok(SubscriptionSend::<K, V, KO> {
                        key_serde: pk.clone(),
                        value_serde: lv.clone(),
                        fk_serde: ko2.clone(),
                        fk: fk.clone(),
                        left,
                    })
                },
                &[&left_node],
            )?;
            t.add_repartition_topic(&registration, None);
            t.add_sink(
                &reg_sink,
                &registration,
                ko.clone(),
                sub_serde.clone(),
                &[&send],
            )?;
            // Right side: keep subscriptions, answer them, and answer them again on changes.
            t.add_source(&reg_source, &[&registration], ko.clone(), sub_serde)?;
            let (ko2, subs, right) = (ko.clone(), subscriptions.clone(), right_store.clone());
            t.add_processor(
                &receive,
                move |ctx| {
                    Ok(SubscriptionReceive::<KO, VO> {
                        fk_serde: ko2.clone(),
                        subscriptions: ctx.get_state_store(&subs)?,
                        right: ctx.get_state_store(&right)?,
                    })
                },
                &[&reg_source],
            )?;
            t.add_state_store(subs_sb, &[&receive])?;
            t.connect_processor_and_state_stores(&receive, &[&right_store])?;
            let (ko2, subs) = (ko.clone(), subscriptions.clone());
            t.add_processor(
                &foreign,
                move |ctx| {
                    Ok(ForeignChange::<KO, VO> {
                        fk_serde: ko2.clone(),
                        subscriptions: ctx.get_state_store(&subs)?,
                        _t: std::marker::PhantomData,
                    })
                },
                &[&right_node],
            )?;
            t.connect_processor_and_state_stores(&foreign, &[&subscriptions])?;
            t.add_repartition_topic(&response, None);
            t.add_sink(
                &resp_sink,
                &response,
                Serdes::bytes(),
                resp_serde.clone(),
                &[&receive, &foreign],
            )?;
            // Left side again: join fresh responses with the current left row.
            t.add_source(&resp_source, &[&response], k.clone(), resp_serde)?;
            let (ls, rs, lv) = (left_store.clone(), result_store.clone(), v.clone());
            t.add_processor(
                &out,
                move |ctx| {
                    ResponseJoin::<K, V, VO, VR>::init(ctx, lv.clone(), &ls, &rs, joiner.clone())
                },
                &[&resp_source],
            )?;
            t.connect_processor_and_state_stores(&out, &[&left_store])?;
            t.add_state_store(result_sb, &[&out])?;
            Ok(())
        });
        drop(b);
        KTable::new(
            self.b.clone(),
            output,
            Some(table_key),
            Some(vr),
            Some(table_store),
        )
    }
}
