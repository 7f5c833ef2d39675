//! Encrypted environment values, `ENCRYPTED_<NAME>=<value>`.
//!
//! Spec: `docs/formats/env-values.md`. Two formats:
//!
//! - [`v0`]: the original Go secure-store's `hex(nonce ‖ AES-256-GCM)` with
//!   `SHA-256(store key)` (and, for reading, its older hex-key variant).
//! - [`v1`]: ours. `v1.<kid>.<base64url(nonce ‖ ct ‖ tag)>` with an HKDF key, a
//!   key id, and the variable NAME bound as AAD.
//!
//! This module picks the format ([`detect`], §3 of the spec), dispatches, and
//! holds what both formats share: the error type and the name rule. Callers
//! supply the nonce, 12 bytes from a CSPRNG for every call to [`encrypt`].

use std::fmt;
use std::str::FromStr;

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use zeroize::Zeroizing;

pub mod v0;
pub mod v1;

/// The prefix that marks a variable as encrypted. The rest of the variable's
/// name is the NAME that [`decrypt`] and [`encrypt`] take.
pub const ENCRYPTED_PREFIX: &str = "ENCRYPTED_";

/// AES-GCM nonce length, shared by both formats.
pub(crate) const NONCE_LEN: usize = 12;
/// AES-GCM tag length, shared by both formats.
pub(crate) const TAG_LEN: usize = 16;
/// The shortest sealed payload: a nonce and a tag around an empty plaintext.
pub(crate) const MIN_SEALED_LEN: usize = NONCE_LEN + TAG_LEN;

/// Linux's `MAX_ARG_STRLEN`: the longest single `NAME=value` string, NUL
/// included, that `execve` accepts in a new process's environment. It is
/// the limit that matters for an encrypted value (spec §2.6).
pub const MAX_ENV_STRING_LEN: usize = 131_072;

/// An encrypted value format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// The original project's pure-hex format.
    V0,
    /// Ours: versioned, key id, name bound.
    V1,
}

impl Format {
    /// The name used on the command line and in [`Display`](fmt::Display).
    pub fn as_str(self) -> &'static str {
        match self {
            Format::V0 => "v0",
            Format::V1 => "v1",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `Format::from_str` was given something other than `v0` or `v1`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown env value format `{0}`; expected `v0` or `v1`")]
pub struct ParseFormatError(String);

impl FromStr for Format {
    type Err = ParseFormatError;

    /// Parses `v0` or `v1`, ignoring ASCII case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("v0") {
            Ok(Format::V0)
        } else if s.eq_ignore_ascii_case("v1") {
            Ok(Format::V1)
        } else {
            Err(ParseFormatError(s.to_owned()))
        }
    }
}

/// Why an env value could not be decrypted, or a name not used.
///
/// No variant carries key or plaintext bytes. The only data they carry are
/// key ids, which are public (spec §2.3), and name-rule details.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    /// Neither v0 (hex) nor v1 (`v1.…`): maybe a newer format, or a value
    /// with quotes or whitespace around it.
    #[error(
        "not an encrypted value: expected hex (format v0) or `v1.<key id>.<data>` (format v1); \
         check that the value was not quoted, trimmed or written by a newer secure-store"
    )]
    UnknownFormat,
    /// The value has the right shape at the start but is not well formed
    /// (bad hex/base64, separators, or key id).
    #[error(
        "the encrypted value is malformed; it was probably truncated or edited, so copy it again"
    )]
    BadEncoding,
    /// Well formed but too short to hold a nonce and a tag.
    #[error("the encrypted value is too short to hold a nonce and a tag; it was probably truncated, so copy it again")]
    TooShort,
    /// v1 only: the value names another store key (checked before any
    /// decryption is attempted).
    #[error(
        "the value was encrypted with store key id {found}, but this store key has id {expected}; \
         use the store key whose id is {found}"
    )]
    WrongKey {
        /// The key id of the store key we were given.
        expected: String,
        /// The key id written in the value.
        found: String,
    },
    /// The AES-GCM tag did not verify. Deliberately opaque: a wrong key (v0),
    /// a value moved to another name (v1), or any modification.
    #[error(
        "the value failed to decrypt: wrong store key, value moved from another variable name, \
         or value modified; re-encrypt it for this name with the right store key"
    )]
    Authentication,
    /// A variable name that [`validate_name`] rejects.
    #[error("invalid variable name: {0}")]
    BadName(NameRule),
}

