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

/// A running cluster.
#[derive(Debug)]
pub struct Cluster {
    dir: PathBuf,
    port: u16,
    pid: i32,
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

/// The process's cluster, started on first call; `None` when PostgreSQL is
/// not installed (after printing `SKIPPED`). Panics when it is missing
/// under `SECURE_STORE_REQUIRE_INTEROP=1`, or when it fails to start.
pub fn shared() -> Option<&'static Cluster> {
    SHARED
        .get_or_init(|| {
            let Some(bindir) = find_bindir() else {
                if required() {
                    panic!(
                        "PostgreSQL is not installed (apt-get install postgresql) and interop \
                         tests are required"
                    );
                }
                eprintln!("SKIPPED: PostgreSQL is not installed (apt-get install postgresql)");
                return None;
            };
            match Cluster::start(&bindir) {
                Ok(c) => Some(c),
                Err(e) => panic!("starting a test PostgreSQL from {}: {e}", bindir.display()),
            }
        })
        .as_ref()
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
        let pid_cell = Arc::new(AtomicI32::new(0));
        let exited = Arc::new(AtomicBool::new(false));
        STARTED
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Started {
                pid: Arc::clone(&pid_cell),
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
        let log_path = dir.join("postgres.log");
        let log = std::fs::File::create(&log_path)
            .map_err(|e| format!("creating {}: {e}", log_path.display()))?;
        if let Some((uid, gid)) = user {
            let _ = std::os::unix::fs::chown(&log_path, Some(uid), Some(gid));
        }
        let log_err = log.try_clone().map_err(|e| e.to_string())?;
        let mut cmd = Command::new(bindir.join("postgres"));
        as_user(&mut cmd, user)
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-h", "127.0.0.1", "-k"])
            .arg(&dir)
            .args([
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=300",
                "-c",
                "shared_buffers=32MB",
            ])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
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
        // process lives (PDEATHSIG fires when the *thread* that forked
        // exits), and reaps it.
        let (tx, rx) = std::sync::mpsc::channel();
        let exited_in_thread = Arc::clone(&exited);
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
            .map_err(|e| format!("spawning the waiter thread: {e}"))?;
        let pid = rx
            .recv()
            .map_err(|_| "the waiter thread died".to_owned())??;
        pid_cell.store(pid, Ordering::SeqCst);
        let cluster = Cluster { dir, port, pid };

        // Ready when it accepts a connection (a deadline only to fail a
        // broken start, not a timed assertion).
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match postgres::Client::connect(&cluster.admin_url(), postgres::NoTls) {
                Ok(_) => break,
                Err(e) => {
                    if exited.load(Ordering::SeqCst) || Instant::now() > deadline {
                        let mut text = String::new();
                        let _ = std::fs::File::open(&log_path)
                            .and_then(|mut f| f.read_to_string(&mut text));
                        return Err(format!(
                            "postgres did not come up on port {port} ({e}); its log:\n{text}"
                        ));
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
        Ok(cluster)
    }

    /// The loopback port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The postmaster's pid.
    pub fn pid(&self) -> i32 {
        self.pid
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
