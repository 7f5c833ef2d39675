//! `run --materialize DIR`: the store decrypted into a folder in RAM for
//! apps that cannot use a FUSE mount (no `/dev/fuse` in the container).
//!
//! Decisions, in the order they are checked:
//! - `DIR` is created (0700) if it does not exist and then removed on exit;
//!   if it exists it must be an empty folder (typically a tmpfs mount point
//!   such as `docker run --tmpfs /secrets`): it is kept on exit, emptied.
//! - `DIR` must be on tmpfs or ramfs (`statfs` magic), because decrypted
//!   data must never reach persistent storage. A persistent path is refused
//!   unless the operator says otherwise with
//!   `--allow-persistent-materialize` (e.g. an encrypted disk we cannot
//!   recognise).
//! - Folders are 0700 and files 0600 (`crypt::tree::decrypt_tree`), `DIR`
//!   itself is set to 0700.
//! - The tree appears all at once: it is decrypted into a hidden staging
//!   folder inside `DIR` and its entries are then renamed into place.
//! - On exit (drop of [`Materialized`]) everything written is removed.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::sys;
use crate::crypt::store::{Store, StorePaths};
use crate::crypt::{tree, CryptError};
use crate::secret::StoreKey;

const STAGING: &str = ".secure-store-incoming";

/// Why materializing failed.
#[derive(Debug, thiserror::Error)]
pub enum MaterializeError {
    #[error("{path}: {error}")]
    Io { path: PathBuf, error: io::Error },
    #[error("{path} is not empty; --materialize needs an empty or absent folder (it is emptied on exit)")]
    NotEmpty { path: PathBuf },
    #[error("{path} is not on tmpfs or ramfs (file system type {fs_type:#x}): decrypted files would reach persistent storage; use a tmpfs such as /dev/shm, or pass --allow-persistent-materialize")]
    Persistent { path: PathBuf, fs_type: i64 },
    #[error(transparent)]
    Store(#[from] CryptError),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> MaterializeError + '_ {
    move |error| MaterializeError::Io {
        path: path.to_owned(),
        error,
    }
}

/// A decrypted tree that is removed when dropped.
#[derive(Debug)]
pub struct Materialized {
    dir: PathBuf,
    created: bool,
    files: u64,
}

impl Materialized {
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn files(&self) -> u64 {
        self.files
    }
}

impl Drop for Materialized {
    fn drop(&mut self) {
        let result = if self.created {
            fs::remove_dir_all(&self.dir)
        } else {
            empty_dir(&self.dir)
        };
        match result {
            Ok(()) => tracing::debug!(dir = %self.dir.display(), "removed the decrypted files"),
            Err(e) => {
                tracing::error!(dir = %self.dir.display(), "cannot remove the decrypted files: {e}")
            }
        }
    }
}

fn empty_dir(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.symlink_metadata()?.is_dir() {
            fs::remove_dir_all(&path)?;
        } else {
            fs::remove_file(&path)?;
        }
    }
    Ok(())
}

/// Whether a file-system type keeps data in RAM only.
pub fn in_ram(fs_type: i64) -> bool {
    fs_type == sys::TMPFS_MAGIC || fs_type == sys::RAMFS_MAGIC
}

/// Decrypts the store at `store_root` into `dir` (see the module docs).
pub fn materialize(
    store_root: &Path,
    key: &StoreKey,
    dir: &Path,
    allow_persistent: bool,
) -> Result<Materialized, MaterializeError> {
    // Open the store first: a wrong key must not leave an empty folder.
    let store = Store::open(&StorePaths::new(store_root, None, None), key)?;
    let listing = tree::list(&store)?;

    let created = match fs::symlink_metadata(dir) {
        Ok(meta) if meta.is_dir() => {
            if fs::read_dir(dir).map_err(io_err(dir))?.next().is_some() {
                return Err(MaterializeError::NotEmpty { path: dir.into() });
            }
            false
        }
        Ok(_) => return Err(MaterializeError::NotEmpty { path: dir.into() }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::DirBuilder::new()
                .mode(0o700)
                .create(dir)
                .map_err(io_err(dir))?;
            true
        }
        Err(e) => return Err(io_err(dir)(e)),
    };
    // From here on, the guard cleans up whatever happens.
    let mut guard = Materialized {
        dir: dir.to_owned(),
        created,
        files: 0,
    };
    let fs_type = sys::fs_type(dir).map_err(io_err(dir))?;
    if !in_ram(fs_type) {
        if !allow_persistent {
            return Err(MaterializeError::Persistent {
                path: dir.into(),
                fs_type,
            });
        }
        tracing::warn!(dir = %dir.display(), "materializing on persistent storage (--allow-persistent-materialize)");
    }
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io_err(dir))?;

    let staging = dir.join(STAGING);
    let summary = tree::decrypt_tree(&store, &listing, &staging, &|_| {})?;
    for entry in fs::read_dir(&staging).map_err(io_err(&staging))? {
        let entry = entry.map_err(io_err(&staging))?;
        let to = dir.join(entry.file_name());
        fs::rename(entry.path(), &to).map_err(io_err(&to))?;
    }
    fs::remove_dir(&staging).map_err(io_err(&staging))?;
    guard.files = summary.files;
    Ok(guard)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ram_file_systems() {
        assert!(in_ram(sys::TMPFS_MAGIC));
        assert!(in_ram(sys::RAMFS_MAGIC));
        assert!(!in_ram(0xEF53)); // ext4
    }
}