/// The rule a variable name broke (see [`validate_name`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NameRule {
    /// The name is empty (`ENCRYPTED_` alone).
    Empty,
    /// The first character is a digit.
    LeadingDigit,
    /// A character outside `[A-Za-z0-9_]`, at this character position
    /// (0-based).
    InvalidChar {
        /// The offending character.
        ch: char,
        /// Its position, counted in characters from 0.
        position: usize,
    },
}

impl fmt::Display for NameRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameRule::Empty => f.write_str("the name after ENCRYPTED_ is empty"),
            NameRule::LeadingDigit => f.write_str("a name must not start with a digit"),
            NameRule::InvalidChar { ch, position } => write!(
                f,
                "character {ch:?} at position {position} is not allowed; \
                 use only letters A-Z a-z, digits 0-9 and `_`"
            ),
        }
    }
}

/// Which format `value` is in, judged by its shape alone (spec §3):
/// `v1.` prefix → v1; non-empty and all hex digits → v0; else `None`.
///
/// A value that is detected may still be malformed; [`decrypt`] says how.
pub fn detect(value: &str) -> Option<Format> {
    if value.starts_with(v1::PREFIX) {
        Some(Format::V1)
    } else if !value.is_empty() && value.bytes().all(|b| b.is_ascii_hexdigit()) {
        Some(Format::V0)
    } else {
        None
    }
}

/// Decrypts a value of either format. `name` is the variable name WITHOUT
/// the `ENCRYPTED_` prefix (used as AAD by v1, ignored by v0).
pub fn decrypt(store_key: &str, name: &str, value: &str) -> Result<Zeroizing<Vec<u8>>, EnvError> {
    match detect(value) {
        Some(Format::V0) => v0::decrypt(store_key, value),
        Some(Format::V1) => v1::decrypt(store_key, name, value),
        None => Err(EnvError::UnknownFormat),
    }
}

/// Encrypts `plaintext` for variable `name` (without prefix) and returns
/// only the value part. `nonce` must be 12 fresh bytes from a CSPRNG.
///
/// `name` is bound by v1 exactly as given; call [`validate_name`] first.
pub fn encrypt(
    format: Format,
    store_key: &str,
    name: &str,
    plaintext: &[u8],
    nonce: [u8; 12],
) -> String {
    match format {
        Format::V0 => v0::encrypt(store_key, plaintext, nonce),
        Format::V1 => v1::encrypt(store_key, name, plaintext, nonce),
    }
}

/// Validates a variable name for encryption: non-empty,
/// `[A-Za-z_][A-Za-z0-9_]*` (the portable POSIX shell name rule).
pub fn validate_name(name: &str) -> Result<(), EnvError> {
    match name.chars().next() {
        None => return Err(EnvError::BadName(NameRule::Empty)),
        Some(c) if c.is_ascii_digit() => return Err(EnvError::BadName(NameRule::LeadingDigit)),
        Some(_) => {}
    }
    for (position, ch) in name.chars().enumerate() {
        if !(ch.is_ascii_alphanumeric() || ch == '_') {
            return Err(EnvError::BadName(NameRule::InvalidChar { ch, position }));
        }
    }
    Ok(())
}

/// Length in bytes of the value [`encrypt`] returns for a plaintext of
/// `plaintext_len` bytes.
pub fn encrypted_len(format: Format, plaintext_len: usize) -> usize {
    let sealed = MIN_SEALED_LEN + plaintext_len;
    match format {
        Format::V0 => 2 * sealed,
        Format::V1 => v1::HEADER_LEN + base64_nopad_len(sealed),
    }
}

/// Length of the whole `ENCRYPTED_<name>=<value>` environment string,
/// terminating NUL included, to compare with [`MAX_ENV_STRING_LEN`].
pub fn env_string_len(format: Format, name: &str, plaintext_len: usize) -> usize {
    ENCRYPTED_PREFIX.len() + name.len() + 1 + encrypted_len(format, plaintext_len) + 1
}

