//! The device's TLS client identity: certificate, private key and the CA
//! that signed the server's certificate, from base64 environment variables
//! (`MTLS_CERT`, `MTLS_KEY`, `MTLS_CA`: the original project's names, as a
//! balena dashboard sets them) or from PEM files. For each of the three the
//! environment variable wins over the file.
//!
//! The material is kept in memory only: the original client wrote the
//! decoded env values to `./cert.pem` and `./key.pem` (mode 0644); we never
//! write them anywhere. The private key is zeroized on drop.
//!
//! A value may be base64 of a PEM file (what `fleet enroll --env` prints,
//! line breaks allowed) or the PEM text itself.

use std::path::{Path, PathBuf};

use base64::Engine;
use zeroize::Zeroizing;

/// Where one part of the identity comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Cert,
    Key,
    Ca,
}

impl Part {
    /// The environment variable for this part.
    pub fn env_name(self) -> &'static str {
        match self {
            Part::Cert => "MTLS_CERT",
            Part::Key => "MTLS_KEY",
            Part::Ca => "MTLS_CA",
        }
    }
    fn flag(self) -> &'static str {
        match self {
            Part::Cert => "--cert",
            Part::Key => "--key",
            Part::Ca => "--ca",
        }
    }
}

/// A part could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("{var} is neither base64 of a PEM file nor PEM text")]
    BadEnv { var: &'static str },
    #[error("cannot read {path}: {error}")]
    File {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path} is not a PEM file")]
    NotPem { path: PathBuf },
    #[error("no client {what}: set {var} (base64 PEM) or pass {flag} FILE")]
    Missing {
        what: &'static str,
        var: &'static str,
        flag: &'static str,
    },
}

/// The client identity. `Debug` shows where the parts came from, never the key.
pub struct Identity {
    pub cert_pem: Vec<u8>,
    pub key_pem: Zeroizing<Vec<u8>>,
    /// `None`: no CA was given. The legacy mode then trusts the client's own
    /// certificate, as the original did with its one self-signed cert.
    pub ca_pem: Option<Vec<u8>>,
    sources: [&'static str; 3],
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("cert", &self.sources[0])
            .field("key", &self.sources[1])
            .field("ca", &self.sources[2])
            .finish()
    }
}

/// Files given on the command line.
#[derive(Debug, Clone, Default)]
pub struct Files {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub ca: Option<PathBuf>,
}

