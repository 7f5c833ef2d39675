//! Tang keys shared by server replicas through the state database, sealed
//! at rest under a key-encryption key (KEK) the operator provides.
//!
//! Issue 5 asks that replicas share the Tang keys, "encrypted at rest with
//! a key the operator provides through a file or env value, never stored
//! in clear in the database". Each private JWK becomes one
//! [`TangKeyRow`] (table `tang_keys`, migration
//! 0002):
//!
//! - AES-256-GCM under the 32-byte [`Kek`], a fresh random 12-byte nonce
//!   per row; `sealed = nonce ‖ ciphertext ‖ tag`;
//! - additional data `"secure-store tang key v" ‖ format ‖ NUL ‖
//!   thumbprint`, so a row moved to another thumbprint, or relabelled with
//!   another format, does not open;
//! - after opening, the JWK's own S256 thumbprint must equal the row's.
//!
//! The store only ever sees the sealed bytes; the clear JWK lives in
//! [`Zeroizing`] buffers for as long as [`KeySet::from_jwks`] parses it.
//! A KEK that does not open a row is one error naming where the KEK came
//! from and the row ([`SealError::WrongKek`]); nothing falls back.
//!
//! The KEK text is 64 hex digits or the base64 (standard or URL-safe,
//! padded or not) of 32 bytes, e.g. `openssl rand -hex 32`. Operator
//! page: docs/STATE.md "Shared Tang keys".

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use zeroize::Zeroizing;

use super::{KeySet, TangError};
use crate::state::{StateError, Store, TangKeyRow};

/// The sealing format this program writes and reads.
pub const FORMAT: i64 = 1;
/// Nonce length (AES-GCM standard nonce).
pub const NONCE_LEN: usize = 12;
/// Authentication tag length.
pub const TAG_LEN: usize = 16;
/// The environment variable holding the KEK itself (the file flag's
/// alternative).
pub const KEK_ENV: &str = "SECURE_STORE_TANG_KEK";

/// Errors of sealed Tang keys.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("Tang key-encryption key ({origin}): {detail}")]
    BadKek { origin: String, detail: String },
    #[error("cannot read the Tang key-encryption key file {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the Tang key-encryption key ({origin}) does not open Tang key {thumbprint} in the \
         state database: wrong key-encryption key, or the row was altered"
    )]
    WrongKek { origin: String, thumbprint: String },
    #[error("Tang key {thumbprint} in the state database has sealing format {format}; this program reads format {FORMAT}")]
    Format { thumbprint: String, format: i64 },
    #[error(
        "Tang key {thumbprint} in the state database holds a key whose thumbprint is {actual}"
    )]
    Mismatch { thumbprint: String, actual: String },
    #[error(
        "no Tang keys in the state database: import a key directory \
         (`secure-store server import-keys`) or make a pair (`secure-store server rotate-keys`)"
    )]
    Empty,
    #[error("{0}")]
    Tang(#[from] TangError),
    #[error("{0}")]
    State(#[from] StateError),
}

/// The 32-byte key-encryption key, with where it came from (for messages).
pub struct Kek {
    key: Zeroizing<[u8; 32]>,
    origin: String,
}

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kek")
            .field("origin", &self.origin)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl Kek {
    /// Parses a KEK text (surrounding whitespace ignored): 64 hex digits,
    /// or base64 (standard or URL-safe, padded or not) of 32 bytes.
    /// `origin` names where it came from in errors (a file, an env var).
    pub fn parse(text: &str, origin: &str) -> Result<Kek, SealError> {
        use base64::engine::general_purpose::{
            STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD,
        };
        use base64::Engine;
        let t = text.trim();
        let bad = |detail: &str| SealError::BadKek {
            origin: origin.to_owned(),
            detail: detail.to_owned(),
        };
        if t.is_empty() {
            return Err(bad("empty"));
        }
        let bytes: Zeroizing<Vec<u8>> = if t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit())
        {
            Zeroizing::new(hex::decode(t).map_err(|_| bad("not hex"))?)
        } else {
            let decoded = [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
                .iter()
                .find_map(|e| e.decode(t).ok())
                .ok_or_else(|| bad("neither 64 hex digits nor base64 of 32 bytes"))?;
            Zeroizing::new(decoded)
        };
        if bytes.len() != 32 {
            return Err(bad(&format!(
                "{} bytes; 32 are needed (e.g. `openssl rand -hex 32`)",
                bytes.len()
            )));
        }
        let mut key = Zeroizing::new([0u8; 32]);
        key.copy_from_slice(&bytes);
        Ok(Kek {
            key,
            origin: origin.to_owned(),
        })
    }

    /// Reads the KEK from a file (its first line); warns when the file is
    /// readable by group or others (it should be 0600).
    pub fn from_file(path: &Path) -> Result<Kek, SealError> {
        let io = |source| SealError::Io {
            path: path.to_owned(),
            source,
        };
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(io)?);
        if let Ok(meta) = std::fs::metadata(path) {
            if meta.permissions().mode() & 0o077 != 0 {
                tracing::warn!(
                    file = %path.display(),
                    mode = format_args!("{:o}", meta.permissions().mode() & 0o777),
                    "the Tang key-encryption key file is readable by other users; chmod 600 it"
                );
            }
        }
        let first = text.lines().next().unwrap_or("");
        Kek::parse(first, &format!("file {}", path.display()))
    }

    /// A random KEK.
    pub fn generate(origin: &str) -> Kek {
        Kek {
            key: Zeroizing::new(crate::rng::bytes::<32>()),
            origin: origin.to_owned(),
        }
    }

    /// The KEK as 64 hex digits (to write a new KEK file).
    pub fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(*self.key))
    }

    /// Where the KEK came from (`file /etc/…`, `env SECURE_STORE_TANG_KEK`).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(self.key.as_ref().into())
    }
}

