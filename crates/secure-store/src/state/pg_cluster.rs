//! A throwaway PostgreSQL server for tests and benchmarks: a real cluster
//! (`initdb` + `postgres` from the Debian `postgresql` package) in a
//! temporary directory, listening on a free loopback port, with its Unix
//! socket in that directory, `fsync=off`. No mock database anywhere.
//!
//! [`shared`] starts one cluster per process on first use and hands it to
//! every test of the process; each test then makes its own database with
//! [`Cluster::create_database`]. When the binaries are missing, [`shared`]
//! returns `None` (the caller skips) or, under
//! `SECURE_STORE_REQUIRE_INTEROP=1` (or `CI=true`), panics so the test fails.
//!
//! No server outlives its test process:
//!
//! - the postmaster is a direct child (no `pg_ctl`, which daemonises),
//!   spawned from a thread that lives as long as the process and waits for
//!   it, with `PR_SET_PDEATHSIG = SIGQUIT` set after the switch to the
//!   `postgres` user: whatever way the test process ends (even `SIGKILL`),
//!   the kernel sends the postmaster `SIGQUIT`, PostgreSQL's immediate
//!   shutdown (its backends exit, shared memory is released);
//! - on a normal exit (libtest returns from `main` or calls `exit`, on
//!   success or failure) an `atexit` handler sends that `SIGQUIT` itself,
//!   waits for the postmaster to be gone and removes the directory;
//! - directories left by killed processes (`secure-store-pg-<pid>-…` in the
//!   temp dir whose pid is gone) are removed by the next start.
//!
//! A test may also take a cluster of its own ([`private`]) and stop it
//! ([`Cluster::stop`], fast or immediate shutdown, like `pg_ctl stop -m
//! fast|immediate`) and start it again on the same port and data directory
//! ([`Cluster::start_again`], [`Cluster::restart`]): what a database
//! restart does to the servers using it. The shared cluster must not be
//! stopped (other tests of the process use it).
//!
//! Run as root, `initdb` and `postgres` refuse to start, so they run as the
//! `postgres` user (which the Debian package creates), so the temp dir
//! (`$TMPDIR`, else `/tmp`) must be reachable by that user; as another user
//! they run as that user. Binaries are looked up in `$SECURE_STORE_PG_BINDIR`,
//! then the newest `/usr/lib/postgresql/*/bin`, then `$PATH`.

use std::ffi::CString;
use std::io::Read;
use std::net::TcpListener;
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The superuser the cluster is made with (trust authentication).
pub const USER: &str = "secure_store";
const DIR_PREFIX: &str = "secure-store-pg-";

/// How long a start waits for the server to accept connections, and a stop
/// for it to exit (limits to fail a broken cluster, not timed assertions).
const START_WAIT: Duration = Duration::from_secs(60);
const STOP_WAIT: Duration = Duration::from_secs(30);

/// The settings every cluster runs with (`-c name=value`); a test's own
/// settings ([`private`]) come after them and win.
const SETTINGS: [&str; 5] = [
    "fsync=off",
    "synchronous_commit=off",
    "full_page_writes=off",
    "max_connections=300",
    "shared_buffers=32MB",
];

/// A cluster (running unless a test stopped it).
#[derive(Debug)]
pub struct Cluster {
    dir: PathBuf,
    port: u16,
    bindir: PathBuf,
    /// The uid/gid the server runs as (`postgres` when we are root).
    user: Option<(u32, u32)>,
    /// `-c` settings beyond [`SETTINGS`].
    settings: Vec<String>,
    /// The current postmaster's pid (0 before the first start).
    pid: Arc<AtomicI32>,
    /// Whether the current postmaster has exited (set by its waiter thread).
    exited: Arc<AtomicBool>,
    /// Serialises [`Cluster::stop`] and [`Cluster::start_again`].
    lifecycle: Mutex<()>,
}

/// How [`Cluster::stop`] shuts the server down (the signals `pg_ctl stop -m`
/// sends).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopMode {
    /// `SIGINT`: sessions are ended (`FATAL 57P01 terminating connection
    /// due to administrator command`), in-flight transactions rolled back,
    /// a checkpoint written; a clean stop.
    Fast,
    /// `SIGQUIT`: every process exits at once, no checkpoint; the next
    /// start replays the WAL (crash recovery). What a crash or a killed
    /// container looks like to the clients.
    Immediate,
}

