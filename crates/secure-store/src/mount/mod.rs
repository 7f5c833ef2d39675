//! The decrypted view of a store, mounted with FUSE.
//!
//! The layout follows mountpoint-s3: [`view`] is the file system logic and
//! knows nothing about FUSE (unit-tested without a kernel); [`fuse`] is the
//! thin `fuser` adapter that maps requests and errors; [`content`] reads
//! and writes rclone crypt content block by block. [`Mounted`] runs a
//! mount on a background thread and unmounts it when dropped: what
//! `secure-store mount` and `secure-store run` use.
//!
//! `fuser` is built without libfuse: it mounts with `mount(2)` as root and
//! through `/usr/bin/fusermount3` otherwise. Semantics of the mount (what
//! POSIX operations do, when writes become visible, what a crash leaves):
//! `docs/SEMANTICS.md`.

pub mod content;
pub mod fuse;
pub mod view;

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use fuser::{MountOption, Session, SessionUnmounter};

use crate::crypt::store::Store;

pub use view::{View, ViewError};

/// How a store is mounted.
#[derive(Clone, Debug, Default)]
pub struct MountOptions {
    /// Refuse every change (mount option `ro` too).
    pub read_only: bool,
    /// Let other users than the mount's owner in (`allow_other`; needs
    /// `user_allow_other` in /etc/fuse.conf for non-root owners). The mode
    /// bits (0600/0700, owner = the mounting user) still apply.
    pub allow_other: bool,
}

/// Why a mount could not be set up or taken down.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("{dir}: the mount point is not a folder")]
    NotADir { dir: PathBuf },
    #[error("{dir}: a stale mount is there (transport endpoint is not connected); clear it with --force-unmount")]
    Stale { dir: PathBuf },
    #[error("{dir}: cannot mount: {error}")]
    Mount { dir: PathBuf, error: io::Error },
    #[error("{dir}: cannot open the store view: {error}")]
    View { dir: PathBuf, error: ViewError },
    #[error("{dir}: the mount did not answer after mounting: {error}")]
    NotLive { dir: PathBuf, error: io::Error },
}

/// A live mount served by a background thread. Dropping it unmounts (and
/// commits pending writes); [`Mounted::unmount`] does the same and reports
/// whether the session ended.
#[derive(Debug)]
pub struct Mounted {
    dir: PathBuf,
    unmounter: Option<SessionUnmounter>,
    thread: Option<JoinHandle<io::Result<()>>>,
}

/// True when `dir` is a mount whose FUSE server is gone.
pub fn is_stale(dir: &Path) -> bool {
    matches!(fs::metadata(dir), Err(e) if e.raw_os_error() == Some(libc::ENOTCONN))
}

/// Clears whatever is mounted at `dir`, lazily (`fusermount3 -uz`, then
/// `umount -l` as a fallback). Errors are ignored: nothing mounted is fine.
pub fn force_unmount(dir: &Path) {
    for (prog, args) in [("fusermount3", ["-uz"]), ("umount", ["-l"])] {
        let ok = Command::new(prog)
            .args(args)
            .arg(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            tracing::info!(dir = %dir.display(), "cleared a previous mount");
            return;
        }
    }
}

