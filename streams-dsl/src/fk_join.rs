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
//! A foreign key that serializes to null subscribes to nothing; the record is counted as dropped.

use std::sync::Arc;

use streams_core::serde::{Serde, SerdeError, SerdeRef, Serdes};
use streams_core::{Change, KeyValueStore, Processor, ProcessorContext, Record, Result};

use crate::builder::store_builder;
use crate::ktable::KTable;
use crate::options::Materialized;
use crate::processors::open_table_store;
use crate::Data;

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

/// Picks the foreign key of a left row.
type FkExtractor<V, KO> = Arc<dyn Fn(&V) -> KO + Send + Sync>;
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
    /// `other` its foreign key names, if any)`.
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
        fk: FkExtractor<V, KO>,
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
                move || SubscriptionSend::<K, V, KO> {
                    key_serde: pk.clone(),
                    value_serde: lv.clone(),
                    fk_serde: ko2.clone(),
                    fk: fk.clone(),
                    left,
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
                move || SubscriptionReceive::<KO, VO> {
                    fk_serde: ko2.clone(),
                    subscriptions_name: subs.clone(),
                    right_name: right.clone(),
                    subscriptions: None,
                    right: None,
                },
                &[&reg_source],
            )?;
            t.add_state_store(subs_sb, &[&receive])?;
            t.connect_processor_and_state_stores(&receive, &[&right_store])?;
            let (ko2, subs) = (ko.clone(), subscriptions.clone());
            t.add_processor(
                &foreign,
                move || ForeignChange::<KO, VO> {
                    fk_serde: ko2.clone(),
                    subscriptions_name: subs.clone(),
                    subscriptions: None,
                    _t: std::marker::PhantomData,
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
                move || ResponseJoin::<K, V, VO, VR> {
                    value_serde: lv.clone(),
                    left_name: ls.clone(),
                    result_name: rs.clone(),
                    left: None,
                    result: None,
                    joiner: joiner.clone(),
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

/// What a subscription asks of the right side (Kafka Streams' byte values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Instruction {
    /// Forget the subscription; the left row moved to another foreign key.
    DeleteKeyNoPropagate = 0,
    /// Forget the subscription and answer with no value; the left row was deleted.
    DeleteKeyAndPropagate = 1,
    /// Subscribe and answer, with no value when the right row is missing.
    PropagateNullIfNoFkValAvailable = 2,
    /// Subscribe and answer only when the right row exists (a new row of an inner join).
    PropagateOnlyIfFkValAvailable = 3,
}

impl Instruction {
    fn from_byte(b: u8) -> std::result::Result<Self, SerdeError> {
        Ok(match b {
            0 => Instruction::DeleteKeyNoPropagate,
            1 => Instruction::DeleteKeyAndPropagate,
            2 => Instruction::PropagateNullIfNoFkValAvailable,
            3 => Instruction::PropagateOnlyIfFkValAvailable,
            other => {
                return Err(SerdeError(format!(
                    "unknown foreign-key join instruction {other}"
                )))
            }
        })
    }
}

/// A left row's subscription to a foreign key.
#[derive(Debug, Clone, PartialEq)]
struct Subscription {
    instruction: Instruction,
    /// Hash of the left row's value when it was sent (`None`: deleted).
    hash: Option<u128>,
    /// The left row's key, serialized.
    primary_key: Vec<u8>,
}

/// The right side's answer to a subscription, keyed by the left row's key.
#[derive(Debug, Clone, PartialEq)]
struct Response<VO> {
    /// The hash the subscription carried.
    hash: Option<u128>,
    /// The right row (`None`: there is none).
    value: Option<VO>,
}

const WIRE_VERSION: u8 = 0;

/// `[version][instruction][has hash][16-byte hash if any][primary key bytes]`.
struct SubscriptionSerde;

impl Serde<Subscription> for SubscriptionSerde {
    fn serialize(
        &self,
        _: &str,
        s: &Subscription,
    ) -> std::result::Result<Option<Vec<u8>>, SerdeError> {
        let mut out = Vec::with_capacity(19 + s.primary_key.len());
        out.extend_from_slice(&[WIRE_VERSION, s.instruction as u8]);
        put_hash(&mut out, s.hash);
        out.extend_from_slice(&s.primary_key);
        Ok(Some(out))
    }
    fn deserialize(
        &self,
        topic: &str,
        bytes: Option<&[u8]>,
    ) -> std::result::Result<Subscription, SerdeError> {
        let b = bytes.ok_or_else(|| SerdeError(format!("null subscription on `{topic}`")))?;
        let (&[version, instruction], rest) = split::<2>(b)?;
        check_version(version)?;
        let (hash, rest) = take_hash(rest)?;
        Ok(Subscription {
            instruction: Instruction::from_byte(instruction)?,
            hash,
            primary_key: rest.to_vec(),
        })
    }
}

/// `[version][has hash][16-byte hash if any][has value][value bytes]`.
struct ResponseSerde<VO>(SerdeRef<VO>);

impl<VO: 'static> Serde<Response<VO>> for ResponseSerde<VO> {
    fn serialize(
        &self,
        topic: &str,
        r: &Response<VO>,
    ) -> std::result::Result<Option<Vec<u8>>, SerdeError> {
        let mut out = vec![WIRE_VERSION];
        put_hash(&mut out, r.hash);
        match r
            .value
            .as_ref()
            .map(|v| self.0.serialize(topic, v))
            .transpose()?
        {
            Some(Some(bytes)) => {
                out.push(1);
                out.extend_from_slice(&bytes);
            }
            _ => out.push(0),
        }
        Ok(Some(out))
    }
    fn deserialize(
        &self,
        topic: &str,
        bytes: Option<&[u8]>,
    ) -> std::result::Result<Response<VO>, SerdeError> {
        let b = bytes.ok_or_else(|| SerdeError(format!("null response on `{topic}`")))?;
        let (&[version], rest) = split::<1>(b)?;
        check_version(version)?;
        let (hash, rest) = take_hash(rest)?;
        let (&[has_value], rest) = split::<1>(rest)?;
        let value = match has_value {
            0 => None,
            _ => Some(self.0.deserialize(topic, Some(rest))?),
        };
        Ok(Response { hash, value })
    }
}

fn split<const N: usize>(b: &[u8]) -> std::result::Result<(&[u8; N], &[u8]), SerdeError> {
    b.split_first_chunk::<N>()
        .ok_or_else(|| SerdeError("truncated foreign-key join record".into()))
}

fn check_version(v: u8) -> std::result::Result<(), SerdeError> {
    if v == WIRE_VERSION {
        Ok(())
    } else {
        Err(SerdeError(format!(
            "foreign-key join record of unknown version {v}"
        )))
    }
}

fn put_hash(out: &mut Vec<u8>, hash: Option<u128>) {
    match hash {
        Some(h) => {
            out.push(1);
            out.extend_from_slice(&h.to_be_bytes());
        }
        None => out.push(0),
    }
}

fn take_hash(b: &[u8]) -> std::result::Result<(Option<u128>, &[u8]), SerdeError> {
    let (&[flag], rest) = split::<1>(b)?;
    if flag == 0 {
        return Ok((None, rest));
    }
    let (h, rest) = split::<16>(rest)?;
    Ok((Some(u128::from_be_bytes(*h)), rest))
}

/// 128-bit FNV-1a of a left value's bytes: stable across processes, machines and versions
/// (a std hasher is not), which the left side needs to recognise its own subscriptions.
fn value_hash(bytes: &[u8]) -> u128 {
    const OFFSET: u128 = 0x6c62272e07bb014262b821756295c58d;
    const PRIME: u128 = 0x0000000001000000000000000000013B;
    bytes
        .iter()
        .fold(OFFSET, |h, &b| (h ^ u128::from(b)).wrapping_mul(PRIME))
}

fn hash_of<V: 'static>(serde: &SerdeRef<V>, what: &str, v: Option<&V>) -> Result<Option<u128>> {
    let Some(v) = v else { return Ok(None) };
    let bytes =
        serde
            .serialize(what, v)
            .map_err(|source| streams_core::StreamsError::Serialization {
                target: what.to_string(),
                source,
            })?;
    Ok(Some(value_hash(bytes.as_deref().unwrap_or_default())))
}

