//! The right table's side of a foreign-key join: keeps the subscriptions to each right row and
//! answers them, on subscription and again on every change of the row.

use streams_core::serde::{Serde, SerdeRef};
use streams_core::{Change, KeyValueStore, Processor, ProcessorContext, Record, Result};

use super::wire::{combined_key, to_bytes, Instruction, Response, Subscription, SubscriptionSerde};
use crate::Data;

/// Right side: stores or removes a subscription and answers it with the right row.
pub(super) struct SubscriptionReceive<KO, VO> {
    pub(super) fk_serde: SerdeRef<KO>,
    pub(super) subscriptions: KeyValueStore<Vec<u8>, Vec<u8>>,
    pub(super) right: KeyValueStore<KO, VO>,
}

impl<KO: Data, VO: Data> Processor for SubscriptionReceive<KO, VO> {
    type KIn = KO;
    type VIn = Subscription;
    type KOut = Vec<u8>;
    type VOut = Response<VO>;

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, Vec<u8>, Response<VO>>,
        r: Record<KO, Subscription>,
    ) -> Result<()> {
        let subscriptions = &self.subscriptions;
        let Some(fk) = to_bytes(&self.fk_serde, subscriptions.name(), &r.key)? else {
            // A left join's row with a null foreign key: nothing to keep, and no right row can
            // match it, so it is answered at once with no value.
            if r.value.instruction != Instruction::PropagateNullIfNoFkValAvailable {
                return Ok(());
            }
            return ctx.forward(Record {
                key: r.value.primary_key,
                value: Response {
                    hash: r.value.hash,
                    value: None,
                },
                timestamp: r.timestamp,
                headers: r.headers,
            });
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
                self.right.get(&r.key)?
            }
            Instruction::PropagateOnlyIfFkValAvailable => {
                put_subscription(subscriptions, &key, &r.value)?;
                match self.right.get(&r.key)? {
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
pub(super) struct ForeignChange<KO, VO> {
    pub(super) fk_serde: SerdeRef<KO>,
    pub(super) subscriptions: KeyValueStore<Vec<u8>, Vec<u8>>,
    pub(super) _t: std::marker::PhantomData<fn() -> VO>,
}

impl<KO: Data, VO: Data> Processor for ForeignChange<KO, VO> {
    type KIn = KO;
    type VIn = Change<VO>;
    type KOut = Vec<u8>;
    type VOut = Response<VO>;

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, Vec<u8>, Response<VO>>,
        r: Record<KO, Change<VO>>,
    ) -> Result<()> {
        if r.value.new_value.is_none() && r.value.old_value.is_none() {
            return Ok(());
        }
        let subscriptions = &self.subscriptions;
        let Some(fk) = to_bytes(&self.fk_serde, subscriptions.name(), &r.key)? else {
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
