//! docs/MIGRATION.md, "Step by step", run as written on the original Go
//! project's example data (`shared/vectors/original-secure-store`): the
//! original device layout (`encrypt.conf` + `storage/`), its
//! `STORE_PASSWORD`, its `ENCRYPTED_TESTVAR` value (env_vars.tsv), a legacy
//! server with the `fleet init --legacy --base64` certificate on both ends,
//! then the upgrade to a per-device certificate and a sealed envelope.
//!
//! Every command below is checked to appear verbatim in the doc, then run
//! through `sh -c` with `secure-store` on PATH being the binary under test.
//! The only rewrites: port 8443/8444 → free ports, `0.0.0.0` → 127.0.0.1,
//! `/dev/shm/decrypted` → a private folder on /dev/shm.

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::harness::*;

const HEAD_KEY: &str = "my-password-eQ4al9jgPxlWDwxL6uiGdznhhVJzaVQPnkNRjwvwoTvqWpeBJJJZ";

fn doc() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/MIGRATION.md");
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Rewrites of documented commands for a test run.
struct Rewrite {
    legacy_port: u16,
    fleet_port: u16,
    decrypted: PathBuf,
}

impl Rewrite {
    fn apply(&self, line: &str) -> String {
        line.replace("0.0.0.0", "127.0.0.1")
            .replace(":8443", &format!(":{}", self.legacy_port))
            .replace(":8444", &format!(":{}", self.fleet_port))
            .replace("/dev/shm/decrypted", &self.decrypted.to_string_lossy())
    }
}

