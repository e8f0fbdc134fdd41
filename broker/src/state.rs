//! Everything a request handler can reach: [`BrokerState`], shared by all connections, and the
//! broker identity file ([`Identity`]) that keeps the cluster id and producer ids stable across
//! restarts.

use crate::config::{BrokerConfig, FlushPolicy};
use crate::error::Result;
use crate::group::GroupCoordinator;
use crate::persist;
use crate::topics::Topics;
use crate::txn::TxnCoordinator;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use tokio::sync::Notify;

/// How many producer ids are reserved on disk at a time, so allocation rarely writes a file.
const PRODUCER_ID_BLOCK: i64 = 1000;

/// What `broker.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Identity {
    cluster_id: String,
    /// Every producer id below this may have been handed out already.
    producer_id_block_end: i64,
}

/// Hands out producer ids that are never reused, even across restarts.
#[derive(Debug)]
pub(crate) struct ProducerIds {
    path: PathBuf,
    /// (next id, end of the block reserved on disk); a mutex because allocation must be atomic
    /// with the file write that reserves the next block.
    next: Mutex<(i64, i64, Identity)>,
}

impl ProducerIds {
    /// A fresh producer id.
    pub(crate) fn allocate(&self) -> Result<i64> {
        let mut guard = crate::sync::lock(&self.next, "producer id");
        let (next, end, identity) = &mut *guard;
        if *next >= *end {
            identity.producer_id_block_end = *next + PRODUCER_ID_BLOCK;
            persist::write_json(&self.path, identity)?;
            *end = identity.producer_id_block_end;
        }
        let id = *next;
        *next += 1;
        Ok(id)
    }
}

/// State shared by every connection of one broker.
#[derive(Debug)]
pub(crate) struct BrokerState {
    pub(crate) config: BrokerConfig,
    /// Host advertised in Metadata and FindCoordinator.
    pub(crate) host: String,
    /// Port actually bound (the config may say 0).
    pub(crate) port: i32,
    pub(crate) cluster_id: String,
    pub(crate) topics: Topics,
    pub(crate) groups: GroupCoordinator,
    pub(crate) txns: TxnCoordinator,
    pub(crate) producer_ids: ProducerIds,
    /// Notified after every append, so long-polling fetches re-check their partitions.
    pub(crate) appended: Notify,
}

impl BrokerState {
    /// Opens the data directory: identity, topics and their logs, committed offsets,
    /// transactions (finishing those a stop interrupted between their markers).
    pub(crate) fn open(
        config: BrokerConfig,
        data_dir: &Path,
        host: String,
        port: u16,
    ) -> Result<BrokerState> {
        let identity_path = data_dir.join("broker.json");
        let identity = match persist::read_json::<Identity>(&identity_path)? {
            Some(identity) => identity,
            None => {
                let identity = Identity {
                    cluster_id: cluster_id_from(crate::util::random_uuid()),
                    producer_id_block_end: 0,
                };
                persist::write_json(&identity_path, &identity)?;
                identity
            }
        };
        let topics = Topics::open(data_dir, config.segment_bytes)?;
        let groups = GroupCoordinator::open(&data_dir.join("groups"), &config)?;
        let txns = TxnCoordinator::open(&data_dir.join("transactions"), &config)?;
        let block_end = identity.producer_id_block_end;
        let state = BrokerState {
            host,
            port: i32::from(port),
            cluster_id: identity.cluster_id.clone(),
            topics,
            groups,
            txns,
            producer_ids: ProducerIds {
                path: identity_path,
                next: Mutex::new((block_end, block_end, identity)),
            },
            appended: Notify::new(),
            config,
        };
        crate::txn::complete::finish_prepared(&state)?;
        Ok(state)
    }

    /// Whether produce requests with this acks value are fsynced before the answer.
    pub(crate) fn fsync_for(&self, acks: i16) -> bool {
        match self.config.flush {
            FlushPolicy::Always => true,
            FlushPolicy::AcksAll => acks == -1,
            _ => false,
        }
    }

    pub(crate) fn node_id(&self) -> i32 {
        self.config.node_id
    }
}

/// Kafka cluster ids are 22 characters of URL-safe base64 of a UUID.
fn cluster_id_from(id: uuid::Uuid) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bits = id.as_u128();
    (0..22)
        .map(|i| {
            let shift = 128i32 - 6 * (i + 1);
            let v = if shift >= 0 {
                (bits >> shift) & 0x3f
            } else {
                (bits << -shift) & 0x3f
            };
            ALPHABET[v as usize] as char
        })
        .collect()
}
