//! rclone crypt key derivation.
//!
//! rclone runs scrypt (N = 16384, r = 8, p = 1) over the crypt `password`,
//! salted with `password2` when one is set and with a fixed built-in salt
//! otherwise, and cuts the 80 output bytes into a 32-byte data key (file
//! content), a 32-byte name key and a 16-byte name tweak (EME names).
//! Facts from rclone's `backend/crypt/cipher.go`; checked against
//! `shared/vectors/rclone/*/keys.json`.

use std::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop};

/// The salt rclone uses when `password2` is empty.
pub const DEFAULT_SALT: [u8; 16] = [
    0xA8, 0x0D, 0xF4, 0x3A, 0x8F, 0xBD, 0x03, 0x08, 0xA7, 0xCA, 0xB8, 0x3E, 0x58, 0x1F, 0x86, 0xB1,
];

/// scrypt cost parameters rclone uses (log2 N = 14).
const SCRYPT_LOG_N: u8 = 14;
const SCRYPT_R: u32 = 8;
const SCRYPT_P: u32 = 1;

/// Why keys could not be derived.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    /// rclone refuses an empty crypt password, and so do we.
    #[error("the crypt password is empty")]
    EmptyPassword,
}

/// The three secrets of one crypt remote. Zeroized on drop; `Debug` is redacted.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct CryptKeys {
    data_key: [u8; 32],
    name_key: [u8; 32],
    name_tweak: [u8; 16],
}

impl CryptKeys {
    /// Derives the keys the way rclone does from the *revealed* (clear)
    /// `password` and `password2` of a crypt remote.
    pub fn derive(password: &str, password2: &str) -> Result<Self, KeyError> {
        if password.is_empty() {
            return Err(KeyError::EmptyPassword);
        }
        let salt: &[u8] = if password2.is_empty() {
            &DEFAULT_SALT
        } else {
            password2.as_bytes()
        };
        // The `len` of `Params` only matters for PHC hash strings (and must
        // be at most 64); `scrypt::scrypt` fills the whole 80-byte buffer.
        let params = scrypt::Params::new(
            SCRYPT_LOG_N,
            SCRYPT_R,
            SCRYPT_P,
            scrypt::Params::RECOMMENDED_LEN,
        )
        .expect("rclone's scrypt parameters are valid");
        let mut out = [0u8; 80];
        scrypt::scrypt(password.as_bytes(), salt, &params, &mut out)
            .expect("an 80-byte output is a valid scrypt length");
        let keys = Self::from_bytes(&out);
        out.zeroize();
        Ok(keys)
    }

    /// Builds keys from the 80 derived bytes (data key ‖ name key ‖ tweak).
    pub fn from_bytes(derived: &[u8; 80]) -> Self {
        let mut keys = CryptKeys {
            data_key: [0; 32],
            name_key: [0; 32],
            name_tweak: [0; 16],
        };
        keys.data_key.copy_from_slice(&derived[..32]);
        keys.name_key.copy_from_slice(&derived[32..64]);
        keys.name_tweak.copy_from_slice(&derived[64..]);
        keys
    }

    /// Key of the XSalsa20-Poly1305 content blocks.
    pub fn data_key(&self) -> &[u8; 32] {
        &self.data_key
    }

    /// AES-256 key of EME name encryption (also seeds `obfuscate`).
    pub fn name_key(&self) -> &[u8; 32] {
        &self.name_key
    }

    /// EME tweak of name encryption.
    pub fn name_tweak(&self) -> &[u8; 16] {
        &self.name_tweak
    }
}

impl fmt::Debug for CryptKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CryptKeys(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_password_is_refused() {
        assert_eq!(
            CryptKeys::derive("", "x").unwrap_err(),
            KeyError::EmptyPassword
        );
    }

    #[test]
    fn debug_is_redacted() {
        let keys = CryptKeys::from_bytes(&[7u8; 80]);
        assert_eq!(format!("{keys:?}"), "CryptKeys(<redacted>)");
    }

    #[test]
    fn derives_the_vector_keys() {
        // shared/vectors/rclone/case-a-standard/keys.json
        let keys = CryptKeys::derive("secure-store test password A", "").unwrap();
        assert_eq!(
            hex::encode(keys.data_key()),
            "547fa0694d2bf9234db646570bf554e73b957478ff9db983cae9cd9249a6d260"
        );
        assert_eq!(
            hex::encode(keys.name_key()),
            "b0d4d1b24d7a9d1dd3cc67376eb6f471b392a2c7b17d56bd7cdcdc0710b655a4"
        );
        assert_eq!(
            hex::encode(keys.name_tweak()),
            "97043dd637c97c4731cbad5b8403f80f"
        );
    }

    #[test]
    fn split_is_data_name_tweak() {
        let mut bytes = [0u8; 80];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = i as u8;
        }
        let keys = CryptKeys::from_bytes(&bytes);
        assert_eq!(keys.data_key()[0], 0);
        assert_eq!(keys.name_key()[0], 32);
        assert_eq!(keys.name_tweak()[0], 64);
    }
}
