//! `secure-store run`: the app's exit code and signals, PID-1 reaping, the
//! app's environment (v0 and v1 values decrypted, secrets withheld, fail
//! closed), the local unlock sources and `--materialize`. Network unlocks
//! against the real server are further down (legacy, envelope, backoff,
//! revocation).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::harness::*;

fn env_value(format: &str, name: &str, value: &str) -> String {
    let out =
        ok(ss(["env", "encrypt", "--format", format, name, value]).env("STORE_PASSWORD", KEY));
    out.trim().split_once('=').expect("NAME=value").1.to_owned()
}

/// Waits (bounded) until `path` exists; the app writes it when it is ready.
fn wait_for(path: &Path, child: &mut Child) {
    let start = Instant::now();
    while !path.exists() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("exited early: {status:?}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Log text without ANSI colour sequences.
pub(super) fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn spawn(cmd: &mut Command) -> Child {
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn run_exits_with_the_apps_code() {
    let r = run(ss(["run", "--", "sh", "-c", "exit 3"]).env("STORE_PASSWORD", KEY));
    assert_eq!(r.code, Some(3), "{}", r.stderr);
    let r = run(ss(["run", "--", "true"]).env("STORE_PASSWORD", KEY));
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    // Killed by a signal: 128 + N.
    let r = run(ss(["run", "--", "sh", "-c", "kill -KILL $$"]).env("STORE_PASSWORD", KEY));
    assert_eq!(r.code, Some(128 + 9), "{}", r.stderr);
}

#[test]
fn run_reports_a_missing_app_with_127() {
    let r = run(ss(["run", "--", "/nonexistent/app"]).env("STORE_PASSWORD", KEY));
    assert_eq!(r.code, Some(127), "{}", r.stderr);
    assert!(r.stderr.contains("/nonexistent/app"), "{}", r.stderr);
}

#[test]
fn run_forwards_sigterm_and_returns_the_apps_code() {
    for (script, expected) in [
        // The app exits on its own terms when told: its code comes back.
        (
            "trap 'echo got-term; exit 7' TERM; touch \"$READY\"; while :; do sleep 0.05; done",
            7,
        ),
        // The default action of SIGTERM: 128 + 15.
        ("touch \"$READY\"; exec sleep 60", 143),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let ready = tmp.path().join("ready");
        let mut child = spawn(
            ss(["run", "--", "sh", "-c", script])
                .env("STORE_PASSWORD", KEY)
                .env("READY", &ready),
        );
        wait_for(&ready, &mut child);
        let rc = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(rc.success());
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(expected),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        if expected == 7 {
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "got-term");
        }
    }
}

#[test]
fn run_forwards_sighup_usr1_usr2() {
    let tmp = tempfile::tempdir().unwrap();
    let ready = tmp.path().join("ready");
    let script = "trap 'echo hup' HUP; trap 'echo usr1' USR1; trap 'echo usr2; exit 0' USR2; \
                  touch \"$READY\"; while :; do sleep 0.05; done";
    let mut child = spawn(
        ss(["run", "--", "sh", "-c", script])
            .env("STORE_PASSWORD", KEY)
            .env("READY", &ready),
    );
    wait_for(&ready, &mut child);
    for sig in ["HUP", "USR1", "USR2"] {
        Command::new("kill")
            .args([&format!("-{sig}"), &child.id().to_string()])
            .status()
            .unwrap();
        // The next signal only after the app handled this one (order).
        std::thread::sleep(Duration::from_millis(300));
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hup\nusr1\nusr2\n");
}

/// As PID 1 of a new PID namespace (a container's init), orphans are reaped.
#[test]
fn run_as_pid1_reaps_orphaned_grandchildren() {
    let is_root = Command::new("id").arg("-u").output().unwrap().stdout == b"0\n";
    let required = std::env::var("SECURE_STORE_REQUIRE_INTEROP").is_ok_and(|v| v == "1");
    if !is_root || Command::new("unshare").arg("--version").output().is_err() {
        assert!(!required, "needs root and unshare(1)");
        eprintln!("SKIPPED: needs root and unshare(1)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // The app makes a grandchild that outlives its parent (so it is
    // re-parented to PID 1, us), waits until it ended, then looks for
    // zombies for a while and prints the process table.
    let script = r#"
        sh -c '(sleep 0.2; touch "$DONE") &'
        while [ ! -e "$DONE" ]; do sleep 0.05; done
        i=0
        while [ $i -lt 100 ]; do
            z=$(ps -eo stat= | grep -c '^Z')
            [ "$z" = 0 ] && break
            sleep 0.05; i=$((i+1))
        done
        ps -eo pid=,ppid=,stat=,comm=
        echo zombies=$z
        exit 5
    "#;
    let mut cmd = Command::new("unshare");
    cmd.args(["--pid", "--fork", "--mount-proc"])
        .arg(env!("CARGO_BIN_EXE_secure-store"))
        .args(["run", "--", "sh", "-c", script])
        .env("STORE_PASSWORD", KEY)
        .env("DONE", tmp.path().join("done"));
    let r = run(&mut cmd);
    assert_eq!(r.code, Some(5), "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("zombies=0"), "{}", r.stdout);
    assert!(
        r.stdout
            .lines()
            .any(|l| l.split_whitespace().next() == Some("1") && l.contains("secure-store")),
        "we are PID 1: {}",
        r.stdout
    );
}

#[test]
fn run_decrypts_v0_and_v1_into_the_apps_env_only() {
    let a = env_value("v0", "OLD_SECRET", "zero value");
    let b = env_value("v1", "NEW_SECRET", "one=value\nline2");
    let out = ok(ss(["run", "--", "sh", "-c", "env"])
        .env("STORE_PASSWORD", KEY)
        .env("ENCRYPTED_OLD_SECRET", &a)
        .env("ENCRYPTED_NEW_SECRET", &b)
        .env("MTLS_KEY", "private")
        .env("MTLS_CERT", "public")
        .env("SECURE_STORE_ENVELOPE_X", "kept")
        .env("PLAIN", "p"));
    assert!(out.contains("OLD_SECRET=zero value\n"), "{out}");
    assert!(out.contains("NEW_SECRET=one=value\nline2\n"), "{out}");
    assert!(out.contains("PLAIN=p\n"), "{out}");
    assert!(out.contains("MTLS_CERT=public\n"), "{out}");
    for gone in ["ENCRYPTED_", "MTLS_KEY", "STORE_PASSWORD", &a, &b] {
        assert!(!out.contains(gone), "{gone} reached the app: {out}");
    }
}

#[test]
fn run_fails_closed_on_a_bad_value_unless_allowed() {
    let tmp = tempfile::tempdir().unwrap();
    let started = tmp.path().join("started");
    let good = env_value("v1", "GOOD", "g");
    let moved = env_value("v1", "ELSEWHERE", "x"); // v1 binds the name
    let app = [
        "run",
        "--",
        "sh",
        "-c",
        "touch \"$STARTED\"; echo GOOD=$GOOD; echo BAD=${BAD-unset}",
    ];
    let r = run(ss(app)
        .env("STORE_PASSWORD", KEY)
        .env("STARTED", &started)
        .env("ENCRYPTED_GOOD", &good)
        .env("ENCRYPTED_BAD", &moved));
    assert_eq!(r.code, Some(65), "{}", r.stderr);
    let errors: Vec<_> = r
        .stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 1, "{}", r.stderr);
    assert!(errors[0].contains("ENCRYPTED_BAD") && !errors[0].contains("ENCRYPTED_GOOD"));
    assert!(!started.exists(), "the app must not start");

    let out = ok(ss(app)
        .env("STORE_PASSWORD", KEY)
        .env("STARTED", &started)
        .env("ENCRYPTED_GOOD", &good)
        .env("ENCRYPTED_BAD", &moved)
        .env("SECURE_STORE_ALLOW_MISSING", "BAD"));
    assert_eq!(out, "GOOD=g\nBAD=unset\n");
    assert!(started.exists());

    // A wrong store key is the same failure for every value.
    let r = run(ss(["run", "--", "true"])
        .env("STORE_PASSWORD", "another key")
        .env("ENCRYPTED_GOOD", &good));
    assert_eq!(r.code, Some(65), "{}", r.stderr);
}

#[test]
fn run_local_key_sources() {
    let tmp = tempfile::tempdir().unwrap();
    let v = env_value("v1", "S", "local");
    let key_file = tmp.path().join("store.key");
    fs::write(&key_file, format!("{KEY}\n")).unwrap();
    fs::set_permissions(
        &key_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let out = ok(ss(["run", "--key-file"])
        .arg(&key_file)
        .args(["--", "sh", "-c", "echo $S"])
        .env("ENCRYPTED_S", &v));
    assert_eq!(out, "local\n");
    let out =
        ok(ss(["run", "--local-key", KEY, "--", "sh", "-c", "echo $S"]).env("ENCRYPTED_S", &v));
    assert_eq!(out, "local\n");

    // --key-from-env-hash: the key is hex SHA-256 over the items in order.
    let machine_id = tmp.path().join("machine-id");
    fs::write(&machine_id, "0123456789abcdef\n").unwrap();
    let derived = Command::new("sh")
        .arg("-c")
        .arg("{ cat \"$1\"; printf %s \"$2\"; } | sha256sum | cut -d' ' -f1")
        .arg("sh")
        .arg(&machine_id)
        .arg("device-uuid-1")
        .output()
        .unwrap();
    let derived = String::from_utf8(derived.stdout).unwrap().trim().to_owned();
    assert_eq!(derived.len(), 64);
    let hv = ok(ss(["env", "encrypt", "H", "hashed"]).env("STORE_PASSWORD", &derived));
    let hv = hv.trim().split_once('=').unwrap().1.to_owned();
    let mut cmd = ss(["run", "--key-from-env-hash"]);
    cmd.arg(&machine_id)
        .arg("env:DEVICE_UUID")
        .args(["--", "sh", "-c", "echo $H"])
        .env("ENCRYPTED_H", &hv)
        .env("DEVICE_UUID", "device-uuid-1");
    assert_eq!(ok(&mut cmd), "hashed\n");
    // Another device (another value) does not decrypt.
    let r = run(cmd.env("DEVICE_UUID", "device-uuid-2"));
    assert_eq!(r.code, Some(65), "{}", r.stderr);

    // Two sources at once are refused, naming both.
    let r = run(ss(["run", "--key-file"])
        .arg(&key_file)
        .args(["--", "true"])
        .env("STORE_PASSWORD", KEY));
    assert_eq!(r.code, Some(1));
    assert!(
        r.stderr.contains("--key-file") && r.stderr.contains("STORE_PASSWORD"),
        "{}",
        r.stderr
    );
    // None at all.
    let r = run(&mut ss(["run", "--", "true"]));
    assert_eq!(r.code, Some(1));
    assert!(r.stderr.contains("no unlock source"), "{}", r.stderr);
}

fn make_store(tmp: &Path) -> (PathBuf, PathBuf) {
    let src = tmp.join("src");
    write(&src.join("config.json"), b"{\"db\":\"secret\"}");
    write(&src.join("sub/deep.txt"), b"deep");
    let store = tmp.join("store");
    ok(ss(["store", "init"]).arg(&store).env("STORE_PASSWORD", KEY));
    ok(ss(["store", "encrypt"])
        .arg(&src)
        .arg(&store)
        .env("STORE_PASSWORD", KEY));
    (src, store)
}

#[test]
fn run_materializes_on_tmpfs_with_private_modes_and_cleans_up() {
    let shm = Path::new("/dev/shm");
    if !shm.is_dir() {
        eprintln!("SKIPPED: no /dev/shm");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (_src, store) = make_store(tmp.path());
    let dir = tempfile::Builder::new()
        .prefix("ss-mat-")
        .tempdir_in(shm)
        .unwrap();
    let target = dir.path().join("app");
    let script = r#"
        cat "$D/config.json"; echo
        cat "$D/sub/deep.txt"; echo
        stat -c '%a %n' "$D" "$D/sub" "$D/config.json" "$D/sub/deep.txt"
        ls -A "$D"
    "#;
    let out = ok(ss(["run", "--store"])
        .arg(&store)
        .arg("--materialize")
        .arg(&target)
        .args(["--", "sh", "-c", script])
        .env("STORE_PASSWORD", KEY)
        .env("D", &target));
    let d = target.display();
    assert_eq!(
        out,
        format!(
            "{{\"db\":\"secret\"}}\ndeep\n700 {d}\n700 {d}/sub\n600 {d}/config.json\n600 {d}/sub/deep.txt\nconfig.json\nsub\n"
        )
    );
    assert!(!target.exists(), "the decrypted folder is removed on exit");

    // An existing empty folder (a tmpfs mount point) is kept but emptied,
    // also when the app fails.
    fs::create_dir(&target).unwrap();
    let r = run(ss(["run", "--store"])
        .arg(&store)
        .arg("--materialize")
        .arg(&target)
        .args(["--", "sh", "-c", "test -f \"$D/config.json\" && exit 4"])
        .env("STORE_PASSWORD", KEY)
        .env("D", &target));
    assert_eq!(r.code, Some(4), "{}", r.stderr);
    assert!(target.is_dir());
    assert_eq!(fs::read_dir(&target).unwrap().count(), 0);

    // A non-empty folder is refused (it would be emptied on exit).
    fs::write(target.join("mine"), "x").unwrap();
    let r = run(ss(["run", "--store"])
        .arg(&store)
        .arg("--materialize")
        .arg(&target)
        .args(["--", "true"])
        .env("STORE_PASSWORD", KEY));
    assert_eq!(r.code, Some(1));
    assert!(r.stderr.contains("not empty"), "{}", r.stderr);
    assert!(target.join("mine").exists());
}

#[test]
fn run_refuses_to_materialize_on_persistent_storage() {
    let tmp = tempfile::tempdir().unwrap();
    let fs_type = Command::new("stat")
        .args(["-f", "-c", "%T"])
        .arg(tmp.path())
        .output()
        .unwrap();
    if String::from_utf8_lossy(&fs_type.stdout).contains("tmpfs") {
        eprintln!("SKIPPED: the temp folder is on tmpfs here");
        return;
    }
    let (_src, store) = make_store(tmp.path());
    let target = tmp.path().join("plain");
    let r = run(ss(["run", "--store"])
        .arg(&store)
        .arg("--materialize")
        .arg(&target)
        .args(["--", "true"])
        .env("STORE_PASSWORD", KEY));
    assert_eq!(r.code, Some(1));
    assert!(r.stderr.contains("not on tmpfs"), "{}", r.stderr);
    assert!(!target.exists(), "nothing left behind");

    let out = ok(ss(["run", "--allow-persistent-materialize", "--store"])
        .arg(&store)
        .arg("--materialize")
        .arg(&target)
        .args(["--", "sh", "-c", "cat \"$D/sub/deep.txt\""])
        .env("STORE_PASSWORD", KEY)
        .env("D", &target));
    assert_eq!(out, "deep");
    assert!(!target.exists());
}

// ---------------------------------------------------------------------
// Against the real Store Server.

/// A running `secure-store server`, killed on drop.
pub(super) struct Server {
    child: Child,
    /// `https://127.0.0.1:PORT`
    pub url: String,
    /// `http://127.0.0.1:PORT` of the plain Tang listener, when asked for.
    pub tang: Option<String>,
    _stderr: std::thread::JoinHandle<String>,
}

impl Server {
    /// Starts the server of `fleet` with extra args and env; waits for its
    /// "listening on" line.
    pub(super) fn start(fleet: &Path, args: &[&str], envs: &[(&str, &str)]) -> Server {
        let mut cmd = ss(["server", "--fleet"]);
        cmd.arg(fleet);
        if !args.contains(&"--listen") {
            cmd.args(["--listen", "127.0.0.1:0"]);
        }
        cmd.args(args).envs(envs.iter().copied());
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = std::io::Read::read_to_string(&mut std::io::BufReader::new(stderr), &mut s);
            s
        });
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        let mut words = line.split_whitespace();
        let url = words.find(|w| w.starts_with("https://"));
        let Some(url) = url.map(str::to_owned) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("no listening line: {line:?}\n{}", stderr.join().unwrap());
        };
        let tang = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .map(str::to_owned);
        Server {
            child,
            url,
            tang,
            _stderr: stderr,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fleet with one enrolled device; returns the fleet folder and the
/// device's `MTLS_*` variables.
pub(super) fn fleet_with_device(tmp: &Path, device: &str) -> (PathBuf, Vec<(String, String)>) {
    let fleet = tmp.join("fleet");
    ok(ss(["fleet", "init"]).arg(&fleet));
    let vars = enroll_env(&fleet, device);
    (fleet, vars)
}

/// Enrolls `device` with `fleet enroll --env`; returns its three `MTLS_*` variables.
pub(super) fn enroll_env(fleet: &Path, device: &str) -> Vec<(String, String)> {
    let out = ok(ss(["fleet", "enroll"]).arg(fleet).args([device, "--env"]));
    let vars: Vec<(String, String)> = out
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    assert_eq!(vars.len(), 3, "MTLS_CERT, MTLS_KEY, MTLS_CA: {out}");
    assert!(vars.iter().all(|(k, _)| k.starts_with("MTLS_")), "{out}");
    vars
}

/// `seal` the test key offline from the fleet, for devices that use `url`.
pub(super) fn seal_offline(fleet: &Path, url: &str) -> String {
    let out = ok(ss(["seal", "--url", url, "--fleet"])
        .arg(fleet)
        .env("STORE_PASSWORD", KEY));
    out.trim()
        .strip_prefix("SECURE_STORE_ENVELOPE=")
        .expect("SECURE_STORE_ENVELOPE=…")
        .to_owned()
}

#[test]
fn run_unlocks_an_envelope_through_the_server() {
    let tmp = tempfile::tempdir().unwrap();
    let (fleet, mtls) = fleet_with_device(tmp.path(), "cam-1");
    let server = Server::start(&fleet, &[], &[]);
    let envelope = seal_offline(&fleet, &server.url);
    let secret = env_value("v1", "API_KEY", "s3cr3t");
    // The server comes from the envelope; the certificate from base64 env.
    let out = ok(ss([
        "run",
        "--",
        "sh",
        "-c",
        "echo API_KEY=$API_KEY; env | grep -c '^MTLS_KEY=\\|^SECURE_STORE_ENVELOPE=' || true",
    ])
    .envs(mtls.iter().map(|(k, v)| (k, v)))
    .env("SECURE_STORE_ENVELOPE", &envelope)
    .env("ENCRYPTED_API_KEY", &secret));
    assert_eq!(out, "API_KEY=s3cr3t\n0\n");

    // Without a client certificate the server is not reached.
    let r =
        run(ss(["run", "--deadline", "1s", "--", "true"]).env("SECURE_STORE_ENVELOPE", &envelope));
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(r.stderr.contains("MTLS_CERT"), "{}", r.stderr);
    drop(server);
}

#[test]
fn run_legacy_key_from_the_original_style_server() {
    let tmp = tempfile::tempdir().unwrap();
    let fleet = tmp.path().join("legacy-fleet");
    ok(ss(["fleet", "init", "--legacy"]).arg(&fleet));
    let server = Server::start(&fleet, &["--legacy"], &[("STORE_PASSWORD", KEY)]);
    let port = server.url.rsplit(':').next().unwrap().to_owned();
    let secret = env_value("v0", "DB", "postgres://x");
    // The original's one certificate on both ends; no CA given: the
    // certificate trusts itself, as the original client did.
    let out = ok(ss([
        "run",
        "--legacy",
        "--server",
        &format!("https://localhost:{port}"),
        "--cert",
    ])
    .arg(fleet.join("legacy/cert.pem"))
    .arg("--key")
    .arg(fleet.join("legacy/key.pem"))
    .args(["--", "sh", "-c", "echo $DB"])
    .env("ENCRYPTED_DB", &secret));
    assert_eq!(out, "postgres://x\n");
}

/// A port nothing listens on (bound once, then released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn run_waits_for_a_server_that_comes_up_later() {
    let tmp = tempfile::tempdir().unwrap();
    let (fleet, mtls) = fleet_with_device(tmp.path(), "cam-2");
    let port = free_port();
    let url = format!("https://127.0.0.1:{port}");
    let envelope = seal_offline(&fleet, &url);
    let started = tmp.path().join("started");
    let mut child = ss([
        "run",
        "--retry-base",
        "200ms",
        "--retry-cap",
        "400ms",
        "--",
        "sh",
        "-c",
        "touch \"$STARTED\"",
    ])
    .envs(mtls.iter().map(|(k, v)| (k, v)))
    .env("SECURE_STORE_ENVELOPE", &envelope)
    .env("STARTED", &started)
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(stderr)) {
            let Ok(line) = line else { break };
            if tx.send(plain(&line)).is_err() {
                break;
            }
        }
    });
    // Two refused attempts, then the server comes up on that port.
    let mut before = Vec::new();
    while before
        .iter()
        .filter(|l: &&String| l.contains("reason=refused"))
        .count()
        < 2
    {
        before.push(
            rx.recv_timeout(Duration::from_secs(30))
                .expect("attempt log lines"),
        );
    }
    assert!(!started.exists());
    let server = Server::start(&fleet, &["--listen", &format!("127.0.0.1:{port}")], &[]);
    let status = child.wait().unwrap();
    let after: Vec<String> = rx.try_iter().collect();
    assert_eq!(status.code(), Some(0), "{before:?}\n{after:?}");
    assert!(started.exists());
    // At most the attempt that was under way when the server came up
    // failed; the next one unlocked.
    let failed_after = after.iter().filter(|l| l.contains("unlock failed")).count();
    assert!(failed_after <= 1, "{after:#?}");
    assert!(after.iter().any(|l| l.contains("unlocked")), "{after:#?}");
    drop(server);
}

#[test]
fn run_exits_78_without_starting_the_app_when_revoked() {
    let tmp = tempfile::tempdir().unwrap();
    let (fleet, mtls) = fleet_with_device(tmp.path(), "cam-3");
    let server = Server::start(&fleet, &[], &[]);
    let envelope = seal_offline(&fleet, &server.url);
    // Works before the revocation.
    ok(ss(["run", "--", "true"])
        .envs(mtls.iter().map(|(k, v)| (k, v)))
        .env("SECURE_STORE_ENVELOPE", &envelope));
    ok(ss(["admin", "--fleet"])
        .arg(&fleet)
        .args(["--server", &server.url, "revoke", "cam-3"]));
    let started = tmp.path().join("started");
    let r = run(ss([
        "run",
        "--retry-base",
        "100ms",
        "--",
        "sh",
        "-c",
        "touch \"$STARTED\"",
    ])
    .envs(mtls.iter().map(|(k, v)| (k, v)))
    .env("SECURE_STORE_ENVELOPE", &envelope)
    .env("STARTED", &started));
    assert_eq!(r.code, Some(78), "{}", r.stderr);
    assert!(!started.exists(), "the app must not start");
    let log = plain(&r.stderr);
    assert!(log.contains("reason=revoked"), "{log}");
    // One attempt: a revoked device does not hammer the server.
    assert_eq!(log.matches("attempt=").count(), 1, "{log}");
}

#[test]
fn run_gives_up_at_the_deadline_with_75() {
    let tmp = tempfile::tempdir().unwrap();
    let (fleet, mtls) = fleet_with_device(tmp.path(), "cam-4");
    let url = format!("https://127.0.0.1:{}", free_port());
    let envelope = seal_offline(&fleet, &url);
    let r = run(ss([
        "run",
        "--retry-base",
        "50ms",
        "--retry-cap",
        "100ms",
        "--deadline",
        "1s",
        "--",
        "true",
    ])
    .envs(mtls.iter().map(|(k, v)| (k, v)))
    .env("SECURE_STORE_ENVELOPE", &envelope));
    assert_eq!(r.code, Some(75), "{}", r.stderr);
    let log = plain(&r.stderr);
    assert!(log.contains("reason=refused"), "{log}");
    assert!(log.contains("before the deadline"), "{log}");
}

#[test]
fn run_mounts_the_store_for_the_app_and_unmounts_after() {
    let has_fuse = Path::new("/dev/fuse").exists()
        && Command::new("id").arg("-u").output().unwrap().stdout == b"0\n";
    let required = std::env::var("SECURE_STORE_REQUIRE_INTEROP").is_ok_and(|v| v == "1");
    if !has_fuse {
        assert!(!required, "needs /dev/fuse and root");
        eprintln!("SKIPPED: needs /dev/fuse and root");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (_src, store) = make_store(tmp.path());
    // A missing mount point is created, and removed after.
    let mnt = tmp.path().join("mnt");
    let script = r#"
        cat "$M/config.json"; echo
        printf 'written by the app' > "$M/new.txt"
        grep -c " $M " /proc/mounts
    "#;
    let out = ok(ss(["run", "--store"])
        .arg(&store)
        .arg("--mount")
        .arg(&mnt)
        .args(["--", "sh", "-c", script])
        .env("STORE_PASSWORD", KEY)
        .env("M", &mnt));
    assert_eq!(out, "{\"db\":\"secret\"}\n1\n");
    let mounts = fs::read_to_string("/proc/mounts").unwrap();
    assert!(
        !mounts.contains(&*mnt.to_string_lossy()),
        "unmounted on exit"
    );
    assert!(!mnt.exists(), "the mount point we created is removed");
    // What the app wrote is in the store, encrypted.
    let out = tmp.path().join("out");
    ok(ss(["store", "decrypt"])
        .arg(&store)
        .arg(&out)
        .env("STORE_PASSWORD", KEY));
    assert_eq!(
        fs::read(out.join("new.txt")).unwrap(),
        b"written by the app"
    );
}

#[test]
fn run_stops_cleanly_on_sigterm_while_waiting_for_the_server() {
    let tmp = tempfile::tempdir().unwrap();
    let (fleet, mtls) = fleet_with_device(tmp.path(), "cam-5");
    let envelope = seal_offline(&fleet, &format!("https://127.0.0.1:{}", free_port()));
    let started = tmp.path().join("started");
    let mut child = ss(["run", "--", "sh", "-c", "touch \"$STARTED\""])
        .envs(mtls.iter().map(|(k, v)| (k, v)))
        .env("SECURE_STORE_ENVELOPE", &envelope)
        .env("STARTED", &started)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stderr.take().unwrap()));
    // The first failed attempt is logged; then `docker stop` arrives.
    loop {
        let line = plain(&lines.next().expect("a log line").unwrap());
        if line.contains("reason=refused") {
            break;
        }
    }
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let rest: Vec<String> = lines.map_while(Result::ok).map(|l| plain(&l)).collect();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(143), "{rest:?}");
    assert!(!started.exists());
    assert!(
        rest.iter().any(|l| l.contains("stopped by signal 15")),
        "{rest:?}"
    );
}

#[test]
fn run_tries_every_server_and_logs_each_failure_kind() {
    let tmp = tempfile::tempdir().unwrap();
    let (fleet, _) = fleet_with_device(tmp.path(), "cam-6");
    let server = Server::start(&fleet, &[], &[]);
    // A device of another fleet: our server refuses its certificate.
    let other = tmp.path().join("other");
    fs::create_dir(&other).unwrap();
    let (other_fleet, other_mtls) = fleet_with_device(&other, "stranger");
    let envelope = seal_offline(&other_fleet, &server.url);
    let servers = format!("https://no-such-host.invalid:8443,{}", server.url);
    let r = run(ss([
        "run",
        "--retry-base",
        "50ms",
        "--retry-cap",
        "100ms",
        "--deadline",
        "1s",
        "--timeout",
        "2s",
        "--",
        "true",
    ])
    .envs(other_mtls.iter().map(|(k, v)| (k, v)))
    .env("SECURE_STORE_SERVER", &servers)
    .env("SECURE_STORE_ENVELOPE", &envelope));
    assert_eq!(r.code, Some(75), "{}", r.stderr);
    let log = plain(&r.stderr);
    assert!(
        log.contains("server=https://no-such-host.invalid:8443") && log.contains("reason=dns"),
        "{log}"
    );
    assert!(
        log.contains(&format!("server={}", server.url)) && log.contains("reason=tls_rejected"),
        "{log}"
    );
}

#[test]
fn run_backs_off_when_rate_limited_and_then_unlocks() {
    let tmp = tempfile::tempdir().unwrap();
    let (fleet, mtls) = fleet_with_device(tmp.path(), "cam-7");
    // One unlock, then one every 2 s.
    let server = Server::start(
        &fleet,
        &["--rate-per-device", "0.5", "--rate-burst-device", "1"],
        &[],
    );
    let envelope = seal_offline(&fleet, &server.url);
    let client = || {
        let mut cmd = ss([
            "run",
            "--retry-base",
            "200ms",
            "--retry-cap",
            "1s",
            "--",
            "true",
        ]);
        cmd.envs(mtls.iter().map(|(k, v)| (k.clone(), v.clone())))
            .env("SECURE_STORE_ENVELOPE", &envelope);
        cmd
    };
    ok(&mut client());
    let r = run(&mut client());
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let log = plain(&r.stderr);
    assert!(log.contains("reason=rate_limited"), "{log}");
    assert!(log.contains("unlocked"), "{log}");
}
