//! A blocking connection to one broker, speaking the Kafka protocol through `kafka-protocol`.
//!
//! The group member and the stream threads' offset commits use it; data still moves through
//! rdkafka. Versions are negotiated with ApiVersions once per connection: each call uses the
//! highest version both sides know, capped where this code stops following the protocol.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, RequestHeader, ResponseHeader, SaslAuthenticateRequest,
    SaslHandshakeRequest,
};
use kafka_protocol::ResponseError;

use crate::config::{Mechanism, Pem, Sasl, Security, Tls};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};

/// The largest response accepted: the length prefix comes from the network, and a group's
/// JoinGroup answer (every member's subscription) is the largest thing read here.
const MAX_RESPONSE_BYTES: usize = 64 << 20;

/// A connection failure, naming the broker and what was being done.
#[derive(Debug, thiserror::Error)]
#[error("broker {broker}: {operation}: {message}")]
pub(crate) struct ConnError {
    /// `host:port`.
    pub(crate) broker: String,
    /// The request or step.
    pub(crate) operation: String,
    /// What went wrong.
    pub(crate) message: String,
    /// The broker refused our credentials: retrying cannot help.
    pub(crate) auth: bool,
}

/// The bytes' way to the broker: plain TCP, or TLS over it.
enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => &s.sock,
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// Reads PEM text from a file or an inline property.
fn pem_text(pem: &Pem, property: &str) -> Result<Vec<u8>, String> {
    match pem {
        Pem::File(path) => {
            std::fs::read(path).map_err(|e| format!("{property} {}: {e}", path.display()))
        }
        Pem::Inline(text) => Ok(text.as_bytes().to_vec()),
    }
}

/// A TLS client configuration trusting `tls.ca` (a PEM file) or the system's certificates, and
/// presenting the client certificate if there is one.
fn tls_config(tls: &Tls) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    match &tls.ca {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("ssl.ca.location {}: {e}", path.display()))?;
            if certs.is_empty() {
                return Err(format!(
                    "ssl.ca.location {}: no certificate in it",
                    path.display()
                ));
            }
            for c in certs {
                roots
                    .add(c)
                    .map_err(|e| format!("ssl.ca.location {}: {e}", path.display()))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for c in found.certs {
                // A system certificate rustls cannot use is skipped, as OpenSSL would.
                let _ = roots.add(c);
            }
            if roots.is_empty() {
                return Err("no system certificates found: set ssl.ca.location".into());
            }
        }
    }
    // ring rather than rustls' default aws-lc-rs: no second C/CMake build on top of RocksDB and
    // librdkafka. Its provider is deprecated for lacking post-quantum key exchange, which Kafka
    // brokers (Java's TLS) do not offer by default either.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    let config = match &tls.client {
        None => builder.with_no_client_auth(),
        Some(client) => {
            let property = match client.certificate {
                Pem::File(_) => "ssl.certificate.location",
                Pem::Inline(_) => "ssl.certificate.pem",
            };
            let text = pem_text(&client.certificate, property)?;
            let chain = CertificateDer::pem_slice_iter(&text)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("{property}: {e}"))?;
            if chain.is_empty() {
                return Err(format!("{property}: no certificate in it"));
            }
            let key_property = match client.key {
                Pem::File(_) => "ssl.key.location",
                Pem::Inline(_) => "ssl.key.pem",
            };
            let key = PrivateKeyDer::from_pem_slice(&pem_text(&client.key, key_property)?)
                .map_err(|e| format!("{key_property}: no unencrypted private key: {e}"))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("{property} and {key_property}: {e}"))?
        }
    };
    Ok(Arc::new(config))
}

/// One TCP connection to one broker.
pub(crate) struct Connection {
    stream: Stream,
    broker: String,
    client_id: StrBytes,
    correlation: i32,
    /// API key -> (min, max) version the broker serves.
    versions: HashMap<i16, (i16, i16)>,
}