impl Identity {
    /// Loads the identity; `env` looks a variable up (normally `std::env::var`).
    pub fn load(
        files: &Files,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Identity, IdentityError> {
        let (cert, s0) = load_part(Part::Cert, files.cert.as_deref(), env)?;
        let (key, s1) = load_part(Part::Key, files.key.as_deref(), env)?;
        let (ca, s2) = load_part(Part::Ca, files.ca.as_deref(), env)?;
        let missing = |part: Part, what| IdentityError::Missing {
            what,
            var: part.env_name(),
            flag: part.flag(),
        };
        Ok(Identity {
            cert_pem: cert
                .map(|c| c.to_vec())
                .ok_or_else(|| missing(Part::Cert, "certificate"))?,
            key_pem: key.ok_or_else(|| missing(Part::Key, "key"))?,
            ca_pem: ca.map(|c| c.to_vec()),
            sources: [s0, s1, s2],
        })
    }

    /// The CA PEM, or the error that names how to give one.
    pub fn require_ca(&self) -> Result<&[u8], IdentityError> {
        self.ca_pem.as_deref().ok_or(IdentityError::Missing {
            what: "CA certificate",
            var: Part::Ca.env_name(),
            flag: Part::Ca.flag(),
        })
    }
}

fn looks_like_pem(bytes: &[u8]) -> bool {
    let text = String::from_utf8_lossy(bytes);
    text.trim_start().starts_with("-----BEGIN ")
}

/// Decodes an environment value: PEM as is, or base64 of PEM.
pub fn decode_env_value(
    var: &'static str,
    value: &str,
) -> Result<Zeroizing<Vec<u8>>, IdentityError> {
    if looks_like_pem(value.as_bytes()) {
        return Ok(Zeroizing::new(value.as_bytes().to_vec()));
    }
    let compact: Zeroizing<String> =
        Zeroizing::new(value.chars().filter(|c| !c.is_ascii_whitespace()).collect());
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .map(Zeroizing::new)
        .map_err(|_| IdentityError::BadEnv { var })?;
    if !looks_like_pem(&bytes) {
        return Err(IdentityError::BadEnv { var });
    }
    Ok(bytes)
}

/// A part's bytes (if given) and where they came from.
type Loaded = (Option<Zeroizing<Vec<u8>>>, &'static str);

fn load_part(
    part: Part,
    file: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Loaded, IdentityError> {
    if let Some(value) = env(part.env_name()).filter(|v| !v.trim().is_empty()) {
        let value = Zeroizing::new(value);
        return Ok((
            Some(decode_env_value(part.env_name(), &value)?),
            part.env_name(),
        ));
    }
    let Some(path) = file else {
        return Ok((None, "none"));
    };
    let bytes = std::fs::read(path)
        .map(Zeroizing::new)
        .map_err(|error| IdentityError::File {
            path: path.to_owned(),
            error,
        })?;
    if !looks_like_pem(&bytes) {
        return Err(IdentityError::NotPem {
            path: path.to_owned(),
        });
    }
    Ok((Some(bytes), part.flag()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CERT: &str = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    const KEY: &str = "-----BEGIN PRIVATE KEY-----\nBBBB\n-----END PRIVATE KEY-----\n";

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn env_wins_over_files_and_accepts_base64_or_pem() {
        let dir = tempfile::tempdir().unwrap();
        let cert_file = dir.path().join("c.pem");
        std::fs::write(
            &cert_file,
            "-----BEGIN CERTIFICATE-----\nFILE\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let files = Files {
            cert: Some(cert_file),
            ..Files::default()
        };
        // Base64 with a line break in the middle, as a dashboard may wrap it.
        let mut cert_b64 = b64(CERT);
        cert_b64.insert(10, '\n');
        let env = move |name: &str| match name {
            "MTLS_CERT" => Some(cert_b64.clone()),
            "MTLS_KEY" => Some(KEY.to_owned()),
            _ => None,
        };
        let id = Identity::load(&files, &env).unwrap();
        assert_eq!(id.cert_pem, CERT.as_bytes());
        assert_eq!(id.key_pem.as_slice(), KEY.as_bytes());
        assert!(id.ca_pem.is_none());
        assert!(id.require_ca().unwrap_err().to_string().contains("MTLS_CA"));
        let dbg = format!("{id:?}");
        assert!(dbg.contains("MTLS_CERT") && !dbg.contains("BBBB"));
    }

    #[test]
    fn files_are_used_without_env_and_errors_name_the_source() {
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("k.pem");
        std::fs::write(&key_file, KEY).unwrap();
        let none = |_: &str| None;
        let files = Files {
            key: Some(key_file.clone()),
            ..Files::default()
        };
        let err = Identity::load(&files, &none).unwrap_err().to_string();
        assert!(err.contains("MTLS_CERT") && err.contains("--cert"), "{err}");

        let bad = |name: &str| (name == "MTLS_CERT").then(|| "not base64 !!".to_owned());
        let err = Identity::load(&files, &bad).unwrap_err().to_string();
        assert!(err.contains("MTLS_CERT"), "{err}");

        let not_pem = |name: &str| (name == "MTLS_CERT").then(|| b64("hello"));
        assert!(Identity::load(&files, &not_pem).is_err());

        let files = Files {
            cert: Some(dir.path().join("missing.pem")),
            key: Some(key_file),
            ca: None,
        };
        let err = Identity::load(&files, &none).unwrap_err().to_string();
        assert!(err.contains("missing.pem"), "{err}");
    }
}
