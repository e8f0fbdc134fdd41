//! The client side of SASL SCRAM (RFC 5802, with SHA-256 per RFC 7677 and SHA-512), as Kafka
//! brokers speak it: no channel binding, the username escaped as a saslname.

use std::num::NonZeroU32;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ring::{digest, hmac, pbkdf2};

use crate::config::Mechanism;

/// Fewer iterations than Kafka's minimum mean a broker (or someone in between) asking for a
/// weak hash: refused, as Kafka's Java client refuses it.
const MIN_ITERATIONS: u32 = 4096;
/// More than this is refused too: the count comes from the network and costs our CPU (Kafka
/// itself allows at most 16,384).
const MAX_ITERATIONS: u32 = 100_000;

/// One SCRAM exchange, from the client's first message to checking the server's signature.
pub(crate) struct Scram {
    mechanism: Mechanism,
    password: String,
    client_first_bare: String,
    client_nonce: String,
    /// After the client's final message: the signature the server must prove.
    expected_server_signature: Option<Vec<u8>>,
}

impl Scram {
    /// Starts an exchange for `username` with a fresh random nonce.
    pub(crate) fn new(
        mechanism: Mechanism,
        username: &str,
        password: &str,
    ) -> Result<Scram, String> {
        use ring::rand::SecureRandom;
        let mut raw = [0u8; 24];
        ring::rand::SystemRandom::new()
            .fill(&mut raw)
            .map_err(|_| "no random bytes for the SCRAM nonce".to_string())?;
        Ok(Scram::with_nonce(
            mechanism,
            username,
            password,
            &B64.encode(raw),
        ))
    }

    /// Starts an exchange with a given nonce (tests use the RFC's).
    fn with_nonce(mechanism: Mechanism, username: &str, password: &str, nonce: &str) -> Scram {
        let name = username.replace('=', "=3D").replace(',', "=2C");
        Scram {
            mechanism,
            password: password.to_string(),
            client_first_bare: format!("n={name},r={nonce}"),
            client_nonce: nonce.to_string(),
            expected_server_signature: None,
        }
    }

    /// The client's first message: no channel binding (`n,,`) and the bare part.
    pub(crate) fn client_first(&self) -> String {
        format!("n,,{}", self.client_first_bare)
    }

    /// Reads the server's first message (nonce, salt, iterations) and returns the client's
    /// final message with its proof.
    pub(crate) fn client_final(&mut self, server_first: &str) -> Result<String, String> {
        let attr = |name: char| {
            server_first
                .split(',')
                .find_map(|a| a.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
                .ok_or_else(|| format!("the server's first message has no `{name}=`"))
        };
        if let Some(e) = server_first.strip_prefix("e=") {
            return Err(format!("the server refused: {e}"));
        }
        let nonce = attr('r')?;
        if !nonce.starts_with(&self.client_nonce) || nonce.len() == self.client_nonce.len() {
            return Err("the server's nonce does not extend ours".into());
        }
        let salt = B64
            .decode(attr('s')?)
            .map_err(|e| format!("the server's salt is not base64: {e}"))?;
        let iterations: u32 = attr('i')?
            .parse()
            .map_err(|e| format!("the server's iteration count: {e}"))?;
        if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
            return Err(format!(
                "the server asks for {iterations} iterations; {MIN_ITERATIONS} to {MAX_ITERATIONS} are accepted"
            ));
        }
        let (prf, mac, hash, len) = match self.mechanism {
            Mechanism::ScramSha256 => (
                pbkdf2::PBKDF2_HMAC_SHA256,
                hmac::HMAC_SHA256,
                &digest::SHA256,
                32,
            ),
            Mechanism::ScramSha512 => (
                pbkdf2::PBKDF2_HMAC_SHA512,
                hmac::HMAC_SHA512,
                &digest::SHA512,
                64,
            ),
            Mechanism::Plain => return Err("PLAIN is not a SCRAM mechanism".into()),
        };
        let mut salted = vec![0u8; len];
        let rounds = NonZeroU32::new(iterations).expect("checked to be at least the minimum");
        pbkdf2::derive(prf, rounds, &salt, self.password.as_bytes(), &mut salted);
        let salted = hmac::Key::new(mac, &salted);
        let client_key = hmac::sign(&salted, b"Client Key");
        let stored_key = digest::digest(hash, client_key.as_ref());
        // `biws` is base64 of the GS2 header `n,,`.
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
        let signature = hmac::sign(
            &hmac::Key::new(mac, stored_key.as_ref()),
            auth_message.as_bytes(),
        );
        let proof: Vec<u8> = client_key
            .as_ref()
            .iter()
            .zip(signature.as_ref())
            .map(|(k, s)| k ^ s)
            .collect();
        let server_key = hmac::sign(&salted, b"Server Key");
        let server_signature = hmac::sign(
            &hmac::Key::new(mac, server_key.as_ref()),
            auth_message.as_bytes(),
        );
        self.expected_server_signature = Some(server_signature.as_ref().to_vec());
        Ok(format!("{without_proof},p={}", B64.encode(proof)))
    }