impl Connection {
    /// Connects to `broker` (`host:port`) and negotiates versions. `timeout` bounds the connect
    /// and each read or write until [`Self::set_timeout`] changes it.
    pub(crate) fn open(
        broker: &str,
        client_id: &str,
        timeout: Duration,
        security: &Security,
    ) -> Result<Self, ConnError> {
        let fail = |operation: &str, message: String| ConnError {
            broker: broker.to_string(),
            operation: operation.to_string(),
            message,
            auth: false,
        };
        let addrs: Vec<_> = broker
            .to_socket_addrs()
            .map_err(|e| fail("resolving the address", e.to_string()))?
            .collect();
        let mut last = None;
        let mut stream = None;
        for a in addrs {
            match TcpStream::connect_timeout(&a, timeout) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let stream = stream.ok_or_else(|| {
            fail(
                "connecting",
                last.map_or("no address".to_string(), |e| e.to_string()),
            )
        })?;
        stream
            .set_nodelay(true)
            .map_err(|e| fail("connecting", e.to_string()))?;
        let stream = match &security.tls {
            None => Stream::Plain(stream),
            Some(settings) => {
                let tls = |message: String| ConnError {
                    broker: broker.to_string(),
                    operation: "TLS".into(),
                    message,
                    // A certificate or trust problem does not go away by retrying.
                    auth: true,
                };
                let config = tls_config(settings).map_err(tls)?;
                let host = broker.rsplit_once(':').map_or(broker, |(h, _)| h);
                let host = host.trim_start_matches('[').trim_end_matches(']');
                let name = rustls::pki_types::ServerName::try_from(host.to_string())
                    .map_err(|e| tls(format!("`{host}` is not a server name: {e}")))?;
                let session =
                    rustls::ClientConnection::new(config, name).map_err(|e| tls(e.to_string()))?;
                Stream::Tls(Box::new(rustls::StreamOwned::new(session, stream)))
            }
        };
        let mut conn = Connection {
            stream,
            broker: broker.to_string(),
            client_id: StrBytes::from_string(client_id.to_string()),
            correlation: 0,
            versions: HashMap::new(),
        };
        conn.set_timeout(timeout)?;
        if let Stream::Tls(s) = &mut conn.stream {
            // Done here rather than with the first request, so that a refused certificate is
            // reported as such (and as final), not as a failed ApiVersions.
            while s.conn.is_handshaking() {
                s.conn.complete_io(&mut s.sock).map_err(|e| ConnError {
                    broker: broker.to_string(),
                    operation: "TLS handshake".into(),
                    message: e.to_string(),
                    auth: true,
                })?;
            }
        }
        // Version 0 of ApiVersions is answered by every broker; its answer lists the rest.
        let resp = conn.exchange(&ApiVersionsRequest::default(), 0)?;
        if resp.error_code != 0 {
            return Err(fail(
                "ApiVersions",
                format!("error code {}", resp.error_code),
            ));
        }
        conn.versions = resp
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect();
        if let Some(sasl) = &security.sasl {
            conn.authenticate(sasl)?;
        }
        Ok(conn)
    }

    /// SASL: the handshake names the mechanism, then SaslAuthenticate carries its messages:
    /// one for PLAIN (RFC 4616, `\0user\0password`), two for SCRAM. A refusal is final
    /// (`auth`), and names the mechanism.
    fn authenticate(&mut self, sasl: &Sasl) -> Result<(), ConnError> {
        let operation = format!("SASL {} authentication", sasl.mechanism.name());
        let refused = |conn: &Self, message: String| ConnError {
            broker: conn.broker.clone(),
            operation: operation.clone(),
            message,
            auth: true,
        };
        let mut hs = SaslHandshakeRequest::default();
        hs.mechanism = StrBytes::from_static_str(sasl.mechanism.name());
        let (resp, _) = self.call(&hs, 1)?;
        if let Some(e) = ResponseError::try_from_code(resp.error_code) {
            let offered: Vec<&str> = resp.mechanisms.iter().map(|m| m.as_str()).collect();
            return Err(refused(
                self,
                format!("{e}; the broker offers {offered:?} on this listener"),
            ));
        }
        match sasl.mechanism {
            Mechanism::Plain => {
                let mut bytes = Vec::with_capacity(2 + sasl.username.len() + sasl.password.len());
                bytes.push(0);
                bytes.extend_from_slice(sasl.username.as_bytes());
                bytes.push(0);
                bytes.extend_from_slice(sasl.password.as_bytes());
                self.sasl_step(bytes, &refused)?;
            }
            Mechanism::ScramSha256 | Mechanism::ScramSha512 => {
                let mut scram =
                    super::scram::Scram::new(sasl.mechanism, &sasl.username, &sasl.password)
                        .map_err(|m| refused(self, m))?;
                let server_first = self.sasl_step(scram.client_first().into_bytes(), &refused)?;
                let server_first = String::from_utf8_lossy(&server_first).into_owned();
                let last = scram
                    .client_final(&server_first)
                    .map_err(|m| refused(self, m))?;
                let server_final = self.sasl_step(last.into_bytes(), &refused)?;
                scram
                    .verify_server_final(&String::from_utf8_lossy(&server_final))
                    .map_err(|m| refused(self, m))?;
            }
        }
        Ok(())
    }

    /// One SaslAuthenticate round trip: our bytes out, the server's back.
    fn sasl_step(
        &mut self,
        bytes: Vec<u8>,
        refused: &dyn Fn(&Self, String) -> ConnError,
    ) -> Result<Bytes, ConnError> {
        let mut auth = SaslAuthenticateRequest::default();
        auth.auth_bytes = Bytes::from(bytes);
        let (resp, _) = self.call(&auth, 2)?;
        if let Some(e) = ResponseError::try_from_code(resp.error_code) {
            let detail = resp
                .error_message
                .as_ref()
                .map_or(String::new(), |m| format!(": {}", m.as_str()));
            return Err(refused(self, format!("{e}{detail}")));
        }
        Ok(resp.auth_bytes)
    }

    /// The broker this connection goes to.
    pub(crate) fn broker(&self) -> &str {
        &self.broker
    }

    /// Sets the read and write timeout of the following calls.
    pub(crate) fn set_timeout(&mut self, timeout: Duration) -> Result<(), ConnError> {
        let t = Some(timeout.max(Duration::from_millis(1)));
        let tcp = self.stream.tcp();
        tcp.set_read_timeout(t)
            .and_then(|()| tcp.set_write_timeout(t))
            .map_err(|e| self.error("setting timeouts", e.to_string()))
    }

    /// The version `R` is sent in: the highest both sides serve, at most `cap`.
    pub(crate) fn version<R: Request>(&self, cap: i16) -> Result<i16, ConnError> {
        let name = api_name(R::KEY);
        let (min, max) = self.versions.get(&R::KEY).copied().ok_or_else(|| {
            self.error(name, "the broker does not serve this request".to_string())
        })?;
        let version = max.min(cap).min(R::VERSIONS.max);
        if version < min.max(R::VERSIONS.min) {
            return Err(self.error(
                name,
                format!(
                    "the broker serves versions {min} to {max}, this client {} to {}",
                    R::VERSIONS.min,
                    cap.min(R::VERSIONS.max)
                ),
            ));
        }
        Ok(version)
    }

    /// Sends `req` in the negotiated version (at most `cap`) and returns the answer and the version.
    pub(crate) fn call<R: Request>(
        &mut self,
        req: &R,
        cap: i16,
    ) -> Result<(R::Response, i16), ConnError> {
        let version = self.version::<R>(cap)?;
        Ok((self.exchange(req, version)?, version))
    }

    fn exchange<R: Request>(&mut self, req: &R, version: i16) -> Result<R::Response, ConnError> {
        let name = api_name(R::KEY);
        self.correlation = self.correlation.wrapping_add(1);
        let mut header = RequestHeader::default();
        header.request_api_key = R::KEY;
        header.request_api_version = version;
        header.correlation_id = self.correlation;
        header.client_id = Some(self.client_id.clone());
        let mut body = BytesMut::new();
        header
            .encode(&mut body, R::header_version(version))
            .and_then(|()| req.encode(&mut body, version))
            .map_err(|e| self.error(name, format!("encoding: {e}")))?;
        let len = u32::try_from(body.len())
            .map_err(|_| self.error(name, "request too large".to_string()))?;
        let mut frame = Vec::with_capacity(4 + body.len());
        frame.extend_from_slice(&len.to_be_bytes());
        frame.extend_from_slice(&body);
        self.stream
            .write_all(&frame)
            .map_err(|e| self.io_error(name, "sending", e))?;

        let mut size = [0u8; 4];
        self.stream
            .read_exact(&mut size)
            .map_err(|e| self.io_error(name, "reading the answer", e))?;
        let size = i32::from_be_bytes(size);
        let size = usize::try_from(size)
            .ok()
            .filter(|s| (4..=MAX_RESPONSE_BYTES).contains(s))
            .ok_or_else(|| {
                self.error(
                    name,
                    format!("answer length {size} is not between 4 and {MAX_RESPONSE_BYTES}"),
                )
            })?;
        let mut buf = vec![0u8; size];
        self.stream
            .read_exact(&mut buf)
            .map_err(|e| self.io_error(name, "reading the answer", e))?;
        let mut buf = Bytes::from(buf);
        let rh = ResponseHeader::decode(
            &mut buf,
            <R::Response as HeaderVersion>::header_version(version),
        )
        .map_err(|e| self.error(name, format!("decoding the answer's header: {e}")))?;
        if rh.correlation_id != self.correlation {
            return Err(self.error(
                name,
                format!(
                    "answer to request {} arrived while waiting for {}",
                    rh.correlation_id, self.correlation
                ),
            ));
        }
        R::Response::decode(&mut buf, version)
            .map_err(|e| self.error(name, format!("decoding the answer (v{version}): {e}")))
    }

    /// A failed read or write. A TLS alert from the broker after the handshake (TLS 1.3 checks
    /// the client's certificate then) is final, like a refused login: retrying cannot help.
    fn io_error(&self, operation: &str, what: &str, e: std::io::Error) -> ConnError {
        let alert = e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            .is_some_and(|r| matches!(r, rustls::Error::AlertReceived(_)));
        let mut err = self.error(operation, format!("{what}: {e}"));
        if alert {
            err.message = format!(
                "{what}: the broker ended TLS with {e} (does it require a client certificate \
                 this one does not match, or one that was not given?)"
            );
            err.auth = true;
        }
        err
    }

    fn error(&self, operation: &str, message: String) -> ConnError {
        ConnError {
            broker: self.broker.clone(),
            operation: operation.to_string(),
            message,
            auth: false,
        }
    }
}

fn api_name(key: i16) -> &'static str {
    match ApiKey::try_from(key) {
        Ok(ApiKey::FindCoordinator) => "FindCoordinator",
        Ok(ApiKey::JoinGroup) => "JoinGroup",
        Ok(ApiKey::SyncGroup) => "SyncGroup",
        Ok(ApiKey::Heartbeat) => "Heartbeat",
        Ok(ApiKey::LeaveGroup) => "LeaveGroup",
        Ok(ApiKey::OffsetCommit) => "OffsetCommit",
        Ok(ApiKey::ApiVersions) => "ApiVersions",
        Ok(ApiKey::SaslHandshake) => "SaslHandshake",
        Ok(ApiKey::SaslAuthenticate) => "SaslAuthenticate",
        _ => "request",
    }
}
