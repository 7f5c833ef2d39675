//! JWS (RFC 7515) with ES512 (RFC 7518 §3.4), as the Tang advertisement
//! uses it.
//!
//! Parsing accepts the flattened JSON serialization (what tangd sends with
//! one signature), the general one (`signatures` array, what tangd sends
//! with more) and the compact one. Verification works on the base64url
//! text exactly as received: the signing input is
//! `ASCII(protected_b64 || "." || payload_b64)` and nothing is
//! re-serialised (tangd's payload has spaces after `:` and `,`).
//!
//! ES512 signatures are raw `R ‖ S`, 66 + 66 bytes. Signing takes 66
//! caller-supplied random bytes and derives the nonce `k` from them, the
//! private scalar and the message hash (hedged: a weak random source alone
//! does not leak the key).

use p521::ecdsa::signature::Verifier;
use p521::elliptic_curve::ops::Reduce;
use p521::elliptic_curve::point::AffineCoordinates;
use p521::{FieldBytes, ProjectivePoint, Scalar};
use serde_json::{Map, Value};
use sha2::{Digest, Sha512};
use zeroize::Zeroizing;

use super::jwk::{scalar_from_random, PrivateKey, PublicKey, COORD_LEN};
use super::{b64, JoseError};

/// Length of an ES512 signature, `R ‖ S`.
pub const ES512_SIG_LEN: usize = 2 * COORD_LEN;

/// One signature of a JWS.
#[derive(Clone, Debug)]
pub struct JwsSignature {
    /// The protected header, base64url, exactly as received.
    pub protected_b64: String,
    /// The protected header's members, then the unprotected `header`'s
    /// (protected wins on a clash).
    pub header: Map<String, Value>,
    /// The decoded signature bytes.
    pub signature: Vec<u8>,
}

impl JwsSignature {
    /// The `alg` header parameter, if any.
    pub fn alg(&self) -> Option<&str> {
        self.header.get("alg").and_then(Value::as_str)
    }
}

/// A parsed JWS: the payload (base64url, as received) and its signatures.
#[derive(Clone, Debug)]
pub struct Jws {
    payload_b64: String,
    signatures: Vec<JwsSignature>,
}

fn object(v: &Value, what: &str) -> Result<Map<String, Value>, JoseError> {
    v.as_object()
        .cloned()
        .ok_or_else(|| JoseError::json(format!("{what} is not a JSON object")))
}

fn string_member<'a>(
    obj: &'a Map<String, Value>,
    name: &str,
    what: &str,
) -> Result<&'a str, JoseError> {
    obj.get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| JoseError::json(format!("{what} lacks a string {name:?}")))
}

fn signature(
    protected_b64: &str,
    unprotected: Option<&Value>,
    sig_b64: &str,
) -> Result<JwsSignature, JoseError> {
    let mut header = Map::new();
    if !protected_b64.is_empty() {
        let bytes = b64::decode(protected_b64, "JWS protected header")?;
        let v: Value = serde_json::from_slice(&bytes)
            .map_err(|_| JoseError::json("JWS protected header is not JSON"))?;
        header = object(&v, "JWS protected header")?;
    }
    if let Some(h) = unprotected {
        for (k, v) in object(h, "JWS header")? {
            header.entry(k).or_insert(v);
        }
    }
    Ok(JwsSignature {
        protected_b64: protected_b64.to_owned(),
        header,
        signature: b64::decode(sig_b64, "JWS signature")?,
    })
}