    /// Checks the server's final message: the server proves it knows our credentials too.
    pub(crate) fn verify_server_final(&self, server_final: &str) -> Result<(), String> {
        if let Some(e) = server_final.strip_prefix("e=") {
            return Err(format!("the server refused: {e}"));
        }
        let v = server_final
            .split(',')
            .find_map(|a| a.strip_prefix("v="))
            .ok_or("the server's final message has no signature")?;
        let got = B64
            .decode(v)
            .map_err(|e| format!("the server's signature is not base64: {e}"))?;
        match &self.expected_server_signature {
            Some(want) if *want == got => Ok(()),
            Some(_) => {
                Err("the server's signature is wrong: it does not know our credentials".into())
            }
            None => Err("the server's final message came before our final message".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_matches_the_rfc_7677_example() {
        let mut s = Scram::with_nonce(
            Mechanism::ScramSha256,
            "user",
            "pencil",
            "rOprNGfwEbeRWgbNEkqO",
        );
        assert_eq!(s.client_first(), "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let last = s
            .client_final("r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
            .unwrap();
        assert_eq!(
            last,
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        s.verify_server_final("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .unwrap();
        let e = s
            .verify_server_final("v=7rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .unwrap_err();
        assert!(e.contains("wrong"), "{e}");
    }

    /// Expected values from Python's hashlib and hmac, an implementation independent of ring.
    #[test]
    fn sha512_matches_an_independent_computation() {
        let mut s = Scram::with_nonce(
            Mechanism::ScramSha512,
            "streams",
            "streams-secret",
            "fyko+d2lbbFgONRv9qkxdawL",
        );
        let last = s
            .client_final("r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096")
            .unwrap();
        assert_eq!(
            last,
            "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=TBVr+h73z0c5JCOHYkZvxYKj4pS9X8pHUN2GchfbiF4T6wI0R9nXSz4sQZHRQFzej80zuHMoGaXhzfPsOzDAug=="
        );
        s.verify_server_final("v=GzbZONIC253PGF7M3/hDGi39VtzIzS0u3wysu6uw/UGabTovMhiABhRnQUKx9cW0eALs+Zt04X6bW6oLRR6k+w==")
            .unwrap();
    }

    #[test]
    fn a_server_asking_too_little_or_not_extending_the_nonce_is_refused() {
        let mut s = Scram::with_nonce(Mechanism::ScramSha256, "a=b,c", "p", "abc");
        assert_eq!(s.client_first(), "n,,n=a=3Db=2Cc,r=abc");
        for (server_first, says) in [
            ("r=abcdef,s=QSXCR+Q6sek8bf92,i=1024", "iterations"),
            ("r=abcdef,s=QSXCR+Q6sek8bf92,i=99999999", "iterations"),
            ("r=xyzdef,s=QSXCR+Q6sek8bf92,i=4096", "nonce"),
            ("r=abc,s=QSXCR+Q6sek8bf92,i=4096", "nonce"),
            ("r=abcdef,i=4096", "`s=`"),
            ("e=other-error", "refused"),
        ] {
            let e = s.client_final(server_first).unwrap_err();
            assert!(e.contains(says), "{server_first}: {e}");
        }
        let fresh = Scram::with_nonce(Mechanism::ScramSha256, "u", "p", "abc");
        assert!(fresh.verify_server_final("v=AAAA").is_err());
    }
}
