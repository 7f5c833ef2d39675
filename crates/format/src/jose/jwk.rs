//! P-521 EC keys as JWKs (RFC 7517, RFC 7518 §6.2), RFC 7638
//! thumbprints, and jose's key-use permission rule.
//!
//! Coordinates and `d` are 66 bytes big-endian (RFC 7518 §6.2.1.2 requires
//! the full field length). [`PublicKey::from_jwk`] insists on that;
//! [`PublicKey::from_jwk_lenient`] accepts what jose (and so tangd and
//! clevis) accept: any big-endian length whose value fits, because jose
//! decodes coordinates with `BN_bin2bn`.
//!
//! Thumbprints hash the exact string
//! `{"crv":"P-521","kty":"EC","x":"…","y":"…"}` and are base64url; tangd
//! accepts the S1, S224, S256, S384 and S512 forms as `kid`/`thp`
//! (tang-notes §1.4).

use std::fmt;

use p521::elliptic_curve::ops::Reduce;
use p521::elliptic_curve::point::AffineCoordinates;
use p521::elliptic_curve::sec1::{FromEncodedPoint, ToEncodedPoint};
use p521::elliptic_curve::Group;
use p521::{AffinePoint, EncodedPoint, FieldBytes, NonZeroScalar, ProjectivePoint, Scalar};
use serde_json::Value;
use sha1::Sha1;
use sha2::{Digest, Sha224, Sha256, Sha384, Sha512};
use zeroize::Zeroizing;

use super::{b64, json, JoseError};

/// Bytes in a P-521 coordinate, scalar or `d`.
pub const COORD_LEN: usize = 66;

/// A thumbprint hash (jose's names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ThpHash {
    /// SHA-1 (legacy clevis bindings).
    S1,
    /// SHA-224.
    S224,
    /// SHA-256, the default: file names, `kid`, clevis `thp`.
    S256,
    /// SHA-384.
    S384,
    /// SHA-512.
    S512,
}

impl ThpHash {
    /// Every hash tangd accepts, in tangd's order.
    pub const ALL: [ThpHash; 5] = [
        ThpHash::S1,
        ThpHash::S224,
        ThpHash::S256,
        ThpHash::S384,
        ThpHash::S512,
    ];

    /// jose's name (`S256`, …).
    pub fn name(self) -> &'static str {
        match self {
            ThpHash::S1 => "S1",
            ThpHash::S224 => "S224",
            ThpHash::S256 => "S256",
            ThpHash::S384 => "S384",
            ThpHash::S512 => "S512",
        }
    }

    /// The hash of `data`, base64url.
    pub fn hash_b64(self, data: &[u8]) -> String {
        match self {
            ThpHash::S1 => b64::encode(&Sha1::digest(data)),
            ThpHash::S224 => b64::encode(&Sha224::digest(data)),
            ThpHash::S256 => b64::encode(&Sha256::digest(data)),
            ThpHash::S384 => b64::encode(&Sha384::digest(data)),
            ThpHash::S512 => b64::encode(&Sha512::digest(data)),
        }
    }
}

/// True if `thp` has the shape tangd's routes accept: `[0-9A-Za-z_-]+`.
pub fn is_thumbprint_syntax(thp: &str) -> bool {
    !thp.is_empty()
        && thp
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A P-521 public key: a point on the curve, not the identity.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey(p521::PublicKey);

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.thumbprint(ThpHash::S256))
    }
}

fn field_bytes(bytes: &[u8; COORD_LEN]) -> FieldBytes {
    FieldBytes::clone_from_slice(bytes)
}

/// Left-pads a big-endian number to 66 bytes; `None` if it does not fit.
fn pad_be(bytes: &[u8]) -> Option<[u8; COORD_LEN]> {
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    let significant = &bytes[start..];
    if significant.len() > COORD_LEN {
        return None;
    }
    let mut out = [0u8; COORD_LEN];
    out[COORD_LEN - significant.len()..].copy_from_slice(significant);
    Some(out)
}

