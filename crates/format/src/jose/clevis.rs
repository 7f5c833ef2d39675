//! The clevis `tang` pin (tang-notes §1.3, §1.7): checking an
//! advertisement as `clevis encrypt tang` does, the JWE it writes, and
//! reading that JWE back.
//!
//! The protected header, canonical JSON (sorted keys, compact), is
//!
//! ```text
//! {"alg":"ECDH-ES",
//!  "clevis":{"pin":"tang","tang":{"adv":<advertisement payload>,"url":<url>}},
//!  "enc":"A256GCM",
//!  "epk":{"crv":"P-521","kty":"EC","x":…,"y":…},
//!  "kid":<S256 thumbprint of the exchange key>}
//! ```
//!
//! `adv` is the advertisement's *payload* (the JWK set), not the JWS.

use serde_json::{Map, Value};
use zeroize::Zeroizing;

use super::jwe::{self, CompactJwe, IV_LEN};
use super::jwk::{permits, PrivateKey, PublicKey, ThpHash, COORD_LEN};
use super::jws::Jws;
use super::{json, JoseError};

/// An advertisement whose signatures checked out.
#[derive(Clone, Debug)]
pub struct Advertisement {
    /// The payload, parsed: `{"keys":[…]}`.
    pub payload: Value,
    /// The keys that may verify (each signed the advertisement).
    pub verify_keys: Vec<PublicKey>,
    /// The exchange key clevis picks: the first key whose `key_ops`/`use`
    /// explicitly allow `deriveKey`.
    pub exchange_key: PublicKey,
}

/// Checks an advertisement as `clevis encrypt tang` does: the payload is a
/// JWK set; every key that explicitly allows `verify` must have a valid
/// ES512 signature in the JWS (at least one such key); if `thp` is given it
/// must be a thumbprint (any hash tangd accepts) of one of those keys; and
/// there must be an exchange key.
pub fn verify_advertisement(adv_jws: &[u8], thp: Option<&str>) -> Result<Advertisement, JoseError> {
    let jws = Jws::parse(adv_jws)?;
    let payload: Value = serde_json::from_slice(&jws.payload())
        .map_err(|_| JoseError::json("advertisement payload is not JSON"))?;
    let keys = payload
        .get("keys")
        .and_then(Value::as_array)
        .ok_or_else(|| JoseError::json("advertisement payload has no keys array"))?;
    let mut verify_keys = Vec::new();
    let mut exchange_key = None;
    for key in keys {
        if key.is_object() && permits(key, true, "verify") {
            verify_keys.push(PublicKey::from_jwk(key)?);
        }
        if exchange_key.is_none() && key.is_object() && permits(key, true, "deriveKey") {
            exchange_key = Some(PublicKey::from_jwk(key)?);
        }
    }
    if verify_keys.is_empty() {
        return Err(JoseError::json("advertisement has no verify key"));
    }
    if !verify_keys.iter().all(|k| jws.verified_by(k)) {
        return Err(JoseError::Signature);
    }
    if let Some(thp) = thp {
        if !verify_keys.iter().any(|k| k.matches_thumbprint(thp)) {
            return Err(JoseError::json(format!(
                "trusted key {thp} did not sign the advertisement"
            )));
        }
    }
    let exchange_key =
        exchange_key.ok_or_else(|| JoseError::json("advertisement has no exchange key"))?;
    Ok(Advertisement {
        payload,
        verify_keys,
        exchange_key,
    })
}

/// The tang pin's protected header (canonical JSON).
pub fn tang_header(
    adv_payload: &Value,
    url: &str,
    exchange_key: &PublicKey,
    epk: &PublicKey,
) -> String {
    let header = serde_json::json!({
        "alg": "ECDH-ES",
        "clevis": {"pin": "tang", "tang": {"adv": adv_payload, "url": url}},
        "enc": "A256GCM",
        "epk": epk.to_jwk(),
        "kid": exchange_key.thumbprint(ThpHash::S256),
    });
    json::canonical(&header)
}

/// Encrypts `plaintext` to the advertisement's exchange key as the tang
/// pin does: ephemeral `c` from `c_random`, `K = c·S`, ECDH-ES + A256GCM
/// with `iv`. Returns the compact JWE.
pub fn wrap(
    adv: &Advertisement,
    url: &str,
    c_random: &[u8; COORD_LEN],
    iv: &[u8; IV_LEN],
    plaintext: &[u8],
) -> Result<String, JoseError> {
    let c = PrivateKey::from_random(c_random)?;
    let shared = c.multiply(&adv.exchange_key);
    let cek = jwe::ecdh_es_a256gcm_key(&shared);
    let header = tang_header(&adv.payload, url, &adv.exchange_key, c.public());
    Ok(jwe::encrypt_a256gcm(&header, &cek, iv, plaintext))
}

