//! One partition's log: [`PartitionLog`] appends record batches as received to segment files,
//! serves reads by offset and timestamp, and recovers from a torn tail after a crash.
//!
//! Layout of a partition directory:
//! - `NNNNNNNNNNNNNNNNNNNN.log`: a segment, named by its base offset, holding whole batches back
//!   to back exactly as producers sent them (only the base offset and leader epoch are patched).
//! - `NNNNNNNNNNNNNNNNNNNN.index` and `.timeindex`: the segment's sparse offset and time index
//!   (see [`index`]), which lookups use to find where to start scanning batch headers.
//! - `NNNNNNNNNNNNNNNNNNNN.snapshot`: idempotent-producer state as of that offset (see
//!   [`producers`]).
//! - `log-start-offset`: the first offset still readable, moved forward by DeleteRecords.
//!
//! Opening a log reads no closed segment: their indexes were fsynced when they were rolled and
//! are trusted after a few checks (and rebuilt from the segment if missing or inconsistent). The
//! active segment is recovered from its last index entry on, checking CRCs and cutting a torn
//! tail. Producer state comes from the newest snapshot plus the batches written after it.

pub(crate) mod batch;
pub(crate) mod cleaner;
pub(crate) mod compaction;
pub(crate) mod index;
pub(crate) mod producers;

use crate::error::{Error, Result};
use batch::{BatchHeader, HEADER_LEN, LOG_OVERHEAD};
use index::SegmentIndex;
use kafka_protocol::error::ResponseError;
use producers::ProducerState;
pub(crate) use producers::SequenceCheck;
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Leader epoch stamped on every batch; a single node never changes leader.
pub(crate) const LEADER_EPOCH: i32 = 0;

/// Kafka's default `index.interval.bytes`.
pub(crate) const DEFAULT_INDEX_INTERVAL_BYTES: u64 = 4096;

/// Largest segment, whatever `segment.bytes` says: index entries hold positions as 32-bit
/// numbers (Kafka caps `segment.bytes` at `i32::MAX` for the same reason).
const MAX_SEGMENT_BYTES: u64 = i32::MAX as u64;

/// Suffix of a compaction's output files until they replace the segment.
const CLEANED: &str = ".cleaned";

/// Bytes read at a time when scanning batch headers: one read covers the stretch between two
/// index entries (`index.interval.bytes`) several times over.
const SCAN_WINDOW: u64 = 32 * 1024;

/// Storage settings a log needs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LogOptions {
    pub(crate) segment_bytes: u64,
    /// Kafka's `index.interval.bytes`: bytes of batches between two index entries.
    pub(crate) index_interval_bytes: u64,
}

fn segment_path(dir: &Path, base_offset: i64) -> PathBuf {
    dir.join(format!("{base_offset:020}.log"))
}

fn open_segment_file(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| Error::storage(path, e))
}

/// Reads `len` bytes at `position`.
///
/// Seeks and reads into the vector's spare capacity rather than `read_exact_at` into a zeroed
/// buffer: zeroing megabytes per fetch showed up in profiles. Moving the file cursor is safe
/// because a log is only ever used behind its partition's mutex (no two reads share the cursor)
/// and appends write at explicit positions.
fn read_at(file: &File, path: &Path, position: u64, len: usize) -> Result<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut buf = Vec::with_capacity(len);
    let mut file = file;
    file.seek(SeekFrom::Start(position))
        .and_then(|_| file.take(len as u64).read_to_end(&mut buf))
        .map_err(|e| Error::storage(path, e))?;
    if buf.len() != len {
        return Err(Error::storage(
            path,
            std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("{} bytes at {position}, wanted {len}", buf.len()),
            ),
        ));
    }
    Ok(buf)
}

/// The header of the batch at `position` of a segment file `len` bytes long, if one is there.
fn header_at(file: &File, path: &Path, position: u64, len: u64) -> Result<Option<BatchHeader>> {
    if position + HEADER_LEN as u64 > len {
        return Ok(None);
    }
    let mut buf = [0u8; HEADER_LEN];
    file.read_exact_at(&mut buf, position)
        .map_err(|e| Error::storage(path, e))?;
    Ok(BatchHeader::parse(&buf).filter(|h| {
        h.magic == 2
            && h.batch_length >= (HEADER_LEN - LOG_OVERHEAD) as i32
            && position + h.total_len() as u64 <= len
    }))
}

/// Whether a whole batch with this base offset and a matching CRC starts at `position`.
fn intact_batch_at(
    file: &File,
    path: &Path,
    position: u64,
    len: u64,
    base_offset: i64,
) -> Result<bool> {
    let Some(h) = header_at(file, path, position, len)? else {
        return Ok(false);
    };
    if h.base_offset != base_offset {
        return Ok(false);
    }
    let bytes = read_at(file, path, position, h.total_len())?;
    Ok(crc32c::crc32c(&bytes[21..]) == h.crc)
}

struct Segment {
    base_offset: i64,
    path: PathBuf,
    file: File,
    /// Bytes of whole batches; once the segment is open the file is never longer.
    size: u64,
    index: SegmentIndex,
}

impl Segment {
    /// A new, empty segment with empty index files.
    fn create(dir: &Path, base_offset: i64, options: &LogOptions) -> Result<Segment> {
        let path = segment_path(dir, base_offset);
        let file = open_segment_file(&path)?;
        let index = SegmentIndex::create(dir, base_offset, "", options.index_interval_bytes)?;
        Ok(Segment {
            base_offset,
            path,
            file,
            size: 0,
            index,
        })
    }

    fn read(&self, position: u64, len: usize) -> Result<Vec<u8>> {
        read_at(&self.file, &self.path, position, len)
    }

    /// Batch headers from `position` to the end of the segment.
    fn headers(&self, position: u64) -> HeaderReader<'_> {
        HeaderReader::new(&self.file, &self.path, position, self.size)
    }

    /// The first batch that holds `offset` or a later one, with its position: a scan from the
    /// index entry at or below `offset`. `None` if the segment ends before.
    fn locate(&self, offset: i64) -> Result<Option<(u64, BatchHeader)>> {
        let mut headers = self.headers(self.index.position_for(offset));
        while let Some((position, h)) = headers.next_batch()? {
            if h.last_offset() >= offset {
                return Ok(Some((position, h)));
            }
        }
        Ok(None)
    }
}

/// What [`HeaderReader::next`] found.
enum Scanned {
    Batch(u64, BatchHeader),
    End,
    /// No plausible batch header at this position (a torn or corrupt tail).
    Invalid(u64),
}

/// Reads the headers of consecutive batches of a segment file, through a buffer so that a run of
/// small batches costs one read call rather than one per batch.
struct HeaderReader<'a> {
    file: &'a File,
    path: &'a Path,
    /// Where the next header starts.
    position: u64,
    /// Where the batches end.
    end: u64,
    buf: Vec<u8>,
    buf_start: u64,
}