fn member<'a>(obj: &'a Value, name: &str) -> Option<&'a Value> {
    obj.as_object().and_then(|m| m.get(name))
}

fn str_member<'a>(obj: &'a Value, name: &'static str) -> Result<&'a str, JoseError> {
    member(obj, name)
        .and_then(Value::as_str)
        .ok_or(JoseError::Key(match name {
            "kty" => "missing or non-string kty",
            "crv" => "missing or non-string crv",
            "x" => "missing or non-string x",
            "y" => "missing or non-string y",
            "d" => "missing or non-string d",
            _ => "missing member",
        }))
}

impl PublicKey {
    /// The point `(x, y)`, each exactly 66 bytes big-endian. Fails if the
    /// point is not on P-521 (the identity has no affine coordinates).
    pub fn from_coordinates(x: &[u8], y: &[u8]) -> Result<Self, JoseError> {
        let x: &[u8; COORD_LEN] = x
            .try_into()
            .map_err(|_| JoseError::Key("coordinate is not 66 bytes"))?;
        let y: &[u8; COORD_LEN] = y
            .try_into()
            .map_err(|_| JoseError::Key("coordinate is not 66 bytes"))?;
        let encoded =
            EncodedPoint::from_affine_coordinates(&field_bytes(x), &field_bytes(y), false);
        Option::from(p521::PublicKey::from_encoded_point(&encoded))
            .map(PublicKey)
            .ok_or(JoseError::Key("point is not on P-521"))
    }

    fn from_jwk_with(obj: &Value, lenient: bool) -> Result<Self, JoseError> {
        if str_member(obj, "kty")? != "EC" {
            return Err(JoseError::Key("kty is not EC"));
        }
        if str_member(obj, "crv")? != "P-521" {
            return Err(JoseError::Key("crv is not P-521"));
        }
        let x = b64::decode(str_member(obj, "x")?, "x")?;
        let y = b64::decode(str_member(obj, "y")?, "y")?;
        if lenient {
            let x = pad_be(&x).ok_or(JoseError::Key("coordinate is too long"))?;
            let y = pad_be(&y).ok_or(JoseError::Key("coordinate is too long"))?;
            Self::from_coordinates(&x, &y)
        } else {
            Self::from_coordinates(&x, &y)
        }
    }

    /// A public JWK: `kty:"EC"`, `crv:"P-521"`, 66-byte `x` and `y` on the
    /// curve. Other members (`alg`, `key_ops`, `d`, …) are not looked at.
    pub fn from_jwk(obj: &Value) -> Result<Self, JoseError> {
        Self::from_jwk_with(obj, false)
    }

    /// Like [`from_jwk`](Self::from_jwk) but with jose's reading of the
    /// coordinates: any big-endian length whose value fits in 66 bytes.
    pub fn from_jwk_lenient(obj: &Value) -> Result<Self, JoseError> {
        Self::from_jwk_with(obj, true)
    }

    pub(crate) fn from_affine(point: AffinePoint) -> Result<Self, JoseError> {
        p521::PublicKey::from_affine(point)
            .map(PublicKey)
            .map_err(|_| JoseError::Key("point at infinity"))
    }

    pub(crate) fn from_projective(point: ProjectivePoint) -> Result<Self, JoseError> {
        if bool::from(point.is_identity()) {
            return Err(JoseError::Key("point at infinity"));
        }
        Self::from_affine(point.to_affine())
    }

    pub(crate) fn projective(&self) -> ProjectivePoint {
        self.0.to_projective()
    }

    pub(crate) fn affine(&self) -> &AffinePoint {
        self.0.as_affine()
    }

    /// `x`, 66 bytes big-endian.
    pub fn x(&self) -> [u8; COORD_LEN] {
        let mut out = [0u8; COORD_LEN];
        out.copy_from_slice(&self.affine().x());
        out
    }

