//! Sparse per-segment indexes kept on disk, as Kafka keeps them: [`SegmentIndex`] owns one
//! segment's offset index and time index, adds entries as batches are appended, and tells
//! lookups where in the segment file a forward scan of batch headers should start.
//!
//! Files, beside `NNNNNNNNNNNNNNNNNNNN.log` and named by the same base offset; fixed-size
//! big-endian entries and no header, Kafka's layout:
//! - `.index`, 8 bytes per entry: offset relative to the segment's base (u32) and position (u32)
//!   of a batch that starts there (Kafka records the batch's last offset; the base offset lets a
//!   lookup for an offset inside that batch start right at it).
//! - `.timeindex`, 12 bytes per entry: the largest timestamp of the segment up to and including
//!   that batch (i64), and the relative offset (u32) of the batch where that timestamp was first
//!   reached. Every batch before that one holds only older records, so a timestamp lookup may
//!   start there.
//!
//! Both files get an entry, together, at the first batch appended after more than
//! `index.interval.bytes` since the previous entry, so entry `i` of one file was written with
//! entry `i` of the other: recovery of the active segment resumes from the last such pair. When
//! a segment is closed, the time index gets one more entry with the segment's largest timestamp,
//! so a closed segment's newest timestamp is known without reading the segment.
//!
//! Entries are written through to the files as they are made and fsynced when the segment is
//! closed and at clean shutdown. A closed segment's indexes are trusted at start if they pass
//! cheap checks ([`SegmentIndex::load_closed`]); the active segment's are cut back to their last
//! pair that points at an intact batch ([`SegmentIndex::load_active`]) and completed by scanning
//! the segment from there.

use super::batch::BatchHeader;
use crate::error::{Error, Result};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Bytes per `.index` entry.
pub(crate) const OFFSET_ENTRY_LEN: usize = 8;
/// Bytes per `.timeindex` entry.
pub(crate) const TIME_ENTRY_LEN: usize = 12;

/// One `.index` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct OffsetEntry {
    relative_offset: u32,
    position: u32,
}

/// One `.timeindex` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TimeEntry {
    timestamp: i64,
    relative_offset: u32,
}

/// Paths of a segment's offset and time index; `suffix` is empty, or `.cleaned` for the output
/// of a compaction that has not replaced the segment yet.
pub(crate) fn index_paths(dir: &Path, base_offset: i64, suffix: &str) -> (PathBuf, PathBuf) {
    (
        dir.join(format!("{base_offset:020}.index{suffix}")),
        dir.join(format!("{base_offset:020}.timeindex{suffix}")),
    )
}

/// Deletes a segment's index files, if there are any.
pub(crate) fn remove_index_files(dir: &Path, base_offset: i64) -> Result<()> {
    let (offsets, times) = index_paths(dir, base_offset, "");
    for path in [offsets, times] {
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::storage(&path, e)),
        }
    }
    Ok(())
}

/// The offset and time index of one segment, in memory and in their files.
#[derive(Debug)]
pub(crate) struct SegmentIndex {
    base_offset: i64,
    /// `index.interval.bytes`: how many bytes of batches may go by without an entry.
    interval: u64,
    offset_path: PathBuf,
    time_path: PathBuf,
    offset_file: File,
    time_file: File,
    offsets: Vec<OffsetEntry>,
    times: Vec<TimeEntry>,
    /// Bytes of batches appended since the last entry; an entry is due once this passes
    /// `interval`.
    bytes_since_entry: u64,
    /// Largest timestamp so far, with the base offset of the batch where it was first reached.
    max_timestamp: Option<(i64, i64)>,
}

impl SegmentIndex {
    /// Creates empty index files for a new segment (or a compaction's output), replacing any
    /// stale files of the same name.
    pub(crate) fn create(
        dir: &Path,
        base_offset: i64,
        suffix: &str,
        interval: u64,
    ) -> Result<SegmentIndex> {
        let (offset_path, time_path) = index_paths(dir, base_offset, suffix);
        let offset_file = open_index_file(&offset_path, true)?;
        let time_file = open_index_file(&time_path, true)?;
        Ok(SegmentIndex {
            base_offset,
            interval,
            offset_path,
            time_path,
            offset_file,
            time_file,
            offsets: Vec::new(),
            times: Vec::new(),
            bytes_since_entry: 0,
            max_timestamp: None,
        })
    }

