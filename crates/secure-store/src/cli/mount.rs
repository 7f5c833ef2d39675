//! `secure-store mount STORE DIR`: the decrypted view of a store through
//! FUSE (`crate::mount`), in the foreground until SIGINT/SIGTERM or an
//! outside unmount, or as a daemon that returns once the mount is live.
//!
//! `--daemon` re-executes this binary with a marker variable instead of
//! forking (no `unsafe`): the child mounts, prints `ready` on its stdout
//! (a pipe to the parent) and keeps serving; the parent relays the child's
//! log lines until then and exits 0 only after `ready`, or 1 with the
//! child's error. The child runs in its own process group, so a terminal's
//! Ctrl-C does not reach it; stop it with SIGTERM or by unmounting.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};

use super::key::KeyArgs;
use crate::crypt::output;
use crate::crypt::store::{Store, StorePaths};
use crate::mount::{force_unmount, MountOptions, Mounted};

/// Set in the daemon child's environment (never by users).
const DAEMON_CHILD: &str = "SECURE_STORE_MOUNT_DAEMON_CHILD";
/// The line the daemon child prints once the mount is live.
const READY: &str = "ready";

/// Arguments of `secure-store mount`.
// No `Debug`: holds the key arguments.
#[allow(missing_debug_implementations)]
#[derive(clap::Args)]
#[command(after_help = "Examples:
  STORE_PASSWORD=... secure-store mount ./store /mnt/app          # foreground; Ctrl-C unmounts
  secure-store mount --key-file store.key --daemon ./store /mnt/app
  secure-store mount --force-unmount --read-only ./store /mnt/app
  fusermount3 -u /mnt/app                                         # unmount a daemon

What works on the mount (and what a crash leaves behind): docs/SEMANTICS.md.")]
pub struct MountArgs {
    /// The store folder (encrypt.conf and storage/).
    #[arg(value_name = "STORE", env = "SECURE_STORE_STORE")]
    pub store: PathBuf,

    /// Where to mount the decrypted view (an existing folder).
    #[arg(value_name = "DIR", env = "SECURE_STORE_MOUNT")]
    pub dir: PathBuf,

    #[command(flatten)]
    pub key: KeyArgs,

    /// Refuse every change through the mount.
    #[arg(long, env = "SECURE_STORE_READ_ONLY")]
    pub read_only: bool,

    /// Run in the background; return once the mount is live.
    #[arg(long, env = "SECURE_STORE_DAEMON")]
    pub daemon: bool,

    /// Clear a stale or previous mount at DIR first (fusermount3 -uz).
    #[arg(long, env = "SECURE_STORE_FORCE_UNMOUNT")]
    pub force_unmount: bool,

    /// Let other users in (FUSE allow_other; mode bits still apply).
    #[arg(long, env = "SECURE_STORE_ALLOW_OTHER")]
    pub allow_other: bool,
}

/// Runs `secure-store mount`.
pub fn run(args: MountArgs) -> anyhow::Result<ExitCode> {
    let child = std::env::var_os(DAEMON_CHILD).is_some();
    if args.daemon && !child {
        return spawn_daemon();
    }
    if args.force_unmount {
        force_unmount(&args.dir);
    }
    let key = args.key.load()?;
    let paths = StorePaths::new(&args.store, None, None);
    let store = Store::open(&paths, &key)?;
    drop(key);
    let options = MountOptions {
        read_only: args.read_only,
        allow_other: args.allow_other,
    };
    let mounted = Mounted::spawn(store, &args.dir, &options)?;
    if child {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{READY}")
            .and_then(|()| out.flush())
            .context("cannot tell the parent that the mount is ready")?;
    } else {
        eprintln!(
            "mounted {} at {} (Ctrl-C or SIGTERM unmounts)",
            args.store.display(),
            args.dir.display()
        );
    }
    while !output::interrupted() && mounted.is_alive() {
        std::thread::sleep(Duration::from_millis(100));
    }
    let outside = !mounted.is_alive();
    mounted
        .unmount()
        .with_context(|| format!("unmounting {}", args.dir.display()))?;
    if outside {
        tracing::info!(dir = %args.dir.display(), "unmounted from outside");
    } else {
        tracing::info!(dir = %args.dir.display(), "unmounted");
    }
    Ok(ExitCode::SUCCESS)
}

/// The parent side of `--daemon`.
fn spawn_daemon() -> anyhow::Result<ExitCode> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe().context("cannot find this program to start the daemon")?;
    let mut child = Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env(DAEMON_CHILD, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .context("cannot start the mount daemon")?;
    let stderr = child.stderr.take();
    let relay = std::thread::spawn(move || {
        if let Some(stderr) = stderr {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("{line}");
            }
        }
    });
    let mut line = String::new();
    if let Some(stdout) = child.stdout.take() {
        let _ = BufReader::new(stdout).read_line(&mut line);
    }
    if line.trim_end() == READY {
        tracing::info!("mount daemon running (pid {})", child.id());
        // The relay thread ends with the process; later daemon logs go
        // nowhere (run in the foreground under a supervisor to keep them).
        return Ok(ExitCode::SUCCESS);
    }
    let status = child.wait().context("waiting for the mount daemon")?;
    let _ = relay.join();
    // The child printed its own `error:` line.
    bail!("the mount daemon did not start ({status})")
}