/// The additional authenticated data of a row.
fn aad(format: i64, thumbprint: &str) -> Vec<u8> {
    let mut aad = format!("secure-store tang key v{format}").into_bytes();
    aad.push(0);
    aad.extend_from_slice(thumbprint.as_bytes());
    aad
}

/// Seals one private JWK text into a row (its thumbprint computed and
/// the key checked as [`KeySet::from_jwks`] checks it).
pub fn seal(
    kek: &Kek,
    name: &str,
    jwk: &[u8],
    hidden: bool,
    created: i64,
) -> Result<TangKeyRow, SealError> {
    let thumbprint = KeySet::jwk_thumbprint(name, jwk)?;
    let nonce = crate::rng::bytes::<NONCE_LEN>();
    let ciphertext = kek
        .cipher()
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: jwk,
                aad: &aad(FORMAT, &thumbprint),
            },
        )
        .map_err(|_| SealError::BadKek {
            origin: kek.origin.clone(),
            detail: "AES-GCM sealing failed".into(),
        })?;
    let mut sealed = Vec::with_capacity(NONCE_LEN + ciphertext.len());
    sealed.extend_from_slice(&nonce);
    sealed.extend_from_slice(&ciphertext);
    Ok(TangKeyRow {
        thumbprint,
        hidden,
        created,
        format: FORMAT,
        sealed,
    })
}

/// Opens one row: the clear private JWK text.
pub fn unseal(kek: &Kek, row: &TangKeyRow) -> Result<Zeroizing<Vec<u8>>, SealError> {
    if row.format != FORMAT {
        return Err(SealError::Format {
            thumbprint: row.thumbprint.clone(),
            format: row.format,
        });
    }
    let wrong = || SealError::WrongKek {
        origin: kek.origin.clone(),
        thumbprint: row.thumbprint.clone(),
    };
    if row.sealed.len() < NONCE_LEN + TAG_LEN {
        return Err(wrong());
    }
    let (nonce, ciphertext) = row.sealed.split_at(NONCE_LEN);
    let clear = Zeroizing::new(
        kek.cipher()
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &aad(row.format, &row.thumbprint),
                },
            )
            .map_err(|_| wrong())?,
    );
    let actual = KeySet::jwk_thumbprint(&row.thumbprint, &clear)?;
    if actual != row.thumbprint {
        return Err(SealError::Mismatch {
            thumbprint: row.thumbprint.clone(),
            actual,
        });
    }
    Ok(clear)
}

/// What identifies a loaded key table: (thumbprint, hidden) of every row.
/// Replicas compare it to decide whether to rebuild their key set.
pub type Fingerprint = Vec<(String, bool)>;

/// The fingerprint of `rows`.
pub fn fingerprint(rows: &[TangKeyRow]) -> Fingerprint {
    rows.iter()
        .map(|r| (r.thumbprint.clone(), r.hidden))
        .collect()
}

