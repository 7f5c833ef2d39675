//! Writing and reading fleet files safely.
//!
//! Every file is created with mode 0600 and every folder with 0700 at
//! creation time (never chmod-ed after the bytes are in: a key must not be
//! readable by others even for an instant). A file is written to a temp
//! name beside its target, synced, then moved in place, so a crash leaves
//! the old file or the new one, never half of one. Without `overwrite` the
//! move is a hard link, which fails if the target exists (no race between
//! "does it exist?" and "write it").

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use super::PkiError;

/// Mode of every file we write.
pub const FILE_MODE: u32 = 0o600;
/// Mode of every folder we create.
pub const DIR_MODE: u32 = 0o700;

/// Creates `dir` and any missing parents with mode 0700.
pub fn create_dir(dir: &Path) -> Result<(), PkiError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
        .map_err(|e| PkiError::io(dir, e))
}

/// Writes `bytes` to `path` (mode 0600) through a temp file and a rename.
/// Refuses an existing `path` unless `overwrite`. The parent must exist.
pub fn write(path: &Path, bytes: &[u8], overwrite: bool) -> Result<(), PkiError> {
    let parent = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp: PathBuf = parent.join(format!(
        ".{name}.tmp-{}",
        hex::encode(crate::rng::bytes::<6>())
    ));
    let result = (|| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .open(&tmp)
            .map_err(|e| PkiError::io(&tmp, e))?;
        file.write_all(bytes).map_err(|e| PkiError::io(&tmp, e))?;
        file.sync_all().map_err(|e| PkiError::io(&tmp, e))?;
        drop(file);
        if overwrite {
            fs::rename(&tmp, path).map_err(|e| PkiError::io(path, e))
        } else {
            fs::hard_link(&tmp, path).map_err(|e| {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    PkiError::Exists(path.to_owned())
                } else {
                    PkiError::io(path, e)
                }
            })
        }
    })();
    // After a rename the temp name is gone; after a link or a failure it
    // is still there. Either way nothing is left behind.
    let _ = fs::remove_file(&tmp);
    result
}

/// Reads a public file (a certificate, fleet.json).
pub fn read(path: &Path) -> Result<Vec<u8>, PkiError> {
    fs::read(path).map_err(|e| PkiError::io(path, e))
}

/// Reads a private key file into a buffer that is wiped when dropped.
pub fn read_secret(path: &Path) -> Result<Zeroizing<Vec<u8>>, PkiError> {
    fs::read(path)
        .map(Zeroizing::new)
        .map_err(|e| PkiError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn writes_0600_in_0700_and_refuses_to_clobber() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b");
        create_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&tmp.path().join("a")), 0o700);
        let file = dir.join("k.key");
        write(&file, b"one", false).unwrap();
        assert_eq!(mode(&file), 0o600);
        let err = write(&file, b"two", false).unwrap_err();
        assert!(matches!(err, PkiError::Exists(_)), "{err}");
        assert_eq!(fs::read(&file).unwrap(), b"one");
        write(&file, b"two", true).unwrap();
        assert_eq!(fs::read(&file).unwrap(), b"two");
        assert_eq!(mode(&file), 0o600);
        // No temp files left behind.
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
    }
}
