//! The security settings (`security.protocol`, `ssl.*`, `sasl.*`) as the group member uses them.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::error::{Result, StreamsError};

/// How this application's own connections (the group member's) reach the brokers: the Kafka
/// clients' `security.protocol`, TLS and SASL settings, checked at start. rdkafka gets the same
/// properties, so both kinds of connection log in the same way.
#[derive(Clone, PartialEq, Eq, Default)]
pub(crate) struct Security {
    /// TLS (`SSL` and `SASL_SSL`), or none (`PLAINTEXT` and `SASL_PLAINTEXT`).
    pub(crate) tls: Option<Tls>,
    /// SASL (`SASL_PLAINTEXT` and `SASL_SSL`), or none.
    pub(crate) sasl: Option<Sasl>,
}

/// TLS settings: whom to trust, and what to present.
#[derive(Clone, PartialEq, Eq, Debug)]
pub(crate) struct Tls {
    /// `ssl.ca.location`; `None`: the system's certificates.
    pub(crate) ca: Option<PathBuf>,
    /// A client certificate and its key (mutual TLS), if configured.
    pub(crate) client: Option<ClientCert>,
}

/// Where a PEM text comes from: a `*.location` file or an inline `*.pem` property.
#[derive(Clone, PartialEq, Eq, Debug)]
pub(crate) enum Pem {
    /// A file.
    File(PathBuf),
    /// The PEM text itself.
    Inline(String),
}

/// A client certificate chain and its private key, both PEM.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct ClientCert {
    /// `ssl.certificate.location` or `ssl.certificate.pem`.
    pub(crate) certificate: Pem,
    /// `ssl.key.location` or `ssl.key.pem`.
    pub(crate) key: Pem,
}

impl std::fmt::Debug for ClientCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // An inline key stays out of logs and error messages.
        let key = match &self.key {
            Pem::File(p) => format!("{}", p.display()),
            Pem::Inline(_) => "(inline)".into(),
        };
        write!(f, "ClientCert({:?}, key {key})", self.certificate)
    }
}

/// The SASL mechanisms the member speaks.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Mechanism {
    /// `PLAIN` (RFC 4616).
    Plain,
    /// `SCRAM-SHA-256` (RFC 7677).
    ScramSha256,
    /// `SCRAM-SHA-512`.
    ScramSha512,
}

impl Mechanism {
    /// The mechanism's name, as in `sasl.mechanism` and the SaslHandshake.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

/// SASL credentials.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Sasl {
    /// `sasl.mechanism` (or librdkafka's `sasl.mechanisms`).
    pub(crate) mechanism: Mechanism,
    /// `sasl.username`.
    pub(crate) username: String,
    /// `sasl.password`.
    pub(crate) password: String,
}

impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut s = f.debug_struct("Security");
        s.field("tls", &self.tls);
        // The password stays out of logs and error messages.
        if let Some(sasl) = &self.sasl {
            s.field(
                "sasl",
                &format_args!("{} {}", sasl.mechanism.name(), sasl.username),
            );
        }
        s.finish()
    }
}

/// Reads the security settings the consumers get (the group member must log in as they do).
/// Only what both rdkafka and the member support is accepted: TLS with the broker's certificate
/// checked (against `ssl.ca.location` or the system's certificates, and its host name),
/// optionally presenting a PEM client certificate, and SASL PLAIN, SCRAM-SHA-256 or
/// SCRAM-SHA-512. Anything else is refused naming its property.
pub(crate) fn security(consumer: &BTreeMap<String, String>) -> Result<Security> {
    let protocol = consumer
        .get("security.protocol")
        .map(|p| p.trim().to_ascii_uppercase())
        .unwrap_or_else(|| "PLAINTEXT".into());
    let (tls, sasl) = match protocol.as_str() {
        "PLAINTEXT" => (false, false),
        "SASL_PLAINTEXT" => (false, true),
        "SSL" => (true, false),
        "SASL_SSL" => (true, true),
        other => {
            return Err(StreamsError::config(
                "security.protocol",
                format!("`{other}` is not one of PLAINTEXT, SASL_PLAINTEXT, SSL, SASL_SSL"),
            ))
        }
    };
    Ok(Security {
        tls: if tls {
            Some(tls_settings(consumer)?)
        } else {
            None
        },
        sasl: if sasl {
            Some(sasl_settings(consumer)?)
        } else {
            None
        },
    })
}

