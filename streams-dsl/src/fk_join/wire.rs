//! The messages of a foreign-key join and their bytes: subscriptions (left to right),
//! responses (right to left), the value hash that tells a stale response from a fresh one, and
//! the key of the subscription store.

use streams_core::serde::{Serde, SerdeError, SerdeRef};
use streams_core::Result;

/// What a subscription asks of the right side (Kafka Streams' byte values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Instruction {
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
pub(super) struct Subscription {
    pub(super) instruction: Instruction,
    /// Hash of the left row's value when it was sent (`None`: deleted).
    pub(super) hash: Option<u128>,
    /// The left row's key, serialized.
    pub(super) primary_key: Vec<u8>,
}

/// The right side's answer to a subscription, keyed by the left row's key.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Response<VO> {
    /// The hash the subscription carried.
    pub(super) hash: Option<u128>,
    /// The right row (`None`: there is none).
    pub(super) value: Option<VO>,
}

const WIRE_VERSION: u8 = 0;

/// `[version][instruction][has hash][16-byte hash if any][primary key bytes]`.
pub(super) struct SubscriptionSerde;

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
pub(super) struct ResponseSerde<VO>(pub(super) SerdeRef<VO>);

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

pub(super) fn hash_of<V: 'static>(
    serde: &SerdeRef<V>,
    what: &str,
    v: Option<&V>,
) -> Result<Option<u128>> {
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

pub(super) fn to_bytes<T: 'static>(
    serde: &SerdeRef<T>,
    what: &str,
    v: &T,
) -> Result<Option<Vec<u8>>> {
    serde
        .serialize(what, v)
        .map_err(|source| streams_core::StreamsError::Serialization {
            target: what.to_string(),
            source,
        })
}

/// Subscription store key: `[foreign key length, 4 bytes big-endian][foreign key][primary key]`,
/// so that the subscriptions of one foreign key are one key range.
pub(super) fn combined_key(fk: &[u8], pk: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(4 + fk.len() + pk.len());
    k.extend_from_slice(&(fk.len() as u32).to_be_bytes());
    k.extend_from_slice(fk);
    k.extend_from_slice(pk);
    k
}

#[cfg(test)]
mod tests {
    use super::*;
    use streams_core::serde::Serdes;

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
