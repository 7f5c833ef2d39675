//! `secure-store demo`, the README's first command, end to end: the real
//! binary, a real server on loopback, real mutual TLS, the real client. Both
//! ways of showing the decrypted folder are exercised: FUSE (when this
//! machine can mount) and the tmpfs fallback (`--no-mount`).

use super::harness::{run, ss};

fn assert_demo_story(stdout: &str) {
    // The app read the decrypted env value and every decrypted file...
    assert!(
        stdout.contains("[app] API_KEY=sk-demo-4f7c1e09b2a8"),
        "{stdout}"
    );
    assert!(
        stdout.contains("ENCRYPTED_API_KEY is gone from my environment"),
        "{stdout}"
    );
    for name in ["./app.toml", "./certs/device-ca.pem", "./models/readme.txt"] {
        assert!(
            stdout.contains(&format!("[app] --- {name}")),
            "{name}: {stdout}"
        );
    }
    assert!(
        stdout.contains("mqtt_host = \"broker.example\""),
        "{stdout}"
    );
    // ...then the revoked device was refused, and the audit shows it all.
    assert!(stdout.contains("refused: revoked (exit 78)"), "{stdout}");
    let audit: Vec<&str> = stdout
        .lines()
        .filter(|l| l.trim_start().starts_with(|c: char| c.is_ascii_digit()))
        .filter(|l| l.contains("POST /rec") || l.contains("admin revoke"))
        .collect();
    assert_eq!(audit.len(), 3, "{stdout}");
    assert!(
        audit[0].contains("allowed")
            && audit[2].contains("refused")
            && audit[2].contains("revoked")
    );
    assert!(stdout.contains("audit chain ok (3 entries)"), "{stdout}");
}

/// Runs `secure-store demo ARGS`, asserts exit 0 and the story; returns stdout.
fn demo_ok(args: &[&str]) -> String {
    let out = run(ss(["demo"]).args(args));
    assert_eq!(
        out.code,
        Some(0),
        "stdout:\n{}\nstderr:\n{}",
        out.stdout,
        out.stderr
    );
    assert_demo_story(&out.stdout);
    out.stdout
}

#[test]
fn demo_runs_end_to_end_and_cleans_up() {
    let stdout = demo_ok(&[]);
    assert!(
        stdout.contains("FUSE mount") || stdout.contains("materialized on tmpfs"),
        "{}",
        stdout
    );
    // No secret ever reaches the demo's own output except the sample value
    // the app prints on purpose: not the store key, not the crypt password.
    assert!(!stdout.contains("STORE_PASSWORD="), "{stdout}");
    // Its own folder is gone (other tests may run demos at the same time).
    let folder = stdout
        .lines()
        .find_map(|l| l.strip_prefix("Working folder: "))
        .expect("the demo names its folder")
        .trim();
    assert!(
        !std::path::Path::new(folder).exists(),
        "{folder} left behind"
    );
}

#[test]
fn demo_without_fuse_materializes_on_tmpfs() {
    let stdout = demo_ok(&["--no-mount"]);
    assert!(stdout.contains("materialized on tmpfs"), "{stdout}");
}

#[test]
fn demo_keep_leaves_the_folder_with_private_modes() {
    use std::os::unix::fs::PermissionsExt;
    let out = run(&mut ss(["demo", "--no-mount", "--keep"]));
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    let kept = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("The demo folder is kept: "))
        .expect("the kept folder is named")
        .trim()
        .to_owned();
    let dir = std::path::Path::new(&kept);
    let mode = std::fs::metadata(dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    let ca_key = dir.join("fleet/ca/ca.key");
    assert_eq!(
        std::fs::metadata(&ca_key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // The store key file was deleted after sealing: only the envelope is left.
    assert!(!dir.join("store.key").exists());
    std::fs::remove_dir_all(dir).unwrap();
}