    /// `y`, 66 bytes big-endian.
    pub fn y(&self) -> [u8; COORD_LEN] {
        let encoded = self.0.to_encoded_point(false);
        let mut out = [0u8; COORD_LEN];
        // An uncompressed point of a valid key always has y.
        if let Some(y) = encoded.y() {
            out.copy_from_slice(y);
        }
        out
    }

    /// The RFC 7638 thumbprint input: `{"crv":"P-521","kty":"EC","x":…,"y":…}`.
    pub fn thumbprint_input(&self) -> String {
        format!(
            r#"{{"crv":"P-521","kty":"EC","x":"{}","y":"{}"}}"#,
            b64::encode(&self.x()),
            b64::encode(&self.y())
        )
    }

    /// The RFC 7638 thumbprint with `hash`, base64url.
    pub fn thumbprint(&self, hash: ThpHash) -> String {
        hash.hash_b64(self.thumbprint_input().as_bytes())
    }

    /// True if `thp` is this key's thumbprint under any hash tangd accepts.
    pub fn matches_thumbprint(&self, thp: &str) -> bool {
        let input = self.thumbprint_input();
        ThpHash::ALL
            .iter()
            .any(|h| h.hash_b64(input.as_bytes()) == thp)
    }

    /// The bare public JWK `{"crv","kty","x","y"}` (a JWE `epk`).
    pub fn to_jwk(&self) -> Value {
        serde_json::json!({
            "crv": "P-521",
            "kty": "EC",
            "x": b64::encode(&self.x()),
            "y": b64::encode(&self.y()),
        })
    }

    /// A public JWK with optional `alg` and `key_ops`, canonical JSON
    /// (sorted keys, compact), as tangd and jose write them.
    pub fn to_jwk_string(&self, alg: Option<&str>, key_ops: &[&str]) -> String {
        let mut v = self.to_jwk();
        if let Some(map) = v.as_object_mut() {
            if let Some(alg) = alg {
                map.insert("alg".into(), alg.into());
            }
            if !key_ops.is_empty() {
                map.insert("key_ops".into(), key_ops.to_vec().into());
            }
        }
        json::canonical(&v)
    }
}

/// A non-zero P-521 scalar from 66 caller-supplied random bytes: the top 7
/// bits are cleared (so the value is below 2^521) and the result reduced
/// modulo the group order `n` (2^521 − n < 2^261: the bias is negligible).
/// Fails only for the zero scalar.
pub fn scalar_from_random(random: &[u8; COORD_LEN]) -> Result<NonZeroScalar, JoseError> {
    let mut bytes = Zeroizing::new(*random);
    bytes[0] &= 0x01;
    let scalar = <Scalar as Reduce<p521::U576>>::reduce_bytes(&field_bytes(&bytes));
    Option::from(NonZeroScalar::new(scalar)).ok_or(JoseError::Key("zero scalar"))
}

/// A P-521 private key. The scalar is zeroized on drop; `Debug` shows
/// only the public key's thumbprint.
#[derive(Clone)]
pub struct PrivateKey {
    secret: p521::SecretKey,
    public: PublicKey,
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PrivateKey({}, d: <redacted>)",
            self.public.thumbprint(ThpHash::S256)
        )
    }
}

impl PrivateKey {
    /// A key from 66 random bytes (see [`scalar_from_random`]).
    pub fn from_random(random: &[u8; COORD_LEN]) -> Result<Self, JoseError> {
        let scalar = scalar_from_random(random)?;
        Ok(Self::from_scalar(scalar))
    }

    pub(crate) fn from_scalar(scalar: NonZeroScalar) -> Self {
        let secret = p521::SecretKey::from(scalar);
        let public = PublicKey(secret.public_key());
        PrivateKey { secret, public }
    }

