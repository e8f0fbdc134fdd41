//! Durable transaction state: [`TxnStore`] keeps one JSON file per transactional id, replaced
//! atomically (write, fsync, rename) on every change, so a restart (even after `kill -9`) finds
//! each id exactly as its last acknowledged change left it.

use super::state::TxnMetadata;
use crate::error::{Error, Result};
use crate::persist;
use std::path::{Path, PathBuf};

/// The `transactions/` directory of the data directory.
#[derive(Debug)]
pub(crate) struct TxnStore {
    dir: PathBuf,
}

/// File name for an id: hex of it, since transactional ids may hold any character.
fn file_name(transactional_id: &str) -> String {
    let hex: String = transactional_id
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("t-{hex}.json")
}

impl TxnStore {
    /// Opens (creating) the directory and reads every id's state.
    pub(crate) fn open(dir: &Path) -> Result<(TxnStore, Vec<TxnMetadata>)> {
        std::fs::create_dir_all(dir).map_err(|e| Error::storage(dir, e))?;
        let mut all = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| Error::storage(dir, e))? {
            let path = entry.map_err(|e| Error::storage(dir, e))?.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            if let Some(meta) = persist::read_json::<TxnMetadata>(&path)? {
                all.push(meta);
            }
        }
        Ok((
            TxnStore {
                dir: dir.to_path_buf(),
            },
            all,
        ))
    }

    /// Saves one id's state before the change it records is acknowledged.
    pub(crate) fn write(&self, meta: &TxnMetadata) -> Result<()> {
        persist::write_json(&self.dir.join(file_name(&meta.transactional_id)), meta)
    }

    /// Forgets an expired id.
    pub(crate) fn remove(&self, transactional_id: &str) -> Result<()> {
        let path = self.dir.join(file_name(transactional_id));
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::storage(path, e)),
        }
    }
}
