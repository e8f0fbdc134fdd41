//! Record batch (magic 2) header access and validation: [`BatchHeader::parse`] and
//! [`validate_batch`]. The broker stores batches as received, so this is the only place that
//! looks inside them.

use kafka_protocol::error::ResponseError;

/// Size of the fixed part of a magic-2 batch, up to and including the record count.
pub(crate) const HEADER_LEN: usize = 61;
/// Bytes before the batch length field's coverage starts (base offset + length).
pub(crate) const LOG_OVERHEAD: usize = 12;

const ATTR_TRANSACTIONAL: i16 = 1 << 4;
const ATTR_CONTROL: i16 = 1 << 5;
const ATTR_COMPRESSION_MASK: i16 = 0x07;

/// The fixed header fields of one record batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchHeader {
    pub(crate) base_offset: i64,
    /// Length of everything after the length field itself.
    pub(crate) batch_length: i32,
    pub(crate) magic: i8,
    pub(crate) crc: u32,
    pub(crate) attributes: i16,
    pub(crate) last_offset_delta: i32,
    pub(crate) base_timestamp: i64,
    pub(crate) max_timestamp: i64,
    pub(crate) producer_id: i64,
    pub(crate) producer_epoch: i16,
    pub(crate) base_sequence: i32,
    pub(crate) record_count: i32,
}