    /// Loads the indexes of a closed segment, `None` (to be rebuilt from the segment) if a file
    /// is missing or fails a check: whole entries only, offsets and positions increasing,
    /// timestamps not decreasing, the time index as long as the offset index or one entry
    /// longer, the last offset entry pointing at a batch header with that base offset
    /// (`header_at` reads one), and every offset below `end_offset`, the next segment's base.
    pub(crate) fn load_closed(
        dir: &Path,
        base_offset: i64,
        interval: u64,
        segment_len: u64,
        end_offset: i64,
        mut header_at: impl FnMut(u64) -> Result<Option<BatchHeader>>,
    ) -> Result<Option<SegmentIndex>> {
        let (offset_path, time_path) = index_paths(dir, base_offset, "");
        let (Some(offset_bytes), Some(time_bytes)) =
            (read_file(&offset_path)?, read_file(&time_path)?)
        else {
            tracing::info!(segment_base = base_offset, dir = %dir.display(), "index files missing, rebuilding");
            return Ok(None);
        };
        let offsets = parse_offsets(&offset_bytes);
        let times = parse_times(&time_bytes);
        let whole =
            offset_bytes.len() % OFFSET_ENTRY_LEN == 0 && time_bytes.len() % TIME_ENTRY_LEN == 0;
        let problem = if whole {
            check_closed(
                &offsets,
                &times,
                base_offset,
                segment_len,
                end_offset,
                &mut header_at,
            )
        } else {
            Err("partial entry".to_string())
        };
        if let Err(problem) = problem {
            tracing::warn!(segment_base = base_offset, dir = %dir.display(), %problem, "index files unusable, rebuilding");
            return Ok(None);
        }
        let max_timestamp = times
            .last()
            .map(|t| (t.timestamp, base_offset + i64::from(t.relative_offset)));
        Ok(Some(SegmentIndex {
            base_offset,
            interval,
            offset_file: open_index_file(&offset_path, false)?,
            time_file: open_index_file(&time_path, false)?,
            offset_path,
            time_path,
            offsets,
            times,
            bytes_since_entry: 0,
            max_timestamp,
        }))
    }

    /// Loads the indexes of the active segment for recovery: keeps the longest prefix of entry
    /// pairs that is well formed and whose last offset entry points at an intact batch
    /// (`intact_batch_at(position, base_offset)`, which checks the CRC), cuts both files to it,
    /// and returns the index with the position from which the segment must be scanned. Scanning
    /// from there with [`SegmentIndex::on_append`] for every batch (the one at that position
    /// included) brings the index back to what appending produced.
    pub(crate) fn load_active(
        dir: &Path,
        base_offset: i64,
        interval: u64,
        segment_len: u64,
        mut intact_batch_at: impl FnMut(u64, i64) -> Result<bool>,
    ) -> Result<(SegmentIndex, u64)> {
        let (offset_path, time_path) = index_paths(dir, base_offset, "");
        let offset_bytes = read_file(&offset_path)?.unwrap_or_default();
        let time_bytes = read_file(&time_path)?.unwrap_or_default();
        let mut offsets = parse_offsets(&offset_bytes);
        let mut times = parse_times(&time_bytes);
        let pairs = offsets.len().min(times.len());
        offsets.truncate(pairs);
        times.truncate(pairs);
        let mut keep = well_formed_prefix(&offsets, &times, segment_len);
        while keep > 0 {
            let last = offsets[keep - 1];
            let base = base_offset + i64::from(last.relative_offset);
            if intact_batch_at(u64::from(last.position), base)? {
                break;
            }
            keep -= 1;
        }
        if keep < offset_bytes.len() / OFFSET_ENTRY_LEN || keep < time_bytes.len() / TIME_ENTRY_LEN
        {
            tracing::debug!(segment_base = base_offset, dir = %dir.display(), kept = keep, "cutting the active segment's indexes back");
        }
        offsets.truncate(keep);
        times.truncate(keep);
        let offset_file = open_index_file(&offset_path, false)?;
        let time_file = open_index_file(&time_path, false)?;
        offset_file
            .set_len((keep * OFFSET_ENTRY_LEN) as u64)
            .map_err(|e| Error::storage(&offset_path, e))?;
        time_file
            .set_len((keep * TIME_ENTRY_LEN) as u64)
            .map_err(|e| Error::storage(&time_path, e))?;
        let resume = offsets.last().map_or(0, |e| u64::from(e.position));
        let max_timestamp = times
            .last()
            .map(|t| (t.timestamp, base_offset + i64::from(t.relative_offset)));
        Ok((
            SegmentIndex {
                base_offset,
                interval,
                offset_path,
                time_path,
                offset_file,
                time_file,
                offsets,
                times,
                bytes_since_entry: 0,
                max_timestamp,
            },
            resume,
        ))
    }

