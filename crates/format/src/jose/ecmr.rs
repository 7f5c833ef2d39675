//! The McCallum-Relyea exchange (`ECMR`), Tang's blinded key recovery
//! (tang-notes §1.5).
//!
//! Server: `Y = s·X` for the client's point `X`, after the checks tangd 11
//! makes, with the same HTTP statuses ([`RecRequest`]). Client: blind the
//! JWE's `epk` `C` with an ephemeral `E = e·G` ([`blind`]), send
//! `X = C + E`, and unblind the reply: `K = Y − e·S` ([`unblind`]), which is
//! `s·C`, the ECDH-ES shared point of the JWE.
//!
//! The request checks, in tangd's order (`tangd.c` `rec()`, jose's
//! `jose_jwk_prm`, `jose_jwk_exc` and the ECMR exchange):
//!
//! 1. the body (up to its first NUL byte, as tangd reads a C string) is a
//!    JSON object or array → else 400;
//! 2. `key_ops`/`use` permit `deriveKey` (absent is fine) → else 403;
//! 3. it is an object with a string `kty` and no non-string `alg` → else
//!    400; `kty` is `"EC"` → else 400; `alg` is absent or `"ECMR"` → else 400;
//! 4. (the caller finds the server key by `kid`: 404, and checks it: 403);
//! 5. [`RecRequest::exchange`]: `crv` is the server's (`P-521`), `x`/`y`
//!    are base64url of a point on the curve (any length whose value fits,
//!    as jose reads them), and a `d`, if present, is that point's private
//!    key → else 400.

use serde_json::Value;
use thiserror::Error;

use super::jwk::{permits, PrivateKey, PublicKey, COORD_LEN};
use super::{b64, JoseError};

/// Why tangd refuses a `/rec` request, with its status.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum RecError {
    /// 400 Bad Request.
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    /// 403 Forbidden.
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
}

impl RecError {
    /// The HTTP status tangd answers.
    pub fn status(&self) -> u16 {
        match self {
            RecError::BadRequest(_) => 400,
            RecError::Forbidden(_) => 403,
        }
    }
}

/// A `/rec` request body that passed tangd's checks made before the key
/// lookup (steps 1–3).
#[derive(Clone, Debug)]
pub struct RecRequest {
    jwk: Value,
}

/// jansson's `JSON_PARSER_MAX_DEPTH`: a body nested deeper is not JSON to tangd.
const MAX_DEPTH: usize = 2048;