impl Mounted {
    /// Mounts the decrypted view of `store` at `dir` and serves it on a
    /// background thread. Returns once the mount answers requests.
    pub fn spawn(store: Store, dir: &Path, options: &MountOptions) -> Result<Mounted, MountError> {
        let dir = dir.to_owned();
        if is_stale(&dir) {
            return Err(MountError::Stale { dir });
        }
        match fs::metadata(&dir) {
            Ok(m) if m.is_dir() => {}
            _ => return Err(MountError::NotADir { dir }),
        }
        // Absolute, so that unmounting works from any working directory.
        let dir = fs::canonicalize(&dir).unwrap_or(dir);
        let view = View::new(store, options.read_only).map_err(|error| MountError::View {
            dir: dir.clone(),
            error,
        })?;
        // The process's own uid/gid, without unsafe: /proc/self belongs to it.
        let (uid, gid) = fs::metadata("/proc/self")
            .map(|m| (m.uid(), m.gid()))
            .unwrap_or((0, 0));
        let fs = fuse::FuseView::new(view, uid, gid);
        let mut opts = vec![
            MountOption::FSName("secure-store".into()),
            MountOption::Subtype("secure-store".into()),
            MountOption::DefaultPermissions,
            MountOption::NoDev,
            MountOption::NoSuid,
            MountOption::NoAtime,
        ];
        opts.push(if options.read_only {
            MountOption::RO
        } else {
            MountOption::RW
        });
        if options.allow_other {
            opts.push(MountOption::AllowOther);
        }
        let mut session = Session::new(fs, &dir, &opts).map_err(|error| MountError::Mount {
            dir: dir.clone(),
            error,
        })?;
        let unmounter = session.unmount_callable();
        let thread = std::thread::Builder::new()
            .name("fuse".into())
            .spawn(move || session.run())
            .map_err(|error| MountError::Mount {
                dir: dir.clone(),
                error,
            })?;
        let mounted = Mounted {
            dir: dir.clone(),
            unmounter: Some(unmounter),
            thread: Some(thread),
        };
        // A round trip through the kernel: INIT and GETATTR answered.
        if let Err(error) = fs::metadata(&dir) {
            return Err(MountError::NotLive { dir, error });
        }
        raise_readahead(&dir);
        tracing::info!(dir = %dir.display(), "mounted");
        Ok(mounted)
    }

    /// Where the view is mounted.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// False once the session has ended (unmounted from outside, e.g. by
    /// `fusermount3 -u`).
    pub fn is_alive(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Unmounts, commits pending writes and waits (up to 10 s) for the
    /// session to end. A busy mount point is detached lazily.
    pub fn unmount(mut self) -> io::Result<()> {
        self.stop()
    }

    fn stop(&mut self) -> io::Result<()> {
        let Some(thread) = self.thread.take() else {
            return Ok(());
        };
        if let Some(mut u) = self.unmounter.take() {
            let _ = u.unmount();
        }
        if !thread.is_finished() && is_mounted(&self.dir) {
            // Still mounted: files are open on it (EBUSY). Detach it
            // lazily; the session ends when the last one is closed.
            force_unmount(&self.dir);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while !thread.is_finished() {
            if Instant::now() > deadline {
                return Err(io::Error::other(format!(
                    "{}: files are still open on the detached mount; not waiting for them",
                    self.dir.display()
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        match thread.join() {
            Ok(result) => result,
            Err(_) => Err(io::Error::other("the FUSE session thread panicked")),
        }
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            tracing::warn!("unmount: {e}");
        }
    }
}

/// Whether `dir` is a mount point (its device differs from its parent's).
fn is_mounted(dir: &Path) -> bool {
    let parent = dir.parent().unwrap_or(Path::new("/"));
    match (fs::metadata(dir), fs::metadata(parent)) {
        (Ok(a), Ok(b)) => a.dev() != b.dev(),
        _ => true,
    }
}

/// The kernel's readahead for a FUSE mount starts at 128 KiB whatever
/// `max_readahead` says; raise the mount's bdi to 1 MiB so that sequential
/// reads arrive as 1 MiB requests (16 blocks decrypted in parallel). Needs
/// root; silently skipped otherwise.
fn raise_readahead(dir: &Path) {
    let Ok(meta) = fs::metadata(dir) else { return };
    let dev = meta.dev();
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    let knob = format!("/sys/class/bdi/{major}:{minor}/read_ahead_kb");
    let kb = fuse::MAX_IO / 1024;
    if fs::write(&knob, kb.to_string()).is_ok() {
        tracing::debug!(%knob, kb, "raised the mount's readahead");
    }
}
