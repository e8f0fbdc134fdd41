//! Housekeeping of a partition directory: finding segments, deleting a segment with its indexes,
//! clearing what a crash left half-done, and the `log-start-offset` file.

use super::index;
use super::segment::segment_path;
use crate::error::{Error, Result};
use std::fs::File;
use std::path::Path;

/// Suffix of a compaction's output files until they replace the segment.
pub(super) const CLEANED: &str = ".cleaned";

/// Base offsets of the segment files in `dir`, sorted.
pub(super) fn segment_bases(dir: &Path) -> Result<Vec<i64>> {
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

/// Deletes a segment and its indexes (aborted-transaction index included); the segment first, so a crash in between leaves index
/// files without a segment, which the next open deletes.
pub(super) fn remove_segment_files(dir: &Path, base_offset: i64) -> Result<()> {
    let path = segment_path(dir, base_offset);
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::storage(&path, e)),
    }
    index::remove_index_files(dir, base_offset)?;
    super::txn_index::remove_txn_index(dir, base_offset)
}

/// Deletes index files whose segment is gone.
pub(super) fn remove_orphan_indexes(dir: &Path, bases: &[i64]) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(|e| Error::storage(dir, e))? {
        let path = entry.map_err(|e| Error::storage(dir, e))?.path();
        let base = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| {
                n.strip_suffix(".index")
                    .or_else(|| n.strip_suffix(".timeindex"))
                    .or_else(|| n.strip_suffix(".txnindex"))
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
pub(super) fn remove_leftovers(dir: &Path) -> Result<()> {
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
pub(super) fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// The log start offset saved by DeleteRecords or retention; `None` if it never moved.
pub(super) fn read_log_start(dir: &Path) -> Result<Option<i64>> {
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

/// Saves the log start offset atomically, so a crash leaves the old value or the new one.
pub(super) fn write_log_start(dir: &Path, offset: i64) -> Result<()> {
    crate::persist::write_atomically(&dir.join("log-start-offset"), offset.to_string().as_bytes())
}
