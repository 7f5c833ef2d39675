//! The Store Server, end to end: the real binary on 127.0.0.1:0, a real
//! fleet from `fleet init`/`fleet enroll`, clients from our library, the
//! admin CLI and the system `curl`. Refusals are checked by status, reason
//! code and audit entry; hostile clients by the server staying up.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use secure_store::client::http::{self, HttpErrorKind, Response, Timeouts};
use secure_store::pki::layout::FleetDir;

use super::harness::*;

const PASSWORD: &str = "legacy-store-key-0123456789";

/// A running server; killed when dropped.
pub(super) struct Server {
    pub(super) child: Child,
    pub(super) addr: SocketAddr,
    pub(super) tang: Option<SocketAddr>,
    pub(super) stderr: Option<std::thread::JoinHandle<String>>,
}

impl Server {
    /// Starts `secure-store server --fleet FLEET --listen 127.0.0.1:0 ARGS`
    /// and waits for its "listening" line.
    pub(super) fn start(fleet: &Path, args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut cmd = ss(["server", "--listen", "127.0.0.1:0", "--fleet"]);
        cmd.arg(fleet).args(args);
        if std::env::var("SECURE_STORE_TEST_BACKEND").is_ok_and(|b| b == "postgres") {
            if let Some(url) = secure_store::state::pg_cluster::fresh_database() {
                cmd.env("SECURE_STORE_DATABASE_URL", url);
            }
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        Server::spawn(cmd)
    }

    /// Spawns a `secure-store server` command line and waits for its
    /// "listening" line.
    pub(super) fn spawn(mut cmd: Command) -> Server {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("the server starts");
        let mut err = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        if line.is_empty() {
            let _ = child.wait();
            panic!("the server did not start: {}", stderr.join().unwrap());
        }
        // "secure-store server listening on https://ADDR[ tang http://ADDR]"
        let rest = line
            .trim()
            .strip_prefix("secure-store server listening on https://")
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"));
        let mut parts = rest.split(" tang http://");
        let addr = parts.next().unwrap().parse().unwrap();
        let tang = parts.next().map(|t| t.parse().unwrap());
        Server {
            child,
            addr,
            tang,
            stderr: Some(stderr),
        }
    }

    pub(super) fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.addr.port())
    }

    /// SIGTERM, then the exit code and stderr.
    /// The bound TLS port.
    pub(super) fn port(&self) -> String {
        self.addr.port().to_string()
    }

    pub(super) fn terminate(mut self) -> (Option<i32>, String) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let code = self.child.wait().unwrap().code();
        let stderr = self.stderr.take().unwrap().join().unwrap();
        (code, stderr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(super) fn init_fleet(dir: &Path) -> FleetDir {
    ok(ss([
        "fleet",
        "init",
        "--server-name",
        "localhost",
        "--server-ip",
        "127.0.0.1",
    ])
    .arg(dir));
    FleetDir::new(dir)
}

pub(super) fn enroll(fleet: &FleetDir, id: &str, groups: &[&str]) {
    let mut cmd = ss(["fleet", "enroll"]);
    cmd.arg(fleet.root()).arg(id);
    for g in groups {
        cmd.args(["--group", g]);
    }
    ok(&mut cmd);
}

pub(super) fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// A client configuration: trust `ca`, present `cert`/`key`.
pub(super) fn tls(ca: &Path, cert: &Path, key: &Path) -> Arc<rustls::ClientConfig> {
    secure_store::pki::tls::client_config(&read(ca), &read(cert), &read(key)).unwrap()
}

/// A client configuration with device `id`'s enrolled certificate.
pub(super) fn device_tls(fleet: &FleetDir, id: &str) -> Arc<rustls::ClientConfig> {
    let d = fleet.device(id);
    tls(&d.ca_cert(), &d.cert(), &d.key())
}

/// A client configuration with the fleet's admin certificate.
pub(super) fn admin_tls(fleet: &FleetDir) -> Arc<rustls::ClientConfig> {
    let d = fleet.admin();
    tls(&d.ca_cert(), &d.cert(), &d.key())
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// One HTTPS request with `tls` (10 s timeouts); a JSON body if any.
pub(super) fn call(
    url: &str,
    method: &str,
    body: Option<&[u8]>,
    tls: Arc<rustls::ClientConfig>,
) -> Result<Response, http::HttpError> {
    rt().block_on(http::request(
        url,
        method,
        body.map(|b| ("application/json", b)),
        Some(tls),
        &Timeouts::all(Duration::from_secs(10)),
    ))
}

/// `GET path` on `server`, presenting `tls`; the answer, whatever its status.
pub(super) fn get(server: &Server, path: &str, tls: Arc<rustls::ClientConfig>) -> Response {
    call(&server.url(path), "GET", None, tls).unwrap()
}

/// Asserts a JSON refusal with `status` and `code`.
pub(super) fn refused(r: &Response, status: u16, code: &str) {
    let text = String::from_utf8_lossy(&r.body);
    assert_eq!(r.status, status, "{text}");
    let body: serde_json::Value =
        serde_json::from_slice(&r.body).unwrap_or_else(|_| panic!("not JSON: {text}"));
    assert_eq!(body["error"], code, "{text}");
}

/// `secure-store admin --server URL --fleet FLEET ARGS`.
pub(super) fn admin(fleet: &FleetDir, server: &Server, args: &[&str]) -> Command {
    let mut cmd = ss(["admin", "--server", &server.url(""), "--fleet"]);
    cmd.arg(fleet.root()).args(args);
    cmd
}

/// A certificate signed by the fleet CA with rcgen: `(cert PEM, key PEM)`.
pub(super) fn ca_signed(
    fleet: &FleetDir,
    edit: impl FnOnce(&mut rcgen::CertificateParams),
) -> (String, String) {
    use rcgen::{CertificateParams, KeyPair};
    let ca_pem = String::from_utf8(read(&fleet.ca_cert())).unwrap();
    let ca_key = KeyPair::from_pem(&String::from_utf8(read(&fleet.ca_key())).unwrap()).unwrap();
    let ca = CertificateParams::from_ca_cert_pem(&ca_pem)
        .unwrap()
        .self_signed(&ca_key)
        .unwrap();
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::new()).unwrap();
    edit(&mut p);
    let cert = p.signed_by(&key, &ca, &ca_key).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// A device certificate from the fleet CA that expired in 2021 (rcgen).
fn expired_device(fleet: &FleetDir, out: &Path) -> Arc<rustls::ClientConfig> {
    let (cert, key) = ca_signed(fleet, |p| {
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "old-device");
        p.subject_alt_names.push(rcgen::SanType::URI(
            "urn:secure-store:device:old-device".try_into().unwrap(),
        ));
        p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        p.not_before = rcgen::date_time_ymd(2020, 1, 1);
        p.not_after = rcgen::date_time_ymd(2021, 1, 1);
    });
    std::fs::create_dir_all(out).unwrap();
    write(&out.join("client.crt"), cert.as_bytes());
    write(&out.join("client.key"), key.as_bytes());
    tls(
        &fleet.ca_cert(),
        &out.join("client.crt"),
        &out.join("client.key"),
    )
}

#[test]
fn devices_unlock_refusals_are_audited_and_the_chain_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    let fleet = init_fleet(&tmp.path().join("fleet"));
    for (id, groups) in [
        ("dev-ok", &["cameras"][..]),
        ("dev-revoke", &[][..]),
        ("dev-disable", &[][..]),
        ("dev-far", &["remote"][..]),
        ("dev-busy", &[][..]),
    ] {
        enroll(&fleet, id, groups);
    }
    let other = init_fleet(&tmp.path().join("other"));
    enroll(&other, "stranger", &[]);
    let server = Server::start(
        fleet.root(),
        &["--rate-per-device", "0.001", "--rate-burst-device", "3"],
        &[("STORE_PASSWORD", PASSWORD)],
    );

    // An enrolled device gets the key, as the original server answered it.
    let r = get(&server, "/key", device_tls(&fleet, "dev-ok"));
    assert_eq!(r.status, 201);
    assert_eq!(r.content_type.as_deref(), Some("application/json"));
    assert_eq!(
        String::from_utf8(r.body).unwrap(),
        format!("{{\"password\":\"{PASSWORD}\"}}\n")
    );

    // Unknown CA and expired certificates: refused in the TLS handshake.
    let stranger = {
        let d = other.device("stranger");
        tls(&fleet.ca_cert(), &d.cert(), &d.key())
    };
    let e = call(&server.url("/key"), "GET", None, stranger).unwrap_err();
    assert_eq!(e.kind(), HttpErrorKind::TlsRejected, "{e}");
    let e = call(
        &server.url("/key"),
        "GET",
        None,
        expired_device(&fleet, &tmp.path().join("old")),
    )
    .unwrap_err();
    assert_eq!(e.kind(), HttpErrorKind::TlsRejected, "{e}");

    // Revoking mid-run refuses the very next request.
    assert_eq!(
        get(&server, "/key", device_tls(&fleet, "dev-revoke")).status,
        201
    );
    let out = ok(&mut admin(&fleet, &server, &["revoke", "dev-revoke"]));
    assert!(out.contains("revoked"), "{out}");
    refused(
        &get(&server, "/key", device_tls(&fleet, "dev-revoke")),
        403,
        "revoked",
    );

    // Disabled, then enabled again.
    ok(&mut admin(&fleet, &server, &["disable", "dev-disable"]));
    refused(
        &get(&server, "/key", device_tls(&fleet, "dev-disable")),
        403,
        "disabled",
    );
    ok(&mut admin(&fleet, &server, &["enable", "dev-disable"]));
    assert_eq!(
        get(&server, "/key", device_tls(&fleet, "dev-disable")).status,
        201
    );

    // Wrong CIDR: group "remote" may only come from 10.0.0.0/8.
    ok(&mut admin(
        &fleet,
        &server,
        &["rules", "add", "allow", "10.0.0.0/8", "--group", "remote"],
    ));
    refused(
        &get(&server, "/key", device_tls(&fleet, "dev-far")),
        403,
        "address_not_allowed",
    );
    let rules = ok(&mut admin(&fleet, &server, &["rules", "list"]));
    assert!(
        rules.contains("10.0.0.0/8") && rules.contains("remote"),
        "{rules}"
    );

    // Store grants: `legacy` only for group "cameras".
    ok(&mut admin(
        &fleet,
        &server,
        &["rules", "add", "store", "legacy", "--group", "cameras"],
    ));
    refused(
        &get(&server, "/key", device_tls(&fleet, "dev-disable")),
        403,
        "store_not_allowed",
    );
    assert_eq!(
        get(&server, "/key", device_tls(&fleet, "dev-ok")).status,
        201
    );
    let list: Vec<serde_json::Value> = serde_json::from_str(&ok(&mut admin(
        &fleet,
        &server,
        &["--json", "rules", "list"],
    )))
    .unwrap();
    for rule in &list {
        ok(&mut admin(
            &fleet,
            &server,
            &["rules", "rm", &rule["id"].to_string()],
        ));
    }

    // Rate limit: a burst of 3, then 429.
    for _ in 0..3 {
        assert_eq!(
            get(&server, "/key", device_tls(&fleet, "dev-busy")).status,
            201
        );
    }
    refused(
        &get(&server, "/key", device_tls(&fleet, "dev-busy")),
        429,
        "rate_limited",
    );

    // The admin API and metrics refuse a device certificate.
    refused(
        &get(&server, "/admin/devices", device_tls(&fleet, "dev-ok")),
        403,
        "not_admin",
    );
    refused(
        &get(&server, "/metrics", device_tls(&fleet, "dev-ok")),
        403,
        "not_admin",
    );
    let d = fleet.device("dev-ok");
    let mut as_device = ss(["admin", "--server", &server.url(""), "--fleet"]);
    as_device
        .arg(fleet.root())
        .arg("--cert")
        .arg(d.cert())
        .arg("--key")
        .arg(d.key())
        .arg("devices");
    fails(&mut as_device, "not_admin");

    // The admin sees the devices and the audit.
    let devices = ok(&mut admin(&fleet, &server, &["devices"]));
    assert!(
        devices.contains("dev-ok") && devices.contains("dev-revoke"),
        "{devices}"
    );
    let audit: Vec<serde_json::Value> =
        serde_json::from_str(&ok(&mut admin(&fleet, &server, &["audit", "--json"]))).unwrap();
    let has = |reason: &str, device: Option<&str>| {
        audit.iter().any(|e| {
            e["reason"] == reason
                && device.is_none_or(|d| e["device"] == d)
                && e["address"] == "127.0.0.1"
        })
    };
    assert!(has("ok", Some("dev-ok")));
    assert!(has("tls_unknown_ca", None));
    assert!(has("tls_expired", None));
    assert!(has("revoked", Some("dev-revoke")));
    assert!(has("disabled", Some("dev-disable")));
    assert!(has("address_not_allowed", Some("dev-far")));
    assert!(has("store_not_allowed", Some("dev-disable")));
    assert!(has("rate_limited", Some("dev-busy")));
    assert!(has("not_admin", Some("dev-ok")));
    let only = ok(&mut admin(
        &fleet,
        &server,
        &["audit", "--device", "dev-busy", "--since", "1h"],
    ));
    assert!(
        only.contains("rate_limited") && !only.contains("dev-ok"),
        "{only}"
    );
    let verify = ok(&mut admin(&fleet, &server, &["audit", "--verify"]));
    assert!(verify.contains("audit chain ok"), "{verify}");

    // Metrics for the admin.
    let m = get(&server, "/metrics", admin_tls(&fleet));
    assert_eq!(m.status, 200);
    let text = String::from_utf8(m.body).unwrap();
    assert!(text.contains("secure_store_requests_total{endpoint=\"/key\",outcome=\"refused\",reason=\"revoked\"} 1"), "{text}");
    assert!(
        text.contains("secure_store_handshake_failures_total{kind=\"unknown_ca\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("secure_store_handshake_failures_total{kind=\"expired\"} 1"),
        "{text}"
    );

    let (code, stderr) = server.terminate();
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        !stderr.contains(PASSWORD),
        "the key leaked into the log: {stderr}"
    );
}