impl StopMode {
    fn signal(self) -> libc::c_int {
        match self {
            StopMode::Fast => libc::SIGINT,
            StopMode::Immediate => libc::SIGQUIT,
        }
    }
}

/// What `atexit` needs per cluster: the postmaster's pid (0 before it
/// started), whether it has exited, the directory to remove.
struct Started {
    pid: Arc<AtomicI32>,
    exited: Arc<AtomicBool>,
    dir: PathBuf,
}

static STARTED: Mutex<Vec<Started>> = Mutex::new(Vec::new());
static ATEXIT: OnceLock<()> = OnceLock::new();
static SHARED: OnceLock<Option<Cluster>> = OnceLock::new();

/// Whether tests needing external tools must fail rather than skip.
pub fn required() -> bool {
    std::env::var("SECURE_STORE_REQUIRE_INTEROP").is_ok_and(|v| v == "1")
        || std::env::var("CI").is_ok_and(|v| v == "true")
}

/// The directory holding `initdb` and `postgres`, if any.
pub fn find_bindir() -> Option<PathBuf> {
    let has = |d: &Path| d.join("initdb").is_file() && d.join("postgres").is_file();
    if let Some(d) = std::env::var_os("SECURE_STORE_PG_BINDIR") {
        let d = PathBuf::from(d);
        return has(&d).then_some(d);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            has(&bin).then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    std::env::var_os("PATH").and_then(|paths| std::env::split_paths(&paths).find(|d| has(d)))
}

/// The binaries' directory; `None` (after printing `SKIPPED`) when
/// PostgreSQL is not installed; panics then under
/// `SECURE_STORE_REQUIRE_INTEROP=1`.
fn bindir_or_skip() -> Option<PathBuf> {
    let found = find_bindir();
    if found.is_none() {
        if required() {
            panic!(
                "PostgreSQL is not installed (apt-get install postgresql) and interop \
                 tests are required"
            );
        }
        eprintln!("SKIPPED: PostgreSQL is not installed (apt-get install postgresql)");
    }
    found
}

/// The process's cluster, started on first call; `None` when PostgreSQL is
/// not installed (after printing `SKIPPED`). Panics when it is missing
/// under `SECURE_STORE_REQUIRE_INTEROP=1`, or when it fails to start.
pub fn shared() -> Option<&'static Cluster> {
    SHARED
        .get_or_init(|| {
            let bindir = bindir_or_skip()?;
            match Cluster::start(&bindir) {
                Ok(c) => Some(c),
                Err(e) => panic!("starting a test PostgreSQL from {}: {e}", bindir.display()),
            }
        })
        .as_ref()
}

/// A cluster of the caller's own, which it may stop and start again
/// (the shared one must not be), with extra `settings` (`"name=value"`,
/// after the defaults, so they win: e.g. `"synchronous_commit=on"` for a
/// test that stops the server with [`StopMode::Immediate`] and counts
/// committed rows). Stopped and removed when dropped. `None`, panics: as
/// [`shared`].
pub fn private(settings: &[&str]) -> Option<Cluster> {
    let bindir = bindir_or_skip()?;
    match Cluster::start_with(&bindir, settings) {
        Ok(c) => Some(c),
        Err(e) => panic!("starting a test PostgreSQL from {}: {e}", bindir.display()),
    }
}

/// A URL to a new, empty database on the shared cluster, or `None` to skip
/// (see [`shared`]).
pub fn fresh_database() -> Option<String> {
    shared().map(|c| match c.create_database() {
        Ok(url) => url,
        Err(e) => panic!("creating a test database: {e}"),
    })
}

/// The uid/gid to run the server as: the `postgres` user when we are root.
fn server_user() -> Result<Option<(u32, u32)>, String> {
    // SAFETY: geteuid cannot fail; getpwnam returns a pointer to static
    // storage or null, read at once (tests start the cluster once, under a
    // OnceLock, so no other thread races on it here).
    unsafe {
        if libc::geteuid() != 0 {
            return Ok(None);
        }
        let name = CString::new("postgres").map_err(|e| e.to_string())?;
        let pw = libc::getpwnam(name.as_ptr());
        if pw.is_null() {
            return Err(
                "running as root needs a `postgres` user to run the server as (the Debian \
                 package creates it)"
                    .into(),
            );
        }
        Ok(Some(((*pw).pw_uid, (*pw).pw_gid)))
    }
}

fn as_user(cmd: &mut Command, user: Option<(u32, u32)>) -> &mut Command {
    if let Some((uid, gid)) = user {
        cmd.uid(uid).gid(gid);
    }
    cmd
}