fn tls_settings(consumer: &BTreeMap<String, String>) -> Result<Tls> {
    for (key, why) in [
        (
            "ssl.keystore.location",
            "PKCS#12 keystores are not supported: give the certificate and its key as PEM \
             (ssl.certificate.location and ssl.key.location)",
        ),
        (
            "ssl.key.password",
            "encrypted private keys are not supported: give an unencrypted PEM key \
             (the group member's TLS library cannot decrypt one)",
        ),
        (
            "ssl.engine.location",
            "OpenSSL engines are not supported: the group member does not use OpenSSL",
        ),
        (
            "ssl.providers",
            "OpenSSL providers are not supported: the group member does not use OpenSSL",
        ),
    ] {
        if consumer.contains_key(key) {
            return Err(StreamsError::config(key, why));
        }
    }
    if let Some(v) = consumer.get("ssl.endpoint.identification.algorithm") {
        if v.trim().eq_ignore_ascii_case("none") {
            return Err(StreamsError::config(
                "ssl.endpoint.identification.algorithm",
                "`none` is not supported: the group member always checks that the \
                 broker's certificate names the broker it connects to",
            ));
        }
    }
    let pem = |location: &str, inline: &str| -> Result<Option<Pem>> {
        match (consumer.get(location), consumer.get(inline)) {
            (Some(_), Some(_)) => Err(StreamsError::config(
                inline,
                format!("set either {location} or {inline}, not both"),
            )),
            (Some(p), None) => Ok(Some(Pem::File(PathBuf::from(p)))),
            (None, Some(t)) => Ok(Some(Pem::Inline(t.clone()))),
            (None, None) => Ok(None),
        }
    };
    let certificate = pem("ssl.certificate.location", "ssl.certificate.pem")?;
    let key = pem("ssl.key.location", "ssl.key.pem")?;
    let client = match (certificate, key) {
        (Some(certificate), Some(key)) => Some(ClientCert { certificate, key }),
        (None, None) => None,
        (Some(_), None) => {
            return Err(StreamsError::config(
                "ssl.key.location",
                "is required with ssl.certificate.location (the client certificate's key)",
            ))
        }
        (None, Some(_)) => {
            return Err(StreamsError::config(
                "ssl.certificate.location",
                "is required with ssl.key.location (the key's client certificate)",
            ))
        }
    };
    Ok(Tls {
        ca: consumer.get("ssl.ca.location").map(PathBuf::from),
        client,
    })
}

fn sasl_settings(consumer: &BTreeMap<String, String>) -> Result<Sasl> {
    let key = if consumer.contains_key("sasl.mechanism") {
        "sasl.mechanism"
    } else {
        "sasl.mechanisms"
    };
    // librdkafka's default mechanism is GSSAPI, which is refused below like any other we lack.
    let named = consumer.get(key).map(|m| m.trim()).unwrap_or("GSSAPI");
    let mechanism = match named.to_ascii_uppercase().as_str() {
        "PLAIN" => Mechanism::Plain,
        "SCRAM-SHA-256" => Mechanism::ScramSha256,
        "SCRAM-SHA-512" => Mechanism::ScramSha512,
        _ => {
            return Err(StreamsError::config(
                key,
                format!(
                    "`{named}` is not supported: PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 are \
                     (the group member speaks no other mechanism)"
                ),
            ))
        }
    };
    let get = |k: &str| {
        consumer.get(k).cloned().ok_or_else(|| {
            StreamsError::config(
                k,
                format!("is required with the {} mechanism", mechanism.name()),
            )
        })
    };
    Ok(Sasl {
        mechanism,
        username: get("sasl.username")?,
        password: get("sasl.password")?,
    })
}