fn to_bytes<T: 'static>(serde: &SerdeRef<T>, what: &str, v: &T) -> Result<Option<Vec<u8>>> {
    serde
        .serialize(what, v)
        .map_err(|source| streams_core::StreamsError::Serialization {
            target: what.to_string(),
            source,
        })
}

/// Subscription store key: `[foreign key length, 4 bytes big-endian][foreign key][primary key]`,
/// so that the subscriptions of one foreign key are one key range.
fn combined_key(fk: &[u8], pk: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(4 + fk.len() + pk.len());
    k.extend_from_slice(&(fk.len() as u32).to_be_bytes());
    k.extend_from_slice(fk);
    k.extend_from_slice(pk);
    k
}

/// Left side: turns each change of a left row into subscriptions to its old and new foreign keys.
struct SubscriptionSend<K, V, KO> {
    key_serde: SerdeRef<K>,
    value_serde: SerdeRef<V>,
    fk_serde: SerdeRef<KO>,
    fk: FkExtractor<V, KO>,
    left: bool,
}

impl<K: Data, V: Data, KO: Data> Processor for SubscriptionSend<K, V, KO> {
    type KIn = K;
    type VIn = Change<V>;
    type KOut = KO;
    type VOut = Subscription;

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, KO, Subscription>,
        r: Record<K, Change<V>>,
    ) -> Result<()> {
        let what = ctx.processor_name().to_string();
        let Some(primary_key) = to_bytes(&self.key_serde, &what, &r.key)? else {
            ctx.record_dropped();
            return Ok(());
        };
        let hash = hash_of(&self.value_serde, &what, r.value.new_value.as_ref())?;
        let fk_of = |v: &Option<V>| -> Result<Option<(KO, Vec<u8>)>> {
            let Some(v) = v else { return Ok(None) };
            let fk = (self.fk)(v);
            Ok(to_bytes(&self.fk_serde, &what, &fk)?.map(|b| (fk, b)))
        };
        let new_fk = fk_of(&r.value.new_value)?;
        let old_fk = fk_of(&r.value.old_value)?;
        let send = |ctx: &mut ProcessorContext<'_, KO, Subscription>,
                    fk: KO,
                    instruction: Instruction|
         -> Result<()> {
            ctx.forward(Record {
                key: fk,
                value: Subscription {
                    instruction,
                    hash,
                    primary_key: primary_key.clone(),
                },
                timestamp: r.timestamp,
                headers: r.headers.clone(),
            })
        };
        if r.value.new_value.is_some() && new_fk.is_none() {
            // A null foreign key joins nothing; unsubscribe the old one without an answer.
            ctx.record_dropped();
        }
        match (new_fk, old_fk) {
            (Some((new, new_bytes)), Some((old, old_bytes))) => {
                if new_bytes != old_bytes {
                    send(ctx, old, Instruction::DeleteKeyNoPropagate)?;
                }
                // The old foreign key may have had a result: the answer must replace it even
                // when the new key has no row, for inner joins too.
                send(ctx, new, Instruction::PropagateNullIfNoFkValAvailable)
            }
            (Some((new, _)), None) => {
                let instruction = if self.left || r.value.old_value.is_some() {
                    Instruction::PropagateNullIfNoFkValAvailable
                } else {
                    Instruction::PropagateOnlyIfFkValAvailable
                };
                send(ctx, new, instruction)
            }
            (None, Some((old, _))) => send(ctx, old, Instruction::DeleteKeyAndPropagate),
            (None, None) => Ok(()),
        }
    }
}