/// What a tang pin JWE names: where to recover and with which key.
#[derive(Clone, Debug)]
pub struct TangPin {
    /// The parsed JWE.
    pub jwe: CompactJwe,
    /// `clevis.tang.url`.
    pub url: String,
    /// `kid`: the exchange key's thumbprint.
    pub kid: String,
    /// `epk`: the point `C`.
    pub epk: PublicKey,
    /// The server's exchange key `S`, found in `clevis.tang.adv` by `kid`.
    pub exchange_key: PublicKey,
}

/// Why a JWE is not a usable tang pin envelope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PinError {
    /// Not a compact JWE, or a malformed header.
    Envelope(JoseError),
    /// A JWE whose `clevis.pin` is missing or not `tang` (the found pin, if any).
    NotTang(Option<String>),
}

impl std::fmt::Display for PinError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PinError::Envelope(e) => write!(f, "{e}"),
            PinError::NotTang(Some(pin)) => {
                write!(f, "the envelope uses the {pin:?} pin, not tang")
            }
            PinError::NotTang(None) => f.write_str("the envelope is not a clevis JWE"),
        }
    }
}

fn field<'a>(map: &'a Map<String, Value>, name: &str) -> Result<&'a Value, PinError> {
    map.get(name)
        .ok_or_else(|| PinError::Envelope(JoseError::json(format!("JWE header lacks {name}"))))
}