    /// Accounts for a batch written at `position` (its header patched with its offsets), adding
    /// an entry pair if one is due. Nothing changes in memory unless the files were written.
    pub(crate) fn on_append(&mut self, header: &BatchHeader, position: u64) -> Result<()> {
        let max_timestamp = match self.max_timestamp {
            Some((max, _)) if header.max_timestamp <= max => self.max_timestamp,
            _ => Some((header.max_timestamp, header.base_offset)),
        };
        if self.bytes_since_entry > self.interval {
            let (timestamp, at) = max_timestamp.expect("set above");
            let offset_entry = OffsetEntry {
                relative_offset: self.relative(header.base_offset),
                position: u32::try_from(position).expect("segments stay below 2 GiB"),
            };
            let time_entry = TimeEntry {
                timestamp,
                relative_offset: self.relative(at),
            };
            self.write_offset_entry(offset_entry)?;
            self.write_time_entry(time_entry)?;
            self.offsets.push(offset_entry);
            self.times.push(time_entry);
            self.bytes_since_entry = 0;
        }
        self.max_timestamp = max_timestamp;
        self.bytes_since_entry += header.total_len() as u64;
        Ok(())
    }

    /// Marks the segment closed: a last time entry with its largest timestamp (if the index does
    /// not end with it already), then both files are fsynced. Calling it again changes nothing.
    pub(crate) fn close(&mut self) -> Result<()> {
        if let Some((timestamp, at)) = self.max_timestamp {
            let entry = TimeEntry {
                timestamp,
                relative_offset: self.relative(at),
            };
            if self.times.last() != Some(&entry) {
                self.write_time_entry(entry)?;
                self.times.push(entry);
            }
        }
        self.sync()
    }

    /// Forces both files to disk.
    pub(crate) fn sync(&self) -> Result<()> {
        self.offset_file
            .sync_all()
            .map_err(|e| Error::storage(&self.offset_path, e))?;
        self.time_file
            .sync_all()
            .map_err(|e| Error::storage(&self.time_path, e))
    }

    /// Position from which to scan for the batch holding `offset`: that of the last entry at or
    /// below it, or the start of the segment.
    pub(crate) fn position_for(&self, offset: i64) -> u64 {
        let relative = offset.saturating_sub(self.base_offset);
        let i = self
            .offsets
            .partition_point(|e| i64::from(e.relative_offset) <= relative);
        i.checked_sub(1)
            .map_or(0, |i| u64::from(self.offsets[i].position))
    }

    /// An offset before which every record of the segment is older than `timestamp`: that of
    /// the last time entry at or below it, or the segment's base.
    pub(crate) fn offset_for_timestamp(&self, timestamp: i64) -> i64 {
        let i = self.times.partition_point(|e| e.timestamp <= timestamp);
        i.checked_sub(1).map_or(self.base_offset, |i| {
            self.base_offset + i64::from(self.times[i].relative_offset)
        })
    }