/// Right side: stores or removes a subscription and answers it with the right row.
struct SubscriptionReceive<KO, VO> {
    fk_serde: SerdeRef<KO>,
    subscriptions_name: String,
    right_name: String,
    subscriptions: Option<KeyValueStore<Vec<u8>, Vec<u8>>>,
    right: Option<KeyValueStore<KO, VO>>,
}

impl<KO: Data, VO: Data> Processor for SubscriptionReceive<KO, VO> {
    type KIn = KO;
    type VIn = Subscription;
    type KOut = Vec<u8>;
    type VOut = Response<VO>;

    fn init(&mut self, ctx: &mut ProcessorContext<'_, Vec<u8>, Response<VO>>) -> Result<()> {
        self.subscriptions = Some(ctx.get_state_store(&self.subscriptions_name)?);
        self.right = Some(ctx.get_state_store(&self.right_name)?);
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, Vec<u8>, Response<VO>>,
        r: Record<KO, Subscription>,
    ) -> Result<()> {
        let subscriptions = self.subscriptions.as_ref().expect("initialized");
        let Some(fk) = to_bytes(&self.fk_serde, &self.subscriptions_name, &r.key)? else {
            return Ok(());
        };
        let key = combined_key(&fk, &r.value.primary_key);
        let value = match r.value.instruction {
            Instruction::DeleteKeyNoPropagate => {
                subscriptions.delete(&key)?;
                return Ok(());
            }
            Instruction::DeleteKeyAndPropagate => {
                subscriptions.delete(&key)?;
                None
            }
            Instruction::PropagateNullIfNoFkValAvailable => {
                put_subscription(subscriptions, &key, &r.value)?;
                self.right.as_ref().expect("initialized").get(&r.key)?
            }
            Instruction::PropagateOnlyIfFkValAvailable => {
                put_subscription(subscriptions, &key, &r.value)?;
                match self.right.as_ref().expect("initialized").get(&r.key)? {
                    Some(v) => Some(v),
                    None => return Ok(()),
                }
            }
        };
        ctx.forward(Record {
            key: r.value.primary_key,
            value: Response {
                hash: r.value.hash,
                value,
            },
            timestamp: r.timestamp,
            headers: r.headers,
        })
    }
}

