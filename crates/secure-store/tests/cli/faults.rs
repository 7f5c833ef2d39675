//! Fault injection (issue 6), loopback only and bounded in time:
//!
//! - a full disk (a 2 MiB tmpfs mounted by the test) and a read-only
//!   destination (the tmpfs remounted read-only) under `store encrypt`,
//!   `store decrypt` and a write through the FUSE mount: one clean error
//!   line, no half-written file left under its final name, and the store
//!   still verifies;
//! - the server killed (SIGKILL) and restarted during an unlock storm: no
//!   wrong answer, every answered unlock audited, the audit chain verifies,
//!   and a waiting device client unlocks once the server is back;
//! - the SQLite state locked by another process (`sqlite3` holding
//!   `BEGIN EXCLUSIVE`): unlocks wait or fail with 500 `internal`, never a
//!   wrong answer, and work again once the lock is released;
//! - the device client against servers that answer garbage, accept and
//!   never answer, trickle their answer (slow-loris the other way), or drop
//!   the connection mid-response: every attempt ends within `--timeout`,
//!   the client retries, gives up at its deadline (75), never crashes.
//!
//! Mounting a tmpfs needs root: without it these tests fail under
//! SECURE_STORE_REQUIRE_INTEROP=1 (CI) and skip otherwise, as do the FUSE
//! and sqlite3 ones without their tools.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use secure_store::client::http::{self, Timeouts};
use secure_store::pki::layout::FleetDir;

use super::harness::*;
use super::run::{fleet_with_device, seal_offline, Server};

fn required() -> bool {
    std::env::var("SECURE_STORE_REQUIRE_INTEROP").is_ok_and(|v| v == "1")
        || std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Whether we may mount a tmpfs (root); panics when it must work (CI).
fn can_mount() -> bool {
    let uid = Command::new("id").arg("-u").output().ok();
    let root = uid.is_some_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !root && required() {
        panic!("the fault-injection tests mount a tmpfs and need root");
    }
    if !root {
        eprintln!("SKIPPED: not root, cannot mount a tmpfs");
    }
    root
}

fn have(tool: &str) -> bool {
    let found = std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|p| p.join(tool).is_file()));
    if !found && required() {
        panic!("{tool} is required for these tests (CI)");
    }
    if !found {
        eprintln!("SKIPPED: {tool} is not installed");
    }
    found
}

/// A small tmpfs mounted at `dir`; unmounted (lazily) when dropped.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        fs::create_dir_all(dir).unwrap();
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir)
            .status()
            .unwrap()
            .success();
        assert!(ok, "mount -t tmpfs {}", dir.display());
        Tmpfs {
            dir: dir.to_owned(),
        }
    }

    fn read_only(&self) {
        let ok = Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(&self.dir)
            .status()
            .unwrap()
            .success();
        assert!(ok, "remount read-only");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(&self.dir)
            .stderr(Stdio::null())
            .status();
    }
}

/// Asserts exit 1 with exactly one `error:` line containing one of `needles`.
fn one_clean_error(cmd: &mut Command, needles: &[&str]) -> String {
    let r = run(cmd);
    assert_eq!(r.code, Some(1), "{cmd:?}\n{}\n{}", r.stdout, r.stderr);
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    let errors: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 1, "one error line: {}", r.stderr);
    assert!(
        needles.iter().any(|n| errors[0].contains(n)),
        "{:?} lacks {needles:?}",
        errors[0]
    );
    r.stderr
}

/// `store verify` succeeds and `store ls` lists exactly `names`.
fn store_is_sound(store: &Path, names: &[&str]) {
    ok(store_cmd(&["verify"]).arg(store));
    let listing = ok(store_cmd(&["ls"]).arg(store));
    let mut listed: Vec<&str> = listing
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .collect();
    listed.sort_unstable();
    let mut want = names.to_vec();
    want.sort_unstable();
    assert_eq!(listed, want, "{listing}");
}

/// Every regular file under `out` equals its source under `src`.
fn only_complete_files(out: &Path, src: &Path) {
    let Ok(entries) = fs::read_dir(out) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let rel = path.strip_prefix(out).unwrap();
        if entry.file_type().unwrap().is_dir() {
            only_complete_files(&path, &src.join(rel));
        } else {
            let got = fs::read(&path).unwrap();
            let want = fs::read(src.join(rel)).unwrap();
            assert!(got == want, "{} is incomplete", path.display());
        }
    }
}