/// Builds a key set from rows, opening every one with `kek`.
pub fn key_set(kek: &Kek, rows: &[TangKeyRow]) -> Result<KeySet, SealError> {
    if rows.is_empty() {
        return Err(SealError::Empty);
    }
    let clear: Vec<Zeroizing<Vec<u8>>> = rows
        .iter()
        .map(|r| unseal(kek, r))
        .collect::<Result<_, _>>()?;
    Ok(KeySet::from_jwks(rows.iter().zip(&clear).map(|(r, c)| {
        (r.thumbprint.as_str(), c.as_slice(), r.hidden)
    }))?)
}

/// Reads the key table and builds the key set (every row must open).
pub fn load(store: &dyn Store, kek: &Kek) -> Result<(KeySet, Fingerprint), SealError> {
    let rows = store.tang_keys()?;
    let set = key_set(kek, &rows)?;
    Ok((set, fingerprint(&rows)))
}

/// Checks that `kek` opens every row already stored (so one table never
/// mixes keys sealed under two KEKs).
fn check_existing(store: &dyn Store, kek: &Kek) -> Result<usize, SealError> {
    let rows = store.tang_keys()?;
    for r in &rows {
        unseal(kek, r)?;
    }
    Ok(rows.len())
}

/// Imports a tangd key directory (hidden keys too) into the table.
/// Returns (keys read, rows inserted): keys already present are skipped.
pub fn import_dir(
    store: &dyn Store,
    kek: &Kek,
    dir: &Path,
    now: i64,
) -> Result<(usize, usize), SealError> {
    check_existing(store, kek)?;
    let files = super::read_jwk_files(dir)?;
    let mut rows = Vec::with_capacity(files.len());
    for (name, hidden, bytes) in &files {
        let shown = dir.join(name).display().to_string();
        rows.push(seal(kek, &shown, bytes, *hidden, now)?);
    }
    let inserted = store.insert_tang_keys(&rows, false)?;
    Ok((files.len(), inserted))
}