    /// The segment's largest timestamp and the base offset of the batch where it was first
    /// reached; `None` for a segment without batches.
    pub(crate) fn max_timestamp(&self) -> Option<(i64, i64)> {
        self.max_timestamp
    }

    /// Number of entries of the offset index.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.offsets.len()
    }

    /// Moves a compaction's output files (`.cleaned`) to the segment's own index names.
    pub(crate) fn rename_into_place(&mut self, dir: &Path) -> Result<()> {
        let (offset_path, time_path) = index_paths(dir, self.base_offset, "");
        std::fs::rename(&self.offset_path, &offset_path)
            .map_err(|e| Error::storage(&offset_path, e))?;
        std::fs::rename(&self.time_path, &time_path).map_err(|e| Error::storage(&time_path, e))?;
        self.offset_path = offset_path;
        self.time_path = time_path;
        Ok(())
    }

    fn relative(&self, offset: i64) -> u32 {
        u32::try_from(offset - self.base_offset).expect("segments roll before 2^31 offsets")
    }

    fn write_offset_entry(&self, e: OffsetEntry) -> Result<()> {
        let mut b = [0u8; OFFSET_ENTRY_LEN];
        b[..4].copy_from_slice(&e.relative_offset.to_be_bytes());
        b[4..].copy_from_slice(&e.position.to_be_bytes());
        self.offset_file
            .write_all_at(&b, (self.offsets.len() * OFFSET_ENTRY_LEN) as u64)
            .map_err(|err| Error::storage(&self.offset_path, err))
    }

    fn write_time_entry(&self, e: TimeEntry) -> Result<()> {
        let mut b = [0u8; TIME_ENTRY_LEN];
        b[..8].copy_from_slice(&e.timestamp.to_be_bytes());
        b[8..].copy_from_slice(&e.relative_offset.to_be_bytes());
        self.time_file
            .write_all_at(&b, (self.times.len() * TIME_ENTRY_LEN) as u64)
            .map_err(|err| Error::storage(&self.time_path, err))
    }
}

fn open_index_file(path: &Path, truncate: bool) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(truncate)
        .open(path)
        .map_err(|e| Error::storage(path, e))
}

/// A file's bytes, `None` if it does not exist.
fn read_file(path: &Path) -> Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::storage(path, e)),
    }
}

