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
