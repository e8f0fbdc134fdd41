//! A segment file and the reading of it: [`Segment`] (one `.log` file with its indexes), the
//! positioned reads the log is built on, and [`HeaderReader`], which walks batch headers.

use super::batch::{BatchHeader, HEADER_LEN, LOG_OVERHEAD};
use super::index::SegmentIndex;
use super::txn_index::TxnIndex;
use super::LogOptions;
use crate::error::{Error, Result};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Bytes read at a time when scanning batch headers: one read covers the stretch between two
/// index entries (`index.interval.bytes`) several times over.
const SCAN_WINDOW: u64 = 32 * 1024;

/// The segment file with this base offset: named by it, zero-padded so names sort by offset.
pub(super) fn segment_path(dir: &Path, base_offset: i64) -> PathBuf {
    dir.join(format!("{base_offset:020}.log"))
}

/// Opens a segment file for reads and positioned writes, creating it if missing.
pub(super) fn open_segment_file(path: &Path) -> Result<File> {
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
pub(super) fn read_at(file: &File, path: &Path, position: u64, len: usize) -> Result<Vec<u8>> {
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
pub(super) fn header_at(
    file: &File,
    path: &Path,
    position: u64,
    len: u64,
) -> Result<Option<BatchHeader>> {
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
pub(super) fn intact_batch_at(
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

/// One segment file of the log, with its indexes.
pub(super) struct Segment {
    pub(super) base_offset: i64,
    pub(super) path: PathBuf,
    pub(super) file: File,
    /// Bytes of whole batches; once the segment is open the file is never longer.
    pub(super) size: u64,
    pub(super) index: SegmentIndex,
    /// Transactions whose abort marker is in this segment.
    pub(super) aborted: TxnIndex,
}

impl Segment {
    /// A new, empty segment with empty index files.
    pub(super) fn create(dir: &Path, base_offset: i64, options: &LogOptions) -> Result<Segment> {
        let path = segment_path(dir, base_offset);
        let file = open_segment_file(&path)?;
        let index = SegmentIndex::create(dir, base_offset, "", options.index_interval_bytes)?;
        Ok(Segment {
            base_offset,
            path,
            file,
            size: 0,
            index,
            aborted: TxnIndex::create(dir, base_offset)?,
        })
    }

    pub(super) fn read(&self, position: u64, len: usize) -> Result<Vec<u8>> {
        read_at(&self.file, &self.path, position, len)
    }

    /// Batch headers from `position` to the end of the segment.
    pub(super) fn headers(&self, position: u64) -> HeaderReader<'_> {
        HeaderReader::new(&self.file, &self.path, position, self.size)
    }

    /// The first batch that holds `offset` or a later one, with its position: a scan from the
    /// index entry at or below `offset`. `None` if the segment ends before.
    pub(super) fn locate(&self, offset: i64) -> Result<Option<(u64, BatchHeader)>> {
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
pub(super) enum Scanned {
    Batch(u64, BatchHeader),
    End,
    /// No plausible batch header at this position (a torn or corrupt tail).
    Invalid(u64),
}

/// Reads the headers of consecutive batches of a segment file, through a buffer so that a run of
/// small batches costs one read call rather than one per batch.
pub(super) struct HeaderReader<'a> {
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
    pub(super) fn new(file: &'a File, path: &'a Path, position: u64, end: u64) -> HeaderReader<'a> {
        HeaderReader {
            file,
            path,
            position,
            end,
            buf: Vec::new(),
            buf_start: 0,
        }
    }

    pub(super) fn next(&mut self) -> Result<Scanned> {
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
    pub(super) fn next_batch(&mut self) -> Result<Option<(u64, BatchHeader)>> {
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
