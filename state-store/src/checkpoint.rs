//! [`Checkpoint`]: reading and atomically writing a task's changelog offsets file.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::{Result, StoreError};

/// Name of the checkpoint file in a task directory (`<state.dir>/<application.id>/<task id>/`),
/// as in Kafka Streams.
pub const CHECKPOINT_FILE: &str = ".checkpoint";

/// The only checkpoint format version, the file's first line.
const VERSION: i32 = 0;

/// Kafka Streams' checkpoint file: changelog offsets per (changelog topic, partition).
///
/// Text format, compatible with Kafka Streams' `OffsetCheckpoint`: line 1 `0` (the version),
/// line 2 the entry count, then one `topic partition offset` line per entry. At commit the core
/// flushes the stores, then writes the offsets up to which the changelogs are reflected on disk;
/// on restart only the changelog tail after them is restored.
///
/// ```
/// use state_store::{Checkpoint, CHECKPOINT_FILE};
/// use std::collections::HashMap;
///
/// let task_dir = tempfile::tempdir().unwrap();
/// let path = task_dir.path().join(CHECKPOINT_FILE);
/// // No file yet: nothing was checkpointed, restore everything.
/// assert!(Checkpoint::read(&path)?.is_empty());
///
/// let offsets = HashMap::from([(("app-counts-changelog".to_string(), 3), 1_234)]);
/// Checkpoint::write(&path, &offsets)?;
/// assert_eq!(std::fs::read_to_string(&path).unwrap(), "0\n1\napp-counts-changelog 3 1234\n");
/// assert_eq!(Checkpoint::read(&path)?, offsets);
/// # Ok::<(), state_store::StoreError>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Checkpoint;

impl Checkpoint {
    /// The offsets in the checkpoint file at `path`; a missing file is an empty map.
    ///
    /// A malformed file is an error naming the file and the offending line.
    pub fn read(path: &Path) -> Result<HashMap<(String, i32), i64>> {
        let text = match fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashMap::new()),
            Err(e) => return Err(StoreError::io("read checkpoint", path, e)),
        };
        parse(path, &text)
    }

    /// Replaces the checkpoint file at `path` with `offsets`.
    ///
    /// Atomic: the entries go to `<path>.tmp`, which is fsynced and renamed over `path` (and the
    /// directory fsynced), so a crash leaves either the old file or the new one, never a torn one.
    /// Entries are written sorted, so equal maps give identical files.
    pub fn write(path: &Path, offsets: &HashMap<(String, i32), i64>) -> Result<()> {
        let mut entries: Vec<_> = offsets.iter().collect();
        entries.sort();
        let mut text = format!("{VERSION}\n{}\n", entries.len());
        for ((topic, partition), offset) in entries {
            text.push_str(&format!("{topic} {partition} {offset}\n"));
        }

        let tmp = tmp_path(path);
        let write_tmp = || -> std::io::Result<()> {
            let mut file = File::create(&tmp)?;
            file.write_all(text.as_bytes())?;
            file.sync_all()
        };
        write_tmp().map_err(|e| StoreError::io("write checkpoint", &tmp, e))?;
        fs::rename(&tmp, path).map_err(|e| StoreError::io("rename checkpoint into", path, e))?;
        sync_parent_dir(path)
    }
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".tmp");
    PathBuf::from(name)
}