impl<'a> HeaderReader<'a> {
    fn new(file: &'a File, path: &'a Path, position: u64, end: u64) -> HeaderReader<'a> {
        HeaderReader {
            file,
            path,
            position,
            end,
            buf: Vec::new(),
            buf_start: 0,
        }
    }

    fn next(&mut self) -> Result<Scanned> {
        let position = self.position;
        if position >= self.end {
            return Ok(Scanned::End);
        }
        if self.end - position < HEADER_LEN as u64 {
            return Ok(Scanned::Invalid(position));
        }
        let buffered = position >= self.buf_start
            && position + HEADER_LEN as u64 <= self.buf_start + self.buf.len() as u64;
        if !buffered {
            let len = (self.end - position).min(SCAN_WINDOW);
            self.buf = read_at(self.file, self.path, position, len as usize)?;
            self.buf_start = position;
        }
        let at = (position - self.buf_start) as usize;
        let h = BatchHeader::parse(&self.buf[at..]).expect("a whole header is buffered");
        let plausible = h.magic == 2
            && h.batch_length >= (HEADER_LEN - LOG_OVERHEAD) as i32
            && h.last_offset_delta >= 0
            && position + h.total_len() as u64 <= self.end;
        if !plausible {
            return Ok(Scanned::Invalid(position));
        }
        self.position += h.total_len() as u64;
        Ok(Scanned::Batch(position, h))
    }

    /// The next batch, `None` at the end; a bad header is an error (data recovery already
    /// checked, so damaged on disk since).
    fn next_batch(&mut self) -> Result<Option<(u64, BatchHeader)>> {
        match self.next()? {
            Scanned::Batch(position, h) => Ok(Some((position, h))),
            Scanned::End => Ok(None),
            Scanned::Invalid(position) => Err(Error::storage(
                self.path,
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("no valid batch header at position {position}"),
                ),
            )),
        }
    }
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
    /// Opens (or creates) the log in `dir`, truncating a torn or corrupt tail.
    pub(crate) fn open(dir: &Path, options: LogOptions) -> Result<PartitionLog> {
        std::fs::create_dir_all(dir).map_err(|e| Error::storage(dir, e))?;
        remove_leftovers(dir)?;
        let bases = segment_bases(dir)?;
        remove_orphan_indexes(dir, &bases)?;
        let mut log = PartitionLog {
            dir: dir.to_path_buf(),
            segments: Vec::new(),
            next_offset: bases.first().copied().unwrap_or(0),
            log_start_offset: 0,
            producers: ProducerState::default(),
            snapshot_offset: None,
            options,
            compacted_up_to: 0,
        };
        for (i, &base) in bases.iter().enumerate() {
            let intact = match bases.get(i + 1) {
                Some(&end) => log.open_closed_segment(base, end)?,
                None => log.recover_active_segment(base)?,
            };
            if !intact {
                // Everything after a damaged spot is unreachable by offset: drop later segments.
                for &later in &bases[i + 1..] {
                    tracing::warn!(dir = %dir.display(), segment_base = later, "removing segment after corrupt data");
                    remove_segment_files(dir, later)?;
                }
                break;
            }
        }
        if log.segments.is_empty() {
            log.segments
                .push(Segment::create(dir, log.next_offset, &log.options)?);
        }
        let first_base = log.segments[0].base_offset;
        log.log_start_offset = read_log_start(dir)?.unwrap_or(first_base).max(first_base);
        log.log_start_offset = log.log_start_offset.min(log.next_offset);
        log.load_producer_state()?;
        Ok(log)
    }

    /// Opens a closed segment (`end` is the next segment's base) with its indexes, or rebuilds
    /// them from the segment if they cannot be trusted. Returns false if the segment had to be
    /// truncated, which makes it the last one.
    fn open_closed_segment(&mut self, base: i64, end: i64) -> Result<bool> {
        let path = segment_path(&self.dir, base);
        let file = open_segment_file(&path)?;
        let len = file.metadata().map_err(|e| Error::storage(&path, e))?.len();
        let interval = self.options.index_interval_bytes;
        let loaded = SegmentIndex::load_closed(&self.dir, base, interval, len, end, |position| {
            header_at(&file, &path, position, len)
        })?;
        let (index, trusted) = match loaded {
            Some(index) => (index, true),
            None => (SegmentIndex::create(&self.dir, base, "", interval)?, false),
        };
        let mut segment = Segment {
            base_offset: base,
            path,
            file,
            size: len,
            index,
        };
        let mut intact = true;
        if !trusted {
            // Older segments were fsynced when rolled: headers are enough, CRCs are not checked.
            intact = self.scan_segment(&mut segment, 0, false)?;
            if intact {
                segment.index.close()?;
            }
        }
        self.segments.push(segment);
        Ok(intact)
    }

    /// Recovers the active segment: its indexes are cut back to their last entry that points at
    /// an intact batch, and the segment is scanned from there, with CRCs checked, entries
    /// re-added and a torn or corrupt tail truncated. Returns false if it truncated.
    fn recover_active_segment(&mut self, base: i64) -> Result<bool> {
        let path = segment_path(&self.dir, base);
        let file = open_segment_file(&path)?;
        let len = file.metadata().map_err(|e| Error::storage(&path, e))?.len();
        let interval = self.options.index_interval_bytes;
        let (index, resume) =
            SegmentIndex::load_active(&self.dir, base, interval, len, |position, batch_base| {
                intact_batch_at(&file, &path, position, len, batch_base)
            })?;
        let mut segment = Segment {
            base_offset: base,
            path,
            file,
            size: len,
            index,
        };
        let intact = self.scan_segment(&mut segment, resume, true)?;
        self.segments.push(segment);
        Ok(intact)
    }

    /// Scans `segment` (whose `size` is its file length) from `position`, adding index entries
    /// and setting the next offset; truncates at the first batch that is cut short, out of
    /// offset order, or (with `check_crc`) damaged. Returns false if it truncated.
    fn scan_segment(
        &mut self,
        segment: &mut Segment,
        position: u64,
        check_crc: bool,
    ) -> Result<bool> {
        let mut headers = HeaderReader::new(&segment.file, &segment.path, position, segment.size);
        let mut expected = segment.base_offset.max(self.next_offset);
        let mut end = position;
        let intact = loop {
            let (position, h) = match headers.next()? {
                Scanned::End => break true,
                Scanned::Invalid(_) => break false,
                Scanned::Batch(position, h) => (position, h),
            };
            let valid = h.base_offset >= expected
                && (!check_crc || {
                    let bytes = read_at(&segment.file, &segment.path, position, h.total_len())?;
                    crc32c::crc32c(&bytes[21..]) == h.crc
                });
            if !valid {
                break false;
            }
            segment.index.on_append(&h, position)?;
            expected = h.last_offset() + 1;
            end = position + h.total_len() as u64;
        };
        if !intact {
            tracing::warn!(
                segment = %segment.path.display(),
                position = end,
                file_len = segment.size,
                "truncating torn or corrupt tail"
            );
            segment
                .file
                .set_len(end)
                .map_err(|e| Error::storage(&segment.path, e))?;
            segment
                .file
                .sync_all()
                .map_err(|e| Error::storage(&segment.path, e))?;
        }
        segment.size = end;
        self.next_offset = expected;
        Ok(intact)
    }

    /// Loads the newest producer snapshot and replays the batches written after it; without a
    /// snapshot (a data directory from before snapshots, or every snapshot damaged), the whole
    /// log.
    fn load_producer_state(&mut self) -> Result<()> {
        let from = match producers::load_snapshot(&self.dir, self.next_offset)? {
            Some((offset, state)) => {
                self.producers = state;
                self.snapshot_offset = Some(offset);
                offset
            }
            None => i64::MIN,
        };
        for (i, segment) in self.segments.iter().enumerate() {
            let end = self
                .segments
                .get(i + 1)
                .map_or(self.next_offset, |s| s.base_offset);
            if end <= from {
                continue;
            }
            let mut headers = segment.headers(segment.index.position_for(from));
            loop {
                match headers.next_batch() {
                    Ok(Some((_, h))) if h.base_offset >= from => self.producers.record(&h),
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(e) => {
                        // Reads of that spot will fail too; the rest of the log is still served.
                        tracing::error!(error = %e, "cannot replay producer state from a damaged segment");
                        break;
                    }
                }
            }
        }
        Ok(())
    }

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

    /// Decides whether an idempotent producer's batch is new, a retry, or out of order.
    pub(crate) fn check_sequence(&self, h: &BatchHeader) -> Result<SequenceCheck, ResponseError> {
        self.producers.check(h)
    }

    /// Appends one validated batch, assigning it the next offsets. Returns its base offset.
    pub(crate) fn append(&mut self, batch: &mut [u8], fsync: bool) -> Result<i64> {
        let base_offset = self.next_offset;
        batch::assign_offset(batch, base_offset, LEADER_EPOCH);
        let header = BatchHeader::parse(batch).expect("validated batch has a header");
        let active = self.segments.last().expect("a log always has a segment");
        let max_bytes = self.options.segment_bytes.min(MAX_SEGMENT_BYTES);
        let full = active.size + batch.len() as u64 > max_bytes
            // Index entries hold offsets relative to the segment base as 32-bit numbers.
            || header.last_offset() - active.base_offset > i64::from(i32::MAX);
        if active.size > 0 && full {
            self.roll()?;
        }
        let active = self
            .segments
            .last_mut()
            .expect("a log always has a segment");
        active
            .file
            .write_all_at(batch, active.size)
            .map_err(|e| Error::storage(&active.path, e))?;
        if fsync {
            active
                .file
                .sync_data()
                .map_err(|e| Error::storage(&active.path, e))?;
        }
        // Until here nothing counts the batch: after an error the next append overwrites it.
        active.index.on_append(&header, active.size)?;
        active.size += batch.len() as u64;
        self.next_offset = header.last_offset() + 1;
        self.producers.record(&header);
        Ok(base_offset)
    }

    /// Starts a new active segment at the next offset. The old one and its indexes are fsynced
    /// first, so that recovery only ever has to distrust the last segment, and the producer
    /// state is snapshotted, so that the next start replays no more than the new segment.
    fn roll(&mut self) -> Result<()> {
        if let Some(old) = self.segments.last_mut() {
            old.file
                .sync_all()
                .map_err(|e| Error::storage(&old.path, e))?;
            old.index.close()?;
        }
        self.write_producer_snapshot()?;
        let segment = Segment::create(&self.dir, self.next_offset, &self.options)?;
        self.segments.push(segment);
        Ok(())
    }

    /// Saves the producer state as of the end of the log, unless that snapshot exists already.
    fn write_producer_snapshot(&mut self) -> Result<()> {
        if self.snapshot_offset == Some(self.next_offset) {
            return Ok(());
        }
        producers::write_snapshot(&self.dir, self.next_offset, &self.producers)?;
        self.snapshot_offset = Some(self.next_offset);
        Ok(())
    }

    /// Whole batches starting with the one that holds `offset`, up to `max_bytes` but always at
    /// least one batch. Empty at the end of the log.
    pub(crate) fn read(
        &self,
        offset: i64,
        max_bytes: usize,
    ) -> Result<Result<Vec<u8>, ResponseError>> {
        if offset < self.log_start_offset || offset > self.next_offset {
            return Ok(Err(ResponseError::OffsetOutOfRange));
        }
        if offset == self.next_offset {
            return Ok(Ok(Vec::new()));
        }
        let first = self
            .segments
            .partition_point(|s| s.base_offset <= offset)
            .max(1)
            - 1;
        for segment in &self.segments[first..] {
            let Some((position, h)) = segment.locate(offset)? else {
                continue;
            };
            // One read of up to `max_bytes` (at least the first batch), cut back to whole
            // batches: cheaper than reading the headers in between one by one.
            let want = (max_bytes as u64)
                .min(segment.size - position)
                .max(h.total_len() as u64);
            let mut bytes = segment.read(position, want as usize)?;
            bytes.truncate(batch::whole_batches_len(&bytes));
            return Ok(Ok(bytes));
        }
        Ok(Ok(Vec::new()))
    }

    /// Offset of the first record with a timestamp >= `timestamp`, with that batch's max
    /// timestamp; `None` if every record is older.
    pub(crate) fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<(i64, i64)>> {
        for (i, segment) in self.segments.iter().enumerate() {
            if self.segment_end(i) <= self.log_start_offset
                || segment
                    .index
                    .max_timestamp()
                    .is_none_or(|(max, _)| max < timestamp)
            {
                continue;
            }
            let from = segment
                .index
                .offset_for_timestamp(timestamp)
                .max(self.log_start_offset);
            let mut headers = segment.headers(segment.index.position_for(from));
            while let Some((position, h)) = headers.next_batch()? {
                if h.last_offset() < from || h.max_timestamp < timestamp {
                    continue;
                }
                let bytes = segment.read(position, h.total_len())?;
                let offset = batch::first_offset_at_or_after(&bytes, timestamp)
                    .unwrap_or(h.base_offset)
                    .max(self.log_start_offset);
                return Ok(Some((offset, h.max_timestamp)));
            }
        }
        Ok(None)
    }

    /// Last offset and timestamp of the earliest batch with the largest timestamp (ListOffsets
    /// -3), from the segments' indexes; only a segment that DeleteRecords cut into is scanned.
    pub(crate) fn max_timestamp_offset(&self) -> Result<Option<(i64, i64)>> {
        let mut best: Option<(i64, i64, usize)> = None;
        for (i, segment) in self.segments.iter().enumerate() {
            if self.segment_end(i) <= self.log_start_offset {
                continue;
            }
            let candidate = if segment.base_offset < self.log_start_offset {
                let mut max: Option<(i64, i64)> = None;
                if let Some((position, _)) = segment.locate(self.log_start_offset)? {
                    let mut headers = segment.headers(position);
                    while let Some((_, h)) = headers.next_batch()? {
                        if max.is_none_or(|(ts, _)| h.max_timestamp > ts) {
                            max = Some((h.max_timestamp, h.base_offset));
                        }
                    }
                }
                max
            } else {
                segment.index.max_timestamp()
            };
            if let Some((ts, offset)) = candidate {
                if best.is_none_or(|(best_ts, _, _)| ts > best_ts) {
                    best = Some((ts, offset, i));
                }
            }
        }
        let Some((ts, offset, i)) = best else {
            return Ok(None);
        };
        Ok(self.segments[i]
            .locate(offset)?
            .map(|(_, h)| (h.last_offset(), ts)))
    }

    /// Moves the log start forward to `offset` (DeleteRecords), deleting segments wholly below it.
    pub(crate) fn delete_records_before(
        &mut self,
        offset: i64,
    ) -> Result<Result<i64, ResponseError>> {
        if offset < 0 || offset > self.next_offset {
            return Ok(Err(ResponseError::OffsetOutOfRange));
        }
        if offset > self.log_start_offset {
            self.log_start_offset = offset;
            write_log_start(&self.dir, offset)?;
            self.delete_segments_below_start()?;
        }
        Ok(Ok(self.log_start_offset))
    }

    fn delete_segments_below_start(&mut self) -> Result<()> {
        if self.log_start_offset >= self.next_offset
            && self.segments.last().is_some_and(|s| s.size > 0)
        {
            self.roll()?;
        }
        while self.segments.len() > 1 {
            let next_base = self.segments[1].base_offset;
            if next_base > self.log_start_offset {
                break;
            }
            let old = self.segments.remove(0);
            remove_segment_files(&self.dir, old.base_offset)?;
        }
        Ok(())
    }

    /// Deletes the oldest closed segments while the log is over `retention_bytes` or a segment's
    /// newest record is older than `now_ms - retention_ms` (negative limits mean unlimited).
    /// Producer state is kept: a producer whose batches are all gone can still continue.
    pub(crate) fn apply_retention(
        &mut self,
        retention_ms: i64,
        retention_bytes: i64,
        now_ms: i64,
    ) -> Result<()> {
        let mut size = self.size_bytes() as i64;
        let mut new_start = self.log_start_offset;
        for (segment, next) in self.segments.iter().zip(&self.segments[1..]) {
            let newest = segment.index.max_timestamp().map_or(i64::MIN, |(ts, _)| ts);
            let too_old = retention_ms >= 0 && newest < now_ms.saturating_sub(retention_ms);
            let too_big = retention_bytes >= 0 && size > retention_bytes;
            if !(too_old || too_big) {
                break;
            }
            size -= segment.size as i64;
            new_start = new_start.max(next.base_offset);
        }
        if new_start > self.log_start_offset {
            tracing::debug!(dir = %self.dir.display(), new_start, "retention deletes segments");
            self.log_start_offset = new_start;
            write_log_start(&self.dir, new_start)?;
            self.delete_segments_below_start()?;
        }
        Ok(())
    }

    /// Makes everything written so far durable at a clean shutdown: the active segment and its
    /// indexes are fsynced and the producer state is snapshotted at the end of the log, so the
    /// next start replays nothing.
    pub(crate) fn checkpoint(&mut self) -> Result<()> {
        if let Some(active) = self.segments.last() {
            active
                .file
                .sync_data()
                .map_err(|e| Error::storage(&active.path, e))?;
            active.index.sync()?;
        }
        if self.size_bytes() == 0 && self.producers.is_empty() {
            // Nothing to replay and nothing to remember: no file for an empty partition.
            return Ok(());
        }
        self.write_producer_snapshot()
    }

    /// Rewrites closed segments keeping, per key, only the latest record (log compaction).
    /// `drop_tombstones_before` is a timestamp: tombstones in batches older than it go too.
    /// Returns how many records were removed. The active segment is never touched, and a
    /// partition is only cleaned again once new segments have closed.
    pub(crate) fn compact(&mut self, drop_tombstones_before: i64) -> Result<usize> {
        let closed = self.segments.len() - 1;
        let closed_end = self.segments[closed].base_offset;
        if closed == 0 || self.compacted_up_to >= closed_end {
            return Ok(0);
        }
        // Pass 1: the latest offset of every key, over the whole log (active segment included,
        // so a key rewritten there drops its older copies).
        let mut latest: HashMap<Vec<u8>, i64> = HashMap::new();
        for segment in &self.segments {
            let mut headers = segment.headers(0);
            while let Some((position, h)) = headers.next_batch()? {
                let bytes = segment.read(position, h.total_len())?;
                if let Some(records) = compaction::records(&bytes) {
                    for r in records {
                        if let Some(key) = r.key {
                            latest.insert(key.to_vec(), r.offset);
                        }
                    }
                }
            }
        }
        // Pass 2: rewrite each closed segment.
        let mut removed = 0;
        for i in 0..closed {
            let segment = &self.segments[i];
            let mut out = Vec::new();
            let mut kept = Vec::new();
            let mut changed = false;
            let mut headers = segment.headers(0);
            while let Some((position, h)) = headers.next_batch()? {
                let bytes = segment.read(position, h.total_len())?;
                let drop_tombstones = h.max_timestamp < drop_tombstones_before;
                let retained = compaction::retain(&bytes, |r| {
                    let newest = r.key.is_none_or(|k| latest.get(k) == Some(&r.offset));
                    newest && !(r.is_tombstone && drop_tombstones)
                });
                let batch = match retained {
                    compaction::Retained::All => Some(bytes),
                    compaction::Retained::Some(batch, dropped) => {
                        removed += dropped;
                        changed = true;
                        Some(batch)
                    }
                    compaction::Retained::None(dropped) => {
                        removed += dropped;
                        changed = true;
                        None
                    }
                };
                if let Some(batch) = batch {
                    let header = BatchHeader::parse(&batch).expect("a kept batch has a header");
                    kept.push((header, out.len() as u64));
                    out.extend_from_slice(&batch);
                }
            }
            if changed {
                let base = segment.base_offset;
                self.replace_segment(base, &out, &kept)?;
            }
        }
        self.compacted_up_to = closed_end;
        Ok(removed)
    }

    /// Replaces closed segment `base_offset` with `bytes`, holding the batches `kept` (header,
    /// position). The new segment and its indexes are written beside the old ones (`.cleaned`)
    /// and fsynced; the old indexes are deleted before the segment is renamed over, so a crash
    /// leaves the old segment or the new one, never a segment with another's indexes (missing
    /// ones are rebuilt at start).
    fn replace_segment(
        &mut self,
        base_offset: i64,
        bytes: &[u8],
        kept: &[(BatchHeader, u64)],
    ) -> Result<()> {
        let i = self
            .segments
            .iter()
            .position(|s| s.base_offset == base_offset)
            .expect("segment being compacted exists");
        let path = self.segments[i].path.clone();
        let tmp = path.with_extension(format!("log{CLEANED}"));
        let f = File::create(&tmp).map_err(|e| Error::storage(&tmp, e))?;
        f.write_all_at(bytes, 0)
            .map_err(|e| Error::storage(&tmp, e))?;
        f.sync_all().map_err(|e| Error::storage(&tmp, e))?;
        let mut index = SegmentIndex::create(
            &self.dir,
            base_offset,
            CLEANED,
            self.options.index_interval_bytes,
        )?;
        for (header, position) in kept {
            index.on_append(header, *position)?;
        }
        index.close()?;
        index::remove_index_files(&self.dir, base_offset)?;
        std::fs::rename(&tmp, &path).map_err(|e| Error::storage(&path, e))?;
        index.rename_into_place(&self.dir)?;
        sync_dir(&self.dir);
        let file = open_segment_file(&path)?;
        self.segments[i] = Segment {
            base_offset,
            path,
            file,
            size: bytes.len() as u64,
            index,
        };
        Ok(())
    }

    /// The directory this log lives in.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Base offsets of the segment files in `dir`, sorted.