#[test]
fn curl_gets_the_key_and_legacy_off_is_404() {
    let Some(curl) = tool("curl") else { return };
    let tmp = tempfile::tempdir().unwrap();
    let fleet = init_fleet(&tmp.path().join("fleet"));
    enroll(&fleet, "dev1", &[]);
    let d = fleet.device("dev1");
    let curl_get = |server: &Server, path: &str| {
        let out = Command::new(&curl)
            .args(["-sS", "-w", "\n%{http_code} %{content_type}"])
            .arg("--cacert")
            .arg(d.ca_cert())
            .arg("--cert")
            .arg(d.cert())
            .arg("--key")
            .arg(d.key())
            .arg(server.url(path))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "curl: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let server = Server::start(fleet.root(), &[], &[("RCLONE_CONFIG_PASS", PASSWORD)]);
    let out = curl_get(&server, "/key");
    assert_eq!(
        out,
        format!("{{\"password\":\"{PASSWORD}\"}}\n\n201 application/json")
    );
    // A request head over 16 KiB: 431 from hyper, the server stays up.
    let big = Command::new(&curl)
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "-H"])
        .arg(format!("X-Big: {}", "a".repeat(20_000)))
        .arg("--cacert")
        .arg(d.ca_cert())
        .arg("--cert")
        .arg(d.cert())
        .arg("--key")
        .arg(d.key())
        .arg(server.url("/key"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&big.stdout), "431");
    let out = curl_get(&server, "/adv");
    assert!(out.ends_with("200 application/jose+json"), "{out}");
    let adv: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert!(
        adv["payload"].is_string()
            && (adv["signature"].is_string() || adv["signatures"].is_array()),
        "{out}"
    );
    drop(server);

    // Without STORE_PASSWORD the legacy endpoint is off.
    let server = Server::start(fleet.root(), &[], &[]);
    let out = curl_get(&server, "/key");
    assert!(
        out.contains("\"error\":\"legacy_disabled\"") && out.ends_with("404 application/json"),
        "{out}"
    );
}

