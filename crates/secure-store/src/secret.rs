//! Secrets as newtypes: zeroized on drop, redacted in `Debug`, never
//! `Display`. The store key is a string (the original project used it as
//! rclone's config password and hashed it for env values), so it stays a
//! string here, trimmed of surrounding white space.

use std::fmt;

use zeroize::Zeroizing;

/// Why a store key was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StoreKeyError {
    #[error("the store key is empty")]
    Empty,
    #[error("the store key contains a control character (a stray newline or NUL?)")]
    ControlCharacter,
}

/// The store key: unlocks a store's `encrypt.conf` and its env values.
#[derive(Clone)]
pub struct StoreKey(Zeroizing<String>);

impl StoreKey {
    /// Accepts a key as typed or read from a file: surrounding white space
    /// (a trailing newline) is dropped; an empty key or one with control
    /// characters inside is refused.
    pub fn new(text: &str) -> Result<Self, StoreKeyError> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(StoreKeyError::Empty);
        }
        if trimmed.chars().any(char::is_control) {
            return Err(StoreKeyError::ControlCharacter);
        }
        Ok(StoreKey(Zeroizing::new(trimmed.to_owned())))
    }

    /// A fresh key: 32 random bytes as 64 lower-case hex characters, the
    /// shape the original project's `-new-key` printed.
    pub fn generate() -> Self {
        let bytes = Zeroizing::new(crate::rng::bytes::<32>());
        StoreKey(Zeroizing::new(hex::encode(*bytes)))
    }

    /// The key text. Callers must not log or print it (except `keygen`).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StoreKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_and_refuses_bad_keys() {
        assert_eq!(StoreKey::new(" abc\n").unwrap().expose(), "abc");
        assert_eq!(StoreKey::new(" \n").unwrap_err(), StoreKeyError::Empty);
        assert_eq!(
            StoreKey::new("a\nb").unwrap_err(),
            StoreKeyError::ControlCharacter
        );
    }

    #[test]
    fn generated_keys_are_64_hex_and_redacted() {
        let key = StoreKey::generate();
        assert_eq!(key.expose().len(), 64);
        assert!(key.expose().bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(format!("{key:?}"), "StoreKey(<redacted>)");
        assert_ne!(key.expose(), StoreKey::generate().expose());
    }
}
