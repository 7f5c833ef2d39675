//! The few operating-system calls the device client needs that `std` does
//! not offer: process hardening (no core dumps, not ptrace-able by other
//! users), signalling and reaping children, the file-system type of a
//! folder. Every `unsafe` line of the client lives
//! here, each with the reason it is sound.
//!
//! Linux only (the devices run Linux; `PR_SET_DUMPABLE` and `statfs` magic
//! numbers are Linux concepts).

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// `statfs.f_type` of tmpfs (`linux/magic.h`).
pub const TMPFS_MAGIC: i64 = 0x0102_1994;
/// `statfs.f_type` of ramfs (`linux/magic.h`).
pub const RAMFS_MAGIC: i64 = 0x8584_58f6;

/// Makes this process non-dumpable (no core file, `/proc/PID/mem` and
/// ptrace closed to other non-root users) and sets the core size limit to
/// zero, which the app inherits. Errors are returned, not fatal: the
/// caller logs them.
pub fn harden() -> io::Result<()> {
    // SAFETY: prctl(PR_SET_DUMPABLE, 0) takes integer arguments only and
    // touches no memory of ours.
    let rc = unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let zero = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `zero` is a valid, initialised rlimit that outlives the call;
    // setrlimit only reads it.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_CORE, &zero) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sends `signal` to process `pid` (a positive pid: never a group).
pub fn kill(pid: u32, signal: i32) -> io::Result<()> {
    let pid = libc::pid_t::try_from(pid)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: kill takes plain integers; `pid > 0` so it targets exactly
    // one process, never a process group or every process.
    let rc = unsafe { libc::kill(pid, signal) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// How a reaped child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildEnd {
    Exited(i32),
    Signaled(i32),
}

impl ChildEnd {
    /// The shell's convention: the exit code, or 128 + signal number.
    pub fn code(self) -> i32 {
        match self {
            ChildEnd::Exited(code) => code,
            ChildEnd::Signaled(sig) => 128 + sig,
        }
    }
}

/// Reaps one ended child without blocking: `pid` = a specific child, or
/// `None` for any child (what PID 1 must do for orphans). `Ok(None)`:
/// nothing has ended (or no children at all).
pub fn reap(pid: Option<u32>) -> io::Result<Option<(u32, ChildEnd)>> {
    let target: libc::pid_t = match pid {
        Some(p) => libc::pid_t::try_from(p).map_err(|_| io::ErrorKind::InvalidInput)?,
        None => -1,
    };
    let mut status: libc::c_int = 0;
    // SAFETY: `status` is a valid, writable c_int for the call; WNOHANG
    // makes it return at once.
    let rc = unsafe { libc::waitpid(target, &mut status, libc::WNOHANG) };
    if rc < 0 {
        let err = io::Error::last_os_error();
        return match err.raw_os_error() {
            Some(libc::ECHILD) => Ok(None),
            _ => Err(err),
        };
    }
    if rc == 0 {
        return Ok(None);
    }
    let end = if libc::WIFEXITED(status) {
        ChildEnd::Exited(libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        ChildEnd::Signaled(libc::WTERMSIG(status))
    } else {
        // Stopped/continued are not reported without WUNTRACED/WCONTINUED.
        return Ok(None);
    };
    Ok(Some((rc as u32, end)))
}

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| io::ErrorKind::InvalidInput.into())
}

/// The file-system type (`statfs.f_type`) of the file system holding `path`.
pub fn fs_type(path: &Path) -> io::Result<i64> {
    let c = c_path(path)?;
    let mut buf = std::mem::MaybeUninit::<libc::statfs>::uninit();
    // SAFETY: `c` is a NUL-terminated path that outlives the call and `buf`
    // is writable memory of the right type; statfs fills it on success.
    let rc = unsafe { libc::statfs(c.as_ptr(), buf.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: statfs returned 0, so it initialised `buf`.
    let st = unsafe { buf.assume_init() };
    #[allow(clippy::unnecessary_cast)] // f_type's width differs by platform
    Ok(st.f_type as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_shell() {
        assert_eq!(ChildEnd::Exited(3).code(), 3);
        assert_eq!(ChildEnd::Signaled(15).code(), 143);
    }

    #[test]
    fn dev_shm_is_tmpfs_and_kill_refuses_groups() {
        if Path::new("/dev/shm").is_dir() {
            assert_eq!(fs_type(Path::new("/dev/shm")).unwrap(), TMPFS_MAGIC);
        }
        assert!(kill(0, 0).is_err());
        assert!(kill(u32::MAX, 0).is_err());
        kill(std::process::id(), 0).unwrap();
        assert!(fs_type(Path::new("/nonexistent/x")).is_err());
    }
}