impl TangPin {
    /// Parses a compact JWE written by the tang pin and checks what
    /// `clevis-decrypt-tang` checks: `alg:"ECDH-ES"`, `enc:"A256GCM"`,
    /// `clevis.pin:"tang"`, a `url`, an `adv` key set with a key whose
    /// thumbprint (any tangd hash) is `kid`, and a P-521 `epk`.
    pub fn parse(text: &str) -> Result<TangPin, PinError> {
        let jwe = CompactJwe::parse(text).map_err(PinError::Envelope)?;
        let clevis = jwe.header.get("clevis").and_then(Value::as_object);
        let pin = clevis.and_then(|c| c.get("pin")).and_then(Value::as_str);
        if pin != Some("tang") {
            return Err(PinError::NotTang(pin.map(str::to_owned)));
        }
        let bad = |m: &str| PinError::Envelope(JoseError::json(m.to_owned()));
        if jwe.header_str("alg") != Some("ECDH-ES") || jwe.header_str("enc") != Some("A256GCM") {
            return Err(bad("tang JWE is not ECDH-ES with A256GCM"));
        }
        let tang = clevis
            .and_then(|c| c.get("tang"))
            .and_then(Value::as_object)
            .ok_or_else(|| bad("JWE header lacks clevis.tang"))?;
        let url = field(tang, "url")?
            .as_str()
            .ok_or_else(|| bad("clevis.tang.url is not a string"))?
            .to_owned();
        let keys = field(tang, "adv")?
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("clevis.tang.adv has no keys"))?;
        let kid = field(&jwe.header, "kid")?
            .as_str()
            .ok_or_else(|| bad("kid is not a string"))?
            .to_owned();
        let exchange_key = keys
            .iter()
            .filter_map(|k| PublicKey::from_jwk_lenient(k).ok())
            .find(|k| k.matches_thumbprint(&kid))
            .ok_or_else(|| bad("no key in clevis.tang.adv matches kid"))?;
        let epk = PublicKey::from_jwk_lenient(field(&jwe.header, "epk")?)
            .map_err(|e| PinError::Envelope(JoseError::json(format!("epk: {e}"))))?;
        Ok(TangPin {
            jwe,
            url,
            kid,
            epk,
            exchange_key,
        })
    }

    /// Decrypts given the recovered shared point `K = s·C`.
    pub fn decrypt(&self, shared: &PublicKey) -> Result<Zeroizing<Vec<u8>>, JoseError> {
        let cek = jwe::ecdh_es_a256gcm_key(shared);
        self.jwe.decrypt_a256gcm(&cek)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jose::{b64, ecmr, jws};

    fn key(seed: u8) -> PrivateKey {
        PrivateKey::from_random(&[seed; COORD_LEN]).unwrap()
    }

    fn advertisement(sig: &PrivateKey, exc: &PrivateKey) -> String {
        let payload = format!(
            r#"{{"keys": [{}, {}]}}"#,
            sig.public().to_jwk_string(Some("ES512"), &["verify"]),
            exc.public().to_jwk_string(Some("ECMR"), &["deriveKey"])
        );
        jws::sign(
            &b64::encode(payload.as_bytes()),
            r#"{"alg":"ES512","cty":"jwk-set+json"}"#,
            &[(sig, [9; 66])],
        )
        .unwrap()
    }

    #[test]
    fn wrap_then_recover() {
        let (sig, exc) = (key(1), key(2));
        let adv_text = advertisement(&sig, &exc);
        let adv = verify_advertisement(adv_text.as_bytes(), None).unwrap();
        assert_eq!(&adv.exchange_key, exc.public());
        for hash in ThpHash::ALL {
            let thp = sig.public().thumbprint(hash);
            assert!(verify_advertisement(adv_text.as_bytes(), Some(&thp)).is_ok());
        }
        let thp = exc.public().thumbprint(ThpHash::S256);
        assert!(verify_advertisement(adv_text.as_bytes(), Some(&thp)).is_err());

        let text = wrap(
            &adv,
            "http://tang.example",
            &[5; 66],
            &[6; 12],
            b"store key",
        )
        .unwrap();
        let pin = TangPin::parse(&text).unwrap();
        assert_eq!(pin.url, "http://tang.example");
        assert_eq!(pin.kid, exc.public().thumbprint(ThpHash::S256));
        let header = String::from_utf8(b64::decode(&pin.jwe.protected_b64, "h").unwrap()).unwrap();
        assert!(header
            .starts_with(r#"{"alg":"ECDH-ES","clevis":{"pin":"tang","tang":{"adv":{"keys":["#));

        let (x, blinding) = ecmr::blind(&pin.epk, &[7; 66]).unwrap();
        let y = exc.multiply(&x);
        let k = ecmr::unblind(&y, &pin.exchange_key, &blinding).unwrap();
        assert_eq!(&pin.decrypt(&k).unwrap()[..], b"store key");
        assert_eq!(pin.decrypt(&x), Err(JoseError::Decrypt));
    }

    #[test]
    fn plaintext_sizes_round_trip() {
        let (sig, exc) = (key(1), key(2));
        let adv = verify_advertisement(advertisement(&sig, &exc).as_bytes(), None).unwrap();
        for len in [0usize, 1, 65535, 65536, 65537] {
            let plain: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let text = wrap(&adv, "u", &[len as u8 | 1; 66], &[2; 12], &plain).unwrap();
            let pin = TangPin::parse(&text).unwrap();
            assert_eq!(
                &pin.decrypt(&exc.multiply(&pin.epk)).unwrap()[..],
                &plain[..],
                "{len}"
            );
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(16))]
        #[test]
        fn blinded_recovery_for_any_randomness(
            s in proptest::array::uniform32(proptest::num::u8::ANY),
            c in proptest::array::uniform32(proptest::num::u8::ANY),
            e in proptest::array::uniform32(proptest::num::u8::ANY),
            plain in proptest::collection::vec(proptest::num::u8::ANY, 0..100),
        ) {
            let widen = |b: [u8; 32]| {
                let mut out = [0xa5u8; 66];
                out[34..].copy_from_slice(&b);
                out
            };
            let (sig, exc) = (key(1), PrivateKey::from_random(&widen(s)).unwrap());
            let adv = verify_advertisement(advertisement(&sig, &exc).as_bytes(), None).unwrap();
            let text = wrap(&adv, "u", &widen(c), &[0; 12], &plain).unwrap();
            let pin = TangPin::parse(&text).unwrap();
            let (x, blinding) = ecmr::blind(&pin.epk, &widen(e)).unwrap();
            let k = ecmr::unblind(&exc.multiply(&x), &pin.exchange_key, &blinding).unwrap();
            proptest::prop_assert_eq!(&pin.decrypt(&k).unwrap()[..], &plain[..]);
        }
    }

    #[test]
    fn advertisement_must_be_signed_by_every_verify_key() {
        let (sig, exc, other) = (key(1), key(2), key(3));
        let payload = format!(
            r#"{{"keys": [{}, {}, {}]}}"#,
            sig.public().to_jwk_string(Some("ES512"), &["verify"]),
            other.public().to_jwk_string(Some("ES512"), &["verify"]),
            exc.public().to_jwk_string(Some("ECMR"), &["deriveKey"])
        );
        let text = jws::sign(
            &b64::encode(payload.as_bytes()),
            r#"{"alg":"ES512"}"#,
            &[(&sig, [9; 66])],
        )
        .unwrap();
        assert_eq!(
            verify_advertisement(text.as_bytes(), None).unwrap_err(),
            JoseError::Signature
        );
    }

    #[test]
    fn not_tang() {
        let jwe = jwe::encrypt_a256gcm(
            r#"{"alg":"dir","clevis":{"pin":"tpm2"},"enc":"A256GCM"}"#,
            &[0; 32],
            &[0; 12],
            b"x",
        );
        assert_eq!(
            TangPin::parse(&jwe).unwrap_err(),
            PinError::NotTang(Some("tpm2".into()))
        );
        assert!(matches!(TangPin::parse("nope"), Err(PinError::Envelope(_))));
    }
}