    /// A private JWK: the public members as [`PublicKey::from_jwk`], and
    /// `d` (66 bytes, 1 ≤ d < n) whose public point is `(x, y)`.
    pub fn from_jwk(obj: &Value) -> Result<Self, JoseError> {
        let public = PublicKey::from_jwk(obj)?;
        let d = Zeroizing::new(b64::decode(str_member(obj, "d")?, "d")?);
        if d.len() != COORD_LEN {
            return Err(JoseError::Key("d is not 66 bytes"));
        }
        let secret =
            p521::SecretKey::from_slice(&d).map_err(|_| JoseError::Key("d is out of range"))?;
        if secret.public_key() != public.0 {
            return Err(JoseError::Key("d does not match x and y"));
        }
        Ok(PrivateKey { secret, public })
    }

    /// The public half.
    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    pub(crate) fn scalar(&self) -> NonZeroScalar {
        self.secret.to_nonzero_scalar()
    }

    /// `d·P`: the scalar multiplication of ECDH and of the Tang server.
    pub fn multiply(&self, point: &PublicKey) -> PublicKey {
        let product = point.projective() * *self.scalar();
        // d is non-zero and P-521 has prime order: d·P is never the identity.
        PublicKey::from_projective(product).unwrap_or_else(|_| point.clone())
    }

    /// The private JWK (with `d`), canonical JSON, as tangd stores it:
    /// `{"alg":…,"crv":"P-521","d":…,"key_ops":[…],"kty":"EC","x":…,"y":…}`.
    pub fn to_jwk_string(&self, alg: &str, key_ops: &[&str]) -> Zeroizing<String> {
        let d = Zeroizing::new(self.secret.to_bytes());
        let d_b64 = Zeroizing::new(b64::encode(&d));
        Zeroizing::new(format!(
            r#"{{"alg":{},"crv":"P-521","d":"{}","key_ops":{},"kty":"EC","x":"{}","y":"{}"}}"#,
            json::string(alg),
            d_b64.as_str(),
            json::canonical(&Value::from(key_ops.to_vec())),
            b64::encode(&self.public.x()),
            b64::encode(&self.public.y()),
        ))
    }
}