fn segment_bases(dir: &Path) -> Result<Vec<i64>> {
    let mut bases: Vec<i64> = std::fs::read_dir(dir)
        .map_err(|e| Error::storage(dir, e))?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            name.strip_suffix(".log")?.parse::<i64>().ok()
        })
        .collect();
    bases.sort_unstable();
    Ok(bases)
}

/// Deletes a segment and its indexes; the segment first, so a crash in between leaves index
/// files without a segment, which the next open deletes.
fn remove_segment_files(dir: &Path, base_offset: i64) -> Result<()> {
    let path = segment_path(dir, base_offset);
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::storage(&path, e)),
    }
    index::remove_index_files(dir, base_offset)
}

/// Deletes index files whose segment is gone.
fn remove_orphan_indexes(dir: &Path, bases: &[i64]) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(|e| Error::storage(dir, e))? {
        let path = entry.map_err(|e| Error::storage(dir, e))?.path();
        let base = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| {
                n.strip_suffix(".index")
                    .or_else(|| n.strip_suffix(".timeindex"))
            })
            .and_then(|n| n.parse::<i64>().ok());
        if base.is_some_and(|b| bases.binary_search(&b).is_err()) {
            std::fs::remove_file(&path).map_err(|e| Error::storage(&path, e))?;
        }
    }
    Ok(())
}

