//! Committed offsets: [`OffsetStore`] keeps them per group in memory and in one JSON file per
//! group, rewritten atomically on every commit so a restart (even after `kill -9`) keeps them.

use crate::error::Result;
use crate::persist;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// One committed position, with the client's metadata string round-tripped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Committed {
    pub(crate) offset: i64,
    pub(crate) leader_epoch: i32,
    pub(crate) metadata: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct FileEntry {
    topic: String,
    partition: i32,
    #[serde(flatten)]
    committed: Committed,
}

#[derive(Debug, Serialize, Deserialize)]
struct GroupFile {
    group: String,
    offsets: Vec<FileEntry>,
}

type GroupOffsets = BTreeMap<(String, i32), Committed>;

/// All committed offsets of the broker.
#[derive(Debug)]
pub(crate) struct OffsetStore {
    dir: PathBuf,
    groups: HashMap<String, GroupOffsets>,
}

/// File name for a group: hex of its id, since group ids may hold any character.
fn file_name(group: &str) -> String {
    let hex: String = group.bytes().map(|b| format!("{b:02x}")).collect();
    format!("g-{hex}.json")
}

impl OffsetStore {
    /// Loads every group's offsets from `dir`.
    pub(crate) fn open(dir: &Path) -> Result<OffsetStore> {
        std::fs::create_dir_all(dir).map_err(|e| crate::Error::storage(dir, e))?;
        let mut groups = HashMap::new();
        for entry in std::fs::read_dir(dir).map_err(|e| crate::Error::storage(dir, e))? {
            let path = entry.map_err(|e| crate::Error::storage(dir, e))?.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            if let Some(file) = persist::read_json::<GroupFile>(&path)? {
                let offsets = file
                    .offsets
                    .into_iter()
                    .map(|e| ((e.topic, e.partition), e.committed))
                    .collect();
                groups.insert(file.group, offsets);
            }
        }
        Ok(OffsetStore {
            dir: dir.to_path_buf(),
            groups,
        })
    }

    /// Stores commits for a group and persists the group's file before returning.
    pub(crate) fn commit(
        &mut self,
        group: &str,
        commits: Vec<((String, i32), Committed)>,
    ) -> Result<()> {
        let offsets = self.groups.entry(group.to_string()).or_default();
        offsets.extend(commits);
        let file = GroupFile {
            group: group.to_string(),
            offsets: offsets
                .iter()
                .map(|((topic, partition), c)| FileEntry {
                    topic: topic.clone(),
                    partition: *partition,
                    committed: c.clone(),
                })
                .collect(),
        };
        persist::write_json(&self.dir.join(file_name(group)), &file)
    }

    /// The committed offset of one partition.
    pub(crate) fn get(&self, group: &str, topic: &str, partition: i32) -> Option<&Committed> {
        self.groups.get(group)?.get(&(topic.to_string(), partition))
    }

    /// Every committed offset of a group.
    pub(crate) fn all(&self, group: &str) -> Vec<((String, i32), Committed)> {
        self.groups
            .get(group)
            .map(|o| o.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    }

    /// Groups that have offsets.
    pub(crate) fn groups(&self) -> impl Iterator<Item = &String> {
        self.groups.keys()
    }

    pub(crate) fn has_group(&self, group: &str) -> bool {
        self.groups.contains_key(group)
    }

    /// Forgets a group's offsets (DeleteGroups).
    pub(crate) fn delete_group(&mut self, group: &str) -> Result<()> {
        self.groups.remove(group);
        let path = self.dir.join(file_name(group));
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(crate::Error::storage(path, e)),
        }
    }

    /// Forgets offsets of a deleted topic.
    pub(crate) fn delete_topic(&mut self, topic: &str) -> Result<()> {
        let affected: Vec<String> = self
            .groups
            .iter()
            .filter(|(_, o)| o.keys().any(|(t, _)| t == topic))
            .map(|(g, _)| g.clone())
            .collect();
        for group in affected {
            if let Some(o) = self.groups.get_mut(&group) {
                o.retain(|(t, _), _| t != topic);
            }
            self.commit(&group, Vec::new())?;
        }
        Ok(())
    }
}
