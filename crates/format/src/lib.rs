//! Secure Store's byte formats, with no I/O of their own.
//!
//! - [`rclone`]: the rclone crypt format (key derivation, file content,
//!   file names, obscured passwords, the encrypted config file), byte-exact
//!   with rclone 1.59+ and the original Go secure-store.
//! - [`env`](mod@env): encrypted environment values, `v0` (the original project's)
//!   and `v1` (ours: versioned, key id, variable name bound as AAD).
//!
//! Everything here works on byte slices and `std::io` traits; the caller
//! supplies randomness (nonces) so that every function is deterministic and
//! testable against vectors.
#![forbid(unsafe_code)]

pub mod env;
pub mod rclone;