/// The deepest nesting of `[`/`{` in `body`, outside strings.
fn nesting_depth(body: &[u8]) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for &b in body {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

fn has_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(has_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

impl RecRequest {
    /// Steps 1–3 of the module docs.
    pub fn parse(body: &[u8]) -> Result<RecRequest, RecError> {
        let body = match body.iter().position(|&b| b == 0) {
            Some(n) => &body[..n],
            None => body,
        };
        // jansson nests up to 2048 levels; serde_json stops at 128 unless
        // told otherwise, so check the depth first and then parse without
        // serde_json's limit (bounded by this check, so no deep recursion).
        if nesting_depth(body) > MAX_DEPTH {
            return Err(RecError::BadRequest("body nests too deeply"));
        }
        let mut de = serde_json::Deserializer::from_slice(body);
        de.disable_recursion_limit();
        let jwk = serde::Deserialize::deserialize(&mut de)
            .and_then(|v: Value| de.end().map(|()| v))
            .map_err(|_| RecError::BadRequest("body is not JSON"))?;
        // jansson without JSON_DECODE_ANY takes only objects and arrays, and
        // refuses "\u0000" in strings.
        if !(jwk.is_object() || jwk.is_array()) || has_nul(&jwk) {
            return Err(RecError::BadRequest("body is not a JSON object"));
        }
        if !permits(&jwk, false, "deriveKey") {
            return Err(RecError::Forbidden("key_ops does not allow deriveKey"));
        }
        let kty = jwk.get("kty").and_then(Value::as_str);
        let alg = jwk.get("alg");
        let (Some(kty), true) = (kty, alg.is_none_or(Value::is_string)) else {
            return Err(RecError::BadRequest("kty or alg missing or not a string"));
        };
        if kty != "EC" {
            return Err(RecError::BadRequest("kty is not EC"));
        }
        if alg.is_some_and(|a| a != "ECMR") {
            return Err(RecError::BadRequest("alg is not ECMR"));
        }
        Ok(RecRequest { jwk })
    }

    /// Step 5 and the exchange: `s·X`.
    pub fn exchange(&self, server: &PrivateKey) -> Result<PublicKey, RecError> {
        let jwk = &self.jwk;
        let crv = jwk.get("crv").and_then(Value::as_str);
        let (Some(crv), Some(_), Some(_)) = (crv, jwk.get("x"), jwk.get("y")) else {
            return Err(RecError::BadRequest("crv, x or y missing"));
        };
        if crv != "P-521" {
            return Err(RecError::BadRequest("crv is not the server key's"));
        }
        let point = PublicKey::from_jwk_lenient(jwk)
            .map_err(|_| RecError::BadRequest("not a point on P-521"))?;
        if let Some(d) = jwk.get("d") {
            let d = d
                .as_str()
                .and_then(|d| b64::decode(d, "d").ok())
                .ok_or(RecError::BadRequest("d is not base64url"))?;
            let start = d.iter().position(|&b| b != 0).unwrap_or(d.len());
            let mut padded = zeroize::Zeroizing::new([0u8; COORD_LEN]);
            let significant = &d[start..];
            if significant.len() > COORD_LEN {
                return Err(RecError::BadRequest("d does not match the point"));
            }
            padded[COORD_LEN - significant.len()..].copy_from_slice(significant);
            let matches = p521::SecretKey::from_slice(padded.as_slice())
                .is_ok_and(|k| k.public_key().as_affine() == point.affine());
            if !matches {
                return Err(RecError::BadRequest("d does not match the point"));
            }
        }
        Ok(server.multiply(&point))
    }
}

/// tangd's `/rec` reply for the point `y`: canonical JSON,
/// `{"alg":"ECMR","crv":"P-521","key_ops":["deriveKey"],"kty":"EC","x":…,"y":…}`.
pub fn reply_json(y: &PublicKey) -> String {
    y.to_jwk_string(Some("ECMR"), &["deriveKey"])
}

/// The request JWK a client sends: `{"alg":"ECMR","crv":"P-521","key_ops":["deriveKey"],"kty":"EC",…}`
/// (clevis sends the output of `jose jwk exc`; tangd needs only the point).
pub fn request_json(x: &PublicKey) -> String {
    x.to_jwk_string(Some("ECMR"), &["deriveKey"])
}

/// The client's ephemeral blinding scalar `e`. Zeroized on drop.
#[derive(Clone)]
pub struct Blinding {
    e: PrivateKey,
}

impl std::fmt::Debug for Blinding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Blinding(<redacted>)")
    }
}

/// Blinds the JWE's `epk` `c_point`: returns `X = C + E` and `e`, with `e`
/// from 66 random bytes.
pub fn blind(
    c_point: &PublicKey,
    random: &[u8; COORD_LEN],
) -> Result<(PublicKey, Blinding), JoseError> {
    let e = PrivateKey::from_random(random)?;
    let x = PublicKey::from_projective(c_point.projective() + e.public().projective())?;
    Ok((x, Blinding { e }))
}

/// Unblinds the server's reply `Y`: `K = Y − e·S` with `S` the server's
/// exchange key. Fails if the result is the point at infinity (a reply
/// that is not `s·X`).
pub fn unblind(
    reply: &PublicKey,
    server: &PublicKey,
    blinding: &Blinding,
) -> Result<PublicKey, JoseError> {
    let t = server.projective() * *blinding.e.scalar();
    PublicKey::from_projective(reply.projective() - t)
}

