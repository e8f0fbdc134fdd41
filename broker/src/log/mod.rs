//! One partition's log: [`PartitionLog`] appends record batches as received to segment files,
//! serves reads by offset and timestamp, and recovers from a torn tail after a crash.
//!
//! Layout of a partition directory:
//! - `NNNNNNNNNNNNNNNNNNNN.log`: a segment, named by its base offset, holding whole batches back
//!   to back exactly as producers sent them (only the base offset and leader epoch are patched).
//! - `NNNNNNNNNNNNNNNNNNNN.index` and `.timeindex`: the segment's sparse offset and time index
//!   (see [`index`]), which lookups use to find where to start scanning batch headers.
//! - `NNNNNNNNNNNNNNNNNNNN.txnindex`: the transactions whose abort marker is in the segment
//!   (see [`txn_index`]); only segments with aborts have one.
//! - `NNNNNNNNNNNNNNNNNNNN.snapshot`: idempotent-producer state, open transactions included, as
//!   of that offset (see [`producers`]).
//! - `log-start-offset`: the first offset still readable, moved forward by DeleteRecords.
//!
//! Opening a log reads no closed segment: their indexes were fsynced when they were rolled and
//! are trusted after a few checks (and rebuilt from the segment if missing or inconsistent). The
//! active segment is recovered from its last index entry on, checking CRCs and cutting a torn
//! tail. Producer state comes from the newest snapshot plus the batches written after it.
//!
//! Where things are: [`PartitionLog`]'s methods are spread over files by what they do:
//! - [`recovery`]: opening, with crash recovery and producer state reload;
//! - [`append`]: appends, segment rolls, producer snapshots, the shutdown checkpoint;
//! - [`read`]: fetch reads and the ListOffsets lookups;
//! - [`retention`]: DeleteRecords and time and size retention;
//! - [`compact`]: log compaction of closed segments (record-level work in [`compaction`],
//!   transactions in [`compact_txn`]);
//! - [`segment`]: one segment file and batch header scanning; [`files`]: directory housekeeping;
//! - [`batch`], [`index`], [`producers`]: the batch format, the indexes, idempotence state;
//! - [`control`], [`txn_index`]: transaction markers and the aborted-transaction index;
//!   [`cleaner`]: the background task that runs retention and compaction.

mod append;
pub(crate) mod batch;
pub(crate) mod cleaner;
mod compact;
mod compact_txn;
pub(crate) mod compaction;
pub(crate) mod control;
mod files;
pub(crate) mod index;
pub(crate) mod producers;
mod read;
mod recovery;
mod retention;
mod segment;
#[cfg(test)]
mod test_support;
pub(crate) mod txn_index;

use batch::BatchHeader;
use kafka_protocol::error::ResponseError;
use producers::ProducerState;
pub(crate) use producers::SequenceCheck;
use segment::Segment;
use std::path::{Path, PathBuf};

/// Leader epoch stamped on every batch; a single node never changes leader.
pub(crate) const LEADER_EPOCH: i32 = 0;

/// Kafka's default `index.interval.bytes`.
pub(crate) const DEFAULT_INDEX_INTERVAL_BYTES: u64 = 4096;

/// Storage settings a log needs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LogOptions {
    pub(crate) segment_bytes: u64,
    /// Kafka's `index.interval.bytes`: bytes of batches between two index entries.
    pub(crate) index_interval_bytes: u64,
}

/// The log of one partition. Not thread-safe by itself: the owner wraps it in a mutex.
pub(crate) struct PartitionLog {
    dir: PathBuf,
    /// Sorted by base offset; the last one is the active segment appends go to.
    segments: Vec<Segment>,
    next_offset: i64,
    log_start_offset: i64,
    producers: ProducerState,
    /// Offset of the newest producer snapshot on disk, so an unchanged state is not rewritten.
    snapshot_offset: Option<i64>,
    options: LogOptions,
    /// Closed segments below this offset were compacted already (in memory only: after a
    /// restart the first pass redoes the work, harmlessly).
    compacted_up_to: i64,
}

impl std::fmt::Debug for PartitionLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionLog")
            .field("dir", &self.dir)
            .field("log_start_offset", &self.log_start_offset)
            .field("next_offset", &self.next_offset)
            .finish()
    }
}

impl PartitionLog {
    /// The offset the next appended record gets; with one replica it is also the high watermark.
    pub(crate) fn next_offset(&self) -> i64 {
        self.next_offset
    }

    /// The first offset still readable.
    pub(crate) fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }

    /// Bytes held in segment files.
    pub(crate) fn size_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.size).sum()
    }

    /// The offset after the last one segment `i` can hold: the next segment's base.
    fn segment_end(&self, i: usize) -> i64 {
        self.segments
            .get(i + 1)
            .map_or(self.next_offset, |s| s.base_offset)
    }

    /// The last stable offset: the first offset of the oldest open transaction, or the high
    /// watermark when none is open. `read_committed` consumers read below it.
    pub(crate) fn last_stable_offset(&self) -> i64 {
        self.producers
            .first_unstable_offset()
            .map_or(self.next_offset, |o| o.min(self.next_offset))
    }

    /// Decides whether an idempotent producer's batch is new, a retry, or out of order.
    pub(crate) fn check_sequence(&self, h: &BatchHeader) -> Result<SequenceCheck, ResponseError> {
        self.producers.check(h)
    }

    /// The storage settings the log was opened with.
    pub(crate) fn options(&self) -> LogOptions {
        self.options
    }

    /// The directory this log lives in.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }
}