fn put_subscription(
    store: &KeyValueStore<Vec<u8>, Vec<u8>>,
    key: &[u8],
    s: &Subscription,
) -> Result<()> {
    let bytes = SubscriptionSerde
        .serialize(store.name(), s)
        .map_err(|source| streams_core::StreamsError::Serialization {
            target: format!("store `{}`", store.name()),
            source,
        })?
        .unwrap_or_default();
    store.put(&key.to_vec(), &bytes)
}

/// Right side: a change of a right row answers every subscription to its key again.
struct ForeignChange<KO, VO> {
    fk_serde: SerdeRef<KO>,
    subscriptions_name: String,
    subscriptions: Option<KeyValueStore<Vec<u8>, Vec<u8>>>,
    _t: std::marker::PhantomData<fn() -> VO>,
}

impl<KO: Data, VO: Data> Processor for ForeignChange<KO, VO> {
    type KIn = KO;
    type VIn = Change<VO>;
    type KOut = Vec<u8>;
    type VOut = Response<VO>;

    fn init(&mut self, ctx: &mut ProcessorContext<'_, Vec<u8>, Response<VO>>) -> Result<()> {
        self.subscriptions = Some(ctx.get_state_store(&self.subscriptions_name)?);
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, Vec<u8>, Response<VO>>,
        r: Record<KO, Change<VO>>,
    ) -> Result<()> {
        if r.value.new_value.is_none() && r.value.old_value.is_none() {
            return Ok(());
        }
        let subscriptions = self.subscriptions.as_ref().expect("initialized");
        let Some(fk) = to_bytes(&self.fk_serde, &self.subscriptions_name, &r.key)? else {
            return Ok(());
        };
        let from = combined_key(&fk, &[]);
        let mut to = from.clone();
        // Past every key with this prefix: the prefix followed by bytes that sort last. Keys
        // beyond it that still share the prefix are caught by the filter below.
        to.extend_from_slice(&[0xff; 64]);
        for (key, bytes) in subscriptions.range(&from, &to)? {
            if !key.starts_with(&from) {
                continue;
            }
            let s = SubscriptionSerde
                .deserialize(subscriptions.name(), Some(&bytes))
                .map_err(|e| streams_core::StreamsError::StoreAccess {
                    store: subscriptions.name().to_string(),
                    message: format!("stored subscription does not deserialize: {e}"),
                })?;
            ctx.forward(Record {
                key: s.primary_key,
                value: Response {
                    hash: s.hash,
                    value: r.value.new_value.clone(),
                },
                timestamp: r.timestamp,
                headers: r.headers.clone(),
            })?;
        }
        Ok(())
    }
}