/// The whole entries of an `.index` file (a torn last entry is left out).
fn parse_offsets(bytes: &[u8]) -> Vec<OffsetEntry> {
    bytes
        .chunks_exact(OFFSET_ENTRY_LEN)
        .map(|c| OffsetEntry {
            relative_offset: u32::from_be_bytes([c[0], c[1], c[2], c[3]]),
            position: u32::from_be_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect()
}

/// The whole entries of a `.timeindex` file (a torn last entry is left out).
fn parse_times(bytes: &[u8]) -> Vec<TimeEntry> {
    bytes
        .chunks_exact(TIME_ENTRY_LEN)
        .map(|c| {
            let mut ts = [0u8; 8];
            ts.copy_from_slice(&c[..8]);
            TimeEntry {
                timestamp: i64::from_be_bytes(ts),
                relative_offset: u32::from_be_bytes([c[8], c[9], c[10], c[11]]),
            }
        })
        .collect()
}

/// The checks [`SegmentIndex::load_closed`] makes, with what failed.
fn check_closed(
    offsets: &[OffsetEntry],
    times: &[TimeEntry],
    base_offset: i64,
    segment_len: u64,
    end_offset: i64,
    header_at: &mut impl FnMut(u64) -> Result<Option<BatchHeader>>,
) -> Result<(), String> {
    if !(times.len() == offsets.len() || times.len() == offsets.len() + 1) {
        return Err(format!(
            "{} offset entries but {} time entries",
            offsets.len(),
            times.len()
        ));
    }
    if well_formed_prefix(offsets, times, segment_len) != offsets.len()
        || times
            .windows(2)
            .any(|w| w[1].timestamp < w[0].timestamp || w[1].relative_offset < w[0].relative_offset)
    {
        return Err("entries out of order or beyond the segment file".to_string());
    }
    let end_relative = end_offset - base_offset;
    let beyond = |relative: u32| i64::from(relative) >= end_relative;
    if offsets.last().is_some_and(|e| beyond(e.relative_offset))
        || times.last().is_some_and(|e| beyond(e.relative_offset))
    {
        return Err(format!(
            "entries beyond the segment's end offset {end_offset}"
        ));
    }
    if let Some(last) = offsets.last() {
        let expected = base_offset + i64::from(last.relative_offset);
        match header_at(u64::from(last.position)) {
            Ok(Some(h)) if h.base_offset == expected => {}
            Ok(_) => {
                return Err(format!(
                    "last entry does not point at the batch of offset {expected}"
                ))
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(())
}

/// How many leading entry pairs are consistent: offsets and positions strictly increasing,
/// positions inside the segment, timestamps not decreasing, and each time entry's offset at or
/// before the batch its pair was written at. Time entries past the pairs are not looked at.
fn well_formed_prefix(offsets: &[OffsetEntry], times: &[TimeEntry], segment_len: u64) -> usize {
    let mut previous: Option<(OffsetEntry, TimeEntry)> = None;
    for (i, (o, t)) in offsets.iter().zip(times).enumerate() {
        let ordered = previous.is_none_or(|(po, pt)| {
            o.relative_offset > po.relative_offset
                && o.position > po.position
                && t.timestamp >= pt.timestamp
                && t.relative_offset >= pt.relative_offset
        });
        if !ordered || u64::from(o.position) >= segment_len || t.relative_offset > o.relative_offset
        {
            return i;
        }
        previous = Some((*o, *t));
    }
    offsets.len().min(times.len())
}

#[cfg(test)]
mod tests {
    use super::super::batch::{self, tests::make_batch};
    use super::*;

    /// Appends `n` batches of 2 records to an index as if they were written back to back.
    fn feed(index: &mut SegmentIndex, n: usize, ts: impl Fn(usize) -> i64) -> Vec<(u64, i64)> {
        let mut position = 0;
        let mut offset = index.base_offset;
        let mut at = Vec::new();
        for i in 0..n {
            let mut b = make_batch(2, ts(i), None);
            batch::assign_offset(&mut b, offset, 0);
            let h = BatchHeader::parse(&b).unwrap();
            index.on_append(&h, position).unwrap();
            at.push((position, offset));
            position += b.len() as u64;
            offset += 2;
        }
        at
    }

    #[test]
    fn entries_are_sparse_and_lookups_land_at_or_before_the_target() {
        let dir = tempfile::tempdir().unwrap();
        let mut index = SegmentIndex::create(dir.path(), 100, "", 200).unwrap();
        let at = feed(&mut index, 20, |i| 1000 + i as i64 * 10);
        assert!(index.len() > 1 && index.len() < 20, "{}", index.len());
        let (offset_path, time_path) = index_paths(dir.path(), 100, "");
        assert_eq!(
            std::fs::metadata(&offset_path).unwrap().len(),
            (index.len() * OFFSET_ENTRY_LEN) as u64
        );
        assert_eq!(
            std::fs::metadata(&time_path).unwrap().len(),
            (index.len() * TIME_ENTRY_LEN) as u64
        );
        for &(position, offset) in &at {
            let from = index.position_for(offset + 1);
            assert!(from <= position, "offset {offset}: {from} > {position}");
            let next_entry = index
                .offsets
                .iter()
                .find(|e| u64::from(e.position) > from)
                .map(|e| u64::from(e.position));
            assert!(next_entry.is_none_or(|n| n > position));
        }
        assert_eq!(index.position_for(0), 0);
        // Every record before the offset a timestamp lookup gives is older than the timestamp.
        // Batch i holds offsets 100 + 2i and 101 + 2i, with timestamps 1000 + 10i and one more.
        for ts in [0, 999, 1000, 1001, 1055, 1105, 1191, 5000] {
            let from = index.offset_for_timestamp(ts);
            for i in 0..20 {
                if 100 + 2 * i < from {
                    assert!(1000 + 10 * i + 1 < ts, "ts {ts}: starts at {from}");
                }
            }
        }
        assert!(index.offset_for_timestamp(5000) > 100, "entries are used");
        index.close().unwrap();
        assert_eq!(index.times.len(), index.offsets.len() + 1);
        assert_eq!(index.times.last().unwrap().timestamp, 1000 + 19 * 10 + 1);
        index.close().unwrap();
        assert_eq!(index.times.len(), index.offsets.len() + 1, "idempotent");
    }

    #[test]
    fn closed_index_loads_and_bad_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut index = SegmentIndex::create(dir.path(), 0, "", 100).unwrap();
        let at = feed(&mut index, 10, |i| 1000 + i as i64);
        index.close().unwrap();
        let entries = index.len();
        let header_for = |position: u64| {
            let offset = at.iter().find(|a| a.0 == position).map(|a| a.1);
            let mut b = make_batch(2, 0, None);
            batch::assign_offset(&mut b, offset.unwrap_or(-5), 0);
            Ok(BatchHeader::parse(&b))
        };
        let loaded = SegmentIndex::load_closed(dir.path(), 0, 100, 1 << 20, 20, header_for)
            .unwrap()
            .expect("valid");
        assert_eq!(loaded.offsets, index.offsets);
        assert_eq!(loaded.max_timestamp(), Some((1010, 18)));
        // An offset beyond the next segment's base.
        assert!(
            SegmentIndex::load_closed(dir.path(), 0, 100, 1 << 20, 10, header_for)
                .unwrap()
                .is_none()
        );
        // A partial entry.
        let (offset_path, time_path) = index_paths(dir.path(), 0, "");
        let f = OpenOptions::new().write(true).open(&offset_path).unwrap();
        f.set_len((entries * OFFSET_ENTRY_LEN - 3) as u64).unwrap();
        assert!(
            SegmentIndex::load_closed(dir.path(), 0, 100, 1 << 20, 20, header_for)
                .unwrap()
                .is_none()
        );
        // Garbage in the time index.
        f.set_len(0).unwrap();
        std::fs::write(&time_path, [0xffu8; 24]).unwrap();
        assert!(
            SegmentIndex::load_closed(dir.path(), 0, 100, 1 << 20, 20, header_for)
                .unwrap()
                .is_none()
        );
        // Missing.
        std::fs::remove_file(&time_path).unwrap();
        assert!(
            SegmentIndex::load_closed(dir.path(), 0, 100, 1 << 20, 20, header_for)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn active_index_is_cut_to_its_last_intact_pair() {
        let dir = tempfile::tempdir().unwrap();
        let mut index = SegmentIndex::create(dir.path(), 0, "", 100).unwrap();
        feed(&mut index, 10, |i| 1000 + i as i64);
        let entries = index.offsets.clone();
        assert!(entries.len() >= 3);
        // A torn time entry and a last pair whose batch is gone.
        let (_, time_path) = index_paths(dir.path(), 0, "");
        let len = std::fs::metadata(&time_path).unwrap().len();
        OpenOptions::new()
            .write(true)
            .open(&time_path)
            .unwrap()
            .write_all_at(&[1, 2, 3], len)
            .unwrap();
        let gone = entries.last().unwrap().position;
        let (loaded, resume) =
            SegmentIndex::load_active(dir.path(), 0, 100, 1 << 20, |position, _| {
                Ok(position != u64::from(gone))
            })
            .unwrap();
        assert_eq!(loaded.offsets, entries[..entries.len() - 1]);
        assert_eq!(resume, u64::from(entries[entries.len() - 2].position));
        assert_eq!(
            std::fs::metadata(&time_path).unwrap().len(),
            ((entries.len() - 1) * TIME_ENTRY_LEN) as u64
        );
    }
}