impl Jws {
    /// Parses a JWS in any serialization: flattened or general JSON, or
    /// compact.
    pub fn parse(bytes: &[u8]) -> Result<Jws, JoseError> {
        let text = std::str::from_utf8(bytes).map_err(|_| JoseError::json("JWS is not UTF-8"))?;
        let trimmed = text.trim();
        if !trimmed.starts_with('{') {
            let parts: Vec<&str> = trimmed.split('.').collect();
            let [protected, payload, sig] = parts[..] else {
                return Err(JoseError::json("JWS is neither JSON nor compact"));
            };
            b64::decode(payload, "JWS payload")?;
            return Ok(Jws {
                payload_b64: payload.to_owned(),
                signatures: vec![signature(protected, None, sig)?],
            });
        }
        let v: Value =
            serde_json::from_str(trimmed).map_err(|_| JoseError::json("JWS is not valid JSON"))?;
        let obj = object(&v, "JWS")?;
        let payload_b64 = string_member(&obj, "payload", "JWS")?.to_owned();
        b64::decode(&payload_b64, "JWS payload")?;
        let mut signatures = Vec::new();
        match obj.get("signatures") {
            Some(Value::Array(list)) => {
                if obj.contains_key("signature") {
                    return Err(JoseError::json("JWS has both signature and signatures"));
                }
                for item in list {
                    let s = object(item, "JWS signature")?;
                    signatures.push(signature(
                        s.get("protected").and_then(Value::as_str).unwrap_or(""),
                        s.get("header"),
                        string_member(&s, "signature", "JWS signature")?,
                    )?);
                }
            }
            Some(_) => return Err(JoseError::json("JWS signatures is not an array")),
            None => signatures.push(signature(
                obj.get("protected").and_then(Value::as_str).unwrap_or(""),
                obj.get("header"),
                string_member(&obj, "signature", "JWS")?,
            )?),
        }
        if signatures.is_empty() {
            return Err(JoseError::json("JWS has no signature"));
        }
        Ok(Jws {
            payload_b64,
            signatures,
        })
    }

    /// The payload, base64url, exactly as received.
    pub fn payload_b64(&self) -> &str {
        &self.payload_b64
    }

    /// The decoded payload bytes.
    pub fn payload(&self) -> Vec<u8> {
        // Checked at parse time.
        b64::decode(&self.payload_b64, "JWS payload").unwrap_or_default()
    }

    /// The signatures, in order.
    pub fn signatures(&self) -> &[JwsSignature] {
        &self.signatures
    }

    /// True if at least one signature is a valid ES512 signature by `key`.
    pub fn verified_by(&self, key: &PublicKey) -> bool {
        self.signatures
            .iter()
            .any(|s| verify_es512(key, &s.protected_b64, &self.payload_b64, s))
    }
}

fn verify_es512(
    key: &PublicKey,
    protected_b64: &str,
    payload_b64: &str,
    sig: &JwsSignature,
) -> bool {
    if sig.alg() != Some("ES512") || sig.signature.len() != ES512_SIG_LEN {
        return false;
    }
    let Ok(signature) = p521::ecdsa::Signature::from_slice(&sig.signature) else {
        return false;
    };
    let Ok(vk) = p521::ecdsa::VerifyingKey::from_affine(*key.affine()) else {
        return false;
    };
    let input = format!("{protected_b64}.{payload_b64}");
    vk.verify(input.as_bytes(), &signature).is_ok()
}

/// ES512 over `message` with `key`; `random` seeds the nonce (hedged with
/// the key and the message). Returns `R ‖ S`, 132 bytes.
pub fn sign_es512(
    key: &PrivateKey,
    message: &[u8],
    random: &[u8; COORD_LEN],
) -> Result<Vec<u8>, JoseError> {
    let digest = Sha512::digest(message);
    let mut z_bytes = [0u8; COORD_LEN];
    z_bytes[COORD_LEN - 64..].copy_from_slice(&digest);
    // SHA-512 is shorter than n: no truncation, and z < n.
    let z = <Scalar as Reduce<p521::U576>>::reduce_bytes(&FieldBytes::clone_from_slice(&z_bytes));
    let d = key.scalar();
    let d_bytes = Zeroizing::new(d.to_bytes());
    let mut seed = Zeroizing::new([0u8; 2 * 64]);
    for (i, chunk) in seed.chunks_mut(64).enumerate() {
        let mut h = Sha512::new();
        h.update([b'k', i as u8]);
        h.update(random);
        h.update(d_bytes.as_slice());
        h.update(digest);
        chunk.copy_from_slice(&h.finalize());
    }
    let mut k_random = Zeroizing::new([0u8; COORD_LEN]);
    k_random.copy_from_slice(&seed[..COORD_LEN]);
    let k = scalar_from_random(&k_random)?;
    let big_r = (ProjectivePoint::GENERATOR * *k).to_affine();
    let r = <Scalar as Reduce<p521::U576>>::reduce_bytes(&big_r.x());
    let k_inv = Option::<Scalar>::from(k.invert()).ok_or(JoseError::Signature)?;
    let s = k_inv * (z + r * *d);
    if bool::from(r.is_zero()) || bool::from(s.is_zero()) {
        return Err(JoseError::Signature);
    }
    let mut out = Vec::with_capacity(ES512_SIG_LEN);
    out.extend_from_slice(&r.to_bytes());
    out.extend_from_slice(&s.to_bytes());
    Ok(out)
}

