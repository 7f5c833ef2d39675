//! JOSE as Tang and clevis use it: P-521 keys as JWKs, RFC 7638
//! thumbprints, ES512 JWS (the advertisement), ECDH-ES + A256GCM compact
//! JWE (the clevis tang pin) and the McCallum-Relyea exchange (`ECMR`).
//!
//! Spec: `docs/formats/tang-jose.md`; protocol facts:
//! `shared/design/tang-notes.md` §1.2–1.7. The references we are byte
//! compatible with are tang 11, clevis 19 and jose 11 (latchset).
//!
//! Pure: no I/O and no randomness of its own. Every function that needs
//! random bytes (ephemeral scalars, ECDSA nonces, IVs) takes them as an
//! argument, so everything here is deterministic and testable against
//! vectors. Callers draw those bytes from the operating system.
//!
//! - [`b64`]: base64url without padding (RFC 7515 §2);
//! - [`jwk`]: P-521 public/private keys in JWK form, thumbprints, jose's
//!   key-use permission rule;
//! - [`jws`]: parse (flattened and general), verify and sign ES512;
//! - [`jwe`]: ConcatKDF, ECDH-ES direct with A256GCM, compact JWE;
//! - [`ecmr`]: the McCallum-Relyea exchange, server and client halves;
//! - [`clevis`]: the clevis `tang` pin's protected header;
//! - [`json`]: the canonical JSON writer (sorted keys, compact) that tangd
//!   and jose use for what they hash or answer.
//!
//! The whole Tang round trip, with fixed bytes standing in for randomness:
//!
//! ```
//! use ssformat::jose::clevis::{verify_advertisement, wrap, TangPin};
//! use ssformat::jose::ecmr::{self, RecRequest};
//! use ssformat::jose::{b64, jws, PrivateKey};
//!
//! // Server: a signing key and an exchange key, and the signed advertisement.
//! let sig = PrivateKey::from_random(&[1; 66]).unwrap();
//! let exc = PrivateKey::from_random(&[2; 66]).unwrap();
//! let payload = format!(
//!     r#"{{"keys": [{}, {}]}}"#,
//!     sig.public().to_jwk_string(Some("ES512"), &["verify"]),
//!     exc.public().to_jwk_string(Some("ECMR"), &["deriveKey"]),
//! );
//! let adv = jws::sign(
//!     &b64::encode(payload.as_bytes()),
//!     r#"{"alg":"ES512","cty":"jwk-set+json"}"#,
//!     &[(&sig, [3; 66])],
//! )
//! .unwrap();
//!
//! // Client, offline: check the advertisement, seal a secret.
//! let adv = verify_advertisement(adv.as_bytes(), None).unwrap();
//! let jwe = wrap(&adv, "http://tang.example", &[4; 66], &[5; 12], b"secret").unwrap();
//!
//! // Client, at recovery: blind the JWE's epk; the server multiplies.
//! let pin = TangPin::parse(&jwe).unwrap();
//! let (x, blinding) = ecmr::blind(&pin.epk, &[6; 66]).unwrap();
//! let y = RecRequest::parse(ecmr::request_json(&x).as_bytes())
//!     .unwrap()
//!     .exchange(&exc)
//!     .unwrap();
//! let reply = ecmr::reply_json(&y); // what POST /rec/{kid} answers
//! let k = ecmr::unblind(&ecmr::parse_reply(reply.as_bytes()).unwrap(), &pin.exchange_key, &blinding).unwrap();
//! assert_eq!(&pin.decrypt(&k).unwrap()[..], b"secret");
//! ```

use thiserror::Error;

pub mod b64;
pub mod clevis;
pub mod ecmr;
pub mod json;
pub mod jwe;
pub mod jwk;
pub mod jws;

pub use jwk::{PrivateKey, PublicKey, ThpHash};

/// A JOSE object that is malformed or fails a cryptographic check. The
/// messages name the object and the reason; never key bytes.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum JoseError {
    /// Not base64url (unpadded, URL-safe alphabet).
    #[error("{0} is not base64url")]
    Base64(&'static str),
    /// Not JSON, or JSON of the wrong shape.
    #[error("{0}")]
    Json(String),
    /// A key that is not a valid P-521 EC JWK.
    #[error("bad key: {0}")]
    Key(&'static str),
    /// A JWS that does not verify.
    #[error("signature does not verify")]
    Signature,
    /// A JWE that cannot be opened (wrong key, tampered, truncated). Opaque
    /// on purpose.
    #[error("decryption failed")]
    Decrypt,
    /// Something unsupported (algorithm, curve, serialization).
    #[error("unsupported: {0}")]
    Unsupported(String),
}

impl JoseError {
    pub(crate) fn json(msg: impl Into<String>) -> Self {
        JoseError::Json(msg.into())
    }
}