#[test]
fn legacy_fleet_serves_the_original_client_request() {
    let Some(curl) = tool("curl") else { return };
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("legacy");
    ok(ss(["fleet", "init", "--legacy"]).arg(&root));
    let fleet = FleetDir::new(&root);
    let server = Server::start(&root, &["--legacy"], &[("STORE_PASSWORD", PASSWORD)]);
    // What the original Go client sends: GET /key over TLS with the shared
    // certificate on both ends, host name "localhost", Go's default headers.
    let out = Command::new(&curl)
        .args([
            "-sS",
            "-w",
            "\n%{http_code}",
            "-H",
            "User-Agent: Go-http-client/1.1",
            "-H",
            "Accept-Encoding: gzip",
        ])
        .arg("--cacert")
        .arg(fleet.legacy_cert())
        .arg("--cert")
        .arg(fleet.legacy_cert())
        .arg("--key")
        .arg(fleet.legacy_key())
        .args([
            "--resolve",
            &format!("localhost:{}:127.0.0.1", server.addr.port()),
        ])
        .arg(format!("https://localhost:{}/key", server.addr.port()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("{{\"password\":\"{PASSWORD}\"}}\n\n201")
    );
}

/// Reads until EOF or error; true when the server closed the connection.
fn closed_by_server(s: &mut TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut buf = [0u8; 512];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return false
            }
            Err(_) => return true,
        }
    }
}

