//! Private keys: the two key types a fleet can use, generating them, and
//! signing a TBSCertificate with the CA key.
//!
//! - `p256` (the default): ECDSA on NIST P-256 with SHA-256
//!   (`ecdsa-with-SHA256`), the fastest handshakes with ring, and what
//!   every TLS stack and OpenSSL accept.
//! - `rsa4096`: RSA 4096-bit keys, certificates signed with
//!   `sha256WithRSAEncryption`, for sites that require RSA. Slower
//!   handshakes (RSA-4096 signing) and slow key generation (seconds).
//!
//! ring signs but cannot generate RSA keys, so RSA keys come from the
//! RustCrypto `rsa` crate and are handed to rcgen/ring as PKCS#8. Private
//! keys are written as PKCS#8 PEM (`PRIVATE KEY`), except the legacy key,
//! which is PKCS#1 (`RSA PRIVATE KEY`) like the original's.

use std::fmt;
use std::str::FromStr;

use rcgen::{KeyPair, SignatureAlgorithm, PKCS_ECDSA_P256_SHA256, PKCS_RSA_SHA256};
use rustls::pki_types::PrivatePkcs8KeyDer;
use zeroize::Zeroizing;

use super::PkiError;

/// The key algorithm of a fleet (CA, server, admin and device keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyType {
    /// ECDSA P-256 with SHA-256.
    #[default]
    P256,
    /// RSA 4096 with SHA-256 (PKCS #1 v1.5 certificate signatures).
    Rsa4096,
}

impl KeyType {
    /// The name used on the command line and in fleet.json.
    pub fn name(self) -> &'static str {
        match self {
            KeyType::P256 => "p256",
            KeyType::Rsa4096 => "rsa4096",
        }
    }

    /// rcgen's signature algorithm for certificates signed by such a key.
    pub fn signature_algorithm(self) -> &'static SignatureAlgorithm {
        match self {
            KeyType::P256 => &PKCS_ECDSA_P256_SHA256,
            KeyType::Rsa4096 => &PKCS_RSA_SHA256,
        }
    }

    /// The key type of an rcgen key pair, if it is one of ours.
    pub fn of(key: &KeyPair) -> Option<KeyType> {
        if key.algorithm() == &PKCS_ECDSA_P256_SHA256 {
            Some(KeyType::P256)
        } else if key.algorithm() == &PKCS_RSA_SHA256 {
            Some(KeyType::Rsa4096)
        } else {
            None
        }
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for KeyType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "p256" | "p-256" | "ecdsa" => Ok(KeyType::P256),
            "rsa4096" | "rsa-4096" | "rsa" => Ok(KeyType::Rsa4096),
            _ => Err(format!("unknown key type {s:?} (p256 or rsa4096)")),
        }
    }
}

/// A new key pair of the given type.
pub fn generate(kind: KeyType) -> Result<KeyPair, PkiError> {
    match kind {
        KeyType::P256 => Ok(KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?),
        KeyType::Rsa4096 => {
            let key = generate_rsa(4096)?;
            rsa_key_pair(&key)
        }
    }
}

/// A new RSA private key (zeroized on drop by the `rsa` crate).
pub fn generate_rsa(bits: usize) -> Result<rsa::RsaPrivateKey, PkiError> {
    rsa::RsaPrivateKey::new(&mut rand_core::OsRng, bits).map_err(|e| PkiError::Rsa(e.to_string()))
}

/// The rcgen key pair (ring underneath) of an RSA key, for SHA-256 signatures.
pub fn rsa_key_pair(key: &rsa::RsaPrivateKey) -> Result<KeyPair, PkiError> {
    use rsa::pkcs8::EncodePrivateKey;
    let der = key
        .to_pkcs8_der()
        .map_err(|e| PkiError::Rsa(e.to_string()))?;
    let pkcs8 = PrivatePkcs8KeyDer::from(der.as_bytes());
    Ok(KeyPair::from_pkcs8_der_and_sign_algo(
        &pkcs8,
        &PKCS_RSA_SHA256,
    )?)
}

/// The PKCS#1 PEM (`RSA PRIVATE KEY`) of an RSA key.
pub fn rsa_pkcs1_pem(key: &rsa::RsaPrivateKey) -> Result<Zeroizing<String>, PkiError> {
    use rsa::pkcs1::EncodeRsaPrivateKey;
    key.to_pkcs1_pem(rsa::pkcs8::LineEnding::LF)
        .map_err(|e| PkiError::Rsa(e.to_string()))
}

/// The PKCS#8 PEM (`PRIVATE KEY`) of a key pair, in a wiped buffer.
pub fn to_pem(key: &KeyPair) -> Zeroizing<String> {
    Zeroizing::new(key.serialize_pem())
}

/// Reads a PKCS#8 PEM private key of one of our key types.
pub fn from_pem(pem: &[u8], what: &str) -> Result<KeyPair, PkiError> {
    let text =
        std::str::from_utf8(pem).map_err(|_| PkiError::Pem(format!("{what}: not a PEM file")))?;
    let key = KeyPair::from_pem(text)
        .map_err(|e| PkiError::Pem(format!("{what}: not a usable private key ({e})")))?;
    if KeyType::of(&key).is_none() {
        return Err(PkiError::Pem(format!(
            "{what}: unsupported key algorithm (p256 or rsa4096 expected)"
        )));
    }
    Ok(key)
}

/// Signs `message` (a TBSCertificate) with `key` the way rcgen would: an
/// ASN.1 ECDSA signature for P-256, PKCS #1 v1.5 with SHA-256 for RSA.
pub fn sign(key: &KeyPair, message: &[u8]) -> Result<Vec<u8>, PkiError> {
    use ring::rand::SystemRandom;
    use ring::signature;
    let rng = SystemRandom::new();
    let der = key.serialized_der();
    let fail = |e: &dyn fmt::Display| PkiError::Sign(e.to_string());
    match KeyType::of(key) {
        Some(KeyType::P256) => {
            let kp = signature::EcdsaKeyPair::from_pkcs8(
                &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
                der,
                &rng,
            )
            .map_err(|e| fail(&e))?;
            let sig = kp.sign(&rng, message).map_err(|e| fail(&e))?;
            Ok(sig.as_ref().to_vec())
        }
        Some(KeyType::Rsa4096) => {
            let kp = signature::RsaKeyPair::from_pkcs8(der).map_err(|e| fail(&e))?;
            let mut sig = vec![0u8; kp.public().modulus_len()];
            kp.sign(&signature::RSA_PKCS1_SHA256, &rng, message, &mut sig)
                .map_err(|e| fail(&e))?;
            Ok(sig)
        }
        None => Err(PkiError::Sign("unsupported key algorithm".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_type_names_round_trip() {
        for kt in [KeyType::P256, KeyType::Rsa4096] {
            assert_eq!(kt.name().parse::<KeyType>().unwrap(), kt);
        }
        assert!("ed25519".parse::<KeyType>().is_err());
    }

    #[test]
    fn p256_pem_round_trips() {
        let key = generate(KeyType::P256).unwrap();
        let pem = to_pem(&key);
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        let back = from_pem(pem.as_bytes(), "test").unwrap();
        assert_eq!(back.public_key_der(), key.public_key_der());
        assert_eq!(KeyType::of(&back), Some(KeyType::P256));
    }

    #[test]
    fn garbage_is_a_clear_error() {
        let err = from_pem(b"hello", "k.key").unwrap_err().to_string();
        assert!(err.starts_with("k.key: "), "{err}");
    }
}