/// Signs `payload_b64` once per `(key, random)` with the protected header
/// `protected_json` (which must say `"alg":"ES512"`), and writes the JWS as
/// tangd does: flattened for one signature, general for more, with
/// jansson's default separators (`": "` and `", "`).
pub fn sign(
    payload_b64: &str,
    protected_json: &str,
    signers: &[(&PrivateKey, [u8; COORD_LEN])],
) -> Result<String, JoseError> {
    let protected_b64 = b64::encode(protected_json.as_bytes());
    let input = format!("{protected_b64}.{payload_b64}");
    let mut sigs = Vec::new();
    for (key, random) in signers {
        sigs.push(b64::encode(&sign_es512(key, input.as_bytes(), random)?));
    }
    match &sigs[..] {
        [] => Err(JoseError::json("no signing key")),
        [one] => Ok(format!(
            r#"{{"payload": "{payload_b64}", "protected": "{protected_b64}", "signature": "{one}"}}"#
        )),
        many => {
            let list: Vec<String> = many
                .iter()
                .map(|sig| format!(r#"{{"protected": "{protected_b64}", "signature": "{sig}"}}"#))
                .collect();
            Ok(format!(
                r#"{{"payload": "{payload_b64}", "signatures": [{}]}}"#,
                list.join(", ")
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROTECTED: &str = r#"{"alg":"ES512","cty":"jwk-set+json"}"#;

    fn key(seed: u8) -> PrivateKey {
        PrivateKey::from_random(&[seed; COORD_LEN]).unwrap()
    }

    #[test]
    fn sign_then_verify_flattened_and_general() {
        let (a, b) = (key(1), key(2));
        let payload = b64::encode(br#"{"keys": []}"#);
        let one = sign(&payload, PROTECTED, &[(&a, [3; 66])]).unwrap();
        let jws = Jws::parse(one.as_bytes()).unwrap();
        assert_eq!(jws.signatures().len(), 1);
        assert!(jws.verified_by(a.public()));
        assert!(!jws.verified_by(b.public()));
        assert_eq!(jws.payload(), br#"{"keys": []}"#);

        let two = sign(&payload, PROTECTED, &[(&a, [3; 66]), (&b, [4; 66])]).unwrap();
        assert!(two.contains(r#""signatures": ["#));
        let jws = Jws::parse(two.as_bytes()).unwrap();
        assert_eq!(jws.signatures().len(), 2);
        assert!(jws.verified_by(a.public()) && jws.verified_by(b.public()));
    }

    #[test]
    fn deterministic_given_the_randomness() {
        let a = key(5);
        assert_eq!(
            sign_es512(&a, b"m", &[1; 66]).unwrap(),
            sign_es512(&a, b"m", &[1; 66]).unwrap()
        );
        assert_ne!(
            sign_es512(&a, b"m", &[1; 66]).unwrap(),
            sign_es512(&a, b"m", &[2; 66]).unwrap()
        );
    }

    #[test]
    fn tampering_fails() {
        let a = key(1);
        let payload = b64::encode(b"{}");
        let text = sign(&payload, PROTECTED, &[(&a, [3; 66])]).unwrap();
        let mut v: Value = serde_json::from_str(&text).unwrap();
        let mut sig = b64::decode(v["signature"].as_str().unwrap(), "s").unwrap();
        sig[10] ^= 1;
        v["signature"] = b64::encode(&sig).into();
        let jws = Jws::parse(v.to_string().as_bytes()).unwrap();
        assert!(!jws.verified_by(a.public()));
        // Other payload under the same signature.
        let mut v: Value = serde_json::from_str(&text).unwrap();
        v["payload"] = b64::encode(b"{ }").into();
        assert!(!Jws::parse(v.to_string().as_bytes())
            .unwrap()
            .verified_by(a.public()));
        // alg other than ES512.
        let text = sign(&payload, r#"{"alg":"ES256"}"#, &[(&a, [3; 66])]).unwrap();
        assert!(!Jws::parse(text.as_bytes()).unwrap().verified_by(a.public()));
    }

    #[test]
    fn parse_errors() {
        for bad in [
            &b""[..],
            b"{",
            b"[]",
            br#"{"payload":"e30"}"#,
            br#"{"payload":"e30","signatures":[]}"#,
            br#"{"payload":"e30","signatures":{}}"#,
            br#"{"payload":"***","signature":""}"#,
            b"a.b",
        ] {
            assert!(
                Jws::parse(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