#[test]
fn hostile_clients_do_not_take_the_server_down() {
    let tmp = tempfile::tempdir().unwrap();
    let fleet = init_fleet(&tmp.path().join("fleet"));
    enroll(&fleet, "dev1", &[]);
    let server = Server::start(
        fleet.root(),
        &[
            "--handshake-timeout",
            "1s",
            "--header-timeout",
            "1s",
            "--body-timeout",
            "1s",
            "--max-body-bytes",
            "16384",
            "--rate-per-device",
            "0",
            "--rate-per-address",
            "0",
        ],
        &[("STORE_PASSWORD", PASSWORD)],
    );
    let unlock = || get(&server, "/key", device_tls(&fleet, "dev1")).status;

    // Garbage bytes, then a plain-HTTP client on the TLS port.
    let mut g = TcpStream::connect(server.addr).unwrap();
    g.write_all(&noise(4096, 7)).unwrap();
    assert!(closed_by_server(&mut g));
    let mut h = TcpStream::connect(server.addr).unwrap();
    h.write_all(b"GET /key HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    h.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    h.read_to_string(&mut answer).unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "{answer:?}"
    );
    assert!(
        answer.ends_with("needs a client certificate\n"),
        "{answer:?}"
    );
    assert_eq!(unlock(), 201);

    // An oversized body: 413 too_large.
    let big = vec![b'{'; 20_000];
    let r = call(
        &server.url("/rec/abc"),
        "POST",
        Some(&big),
        device_tls(&fleet, "dev1"),
    )
    .unwrap();
    refused(&r, 413, "too_large");

    // Slow loris inside TLS: a header byte every 300 ms is cut off by the
    // 1 s header timeout long before the 60 bytes are sent.
    {
        let rt = rt();
        let cut_off = rt.block_on(async {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
            let connector = tokio_rustls::TlsConnector::from(device_tls(&fleet, "dev1"));
            let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
            let mut tls = connector.connect(name, tcp).await.unwrap();
            let head =
                b"GET /key HTTP/1.1\r\nHost: localhost\r\nX-Slow: aaaaaaaaaaaaaaaaaaa\r\n\r\n";
            for b in head.iter() {
                if tls.write_all(&[*b]).await.is_err() || tls.flush().await.is_err() {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
                let mut probe = [0u8; 256];
                if let Ok(r) =
                    tokio::time::timeout(Duration::from_millis(1), tls.read(&mut probe)).await
                {
                    match r {
                        Ok(0) | Err(_) => return true,
                        Ok(_) => return false, // an answer: not cut off
                    }
                }
            }
            false
        });
        assert!(cut_off, "a slow-loris client was not cut off");
    }
    assert_eq!(unlock(), 201);

    // 1,000 connections that never send a byte: a device still unlocks,
    // and the handshake timeout frees them all.
    let mut idle: Vec<TcpStream> = (0..1000)
        .map(|_| TcpStream::connect(server.addr).unwrap())
        .collect();
    assert_eq!(unlock(), 201);
    for s in idle.iter_mut().take(10) {
        assert!(closed_by_server(s));
    }
    drop(idle);
    assert_eq!(unlock(), 201);

    let m = get(&server, "/metrics", admin_tls(&fleet));
    let text = String::from_utf8(m.body).unwrap();
    assert!(
        text.contains("secure_store_handshake_failures_total{kind=\"timeout\"}"),
        "{text}"
    );
    assert!(
        text.contains("secure_store_handshake_failures_total{kind=\"not_tls\"}"),
        "{text}"
    );

    let (code, stderr) = server.terminate();
    assert_eq!(code, Some(0), "SIGTERM must exit 0: {stderr}");
}

#[test]
fn plain_tang_listener_is_deny_all_by_default() {
    let tmp = tempfile::tempdir().unwrap();
    let fleet = init_fleet(&tmp.path().join("fleet"));
    let server = Server::start(fleet.root(), &["--tang-listen", "127.0.0.1:0"], &[]);
    let tang = server
        .tang
        .expect("the listening line names the Tang listener");
    let r = rt()
        .block_on(http::request(
            &format!("http://{tang}/adv"),
            "GET",
            None,
            None,
            &Timeouts::default(),
        ))
        .unwrap();
    refused(&r, 403, "address_not_allowed");
    let r = rt()
        .block_on(http::request(
            &format!("http://{tang}/key"),
            "GET",
            None,
            None,
            &Timeouts::default(),
        ))
        .unwrap();
    refused(&r, 404, "not_found");
    drop(server);

    let server = Server::start(
        fleet.root(),
        &[
            "--tang-listen",
            "127.0.0.1:0",
            "--tang-allow",
            "127.0.0.0/8",
        ],
        &[],
    );
    let tang = server.tang.unwrap();
    let r = rt()
        .block_on(http::request(
            &format!("http://{tang}/adv"),
            "GET",
            None,
            None,
            &Timeouts::default(),
        ))
        .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.content_type.as_deref(), Some("application/jose+json"));
}