/// Left side: joins a response with the current left row, unless the row changed since the
/// subscription was sent; keeps the result to forward old values.
struct ResponseJoin<K, V, VO, VR> {
    value_serde: SerdeRef<V>,
    left_name: String,
    result_name: String,
    left: Option<KeyValueStore<K, V>>,
    result: Option<KeyValueStore<K, VR>>,
    joiner: FkJoiner<V, VO, VR>,
}

impl<K: Data, V: Data, VO: Data, VR: Data> Processor for ResponseJoin<K, V, VO, VR> {
    type KIn = K;
    type VIn = Response<VO>;
    type KOut = K;
    type VOut = Change<VR>;

    fn init(&mut self, ctx: &mut ProcessorContext<'_, K, Change<VR>>) -> Result<()> {
        self.left = Some(ctx.get_state_store(&self.left_name)?);
        self.result = Some(open_table_store(ctx, &self.result_name)?);
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<VR>>,
        r: Record<K, Response<VO>>,
    ) -> Result<()> {
        let current = self.left.as_ref().expect("initialized").get(&r.key)?;
        if hash_of(&self.value_serde, &self.left_name, current.as_ref())? != r.value.hash {
            // The left row changed after this subscription: a newer answer will follow.
            return Ok(());
        }
        let new = current
            .as_ref()
            .and_then(|v| (self.joiner)(v, r.value.value.as_ref()));
        let result = self.result.as_ref().expect("initialized");
        let old = result.get(&r.key)?;
        match &new {
            Some(v) => result.put(&r.key, v)?,
            None => {
                if old.is_none() {
                    return Ok(());
                }
                result.delete(&r.key)?;
            }
        }
        if !result.is_cached() {
            ctx.forward(r.with_value(Change::new(new, old)))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_formats_round_trip() {
        let s = Subscription {
            instruction: Instruction::PropagateOnlyIfFkValAvailable,
            hash: Some(value_hash(b"value")),
            primary_key: b"pk".to_vec(),
        };
        let bytes = SubscriptionSerde.serialize("t", &s).unwrap();
        assert_eq!(
            SubscriptionSerde
                .deserialize("t", bytes.as_deref())
                .unwrap(),
            s
        );
        let serde = ResponseSerde(Serdes::string());
        for r in [
            Response {
                hash: None,
                value: None,
            },
            Response {
                hash: Some(7),
                value: Some("right".to_string()),
            },
        ] {
            let bytes = serde.serialize("t", &r).unwrap();
            assert_eq!(serde.deserialize("t", bytes.as_deref()).unwrap(), r);
        }
        assert!(SubscriptionSerde
            .deserialize("t", Some(&[0, 9, 0]))
            .is_err());
    }

    #[test]
    fn the_value_hash_is_stable() {
        // Fixed: subscriptions written by one version are answered to another.
        assert_eq!(value_hash(b""), 0x6c62272e07bb014262b821756295c58d);
        assert_ne!(value_hash(b"a"), value_hash(b"b"));
    }
}