/// (tmpfs, store, src): a store on a new tmpfs `tmp/mnt` holding `src/a.txt`.
fn hello_store_on_tmpfs(tmp: &Path, mnt: &str, size: &str) -> (Tmpfs, PathBuf, PathBuf) {
    let small = Tmpfs::mount(&tmp.join(mnt), size);
    let store = small.dir.join("store");
    ok(store_cmd(&["init"]).arg(&store));
    let src = tmp.join("src");
    write(&src.join("a.txt"), b"hello");
    ok(store_cmd(&["encrypt"]).arg(&src).arg(&store));
    (small, store, src)
}

#[test]
fn full_disk_during_store_encrypt_and_decrypt_fails_cleanly() {
    if !can_mount() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (small, store, _) = hello_store_on_tmpfs(tmp.path(), "small", "2m");

    // 3 MiB into a 2 MiB file system.
    let big = tmp.path().join("big");
    write(&big.join("big.bin"), &noise(3 << 20, 1));
    one_clean_error(
        store_cmd(&["encrypt"]).arg(&big).arg(&store),
        &["No space left", "space"],
    );
    store_is_sound(&store, &["a.txt"]);

    // Decrypting a 3 MiB store into the full file system.
    let other = tmp.path().join("other");
    ok(store_cmd(&["init"]).arg(&other));
    write(&big.join("small.txt"), b"small");
    ok(store_cmd(&["encrypt"]).arg(&big).arg(&other));
    let out = small.dir.join("out");
    one_clean_error(
        store_cmd(&["decrypt"]).arg(&other).arg(&out),
        &["No space left", "space"],
    );
    only_complete_files(&out, &big);
    store_is_sound(&other, &["big.bin", "small.txt"]);
    store_is_sound(&store, &["a.txt"]);
}

#[test]
fn read_only_destination_during_store_encrypt_and_decrypt_fails_cleanly() {
    if !can_mount() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (small, store, src) = hello_store_on_tmpfs(tmp.path(), "ro", "4m");
    small.read_only();

    write(&src.join("b.txt"), b"more");
    one_clean_error(
        store_cmd(&["encrypt"]).arg(&src).arg(&store),
        &["Read-only", "read-only"],
    );
    store_is_sound(&store, &["a.txt"]);

    let out = small.dir.join("out");
    one_clean_error(
        store_cmd(&["decrypt"]).arg(&store).arg(&out),
        &["Read-only", "read-only"],
    );
    assert!(!out.exists());
    // Decrypting elsewhere still works: the store is readable.
    let elsewhere = tmp.path().join("out");
    ok(store_cmd(&["decrypt"]).arg(&store).arg(&elsewhere));
    assert_eq!(fs::read(elsewhere.join("a.txt")).unwrap(), b"hello");
}

fn is_mountpoint(dir: &Path) -> bool {
    match (fs::metadata(dir), fs::metadata(dir.parent().unwrap())) {
        (Ok(a), Ok(b)) => a.dev() != b.dev(),
        (Err(_), _) => true,
        _ => false,
    }
}

/// A foreground `secure-store mount`; killed and unmounted when dropped.
struct Mount {
    child: Option<Child>,
    dir: PathBuf,
}