/// Removes directories of earlier runs whose process is gone.
fn remove_stale_dirs(tmp: &Path) {
    for entry in std::fs::read_dir(tmp).into_iter().flatten().flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(DIR_PREFIX)) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        // SAFETY: kill with signal 0 only checks that the process exists.
        let alive = unsafe { libc::kill(pid, 0) } == 0
            || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
        if !alive {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    // Uniqueness only (names of temp dirs and test databases).
    if getrandom::getrandom(&mut b).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        b = nanos.to_le_bytes()[..bytes.min(16)].to_vec();
    }
    hex::encode(b)
}

extern "C" fn stop_at_exit() {
    let started = match STARTED.lock() {
        Ok(mut s) => std::mem::take(&mut *s),
        Err(p) => std::mem::take(&mut *p.into_inner()),
    };
    for c in &started {
        let pid = c.pid.load(Ordering::SeqCst);
        if pid > 0 && !c.exited.load(Ordering::SeqCst) {
            // SAFETY: signalling our own child, which the waiter thread has
            // not reaped yet (`exited` is false).
            unsafe {
                libc::kill(pid, libc::SIGQUIT);
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    for c in &started {
        while c.pid.load(Ordering::SeqCst) > 0
            && !c.exited.load(Ordering::SeqCst)
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = std::fs::remove_dir_all(&c.dir);
    }
}

impl Cluster {
    /// Makes and starts a cluster with the binaries in `bindir`.
    pub fn start(bindir: &Path) -> Result<Cluster, String> {
        Self::start_with(bindir, &[])
    }

    /// [`Cluster::start`] with extra `-c` settings (`"name=value"`) after
    /// the defaults.
    pub fn start_with(bindir: &Path, settings: &[&str]) -> Result<Cluster, String> {
        let tmp = std::env::temp_dir();
        remove_stale_dirs(&tmp);
        let user = server_user()?;
        let dir = tmp.join(format!(
            "{DIR_PREFIX}{}-{}",
            std::process::id(),
            random_hex(6)
        ));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|e| format!("creating {}: {e}", dir.display()))?;
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
                .map_err(|e| format!("chown {}: {e}", dir.display()))?;
        }
        ATEXIT.get_or_init(|| {
            // SAFETY: registering a plain extern "C" function.
            unsafe {
                libc::atexit(stop_at_exit);
            }
        });
        let pid = Arc::new(AtomicI32::new(0));
        let exited = Arc::new(AtomicBool::new(true));
        STARTED
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Started {
                pid: Arc::clone(&pid),
                exited: Arc::clone(&exited),
                dir: dir.clone(),
            });

        let data = dir.join("data");
        let out = as_user(&mut Command::new(bindir.join("initdb")), user)
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                USER,
                "--auth=trust",
                "-N",
                "-E",
                "UTF8",
                "--no-locale",
            ])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("running initdb: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "initdb failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }

        // A free port: bind, read, release. Another process could take it
        // in between; then the start fails and says so.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("finding a free port: {e}"))?
            .port();
        let cluster = Cluster {
            dir,
            port,
            bindir: bindir.to_owned(),
            user,
            settings: settings.iter().map(|s| (*s).to_owned()).collect(),
            pid,
            exited,
            lifecycle: Mutex::new(()),
        };
        cluster.spawn_postmaster()?;
        cluster.wait_ready()?;
        Ok(cluster)
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("postgres.log")
    }

    /// The server's log so far (for error messages).
    pub fn log(&self) -> String {
        let mut text = String::new();
        let _ = std::fs::File::open(self.log_path()).and_then(|mut f| f.read_to_string(&mut text));
        text
    }

    /// Whether the postmaster is running (started and not exited).
    pub fn is_running(&self) -> bool {
        self.pid.load(Ordering::SeqCst) > 0 && !self.exited.load(Ordering::SeqCst)
    }

    /// Spawns `postgres` on the cluster's data directory and port, as a
    /// direct child of a waiter thread (see the module docs); its output
    /// is appended to `postgres.log`.
    fn spawn_postmaster(&self) -> Result<(), String> {
        let log_path = self.log_path();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| format!("opening {}: {e}", log_path.display()))?;
        if let Some((uid, gid)) = self.user {
            let _ = std::os::unix::fs::chown(&log_path, Some(uid), Some(gid));
        }
        let log_err = log.try_clone().map_err(|e| e.to_string())?;
        let mut cmd = Command::new(self.bindir.join("postgres"));
        as_user(&mut cmd, self.user)
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-p", &self.port.to_string(), "-h", "127.0.0.1", "-k"])
            .arg(&self.dir);
        for setting in SETTINGS
            .iter()
            .copied()
            .chain(self.settings.iter().map(String::as_str))
        {
            cmd.args(["-c", setting]);
        }
        cmd.stdin(Stdio::null()).stdout(log).stderr(log_err);
        // SAFETY: the parent's pid is read before the fork; the closure
        // only makes async-signal-safe calls (prctl, getppid).
        let parent = unsafe { libc::getpid() };
        unsafe {
            cmd.pre_exec(move || {
                // Runs after the uid switch, which would clear it.
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGQUIT as libc::c_ulong) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::getppid() != parent {
                    return Err(std::io::Error::other("test process already gone"));
                }
                Ok(())
            });
        }
        // The waiter thread is the postmaster's parent for as long as the
        // postmaster lives (PDEATHSIG fires when the *thread* that forked
        // exits), and reaps it. `exited` is only reset here, after the
        // previous waiter set it (a stop waits for that).
        self.exited.store(false, Ordering::SeqCst);
        let (tx, rx) = std::sync::mpsc::channel();
        let exited_in_thread = Arc::clone(&self.exited);
        std::thread::Builder::new()
            .name("test-postgres".into())
            .spawn(move || match cmd.spawn() {
                Ok(mut child) => {
                    let _ = tx.send(Ok(child.id() as i32));
                    let _ = child.wait();
                    exited_in_thread.store(true, Ordering::SeqCst);
                }
                Err(e) => {
                    exited_in_thread.store(true, Ordering::SeqCst);
                    let _ = tx.send(Err(format!("starting postgres: {e}")));
                }
            })
            .map_err(|e| {
                self.exited.store(true, Ordering::SeqCst);
                format!("spawning the waiter thread: {e}")
            })?;
        let pid = rx
            .recv()
            .map_err(|_| "the waiter thread died".to_owned())??;
        self.pid.store(pid, Ordering::SeqCst);
        Ok(())
    }

    /// Waits until the server accepts a connection (after crash recovery,
    /// if any), or fails when it exits or takes longer than `START_WAIT`.
    fn wait_ready(&self) -> Result<(), String> {
        let deadline = Instant::now() + START_WAIT;
        loop {
            match postgres::Client::connect(&self.admin_url(), postgres::NoTls) {
                Ok(_) => return Ok(()),
                Err(e) => {
                    if self.exited.load(Ordering::SeqCst) || Instant::now() > deadline {
                        return Err(format!(
                            "postgres did not come up on port {} ({e}); its log:\n{}",
                            self.port,
                            self.log()
                        ));
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
    }

    /// Stops the server (`mode`: see [`StopMode`]) and waits until the
    /// postmaster has exited (at most `STOP_WAIT`, 30 s). Clients see their
    /// connections end and new ones refused until [`Cluster::start_again`].
    /// Never on the [`shared`] cluster: other tests use it.
    pub fn stop(&self, mode: StopMode) -> Result<(), String> {
        let _guard = self.lifecycle.lock().unwrap_or_else(|p| p.into_inner());
        let pid = self.pid.load(Ordering::SeqCst);
        if pid <= 0 || self.exited.load(Ordering::SeqCst) {
            return Err(format!("postgres on port {} is not running", self.port));
        }
        // SAFETY: signalling our own child, not reaped yet (`exited` is
        // false, and only a stop, which we serialise, makes it exit).
        if unsafe { libc::kill(pid, mode.signal()) } != 0 {
            return Err(format!(
                "signalling postgres (pid {pid}): {}",
                std::io::Error::last_os_error()
            ));
        }
        let deadline = Instant::now() + STOP_WAIT;
        while !self.exited.load(Ordering::SeqCst) {
            if Instant::now() > deadline {
                return Err(format!(
                    "postgres (pid {pid}) did not stop ({mode:?}) within {} s; its log:\n{}",
                    STOP_WAIT.as_secs(),
                    self.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    /// Starts a stopped server again: same data directory, same port, same
    /// settings (after [`StopMode::Immediate`] it first replays its WAL),
    /// and waits until it accepts connections. Fails if it is running, or
    /// if the port was taken meanwhile (the log says so).
    pub fn start_again(&self) -> Result<(), String> {
        let _guard = self.lifecycle.lock().unwrap_or_else(|p| p.into_inner());
        if !self.exited.load(Ordering::SeqCst) {
            return Err(format!(
                "postgres on port {} is already running (pid {})",
                self.port,
                self.pid.load(Ordering::SeqCst)
            ));
        }
        self.spawn_postmaster()?;
        self.wait_ready()
    }

    /// [`Cluster::stop`] then at once [`Cluster::start_again`].
    pub fn restart(&self, mode: StopMode) -> Result<(), String> {
        self.stop(mode)?;
        self.start_again()
    }

    /// The loopback port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The current (or last) postmaster's pid: a restart changes it.
    pub fn pid(&self) -> i32 {
        self.pid.load(Ordering::SeqCst)
    }

    /// The cluster's directory (data, socket, `postgres.log`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The URL of database `name`.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{name}", self.port)
    }

    /// The URL of the `postgres` maintenance database, as the superuser.
    pub fn admin_url(&self) -> String {
        self.url("postgres")
    }

    /// Creates an empty database `test_<random>` and returns its URL.
    pub fn create_database(&self) -> Result<String, String> {
        let name = format!("test_{}", random_hex(8));
        let mut admin = postgres::Client::connect(&self.admin_url(), postgres::NoTls)
            .map_err(|e| e.to_string())?;
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .map_err(|e| format!("CREATE DATABASE {name}: {e}"))?;
        Ok(self.url(&name))
    }

    /// Ends every session connected to database `name` (what a database
    /// restart or a network cut does to a server's connections).
    pub fn terminate_sessions(&self, name: &str) -> Result<u64, String> {
        let mut admin = postgres::Client::connect(&self.admin_url(), postgres::NoTls)
            .map_err(|e| e.to_string())?;
        let rows = admin
            .query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = $1 AND pid <> pg_backend_pid()",
                &[&name],
            )
            .map_err(|e| e.to_string())?;
        Ok(rows.len() as u64)
    }
}

impl Drop for Cluster {
    /// Stops the server at once and removes its directory (only private
    /// clusters are ever dropped; the shared one lives in a static and is
    /// stopped by the `atexit` handler).
    fn drop(&mut self) {
        if self.is_running() {
            let _ = self.stop(StopMode::Immediate);
        }
        // One that would not stop is left to the `atexit` handler.
        if self.exited.load(Ordering::SeqCst) {
            STARTED
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .retain(|s| !Arc::ptr_eq(&s.pid, &self.pid));
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(url: &str) -> i64 {
        postgres::Client::connect(url, postgres::NoTls)
            .unwrap()
            .query_one("SELECT COUNT(*) FROM t", &[])
            .unwrap()
            .get(0)
    }

    #[test]
    fn a_private_cluster_stops_and_starts_again_on_its_port_and_data() {
        let Some(cluster) = private(&["synchronous_commit=on"]) else {
            return;
        };
        let url = cluster.create_database().unwrap();
        let mut db = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        db.batch_execute("CREATE TABLE t (n BIGINT); INSERT INTO t VALUES (1)")
            .unwrap();
        let (port, dir) = (cluster.port(), cluster.dir().to_owned());
        let mut pids = vec![cluster.pid()];
        for (mode, rows) in [(StopMode::Fast, 1), (StopMode::Immediate, 2)] {
            cluster.stop(mode).unwrap();
            assert!(!cluster.is_running());
            // The session died with the server; new ones are refused.
            assert!(db.batch_execute("SELECT 1").is_err());
            assert!(postgres::Client::connect(&url, postgres::NoTls).is_err());
            let again = cluster.stop(mode).unwrap_err();
            assert!(again.contains("not running"), "{again}");
            cluster.start_again().unwrap();
            let twice = cluster.start_again().unwrap_err();
            assert!(twice.contains("already running"), "{twice}");
            assert_eq!((cluster.port(), cluster.dir()), (port, dir.as_path()));
            assert!(!pids.contains(&cluster.pid()));
            pids.push(cluster.pid());
            // Same data (an immediate stop replays the WAL on start).
            assert_eq!(count(&url), rows);
            db = postgres::Client::connect(&url, postgres::NoTls).unwrap();
            db.batch_execute("INSERT INTO t VALUES (2)").unwrap();
        }
        cluster.restart(StopMode::Immediate).unwrap();
        assert_eq!(count(&url), 3);
        assert!(cluster.log().contains("database system was interrupted"));
        drop(cluster);
        assert!(!dir.exists(), "a dropped cluster removes its directory");
    }
}
