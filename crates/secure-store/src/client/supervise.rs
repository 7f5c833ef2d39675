//! The app as our child: spawned with the prepared environment, sent every
//! signal a container runtime or a user sends us, reaped, and its end
//! turned into our exit code (the shell's convention: the exit code, or
//! 128 plus the signal number). What `tini` and `dumb-init` do for a container,
//! without exec'ing away: we stay alive to own the mount and to remove the
//! decrypted files when the app ends.
//!
//! Signals: SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 are
//! forwarded to the app. SIGCHLD wakes the loop; when we are PID 1 (a
//! container's init) every ended child is reaped (`waitpid(-1)`), so
//! orphaned grandchildren re-parented to us do not linger as zombies.
//! Otherwise only the app is reaped, so that children of other parts of
//! this process (a `fusermount3` helper) are left to their owners.
//!
//! The handlers are installed by [`Signals::install`] before the app is
//! spawned: a signal or an exit that arrives in between is queued, not
//! lost.

use std::ffi::OsString;
use std::io;
use std::process::Command;

use signal_hook::consts::signal::{SIGCHLD, SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2};
use signal_hook::iterator::Signals as HookSignals;

use super::sys::{self, ChildEnd};

/// The signals passed on to the app.
pub const FORWARDED: [i32; 6] = [SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2];
/// Of those, the ones that mean "stop" before the app has started.
pub const STOPPING: [i32; 4] = [SIGTERM, SIGINT, SIGHUP, SIGQUIT];

/// Why the app could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("cannot start {program:?}: no such program (a bare name is looked up in PATH)")]
    NotFound { program: OsString },
    #[error("cannot start {program:?}: permission denied")]
    NotExecutable { program: OsString },
    #[error("cannot start {program:?}: {error}")]
    Other { program: OsString, error: io::Error },
    #[error("cannot supervise the app: {0}")]
    Supervise(io::Error),
}

/// Our signal handlers; install them first thing in `run`.
#[allow(missing_debug_implementations)] // signal-hook's handle has no Debug
pub struct Signals {
    inner: HookSignals,
}

impl Signals {
    /// Installs handlers for [`FORWARDED`] and SIGCHLD. From now on these
    /// signals no longer kill us; they are queued for [`Signals::pending_stop`]
    /// and [`supervise`].
    pub fn install() -> io::Result<Self> {
        let mut all = FORWARDED.to_vec();
        all.push(SIGCHLD);
        Ok(Signals {
            inner: HookSignals::new(all)?,
        })
    }

    /// Before the app runs: the first stopping signal that arrived since
    /// the last call, if any (other signals are dropped with a log line).
    pub fn pending_stop(&mut self) -> Option<i32> {
        let mut stop = None;
        for sig in self.inner.pending() {
            if STOPPING.contains(&sig) {
                stop.get_or_insert(sig);
            } else if sig != SIGCHLD {
                tracing::info!(signal = sig, "signal before the app started: ignored");
            }
        }
        stop
    }
}

/// Spawns `cmd` and supervises it to its end; returns how it ended.
/// `cmd` is ready to run (program, args, environment).
pub fn supervise(signals: &mut Signals, mut cmd: Command) -> Result<ChildEnd, SpawnError> {
    let program = cmd.get_program().to_owned();
    let child = cmd.spawn().map_err(|error| match error.kind() {
        io::ErrorKind::NotFound => SpawnError::NotFound {
            program: program.clone(),
        },
        io::ErrorKind::PermissionDenied => SpawnError::NotExecutable {
            program: program.clone(),
        },
        _ => SpawnError::Other {
            program: program.clone(),
            error,
        },
    })?;
    let pid = child.id();
    // We reap with waitpid ourselves; std's handle is not used again.
    drop(child);
    let init = std::process::id() == 1;
    tracing::debug!(pid, init, "app started");

    loop {
        // Reap first: the app may have ended before the first wait.
        if let Some(end) = reap_all(pid, init).map_err(SpawnError::Supervise)? {
            if init {
                // Last sweep for orphans that ended meanwhile.
                let _ = reap_all(0, true);
            }
            return Ok(end);
        }
        for sig in signals.inner.wait() {
            if sig == SIGCHLD {
                continue;
            }
            tracing::info!(signal = sig, "forwarding the signal to the app");
            if let Err(e) = sys::kill(pid, sig) {
                // ESRCH: it just ended; its SIGCHLD is on its way.
                tracing::debug!(signal = sig, "cannot forward: {e}");
            }
        }
    }
}

/// Reaps ended children: only `app`, or (as init) any. Returns the app's
/// end once it is reaped.
fn reap_all(app: u32, init: bool) -> io::Result<Option<ChildEnd>> {
    let mut app_end = None;
    loop {
        let reaped = sys::reap(if init { None } else { Some(app) })?;
        match reaped {
            None => return Ok(app_end),
            Some((pid, end)) if pid == app => {
                tracing::debug!(pid, ?end, "app ended");
                app_end = Some(end);
                if !init {
                    return Ok(app_end);
                }
            }
            Some((pid, end)) => tracing::debug!(pid, ?end, "reaped an orphaned process"),
        }
    }
}
