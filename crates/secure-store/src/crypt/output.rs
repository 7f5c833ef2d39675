//! Writes that are all or nothing.
//!
//! A file is written under a temporary name in its final directory and
//! renamed into place only when complete; a folder of decrypted files is
//! built in a temporary sibling directory (mode 0700) and renamed as a
//! whole. Until the rename, dropping the guard removes what was written, so
//! an error, a refused block or Ctrl-C (see [`interrupted`]) leaves no
//! partial plaintext and nothing that looks complete.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

/// Names of our temporary files start with this; listings skip them.
pub const TEMP_PREFIX: &str = ".secure-store-tmp.";

static INTERRUPTED: OnceLock<Arc<AtomicBool>> = OnceLock::new();

/// Makes SIGINT and SIGTERM set a flag instead of killing the process, so
/// that long operations stop at the next batch and clean up after
/// themselves. A second signal kills the process as usual.
pub fn catch_interrupts() {
    let flag = INTERRUPTED.get_or_init(|| Arc::new(AtomicBool::new(false)));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // Order matters: the conditional shutdown sees the flag set by an
        // earlier signal and exits; the first signal only sets it.
        let _ = signal_hook::flag::register_conditional_shutdown(signal, 130, Arc::clone(flag));
        let _ = signal_hook::flag::register(signal, Arc::clone(flag));
    }
}

/// True once SIGINT or SIGTERM arrived (after [`catch_interrupts`]).
pub fn interrupted() -> bool {
    INTERRUPTED.get().is_some_and(|f| f.load(Ordering::Relaxed))
}

/// The error long operations return when interrupted. Not of kind
/// `Interrupted`: readers retry those (EINTR), and this must stop them.
pub fn interrupted_error() -> io::Error {
    io::Error::other("interrupted by a signal")
}

/// A name unique within this process (pid and a counter: no syscall per
/// file). `create_new` catches a stale file of a dead process with the
/// same pid, and the caller then tries the next name.
fn temp_name(base: &str) -> String {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{base}{}.{n}", std::process::id())
}

/// A file being written under a temporary name in its destination folder.
#[derive(Debug)]
pub struct TempFile {
    path: PathBuf,
    file: File,
    done: bool,
}

impl TempFile {
    /// Creates an empty temporary file in `dir` with permissions `mode`.
    pub fn create_in(dir: &Path, mode: u32) -> io::Result<Self> {
        let path = dir.join(temp_name(TEMP_PREFIX));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&path)?;
        Ok(TempFile {
            path,
            file,
            done: false,
        })
    }

    /// The open file, for writing.
    pub fn file(&mut self) -> &mut File {
        &mut self.file
    }

    /// Moves the finished file to `dest`. With `replace`, an existing
    /// `dest` is replaced atomically (after the new data is on disk, so a
    /// crash leaves the old or the new file, never a torn one); without,
    /// an existing `dest` is an `AlreadyExists` error and stays untouched.
    pub fn commit(self, dest: &Path, replace: bool) -> io::Result<()> {
        if replace {
            let exists = dest.exists();
            self.replace(dest, exists)
        } else {
            self.commit_new(dest)
        }
    }

    /// [`commit`](Self::commit) with replacement, when the caller already
    /// knows whether `dest` exists (one `stat` less per file).
    pub fn replace(mut self, dest: &Path, exists: bool) -> io::Result<()> {
        if exists {
            self.file.sync_data()?;
        }
        fs::rename(&self.path, dest)?;
        self.done = true;
        Ok(())
    }

    fn commit_new(mut self, dest: &Path) -> io::Result<()> {
        // link(2) fails if `dest` exists: a no-clobber rename.
        fs::hard_link(&self.path, dest)?;
        fs::remove_file(&self.path)?;
        self.done = true;
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.done {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// A directory being filled under a temporary name beside its destination.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
    done: bool,
}

impl TempDir {
    /// Creates a 0700 directory next to `dest` (same file system, so the
    /// final rename is atomic). Fails if `dest` already exists.
    pub fn beside(dest: &Path) -> io::Result<Self> {
        if dest.symlink_metadata().is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "already exists",
            ));
        }
        let parent = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let name = dest
            .file_name()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "has no file name"))?;
        let path = parent.join(temp_name(&format!(".{}.partial.", name.to_string_lossy())));
        fs::DirBuilder::new().mode(0o700).create(&path)?;
        Ok(TempDir { path, done: false })
    }

    /// Where to write.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Renames the directory to `dest`, refusing if `dest` appeared meanwhile.
    pub fn commit(mut self, dest: &Path) -> io::Result<()> {
        if dest.symlink_metadata().is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "already exists",
            ));
        }
        fs::rename(&self.path, dest)?;
        self.done = true;
        Ok(())
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !self.done {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn temp_file_vanishes_unless_committed() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut t = TempFile::create_in(dir.path(), 0o600).unwrap();
            t.file().write_all(b"half").unwrap();
        }
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);

        let dest = dir.path().join("f");
        let mut t = TempFile::create_in(dir.path(), 0o600).unwrap();
        t.file().write_all(b"whole").unwrap();
        t.commit(&dest, false).unwrap();
        assert_eq!(fs::read(&dest).unwrap(), b"whole");
        assert_eq!(
            fs::metadata(&dest).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn no_clobber_commit_keeps_the_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("f");
        fs::write(&dest, b"old").unwrap();
        let mut t = TempFile::create_in(dir.path(), 0o600).unwrap();
        t.file().write_all(b"new").unwrap();
        assert_eq!(
            t.commit(&dest, false).unwrap_err().kind(),
            io::ErrorKind::AlreadyExists
        );
        assert_eq!(fs::read(&dest).unwrap(), b"old");
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "temp file removed"
        );

        let mut t = TempFile::create_in(dir.path(), 0o600).unwrap();
        t.file().write_all(b"new").unwrap();
        t.commit(&dest, true).unwrap();
        assert_eq!(fs::read(&dest).unwrap(), b"new");
    }

    #[test]
    fn temp_dir_is_private_and_all_or_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out");
        {
            let t = TempDir::beside(&dest).unwrap();
            let mode = fs::metadata(t.path()).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700);
            fs::write(t.path().join("secret"), b"plaintext").unwrap();
        }
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            0,
            "dropped before commit"
        );

        let t = TempDir::beside(&dest).unwrap();
        fs::write(t.path().join("secret"), b"plaintext").unwrap();
        t.commit(&dest).unwrap();
        assert_eq!(fs::read(dest.join("secret")).unwrap(), b"plaintext");
        assert!(
            TempDir::beside(&dest).is_err(),
            "an existing destination is refused"
        );
    }
}