#[test]
fn rotate_keys_needs_a_fleet() {
    let r = run(&mut ss(["server"]));
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(r.stderr.contains("--fleet is required"), "{}", r.stderr);
}

/// The exchange (`deriveKey`) JWK of an advertisement, read by hand.
pub(super) fn exchange_jwk(adv: &[u8]) -> serde_json::Value {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use base64::Engine;
    let jws: serde_json::Value = serde_json::from_slice(adv).unwrap();
    let payload: serde_json::Value =
        serde_json::from_slice(&B64.decode(jws["payload"].as_str().unwrap()).unwrap()).unwrap();
    let key = payload["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| {
            k["key_ops"]
                .as_array()
                .unwrap()
                .iter()
                .any(|o| o == "deriveKey")
        })
        .unwrap();
    key.clone()
}

/// A `/rec` request body with a fresh P-521 point, and the exchange key id
/// (RFC 7638 thumbprint) from an advertisement.
fn rec_request(adv: &[u8]) -> (String, Vec<u8>) {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use base64::Engine;
    use p521::elliptic_curve::sec1::ToEncodedPoint;
    use sha2::Digest;
    let key = &exchange_jwk(adv);
    let canonical = format!(
        r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
        key["crv"].as_str().unwrap(),
        key["x"].as_str().unwrap(),
        key["y"].as_str().unwrap()
    );
    let kid = B64.encode(sha2::Sha256::digest(canonical.as_bytes()));
    let secret = p521::SecretKey::random(&mut rand_core::OsRng);
    let point = secret.public_key().to_encoded_point(false);
    let body = serde_json::json!({
        "alg": "ECMR", "crv": "P-521", "key_ops": ["deriveKey"], "kty": "EC",
        "x": B64.encode(point.x().unwrap()), "y": B64.encode(point.y().unwrap()),
    });
    (kid, serde_json::to_vec(&body).unwrap())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn tang_over_mtls_matches_tangd_and_clevis_round_trips() {
    let (Some(clevis), Some(socat)) = (tool("clevis"), tool("socat")) else {
        return;
    };
    let tangd = Path::new("/usr/libexec/tangd");
    if !tangd.is_file() {
        assert!(
            std::env::var("SECURE_STORE_REQUIRE_INTEROP").map_or(true, |v| v != "1"),
            "tangd is not installed: apt-get install tang"
        );
        eprintln!("SKIPPED: tangd is not installed");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let fleet = init_fleet(&tmp.path().join("fleet"));
    enroll(&fleet, "dev1", &[]);
    enroll(&fleet, "dev2", &[]);
    let server = Server::start(
        fleet.root(),
        &[
            "--tang-listen",
            "127.0.0.1:0",
            "--tang-allow",
            "127.0.0.1/32",
        ],
        &[],
    );
    let tang = server.tang.unwrap();

    // tangd over the same key directory, one process per connection.
    let port = free_port();
    let mut socat = Command::new(socat)
        .arg(format!("TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork"))
        .arg(format!(
            "EXEC:{} {}",
            tangd.display(),
            fleet.server().tang().display()
        ))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let tangd_url = format!("http://127.0.0.1:{port}");
    let mut up = false;
    for _ in 0..100 {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            up = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(up, "socat + tangd did not start");

    // A device over mTLS: the same answer as tangd for the same request.
    let adv = get(&server, "/adv", device_tls(&fleet, "dev1"));
    assert_eq!(adv.status, 200);
    assert_eq!(adv.content_type.as_deref(), Some("application/jose+json"));
    let (kid, body) = rec_request(&adv.body);
    let ours = rt()
        .block_on(http::request(
            &server.url(&format!("/rec/{kid}")),
            "POST",
            Some(("application/jwk+json", &body)),
            Some(device_tls(&fleet, "dev1")),
            &Timeouts::default(),
        ))
        .unwrap();
    let theirs = rt()
        .block_on(http::request(
            &format!("{tangd_url}/rec/{kid}"),
            "POST",
            Some(("application/jwk+json", &body)),
            None,
            &Timeouts::default(),
        ))
        .unwrap();
    assert_eq!(theirs.status, 200);
    assert_eq!(ours.status, 200, "{}", String::from_utf8_lossy(&ours.body));
    assert_eq!(ours.content_type.as_deref(), Some("application/jwk+json"));
    assert_eq!(ours.body, theirs.body);
    // Unknown kid and a wrong method answer as tangd does.
    let r = call(
        &server.url("/rec/AAAA"),
        "POST",
        Some(&body),
        device_tls(&fleet, "dev1"),
    )
    .unwrap();
    assert_eq!(r.status, 404);
    let r = get(&server, &format!("/rec/{kid}"), device_tls(&fleet, "dev1"));
    assert_eq!(r.status, 405);

    // Revoked: /rec refused too.
    ok(&mut admin(&fleet, &server, &["revoke", "dev2"]));
    let r = call(
        &server.url(&format!("/rec/{kid}")),
        "POST",
        Some(&body),
        device_tls(&fleet, "dev2"),
    )
    .unwrap();
    refused(&r, 403, "revoked");

    // Stock clevis against the plain Tang listener: encrypt, then decrypt.
    let out = run_stdin(
        Command::new(&clevis).args([
            "encrypt",
            "tang",
            &format!(r#"{{"url":"http://{tang}"}}"#),
            "-y",
        ]),
        b"sealed by clevis",
    );
    assert!(
        out.status.success(),
        "clevis encrypt: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plain = run_stdin(Command::new(&clevis).arg("decrypt"), &out.stdout);
    assert!(
        plain.status.success(),
        "clevis decrypt: {}",
        String::from_utf8_lossy(&plain.stderr)
    );
    assert_eq!(plain.stdout, b"sealed by clevis");
    let _ = socat.kill();
    let _ = socat.wait();

    // The anonymous /rec is audited with no device.
    let audit: Vec<serde_json::Value> =
        serde_json::from_str(&ok(&mut admin(&fleet, &server, &["audit", "--json"]))).unwrap();
    assert!(audit
        .iter()
        .any(|e| e["endpoint"] == "POST /rec" && e["device"].is_null() && e["reason"] == "ok"));
    assert!(audit
        .iter()
        .any(|e| e["endpoint"] == "POST /rec" && e["device"] == "dev1" && e["reason"] == "ok"));
}

#[test]
fn rotate_keys_and_sighup_keep_old_envelopes_recoverable() {
    let tmp = tempfile::tempdir().unwrap();
    let fleet = init_fleet(&tmp.path().join("fleet"));
    enroll(&fleet, "dev1", &[]);
    let server = Server::start(fleet.root(), &["--rate-per-device", "0"], &[]);
    let dev = || device_tls(&fleet, "dev1");
    let before = get(&server, "/adv", dev()).body;
    let (kid, body) = rec_request(&before);
    let rec = |kid: &str| {
        call(
            &server.url(&format!("/rec/{kid}")),
            "POST",
            Some(&body),
            dev(),
        )
        .unwrap()
    };
    let first = rec(&kid);
    assert_eq!(first.status, 200);

    let out = ok(ss(["server", "rotate-keys", "--fleet"]).arg(fleet.root()));
    assert!(out.contains("rotated"), "{out}");
    let hup = Command::new("kill")
        .args(["-HUP", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    // The reload is asynchronous: wait until the advertised exchange key
    // changes (every advertisement differs anyway: ECDSA signatures are
    // randomised).
    let mut after = before.clone();
    for _ in 0..100 {
        after = get(&server, "/adv", dev()).body;
        if rec_request(&after).0 != kid {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let (new_kid, _) = rec_request(&after);
    assert_ne!(new_kid, kid, "SIGHUP did not load the new keys");
    // The hidden old key still recovers, with the same answer.
    let again = rec(&kid);
    assert_eq!(again.status, 200);
    assert_eq!(again.body, first.body);
    let (code, stderr) = server.terminate();
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("reloaded the Tang keys"), "{stderr}");
}

#[test]
fn connections_beyond_the_cap_are_closed_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let fleet = init_fleet(&tmp.path().join("fleet"));
    enroll(&fleet, "dev1", &[]);
    let server = Server::start(
        fleet.root(),
        &["--max-connections", "3", "--handshake-timeout", "1s"],
        &[("STORE_PASSWORD", PASSWORD)],
    );
    let mut idle: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(server.addr).unwrap())
        .collect();
    // Give the accept loop time to take the three (they hold the permits).
    std::thread::sleep(Duration::from_millis(200));
    let mut extra = TcpStream::connect(server.addr).unwrap();
    assert!(closed_by_server(&mut extra));
    // The handshake timeout frees the slots; then a device unlocks again.
    for s in idle.iter_mut() {
        assert!(closed_by_server(s));
    }
    let mut status = 0;
    for _ in 0..50 {
        match call(&server.url("/key"), "GET", None, device_tls(&fleet, "dev1")) {
            Ok(r) => {
                status = r.status;
                break;
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    assert_eq!(status, 201);
    let m = get(&server, "/metrics", admin_tls(&fleet));
    let text = String::from_utf8(m.body).unwrap();
    let rejected: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("secure_store_connections_rejected_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(rejected >= 1, "{text}");
}

#[test]
fn sigterm_stops_accepting_and_finishes_the_request_in_flight() {
    let tmp = tempfile::tempdir().unwrap();
    let fleet = init_fleet(&tmp.path().join("fleet"));
    enroll(&fleet, "dev1", &[]);
    let mut server = Server::start(fleet.root(), &[], &[]);
    let addr = server.addr;
    let pid = server.child.id().to_string();
    let answer = rt().block_on(async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let connector = tokio_rustls::TlsConnector::from(device_tls(&fleet, "dev1"));
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let mut tls = connector.connect(name, tcp).await.unwrap();
        // A request whose body is still on its way when SIGTERM arrives.
        tls.write_all(b"POST /rec/abc HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\n")
            .await
            .unwrap();
        tls.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        // New connections are refused once the listener is closed.
        let mut refused = false;
        for _ in 0..50 {
            if tokio::net::TcpStream::connect(addr).await.is_err() {
                refused = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(refused, "the listener still accepts after SIGTERM");
        tls.write_all(b"hello").await.unwrap();
        tls.flush().await.unwrap();
        let mut answer = Vec::new();
        let _ = tls.read_to_end(&mut answer).await;
        String::from_utf8_lossy(&answer).into_owned()
    });
    // "hello" is not a JWK: tangd's 400, but an answer all the same.
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer:?}");
    let code = server.child.wait().unwrap().code();
    assert_eq!(code, Some(0));
}