/// Makes the rename itself durable. Directories cannot be opened for syncing on Windows, where
/// the rename is durable enough once it returns.
fn sync_parent_dir(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        let parent = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        File::open(parent)
            .and_then(|dir| dir.sync_all())
            .map_err(|e| StoreError::io("sync checkpoint directory", parent, e))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

fn parse(path: &Path, text: &str) -> Result<HashMap<(String, i32), i64>> {
    let malformed = |line: usize, reason: String| StoreError::MalformedCheckpoint {
        path: path.to_path_buf(),
        line,
        reason,
    };
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, line)| (i + 1, line.trim()));

    let (line, version) = lines
        .next()
        .ok_or_else(|| malformed(1, "empty file, expected the version".into()))?;
    match version.parse::<i32>() {
        Ok(VERSION) => {}
        Ok(other) => return Err(malformed(line, format!("unsupported version {other}"))),
        Err(_) => {
            return Err(malformed(
                line,
                format!("expected the version, found `{version}`"),
            ))
        }
    }

    let (line, count) = lines
        .next()
        .ok_or_else(|| malformed(2, "missing the entry count".into()))?;
    let count: usize = count
        .parse()
        .map_err(|_| malformed(line, format!("expected the entry count, found `{count}`")))?;

    let mut offsets = HashMap::with_capacity(count);
    let mut last_line = line;
    for (line, entry) in lines.by_ref().take(count) {
        last_line = line;
        let fields: Vec<&str> = entry.split_whitespace().collect();
        let [topic, partition, offset] = fields[..] else {
            return Err(malformed(
                line,
                format!("expected `topic partition offset`, found `{entry}`"),
            ));
        };
        let partition = partition
            .parse::<i32>()
            .map_err(|_| malformed(line, format!("invalid partition `{partition}`")))?;
        let offset = offset
            .parse::<i64>()
            .map_err(|_| malformed(line, format!("invalid offset `{offset}`")))?;
        offsets.insert((topic.to_string(), partition), offset);
    }
    if offsets.len() < count {
        // Fewer distinct entries than announced: lines are missing (or repeat a partition).
        return Err(malformed(
            last_line + 1,
            format!("expected {count} entries, found {}", offsets.len()),
        ));
    }
    if let Some((line, extra)) = lines.find(|(_, line)| !line.is_empty()) {
        return Err(malformed(
            line,
            format!("unexpected line `{extra}` after {count} entries"),
        ));
    }
    Ok(offsets)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offsets() -> HashMap<(String, i32), i64> {
        HashMap::from([
            (("app-counts-changelog".to_string(), 0), 42),
            (("app-counts-changelog".to_string(), 7), 0),
            (("app-totals-changelog".to_string(), 0), 9_000_000_000),
        ])
    }

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(CHECKPOINT_FILE);
        Checkpoint::write(&path, &offsets()).unwrap();
        assert_eq!(Checkpoint::read(&path).unwrap(), offsets());
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "0\n3\napp-counts-changelog 0 42\napp-counts-changelog 7 0\n\
             app-totals-changelog 0 9000000000\n"
        );
        // The temporary file is gone after the rename.
        assert!(!tmp_path(&path).exists());

        // Overwriting replaces the content entirely.
        Checkpoint::write(&path, &HashMap::new()).unwrap();
        assert!(Checkpoint::read(&path).unwrap().is_empty());
        assert_eq!(fs::read_to_string(&path).unwrap(), "0\n0\n");
    }

    #[test]
    fn missing_file_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Checkpoint::read(&dir.path().join("nothing"))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn write_into_missing_directory_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent").join(CHECKPOINT_FILE);
        let err = Checkpoint::write(&path, &offsets()).unwrap_err();
        assert!(err.to_string().contains("absent"), "{err}");
    }

    #[track_caller]
    fn assert_malformed(text: &str, expected_line: usize, reason_part: &str) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(CHECKPOINT_FILE);
        fs::write(&path, text).unwrap();
        let err = Checkpoint::read(&path).unwrap_err();
        let message = err.to_string();
        match &err {
            StoreError::MalformedCheckpoint { line, reason, .. } => {
                assert_eq!(*line, expected_line, "{message}");
                assert!(reason.contains(reason_part), "{message}");
            }
            other => panic!("expected MalformedCheckpoint, got {other:?}"),
        }
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(
            message.contains(&format!("line {expected_line}")),
            "{message}"
        );
    }

    #[test]
    fn malformed_files_name_file_and_line() {
        assert_malformed("", 1, "empty");
        assert_malformed("1\n0\n", 1, "unsupported version 1");
        assert_malformed("x\n", 1, "expected the version");
        assert_malformed("0\n", 2, "missing the entry count");
        assert_malformed("0\ntwo\n", 2, "entry count");
        assert_malformed("0\n1\ntopic 0\n", 3, "topic partition offset");
        assert_malformed("0\n1\ntopic p 5\n", 3, "invalid partition");
        assert_malformed("0\n1\ntopic 0 five\n", 3, "invalid offset");
        assert_malformed("0\n2\ntopic 0 5\n", 4, "expected 2 entries, found 1");
        assert_malformed("0\n1\ntopic 0 5\ntopic 1 6\n", 4, "unexpected line");
    }

    #[test]
    fn tolerates_trailing_blank_lines_and_spacing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(CHECKPOINT_FILE);
        fs::write(&path, "0\n1\ntopic  2   5\n\n").unwrap();
        assert_eq!(
            Checkpoint::read(&path).unwrap(),
            HashMap::from([(("topic".to_string(), 2), 5)])
        );
    }
}
