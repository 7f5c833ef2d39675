//! Interop with the real Tang and clevis (Debian 12: tang 11, clevis 19,
//! jose 11, socat), over the same key directories:
//!
//! - our `KeySet::rec` answers byte for byte what `tangd` answers (tangd
//!   fed the HTTP request on stdin), for keys made by `tangd-keygen` and by
//!   `KeySet::generate`, and with the same status for every bad request of
//!   tang-notes §1.2;
//! - tangd serves our key files; rotated (hidden) keys still recover;
//!   `adv(Some(old thp))` carries 2 signatures that `jose jws ver` accepts;
//! - a JWE from `clevis encrypt tang` (against tangd behind socat) opens
//!   with our `unseal`, and our `seal` output opens with `clevis decrypt`.
//!
//! A missing tool fails these tests when SECURE_STORE_REQUIRE_INTEROP=1
//! (or CI=true) and skips them otherwise.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use secure_store::tang::clevis::{seal, unseal, RecRequest};
use secure_store::tang::KeySet;
use serde_json::Value;
use ssformat::jose::clevis::verify_advertisement;
use ssformat::jose::jws::Jws;
use ssformat::jose::{b64, ecmr, PrivateKey, PublicKey, ThpHash};

use super::harness::run_stdin;

const TANGD: &str = "/usr/libexec/tangd";
const KEYGEN: &str = "/usr/libexec/tangd-keygen";
const ROTATE: &str = "/usr/libexec/tangd-rotate-keys";

/// Paths of tangd, jose, clevis and socat, or `None` (skip) when one is
/// missing and interop is not required. Required: a missing tool fails.
fn tools() -> Option<()> {
    let on_path = |name: &str| {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join(name))
                .find(|p| p.is_file())
        })
    };
    let mut missing = Vec::new();
    for path in [TANGD, KEYGEN, ROTATE] {
        if !Path::new(path).is_file() {
            missing.push(path.to_owned());
        }
    }
    for name in ["jose", "clevis", "clevis-encrypt-tang", "socat", "curl"] {
        if on_path(name).is_none() {
            missing.push(name.to_owned());
        }
    }
    if missing.is_empty() {
        return Some(());
    }
    let required = std::env::var("SECURE_STORE_REQUIRE_INTEROP").is_ok_and(|v| v == "1")
        || std::env::var("CI").is_ok_and(|v| v == "true");
    if required {
        panic!(
            "missing {missing:?} and interop tests are required (CI): \
             apt-get install -y tang clevis jose socat curl"
        );
    }
    eprintln!("SKIPPED: {missing:?} not installed (scripts/test installs them)");
    None
}

/// tangd's answer to one HTTP request fed on stdin: (status, body).
fn tangd(dir: &Path, request: &[u8]) -> (u16, Vec<u8>) {
    let mut child = Command::new(TANGD)
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("tangd runs");
    child.stdin.take().unwrap().write_all(request).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = out.stdout;
    let head_end = text
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("tangd answered {:?}", String::from_utf8_lossy(&text)));
    let head = String::from_utf8_lossy(&text[..head_end]).into_owned();
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, text[head_end + 4..].to_vec())
}

