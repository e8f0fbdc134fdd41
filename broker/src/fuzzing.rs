//! Entry point for fuzzing request handling: [`handle_frame`] decodes one request frame and, if
//! it decodes, runs its handler against a scratch broker. Used by the `cargo fuzz` target in
//! `broker/fuzz` and by a smoke test; not part of the supported API.

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