/// Parses the server's reply: an EC JWK on P-521 (coordinates read as jose
/// reads them).
pub fn parse_reply(body: &[u8]) -> Result<PublicKey, JoseError> {
    let v: Value =
        serde_json::from_slice(body).map_err(|_| JoseError::json("reply is not JSON"))?;
    PublicKey::from_jwk_lenient(&v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> PrivateKey {
        PrivateKey::from_random(&[seed; COORD_LEN]).unwrap()
    }

    #[test]
    fn blinded_exchange_recovers_c_times_s() {
        let s = key(1);
        let c = key(2);
        let k = c.multiply(s.public());
        let (x, blinding) = blind(c.public(), &[3; 66]).unwrap();
        let body = request_json(&x);
        let y = RecRequest::parse(body.as_bytes())
            .unwrap()
            .exchange(&s)
            .unwrap();
        let reply = reply_json(&y);
        assert!(reply.starts_with(
            r#"{"alg":"ECMR","crv":"P-521","key_ops":["deriveKey"],"kty":"EC","x":""#
        ));
        assert_eq!(reply.len(), 253);
        let y = parse_reply(reply.as_bytes()).unwrap();
        assert_eq!(unblind(&y, s.public(), &blinding).unwrap(), k);
        // A reply from another server key gives another point.
        let y2 = key(4).multiply(&x);
        assert_ne!(unblind(&y2, s.public(), &blinding).unwrap(), k);
    }

    #[test]
    fn request_statuses() {
        let s = key(1);
        let p = key(2).public().to_jwk();
        let status =
            |body: &str| match RecRequest::parse(body.as_bytes()).and_then(|r| r.exchange(&s)) {
                Ok(_) => 200,
                Err(e) => e.status(),
            };
        let with = |k: &str, v: Value| {
            let mut j = p.clone();
            j[k] = v;
            j.to_string()
        };
        assert_eq!(status(&p.to_string()), 200);
        assert_eq!(status("not json"), 400);
        assert_eq!(status("\"str\""), 400);
        assert_eq!(status("[]"), 400);
        assert_eq!(status(""), 400);
        assert_eq!(status(&with("key_ops", serde_json::json!(["sign"]))), 403);
        assert_eq!(
            status(&with("key_ops", serde_json::json!(["deriveKey"]))),
            200
        );
        assert_eq!(status(&with("use", "enc".into())), 403);
        assert_eq!(status(&with("kty", "RSA".into())), 400);
        assert_eq!(status(&with("alg", "ES512".into())), 400);
        assert_eq!(status(&with("alg", "ECMR".into())), 200);
        assert_eq!(status(&with("alg", 5.into())), 400);
        assert_eq!(status(&with("crv", "P-256".into())), 400);
        let mut y = key(2).public().y();
        y[65] ^= 1;
        assert_eq!(status(&with("y", b64::encode(&y).into())), 400);
        assert_eq!(status(&with("x", Value::Null)), 400);
        // A matching d is ignored, another one refused.
        let d: Value = serde_json::from_str(&key(2).to_jwk_string("ECMR", &[])).unwrap();
        assert_eq!(status(&with("d", d["d"].clone())), 200);
        let d: Value = serde_json::from_str(&key(3).to_jwk_string("ECMR", &[])).unwrap();
        assert_eq!(status(&with("d", d["d"].clone())), 400);
        // jansson's depth limit: 2048 levels in all.
        let nested = |levels: usize| {
            let s = p.to_string();
            format!(
                "{},\"n\":{}{}}}",
                &s[..s.len() - 1],
                "[".repeat(levels - 1),
                "]".repeat(levels - 1)
            )
        };
        assert_eq!(status(&nested(2048)), 200);
        assert_eq!(status(&nested(2049)), 400);
        assert_eq!(status(&"[".repeat(100_000)), 400);
        // Everything after a NUL byte is ignored, as tangd reads a C string.
        assert_eq!(status(&format!("{}\0garbage", p)), 200);
        assert_eq!(status(&with("kty", "EC\u{0}".into())), 400);
    }
}