fn tangd_rec(dir: &Path, kid: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let mut req = format!(
        "POST /rec/{kid} HTTP/1.1\r\nHost: x\r\nContent-Type: application/jwk+json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    tangd(dir, &req)
}

fn tangd_adv(dir: &Path, thp: Option<&str>) -> (u16, Vec<u8>) {
    let path = thp.map_or("/adv".to_owned(), |t| format!("/adv/{t}"));
    tangd(
        dir,
        format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
    )
}

/// Our status and body for the same request.
fn ours(set: &KeySet, kid: &str, body: &[u8]) -> (u16, Vec<u8>) {
    match set.rec(kid, body) {
        Ok(reply) => (200, reply),
        Err(e) => (e.status(), Vec::new()),
    }
}

fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn key_files(dir: &Path) -> Vec<(PathBuf, Value)> {
    let mut out: Vec<(PathBuf, Value)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "jwk"))
        .map(|p| {
            let v = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
            (p, v)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn public_of(v: &Value) -> PublicKey {
    PublicKey::from_jwk(v).unwrap()
}

/// The advertised exchange key and signing key of a directory.
fn pair(dir: &Path) -> (PublicKey, PublicKey) {
    let files = key_files(dir);
    let find = |alg: &str| {
        files
            .iter()
            .find(|(p, v)| {
                v["alg"] == alg && !p.file_name().unwrap().to_string_lossy().starts_with('.')
            })
            .map(|(_, v)| public_of(v))
            .unwrap()
    };
    (find("ECMR"), find("ES512"))
}

fn client_point(seed: u8) -> PublicKey {
    PrivateKey::from_random(&[seed; 66])
        .unwrap()
        .public()
        .clone()
}

/// Compares our `/rec` with tangd's over `dir`, for several points and
/// every thumbprint hash of the exchange key.
fn assert_rec_matches(dir: &Path) {
    let set = KeySet::load(dir).unwrap();
    let (exchange, _) = pair(dir);
    for (i, hash) in ThpHash::ALL.iter().enumerate() {
        let kid = exchange.thumbprint(*hash);
        let body = ecmr::request_json(&client_point(i as u8 + 1));
        let theirs = tangd_rec(dir, &kid, body.as_bytes());
        assert_eq!(theirs.0, 200, "tangd refused {kid}");
        assert_eq!(
            ours(&set, &kid, body.as_bytes()),
            theirs,
            "kid {kid} ({})",
            hash.name()
        );
        assert_eq!(
            set.exchange_key_id(&kid),
            Some(exchange.thumbprint(ThpHash::S256))
        );
    }
    // A bare point (no alg, no key_ops), as `jose jwk pub` writes it.
    let kid = exchange.thumbprint(ThpHash::S256);
    let body = client_point(9).to_jwk().to_string();
    assert_eq!(
        ours(&set, &kid, body.as_bytes()),
        tangd_rec(dir, &kid, body.as_bytes())
    );
}

#[test]
fn rec_matches_tangd_on_tangd_keys() {
    let Some(()) = tools() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    std::fs::create_dir(&dir).unwrap();
    run(Command::new(KEYGEN).arg(&dir));
    assert_rec_matches(&dir);
}

#[test]
fn rec_matches_tangd_on_our_keys_and_tangd_serves_them() {
    let Some(()) = tools() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    KeySet::generate(&dir).unwrap();
    assert_rec_matches(&dir);
    // tangd advertises our keys; the advertisement checks out with our
    // verifier and with `jose jws ver`.
    let (status, adv) = tangd_adv(&dir, None);
    assert_eq!(status, 200);
    let (exchange, signing) = pair(&dir);
    let checked = verify_advertisement(&adv, Some(&signing.thumbprint(ThpHash::S256))).unwrap();
    assert_eq!(checked.exchange_key, exchange);
    // Our advertisement: `jose jws ver` with the signing key.
    let set = KeySet::load(&dir).unwrap();
    let ours = set.adv(None).unwrap();
    let key = signing.to_jwk_string(Some("ES512"), &["verify"]);
    let out = run_stdin(
        Command::new("jose")
            .args(["jws", "ver", "-i", "-", "-k"])
            .arg(write_tmp(tmp.path(), "sig.jwk", key.as_bytes())),
        &ours,
    );
    assert!(
        out.status.success(),
        "jose jws ver: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Both payloads carry the same keys.
    let theirs: Value = serde_json::from_slice(&Jws::parse(&adv).unwrap().payload()).unwrap();
    let mine: Value = serde_json::from_slice(&Jws::parse(&ours).unwrap().payload()).unwrap();
    let sorted = |v: &Value| {
        let mut keys: Vec<String> = v["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.to_string())
            .collect();
        keys.sort();
        keys
    };
    assert_eq!(sorted(&theirs), sorted(&mine));
}

fn write_tmp(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn error_statuses_match_tangd() {
    let Some(()) = tools() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    std::fs::create_dir(&dir).unwrap();
    run(Command::new(KEYGEN).arg(&dir));
    let set = KeySet::load(&dir).unwrap();
    let (exchange, signing) = pair(&dir);
    let kid = exchange.thumbprint(ThpHash::S256);
    let point = client_point(3);
    let base = point.to_jwk();
    let with = |k: &str, v: Value| {
        let mut j = base.clone();
        j[k] = v;
        j.to_string()
    };
    let p256 = r#"{"kty":"EC","crv":"P-256","x":"gI0GAILBdu7T53akrFmMyGcsF3n5dO7MmwNBHKW5SV0","y":"SLW_xSffzlPWrHEVI30DHM_4egVwt3NQqeUD7nMFpps"}"#;
    let mut off = point.y();
    off[65] ^= 1;
    let own_d: Value = serde_json::from_str(
        &PrivateKey::from_random(&[3; 66])
            .unwrap()
            .to_jwk_string("ECMR", &[]),
    )
    .unwrap();
    let other_d: Value = serde_json::from_str(
        &PrivateKey::from_random(&[4; 66])
            .unwrap()
            .to_jwk_string("ECMR", &[]),
    )
    .unwrap();
    let x = point.x();
    // A point whose x has a leading zero byte, sent with 65 bytes.
    let short_point = (1..=255).map(client_point).find(|p| p.x()[0] == 0).unwrap();
    let short_x = {
        let mut j = short_point.to_jwk();
        j["x"] = b64::encode(&short_point.x()[1..]).into();
        j.to_string()
    };
    let mut long_x = vec![0u8];
    long_x.extend_from_slice(&x);
    let nested = |levels: usize| {
        let s = base.to_string();
        format!(
            "{},\"n\":{}{}}}",
            &s[..s.len() - 1],
            "[".repeat(levels - 1),
            "]".repeat(levels - 1)
        )
    };
    let cases: Vec<(&str, String, String)> = vec![
        ("valid", kid.clone(), base.to_string()),
        (
            "alg ECMR + key_ops",
            kid.clone(),
            ecmr::request_json(&point),
        ),
        ("not JSON", kid.clone(), "not json".into()),
        ("empty body", kid.clone(), String::new()),
        ("JSON string", kid.clone(), "\"x\"".into()),
        ("JSON array", kid.clone(), "[]".into()),
        ("empty object", kid.clone(), "{}".into()),
        ("kty RSA", kid.clone(), with("kty", "RSA".into())),
        ("kty missing", kid.clone(), {
            let mut j = base.clone();
            j.as_object_mut().unwrap().remove("kty");
            j.to_string()
        }),
        ("alg ES512", kid.clone(), with("alg", "ES512".into())),
        ("alg number", kid.clone(), with("alg", 5.into())),
        (
            "key_ops sign",
            kid.clone(),
            with("key_ops", serde_json::json!(["sign"])),
        ),
        (
            "key_ops string",
            kid.clone(),
            with("key_ops", "deriveKey".into()),
        ),
        ("use enc", kid.clone(), with("use", "enc".into())),
        (
            "point off curve",
            kid.clone(),
            with("y", b64::encode(&off).into()),
        ),
        ("zero point", kid.clone(), {
            let mut j = base.clone();
            j["x"] = b64::encode(&[0; 66]).into();
            j["y"] = b64::encode(&[0; 66]).into();
            j.to_string()
        }),
        ("P-256 point", kid.clone(), p256.into()),
        ("crv P-384 label", kid.clone(), with("crv", "P-384".into())),
        ("crv unknown", kid.clone(), with("crv", "P-999".into())),
        ("x not base64url", kid.clone(), with("x", "!!".into())),
        ("x missing", kid.clone(), {
            let mut j = base.clone();
            j.as_object_mut().unwrap().remove("x");
            j.to_string()
        }),
        ("65-byte x (leading zero dropped)", kid.clone(), short_x),
        (
            "67-byte x",
            kid.clone(),
            with("x", b64::encode(&long_x).into()),
        ),
        ("matching d", kid.clone(), with("d", own_d["d"].clone())),
        ("other d", kid.clone(), with("d", other_d["d"].clone())),
        (
            "kid of the signing key",
            signing.thumbprint(ThpHash::S256),
            base.to_string(),
        ),
        (
            "unknown kid",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into(),
            base.to_string(),
        ),
        ("unknown kid, bad body", "AAAA".into(), "not json".into()),
        (
            "unknown kid, key_ops sign",
            "AAAA".into(),
            with("key_ops", serde_json::json!(["sign"])),
        ),
        ("nested 2048 levels", kid.clone(), nested(2048)),
        ("nested 2049 levels", kid.clone(), nested(2049)),
        (
            "duplicate kty, EC last",
            kid.clone(),
            format!(r#"{{"kty":"RSA",{}"#, &base.to_string()[1..]),
        ),
        (
            "integer beyond 64 bits",
            kid.clone(),
            with("n", serde_json::from_str("99999999999999999999").unwrap()),
        ),
        (
            "trailing NUL and garbage",
            kid.clone(),
            format!("{base}\0garbage"),
        ),
        ("S1 kid", exchange.thumbprint(ThpHash::S1), base.to_string()),
        (
            "S512 kid",
            exchange.thumbprint(ThpHash::S512),
            base.to_string(),
        ),
    ];
    for (what, kid, body) in &cases {
        let theirs = tangd_rec(&dir, kid, body.as_bytes());
        let mine = ours(&set, kid, body.as_bytes());
        eprintln!("{what:<28} tangd {} ours {}", theirs.0, mine.0);
        assert_eq!(
            mine.0, theirs.0,
            "{what}: our status {} vs tangd {}",
            mine.0, theirs.0
        );
        if theirs.0 == 200 {
            assert_eq!(mine.1, theirs.1, "{what}: reply bytes differ");
        }
    }
    // /adv/{thp}: unknown → 404, an exchange key → 404, the signing key → 200.
    for (thp, want) in [
        ("AAAA".to_owned(), 404),
        (kid.clone(), 404),
        (signing.thumbprint(ThpHash::S256), 200),
        (signing.thumbprint(ThpHash::S384), 200),
    ] {
        let theirs = tangd_adv(&dir, Some(&thp)).0;
        assert_eq!(theirs, want, "tangd /adv/{thp}");
        assert_eq!(
            set.adv(Some(&thp))
                .map(|_| 200)
                .unwrap_or_else(|e| e.status()),
            want,
            "/adv/{thp}"
        );
    }
}

#[test]
fn rotation_hidden_keys_recover_and_adv_gets_two_signatures() {
    let Some(()) = tools() else { return };
    let tmp = tempfile::tempdir().unwrap();
    for (label, by_tangd) in [("ours", false), ("tangd", true)] {
        let dir = tmp.path().join(label);
        std::fs::create_dir(&dir).unwrap();
        run(Command::new(KEYGEN).arg(&dir));
        let (old_exchange, old_signing) = pair(&dir);
        if by_tangd {
            run(Command::new(ROTATE).arg("-d").arg(&dir));
        } else {
            KeySet::rotate(&dir).unwrap();
        }
        let files = key_files(&dir);
        assert_eq!(files.len(), 4, "{label}");
        let hidden: Vec<String> = files
            .iter()
            .map(|(p, _)| p.file_name().unwrap().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.'))
            .collect();
        assert_eq!(hidden.len(), 2, "{label}: {hidden:?}");
        assert!(hidden.contains(&format!(".{}.jwk", old_exchange.thumbprint(ThpHash::S256))));
        let set = KeySet::load(&dir).unwrap();
        // Hidden exchange key still recovers, byte for byte with tangd.
        let old_kid = old_exchange.thumbprint(ThpHash::S256);
        let body = ecmr::request_json(&client_point(5));
        let theirs = tangd_rec(&dir, &old_kid, body.as_bytes());
        assert_eq!(theirs.0, 200);
        assert_eq!(ours(&set, &old_kid, body.as_bytes()), theirs, "{label}");
        assert_rec_matches(&dir);
        // /adv lists only the new keys; /adv/{old sig} has 2 signatures.
        let plain = set.adv(None).unwrap();
        assert!(
            verify_advertisement(&plain, Some(&old_signing.thumbprint(ThpHash::S256))).is_err()
        );
        let old_thp = old_signing.thumbprint(ThpHash::S256);
        let two = set.adv(Some(&old_thp)).unwrap();
        let jws = Jws::parse(&two).unwrap();
        assert_eq!(jws.signatures().len(), 2, "{label}");
        assert!(jws.verified_by(&old_signing));
        let (_, new_signing) = pair(&dir);
        assert!(jws.verified_by(&new_signing));
        let tangd_two = tangd_adv(&dir, Some(&old_thp));
        assert_eq!(tangd_two.0, 200);
        assert_eq!(Jws::parse(&tangd_two.1).unwrap().signatures().len(), 2);
        // `jose jws ver -a`: every given key must have signed.
        let keys = format!(
            r#"{{"keys":[{},{}]}}"#,
            old_signing.to_jwk_string(Some("ES512"), &["verify"]),
            new_signing.to_jwk_string(Some("ES512"), &["verify"])
        );
        let keys = write_tmp(tmp.path(), &format!("{label}-keys.jwk"), keys.as_bytes());
        for adv in [&two, &tangd_two.1] {
            let out = run_stdin(
                Command::new("jose")
                    .args(["jws", "ver", "-i", "-", "-a", "-k"])
                    .arg(&keys),
                adv,
            );
            assert!(
                out.status.success(),
                "{label}: jose jws ver -a: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        // Deleting the hidden keys ends recovery for the old kid: 404 both.
        for name in &hidden {
            std::fs::remove_file(dir.join(name)).unwrap();
        }
        let set = KeySet::load(&dir).unwrap();
        assert_eq!(tangd_rec(&dir, &old_kid, body.as_bytes()).0, 404);
        assert_eq!(ours(&set, &old_kid, body.as_bytes()).0, 404);
    }
}

/// tangd behind socat on a free 127.0.0.1 port; killed on drop.
struct TangServer {
    child: Child,
    url: String,
}

impl TangServer {
    fn start(dir: &Path) -> TangServer {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("socat")
            .arg(format!("TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork"))
            .arg(format!("EXEC:{} {}", TANGD, dir.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("socat runs");
        let server = TangServer {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        // Wait until it listens (a bounded number of tries, no timing assertion).
        for _ in 0..200 {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return server;
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        panic!("socat did not start listening on {port}");
    }
}

impl Drop for TangServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn clevis_jwe_opens_with_our_unseal() {
    let Some(()) = tools() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    KeySet::generate(&dir).unwrap();
    let server = TangServer::start(&dir);
    let set = KeySet::load(&dir).unwrap();
    let thp = set.signing_key_ids()[0].clone();
    let config = format!(r#"{{"url":"{}","thp":"{thp}"}}"#, server.url);
    let secret = b"store key made by clevis \xe2\x9c\x93";
    let out = run_stdin(
        Command::new("clevis").args(["encrypt", "tang", &config]),
        secret,
    );
    assert!(
        out.status.success(),
        "clevis encrypt: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let jwe = String::from_utf8(out.stdout).unwrap();
    let mut seen = Vec::new();
    let plain = unseal(&jwe, &mut |r: &RecRequest| {
        seen.push(r.clone());
        set.rec(&r.kid, &r.body)
    })
    .unwrap();
    assert_eq!(&plain[..], secret);
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].url, server.url);
    // And clevis itself still opens it through tangd (sanity of the setup).
    let out = run_stdin(Command::new("clevis").arg("decrypt"), jwe.as_bytes());
    assert!(
        out.status.success(),
        "clevis decrypt: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, secret);
    // The same request sent to tangd over HTTP gives the same reply.
    let reply = run_stdin(
        Command::new("curl")
            .args([
                "-sf",
                "-X",
                "POST",
                "-H",
                "Content-Type: application/jwk+json",
                "--data-binary",
                "@-",
            ])
            .arg(format!("{}/rec/{}", server.url, seen[0].kid)),
        &seen[0].body,
    );
    assert!(reply.status.success());
    assert_eq!(reply.stdout, set.rec(&seen[0].kid, &seen[0].body).unwrap());
    drop(server);
}

#[test]
fn our_seal_opens_with_clevis_decrypt() {
    let Some(()) = tools() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    std::fs::create_dir(&dir).unwrap();
    run(Command::new(KEYGEN).arg(&dir));
    let server = TangServer::start(&dir);
    let set = KeySet::load(&dir).unwrap();
    // From our advertisement and from tangd's (fetched over HTTP).
    let tangd_adv = run(Command::new("curl")
        .arg("-sf")
        .arg(format!("{}/adv", server.url)));
    let (_, signing) = pair(&dir);
    for (label, adv) in [("ours", set.adv(None).unwrap()), ("tangd", tangd_adv)] {
        for thp in [
            None,
            Some(signing.thumbprint(ThpHash::S256)),
            Some(signing.thumbprint(ThpHash::S1)),
        ] {
            let secret = format!("sealed by secure-store from {label}'s advertisement");
            let jwe = seal(&adv, &server.url, thp.as_deref(), secret.as_bytes()).unwrap();
            let out = run_stdin(Command::new("clevis").arg("decrypt"), jwe.as_bytes());
            assert!(
                out.status.success(),
                "clevis decrypt ({label}): {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(out.stdout, secret.as_bytes());
        }
    }
    // Empty plaintext too.
    let jwe = seal(&set.adv(None).unwrap(), &server.url, None, b"").unwrap();
    let out = run_stdin(Command::new("clevis").arg("decrypt"), jwe.as_bytes());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty());
    drop(server);
}