/// jose's `jose_jwk_prm`: may this JWK be used for `op`?
///
/// Not an object: yes. `use` present but not a string: no. Neither `use`
/// nor `key_ops`: yes unless `required`. `key_ops` (an array) listing `op`:
/// yes. `use:"sig"` allows `sign`/`verify`, `use:"enc"` allows
/// `encrypt`/`decrypt`/`wrapKey`/`unwrapKey`; nothing else (notably
/// `deriveKey` has no `use`).
pub fn permits(jwk: &Value, required: bool, op: &str) -> bool {
    let Some(obj) = jwk.as_object() else {
        return true;
    };
    let use_ = match obj.get("use") {
        None => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => return false,
    };
    let ops = obj.get("key_ops");
    if use_.is_none() && ops.is_none() {
        return !required;
    }
    if let Some(Value::Array(ops)) = ops {
        if ops.iter().any(|v| v.as_str() == Some(op)) {
            return true;
        }
    }
    match use_ {
        Some("sig") => matches!(op, "verify" | "sign"),
        Some("enc") => matches!(op, "encrypt" | "decrypt" | "wrapKey" | "unwrapKey"),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> PrivateKey {
        PrivateKey::from_random(&[seed; COORD_LEN]).unwrap()
    }

    #[test]
    fn private_jwk_round_trip() {
        let k = key(7);
        let text = k.to_jwk_string("ECMR", &["deriveKey"]);
        let v: Value = serde_json::from_str(&text).unwrap();
        let back = PrivateKey::from_jwk(&v).unwrap();
        assert_eq!(back.public(), k.public());
        assert!(text.starts_with(r#"{"alg":"ECMR","crv":"P-521","d":""#));
        assert!(format!("{k:?}").contains("redacted"));
        assert!(!format!("{k:?}").contains(&v["d"].as_str().unwrap()[..20]));
    }

    #[test]
    fn rejects_bad_keys() {
        let k = key(9);
        let good = k.public().to_jwk();
        assert!(PublicKey::from_jwk(&good).is_ok());
        let mut v = good.clone();
        v["crv"] = "P-256".into();
        assert_eq!(
            PublicKey::from_jwk(&v),
            Err(JoseError::Key("crv is not P-521"))
        );
        let mut v = good.clone();
        v["kty"] = "RSA".into();
        assert!(PublicKey::from_jwk(&v).is_err());
        // Off the curve: y + 1.
        let mut y = k.public().y();
        y[65] ^= 1;
        let mut v = good.clone();
        v["y"] = b64::encode(&y).into();
        assert_eq!(
            PublicKey::from_jwk(&v),
            Err(JoseError::Key("point is not on P-521"))
        );
        // Zero point (0, 0) stands in for infinity: not on the curve.
        let mut v = good.clone();
        v["x"] = b64::encode(&[0; 66]).into();
        v["y"] = b64::encode(&[0; 66]).into();
        assert!(PublicKey::from_jwk(&v).is_err());
        // Short coordinates: strict refuses, lenient (jose) accepts if the value fits.
        let mut v = good.clone();
        let x = k.public().x();
        v["x"] = b64::encode(&x[1..]).into();
        assert_eq!(
            PublicKey::from_jwk(&v),
            Err(JoseError::Key("coordinate is not 66 bytes"))
        );
        if x[0] == 0 {
            assert_eq!(&PublicKey::from_jwk_lenient(&v).unwrap(), k.public());
        }
        let mut v = good.clone();
        v["x"] = b64::encode(&[1; 67]).into();
        assert!(PublicKey::from_jwk_lenient(&v).is_err());
        // A d that does not belong to the point.
        let mut private: Value =
            serde_json::from_str(&key(1).to_jwk_string("ECMR", &["deriveKey"])).unwrap();
        private["x"] = good["x"].clone();
        private["y"] = good["y"].clone();
        assert_eq!(
            PrivateKey::from_jwk(&private).unwrap_err(),
            JoseError::Key("d does not match x and y")
        );
    }

    #[test]
    fn scalar_from_random_masks_and_refuses_zero() {
        assert!(scalar_from_random(&[0; 66]).is_err());
        // 0xff.. masks to 2^521 - 1, which reduces below n.
        assert!(scalar_from_random(&[0xff; 66]).is_ok());
        let mut one = [0u8; 66];
        one[65] = 1;
        let k = PrivateKey::from_random(&one).unwrap();
        assert_eq!(
            k.public().affine(),
            &AffinePoint::from(ProjectivePoint::GENERATOR)
        );
    }

    #[test]
    fn permissions_follow_jose() {
        let p = |s: &str, req, op| permits(&serde_json::from_str(s).unwrap(), req, op);
        assert!(p("{}", false, "deriveKey"));
        assert!(!p("{}", true, "deriveKey"));
        assert!(p("[]", true, "deriveKey"));
        assert!(p(r#"{"key_ops":["deriveKey"]}"#, true, "deriveKey"));
        assert!(!p(r#"{"key_ops":["sign"]}"#, false, "deriveKey"));
        assert!(!p(r#"{"key_ops":"deriveKey"}"#, false, "deriveKey"));
        assert!(!p(r#"{"use":"enc"}"#, false, "deriveKey"));
        assert!(!p(r#"{"use":5}"#, false, "deriveKey"));
        assert!(p(r#"{"use":"sig"}"#, true, "sign"));
        assert!(p(r#"{"use":"enc","key_ops":["x"]}"#, true, "wrapKey"));
    }

    #[test]
    fn thumbprint_syntax() {
        assert!(is_thumbprint_syntax("aZ09-_"));
        assert!(!is_thumbprint_syntax(""));
        assert!(!is_thumbprint_syntax("a/b"));
        assert!(!is_thumbprint_syntax("a="));
    }
}