/// Rotates in the database: a new signing + exchange pair is added and
/// every advertised key hidden, in one transaction. Returns the new
/// thumbprints (signing, exchange).
pub fn rotate(store: &dyn Store, kek: &Kek, now: i64) -> Result<Vec<String>, SealError> {
    check_existing(store, kek)?;
    let pair = KeySet::generate_jwks()?;
    let rows = pair
        .iter()
        .map(|(thp, text)| seal(kek, thp, text.as_bytes(), false, now))
        .collect::<Result<Vec<_>, _>>()?;
    store.insert_tang_keys(&rows, true)?;
    Ok(rows.into_iter().map(|r| r.thumbprint).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::sqlite::SqliteStore;

    fn kek(byte: u8) -> Kek {
        Kek::parse(&hex::encode([byte; 32]), "test").unwrap()
    }

    fn a_key() -> (String, Zeroizing<String>) {
        KeySet::generate_jwks().unwrap().remove(1)
    }

    #[test]
    fn kek_parses_hex_and_base64_only_32_bytes() {
        use base64::Engine;
        let raw = [7u8; 32];
        let forms = [
            hex::encode(raw),
            hex::encode(raw).to_uppercase(),
            format!("  {}\n", hex::encode(raw)),
            base64::engine::general_purpose::STANDARD.encode(raw),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw),
        ];
        for f in &forms {
            assert_eq!(*Kek::parse(f, "t").unwrap().key, raw, "{f:?}");
        }
        for bad in ["", "abcd", &hex::encode([1u8; 16]), &"z".repeat(64)] {
            let e = Kek::parse(bad, "env SECURE_STORE_TANG_KEK").unwrap_err();
            assert!(e.to_string().contains("env SECURE_STORE_TANG_KEK"), "{e}");
        }
        assert!(!format!("{:?}", kek(9)).contains("0909"));
        let k = Kek::generate("g");
        assert_eq!(*Kek::parse(&k.to_hex(), "t").unwrap().key, *k.key);
    }

    #[test]
    fn seal_unseal_round_trip_and_no_clear_key_in_the_row() {
        let (thp, jwk) = a_key();
        let row = seal(&kek(1), "k", jwk.as_bytes(), true, 5).unwrap();
        assert_eq!(row.thumbprint, thp);
        assert!((row.hidden, row.created, row.format) == (true, 5, FORMAT));
        assert_eq!(row.sealed.len(), NONCE_LEN + jwk.len() + TAG_LEN);
        let d: serde_json::Value = serde_json::from_str(&jwk).unwrap();
        let d = d["d"].as_str().unwrap();
        assert!(!String::from_utf8_lossy(&row.sealed).contains(d));
        assert_eq!(unseal(&kek(1), &row).unwrap().as_slice(), jwk.as_bytes());
        // A fresh nonce every time.
        let again = seal(&kek(1), "k", jwk.as_bytes(), true, 5).unwrap();
        assert_ne!(again.sealed[..NONCE_LEN], row.sealed[..NONCE_LEN]);
    }

    #[test]
    fn wrong_kek_fails_naming_it() {
        let (_, jwk) = a_key();
        let row = seal(&kek(1), "k", jwk.as_bytes(), false, 5).unwrap();
        let err = unseal(
            &Kek::parse(&hex::encode([2u8; 32]), "file /etc/k").unwrap(),
            &row,
        )
        .unwrap_err();
        assert!(matches!(err, SealError::WrongKek { .. }));
        let msg = err.to_string();
        assert!(
            msg.contains("file /etc/k") && msg.contains(&row.thumbprint),
            "{msg}"
        );
    }

    #[test]
    fn a_row_moved_to_another_thumbprint_or_format_does_not_open() {
        let (_, jwk) = a_key();
        let (_, other) = a_key();
        let row = seal(&kek(1), "k", jwk.as_bytes(), false, 5).unwrap();
        let victim = seal(&kek(1), "o", other.as_bytes(), false, 5).unwrap();
        let moved = TangKeyRow {
            thumbprint: victim.thumbprint.clone(),
            ..row.clone()
        };
        assert!(matches!(
            unseal(&kek(1), &moved),
            Err(SealError::WrongKek { .. })
        ));
        let relabelled = TangKeyRow {
            format: 2,
            ..row.clone()
        };
        assert!(matches!(
            unseal(&kek(1), &relabelled),
            Err(SealError::Format { .. })
        ));
        let mut flipped = row.clone();
        let last = flipped.sealed.len() - 1;
        flipped.sealed[last] ^= 1;
        assert!(matches!(
            unseal(&kek(1), &flipped),
            Err(SealError::WrongKek { .. })
        ));
        let short = TangKeyRow {
            sealed: vec![0; 20],
            ..row
        };
        assert!(matches!(
            unseal(&kek(1), &short),
            Err(SealError::WrongKek { .. })
        ));
    }

    #[test]
    fn import_rotate_load_through_a_store() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("tang");
        KeySet::generate(&dir).unwrap();
        KeySet::rotate(&dir).unwrap();
        let from_dir = KeySet::load(&dir).unwrap();
        let store = SqliteStore::open_in_memory().unwrap();
        assert!(matches!(load(&store, &kek(1)), Err(SealError::Empty)));
        assert_eq!(import_dir(&store, &kek(1), &dir, 7).unwrap(), (4, 4));
        assert_eq!(import_dir(&store, &kek(1), &dir, 8).unwrap(), (4, 0));
        let (set, fp) = load(&store, &kek(1)).unwrap();
        assert_eq!(fp.iter().filter(|(_, hidden)| *hidden).count(), 2);
        assert_eq!(set.signing_key_ids(), from_dir.signing_key_ids());
        let mut a = set.exchange_key_ids();
        let mut b = from_dir.exchange_key_ids();
        a.sort();
        b.sort();
        assert_eq!(a, b);
        // A wrong KEK neither loads nor adds rows.
        assert!(matches!(
            load(&store, &kek(2)),
            Err(SealError::WrongKek { .. })
        ));
        assert!(matches!(
            rotate(&store, &kek(2), 9),
            Err(SealError::WrongKek { .. })
        ));
        assert_eq!(store.tang_keys().unwrap().len(), 4);

        let new = rotate(&store, &kek(1), 9).unwrap();
        let (rotated, fp2) = load(&store, &kek(1)).unwrap();
        assert_ne!(fp, fp2);
        assert_eq!(rotated.signing_key_ids(), vec![new[0].clone()]);
        assert_eq!(rotated.exchange_key_ids().len(), 3);
        assert!(rotated.exchange_key_ids().contains(&new[1]));
        assert_eq!(fp2.iter().filter(|(_, hidden)| !hidden).count(), 2);
    }
}
