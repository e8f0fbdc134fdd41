//! Entry points for fuzzing: [`handle_frame`] decodes one request frame and, if it decodes, runs
//! its handler against a scratch broker; [`handle_batch`] runs a record batch with a valid CRC
//! through everything that parses batches. Used by the `cargo fuzz` targets in `broker/fuzz`
//! and by a smoke test; not part of the supported API.

use crate::config::{BrokerConfig, FlushPolicy};
use crate::state::BrokerState;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

struct Scratch {
    runtime: tokio::runtime::Runtime,
    state: Arc<BrokerState>,
    /// Keeps the scratch data directory alive for the whole process.
    _dir: tempfile::TempDir,
}

fn scratch() -> &'static Scratch {
    static SCRATCH: OnceLock<Scratch> = OnceLock::new();
    SCRATCH.get_or_init(|| {
        let dir = tempfile::tempdir().expect("scratch dir");
        let config = BrokerConfig {
            flush: FlushPolicy::Never,
            ..BrokerConfig::default()
        };
        let state = BrokerState::open(config, dir.path(), "127.0.0.1".into(), 9092)
            .expect("scratch broker state");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        Scratch {
            runtime,
            state: Arc::new(state),
            _dir: dir,
        }
    })
}

/// Decodes `frame` (a request without its length prefix) and handles it. Must never panic,
/// whatever the bytes; long-polling requests are cut short after a few milliseconds. Returns
/// whether the frame decoded as a request.
pub fn handle_frame(frame: &[u8]) -> bool {
    let Ok(request) = crate::protocol::decode_request(bytes::Bytes::copy_from_slice(frame)) else {
        return false;
    };
    let s = scratch();
    let api_key = request.api_key;
    let version = request.header.request_api_version;
    let correlation_id = request.header.correlation_id;
    let peer = SocketAddr::from(([127, 0, 0, 1], 1));
    s.runtime.block_on(async {
        let handled = tokio::time::timeout(
            Duration::from_millis(5),
            crate::handler::handle(&s.state, request, peer),
        )
        .await;
        if let Ok(Some(body)) = handled {
            // Every response we build must be encodable at the version the client asked for.
            if let Err(e) =
                crate::protocol::encode_response(api_key, version, correlation_id, &body)
            {
                panic!("{api_key:?} v{version}: response does not encode: {e}");
            }
        }
    });
    true
}

/// Treats `data` as one record batch sent by a hostile producer: its length and CRC fields are
/// set to match its bytes (the CRC only proves a batch arrived as sent, not that its fields make
/// sense) and its magic to 2, then it goes through everything that looks inside batches:
/// header arithmetic, validation, compaction's record parsing and rewriting, the timestamp
/// lookup, marker decoding, and, if it validates as Produce would accept it, an append to a
/// scratch log between keyed batches, followed by compaction, reads and lookups. Must never
/// panic, whatever the bytes. Returns whether the batch validated and was appended.
pub fn handle_batch(data: &[u8]) -> bool {
    use crate::log::batch::{self, BatchHeader, HEADER_LEN, LOG_OVERHEAD};
    use crate::log::{compaction, control};
    let mut b = data.to_vec();
    if b.len() >= HEADER_LEN {
        let length = i32::try_from(b.len() - LOG_OVERHEAD).unwrap_or(i32::MAX);
        b[8..12].copy_from_slice(&length.to_be_bytes());
        b[16] = 2;
        let crc = crc32c::crc32c(&b[21..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
    }
    if let Some(h) = BatchHeader::parse(&b) {
        let _ = (h.last_offset(), h.last_sequence(), h.total_len());
    }
    let _ = batch::whole_batches_len(&b);
    let _ = batch::end_offset(&b);
    for bound in [i64::MIN, -1, 0, 1, i64::MAX] {
        let _ = batch::batches_below(&b, bound);
        let _ = batch::first_offset_at_or_after(&b, bound);
    }
    let _ = control::marker_kind(&b);
    let _ = compaction::records(&b);
    let _ = compaction::retain(&b, |r| r.offset % 2 == 0 && !r.is_tombstone);
    let Ok(h) = batch::validate_batch(&b, 1 << 20) else {
        return false;
    };
    if h.is_control() {
        // Produce refuses control batches; only the coordinator writes markers.
        return false;
    }
    append_and_compact(&mut b)
}

/// Appends `batch` to a fresh scratch log with tiny segments (every batch its own segment)
/// between keyed batches, then compacts it and reads it back every way there is.
fn append_and_compact(batch: &mut [u8]) -> bool {
    use crate::log::{LogOptions, PartitionLog, DEFAULT_INDEX_INTERVAL_BYTES};
    let Ok(dir) = tempfile::tempdir() else {
        return false;
    };
    let options = LogOptions {
        segment_bytes: 1,
        index_interval_bytes: DEFAULT_INDEX_INTERVAL_BYTES,
    };
    let Ok(mut log) = PartitionLog::open(dir.path(), options) else {
        return false;
    };
    let mut keyed = keyed_batch();
    let _ = log.append(&mut keyed.clone(), false);
    if log.append(batch, false).is_err() {
        return false;
    }
    let _ = log.append(&mut keyed, false);
    let _ = log.compact(i64::MAX);
    let _ = log.read_below(0, 1 << 20, log.next_offset());
    let _ = log.read_below(0, 1 << 20, log.last_stable_offset());
    for ts in [i64::MIN, 0, 1000, i64::MAX] {
        let _ = log.offset_for_timestamp(ts);
    }
    let _ = log.aborted_transactions(0, i64::MAX);
    drop(log);
    // And once more after a reopen, which replays producer state and checks the indexes.
    if let Ok(mut log) = PartitionLog::open(dir.path(), options) {
        let _ = log.compact(i64::MAX);
        let _ = log.read_below(0, 1 << 20, log.next_offset());
    }
    true
}

/// An ordinary batch with the key `k0`, so that compaction has something to compare with.
fn keyed_batch() -> Vec<u8> {
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };
    let record = Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: 0,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp: 1000,
        key: Some(bytes::Bytes::from_static(b"k0")),
        value: Some(bytes::Bytes::from_static(b"v")),
        headers: Default::default(),
    };
    let mut out = bytes::BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut out, [&record], &options).expect("a one-record batch encodes");
    out.to_vec()
}
