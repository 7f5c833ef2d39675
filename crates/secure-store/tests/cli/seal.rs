//! `seal` and `unseal`: round trips through the real server, and interop
//! with stock clevis through the server's plain Tang listener, both ways.

use std::process::{Command, Stdio};

use super::harness::*;
use super::run::{fleet_with_device, seal_offline, Server};

#[test]
fn seal_from_the_server_then_unseal_through_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (fleet, mtls) = fleet_with_device(tmp.path(), "dev-1");
    let server = Server::start(&fleet, &[], &[]);
    // The advertisement fetched over mutual TLS with the admin identity.
    let out = ok(ss([
        "seal",
        "--url",
        &server.url,
        "--server",
        &server.url,
        "--fleet",
    ])
    .arg(&fleet)
    .env("STORE_PASSWORD", KEY));
    let jwe = out
        .trim()
        .strip_prefix("SECURE_STORE_ENVELOPE=")
        .unwrap()
        .to_owned();
    assert_eq!(jwe.split('.').count(), 5);
    // Unsealed with a device identity from the fleet folder…
    ok(ss(["fleet", "enroll"]).arg(&fleet).arg("dev-files"));
    let key = ok(ss(["unseal", "--envelope", &jwe, "--fleet"])
        .arg(&fleet)
        .args(["--device", "dev-files"]));
    assert_eq!(key.trim(), KEY);
    // …or from the base64 env a device has.
    let key = ok(ss(["unseal"])
        .envs(mtls.iter().map(|(k, v)| (k, v)))
        .env("SECURE_STORE_ENVELOPE", &jwe));
    assert_eq!(key.trim(), KEY);
    // An offline seal opens the same way; --out writes the bare JWE, 0600.
    let file = tmp.path().join("store.jwe");
    ok(ss(["seal", "--url", &server.url, "--fleet"])
        .arg(&fleet)
        .arg("--out")
        .arg(&file)
        .env("STORE_PASSWORD", KEY));
    assert_eq!(mode(&file), 0o600);
    let key = ok(ss(["unseal", "--envelope-file"])
        .arg(&file)
        .envs(mtls.iter().map(|(k, v)| (k, v))));
    assert_eq!(key.trim(), KEY);
    let _ = seal_offline(&fleet, &server.url);
}

/// `clevis` and `jose` from Debian, or `None` (fails under SECURE_STORE_REQUIRE_INTEROP=1).
fn clevis() -> bool {
    let found = Command::new("clevis")
        .arg("decrypt")
        .stdin(Stdio::null())
        .output()
        .is_ok()
        && Command::new("jose").arg("--help").output().is_ok();
    let required = std::env::var("SECURE_STORE_REQUIRE_INTEROP").is_ok_and(|v| v == "1");
    assert!(
        found || !required,
        "clevis/jose missing and interop required: apt-get install clevis jose"
    );
    if !found {
        eprintln!("SKIPPED: clevis is not installed");
    }
    found
}

fn clevis_decrypt(jwe: &str) -> std::process::Output {
    run_stdin(Command::new("clevis").arg("decrypt"), jwe.as_bytes())
}

#[test]
fn clevis_interop_through_the_plain_tang_listener() {
    if !clevis() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (fleet, _mtls) = fleet_with_device(tmp.path(), "dev-2");
    let server = Server::start(
        &fleet,
        &[
            "--tang-listen",
            "127.0.0.1:0",
            "--tang-allow",
            "127.0.0.1/32",
        ],
        &[],
    );
    let tang = server.tang.clone().expect("the tang listener's URL");

    // Ours, sealed from the plain listener's advertisement → clevis decrypt.
    let file = tmp.path().join("ours.jwe");
    ok(ss(["seal", "--url", &tang, "--server", &tang, "--out"])
        .arg(&file)
        .env("STORE_PASSWORD", KEY));
    let out = clevis_decrypt(&std::fs::read_to_string(&file).unwrap());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), KEY);

    // clevis encrypt tang → our unseal and our run.
    let out = run_stdin(
        Command::new("clevis").args(["encrypt", "tang", &format!("{{\"url\":\"{tang}\"}}"), "-y"]),
        KEY.as_bytes(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs = String::from_utf8(out.stdout).unwrap();
    let key = ok(&mut ss(["unseal", "--envelope", theirs.trim()]));
    assert_eq!(key.trim(), KEY);
    let secret = ok(ss(["env", "encrypt", "X", "from-clevis"]).env("STORE_PASSWORD", KEY));
    let secret = secret.trim().split_once('=').unwrap().1.to_owned();
    let out = ok(ss(["run", "--", "sh", "-c", "echo $X"])
        .env("SECURE_STORE_ENVELOPE", theirs.trim())
        .env("ENCRYPTED_X", &secret));
    assert_eq!(out, "from-clevis\n");
}