fn i16_at(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}
fn i32_at(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn i64_at(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

impl BatchHeader {
    /// Reads the header from the first [`HEADER_LEN`] bytes; `None` if there are fewer.
    pub(crate) fn parse(b: &[u8]) -> Option<BatchHeader> {
        if b.len() < HEADER_LEN {
            return None;
        }
        Some(BatchHeader {
            base_offset: i64_at(b, 0),
            batch_length: i32_at(b, 8),
            magic: b[16] as i8,
            crc: i32_at(b, 17) as u32,
            attributes: i16_at(b, 21),
            last_offset_delta: i32_at(b, 23),
            base_timestamp: i64_at(b, 27),
            max_timestamp: i64_at(b, 35),
            producer_id: i64_at(b, 43),
            producer_epoch: i16_at(b, 51),
            base_sequence: i32_at(b, 53),
            record_count: i32_at(b, 57),
        })
    }

    /// Total size on disk, length prefix included.
    pub(crate) fn total_len(&self) -> usize {
        LOG_OVERHEAD + self.batch_length.max(0) as usize
    }

    /// Offset of the last record. Saturates: only a header not yet given its offsets by the
    /// broker (a producer's base offset is anything) can reach past `i64::MAX`.
    pub(crate) fn last_offset(&self) -> i64 {
        self.base_offset
            .saturating_add(i64::from(self.last_offset_delta))
    }

    pub(crate) fn is_transactional(&self) -> bool {
        self.attributes & ATTR_TRANSACTIONAL != 0
    }

    pub(crate) fn is_control(&self) -> bool {
        self.attributes & ATTR_CONTROL != 0
    }

    pub(crate) fn is_compressed(&self) -> bool {
        self.attributes & ATTR_COMPRESSION_MASK != 0
    }

    /// Sequence number of the last record, wrapping as Kafka does.
    pub(crate) fn last_sequence(&self) -> i32 {
        if self.base_sequence < 0 {
            return -1;
        }
        let last = i64::from(self.base_sequence) + i64::from(self.last_offset_delta);
        (last % (i64::from(i32::MAX) + 1)) as i32
    }
}

/// Checks one batch as sent by a producer. `bytes` must hold exactly one batch.
pub(crate) fn validate_batch(bytes: &[u8], max_bytes: usize) -> Result<BatchHeader, ResponseError> {
    let header = BatchHeader::parse(bytes).ok_or(ResponseError::CorruptMessage)?;
    if header.magic != 2 {
        return Err(ResponseError::UnsupportedForMessageFormat);
    }
    if header.batch_length < (HEADER_LEN - LOG_OVERHEAD) as i32 {
        return Err(ResponseError::CorruptMessage);
    }
    if header.total_len() != bytes.len() {
        // Either a truncated batch or several batches: Kafka takes exactly one per partition.
        return Err(if header.total_len() > bytes.len() {
            ResponseError::CorruptMessage
        } else {
            ResponseError::InvalidRecord
        });
    }
    if bytes.len() > max_bytes {
        return Err(ResponseError::MessageTooLarge);
    }
    if crc32c::crc32c(&bytes[21..]) != header.crc {
        return Err(ResponseError::CorruptMessage);
    }
    if header.record_count <= 0
        || header.last_offset_delta.checked_add(1) != Some(header.record_count)
    {
        return Err(ResponseError::InvalidRecord);
    }
    Ok(header)
}

/// Overwrites the broker-owned fields (base offset, partition leader epoch), which the CRC does
/// not cover, so the client's bytes stay valid.
pub(crate) fn assign_offset(bytes: &mut [u8], base_offset: i64, leader_epoch: i32) {
    bytes[0..8].copy_from_slice(&base_offset.to_be_bytes());
    bytes[12..16].copy_from_slice(&leader_epoch.to_be_bytes());
}

/// Length of the whole batches at the start of `bytes` (a read cut at an arbitrary length ends
/// with part of a batch, which is left out).
pub(crate) fn whole_batches_len(bytes: &[u8]) -> usize {
    let mut pos = 0;
    while let Some(length) = bytes.get(pos + 8..pos + LOG_OVERHEAD) {
        let batch_length = i32::from_be_bytes([length[0], length[1], length[2], length[3]]);
        let Ok(batch_length) = usize::try_from(batch_length) else {
            break;
        };
        if batch_length < HEADER_LEN - LOG_OVERHEAD
            || pos + LOG_OVERHEAD + batch_length > bytes.len()
        {
            break;
        }
        pos += LOG_OVERHEAD + batch_length;
    }
    pos
}

/// The offset after the last record of the whole batches in `bytes` (0 for none).
pub(crate) fn end_offset(bytes: &[u8]) -> i64 {
    let whole = whole_batches_len(bytes);
    let mut pos = 0;
    let mut end = 0;
    while pos < whole {
        // Stored batches have broker-assigned offsets; saturate rather than trust that.
        end = i64_at(bytes, pos)
            .saturating_add(i64::from(i32_at(bytes, pos + 23)))
            .saturating_add(1);
        pos += LOG_OVERHEAD + i32_at(bytes, pos + 8).max(0) as usize;
    }
    end
}

/// Length of the whole batches at the start of `bytes` that start below offset `end`.
pub(crate) fn batches_below(bytes: &[u8], end: i64) -> usize {
    let whole = whole_batches_len(bytes);
    let mut pos = 0;
    while pos < whole {
        let base = i64_at(bytes, pos);
        if base >= end {
            break;
        }
        let length = i32_at(bytes, pos + 8);
        pos += LOG_OVERHEAD + length.max(0) as usize;
    }
    pos.min(whole)
}

/// Decodes an unsigned varint from `b`, returning the value and bytes used.
fn varint(b: &[u8]) -> Option<(i64, usize)> {
    let mut value: u64 = 0;
    for (i, byte) in b.iter().take(10).enumerate() {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            // zig-zag
            let v = ((value >> 1) as i64) ^ -((value & 1) as i64);
            return Some((v, i + 1));
        }
    }
    None
}

/// Offset of the first record with timestamp >= `target` in an uncompressed batch, reading the
/// per-record timestamp deltas. `None` for compressed batches (the caller falls back to the
/// batch base offset) or if no record qualifies.
pub(crate) fn first_offset_at_or_after(batch: &[u8], target: i64) -> Option<i64> {
    let header = BatchHeader::parse(batch)?;
    if header.is_compressed() {
        return None;
    }
    let mut pos = HEADER_LEN;
    for _ in 0..header.record_count {
        let (len, n) = varint(batch.get(pos..)?)?;
        let body_start = pos + n;
        let mut p = body_start + 1; // attributes
        let (ts_delta, n) = varint(batch.get(p..)?)?;
        p += n;
        let (offset_delta, _) = varint(batch.get(p..)?)?;
        // Deltas are whatever the producer wrote (the CRC only proves they arrived intact):
        // a timestamp past i64's range compares as its bound, an offset past it is no answer.
        if header.base_timestamp.saturating_add(ts_delta) >= target {
            return header.base_offset.checked_add(offset_delta);
        }
        pos = body_start.checked_add(usize::try_from(len).ok()?)?;
    }
    None
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use bytes::BytesMut;
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };

    /// Encodes a batch of `n` records with timestamps `ts0, ts0+1, ...` using the protocol crate.
    pub(crate) fn make_batch(n: i32, ts0: i64, producer: Option<(i64, i16, i32)>) -> Vec<u8> {
        encode(n, ts0, producer, false)
    }

    /// Like [`make_batch`], a transactional batch of `producer` = (id, epoch, base sequence).
    pub(crate) fn make_txn_batch(n: i32, ts0: i64, producer: (i64, i16, i32)) -> Vec<u8> {
        encode(n, ts0, Some(producer), true)
    }

    fn encode(n: i32, ts0: i64, producer: Option<(i64, i16, i32)>, transactional: bool) -> Vec<u8> {
        let (pid, epoch, seq) = producer.unwrap_or((-1, -1, -1));
        let records: Vec<Record> = (0..n)
            .map(|i| Record {
                transactional,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: pid,
                producer_epoch: epoch,
                timestamp_type: TimestampType::Creation,
                offset: i64::from(i),
                // The encoder splits batches where offset - sequence changes; -1 + i keeps the
                // base sequence at -1 for non-idempotent batches.
                sequence: seq + i,
                timestamp: ts0 + i64::from(i),
                key: Some(bytes::Bytes::from(format!("k{i}"))),
                value: Some(bytes::Bytes::from(format!("value-{i}"))),
                headers: Default::default(),
            })
            .collect();
        let mut out = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut out,
            &records,
            &RecordEncodeOptions {
                version: 2,
                compression: Compression::None,
            },
        )
        .unwrap();
        out.to_vec()
    }

    /// A batch with the given keys and values (`None` value = tombstone).
    pub(crate) fn make_keyed_batch(records: &[(&str, Option<&str>)], ts0: i64) -> Vec<u8> {
        let records: Vec<Record> = records
            .iter()
            .enumerate()
            .map(|(i, (k, v))| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                sequence: -1 + i as i32,
                timestamp: ts0 + i as i64,
                key: Some(bytes::Bytes::from(k.to_string())),
                value: v.map(|v| bytes::Bytes::from(v.to_string())),
                headers: Default::default(),
            })
            .collect();
        let mut out = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut out,
            &records,
            &RecordEncodeOptions {
                version: 2,
                compression: Compression::None,
            },
        )
        .unwrap();
        out.to_vec()
    }

    #[test]
    fn valid_batch_passes_and_offsets_patch_keeps_crc() {
        let mut b = make_batch(3, 1000, None);
        let h = validate_batch(&b, 1 << 20).unwrap();
        assert_eq!(h.record_count, 3);
        assign_offset(&mut b, 42, 0);
        let h = validate_batch(&b, 1 << 20).unwrap();
        assert_eq!(h.base_offset, 42);
        assert_eq!(h.last_offset(), 44);
    }

    #[test]
    fn corrupt_and_oversized_batches_are_rejected() {
        let mut b = make_batch(3, 1000, None);
        let last = b.len() - 1;
        b[last] ^= 0xff;
        assert_eq!(
            validate_batch(&b, 1 << 20),
            Err(ResponseError::CorruptMessage)
        );
        let b = make_batch(3, 1000, None);
        assert_eq!(validate_batch(&b, 10), Err(ResponseError::MessageTooLarge));
        assert_eq!(
            validate_batch(&b[..b.len() - 1], 1 << 20),
            Err(ResponseError::CorruptMessage)
        );
    }

    #[test]
    fn whole_batches_len_leaves_out_a_cut_batch() {
        let a = make_batch(3, 1000, None);
        let b = make_batch(2, 1000, None);
        let both = [a.clone(), b.clone()].concat();
        assert_eq!(whole_batches_len(&both), both.len());
        for cut in a.len()..both.len() {
            assert_eq!(whole_batches_len(&both[..cut]), a.len(), "{cut}");
        }
        assert_eq!(whole_batches_len(&both[..5]), 0);
    }

    #[test]
    fn timestamp_lookup_inside_a_batch() {
        let mut b = make_batch(5, 1000, None);
        assign_offset(&mut b, 10, 0);
        assert_eq!(first_offset_at_or_after(&b, 1002), Some(12));
        assert_eq!(first_offset_at_or_after(&b, 0), Some(10));
        assert_eq!(first_offset_at_or_after(&b, 5000), None);
    }
}
