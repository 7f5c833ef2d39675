//! The fleet's public-key infrastructure: a fleet CA, the server
//! certificate, admin and device client certificates, and the legacy single
//! self-signed certificate of the original project.
//!
//! - [`layout`] fixes where each file lives in a fleet directory, so that the
//!   server, the admin client and the device client agree on it;
//! - [`fleet`] makes a fleet (`fleet init`) and enrolls devices (`fleet enroll`);
//! - [`ca`], [`legacy`]: one file per kind of X.509 object (rcgen's layout):
//!   the fleet CA and what it issues, and the original's self-signed cert;
//! - [`identity`] reads who a verified client certificate names;
//! - [`tls`] builds the rustls configurations (TLS 1.3, client auth
//!   required) that the server and the clients use;
//! - [`files`] writes key material (0600 files, 0700 folders, temp + rename).
//!
//! Certificates are issued with rcgen and checked in tests by independent
//! verifiers (OpenSSL's `openssl verify`, rustls' webpki verifiers), never
//! only by our own code. Docs: `docs/FLEET.md`.

pub mod ca;
mod der;
pub mod files;
pub mod fleet;
pub mod identity;
pub mod key;
pub mod layout;
pub mod legacy;
pub mod tls;

use std::path::PathBuf;

pub use identity::{Identity, IdentityError};
pub use key::KeyType;

/// A failure to make, read or use fleet certificates and keys.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} already exists; refusing to overwrite it", .0.display())]
    Exists(PathBuf),
    #[error("{} is not a fleet directory (no {})", .0.display(), layout::FleetDir::new(.0).meta().display())]
    NotAFleet(PathBuf),
    #[error("invalid device id {0:?}: {1}")]
    BadDeviceId(String, &'static str),
    #[error("device {0} is already enrolled (certificate serial {1}); pass --force to issue a new certificate, then revoke the old serial on the server")]
    AlreadyEnrolled(String, String),
    #[error("invalid group name {0:?}: {1}")]
    BadGroup(String, &'static str),
    #[error("invalid server name {0:?}: {1}")]
    BadServerName(String, String),
    #[error("{0}")]
    Pem(String),
    #[error("certificate generation failed: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("RSA key generation failed: {0}")]
    Rsa(String),
    #[error("signing failed: {0}")]
    Sign(String),
    #[error("bad certificate: {0}")]
    Cert(String),
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    #[error("client certificate verifier: {0}")]
    ClientVerifier(#[from] rustls::server::VerifierBuilderError),
    #[error("{}: {source}", path.display())]
    Meta {
        path: PathBuf,
        source: serde_json::Error,
    },
}

impl PkiError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        PkiError::Io {
            path: path.into(),
            source,
        }
    }
}

/// SHA-256 fingerprint of a DER certificate, lower-case hex (64 characters),
/// the same digits as `openssl x509 -noout -fingerprint -sha256` without colons.
pub fn fingerprint(der: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(der))
}

#[cfg(test)]
mod tests {
    #[test]
    fn fingerprint_is_sha256_hex() {
        assert_eq!(
            super::fingerprint(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