impl Mount {
    fn start(store: &Path, dir: &Path) -> Mount {
        let child = ss(["mount"])
            .arg(store)
            .arg(dir)
            .env("STORE_PASSWORD", KEY)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut m = Mount {
            child: Some(child),
            dir: dir.to_owned(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !(is_mountpoint(dir) && fs::read_dir(dir).is_ok()) {
            if let Some(Ok(Some(status))) = m.child.as_mut().map(|c| c.try_wait()) {
                panic!("mount exited early: {status}");
            }
            assert!(Instant::now() < deadline, "the mount never appeared");
            std::thread::sleep(Duration::from_millis(20));
        }
        m
    }

    /// SIGTERM and wait (bounded) for it to unmount and exit.
    fn stop(mut self) {
        let mut child = self.child.take().unwrap();
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "the mount did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = Command::new("fusermount3")
            .arg("-uz")
            .arg(&self.dir)
            .stderr(Stdio::null())
            .status();
    }
}

fn fuse_ready() -> bool {
    let dev = Path::new("/dev/fuse").exists();
    if !dev && required() {
        panic!("/dev/fuse is required for these tests (CI)");
    }
    dev && have("fusermount3")
}

#[test]
fn full_disk_during_a_fuse_write_keeps_the_store_sound() {
    if !can_mount() || !fuse_ready() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let small = Tmpfs::mount(&tmp.path().join("small"), "2m");
    let store = small.dir.join("store");
    ok(store_cmd(&["init"]).arg(&store));
    let src = tmp.path().join("src");
    write(&src.join("a.txt"), b"hello");
    ok(store_cmd(&["encrypt"]).arg(&src).arg(&store));
    let mnt = tmp.path().join("mnt");
    fs::create_dir(&mnt).unwrap();

    let mount = Mount::start(&store, &mnt);
    let data = noise(3 << 20, 2);
    let outcome = (|| -> std::io::Result<()> {
        let mut f = fs::File::create(mnt.join("big.bin"))?;
        f.write_all(&data)?;
        f.sync_all()
    })();
    let err = outcome.expect_err("3 MiB cannot fit in 2 MiB");
    assert!(
        matches!(err.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EIO)),
        "{err}"
    );
    // The old file is intact through the mount.
    assert_eq!(fs::read(mnt.join("a.txt")).unwrap(), b"hello");
    mount.stop();

    // The new file is empty (created, never published) or absent: never a
    // torn version. The store verifies and decrypts.
    ok(store_cmd(&["verify"]).arg(&store));
    let out = tmp.path().join("out");
    ok(store_cmd(&["decrypt"]).arg(&store).arg(&out));
    assert_eq!(fs::read(out.join("a.txt")).unwrap(), b"hello");
    if let Ok(got) = fs::read(out.join("big.bin")) {
        assert!(got.is_empty(), "a partial big.bin of {} bytes", got.len());
    }
}

// ---------------------------------------------------------------------
// The server under faults.

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Enrolls `id` with its files in the fleet and returns its TLS client.
pub(super) fn device_tls(fleet: &Path, id: &str) -> Arc<rustls::ClientConfig> {
    if !FleetDir::new(fleet).device(id).cert().exists() {
        ok(ss(["fleet", "enroll"]).arg(fleet).arg(id));
    }
    let d = FleetDir::new(fleet).device(id);
    let read = |p: PathBuf| fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    secure_store::pki::tls::client_config(&read(d.ca_cert()), &read(d.cert()), &read(d.key()))
        .unwrap()
}

/// `GET /key` with the device's certificate: (status, body).
pub(super) fn get_key(url: &str, tls: Arc<rustls::ClientConfig>) -> Option<(u16, String)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let r = rt
        .block_on(http::request(
            &format!("{url}/key"),
            "GET",
            None,
            Some(tls),
            &Timeouts::all(Duration::from_secs(20)),
        ))
        .ok()?;
    Some((r.status, String::from_utf8_lossy(&r.body).into_owned()))
}

/// The only right answers to `GET /key`: the key, or a clean refusal.
fn right_answer(answer: &(u16, String)) {
    match answer.0 {
        201 => assert_eq!(
            serde_json::from_str::<serde_json::Value>(&answer.1).unwrap()["password"],
            KEY,
            "{answer:?}"
        ),
        500 | 503 => assert!(answer.1.contains("internal"), "{answer:?}"),
        _ => panic!("unexpected answer {answer:?}"),
    }
}

fn admin(fleet: &Path, url: &str, args: &[&str]) -> Command {
    let mut cmd = ss(["admin", "--server", url, "--fleet"]);
    cmd.arg(fleet).args(args);
    cmd
}

/// Allowed `GET /key` entries in the audit log.
fn audited_unlocks(fleet: &Path, url: &str) -> usize {
    let out = ok(&mut admin(
        fleet,
        url,
        &["audit", "--json", "--limit", "1000000"],
    ));
    let records: Vec<serde_json::Value> = match serde_json::from_str(&out) {
        Ok(serde_json::Value::Array(a)) => a,
        _ => out
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect(),
    };
    records
        .iter()
        .filter(|r| {
            r["endpoint"] == "GET /key"
                && r["decision"]
                    .as_str()
                    .is_some_and(|d| d.eq_ignore_ascii_case("allowed"))
        })
        .count()
}

