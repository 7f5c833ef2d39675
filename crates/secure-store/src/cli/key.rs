//! Where the store key comes from: `--key-file FILE` (or `STORE_KEY_FILE`),
//! else `STORE_PASSWORD` (the original project's variable), else `--key`
//! on the command line, which works but is warned about: command lines are
//! visible to every user through `ps` and end up in shell history.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use zeroize::Zeroizing;

use crate::secret::StoreKey;

/// The store key options shared by every command that needs the key.
/// `Debug` shows where the key comes from, never the key.
#[derive(clap::Args)]
pub struct KeyArgs {
    /// Read the store key from this file (first line; keep it mode 0600).
    #[arg(long, value_name = "FILE", env = "STORE_KEY_FILE")]
    pub key_file: Option<PathBuf>,

    /// The store key itself. Prefer STORE_PASSWORD or --key-file: a key on
    /// the command line is visible to other users and kept in shell history.
    #[arg(
        long,
        value_name = "KEY",
        env = "STORE_PASSWORD",
        hide_env_values = true
    )]
    pub key: Option<String>,
}

impl std::fmt::Debug for KeyArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyArgs")
            .field("key_file", &self.key_file)
            .field("key", &self.key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl KeyArgs {
    /// Resolves the key, or explains how to give one.
    pub fn load(&self) -> anyhow::Result<StoreKey> {
        if let Some(path) = &self.key_file {
            return read_key_file(path);
        }
        let Some(key) = &self.key else {
            bail!("no store key: set STORE_PASSWORD, or pass --key-file FILE");
        };
        let from_env = std::env::var("STORE_PASSWORD").is_ok_and(|v| &v == key);
        if !from_env {
            tracing::warn!("the store key was given on the command line, where other users can see it; prefer STORE_PASSWORD or --key-file");
        }
        StoreKey::new(key).context("the store key from --key/STORE_PASSWORD")
    }
}

/// Reads a key file, warning when others can read it.
pub fn read_key_file(path: &Path) -> anyhow::Result<StoreKey> {
    let text = Zeroizing::new(
        fs::read_to_string(path)
            .with_context(|| format!("cannot read the key file {}", path.display()))?,
    );
    if let Ok(meta) = fs::metadata(path) {
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(file = %path.display(), "the key file is readable by other users; chmod 600 it");
        }
    }
    let first = text.lines().next().unwrap_or("");
    StoreKey::new(first).with_context(|| format!("the key file {}", path.display()))
}

/// `secure-store keygen`.
pub fn keygen(out: Option<&Path>) -> anyhow::Result<ExitCode> {
    let key = StoreKey::generate();
    match out {
        None => println!("{}", key.expose()),
        Some(path) => {
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .with_context(|| {
                    format!("cannot create {} (it must not exist yet)", path.display())
                })?;
            // create_new + mode is subject to the umask; make sure of 0600.
            file.set_permissions(fs::Permissions::from_mode(0o600))?;
            writeln!(file, "{}", key.expose())
                .and_then(|()| file.sync_all())
                .with_context(|| format!("cannot write {}", path.display()))?;
            tracing::info!("wrote a new store key to {} (mode 0600)", path.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}