/// AES-256-GCM over `plaintext`, returned as `nonce ‖ ciphertext ‖ tag`
/// (the sealed payload of both formats).
pub(crate) fn seal(
    key: &[u8; 32],
    nonce: [u8; NONCE_LEN],
    aad: &[u8],
    plaintext: &[u8],
) -> Vec<u8> {
    let cipher = Aes256Gcm::new(key.into());
    let mut sealed = Vec::with_capacity(MIN_SEALED_LEN + plaintext.len());
    sealed.extend_from_slice(&nonce);
    sealed.extend_from_slice(plaintext);
    // Encrypting in place overwrites the only copy of the plaintext we made.
    let tag = cipher
        .encrypt_in_place_detached(&nonce.into(), aad, &mut sealed[NONCE_LEN..])
        .expect("an env value is far below AES-GCM's 64 GiB plaintext limit");
    sealed.extend_from_slice(&tag);
    sealed
}

/// Opens a sealed `nonce ‖ ciphertext ‖ tag` payload. Any failure of the
/// tag is the one opaque [`EnvError::Authentication`].
pub(crate) fn open(
    key: &[u8; 32],
    aad: &[u8],
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, EnvError> {
    if sealed.len() < MIN_SEALED_LEN {
        return Err(EnvError::TooShort);
    }
    let (nonce, rest) = sealed.split_at(NONCE_LEN);
    let (ciphertext, tag) = rest.split_at(rest.len() - TAG_LEN);
    let cipher = Aes256Gcm::new(key.into());
    // Decrypt into a buffer that is zeroized on drop, with no reallocation,
    // so the plaintext never lives anywhere else.
    let mut plaintext = Zeroizing::new(ciphertext.to_vec());
    cipher
        .decrypt_in_place_detached(
            Nonce::from_slice(nonce),
            aad,
            &mut plaintext,
            Tag::from_slice(tag),
        )
        .map_err(|_| EnvError::Authentication)?;
    Ok(plaintext)
}

fn base64_nopad_len(n: usize) -> usize {
    4 * (n / 3)
        + match n % 3 {
            0 => 0,
            r => r + 1,
        }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "my-password-eQ4al9jgPxlWDwxL6uiGdznhhVJzaVQPnkNRjwvwoTvqWpeBJJJZ";

    #[test]
    fn format_parses_and_displays() {
        for f in [Format::V0, Format::V1] {
            assert_eq!(f.to_string().parse::<Format>(), Ok(f));
        }
        assert_eq!("V1".parse::<Format>(), Ok(Format::V1));
        assert!("v2".parse::<Format>().is_err());
        assert!("".parse::<Format>().is_err());
        assert!(" v1".parse::<Format>().is_err());
    }

    #[test]
    fn detect_edges() {
        assert_eq!(detect(""), None);
        assert_eq!(detect("v1"), None);
        assert_eq!(detect("v1."), Some(Format::V1));
        assert_eq!(detect("v1.x.y"), Some(Format::V1));
        assert_eq!(detect("V1.abc"), None);
        assert_eq!(detect("v2.0011223344556677.AAAA"), None);
        assert_eq!(detect("v0"), None);
        assert_eq!(detect("a"), Some(Format::V0));
        assert_eq!(detect("DEADbeef"), Some(Format::V0));
        assert_eq!(detect("0x00"), None);
        assert_eq!(detect("00 "), None);
        assert_eq!(detect(" 00"), None);
        assert_eq!(detect("00\n"), None);
        assert_eq!(detect("\"00\""), None);
        assert_eq!(detect("é"), None);
        let v0 = encrypt(Format::V0, KEY, "A", b"x", [0; 12]);
        let v1 = encrypt(Format::V1, KEY, "A", b"x", [0; 12]);
        assert_eq!(detect(&v0), Some(Format::V0));
        assert_eq!(detect(&v1), Some(Format::V1));
    }

    #[test]
    fn decrypt_dispatches() {
        for format in [Format::V0, Format::V1] {
            let value = encrypt(format, KEY, "API_KEY", b"secret", [7; 12]);
            assert_eq!(&decrypt(KEY, "API_KEY", &value).unwrap()[..], b"secret");
        }
        // v0 ignores the name; v1 binds it.
        let v0 = encrypt(Format::V0, KEY, "API_KEY", b"secret", [7; 12]);
        assert_eq!(&decrypt(KEY, "OTHER", &v0).unwrap()[..], b"secret");
        let v1 = encrypt(Format::V1, KEY, "API_KEY", b"secret", [7; 12]);
        assert_eq!(decrypt(KEY, "OTHER", &v1), Err(EnvError::Authentication));
    }

    #[test]
    fn decrypt_unknown_and_garbage() {
        for value in ["", " ", "v2.aa.bb", "hello", "'00'", "0g", "v1"] {
            assert_eq!(
                decrypt(KEY, "A", value),
                Err(EnvError::UnknownFormat),
                "{value:?}"
            );
        }
        assert_eq!(decrypt(KEY, "A", "abc"), Err(EnvError::BadEncoding));
        assert_eq!(decrypt(KEY, "A", "00"), Err(EnvError::TooShort));
        assert_eq!(decrypt(KEY, "A", "v1."), Err(EnvError::BadEncoding));
    }

    #[test]
    fn validate_name_rules() {
        for ok in ["A", "_", "API_KEY", "a1", "_9", "lower_case", "X_Y_Z_123"] {
            assert_eq!(validate_name(ok), Ok(()), "{ok}");
        }
        assert_eq!(validate_name(""), Err(EnvError::BadName(NameRule::Empty)));
        assert_eq!(
            validate_name("1A"),
            Err(EnvError::BadName(NameRule::LeadingDigit))
        );
        assert_eq!(
            validate_name("API-KEY"),
            Err(EnvError::BadName(NameRule::InvalidChar {
                ch: '-',
                position: 3
            }))
        );
        assert_eq!(
            validate_name("KEY=1"),
            Err(EnvError::BadName(NameRule::InvalidChar {
                ch: '=',
                position: 3
            }))
        );
        assert_eq!(
            validate_name("ÄPI"),
            Err(EnvError::BadName(NameRule::InvalidChar {
                ch: 'Ä',
                position: 0
            }))
        );
        assert!(matches!(
            validate_name("A B"),
            Err(EnvError::BadName(NameRule::InvalidChar { ch: ' ', .. }))
        ));
        assert!(matches!(
            validate_name("A\0"),
            Err(EnvError::BadName(NameRule::InvalidChar { .. }))
        ));
        let msg = validate_name("A.B").unwrap_err().to_string();
        assert!(msg.contains("position 1"), "{msg}");
    }

    #[test]
    fn lengths_match_encrypt() {
        for n in [0usize, 1, 2, 3, 4, 5, 100, 65_535, 65_536, 65_537] {
            let pt = vec![0x5a; n];
            for format in [Format::V0, Format::V1] {
                let value = encrypt(format, KEY, "N", &pt, [1; 12]);
                assert_eq!(value.len(), encrypted_len(format, n), "{format} {n}");
                assert_eq!(
                    env_string_len(format, "N", n),
                    format!("{ENCRYPTED_PREFIX}N={value}").len() + 1
                );
            }
        }
        // 64 KiB fits as v1 but not as v0 (hex doubles it).
        assert!(env_string_len(Format::V1, "N", 65_536) <= MAX_ENV_STRING_LEN);
        assert!(env_string_len(Format::V0, "N", 65_536) > MAX_ENV_STRING_LEN);
    }

    #[test]
    fn errors_do_not_leak() {
        let err = EnvError::WrongKey {
            expected: "0011223344556677".into(),
            found: "8899aabbccddeeff".into(),
        };
        let msg = err.to_string();
        assert!(msg.contains("0011223344556677") && msg.contains("8899aabbccddeeff"));
        let value = encrypt(Format::V1, KEY, "A", b"TOPSECRET", [3; 12]);
        let err = decrypt("other key", "A", &value).unwrap_err();
        for text in [err.to_string(), format!("{err:?}")] {
            assert!(!text.contains("TOPSECRET") && !text.contains(KEY), "{text}");
        }
    }
}
