//! What this instance says about itself when it joins: its process id, kept in the state
//! directory so that it survives restarts, and how far its local task state has got.

use std::collections::hash_map::RandomState;
use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::path::Path;

use crate::assignment::{OffsetSum, ProcessId};
use crate::task_id::TaskId;

/// File in `state.dir/<application.id>` holding the process id, as Kafka Streams keeps one.
const PROCESS_FILE: &str = "kafka-streams-process-metadata";

/// The process id stored in `app_dir`, or a new one written there. A directory that cannot be
/// written gives a new id for this run only: the id then does not survive a restart, which
/// costs stickiness, not correctness.
pub(crate) fn process_id(app_dir: &Path) -> ProcessId {
    let path = app_dir.join(PROCESS_FILE);
    if let Ok(text) = std::fs::read_to_string(&path) {
        if let Some(id) = parse_hex(text.trim()) {
            return id;
        }
        tracing::warn!(path = %path.display(), "unreadable process id: making a new one");
    }
    let id = random_id();
    if let Err(e) = std::fs::write(&path, format!("{id}\n")) {
        tracing::warn!(path = %path.display(), error = %e, "could not keep the process id");
    }
    id
}

fn parse_hex(s: &str) -> Option<ProcessId> {
    if s.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(ProcessId(out))
}

/// 128 random bits from the standard library's randomly keyed hashers (no extra crate for an
/// id that only needs to differ between instances).
fn random_id() -> ProcessId {
    let mut out = [0u8; 16];
    for half in out.chunks_mut(8) {
        let mut h = RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        h.write_u32(std::process::id());
        half.copy_from_slice(&h.finish().to_be_bytes());
    }
    ProcessId(out)
}

/// Per task directory in `app_dir` with a checkpoint, the sum of its checkpointed changelog
/// offsets: what the assignor compares to place stateful tasks where their state is.
/// Directories of tasks this instance runs are reported as running by the caller instead.
pub(crate) fn checkpointed_offset_sums(app_dir: &Path) -> BTreeMap<TaskId, OffsetSum> {
    let mut sums = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(app_dir) else {
        return sums;
    };
    for e in entries.flatten() {
        let Some(id) = e
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<TaskId>().ok())
        else {
            continue;
        };
        let path = e.path().join(state_store::CHECKPOINT_FILE);
        if let Ok(offsets) = state_store::Checkpoint::read(&path) {
            if offsets.is_empty() {
                continue;
            }
            let sum = offsets
                .values()
                .map(|o| u64::try_from(*o).unwrap_or(0))
                .fold(0u64, u64::saturating_add);
            sums.insert(id, OffsetSum::Checkpointed(sum));
        }
    }
    sums
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_process_id_survives_a_restart() {
        let dir = std::env::temp_dir().join(format!("streams-pid-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let _ = std::fs::remove_file(dir.join(PROCESS_FILE));
        let first = process_id(&dir);
        assert_eq!(process_id(&dir), first);
        assert_eq!(parse_hex(&first.to_string()), Some(first));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
