//! The clevis `tang` pin on the client: [`seal`] a secret to a Tang
//! server's advertisement (offline), [`unseal`] it with one blinded
//! McCallum-Relyea request to the server.
//!
//! The envelope is the compact JWE `clevis encrypt tang` writes, so
//! `clevis decrypt` opens what [`seal`] makes and [`unseal`] opens what
//! clevis makes (tang-notes §1.7; spec `docs/formats/tang-jose.md`). The
//! network is the caller's: [`unseal`] hands a [`RecRequest`] to a closure
//! and gets the reply body back, so the same code runs over plain HTTP
//! (stock tangd), over mutual TLS (our server), or in tests.
//!
//! Randomness (the ephemeral scalars and the IV) comes from the operating
//! system.

use std::fmt;

use ssformat::jose::clevis::{self as pin, PinError, TangPin};
use ssformat::jose::ecmr;
use ssformat::jose::JoseError;
use zeroize::Zeroizing;

use super::TangError;

/// One `POST {url}/rec/{kid}` with `body` (content type
/// `application/jwk+json`) that [`unseal`] needs answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecRequest {
    /// The Tang server's base URL as the envelope names it
    /// (`clevis.tang.url`, no `/rec` suffix).
    pub url: String,
    /// The exchange key's thumbprint, the last path segment.
    pub kid: String,
    /// The blinded point as a JWK (JSON).
    pub body: Vec<u8>,
}

/// Why [`unseal`] failed.
#[derive(Debug, thiserror::Error)]
pub enum UnsealError<E: fmt::Display> {
    /// Not a compact JWE, or a tang pin header that is incomplete.
    #[error("bad envelope: {0}")]
    BadEnvelope(String),
    /// A JWE, but not sealed with the tang pin.
    #[error("{0}")]
    NotTangPin(String),
    /// The `rec` call failed (network, TLS, HTTP status…).
    #[error("Tang server: {0}")]
    Server(E),
    /// The server answered something that is not an EC point on P-521.
    #[error("bad reply from the Tang server: {0}")]
    BadServerReply(String),
    /// The recovered key does not open the envelope: the server answered
    /// with another key, or the envelope was altered.
    #[error("decryption failed (wrong Tang server key, or the envelope was altered)")]
    Decryption,
}

/// Verifies the advertisement (every verify key signed; if `thp` is given
/// it must match a verify key's thumbprint, any hash), then wraps
/// `plaintext` for its exchange key. Returns the compact JWE.
///
/// `url` is written into the envelope: it is where [`unseal`] (and `clevis
/// decrypt`) will send the recovery request. With `thp: None` the
/// advertisement is trusted as fetched (clevis' `-y`): pin the signing
/// key's thumbprint whenever the operator has it.
pub fn seal(
    adv_jws: &[u8],
    url: &str,
    thp: Option<&str>,
    plaintext: &[u8],
) -> Result<String, TangError> {
    let adv = pin::verify_advertisement(adv_jws, thp).map_err(TangError::Advertisement)?;
    let c_random = Zeroizing::new(crate::rng::bytes::<66>());
    let iv = crate::rng::bytes::<12>();
    pin::wrap(&adv, url, &c_random, &iv, plaintext).map_err(TangError::Jose)
}

/// Parses the JWE, builds the blinded request, calls `rec` once, unblinds,
/// decrypts.
pub fn unseal<E: fmt::Display>(
    jwe: &str,
    rec: &mut dyn FnMut(&RecRequest) -> Result<Vec<u8>, E>,
) -> Result<Zeroizing<Vec<u8>>, UnsealError<E>> {
    let parsed = TangPin::parse(jwe).map_err(|e| match e {
        PinError::Envelope(e) => UnsealError::BadEnvelope(e.to_string()),
        other @ PinError::NotTang(_) => UnsealError::NotTangPin(other.to_string()),
    })?;
    let e_random = Zeroizing::new(crate::rng::bytes::<66>());
    let (x, blinding) =
        ecmr::blind(&parsed.epk, &e_random).map_err(|e| UnsealError::BadEnvelope(e.to_string()))?;
    let request = RecRequest {
        url: parsed.url.clone(),
        kid: parsed.kid.clone(),
        body: ecmr::request_json(&x).into_bytes(),
    };
    let reply = rec(&request).map_err(UnsealError::Server)?;
    let y = ecmr::parse_reply(&reply).map_err(|e| UnsealError::BadServerReply(e.to_string()))?;
    let k = ecmr::unblind(&y, &parsed.exchange_key, &blinding)
        .map_err(|e| UnsealError::BadServerReply(e.to_string()))?;
    parsed.decrypt(&k).map_err(|e| match e {
        JoseError::Decrypt => UnsealError::Decryption,
        other => UnsealError::BadEnvelope(other.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tang::KeySet;

    #[test]
    fn seal_unseal_through_keyset() {
        let tmp = tempfile::tempdir().unwrap();
        KeySet::generate(tmp.path()).unwrap();
        let set = KeySet::load(tmp.path()).unwrap();
        let adv = set.adv(None).unwrap();
        let thp = set.signing_key_ids()[0].clone();
        let jwe = seal(
            &adv,
            "https://store.example:8443",
            Some(&thp),
            b"the store key",
        )
        .unwrap();
        let mut calls = Vec::new();
        let plain = unseal(&jwe, &mut |r: &RecRequest| {
            calls.push(r.clone());
            set.rec(&r.kid, &r.body)
        })
        .unwrap();
        assert_eq!(&plain[..], b"the store key");
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].url, "https://store.example:8443");
        assert_eq!(
            set.exchange_key_id(&calls[0].kid),
            Some(calls[0].kid.clone())
        );

        // A wrong thp refuses to seal.
        assert!(seal(&adv, "u", Some("AAAA"), b"x").is_err());
        // Server errors pass through; bad replies and wrong keys are named.
        let err = unseal(&jwe, &mut |_: &RecRequest| Err::<Vec<u8>, _>("down")).unwrap_err();
        assert!(matches!(err, UnsealError::Server("down")));
        let err = unseal(&jwe, &mut |_: &RecRequest| Ok::<_, String>(b"{}".to_vec())).unwrap_err();
        assert!(matches!(err, UnsealError::BadServerReply(_)), "{err}");
        let other = tempfile::tempdir().unwrap();
        KeySet::generate(other.path()).unwrap();
        let other = KeySet::load(other.path()).unwrap();
        let kid = other.exchange_key_ids()[0].clone();
        let err = unseal(&jwe, &mut |r: &RecRequest| other.rec(&kid, &r.body)).unwrap_err();
        assert!(matches!(err, UnsealError::Decryption), "{err}");
        let err = unseal("x.y", &mut |r: &RecRequest| set.rec(&r.kid, &r.body)).unwrap_err();
        assert!(matches!(err, UnsealError::BadEnvelope(_)), "{err}");
    }
}
