//! The left table's side of a foreign-key join: sends a subscription for each change of a left
//! row, and joins the responses with the current left row.

use streams_core::serde::SerdeRef;
use streams_core::{Change, KeyValueStore, Processor, ProcessorContext, Record, Result};

use super::wire::{hash_of, to_bytes, Instruction, Response, Subscription};
use super::{FkExtractor, FkJoiner};
use crate::processors::open_table_store;
use crate::Data;

/// Left side: turns each change of a left row into subscriptions to its old and new foreign keys.
pub(super) struct SubscriptionSend<K, V, KO> {
    pub(super) key_serde: SerdeRef<K>,
    pub(super) value_serde: SerdeRef<V>,
    pub(super) fk_serde: SerdeRef<KO>,
    pub(super) fk: FkExtractor<K, V, KO>,
    pub(super) left: bool,
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
        // `None`: no row; `Some((fk, None))`: a row whose foreign key serializes to null.
        let fk_of = |v: &Option<V>| -> Result<Option<(KO, Option<Vec<u8>>)>> {
            let Some(v) = v else { return Ok(None) };
            let fk = (self.fk)(&r.key, v);
            let bytes = to_bytes(&self.fk_serde, &what, &fk)?;
            Ok(Some((fk, bytes)))
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
        let new_bytes = new_fk.as_ref().and_then(|(_, b)| b.as_ref());
        // The row now subscribes to something that answers: a non-null foreign key, or, in a
        // left join, a null one (answered with no value, so the row joins with `None`).
        let answered = new_fk.is_some() && (self.left || new_bytes.is_some());
        if let Some((old, Some(old_bytes))) = old_fk.as_ref().map(|(k, b)| (k, b.as_ref())) {
            if new_bytes != Some(old_bytes) {
                // Unsubscribe the old key; its answer (no value) replaces the old result when
                // no new subscription will.
                let instruction = if answered {
                    Instruction::DeleteKeyNoPropagate
                } else {
                    Instruction::DeleteKeyAndPropagate
                };
                send(ctx, old.clone(), instruction)?;
            }
        }
        let Some((new, _)) = new_fk else {
            return Ok(());
        };
        if !answered {
            // An inner join's null foreign key joins nothing.
            ctx.record_dropped();
            return Ok(());
        }
        // A row that had a result must have it replaced even when the new key has no row.
        let instruction = if self.left || r.value.old_value.is_some() {
            Instruction::PropagateNullIfNoFkValAvailable
        } else {
            Instruction::PropagateOnlyIfFkValAvailable
        };
        send(ctx, new, instruction)
    }
}

/// Left side: joins a response with the current left row, unless the row changed since the
/// subscription was sent; keeps the result to forward old values.
pub(super) struct ResponseJoin<K, V, VO, VR> {
    value_serde: SerdeRef<V>,
    left: KeyValueStore<K, V>,
    result: KeyValueStore<K, VR>,
    result_cached: bool,
    joiner: FkJoiner<V, VO, VR>,
}

impl<K: Data, V: Data, VO: Data, VR: Data> ResponseJoin<K, V, VO, VR> {
    pub(super) fn init(
        ctx: &mut ProcessorContext<'_, K, Change<VR>>,
        value_serde: SerdeRef<V>,
        left_store: &str,
        result_store: &str,
        joiner: FkJoiner<V, VO, VR>,
    ) -> Result<Self> {
        let result = open_table_store(ctx, result_store)?;
        Ok(ResponseJoin {
            value_serde,
            left: ctx.get_state_store(left_store)?,
            result_cached: result.is_cached(),
            result,
            joiner,
        })
    }
}

impl<K: Data, V: Data, VO: Data, VR: Data> Processor for ResponseJoin<K, V, VO, VR> {
    type KIn = K;
    type VIn = Response<VO>;
    type KOut = K;
    type VOut = Change<VR>;

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<VR>>,
        r: Record<K, Response<VO>>,
    ) -> Result<()> {
        let current = self.left.get(&r.key)?;
        if hash_of(&self.value_serde, self.left.name(), current.as_ref())? != r.value.hash {
            // The left row changed after this subscription: a newer answer will follow.
            return Ok(());
        }
        let new = current
            .as_ref()
            .and_then(|v| (self.joiner)(v, r.value.value.as_ref()));
        let result = &self.result;
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
        if !self.result_cached {
            ctx.forward(r.with_value(Change::new(new, old)))?;
        }
        Ok(())
    }
}