fn start_server(fleet: &Path, port: u16, data: &Path) -> Server {
    Server::start(
        fleet,
        &[
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
            data.to_str().unwrap(),
            "--rate-per-device",
            "0",
            "--rate-per-address",
            "0",
        ],
        &[("STORE_PASSWORD", KEY)],
    )
}

/// Spawns `run FLAGS -- true` as device `mtls` with `envelope` (stderr piped).
fn spawn_run(mtls: &[(String, String)], envelope: &str, flags: &[&str]) -> Child {
    ss(["run"])
        .args(flags)
        .args(["--", "true"])
        .envs(mtls.iter().map(|(k, v)| (k, v)))
        .env("SECURE_STORE_ENVELOPE", envelope)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn server_killed_during_a_storm_restarts_with_its_audit_intact() {
    let tmp = tempfile::tempdir().unwrap();
    let (fleet, mtls) = fleet_with_device(tmp.path(), "cam-1");
    let port = free_port();
    let data = tmp.path().join("data");
    let server = start_server(&fleet, port, &data);
    let url = server.url.clone();

    let mut storm = ss(["bench", "storm", "--server", &url, "--fleet"])
        .arg(&fleet)
        .args([
            "--devices",
            "20",
            "--concurrency",
            "4",
            "--duration",
            "4",
            "--json",
            "--threads",
            "1",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    drop(server); // SIGKILL
    std::thread::sleep(Duration::from_millis(300));
    let server = start_server(&fleet, port, &data);
    let mut out = String::new();
    storm
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let status = storm.wait().unwrap();
    assert!(status.success(), "storm: {out}");
    let report: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let unlocks = report["unlocks"].as_u64().expect("unlocks") as usize;
    assert!(unlocks > 0, "{report}");

    // Every answered unlock was audited first; the chain verifies across
    // the kill.
    ok(&mut admin(&fleet, &url, &["audit", "--verify"]));
    let audited = audited_unlocks(&fleet, &url);
    assert!(audited >= unlocks, "{audited} audited < {unlocks} answered");
    let answer = get_key(&url, device_tls(&fleet, "cam-f")).expect("an answer");
    assert_eq!(answer.0, 201);
    right_answer(&answer);

    // A device client waiting while the server is down unlocks after the
    // restart.
    drop(server);
    let envelope = seal_offline(&fleet, &url);
    let client = spawn_run(
        &mtls,
        &envelope,
        &[
            "--retry-base",
            "100ms",
            "--retry-cap",
            "300ms",
            "--timeout",
            "2s",
            "--deadline",
            "60s",
        ],
    );
    std::thread::sleep(Duration::from_millis(800));
    let server = start_server(&fleet, port, &data);
    let r = client.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(0), "{log}");
    assert!(log.contains("unlock failed"), "it retried: {log}");
    ok(&mut admin(&fleet, &server.url, &["audit", "--verify"]));
}

#[test]
fn sqlite_locked_by_another_process_fails_cleanly_and_recovers() {
    if !have("sqlite3") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (fleet, _) = fleet_with_device(tmp.path(), "cam-1");
    let data = tmp.path().join("data");
    let server = start_server(&fleet, free_port(), &data);
    let tls = device_tls(&fleet, "cam-f");
    right_answer(&get_key(&server.url, tls.clone()).expect("an answer"));

    let db = fs::read_dir(&data)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "db"))
        .expect("the state database");
    let mut holder = Command::new("sqlite3")
        .arg(&db)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = holder.stdin.take().unwrap();
    writeln!(stdin, "BEGIN EXCLUSIVE; SELECT 'locked';").unwrap();
    let mut line = String::new();
    BufReader::new(holder.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "locked");

    // Held: each unlock waits (busy timeout) and then fails with 500
    // `internal`, or is answered rightly; never a wrong answer.
    let mut refused = 0;
    for _ in 0..2 {
        let answer = get_key(&server.url, tls.clone()).expect("an answer");
        right_answer(&answer);
        refused += usize::from(answer.0 != 201);
    }
    assert!(
        refused > 0,
        "an exclusive lock must stop the audited unlock"
    );

    // Released: the server recovers by itself.
    writeln!(stdin, "COMMIT;").unwrap();
    drop(stdin);
    holder.wait().unwrap();
    let answer = get_key(&server.url, tls).expect("an answer");
    assert_eq!(answer.0, 201, "{answer:?}");
    right_answer(&answer);
    ok(&mut admin(&fleet, &server.url, &["audit", "--verify"]));
}

