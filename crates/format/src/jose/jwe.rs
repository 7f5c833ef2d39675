//! Compact JWE (RFC 7516 §7.1) with ECDH-ES direct key agreement (RFC 7518
//! §4.6) and A256GCM (§5.3): what clevis' tang pin writes.
//!
//! - The compact form has five base64url segments: protected header,
//!   encrypted key (empty for direct agreement), IV (12 bytes), ciphertext,
//!   tag (16 bytes).
//! - AAD is the ASCII of the first segment *as written*, so a header is
//!   never re-serialised.
//! - The content key is `ConcatKDF_SHA-256(Z, "A256GCM", apu = "",
//!   apv = "", 256)` where `Z` is the x coordinate of the shared point,
//!   66 bytes big-endian.

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::jwk::PublicKey;
use super::{b64, JoseError};

/// AES-GCM IV length.
pub const IV_LEN: usize = 12;
/// AES-GCM tag length.
pub const TAG_LEN: usize = 16;

/// The Concat KDF of NIST SP 800-56A §5.8.1 as RFC 7518 §4.6.2 profiles it
/// (SHA-256; `AlgorithmID`, `PartyUInfo`, `PartyVInfo` each length-prefixed,
/// `SuppPubInfo` = key length in bits). Returns `keydatalen_bits / 8` bytes.
pub fn concat_kdf(
    z: &[u8],
    algorithm_id: &str,
    apu: &[u8],
    apv: &[u8],
    keydatalen_bits: u32,
) -> Zeroizing<Vec<u8>> {
    let len = (keydatalen_bits as usize).div_ceil(8);
    let mut out = Zeroizing::new(Vec::with_capacity(len + 32));
    let mut counter: u32 = 1;
    while out.len() < len {
        let mut h = Sha256::new();
        h.update(counter.to_be_bytes());
        h.update(z);
        for part in [algorithm_id.as_bytes(), apu, apv] {
            h.update((part.len() as u32).to_be_bytes());
            h.update(part);
        }
        h.update(keydatalen_bits.to_be_bytes());
        out.extend_from_slice(&h.finalize());
        counter += 1;
    }
    out.truncate(len);
    out
}

/// The A256GCM content key of ECDH-ES direct agreement from the shared
/// point (its x coordinate is `Z`), empty `apu`/`apv`.
pub fn ecdh_es_a256gcm_key(shared: &PublicKey) -> Zeroizing<[u8; 32]> {
    let z = Zeroizing::new(shared.x());
    let derived = concat_kdf(z.as_slice(), "A256GCM", b"", b"", 256);
    let mut key = Zeroizing::new([0u8; 32]);
    key.copy_from_slice(&derived);
    key
}

/// A parsed compact JWE.
#[derive(Clone, Debug)]
pub struct CompactJwe {
    /// The first segment, exactly as received (the AAD).
    pub protected_b64: String,
    /// The decoded protected header.
    pub header: Map<String, Value>,
    /// The encrypted key (empty for ECDH-ES direct).
    pub encrypted_key: Vec<u8>,
    /// The IV.
    pub iv: Vec<u8>,
    /// The ciphertext.
    pub ciphertext: Vec<u8>,
    /// The authentication tag.
    pub tag: Vec<u8>,
}

impl CompactJwe {
    /// Parses `a.b.c.d.e` (surrounding whitespace ignored). The header must
    /// be a JSON object.
    pub fn parse(text: &str) -> Result<CompactJwe, JoseError> {
        let parts: Vec<&str> = text.trim().split('.').collect();
        let [protected, key, iv, ct, tag] = parts[..] else {
            return Err(JoseError::json(
                "not a compact JWE (five dot-separated parts)",
            ));
        };
        let header_bytes = b64::decode(protected, "JWE protected header")?;
        let header: Value = serde_json::from_slice(&header_bytes)
            .map_err(|_| JoseError::json("JWE protected header is not JSON"))?;
        let Value::Object(header) = header else {
            return Err(JoseError::json("JWE protected header is not a JSON object"));
        };
        Ok(CompactJwe {
            protected_b64: protected.to_owned(),
            header,
            encrypted_key: b64::decode(key, "JWE encrypted key")?,
            iv: b64::decode(iv, "JWE IV")?,
            ciphertext: b64::decode(ct, "JWE ciphertext")?,
            tag: b64::decode(tag, "JWE tag")?,
        })
    }

