//! Record-level access for log compaction: [`records`] lists the keys and offsets of an
//! uncompressed batch, [`retain`] builds a batch holding a subset of its records.
//!
//! Kept records are copied byte for byte; only the batch header (length, record count, CRC)
//! is rewritten. The base offset and last offset delta stay, so offsets and producer sequence
//! bookkeeping are unchanged, as in Kafka. Transactional batches are compacted like others
//! (whether one was aborted is decided by the caller, see `compact_txn`); compressed and control
//! batches are left whole: compacting inside compressed ones would need the codecs.

use super::batch::{BatchHeader, HEADER_LEN};

/// One record as compaction sees it.
#[derive(Debug)]
pub(crate) struct RecordRef<'a> {
    pub(crate) offset: i64,
    pub(crate) key: Option<&'a [u8]>,
    pub(crate) is_tombstone: bool,
    /// The record's bytes including its length prefix.
    raw: &'a [u8],
}

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

/// The records of a batch compaction may look into; `None` for batches left whole.
pub(crate) fn records(batch: &[u8]) -> Option<Vec<RecordRef<'_>>> {
    let h = BatchHeader::parse(batch)?;
    if h.is_compressed() || h.is_control() {
        return None;
    }
    let mut out = Vec::with_capacity(h.record_count.clamp(0, 1 << 16) as usize);
    let mut pos = HEADER_LEN;
    for _ in 0..h.record_count {
        let (len, n) = varint(batch.get(pos..)?)?;
        let end = (pos + n).checked_add(usize::try_from(len).ok()?)?;
        let raw = batch.get(pos..end)?;
        let mut p = n + 1; // attributes
        let (_, k) = varint(raw.get(p..)?)?; // timestamp delta
        p += k;
        let (offset_delta, k) = varint(raw.get(p..)?)?;
        p += k;
        let (key_len, k) = varint(raw.get(p..)?)?;
        p += k;
        let key = if key_len < 0 {
            None
        } else {
            let key_end = p.checked_add(usize::try_from(key_len).ok()?)?;
            let key = raw.get(p..key_end)?;
            p = key_end;
            Some(key)
        };
        let (value_len, _) = varint(raw.get(p..)?)?;
        out.push(RecordRef {
            // The delta is the producer's (a valid CRC proves nothing about it).
            offset: h.base_offset.checked_add(offset_delta)?,
            key,
            is_tombstone: value_len < 0,
            raw,
        });
        pos = end;
    }
    Some(out)
}

/// What is left of a batch after compaction.
#[derive(Debug)]
pub(crate) enum Retained {
    /// Every record stays: keep the stored bytes.
    All,
    /// A new batch with the kept records, and how many were dropped.
    Some(Vec<u8>, usize),
    /// Nothing stays; how many were dropped.
    None(usize),
}

/// Keeps the records for which `keep` is true.
pub(crate) fn retain(batch: &[u8], mut keep: impl FnMut(&RecordRef<'_>) -> bool) -> Retained {
    let Some(records) = records(batch) else {
        return Retained::All;
    };
    let total = records.len();
    let kept: Vec<&RecordRef<'_>> = records.iter().filter(|r| keep(r)).collect();
    if kept.len() == total {
        return Retained::All;
    }
    if kept.is_empty() {
        return Retained::None(total);
    }
    let mut out = batch[..HEADER_LEN].to_vec();
    for r in &kept {
        out.extend_from_slice(r.raw);
    }
    let batch_length = (out.len() - super::batch::LOG_OVERHEAD) as i32;
    out[8..12].copy_from_slice(&batch_length.to_be_bytes());
    out[57..61].copy_from_slice(&(kept.len() as i32).to_be_bytes());
    let crc = crc32c::crc32c(&out[21..]);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    Retained::Some(out, total - kept.len())
}