// ---------------------------------------------------------------------
// The device client against broken servers.

#[derive(Debug, Clone, Copy)]
enum Broken {
    /// Answers bytes that are not TLS, then closes.
    Garbage,
    /// Accepts the connection and never says anything.
    Silent,
    /// Completes TLS, then trickles a response one byte a second.
    Trickle,
    /// Completes TLS, sends half a response and drops the connection.
    DropMidResponse,
}

/// A broken server on a loopback port until the returned flag is set.
fn broken_server(fleet: &Path, how: Broken) -> (u16, Arc<AtomicBool>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let stop = Arc::new(AtomicBool::new(false));
    let config = secure_store::pki::tls::server_config(&FleetDir::new(fleet).server()).unwrap();
    let flag = stop.clone();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        while !flag.load(Ordering::Relaxed) {
            let Ok((sock, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            };
            let _ = sock.set_nonblocking(false);
            let config = config.clone();
            let flag = flag.clone();
            match how {
                Broken::Garbage => {
                    let mut sock = sock;
                    let _ = sock.write_all(b"HTTP/1.1 200 OK\r\n\r\n\x00\xffgarbage");
                }
                Broken::Silent => held.push(sock),
                Broken::Trickle | Broken::DropMidResponse => {
                    std::thread::spawn(move || serve_tls(sock, config, how, &flag));
                }
            }
        }
    });
    (port, stop)
}

fn serve_tls(sock: TcpStream, config: Arc<rustls::ServerConfig>, how: Broken, stop: &AtomicBool) {
    let _ = sock.set_read_timeout(Some(Duration::from_secs(5)));
    let Ok(conn) = rustls::ServerConnection::new(config) else {
        return;
    };
    let mut tls = rustls::StreamOwned::new(conn, sock);
    // Read the request head.
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match tls.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let answer = b"HTTP/1.1 200 OK\r\nContent-Type: application/jwk+json\r\nContent-Length: 200\r\n\r\n{\"alg\":\"ECMR\",\"crv\":";
    match how {
        Broken::Trickle => {
            for b in answer {
                if stop.load(Ordering::Relaxed) || tls.write_all(&[*b]).is_err() {
                    return;
                }
                let _ = tls.flush();
                std::thread::sleep(Duration::from_secs(1));
            }
        }
        _ => {
            let _ = tls.write_all(answer);
            let _ = tls.flush();
            // Dropped without close_notify: a truncated response.
        }
    }
}

#[test]
fn client_against_broken_servers_retries_within_bounded_attempts() {
    let tmp = tempfile::tempdir().unwrap();
    let (fleet, mtls) = fleet_with_device(tmp.path(), "cam-1");
    for how in [
        Broken::Garbage,
        Broken::Silent,
        Broken::Trickle,
        Broken::DropMidResponse,
    ] {
        let (port, stop) = broken_server(&fleet, how);
        let envelope = seal_offline(&fleet, &format!("https://127.0.0.1:{port}"));
        let mut child = spawn_run(
            &mtls,
            &envelope,
            &[
                "--timeout",
                "700ms",
                "--retry-base",
                "50ms",
                "--retry-cap",
                "100ms",
                "--deadline",
                "4s",
            ],
        );
        // Liveness bound, far above the 4 s deadline: a client stuck in one
        // attempt would never get here.
        let started = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if started.elapsed() > Duration::from_secs(60) {
                let _ = child.kill();
                panic!("{how:?}: the client is stuck in an attempt");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut log = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut log)
            .unwrap();
        stop.store(true, Ordering::Relaxed);
        assert_eq!(status.code(), Some(75), "{how:?}: {log}");
        assert!(!log.contains("panicked"), "{how:?}: {log}");
        let attempts = log.matches("unlock failed").count();
        assert!(attempts >= 2, "{how:?}: retried: {log}");
    }
}