/// Deletes what a crash interrupted: a compaction's output before its rename (`.cleaned`) and
/// atomic replacements before theirs (`.tmp`).
fn remove_leftovers(dir: &Path) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(|e| Error::storage(dir, e))? {
        let path = entry.map_err(|e| Error::storage(dir, e))?.path();
        if path
            .to_str()
            .is_some_and(|p| p.ends_with(CLEANED) || p.ends_with(".tmp"))
        {
            std::fs::remove_file(&path).map_err(|e| Error::storage(&path, e))?;
        }
    }
    Ok(())
}

/// Best effort: makes renames in `dir` durable (some filesystems refuse fsync on directories).
fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

fn read_log_start(dir: &Path) -> Result<Option<i64>> {
    let path = dir.join("log-start-offset");
    match std::fs::read_to_string(&path) {
        Ok(s) => s
            .trim()
            .parse::<i64>()
            .map(Some)
            .map_err(|e| Error::CorruptMetadata {
                path,
                reason: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::storage(path, e)),
    }
}

fn write_log_start(dir: &Path, offset: i64) -> Result<()> {
    crate::persist::write_atomically(&dir.join("log-start-offset"), offset.to_string().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::batch::tests::make_batch;
    use super::*;

    fn options() -> LogOptions {
        opts(1 << 20)
    }

    fn opts(segment_bytes: u64) -> LogOptions {
        LogOptions {
            segment_bytes,
            index_interval_bytes: DEFAULT_INDEX_INTERVAL_BYTES,
        }
    }

    #[test]
    fn append_read_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), options()).unwrap();
        let mut b1 = make_batch(3, 1000, None);
        let mut b2 = make_batch(2, 2000, None);
        assert_eq!(log.append(&mut b1, false).unwrap(), 0);
        assert_eq!(log.append(&mut b2, false).unwrap(), 3);
        assert_eq!(log.next_offset(), 5);
        // A mid-batch offset is served from the batch that holds it.
        let read = log.read(1, 1).unwrap().unwrap();
        assert_eq!(read, b1);
        let read = log.read(0, 1 << 20).unwrap().unwrap();
        assert_eq!(read.len(), b1.len() + b2.len());
        assert!(log.read(5, 100).unwrap().unwrap().is_empty());
        assert_eq!(
            log.read(6, 100).unwrap(),
            Err(ResponseError::OffsetOutOfRange)
        );
        assert_eq!(log.offset_for_timestamp(1001).unwrap(), Some((1, 1002)));
        assert_eq!(log.offset_for_timestamp(2001).unwrap(), Some((4, 2001)));
        drop(log);
        let log = PartitionLog::open(dir.path(), options()).unwrap();
        assert_eq!(log.next_offset(), 5);
        assert_eq!(log.read(3, 1).unwrap().unwrap(), b2);
    }

    #[test]
    fn torn_tail_is_truncated_to_last_whole_batch() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), options()).unwrap();
        let mut b1 = make_batch(3, 1000, None);
        log.append(&mut b1, false).unwrap();
        log.append(&mut make_batch(2, 2000, None), false).unwrap();
        drop(log);
        let seg = dir.path().join(format!("{:020}.log", 0));
        let len = std::fs::metadata(&seg).unwrap().len();
        let f = OpenOptions::new().write(true).open(&seg).unwrap();
        f.set_len(len - 5).unwrap();
        drop(f);
        let mut log = PartitionLog::open(dir.path(), options()).unwrap();
        assert_eq!(log.next_offset(), 3);
        assert_eq!(std::fs::metadata(&seg).unwrap().len(), b1.len() as u64);
        assert_eq!(
            log.append(&mut make_batch(1, 3000, None), false).unwrap(),
            3
        );
    }

    #[test]
    fn idempotent_sequences_and_duplicates_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), options()).unwrap();
        let mut b = make_batch(2, 1000, Some((7, 0, 0)));
        let h = batch::validate_batch(&b, 1 << 20).unwrap();
        assert_eq!(log.check_sequence(&h), Ok(SequenceCheck::Append));
        log.append(&mut b, false).unwrap();
        let h = BatchHeader::parse(&b).unwrap();
        assert_eq!(log.check_sequence(&h), Ok(SequenceCheck::Duplicate(0)));
        let gap = make_batch(1, 1000, Some((7, 0, 5)));
        let hg = BatchHeader::parse(&gap).unwrap();
        assert_eq!(
            log.check_sequence(&hg),
            Err(ResponseError::OutOfOrderSequenceNumber)
        );
        drop(log);
        let log = PartitionLog::open(dir.path(), options()).unwrap();
        assert_eq!(log.check_sequence(&h), Ok(SequenceCheck::Duplicate(0)));
        let next = make_batch(1, 1000, Some((7, 0, 2)));
        let hn = BatchHeader::parse(&next).unwrap();
        assert_eq!(log.check_sequence(&hn), Ok(SequenceCheck::Append));
        let mut log = log;
        log.append(&mut make_batch(1, 1000, Some((7, 1, 0))), false)
            .unwrap();
        let stale = make_batch(1, 1000, Some((7, 0, 3)));
        let hs = BatchHeader::parse(&stale).unwrap();
        assert_eq!(
            log.check_sequence(&hs),
            Err(ResponseError::InvalidProducerEpoch)
        );
    }

    #[test]
    fn compaction_keeps_the_latest_value_per_key() {
        use super::batch::tests::make_keyed_batch;
        let dir = tempfile::tempdir().unwrap();
        let opts = opts(150);
        let mut log = PartitionLog::open(dir.path(), opts).unwrap();
        let batches: Vec<Vec<(&str, Option<&str>)>> = vec![
            vec![("a", Some("1")), ("b", Some("1"))],
            vec![("a", Some("2")), ("c", Some("1"))],
            vec![("b", None), ("d", Some("1"))],
            vec![("a", Some("3"))],
            vec![("e", Some("1"))],
        ];
        for b in &batches {
            log.append(&mut make_keyed_batch(b, 1000), false).unwrap();
        }
        assert!(log.segments.len() >= 3, "rolled: {}", log.segments.len());
        let removed = log.compact(0).unwrap();
        assert_eq!(removed, 3, "a@0, b@1, a@2 are superseded");
        let mut seen = Vec::new();
        let mut offset = 0;
        while offset < log.next_offset() {
            let bytes = log.read(offset, 1 << 20).unwrap().unwrap();
            let mut pos = 0;
            while pos < bytes.len() {
                let h = BatchHeader::parse(&bytes[pos..]).unwrap();
                let batch_bytes = &bytes[pos..pos + h.total_len()];
                assert_eq!(crc32c::crc32c(&batch_bytes[21..]), h.crc);
                for r in compaction::records(batch_bytes).unwrap() {
                    if r.offset >= offset {
                        seen.push((
                            String::from_utf8(r.key.unwrap().to_vec()).unwrap(),
                            r.offset,
                        ));
                    }
                }
                offset = h.last_offset() + 1;
                pos += h.total_len();
            }
        }
        let keys: Vec<(&str, i64)> = seen.iter().map(|(k, o)| (k.as_str(), *o)).collect();
        assert_eq!(keys, vec![("c", 3), ("b", 4), ("d", 5), ("a", 6), ("e", 7)]);
        // Tombstones older than the horizon go on the next pass over newly closed segments.
        drop(log);
        let mut log = PartitionLog::open(dir.path(), opts).unwrap();
        assert_eq!(
            log.next_offset(),
            8,
            "offsets survive compaction and reopen"
        );
        assert_eq!(log.compact(i64::MAX).unwrap(), 1, "the tombstone for b");
    }

    #[test]
    fn retention_by_size_and_time_deletes_oldest_closed_segments() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), opts(200)).unwrap();
        for i in 0..10 {
            log.append(&mut make_batch(2, 1000 + i, None), false)
                .unwrap();
        }
        let segments = log.segments.len();
        let size = log.size_bytes() as i64;
        // Unlimited: nothing happens.
        log.apply_retention(-1, -1, 10_000).unwrap();
        assert_eq!(log.segments.len(), segments);
        // By size: drop closed segments until under the limit; the active one always stays.
        log.apply_retention(-1, size / 2, 10_000).unwrap();
        assert!(log.size_bytes() as i64 <= size / 2 + 200);
        assert!(log.log_start_offset() > 0);
        let start = log.log_start_offset();
        assert_eq!(
            log.read(start - 1, 1).unwrap(),
            Err(ResponseError::OffsetOutOfRange)
        );
        // By time: everything older than now - 1s goes, except the active segment.
        log.apply_retention(1000, -1, 1_000_000).unwrap();
        assert_eq!(log.segments.len(), 1);
        assert_eq!(log.next_offset(), 20);
    }

    #[test]
    fn segments_roll_and_delete_records_drops_old_segments() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), opts(200)).unwrap();
        for i in 0..10 {
            log.append(&mut make_batch(2, 1000 + i, None), false)
                .unwrap();
        }
        assert!(log.segments.len() > 2);
        let before = log.segments.len();
        assert_eq!(log.delete_records_before(11).unwrap(), Ok(11));
        assert!(log.segments.len() < before);
        assert_eq!(
            log.read(10, 1).unwrap(),
            Err(ResponseError::OffsetOutOfRange)
        );
        assert!(!log.read(11, 1).unwrap().unwrap().is_empty());
        drop(log);
        let log = PartitionLog::open(dir.path(), opts(200)).unwrap();
        assert_eq!(log.log_start_offset(), 11);
        assert_eq!(log.next_offset(), 20);
    }

    /// Small segments with many index entries: 2-record batches are about 110 bytes.
    fn indexed() -> LogOptions {
        LogOptions {
            segment_bytes: 1500,
            index_interval_bytes: 200,
        }
    }

    /// Appends `n` batches of 2 records, batch `i` with timestamps `1000 + 10i` and one more;
    /// returns each batch as stored.
    fn fill(log: &mut PartitionLog, n: usize) -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| {
                let mut b = make_batch(2, 1000 + 10 * i as i64, None);
                log.append(&mut b, false).unwrap();
                b
            })
            .collect()
    }

    /// Every index file of the partition, by name.
    fn index_files(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.extension()
                    .is_some_and(|e| e == "index" || e == "timeindex")
            })
            .map(|p| {
                (
                    p.file_name().unwrap().to_string_lossy().into_owned(),
                    std::fs::read(&p).unwrap(),
                )
            })
            .collect()
    }

    type Answers = (Vec<Vec<u8>>, Vec<Option<(i64, i64)>>);

    /// What the log answers: a one-record read of every offset, and timestamp lookups.
    fn answers(log: &PartitionLog) -> Answers {
        let reads = (log.log_start_offset()..log.next_offset())
            .map(|o| log.read(o, 1).unwrap().unwrap())
            .collect();
        let times = (990..1300)
            .step_by(7)
            .map(|ts| log.offset_for_timestamp(ts).unwrap())
            .collect();
        (reads, times)
    }

    fn segment_file(dir: &Path, base: i64) -> PathBuf {
        segment_path(dir, base)
    }

    #[test]
    fn index_files_are_written_sparse_and_closed_with_the_segment() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), indexed()).unwrap();
        let batches = fill(&mut log, 40);
        let bases: Vec<i64> = log.segments.iter().map(|s| s.base_offset).collect();
        assert!(bases.len() >= 3, "rolled: {bases:?}");
        let files = index_files(dir.path());
        for (i, segment) in log.segments.iter().enumerate() {
            let index = &files[&format!("{:020}.index", segment.base_offset)];
            let time = &files[&format!("{:020}.timeindex", segment.base_offset)];
            let entries = index.len() / index::OFFSET_ENTRY_LEN;
            assert_eq!(index.len() % index::OFFSET_ENTRY_LEN, 0);
            assert_eq!(entries, segment.index.len());
            // Sparse: about one entry per 200 bytes, far fewer than batches.
            let batches_in_segment = (segment.size / batches[0].len() as u64) as usize;
            assert!(entries >= 1 && entries < batches_in_segment, "{entries}");
            let time_entries = time.len() / index::TIME_ENTRY_LEN;
            if i + 1 < log.segments.len() {
                // A closed segment's time index ends with its largest timestamp, added at the
                // roll unless the last pair had it already.
                assert!(time_entries == entries || time_entries == entries + 1);
                let last = &time[time.len() - index::TIME_ENTRY_LEN..];
                let ts = i64::from_be_bytes(last[..8].try_into().unwrap());
                assert_eq!(Some(ts), segment.index.max_timestamp().map(|m| m.0));
                let newest_batch = (log.segments[i + 1].base_offset - 2) / 2;
                assert_eq!(ts, 1000 + 10 * newest_batch + 1);
            } else {
                assert_eq!(time_entries, entries);
            }
        }
        // Every batch is found through the index: reads return exactly the stored batches.
        let mut offset = 0;
        for b in &batches {
            assert_eq!(&log.read(offset + 1, 1).unwrap().unwrap(), b);
            offset += 2;
        }
        assert_eq!(log.offset_for_timestamp(1001).unwrap(), Some((1, 1001)));
        assert_eq!(log.offset_for_timestamp(1002).unwrap(), Some((2, 1011)));
        assert_eq!(log.offset_for_timestamp(1391).unwrap(), Some((79, 1391)));
        assert_eq!(log.offset_for_timestamp(1392).unwrap(), None);
        assert_eq!(log.max_timestamp_offset().unwrap(), Some((79, 1391)));
        // Deleting segments deletes their indexes.
        log.delete_records_before(bases[2]).unwrap().unwrap();
        let files = index_files(dir.path());
        assert!(!files.contains_key(&format!("{:020}.index", bases[0])));
        assert!(!files.contains_key(&format!("{:020}.timeindex", bases[1])));
        assert!(files.contains_key(&format!("{:020}.index", bases[2])));
    }

    #[test]
    fn closed_segments_are_not_read_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), indexed()).unwrap();
        let batches = fill(&mut log, 40);
        let second = log.segments[1].base_offset;
        drop(log);
        // Damage a batch header in the middle of the first segment. A scan at open would stop
        // there and cut the log; with trusted indexes the segment is not even read.
        let first = segment_file(dir.path(), 0);
        let len = std::fs::metadata(&first).unwrap().len();
        let f = OpenOptions::new().write(true).open(&first).unwrap();
        f.write_all_at(&[9], batches[0].len() as u64 * 3 + 16)
            .unwrap();
        drop(f);
        let log = PartitionLog::open(dir.path(), indexed()).unwrap();
        assert_eq!(std::fs::metadata(&first).unwrap().len(), len);
        assert_eq!(log.next_offset(), 80);
        assert!(log.read(6, 1).is_err(), "the damage shows where it is read");
        assert_eq!(
            log.read(second, 1).unwrap().unwrap().len(),
            batches[0].len()
        );
    }

    #[test]
    fn missing_or_damaged_index_files_are_rebuilt_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), indexed()).unwrap();
        fill(&mut log, 40);
        let bases: Vec<i64> = log.segments.iter().map(|s| s.base_offset).collect();
        let expected_answers = answers(&log);
        let max = log.max_timestamp_offset().unwrap();
        drop(log);
        let expected_files = index_files(dir.path());
        type Damage<'a> = (&'static str, Box<dyn Fn(&Path) + 'a>);
        let damages: Vec<Damage<'_>> = vec![
            (
                "all deleted",
                Box::new(|d: &Path| {
                    for name in index_files(d).keys() {
                        std::fs::remove_file(d.join(name)).unwrap();
                    }
                }),
            ),
            (
                "partial entry",
                Box::new(|d: &Path| {
                    let p = d.join(format!("{:020}.index", bases[0]));
                    let f = OpenOptions::new().write(true).open(&p).unwrap();
                    f.set_len(f.metadata().unwrap().len() - 3).unwrap();
                }),
            ),
            (
                "time index emptied",
                Box::new(|d: &Path| {
                    std::fs::write(d.join(format!("{:020}.timeindex", bases[1])), b"").unwrap();
                }),
            ),
            (
                "garbage entries",
                Box::new(|d: &Path| {
                    let p = d.join(format!("{:020}.index", bases[1]));
                    let len = std::fs::metadata(&p).unwrap().len() as usize;
                    std::fs::write(&p, vec![0x5a; len]).unwrap();
                    let p = d.join(format!("{:020}.timeindex", bases[0]));
                    let len = std::fs::metadata(&p).unwrap().len() as usize;
                    std::fs::write(&p, vec![0xa5; len]).unwrap();
                }),
            ),
            (
                "entry pointing at the wrong batch",
                Box::new(|d: &Path| {
                    let p = d.join(format!("{:020}.index", bases[0]));
                    let mut bytes = std::fs::read(&p).unwrap();
                    let last = bytes.len() - 1;
                    bytes[last] = bytes[last].wrapping_add(1);
                    std::fs::write(&p, bytes).unwrap();
                }),
            ),
            (
                "active segment's indexes deleted",
                Box::new(|d: &Path| {
                    let last = bases.last().unwrap();
                    std::fs::remove_file(d.join(format!("{last:020}.index"))).unwrap();
                    std::fs::remove_file(d.join(format!("{last:020}.timeindex"))).unwrap();
                }),
            ),
        ];
        for (what, damage) in damages {
            damage(dir.path());
            let log = PartitionLog::open(dir.path(), indexed()).unwrap();
            assert_eq!(index_files(dir.path()), expected_files, "{what}");
            assert_eq!(answers(&log), expected_answers, "{what}");
            assert_eq!(log.max_timestamp_offset().unwrap(), max, "{what}");
        }
    }

    #[test]
    fn torn_tail_recovery_keeps_the_index_consistent() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), indexed()).unwrap();
        let batches = fill(&mut log, 44);
        let active = log.segments.last().unwrap().base_offset;
        assert!(log.segments.last().unwrap().index.len() >= 2);
        drop(log);
        // Cut the last batch in half, as a crash during its write would.
        let seg = segment_file(dir.path(), active);
        let len = std::fs::metadata(&seg).unwrap().len();
        let last_len = batches.last().unwrap().len() as u64;
        OpenOptions::new()
            .write(true)
            .open(&seg)
            .unwrap()
            .set_len(len - last_len / 2)
            .unwrap();
        let mut log = PartitionLog::open(dir.path(), indexed()).unwrap();
        assert_eq!(std::fs::metadata(&seg).unwrap().len(), len - last_len);
        assert_eq!(log.next_offset(), 86);
        let recovered = (index_files(dir.path()), answers(&log));
        // The same content appended from scratch gives the same index files and answers.
        let fresh = tempfile::tempdir().unwrap();
        let mut reference = PartitionLog::open(fresh.path(), indexed()).unwrap();
        fill(&mut reference, 43);
        assert_eq!(recovered, (index_files(fresh.path()), answers(&reference)));
        // And appends continue from there, indexed.
        assert_eq!(
            log.append(&mut make_batch(2, 5000, None), false).unwrap(),
            86
        );
        assert_eq!(log.offset_for_timestamp(5000).unwrap(), Some((86, 5001)));
        // A torn tail ahead of the last index entry: cut into the batch an entry points at.
        drop(log);
        let log = PartitionLog::open(dir.path(), indexed()).unwrap();
        let segment = log.segments.last().unwrap();
        let last_entry = segment.index.position_for(i64::MAX);
        assert!(last_entry > 0);
        drop(log);
        OpenOptions::new()
            .write(true)
            .open(&seg)
            .unwrap()
            .set_len(last_entry + 10)
            .unwrap();
        let log = PartitionLog::open(dir.path(), indexed()).unwrap();
        assert_eq!(std::fs::metadata(&seg).unwrap().len(), last_entry);
        let segment = log.segments.last().unwrap();
        assert!(segment.index.position_for(i64::MAX) < last_entry);
        assert_eq!(
            log.read(log.next_offset() - 1, 1).unwrap().unwrap().len(),
            batches[0].len()
        );
    }

    #[test]
    fn timestamp_lookups_are_the_same_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), indexed()).unwrap();
        // Timestamps that go back and forth, as producers' create times may.
        for i in 0..40i64 {
            let ts = 1000 + 10 * i + if i % 3 == 0 { 200 } else { 0 };
            log.append(&mut make_batch(2, ts, None), false).unwrap();
        }
        let before = answers(&log);
        let max = log.max_timestamp_offset().unwrap();
        // The answers agree with a plain scan of every batch.
        for (k, ts) in (990..1300).step_by(7).enumerate() {
            let expected = (0..40i64)
                .map(|i| (i, 1000 + 10 * i + if i % 3 == 0 { 200 } else { 0 }))
                .find(|(_, t)| t + 1 >= ts)
                .map(|(i, t)| (2 * i + i64::from(t < ts), t + 1));
            assert_eq!(before.1[k], expected, "ts {ts}");
        }
        assert_eq!(max, Some((79, 1591)));
        drop(log);
        let log = PartitionLog::open(dir.path(), indexed()).unwrap();
        assert_eq!(answers(&log), before);
        assert_eq!(log.max_timestamp_offset().unwrap(), max);
    }

    #[test]
    fn producer_state_survives_deletion_of_its_batches_and_a_crash() {
        for how in ["delete-records", "retention"] {
            let dir = tempfile::tempdir().unwrap();
            let mut log = PartitionLog::open(dir.path(), indexed()).unwrap();
            for seq in [0, 2, 4] {
                log.append(&mut make_batch(2, 1000, Some((7, 0, seq))), false)
                    .unwrap();
            }
            // Other writers fill segments after the producer's, so all of its batches can go.
            fill(&mut log, 30);
            match how {
                "delete-records" => {
                    log.delete_records_before(log.next_offset())
                        .unwrap()
                        .unwrap();
                }
                _ => log.apply_retention(1000, -1, 1_000_000).unwrap(),
            }
            assert!(log.log_start_offset() > 6, "{how}");
            assert_eq!(
                log.read(0, 1).unwrap(),
                Err(ResponseError::OffsetOutOfRange)
            );
            // No checkpoint: dropped as in a crash; the snapshot taken at the last roll holds.
            drop(log);
            let log = PartitionLog::open(dir.path(), indexed()).unwrap();
            let next = make_batch(1, 1000, Some((7, 0, 6)));
            let h = BatchHeader::parse(&next).unwrap();
            assert_eq!(log.check_sequence(&h), Ok(SequenceCheck::Append), "{how}");
            let retry = make_batch(2, 1000, Some((7, 0, 4)));
            let h = BatchHeader::parse(&retry).unwrap();
            assert_eq!(
                log.check_sequence(&h),
                Ok(SequenceCheck::Duplicate(4)),
                "{how}: a retry still gets its original offset"
            );
            // Without snapshots, only the log is left to learn from: the producer is unknown.
            drop(log);
            for e in std::fs::read_dir(dir.path()).unwrap() {
                let p = e.unwrap().path();
                if p.extension().is_some_and(|e| e == "snapshot") {
                    std::fs::remove_file(p).unwrap();
                }
            }
            let log = PartitionLog::open(dir.path(), indexed()).unwrap();
            let h = BatchHeader::parse(&next).unwrap();
            assert_eq!(
                log.check_sequence(&h),
                Err(ResponseError::UnknownProducerId),
                "{how}"
            );
        }
    }

    #[test]
    fn producer_state_replays_the_log_after_its_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), indexed()).unwrap();
        let mut seq = 0;
        for _ in 0..20 {
            log.append(&mut make_batch(2, 1000, Some((7, 0, seq))), false)
                .unwrap();
            seq += 2;
        }
        assert!(log.segments.len() >= 2);
        let snapshot = log.snapshot_offset.unwrap();
        assert!(snapshot > 0 && snapshot < log.next_offset());
        // Crash: the state after the snapshot comes from the active segment.
        drop(log);
        let mut log = PartitionLog::open(dir.path(), indexed()).unwrap();
        let next = make_batch(1, 1000, Some((7, 0, seq)));
        assert_eq!(
            log.check_sequence(&BatchHeader::parse(&next).unwrap()),
            Ok(SequenceCheck::Append)
        );
        // A clean shutdown snapshots the end of the log: nothing to replay next time.
        log.checkpoint().unwrap();
        assert_eq!(log.snapshot_offset, Some(log.next_offset()));
        drop(log);
        let log = PartitionLog::open(dir.path(), indexed()).unwrap();
        assert_eq!(log.snapshot_offset, Some(log.next_offset()));
        assert_eq!(
            log.check_sequence(&BatchHeader::parse(&next).unwrap()),
            Ok(SequenceCheck::Append)
        );
        // A torn newest snapshot is ignored: the older one plus the log give the same state.
        drop(log);
        let newest = dir.path().join(format!("{:020}.snapshot", 40));
        let bytes = std::fs::read(&newest).unwrap();
        std::fs::write(&newest, &bytes[..bytes.len() / 2]).unwrap();
        let log = PartitionLog::open(dir.path(), indexed()).unwrap();
        assert_eq!(log.snapshot_offset, Some(snapshot));
        assert_eq!(
            log.check_sequence(&BatchHeader::parse(&next).unwrap()),
            Ok(SequenceCheck::Append)
        );
        let stale = make_batch(1, 1000, Some((7, 0, seq - 2)));
        assert_eq!(
            log.check_sequence(&BatchHeader::parse(&stale).unwrap()),
            Err(ResponseError::OutOfOrderSequenceNumber)
        );
    }

    #[test]
    fn an_empty_partition_checkpoints_without_a_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), indexed()).unwrap();
        log.checkpoint().unwrap();
        assert_eq!(log.snapshot_offset, None);
        fill(&mut log, 1);
        log.checkpoint().unwrap();
        assert_eq!(log.snapshot_offset, Some(2));
        assert!(dir.path().join(format!("{:020}.snapshot", 2)).exists());
    }

    #[test]
    fn compaction_rewrites_indexes_with_the_segment() {
        use super::batch::tests::make_keyed_batch;
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), indexed()).unwrap();
        let keys = ["a", "b", "c", "d"];
        for i in 0..40 {
            let value = i.to_string();
            let batch = [(keys[i % 4], Some(value.as_str()))];
            log.append(&mut make_keyed_batch(&batch, 1000 + i as i64), false)
                .unwrap();
        }
        assert!(log.compact(0).unwrap() > 0);
        let after = answers(&log);
        let files = index_files(dir.path());
        assert!(!std::fs::read_dir(dir.path()).unwrap().any(|e| e
            .unwrap()
            .path()
            .to_string_lossy()
            .ends_with(CLEANED)));
        // The rewritten indexes are what a rebuild from the new segments gives.
        drop(log);
        for name in files.keys() {
            std::fs::remove_file(dir.path().join(name)).unwrap();
        }
        let log = PartitionLog::open(dir.path(), indexed()).unwrap();
        assert_eq!(index_files(dir.path()), files);
        assert_eq!(answers(&log), after);
    }
}
