//! Secure Store's byte formats, with no I/O of their own.
//!
//! - [`rclone`]: the rclone crypt format (key derivation, file content,
//!   file names, obscured passwords, the encrypted config file), byte-exact
//!   with rclone 1.59+ and the original Go secure-store.
//! - [`env`](mod@env): encrypted environment values, `v0` (the original project's)
//!   and `v1` (ours: versioned, key id, variable name bound as AAD).
//! - [`jose`]: JOSE for Tang and clevis (P-521 JWKs, ES512 JWS, ECDH-ES
//!   compact JWE, the McCallum-Relyea exchange, the clevis tang pin).
//!
//! Everything here works on byte slices and `std::io` traits; the caller
//! supplies randomness (nonces) so that every function is deterministic and
//! testable against vectors.
//!
//! An env value, bound to its variable name:
//!
//! ```
//! use ssformat::env::{self, Format};
//!
//! let nonce = [7u8; 12]; // use fresh random bytes in real code
//! let value = env::encrypt(Format::V1, "store key", "API_KEY", b"s3cr3t", nonce);
//! assert!(value.starts_with("v1."));
//! assert_eq!(&env::decrypt("store key", "API_KEY", &value).unwrap()[..], b"s3cr3t");
//! // Pasted under another name, or opened with another key, it fails.
//! assert!(env::decrypt("store key", "OTHER", &value).is_err());
//! assert!(env::decrypt("other key", "API_KEY", &value).is_err());
//! ```
//!
//! A file's content in rclone's crypt format, streamed both ways:
//!
//! ```
//! use std::io::{Read, Write};
//! use ssformat::rclone::content::{self, BlockCipher, DecryptReader, EncryptWriter, FileNonce};
//! use ssformat::rclone::keys::CryptKeys;
//!
//! let keys = CryptKeys::derive("crypt password", "").unwrap();
//! let mut writer = EncryptWriter::new(BlockCipher::new(&keys), FileNonce([1; 24]), Vec::new()).unwrap();
//! writer.write_all(b"hello, rclone").unwrap();
//! let sealed = writer.finish().unwrap();
//! assert_eq!(sealed.len() as u64, content::encrypted_size(13));
//!
//! let mut plain = Vec::new();
//! DecryptReader::new(BlockCipher::new(&keys), &sealed[..]).unwrap().read_to_end(&mut plain).unwrap();
//! assert_eq!(plain, b"hello, rclone");
//! ```
#![forbid(unsafe_code)]

pub mod env;
pub mod jose;
pub mod rclone;
