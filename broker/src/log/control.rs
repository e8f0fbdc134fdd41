//! Transaction markers: [`marker_batch`] builds the control batch that commits or aborts a
//! producer's transaction in a partition, [`marker_kind`] reads one back.
//!
//! A marker is a batch with the transactional and control attributes, the producer's id and
//! epoch, base sequence -1 and one record: key `[version i16 = 0, type i16]` (0 abort,
//! 1 commit), value `[version i16 = 0, coordinator epoch i32]`, as Kafka writes them.

use super::batch::{BatchHeader, HEADER_LEN};
use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

/// Which way a transaction ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Marker {
    Abort,
    Commit,
}

/// Coordinator epoch written in markers: one node coordinates every transaction, for ever.
pub(crate) const COORDINATOR_EPOCH: i32 = 0;

/// The control batch ending `producer_id`'s transaction (base offset still 0).
pub(crate) fn marker_batch(
    producer_id: i64,
    epoch: i16,
    marker: Marker,
    timestamp: i64,
) -> Vec<u8> {
    let kind: i16 = match marker {
        Marker::Abort => 0,
        Marker::Commit => 1,
    };
    let mut key = Vec::with_capacity(4);
    key.extend_from_slice(&0i16.to_be_bytes());
    key.extend_from_slice(&kind.to_be_bytes());
    let mut value = Vec::with_capacity(6);
    value.extend_from_slice(&0i16.to_be_bytes());
    value.extend_from_slice(&COORDINATOR_EPOCH.to_be_bytes());
    let record = Record {
        transactional: true,
        control: true,
        delete_horizon: false,
        partition_leader_epoch: super::LEADER_EPOCH,
        producer_id,
        producer_epoch: epoch,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp,
        key: Some(Bytes::from(key)),
        value: Some(Bytes::from(value)),
        headers: Default::default(),
    };
    let mut out = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut out,
        [&record],
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .expect("an uncompressed one-record batch always encodes");
    out.to_vec()
}

/// The marker a control batch holds; `None` for other batches, and for control batches whose
/// first record is not a well-formed marker (compressed, or another control type).
pub(crate) fn marker_kind(batch: &[u8]) -> Option<Marker> {
    let h = BatchHeader::parse(batch)?;
    if !h.is_control() || h.is_compressed() || h.record_count < 1 {
        return None;
    }
    // Record: length, attributes (1 byte), timestamp delta, offset delta, key length, key.
    let mut pos = HEADER_LEN;
    let (_, n) = varint(batch.get(pos..)?)?;
    pos += n + 1;
    let (_, n) = varint(batch.get(pos..)?)?;
    pos += n;
    let (_, n) = varint(batch.get(pos..)?)?;
    pos += n;
    let (key_len, n) = varint(batch.get(pos..)?)?;
    pos += n;
    if key_len < 4 {
        return None;
    }
    let key = batch.get(pos..pos + 4)?;
    match i16::from_be_bytes([key[2], key[3]]) {
        0 => Some(Marker::Abort),
        1 => Some(Marker::Commit),
        _ => None,
    }
}

/// A zig-zag varint and the bytes it took.
fn varint(b: &[u8]) -> Option<(i64, usize)> {
    let mut value: u64 = 0;
    for (i, byte) in b.iter().take(10).enumerate() {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((((value >> 1) as i64) ^ -((value & 1) as i64), i + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::batch::validate_batch;

    #[test]
    fn markers_are_valid_control_batches_that_read_back() {
        for marker in [Marker::Abort, Marker::Commit] {
            let b = marker_batch(42, 3, marker, 1000);
            let h = validate_batch(&b, 1 << 20).unwrap();
            assert!(h.is_control() && h.is_transactional());
            assert_eq!(
                (h.producer_id, h.producer_epoch, h.base_sequence),
                (42, 3, -1)
            );
            assert_eq!(h.record_count, 1);
            assert_eq!(marker_kind(&b), Some(marker));
            // The record as Kafka's decoder sees it.
            let mut bytes = Bytes::from(b.clone());
            let set = RecordBatchDecoder::decode(&mut bytes).unwrap();
            let r = &set.records[0];
            let kind = if marker == Marker::Commit { 1 } else { 0 };
            assert_eq!(r.key.as_deref(), Some(&[0, 0, 0, kind][..]));
            assert_eq!(r.value.as_deref(), Some(&[0, 0, 0, 0, 0, 0][..]));
            assert!(r.control && r.transactional);
        }
        let data = crate::log::batch::tests::make_batch(1, 1000, None);
        assert_eq!(marker_kind(&data), None);
    }

    use kafka_protocol::records::RecordBatchDecoder;
}
