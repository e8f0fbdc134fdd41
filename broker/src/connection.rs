//! One client connection: [`serve`] reads size-prefixed frames, decodes each request, runs its
//! handler and writes the response before reading the next, so responses leave in request order
//! (Kafka itself processes one request per connection at a time).

use crate::handler;
use crate::protocol::{self, DecodeError};
use crate::state::BrokerState;
use bytes::{Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse, ResponseKind};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::watch;

/// Largest chunk by which a frame buffer grows: a client claiming a large frame only gets memory
/// as fast as it actually sends bytes.
const READ_CHUNK: usize = 64 * 1024;

/// Serves one connection until the client closes it, sends something malformed, or the broker
/// shuts down.
pub(crate) async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    state: Arc<BrokerState>,
    mut shutdown: watch::Receiver<bool>,
) {
    let (reader, mut writer) = stream.into_split();
    let mut reader = BufReader::new(reader);
    let max = state.config.max_request_bytes;
    loop {
        let frame = tokio::select! {
            frame = read_frame(&mut reader, max) => frame,
            _ = crate::server::stopped(&mut shutdown) => return,
        };
        let frame = match frame {
            Ok(Some(frame)) => frame,
            Ok(None) => return,
            Err(reason) => {
                tracing::warn!(%peer, %reason, "closing connection: bad frame");
                return;
            }
        };
        let response = match protocol::decode_request(frame) {
            Ok(request) => {
                let api_key = request.api_key;
                let version = request.header.request_api_version;
                let correlation_id = request.header.correlation_id;
                tracing::trace!(%peer, ?api_key, version, correlation_id, "request");
                let handled = tokio::select! {
                    r = handler::handle(&state, request, peer) => r,
                    _ = crate::server::stopped(&mut shutdown) => return,
                };
                match handled {
                    Some(body) => {
                        protocol::encode_response(api_key, version, correlation_id, &body).map_err(
                            |e| format!("cannot encode {api_key:?} v{version} response: {e}"),
                        )
                    }
                    // acks=0 produce: the client expects no answer at all.
                    None => continue,
                }
            }
            Err(DecodeError::UnsupportedApiVersions { correlation_id }) => {
                protocol::encode_response(
                    ApiKey::ApiVersions,
                    0,
                    correlation_id,
                    &unsupported_version_response(),
                )
                .map_err(|e| e.to_string())
            }
            Err(DecodeError::Malformed(reason)) => {
                tracing::warn!(%peer, %reason, "closing connection: malformed request");
                return;
            }
        };
        match response {
            Ok(bytes) => {
                if let Err(e) = writer.write_all(&bytes).await {
                    tracing::debug!(%peer, error = %e, "client went away");
                    return;
                }
            }
            Err(reason) => {
                tracing::error!(%peer, %reason, "closing connection");
                return;
            }
        }
    }
}

/// ApiVersions v0 body for a version we do not know: the error plus our own range for
/// ApiVersions, which is what clients need to retry.
fn unsupported_version_response() -> ResponseKind {
    let range = protocol::supported(ApiKey::ApiVersions).expect("ApiVersions is supported");
    ResponseKind::ApiVersions(
        ApiVersionsResponse::default()
            .with_error_code(ResponseError::UnsupportedVersion.code())
            .with_api_keys(vec![ApiVersion::default()
                .with_api_key(ApiKey::ApiVersions as i16)
                .with_min_version(range.min)
                .with_max_version(range.max)]),
    )
}

/// Reads one frame. `Ok(None)` when the client closes (or resets) the connection between frames. The length prefix is
/// checked against the cap before any buffer is sized from it, and the buffer then grows only as
/// bytes arrive.
pub(crate) async fn read_frame<R: AsyncReadExt + Unpin>(
    reader: &mut R,
    max: usize,
) -> Result<Option<Bytes>, String> {
    let mut len_buf = [0u8; 4];
    match reader.read_exact(&mut len_buf).await {
        Ok(_) => {}
        // Between frames, a reset is just a client going away: librdkafka and the Java
        // clients often close sockets with a RST rather than a FIN.
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::UnexpectedEof
                    | std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
            ) =>
        {
            return Ok(None)
        }
        Err(e) => return Err(e.to_string()),
    }
    let len = i32::from_be_bytes(len_buf);
    let len = usize::try_from(len).map_err(|_| format!("negative frame length {len}"))?;
    if len > max {
        return Err(format!(
            "frame of {len} bytes exceeds socket.request.max.bytes ({max})"
        ));
    }
    let mut buf = BytesMut::with_capacity(len.min(READ_CHUNK));
    while buf.len() < len {
        buf.reserve((len - buf.len()).min(READ_CHUNK));
        let want = len - buf.len();
        let n = (&mut *reader)
            .take(want as u64)
            .read_buf(&mut buf)
            .await
            .map_err(|e| e.to_string())?;
        if n == 0 {
            return Err(format!(
                "connection closed {} bytes into a {len}-byte frame",
                buf.len()
            ));
        }
    }
    Ok(Some(buf.freeze()))
}
