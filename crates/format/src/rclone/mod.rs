//! The rclone crypt format, byte-exact with rclone 1.59+ (the version the
//! original Go secure-store embedded). Spec: `docs/formats/rclone-crypt.md`
//! and `docs/formats/rclone-config.md`.
//!
//! - [`keys`]: scrypt key derivation from the crypt password(s).
//! - [`content`]: file header and 64 KiB XSalsa20-Poly1305 blocks, with a
//!   streaming writer and a seekable reader.
//! - [`secretbox`]: NaCl secretbox (XSalsa20-Poly1305), several Salsa20
//!   blocks at once, for the content blocks and the encrypted config.
//! - [`name`]: file and directory name encryption (standard EME, obfuscate,
//!   off) in every encoding rclone offers.
//! - [`obscure`]: the reversible "obscured" passwords of rclone configs.
//! - [`config`]: rclone's INI config and its `RCLONE_ENCRYPT_V0:` encryption.

pub mod base32768;
pub mod config;
pub mod content;
pub mod keys;
pub mod local;
pub mod name;
pub mod obscure;
pub mod secretbox;