    /// A header member as a string.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.header.get(name).and_then(Value::as_str)
    }

    /// Decrypts with the content key `cek`. The header must say
    /// `enc:"A256GCM"`, the encrypted key must be empty, the IV 12 bytes and
    /// the tag 16 bytes. Every failure past the shape checks is the one
    /// opaque [`JoseError::Decrypt`].
    pub fn decrypt_a256gcm(&self, cek: &[u8; 32]) -> Result<Zeroizing<Vec<u8>>, JoseError> {
        if self.header_str("enc") != Some("A256GCM") {
            return Err(JoseError::Unsupported("JWE enc other than A256GCM".into()));
        }
        if !self.encrypted_key.is_empty() {
            return Err(JoseError::Unsupported("JWE with an encrypted key".into()));
        }
        if self.iv.len() != IV_LEN || self.tag.len() != TAG_LEN {
            return Err(JoseError::Decrypt);
        }
        let cipher = Aes256Gcm::new(cek.into());
        let mut buf = Zeroizing::new(self.ciphertext.clone());
        cipher
            .decrypt_in_place_detached(
                Nonce::from_slice(&self.iv),
                self.protected_b64.as_bytes(),
                &mut buf,
                Tag::from_slice(&self.tag),
            )
            .map_err(|_| JoseError::Decrypt)?;
        Ok(buf)
    }
}

/// Encrypts `plaintext` under `cek` with A256GCM and writes the compact JWE
/// with `protected_json` as header (encoded as given) and an empty
/// encrypted key.
pub fn encrypt_a256gcm(
    protected_json: &str,
    cek: &[u8; 32],
    iv: &[u8; IV_LEN],
    plaintext: &[u8],
) -> String {
    let protected_b64 = b64::encode(protected_json.as_bytes());
    let cipher = Aes256Gcm::new(cek.into());
    let mut buf = Zeroizing::new(plaintext.to_vec());
    // AES-GCM fails only beyond 64 GiB, far above any envelope.
    let tag = cipher
        .encrypt_in_place_detached(Nonce::from_slice(iv), protected_b64.as_bytes(), &mut buf)
        .unwrap_or_default();
    format!(
        "{protected_b64}..{}.{}.{}",
        b64::encode(iv),
        b64::encode(&buf),
        b64::encode(&tag)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concat_kdf_rfc7518_appendix_c() {
        // RFC 7518 Appendix C: ECDH-ES with A128GCM, apu "Alice", apv "Bob".
        let z = [
            158, 86, 217, 29, 129, 113, 53, 211, 114, 131, 66, 131, 191, 132, 38, 156, 251, 49,
            110, 163, 218, 128, 106, 72, 246, 218, 167, 121, 140, 254, 144, 196,
        ];
        let key = concat_kdf(&z, "A128GCM", b"Alice", b"Bob", 128);
        assert_eq!(b64::encode(&key), "VqqN6vgjbSBcIijNcacQGg");
    }

    #[test]
    fn round_trip_and_tamper() {
        let cek = [7u8; 32];
        let text = encrypt_a256gcm(
            r#"{"alg":"dir","enc":"A256GCM"}"#,
            &cek,
            &[1; 12],
            b"secret",
        );
        assert_eq!(text.split('.').nth(1), Some(""));
        let jwe = CompactJwe::parse(&text).unwrap();
        assert_eq!(&jwe.decrypt_a256gcm(&cek).unwrap()[..], b"secret");
        assert_eq!(jwe.decrypt_a256gcm(&[8; 32]), Err(JoseError::Decrypt));
        let mut other = jwe.clone();
        other.protected_b64 = b64::encode(br#"{"enc":"A256GCM","alg":"dir"}"#);
        assert_eq!(
            other.decrypt_a256gcm(&cek),
            Err(JoseError::Decrypt),
            "AAD is the segment"
        );
        let mut other = jwe.clone();
        other.tag.pop();
        assert_eq!(other.decrypt_a256gcm(&cek), Err(JoseError::Decrypt));
        // Empty plaintext.
        let text = encrypt_a256gcm(r#"{"enc":"A256GCM"}"#, &cek, &[1; 12], b"");
        assert!(CompactJwe::parse(&text)
            .unwrap()
            .decrypt_a256gcm(&cek)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn parse_errors() {
        for bad in [
            "",
            "a.b.c.d",
            "e30.....",
            "W10....",
            "e30.!.a.b.c",
            "bm90anNvbg....",
        ] {
            assert!(CompactJwe::parse(bad).is_err(), "{bad}");
        }
    }
}
