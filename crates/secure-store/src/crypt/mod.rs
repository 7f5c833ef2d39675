//! Encrypted stores on disk: a folder of rclone crypt files plus an
//! `encrypt.conf` (an rclone config encrypted with the store key), the
//! layout of the original Go secure-store. Any store here opens with a
//! stock `rclone` given the store key, and any original store opens here.
//!
//! - [`store`]: locating, creating, opening and re-keying a store;
//! - [`stream`]: one file's content, sealed and opened in parallel batches
//!   of blocks with memory independent of the file size;
//! - [`tree`]: whole folders in and out (parallel across files), listing
//!   and verification;
//! - [`output`]: temp-then-rename writes so that nothing half-written
//!   is ever left looking complete.

pub mod output;
pub mod store;
pub mod stream;
pub mod tree;

use std::io;
use std::path::PathBuf;

use ssformat::rclone::{
    config::ConfigError, content::ContentError, keys::KeyError, name::NameError,
};

/// What went wrong with a store. Every variant names the file it is about.
/// The underlying error is part of the message, not a `source()`, so that
/// the one-line `{:#}` rendering at the edge does not repeat it.
#[derive(Debug, thiserror::Error)]
pub enum CryptError {
    #[error("{path}: {error}")]
    Io { path: PathBuf, error: io::Error },
    #[error("{path}: {error}")]
    Config { path: PathBuf, error: ConfigError },
    #[error("{path}: the store key does not open this store config (wrong key, or not a secure-store config)")]
    WrongKey { path: PathBuf },
    #[error("{path}: {reason}")]
    Layout { path: PathBuf, reason: String },
    #[error("{path}: cannot derive the crypt keys: {error}")]
    Keys { path: PathBuf, error: KeyError },
    #[error("{path}: {error}")]
    Content { path: PathBuf, error: ContentError },
    #[error("{plain} (stored as {path}): {error}")]
    Stored {
        plain: String,
        path: PathBuf,
        error: ContentError,
    },
    #[error("{path}: cannot encrypt or decrypt this name: {error}")]
    Name { path: PathBuf, error: NameError },
    #[error("{path}: already exists; refusing to overwrite it")]
    Exists { path: PathBuf },
    #[error("{path}: is a symbolic link; refusing to follow it (use --skip-symlinks to leave links out)")]
    Symlink { path: PathBuf },
    #[error("{path}: not a regular file or directory; refusing it")]
    Special { path: PathBuf },
}

impl CryptError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> CryptError {
        let path = path.into();
        move |error| CryptError::Io { path, error }
    }
}