/// `sh -c LINE` in `cwd`, clean environment plus `envs`, our binary first
/// on PATH. Asserts the line is on the doc page first.
fn documented(
    doc: &str,
    line: &str,
    rw: &Rewrite,
    cwd: &Path,
    envs: &[(String, String)],
) -> Command {
    assert!(
        doc.lines().any(|l| l.trim() == line),
        "docs/MIGRATION.md no longer has this command (keep doc and test in sync):\n{line}"
    );
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_secure-store"))
        .parent()
        .unwrap()
        .to_owned();
    let path = std::env::join_paths(std::iter::once(bin_dir).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .unwrap();
    let mut cmd = Command::new("sh");
    cmd.env_clear()
        .env("PATH", path)
        .env("HOME", std::env::temp_dir())
        .envs(envs.iter().map(|(k, v)| (k, v)))
        .current_dir(cwd)
        .stdin(Stdio::null())
        .arg("-c")
        .arg(rw.apply(line));
    cmd
}

/// A documented server line, started with `exec`; killed on drop.
struct Server(Child);

impl Server {
    fn start(cmd: Command) -> Server {
        let script = cmd
            .get_args()
            .nth(1)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let mut cmd = {
            let mut c = Command::new("sh");
            c.env_clear();
            for (k, v) in cmd.get_envs() {
                if let Some(v) = v {
                    c.env(k, v);
                }
            }
            c.current_dir(cmd.get_current_dir().unwrap())
                .arg("-c")
                .arg(format!("exec {script}"));
            c
        };
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        if !line.contains("listening on") {
            let mut err = String::new();
            let _ = child.stderr.take().unwrap().read_to_string(&mut err);
            let _ = child.kill();
            let _ = child.wait();
            panic!("the server did not start ({script}): {line}\n{err}");
        }
        // Keep draining stderr so the server never blocks on a full pipe.
        let mut err = child.stderr.take().unwrap();
        std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
        Server(child)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `NAME=value` lines of a file written by a documented command.
fn env_file(path: &Path) -> Vec<(String, String)> {
    fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn output(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed ({:?}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn migration_doc_steps_work_on_the_original_example_data() {
    let doc = doc();
    let original = vectors().join("original-secure-store");
    // The original's ENCRYPTED_TESTVAR for the HEAD example (env_vars.tsv).
    let tsv = fs::read_to_string(original.join("env_vars.tsv")).unwrap();
    let (encrypted, plaintext) = tsv
        .lines()
        .skip(1)
        .map(|l| l.split('\t').collect::<Vec<_>>())
        .find(|f| f[0] == HEAD_KEY)
        .map(|f| (f[1].to_owned(), f[2].to_owned()))
        .expect("the HEAD row of env_vars.tsv");
    let test1 = fs::read_to_string(original.join("source/test1")).unwrap();

    let tmp = tempfile::tempdir().unwrap();
    // The device's app folder, as the original had it.
    let app = tmp.path().join("app");
    fs::create_dir(&app).unwrap();
    fs::copy(
        original.join("keys/encrypt_example.conf"),
        app.join("encrypt.conf"),
    )
    .unwrap();
    fs::create_dir(app.join("storage")).unwrap();
    for e in fs::read_dir(original.join("encrypted_example")).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), app.join("storage").join(e.file_name())).unwrap();
    }
    // The operator's / server's folder.
    let ops = tmp.path().join("ops");
    fs::create_dir(&ops).unwrap();
    let shm = tempfile::Builder::new()
        .prefix("ss-migration-")
        .tempdir_in("/dev/shm")
        .unwrap();
    let rw = Rewrite {
        legacy_port: port(),
        fleet_port: port(),
        decrypted: shm.path().join("decrypted"),
    };
    let expected = format!("TESTVAR={plaintext}\n{test1}");

    // 1. The server: same password, same (kind of) certificate.
    let export = format!("export STORE_PASSWORD='{HEAD_KEY}'");
    assert!(doc.lines().any(|l| l.trim() == export), "{export}");
    let operator = vec![("STORE_PASSWORD".to_owned(), HEAD_KEY.to_owned())];
    output(&mut documented(
        &doc,
        "secure-store fleet init --legacy ./legacy-fleet --server-name localhost --base64 > mtls.env",
        &rw,
        &ops,
        &operator,
    ));
    let legacy = Server::start(documented(
        &doc,
        "secure-store server --legacy --fleet ./legacy-fleet --listen 0.0.0.0:8443",
        &rw,
        &ops,
        &operator,
    ));

    // 2. The device: MTLS_CERT/MTLS_KEY from --base64, the original value,
    // the original files; no STORE_PASSWORD on the device.
    let mut device = env_file(&ops.join("mtls.env"));
    let names: Vec<_> = device.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, ["MTLS_CERT", "MTLS_KEY"]);
    device.push(("ENCRYPTED_TESTVAR".to_owned(), encrypted.clone()));
    let run_line = "secure-store run --legacy --server https://localhost:8443 --store . --materialize /dev/shm/decrypted -- sh -c 'echo \"TESTVAR=$TESTVAR\"; cat /dev/shm/decrypted/test1'";
    let out = output(&mut documented(&doc, run_line, &rw, &app, &device));
    assert_eq!(out, expected);
    assert!(!rw.decrypted.exists(), "the decrypted folder is removed");

    // The FUSE variant (the original's -decrypt -path ./decrypted).
    let fuse = Path::new("/dev/fuse").exists()
        && Command::new("id").arg("-u").output().unwrap().stdout == b"0\n";
    if fuse {
        let start = app.join("start.sh");
        fs::write(
            &start,
            "#!/bin/sh\necho \"TESTVAR=$TESTVAR\"; cat ./decrypted/test1\n",
        )
        .unwrap();
        fs::set_permissions(&start, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let out = output(&mut documented(
            &doc,
            "secure-store run --legacy --server https://localhost:8443 --store . --mount ./decrypted -- ./start.sh",
            &rw,
            &app,
            &device,
        ));
        assert_eq!(out, expected);
        fs::remove_file(&start).unwrap();
    } else {
        assert!(
            std::env::var("SECURE_STORE_REQUIRE_INTEROP").map_or(true, |v| v != "1"),
            "the FUSE step needs /dev/fuse and root"
        );
        eprintln!("SKIPPED (FUSE step only): needs /dev/fuse and root");
    }

    // 3. Upgrade: a fleet, a per-device certificate, a sealed envelope.
    output(&mut documented(
        &doc,
        "secure-store fleet init ./fleet --server-name localhost",
        &rw,
        &ops,
        &operator,
    ));
    // The new server does not need the store key at all.
    let fleet_server = Server::start(documented(
        &doc,
        "secure-store server --fleet ./fleet --listen 0.0.0.0:8444",
        &rw,
        &ops,
        &[],
    ));
    output(&mut documented(
        &doc,
        "secure-store fleet enroll ./fleet device-1 --env > device-1.env",
        &rw,
        &ops,
        &operator,
    ));
    output(&mut documented(
        &doc,
        "secure-store seal --url https://localhost:8444 --fleet ./fleet > envelope.env",
        &rw,
        &ops,
        &operator,
    ));
    let mut device = env_file(&ops.join("device-1.env"));
    let names: Vec<_> = device.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, ["MTLS_CERT", "MTLS_KEY", "MTLS_CA"]);
    device.extend(env_file(&ops.join("envelope.env")));
    assert_eq!(device.last().unwrap().0, "SECURE_STORE_ENVELOPE");
    device.push(("ENCRYPTED_TESTVAR".to_owned(), encrypted));
    // The legacy server is gone: the envelope goes to the new one.
    drop(legacy);
    let out = output(&mut documented(
        &doc,
        "secure-store run --store . --materialize /dev/shm/decrypted -- sh -c 'echo \"TESTVAR=$TESTVAR\"; cat /dev/shm/decrypted/test1'",
        &rw,
        &app,
        &device,
    ));
    assert_eq!(out, expected);
    assert!(!rw.decrypted.exists());
    // The original files were only read.
    let (_, files) = snapshot(&app.join("storage"));
    let (_, orig) = snapshot(&original.join("encrypted_example"));
    assert_eq!(files, orig);
    drop(fleet_server);
}
