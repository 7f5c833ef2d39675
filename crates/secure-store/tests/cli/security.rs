//! The security matrix of issue 6 (docs/SECURITY_TESTS.md lists every row
//! and where its test lives): hostile certificates, downgrades, hostile
//! headers and bodies, replays, one device reaching for another's data,
//! secrets in logs and key-file modes. Everything runs the real binary
//! (server, admin, seal, unseal, run, store, env) on 127.0.0.1 against real
//! peers: curl, `openssl s_client`, rustls clients and servers built here
//! with rcgen-made certificates.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use secure_store::client::http::{self, HttpErrorKind, Response};
use secure_store::pki::layout::FleetDir;
use secure_store::pki::tls;

use super::harness::*;
use super::run::seal_offline;
use super::server::{
    admin, admin_tls, ca_signed, call, device_tls, enroll, exchange_jwk, get, init_fleet, read,
    refused, tls as tls_of, Server,
};

/// An oversized body: the server answers 413 `too_large` at once and closes,
/// so a client still writing the body may see the connection closed
/// instead of the answer (a race, both are a clean refusal); what must
/// never happen is anything else.
fn too_large(r: Result<Response, http::HttpError>) {
    match r {
        Ok(r) => refused(&r, 413, "too_large"),
        Err(e) => assert_eq!(e.kind(), HttpErrorKind::Protocol, "{e}"),
    }
}

/// `GET /key` on `server`, presenting `tls`.
fn get_key(server: &Server, tls: Arc<rustls::ClientConfig>) -> Result<Response, http::HttpError> {
    call(&server.url("/key"), "GET", None, tls)
}

/// `POST /rec/KID` with `body` on `server`, presenting `tls`.
fn post_rec(server: &Server, kid: &str, body: &[u8], tls: Arc<rustls::ClientConfig>) -> Response {
    call(&server.url(&format!("/rec/{kid}")), "POST", Some(body), tls).unwrap()
}

/// Asserts that `GET /key` with `tls` is refused in the TLS handshake.
fn assert_tls_rejected(server: &Server, tls: Arc<rustls::ClientConfig>) {
    let e = get_key(server, tls).unwrap_err();
    assert_eq!(e.kind(), HttpErrorKind::TlsRejected, "{e}");
}

/// The audit as JSON entries, read by the admin.
fn audit(fleet: &FleetDir, server: &Server) -> Vec<serde_json::Value> {
    serde_json::from_str(&ok(&mut admin(fleet, server, &["audit", "--json"]))).unwrap()
}

fn audited(entries: &[serde_json::Value], reason: &str) -> bool {
    entries.iter().any(|e| e["reason"] == reason)
}

fn device_params(id: &str) -> impl FnOnce(&mut rcgen::CertificateParams) {
    let uri = format!("urn:secure-store:device:{id}");
    move |p| {
        p.distinguished_name.push(rcgen::DnType::CommonName, "x");
        p.subject_alt_names
            .push(rcgen::SanType::URI(uri.as_str().try_into().unwrap()));
        p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    }
}

fn pem_tls(fleet: &FleetDir, cert: &str, key: &str) -> Arc<rustls::ClientConfig> {
    tls::client_config(&read(&fleet.ca_cert()), cert.as_bytes(), key.as_bytes()).unwrap()
}

fn setup(devices: &[(&str, &[&str])]) -> (tempfile::TempDir, FleetDir) {
    let tmp = tempfile::tempdir().unwrap();
    let fleet = init_fleet(&tmp.path().join("fleet"));
    for (id, groups) in devices {
        enroll(&fleet, id, groups);
    }
    (tmp, fleet)
}

const PASSWORD: &str = "legacy-store-key-for-the-security-matrix";

// ------------------------------------------------------------ certificates

#[test]
fn wrong_ca_is_refused_in_the_handshake_and_audited() {
    let (tmp, fleet) = setup(&[("dev-1", &[])]);
    let other = init_fleet(&tmp.path().join("other"));
    enroll(&other, "dev-1", &[]);
    let server = Server::start(fleet.root(), &[], &[("STORE_PASSWORD", PASSWORD)]);
    // The stranger trusts our CA, so only its own certificate is wrong;
    // its device id even equals an enrolled one.
    let d = other.device("dev-1");
    assert_tls_rejected(&server, tls_of(&fleet.ca_cert(), &d.cert(), &d.key()));
    assert_eq!(
        get_key(&server, device_tls(&fleet, "dev-1"))
            .unwrap()
            .status,
        201
    );
    assert!(audited(&audit(&fleet, &server), "tls_unknown_ca"));
}

#[test]
fn self_signed_client_certificate_with_a_device_uri_is_refused() {
    let (_tmp, fleet) = setup(&[("dev-1", &[])]);
    let server = Server::start(fleet.root(), &[], &[("STORE_PASSWORD", PASSWORD)]);
    let key = rcgen::KeyPair::generate().unwrap();
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    device_params("dev-1")(&mut p);
    let forged = p.self_signed(&key).unwrap();
    assert_tls_rejected(
        &server,
        pem_tls(&fleet, &forged.pem(), &key.serialize_pem()),
    );
    let entries = audit(&fleet, &server);
    assert!(audited(&entries, "tls_unknown_ca"), "{entries:?}");
    // Nothing was registered for dev-1 by the forgery.
    let devices = ok(&mut admin(&fleet, &server, &["devices"]));
    assert!(!devices.contains("dev-1"), "{devices}");
}

#[test]
fn expired_and_not_yet_valid_certificates_are_refused() {
    let (_tmp, fleet) = setup(&[]);
    let server = Server::start(fleet.root(), &[], &[("STORE_PASSWORD", PASSWORD)]);
    let (cert, key) = ca_signed(&fleet, |p| {
        device_params("old")(p);
        p.not_before = rcgen::date_time_ymd(2020, 1, 1);
        p.not_after = rcgen::date_time_ymd(2021, 1, 1);
    });
    assert_tls_rejected(&server, pem_tls(&fleet, &cert, &key));
    let (cert, key) = ca_signed(&fleet, |p| {
        device_params("future")(p);
        p.not_before = rcgen::date_time_ymd(2090, 1, 1);
        p.not_after = rcgen::date_time_ymd(2091, 1, 1);
    });
    assert_tls_rejected(&server, pem_tls(&fleet, &cert, &key));
    // The same certificate, made valid now, gets through: only the dates differ.
    let (cert, key) = ca_signed(&fleet, device_params("future"));
    let r = get_key(&server, pem_tls(&fleet, &cert, &key)).unwrap();
    assert_eq!(r.status, 201);
    let entries = audit(&fleet, &server);
    assert!(audited(&entries, "tls_expired"), "{entries:?}");
    assert!(audited(&entries, "tls_not_yet_valid"), "{entries:?}");
}

#[test]
fn a_revoked_serial_refuses_that_certificate_only() {
    let (tmp, fleet) = setup(&[("dev-1", &[])]);
    let server = Server::start(fleet.root(), &[], &[("STORE_PASSWORD", PASSWORD)]);
    let list = ok(ss(["fleet", "list", "--json"]).arg(fleet.root()));
    let rec: serde_json::Value = serde_json::from_str(list.lines().next().unwrap()).unwrap();
    let serial = rec["serial"].as_str().unwrap().to_owned();
    // Keep the old certificate, then issue a new one for the same device.
    let old = tmp.path().join("old");
    std::fs::create_dir(&old).unwrap();
    let d = fleet.device("dev-1");
    std::fs::copy(d.cert(), old.join("c.crt")).unwrap();
    std::fs::copy(d.key(), old.join("c.key")).unwrap();
    ok(ss(["fleet", "enroll", "--force"])
        .arg(fleet.root())
        .arg("dev-1"));
    let old_tls = || tls_of(&fleet.ca_cert(), &old.join("c.crt"), &old.join("c.key"));
    assert_eq!(get_key(&server, old_tls()).unwrap().status, 201);
    ok(&mut admin(
        &fleet,
        &server,
        &["revoke", "--serial", &serial],
    ));
    refused(&get_key(&server, old_tls()).unwrap(), 403, "revoked");
    assert_eq!(
        get_key(&server, device_tls(&fleet, "dev-1"))
            .unwrap()
            .status,
        201
    );
}

#[test]
fn a_disabled_device_is_refused_on_key_and_rec() {
    let (_tmp, fleet) = setup(&[("dev-1", &[])]);
    let server = Server::start(fleet.root(), &[], &[("STORE_PASSWORD", PASSWORD)]);
    let adv = get(&server, "/adv", device_tls(&fleet, "dev-1"));
    let (kid, body) = rec_body(&adv.body);
    ok(&mut admin(&fleet, &server, &["disable", "dev-1"]));
    let t = || device_tls(&fleet, "dev-1");
    refused(&get_key(&server, t()).unwrap(), 403, "disabled");
    refused(&post_rec(&server, &kid, &body, t()), 403, "disabled");
    ok(&mut admin(&fleet, &server, &["enable", "dev-1"]));
    assert_eq!(post_rec(&server, &kid, &body, t()).status, 200);
}

/// A TLS server on 127.0.0.1 presenting `cert`/`key` (TLS `versions`), that
/// answers one HTTP request per connection with "ok". Returns its port.
fn tls_server(
    cert: &[u8],
    key: &[u8],
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> u16 {
    let config = rustls::ServerConfig::builder_with_provider(tls::provider())
        .with_protocol_versions(versions)
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            tls::certs_from_pem(cert, "cert").unwrap(),
            tls::key_from_pem(key, "key").unwrap(),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    if let Ok(mut s) = acceptor.accept(tcp).await {
                        let mut buf = [0u8; 4096];
                        let _ = s.read(&mut buf).await;
                        let _ = s
                            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
                            .await;
                        let _ = s.shutdown().await;
                    }
                });
            }
        });
    });
    port
}

/// `GET https://localhost:PORT/healthz` as device dev-1.
fn healthz(fleet: &FleetDir, port: u16) -> Result<Response, http::HttpError> {
    call(
        &format!("https://localhost:{port}/healthz"),
        "GET",
        None,
        device_tls(fleet, "dev-1"),
    )
}

#[test]
fn client_and_server_certificates_cannot_swap_roles() {
    let (_tmp, fleet) = setup(&[("dev-1", &[])]);
    // A certificate from the fleet CA naming localhost, but for clients
    // only (what a device certificate is): a client must not accept it
    // from a server. The same with serverAuth is accepted (control).
    let server_like = |eku: rcgen::ExtendedKeyUsagePurpose| {
        ca_signed(&fleet, move |p| {
            p.distinguished_name
                .push(rcgen::DnType::CommonName, "localhost");
            p.subject_alt_names
                .push(rcgen::SanType::DnsName("localhost".try_into().unwrap()));
            p.subject_alt_names
                .push(rcgen::SanType::IpAddress(std::net::IpAddr::from([
                    127, 0, 0, 1,
                ])));
            p.extended_key_usages = vec![eku];
        })
    };
    let (cert, key) = server_like(rcgen::ExtendedKeyUsagePurpose::ClientAuth);
    let bad = tls_server(cert.as_bytes(), key.as_bytes(), &[&rustls::version::TLS13]);
    let (cert, key) = server_like(rcgen::ExtendedKeyUsagePurpose::ServerAuth);
    let good = tls_server(cert.as_bytes(), key.as_bytes(), &[&rustls::version::TLS13]);
    let r = healthz(&fleet, good).unwrap();
    assert_eq!(r.body, b"ok");
    let e = healthz(&fleet, bad).unwrap_err();
    assert_eq!(e.kind(), HttpErrorKind::TlsRejected, "{e}");
    // The real device's certificate presented as a server's.
    let d = fleet.device("dev-1");
    let dev_as_server = tls_server(
        &read(&d.cert()),
        &read(&d.key()),
        &[&rustls::version::TLS13],
    );
    assert!(healthz(&fleet, dev_as_server).is_err());
    // The binary's own client (admin CLI, unseal) refuses it as well.
    let r = run(ss([
        "admin",
        "--server",
        &format!("https://localhost:{bad}"),
        "--fleet",
    ])
    .arg(fleet.root())
    .arg("devices"));
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);

    // The other way: the server's certificate (serverAuth only) as a client's.
    let server = Server::start(fleet.root(), &[], &[("STORE_PASSWORD", PASSWORD)]);
    let s = fleet.server();
    assert_tls_rejected(&server, tls_of(&fleet.ca_cert(), &s.cert(), &s.key()));
    let entries = audit(&fleet, &server);
    assert!(audited(&entries, "tls_bad_certificate"), "{entries:?}");
}

#[test]
fn tls_1_2_is_refused_both_ways() {
    let (_tmp, fleet) = setup(&[("dev-1", &[])]);
    let server = Server::start(fleet.root(), &[], &[]);
    let d = fleet.device("dev-1");
    if let Some(openssl) = tool("openssl") {
        let s_client = |version: &str| {
            run_stdin(
                Command::new(&openssl)
                    .args(["s_client", "-quiet", version, "-verify_return_error"])
                    .args(["-connect", &format!("127.0.0.1:{}", server.port())])
                    .args(["-servername", "localhost"])
                    .arg("-cert")
                    .arg(d.cert())
                    .arg("-key")
                    .arg(d.key())
                    .arg("-CAfile")
                    .arg(d.ca_cert()),
                b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
            )
        };
        let o = s_client("-tls1_3");
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            out.starts_with("HTTP/1.1 200 OK") && out.trim_end().ends_with("ok"),
            "TLS 1.3 control: {out} {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let o = s_client("-tls1_2");
        assert!(!o.status.success(), "a TLS 1.2 handshake succeeded");
        assert!(
            !String::from_utf8_lossy(&o.stdout).contains("200 OK"),
            "{}",
            String::from_utf8_lossy(&o.stdout)
        );
    }
    // A server that speaks only TLS 1.2 (with the real server identity):
    // our client never agrees to it.
    let s = fleet.server();
    let port = tls_server(
        &read(&s.cert()),
        &read(&s.key()),
        &[&rustls::version::TLS12],
    );
    let e = healthz(&fleet, port).unwrap_err();
    assert!(
        matches!(
            e.kind(),
            HttpErrorKind::TlsRejected | HttpErrorKind::Protocol | HttpErrorKind::Connect
        ),
        "{e} {:?}",
        e.kind()
    );
    // Control: the same identity over TLS 1.3 is accepted.
    let port = tls_server(
        &read(&s.cert()),
        &read(&s.key()),
        &[&rustls::version::TLS13],
    );
    let r = healthz(&fleet, port).unwrap();
    assert_eq!(r.body, b"ok");
}

#[test]
fn no_client_certificate_is_refused_and_audited() {
    let Some(curl) = tool("curl") else { return };
    let (_tmp, fleet) = setup(&[("dev-1", &[])]);
    let server = Server::start(fleet.root(), &[], &[("STORE_PASSWORD", PASSWORD)]);
    let o = Command::new(&curl)
        .args(["-sS", "--cacert"])
        .arg(fleet.ca_cert())
        .arg(format!("https://localhost:{}/key", server.port()))
        .output()
        .unwrap();
    assert!(
        !o.status.success(),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert!(!String::from_utf8_lossy(&o.stdout).contains(PASSWORD));
    let entries = audit(&fleet, &server);
    assert!(audited(&entries, "tls_no_certificate"), "{entries:?}");
}

// ---------------------------------------------------------------- identity

#[test]
fn every_admin_endpoint_refuses_a_device_certificate() {
    let (_tmp, fleet) = setup(&[("dev-1", &[]), ("dev-2", &[])]);
    let server = Server::start(fleet.root(), &[], &[("STORE_PASSWORD", PASSWORD)]);
    let t = || device_tls(&fleet, "dev-1");
    let rule = br#"{"kind":"network","action":"deny","cidr":"0.0.0.0/0","group":null}"#;
    for (method, path, body) in [
        ("GET", "/admin/devices", None),
        ("POST", "/admin/devices/dev-2/revoke", None),
        ("POST", "/admin/devices/dev-2/disable", None),
        ("POST", "/admin/devices/dev-1/enable", None),
        ("POST", "/admin/revoke-serial/00ff", None),
        ("GET", "/admin/rules", None),
        ("POST", "/admin/rules", Some(&rule[..])),
        ("DELETE", "/admin/rules/1", None),
        ("GET", "/admin/audit", None),
        ("GET", "/admin/audit?device=dev-2", None),
        ("GET", "/admin/audit/verify", None),
        ("GET", "/metrics", None),
    ] {
        let r = call(&server.url(path), method, body, t()).unwrap();
        refused(&r, 403, "not_admin");
    }
    // Nothing changed: no rule, dev-2 still unlocks.
    let rules = ok(&mut admin(&fleet, &server, &["--json", "rules", "list"]));
    assert_eq!(rules.trim(), "[]", "{rules}");
    assert_eq!(
        get_key(&server, device_tls(&fleet, "dev-2"))
            .unwrap()
            .status,
        201
    );
    let entries = audit(&fleet, &server);
    let n = entries
        .iter()
        .filter(|e| e["reason"] == "not_admin" && e["device"] == "dev-1")
        .count();
    assert_eq!(n, 12, "every refusal audited: {entries:?}");
}

/// A `/rec` body with a fresh point, and the exchange key id, from an
/// advertisement.
fn rec_body(adv: &[u8]) -> (String, Vec<u8>) {
    let (kid, _) = exchange_key(adv);
    let e =
        ssformat::jose::jwk::PrivateKey::from_random(&secure_store::rng::bytes::<66>()).unwrap();
    (
        kid,
        ssformat::jose::ecmr::request_json(e.public()).into_bytes(),
    )
}

/// The exchange key id (SHA-256 thumbprint) and key of an advertisement.
fn exchange_key(adv: &[u8]) -> (String, ssformat::jose::jwk::PublicKey) {
    let key = &exchange_jwk(adv);
    let public = ssformat::jose::jwk::PublicKey::from_jwk_lenient(key).unwrap();
    (
        public.thumbprint(ssformat::jose::jwk::ThpHash::S256),
        public,
    )
}

#[test]
fn device_a_cannot_reach_device_b_data() {
    let (tmp, fleet) = setup(&[("dev-a", &["a"]), ("dev-b", &["b"])]);
    let server = Server::start(fleet.root(), &[], &[]);
    // A store sealed to the server's exchange key, granted to group b only.
    let jwe = seal_offline(fleet.root(), &server.url(""));
    let adv = get(&server, "/adv", device_tls(&fleet, "dev-b"));
    let (kid, body) = rec_body(&adv.body);
    ok(&mut admin(
        &fleet,
        &server,
        &["rules", "add", "store", &kid, "--group", "b"],
    ));
    let unseal = |dev: &str| {
        run(
            ss(["unseal", "--envelope", &jwe, "--timeout", "5s", "--fleet"])
                .arg(fleet.root())
                .args(["--device", dev]),
        )
    };
    let b = unseal("dev-b");
    assert_eq!(b.code, Some(0), "{}", b.stderr);
    assert_eq!(b.stdout.trim(), KEY);
    let a = unseal("dev-a");
    assert_ne!(a.code, Some(0), "{}", a.stdout);
    assert!(!a.stdout.contains(KEY));
    assert!(a.stderr.contains("store_not_allowed"), "{}", a.stderr);
    refused(
        &post_rec(&server, &kid, &body, device_tls(&fleet, "dev-a")),
        403,
        "store_not_allowed",
    );

    // A holds B's certificate (it is not secret) but not B's key. Our
    // configuration refuses the pair outright; a client that skips that
    // check (presenting B's certificate, signing with A's key) fails the
    // handshake: the CertificateVerify signature does not match.
    let (da, db) = (fleet.device("dev-a"), fleet.device("dev-b"));
    assert!(
        tls::client_config(&read(&fleet.ca_cert()), &read(&db.cert()), &read(&da.key())).is_err()
    );
    assert_tls_rejected(&server, mismatched_client(&fleet, &db.cert(), &da.key()));
    // Control: the same hand-made client with B's own key is B.
    let r = post_rec(
        &server,
        &kid,
        &body,
        mismatched_client(&fleet, &db.cert(), &db.key()),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    if let Some(curl) = tool("curl") {
        let o = Command::new(&curl)
            .args(["-sS", "--cacert"])
            .arg(fleet.ca_cert())
            .arg("--cert")
            .arg(db.cert())
            .arg("--key")
            .arg(da.key())
            .arg(server.url(&format!("/rec/{kid}")))
            .args(["-H", "Content-Type: application/jwk+json", "--data-binary"])
            .arg(format!("@{}", write_tmp(tmp.path(), &body).display()))
            .output()
            .unwrap();
        assert!(
            !o.status.success(),
            "{}",
            String::from_utf8_lossy(&o.stdout)
        );
    }
    let b_out = unseal("dev-b");
    assert_eq!(b_out.code, Some(0), "B is not disturbed: {}", b_out.stderr);

    // A cannot list devices nor read B's audit entries.
    for path in ["/admin/devices", "/admin/audit?device=dev-b"] {
        refused(
            &get(&server, path, device_tls(&fleet, "dev-a")),
            403,
            "not_admin",
        );
    }
}

/// Presents whatever certificate and key it was given, unchecked.
#[derive(Debug)]
struct AnyPair(Arc<rustls::sign::CertifiedKey>);

impl rustls::client::ResolvesClientCert for AnyPair {
    fn resolve(
        &self,
        _: &[&[u8]],
        _: &[rustls::SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// A TLS 1.3 client presenting `cert` and signing with `key`, whether or
/// not they belong together.
fn mismatched_client(fleet: &FleetDir, cert: &Path, key: &Path) -> Arc<rustls::ClientConfig> {
    let provider = tls::provider();
    let signer = provider
        .key_provider
        .load_private_key(tls::key_from_pem(&read(key), "key").unwrap())
        .unwrap();
    let chain = tls::certs_from_pem(&read(cert), "cert").unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for c in tls::certs_from_pem(&read(&fleet.ca_cert()), "ca").unwrap() {
        roots.add(c).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_client_cert_resolver(Arc::new(AnyPair(Arc::new(
            rustls::sign::CertifiedKey::new(chain, signer),
        ))));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

fn write_tmp(dir: &Path, bytes: &[u8]) -> PathBuf {
    let p = dir.join("body.json");
    std::fs::write(&p, bytes).unwrap();
    p
}

// ------------------------------------------------------------ addresses

#[test]
fn x_forwarded_for_never_bypasses_network_rules() {
    let Some(curl) = tool("curl") else { return };
    let (_tmp, fleet) = setup(&[("dev-1", &[])]);
    let server = Server::start(fleet.root(), &[], &[("STORE_PASSWORD", PASSWORD)]);
    // Only 10.0.0.0/8 may unlock; loopback is denied outright.
    ok(&mut admin(
        &fleet,
        &server,
        &["rules", "add", "allow", "10.0.0.0/8"],
    ));
    ok(&mut admin(
        &fleet,
        &server,
        &["rules", "add", "deny", "127.0.0.0/8"],
    ));
    let d = fleet.device("dev-1");
    for header in [
        "X-Forwarded-For: 10.1.2.3",
        "X-Forwarded-For: 10.1.2.3, 10.9.9.9",
        "X-Real-IP: 10.1.2.3",
        "Forwarded: for=10.1.2.3",
        "True-Client-IP: 10.1.2.3",
    ] {
        let o = Command::new(&curl)
            .args(["-sS", "-w", "\n%{http_code}", "-H", header, "--cacert"])
            .arg(d.ca_cert())
            .arg("--cert")
            .arg(d.cert())
            .arg("--key")
            .arg(d.key())
            .arg(format!("https://localhost:{}/key", server.port()))
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            out.contains("\"error\":\"address_not_allowed\"") && out.ends_with("\n403"),
            "{header}: {out}"
        );
        assert!(!out.contains(PASSWORD), "{header}: {out}");
    }
    let entries = audit(&fleet, &server);
    let refusals: Vec<_> = entries
        .iter()
        .filter(|e| e["reason"] == "address_not_allowed")
        .collect();
    assert_eq!(refusals.len(), 5, "{entries:?}");
    assert!(
        refusals.iter().all(|e| e["address"] == "127.0.0.1"),
        "{refusals:?}"
    );
}

#[test]
fn x_forwarded_for_never_opens_the_plain_tang_listener() {
    let Some(curl) = tool("curl") else { return };
    let (_tmp, fleet) = setup(&[]);
    // The plain listener has no client certificate: the address is its only
    // gate. Only 10.0.0.0/8 may use it; the test calls from 127.0.0.1.
    let mut cmd = ss(["server", "--listen", "127.0.0.1:0", "--fleet"]);
    cmd.arg(fleet.root())
        .args(["--tang-listen", "127.0.0.1:0", "--tang-allow", "10.0.0.0/8"]);
    let guard = Server::spawn(cmd);
    let tang = format!("http://{}", guard.tang.expect("a plain Tang listener"));
    for header in [
        "X-Forwarded-For: 10.1.2.3",
        "X-Real-IP: 10.1.2.3",
        "Forwarded: for=10.1.2.3",
    ] {
        for path in ["/adv", "/rec/abc"] {
            let mut c = Command::new(&curl);
            c.args(["-sS", "-w", "\n%{http_code}", "-H", header]);
            if path.starts_with("/rec") {
                c.args(["--data-binary", "{}"]);
            }
            let o = c.arg(format!("{tang}{path}")).output().unwrap();
            let out = String::from_utf8_lossy(&o.stdout);
            assert!(
                out.contains("address_not_allowed") && out.ends_with("\n403"),
                "{header} {path}: {out}"
            );
        }
    }
    drop(guard);
}

// ------------------------------------------------------------------ replay

#[test]
fn a_replayed_rec_body_is_answered_but_useless_without_the_blinding_scalar() {
    use ssformat::jose::clevis::TangPin;
    use ssformat::jose::ecmr;
    let (_tmp, fleet) = setup(&[("dev-1", &[]), ("thief", &[])]);
    let server = Server::start(fleet.root(), &[], &[]);
    let jwe = seal_offline(fleet.root(), &server.url(""));
    let pin = TangPin::parse(&jwe).unwrap();
    // The device's request: X = C + e·G, e known only to the device.
    let (x, blinding) = ecmr::blind(&pin.epk, &secure_store::rng::bytes::<66>()).unwrap();
    let body = ecmr::request_json(&x).into_bytes();
    let rec = |dev: &str| {
        let r = call(
            &server.url(&format!("/rec/{}", pin.kid)),
            "POST",
            Some(&body),
            device_tls(&fleet, dev),
        )
        .unwrap();
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        r.body
    };
    let y = ecmr::parse_reply(&rec("dev-1")).unwrap();
    // The device unblinds: K = Y − e·S opens the envelope.
    let k = ecmr::unblind(&y, &pin.exchange_key, &blinding).unwrap();
    assert_eq!(&pin.decrypt(&k).unwrap()[..], KEY.as_bytes());

    // Someone replays the same body (from another enrolled device): the
    // server answers it, the same s·X, since it keeps no state…
    let replayed = ecmr::parse_reply(&rec("thief")).unwrap();
    assert_eq!(replayed.x(), y.x());
    // …but s·X = s·C + s·e·G is not the key s·C: without e, neither the
    // answer, nor the request point, nor the envelope's epk opens it.
    for guess in [&replayed, &x, &pin.epk, &pin.exchange_key] {
        assert!(pin.decrypt(guess).is_err());
    }
    // Unblinding with any other scalar fails too.
    let (_, wrong) = ecmr::blind(&pin.epk, &secure_store::rng::bytes::<66>()).unwrap();
    let k_wrong = ecmr::unblind(&replayed, &pin.exchange_key, &wrong).unwrap();
    assert!(pin.decrypt(&k_wrong).is_err());

    // A replay is a request like any other: a revoked replayer is refused.
    ok(&mut admin(&fleet, &server, &["revoke", "thief"]));
    refused(
        &call(
            &server.url(&format!("/rec/{}", pin.kid)),
            "POST",
            Some(&body),
            device_tls(&fleet, "thief"),
        )
        .unwrap(),
        403,
        "revoked",
    );
}

// --------------------------------------------------------------- hostile JSON

#[test]
fn oversized_and_deeply_nested_json_get_clean_refusals() {
    let (tmp, fleet) = setup(&[("dev-1", &[])]);
    let server = Server::start(fleet.root(), &[], &[]);
    let adv = get(&server, "/adv", device_tls(&fleet, "dev-1"));
    let (kid, good) = rec_body(&adv.body);
    let admin_tls = admin_tls(&fleet);
    let nested = |depth: usize| {
        let mut v = "[".repeat(depth);
        v.push_str(&"]".repeat(depth));
        v.into_bytes()
    };
    let nested_obj = |depth: usize| {
        let mut v = r#"{"a":"#.repeat(depth);
        v.push('1');
        v.push_str(&"}".repeat(depth));
        v.into_bytes()
    };
    let rec = format!("/rec/{kid}");
    // `POST /rec/KID` as dev-1.
    let post = |body: &[u8]| {
        call(
            &server.url(&rec),
            "POST",
            Some(body),
            device_tls(&fleet, "dev-1"),
        )
    };
    // 2048 is the deepest /rec accepts (jansson's limit, as tangd): those
    // are parsed for real, and must not exhaust the server's stack.
    let mixed = |depth: usize| {
        let mut v = r#"[{"a":"#.repeat(depth / 2);
        v.push('1');
        v.push_str(&"}]".repeat(depth / 2));
        v.into_bytes()
    };
    for body in [
        nested(2048),
        nested_obj(2048),
        mixed(2048),
        nested(2049),
        nested(5000),
        nested(100_000),
    ] {
        let too_big = body.len() > 16384;
        // Tang: 400 with an empty body (tangd's answer) or 413 when too big.
        let r = post(&body);
        if too_big {
            too_large(r);
        } else {
            let r = r.unwrap();
            assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
        }
        // Admin API: 400 bad_request or 413 too_large.
        let r = call(
            &server.url("/admin/rules"),
            "POST",
            Some(&body),
            admin_tls.clone(),
        );
        if too_big {
            too_large(r);
        } else {
            refused(&r.unwrap(), 400, "bad_request");
        }
    }
    // One megabyte of a valid-looking body.
    let mut huge = br#"{"kty":"EC","crv":"P-521","x":""#.to_vec();
    huge.extend(std::iter::repeat_n(b'A', 1 << 20));
    huge.extend(br#""}"#);
    let r = post(&huge);
    match r {
        Ok(r) => refused(&r, 413, "too_large"),
        // The server may close before reading all of it.
        Err(e) => assert_ne!(e.kind(), HttpErrorKind::TlsRejected, "{e}"),
    }
    // The server is still fine.
    let r = post(&good).unwrap();
    assert_eq!(r.status, 200);

    // The client side: an envelope whose header is deeply nested JSON.
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use base64::Engine;
    let mut header = br#"{"alg":"ECDH-ES","enc":"A256GCM","x":"#.to_vec();
    header.extend(nested(50_000));
    header.push(b'}');
    let jwe = format!("{}..AAAA.AAAA.AAAA", B64.encode(&header));
    let file = tmp.path().join("nested.jwe");
    std::fs::write(&file, &jwe).unwrap();
    let r = run(ss(["unseal", "--timeout", "5s", "--envelope-file"])
        .arg(&file)
        .arg("--fleet")
        .arg(fleet.root())
        .args(["--device", "dev-1"]));
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(
        !r.stderr.contains("panicked") && !r.stderr.contains("overflow"),
        "{}",
        r.stderr
    );
    let (code, log) = server.terminate();
    assert_eq!(code, Some(0), "{log}");
    assert!(!log.contains("panicked"), "{log}");
}

// ------------------------------------------------------------- file system

/// Plants one symbolic link in a source folder.
type MakeLink<'a> = dyn Fn(&Path) + 'a;

#[test]
fn symlink_tricks_in_store_encrypt_sources_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    ok(store_cmd(&["init"]).arg(&store));
    let outside = tmp.path().join("outside");
    write(&outside.join("secret.txt"), b"outside-the-source");
    let cases: [(&str, &MakeLink); 4] = [
        ("dir-link", &|src: &Path| {
            std::os::unix::fs::symlink(&outside, src.join("dir-link")).unwrap()
        }),
        ("deep-link", &|src: &Path| {
            std::fs::create_dir_all(src.join("a/b")).unwrap();
            std::os::unix::fs::symlink(outside.join("secret.txt"), src.join("a/b/deep-link"))
                .unwrap()
        }),
        ("loop", &|src: &Path| {
            std::os::unix::fs::symlink(src.join("loop"), src.join("loop")).unwrap()
        }),
        ("dangling", &|src: &Path| {
            std::os::unix::fs::symlink("/nonexistent/x", src.join("dangling")).unwrap()
        }),
    ];
    for (name, make) in cases {
        let src = tmp.path().join(format!("src-{name}"));
        write(&src.join("plain.txt"), b"inside");
        make(&src);
        fails(
            store_cmd(&["encrypt"]).arg(&src).arg(&store),
            "symbolic link",
        );
        let listing = ok(store_cmd(&["ls"]).arg(&store));
        assert!(
            listing.trim().is_empty(),
            "{name}: nothing stored: {listing}"
        );
        let out = ok(store_cmd(&["encrypt", "--skip-symlinks"])
            .arg(&src)
            .arg(&store));
        assert!(out.contains("skipped 1 symbolic links"), "{name}: {out}");
        let listing = ok(store_cmd(&["ls"]).arg(&store));
        assert!(!listing.contains("secret.txt"), "{name}: {listing}");
        assert!(!listing.contains(name), "{name}: {listing}");
        let dst = tmp.path().join(format!("dst-{name}"));
        ok(store_cmd(&["decrypt"]).arg(&store).arg(&dst));
        let (_, files) = snapshot(&dst);
        assert!(
            files
                .iter()
                .all(|(_, bytes)| bytes != b"outside-the-source"),
            "{name}: content from outside the source was stored"
        );
        std::fs::remove_dir_all(store.join("storage")).unwrap();
        std::fs::create_dir(store.join("storage")).unwrap();
    }
}

// ------------------------------------------------------------ secrets in logs

const ENV_PLAINTEXT: &str = "env-plaintext-8c1f0e7d2b9a";
const FILE_PLAINTEXT: &str = "file-plaintext-5d3e9a0b7c21";

/// The secret-bearing lines of a PEM file (its base64 body, line by line)
/// and the private parts of the Tang keys.
fn pem_body_lines(path: &Path) -> Vec<String> {
    String::from_utf8(read(path))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() >= 16)
        .map(str::to_owned)
        .collect()
}

/// Asserts no secret occurs in `text` (named `what`).
fn assert_clean(what: &str, text: &str, secrets: &[(String, String)]) {
    for (name, secret) in secrets {
        assert!(
            !text.contains(secret.as_str()),
            "{name} leaked into {what}:\n{text}"
        );
    }
}

/// Every stderr line of a `--log-format json` run is one JSON object, but
/// for the final `error: …` line of a failed command (the CLI's error
/// contract).
/// Returns the number of JSON lines.
fn assert_json_lines(what: &str, stderr: &str) -> usize {
    let mut n = 0;
    for line in stderr.lines().filter(|l| !l.trim().is_empty()) {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            assert!(
                line.starts_with("error: "),
                "{what}: not a JSON log line: {line}"
            );
            continue;
        };
        assert!(v.is_object(), "{what}: {line}");
        n += 1;
    }
    n
}

#[test]
fn no_secret_reaches_a_log_line_or_the_audit() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("fleet");
    let mut logs: Vec<(String, String)> = Vec::new();
    // Every command: -vv, JSON logs, and SECURE_STORE_LOG=trace (which
    // turns on the libraries' trace output too).
    let vv = |args: &[&str]| {
        let mut cmd = ss(["-vv", "--log-format", "json"]);
        cmd.args(args).env("SECURE_STORE_LOG", "trace");
        cmd
    };
    let mut record = |what: &str, cmd: &mut Command| -> String {
        let r = run(cmd);
        assert_eq!(r.code, Some(0), "{what}: {}", r.stderr);
        logs.push((what.to_owned(), r.stderr));
        r.stdout
    };
    record("fleet init", vv(&["fleet", "init"]).arg(&root));
    let fleet = FleetDir::new(&root);
    record(
        "fleet enroll",
        vv(&["fleet", "enroll"]).arg(&root).arg("dev-1"),
    );
    let env_out = record(
        "fleet enroll --env",
        vv(&["fleet", "enroll", "--env"]).arg(&root).arg("dev-env"),
    );
    let mtls: Vec<(String, String)> = env_out
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();

    let mut server_cmd = vv(&["server", "--listen", "127.0.0.1:0", "--fleet"]);
    server_cmd.arg(&root).env("STORE_PASSWORD", KEY);
    let server = Server::spawn(server_cmd);
    let url = server.url("");

    // seal / unseal through the server.
    let out = record(
        "seal",
        vv(&["seal", "--url", &url, "--server", &url, "--fleet"])
            .arg(&root)
            .env("STORE_PASSWORD", KEY),
    );
    let jwe = out
        .trim()
        .strip_prefix("SECURE_STORE_ENVELOPE=")
        .unwrap()
        .to_owned();
    let out = record(
        "unseal",
        vv(&["unseal", "--envelope", &jwe, "--fleet"])
            .arg(&root)
            .args(["--device", "dev-1"]),
    );
    assert_eq!(out.trim(), KEY);

    // The legacy /key once, so the server handles the password itself.
    let r = get_key(&server, device_tls(&fleet, "dev-1")).unwrap();
    assert_eq!(r.status, 201);

    // Stores.
    let src = tmp.path().join("src");
    write(&src.join("secret.txt"), FILE_PLAINTEXT.as_bytes());
    let store = tmp.path().join("store");
    // `store SUB` with the key, logged like every command here.
    let vstore = |sub: &str| {
        let mut cmd = vv(&["store", sub]);
        cmd.env("STORE_PASSWORD", KEY);
        cmd
    };
    record("store init", vstore("init").arg(&store));
    record("store encrypt", vstore("encrypt").arg(&src).arg(&store));
    record("store ls", vstore("ls").arg(&store));
    record("store verify", vstore("verify").arg(&store));
    record(
        "store decrypt",
        vstore("decrypt").arg(&store).arg(tmp.path().join("dec")),
    );
    record(
        "store rekey",
        vstore("rekey").arg(&store).env("NEW_STORE_PASSWORD", KEY),
    );

    // Env values.
    let out = record(
        "env encrypt",
        vv(&["env", "encrypt", "API_TOKEN", ENV_PLAINTEXT]).env("STORE_PASSWORD", KEY),
    );
    let encrypted = out.trim().to_owned();
    let (enc_name, enc_value) = encrypted.split_once('=').unwrap();
    let out = record(
        "env decrypt",
        vv(&["env", "decrypt"])
            .env("STORE_PASSWORD", KEY)
            .env(enc_name, enc_value),
    );
    assert!(out.contains(ENV_PLAINTEXT), "{out}");

    // run: unlock through the server with the base64 identity, decrypt the
    // env value, materialize the store (on tmpfs when there is one).
    let shm = Path::new("/dev/shm");
    let mat = shm.is_dir().then(|| tempfile::tempdir_in(shm).unwrap());
    let mut run_cmd = vv(&["run"]);
    if let Some(m) = &mat {
        run_cmd
            .arg("--store")
            .arg(&store)
            .arg("--materialize")
            .arg(m.path().join("app"));
    }
    run_cmd
        .args([
            "--",
            "sh",
            "-c",
            "test \"$API_TOKEN\" = \"$WANT\" && echo unlocked",
        ])
        .envs(mtls.iter().map(|(k, v)| (k, v)))
        .env("SECURE_STORE_ENVELOPE", &jwe)
        .env(enc_name, enc_value)
        .env("WANT", ENV_PLAINTEXT);
    let out = record("run", &mut run_cmd);
    assert_eq!(out.trim(), "unlocked");

    // The admin reads the audit (its output is checked too).
    let audit_json = record(
        "admin audit",
        vv(&["admin", "--server", &url, "--fleet"])
            .arg(&root)
            .args(["audit", "--json"]),
    );
    // Failures print no secret either: a wrong key, a value moved to
    // another name, a tampered value, a refused unlock.
    let wrong = "f".repeat(64);
    let moved = format!("ENCRYPTED_OTHER_{}", &enc_name["ENCRYPTED_".len()..]);
    let tampered = {
        let mut v = enc_value.to_owned();
        let last = v.pop().unwrap();
        v.push(if last == 'A' { 'B' } else { 'A' });
        v
    };
    ok(&mut admin(&fleet, &server, &["revoke", "dev-1"]));
    for (what, mut cmd) in [
        ("store ls, wrong key", {
            let mut c = vv(&["store", "ls"]);
            c.arg(&store).env("STORE_PASSWORD", &wrong);
            c
        }),
        ("env decrypt, moved value", {
            let mut c = vv(&["env", "decrypt"]);
            c.env("STORE_PASSWORD", KEY).env(&moved, enc_value);
            c
        }),
        ("run, tampered value", {
            let mut c = vv(&["run", "--", "true"]);
            c.env("STORE_PASSWORD", KEY).env(enc_name, &tampered);
            c
        }),
        ("unseal, revoked", {
            let mut c = vv(&["unseal", "--envelope", &jwe, "--fleet"]);
            c.arg(&root).args(["--device", "dev-1"]);
            c
        }),
    ] {
        let r = run(&mut cmd);
        assert_ne!(r.code, Some(0), "{what} should fail: {}", r.stderr);
        assert!(
            !r.stdout.contains(KEY) && !r.stdout.contains(ENV_PLAINTEXT),
            "{what}"
        );
        assert!(r.stderr.contains("error"), "{what}: {}", r.stderr);
        logs.push((what.to_owned(), r.stderr));
    }
    let (code, server_log) = server.terminate();
    assert_eq!(code, Some(0));
    // The logs are really there: the server logged each decision by device.
    assert!(
        server_log.contains("dev-1") && server_log.contains("dev-env"),
        "{server_log}"
    );
    logs.push(("server".to_owned(), server_log));

    // What must never show up.
    let mut secrets: Vec<(String, String)> = vec![
        ("the store key".into(), KEY.into()),
        ("a wrong store key".into(), "f".repeat(64)),
        ("the env plaintext".into(), ENV_PLAINTEXT.into()),
        ("the file plaintext".into(), FILE_PLAINTEXT.into()),
    ];
    {
        use ssformat::rclone::config;
        let text = std::fs::read_to_string(store.join("encrypt.conf")).unwrap();
        let plain = config::decrypt_config(&text, KEY).unwrap();
        let conf = config::ConfigFile::parse(&plain).unwrap();
        let section = conf.section("encrypted_storage").unwrap();
        let settings = config::CryptSettings::from_section(section).unwrap();
        secrets.push(("the crypt password".into(), settings.password.to_string()));
        for field in ["password", "password2"] {
            if let Some(obscured) = section.get(field) {
                secrets.push((format!("the obscured crypt {field}"), obscured.to_owned()));
            }
        }
    }
    let (_, mtls_key) = mtls.iter().find(|(k, _)| k == "MTLS_KEY").unwrap();
    secrets.push(("MTLS_KEY".into(), mtls_key.clone()));
    for (name, path) in [
        ("ca.key", fleet.ca_key()),
        ("server.key", fleet.server().key()),
        ("admin client.key", fleet.admin().key()),
        ("device client.key", fleet.device("dev-1").key()),
    ] {
        for line in pem_body_lines(&path) {
            secrets.push((format!("a line of {name}"), line));
        }
    }
    for entry in std::fs::read_dir(fleet.server().tang()).unwrap() {
        let jwk: serde_json::Value = serde_json::from_slice(&read(&entry.unwrap().path())).unwrap();
        if let Some(d) = jwk["d"].as_str() {
            secrets.push(("a Tang private key (d)".into(), d.to_owned()));
        }
    }

    let mut lines = 0;
    for (what, log) in &logs {
        lines += assert_json_lines(what, log);
        assert_clean(&format!("the {what} log"), log, &secrets);
    }
    assert!(lines > 50, "-vv should log plenty: {lines} lines");
    assert_clean("the admin's audit listing", &audit_json, &secrets);

    // The audit database itself, raw bytes (WAL included) and as SQL.
    let server_dir = fleet.server();
    for entry in std::fs::read_dir(server_dir.root()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("state.db") {
            let bytes = read(&path);
            let text = String::from_utf8_lossy(&bytes);
            assert_clean(&name, &text, &secrets);
        }
    }
    if let Some(sqlite3) = tool("sqlite3") {
        let dump = Command::new(sqlite3)
            .arg(server_dir.state_db())
            .arg(".dump")
            .output()
            .unwrap();
        assert!(dump.status.success());
        let dump = String::from_utf8_lossy(&dump.stdout);
        assert!(dump.contains("unlock") || dump.contains("/rec"), "{dump}");
        assert_clean("the audit database dump", &dump, &secrets);
    }
}

// ------------------------------------------------------------- file modes

/// The binary under `umask 000`, so modes cannot come from the umask.
fn umask0<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut cmd = Command::new("sh");
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", std::env::temp_dir())
        .stdin(Stdio::null())
        .args(["-c", "umask 000; exec \"$@\"", "sh"])
        .arg(env!("CARGO_BIN_EXE_secure-store"))
        .args(args);
    cmd
}

/// Every file under `root` is 0600 and every folder 0700.
fn assert_private(root: &Path) {
    assert_eq!(mode(root), 0o700, "{}", root.display());
    let mut stack = vec![root.to_owned()];
    let mut files = 0;
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                assert_eq!(mode(&path), 0o700, "{}", path.display());
                stack.push(path);
            } else {
                assert_eq!(mode(&path), 0o600, "{}", path.display());
                files += 1;
            }
        }
    }
    assert!(files > 0, "{}: no files", root.display());
}

#[test]
fn every_key_file_is_private_whatever_the_umask() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("fleet");
    ok(umask0(["fleet", "init"]).arg(&root));
    ok(umask0(["fleet", "enroll"]).arg(&root).arg("dev-1"));
    let usb = tmp.path().join("usb");
    ok(umask0(["fleet", "enroll"])
        .arg(&root)
        .args(["dev-2", "--out"])
        .arg(&usb));
    ok(umask0(["fleet", "enroll", "--force"])
        .arg(&root)
        .arg("dev-1"));
    ok(umask0(["server", "rotate-keys", "--fleet"]).arg(&root));
    assert_private(&root);
    assert_private(&usb);
    let legacy = tmp.path().join("legacy");
    ok(umask0(["fleet", "init", "--legacy"]).arg(&legacy));
    assert_private(&legacy);

    let key_file = tmp.path().join("store.key");
    ok(umask0(["keygen", "--out"]).arg(&key_file));
    assert_eq!(mode(&key_file), 0o600);
    let store = tmp.path().join("store");
    ok(umask0(["store", "init"])
        .arg(&store)
        .env("STORE_PASSWORD", KEY));
    assert_eq!(mode(&store.join("encrypt.conf")), 0o600);
    ok(umask0(["store", "rekey"])
        .arg(&store)
        .env("STORE_PASSWORD", KEY)
        .env("NEW_STORE_PASSWORD", KEY));
    assert_eq!(mode(&store.join("encrypt.conf")), 0o600);
    let src = tmp.path().join("src");
    write(&src.join("d/f.txt"), b"x");
    ok(umask0(["store", "encrypt"])
        .arg(&src)
        .arg(&store)
        .env("STORE_PASSWORD", KEY));
    let dec = tmp.path().join("dec");
    ok(umask0(["store", "decrypt"])
        .arg(&store)
        .arg(&dec)
        .env("STORE_PASSWORD", KEY));
    assert_private(&dec);

    // The server: state.db (and its WAL files) in the fleet's server folder
    // and in a --data-dir it creates.
    let fleet = FleetDir::new(&root);
    let data = tmp.path().join("data");
    for extra in [&[][..], &["--data-dir", data.to_str().unwrap()][..]] {
        let mut cmd = umask0(["server", "--listen", "127.0.0.1:0", "--fleet"]);
        cmd.arg(&root).args(extra);
        let server = Server::spawn(cmd);
        let port = server.port();
        let r = call(
            &format!("https://127.0.0.1:{port}/adv"),
            "GET",
            None,
            device_tls(&fleet, "dev-1"),
        );
        let seal_out = tmp.path().join(format!("env-{}.jwe", extra.len()));
        ok(umask0([
            "seal",
            "--url",
            &format!("https://127.0.0.1:{port}"),
            "--fleet",
        ])
        .arg(&root)
        .arg("--out")
        .arg(&seal_out)
        .env("STORE_PASSWORD", KEY));
        assert_eq!(mode(&seal_out), 0o600);
        server.terminate();
        assert_eq!(r.unwrap().status, 200);
    }
    assert_private(&root);
    assert_private(&data);
    assert!(data.join("state.db").is_file());
    assert!(fleet.server().state_db().is_file());
}

// ------------------------------------------------------- FUSE and plaintext

#[test]
fn fuse_never_exposes_hostile_names_nor_writes_plaintext_to_disk() {
    use super::mount::{fuse_ready, MountProc};
    use ssformat::rclone::config;
    if !fuse_ready() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let src = tmp.path().join("src");
    write(&src.join("ok.txt"), b"fine");
    ok(store_cmd(&["init"]).arg(&store));
    ok(store_cmd(&["encrypt"]).arg(&src).arg(&store));
    // Encrypted names that decrypt to traversal attempts, planted with the
    // raw name cipher (a hostile store).
    let names = {
        let text = std::fs::read_to_string(store.join("encrypt.conf")).unwrap();
        let plain = config::decrypt_config(&text, KEY).unwrap();
        let conf = config::ConfigFile::parse(&plain).unwrap();
        let settings =
            config::CryptSettings::from_section(conf.section("encrypted_storage").unwrap())
                .unwrap();
        settings.name_cipher(&settings.keys().unwrap())
    };
    let storage = store.join("storage");
    let mut planted = Vec::new();
    for evil in ["..", ".", "a/b", "../../escape", "/etc/passwd"] {
        let enc = names.encrypt_file_name(evil);
        std::fs::write(storage.join(&enc), b"RCLONE\0\0").unwrap();
        planted.push(enc);
    }
    let mnt = tmp.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let m = MountProc::start(&store, &mnt, &[]);
    let mut listed: Vec<String> = std::fs::read_dir(&mnt)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    listed.sort();
    assert_eq!(listed, ["ok.txt"], "hostile names are hidden");
    assert_eq!(std::fs::read(mnt.join("ok.txt")).unwrap(), b"fine");
    // `..` through the mount is the kernel's parent, never a store entry.
    assert_eq!(
        std::fs::canonicalize(mnt.join("..")).unwrap(),
        std::fs::canonicalize(tmp.path()).unwrap()
    );
    // Paths that climb inside the mount stay inside it.
    std::fs::create_dir(mnt.join("d")).unwrap();
    std::fs::write(mnt.join("d/../climbed.txt"), FILE_PLAINTEXT).unwrap();
    assert!(mnt.join("climbed.txt").is_file());
    assert!(!tmp.path().join("climbed.txt").exists());
    assert!(!tmp.path().join("escape").exists());
    std::fs::write(mnt.join("d/new.txt"), FILE_PLAINTEXT).unwrap();
    assert_eq!(m.stop(), Some(0));

    // After the unmount: the mount point is an empty folder again, and the
    // plaintext exists nowhere on disk (only ciphertext in storage/).
    assert_eq!(std::fs::read_dir(&mnt).unwrap().count(), 0);
    let (_, files) = snapshot(tmp.path());
    for (name, bytes) in &files {
        if name.starts_with("src") {
            continue;
        }
        assert!(
            !bytes
                .windows(FILE_PLAINTEXT.len())
                .any(|w| w == FILE_PLAINTEXT.as_bytes()),
            "plaintext on disk in {name}"
        );
        assert!(
            !name.contains("climbed") && !name.contains("new.txt"),
            "{name}"
        );
    }
    // The planted entries are untouched, and the written files decrypt.
    for enc in &planted {
        assert!(storage.join(enc).is_file());
    }
    let listing = run(store_cmd(&["ls"]).arg(&store));
    assert_eq!(
        listing.code,
        Some(1),
        "the hostile names still fail ls loudly"
    );
}

#[test]
fn materialize_refuses_persistent_folders_even_through_a_symlink() {
    let tmp = tempfile::tempdir().unwrap();
    let on_tmpfs = |p: &Path| {
        let o = Command::new("stat")
            .args(["-f", "-c", "%T"])
            .arg(p)
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).contains("tmpfs")
    };
    if on_tmpfs(tmp.path()) {
        eprintln!("SKIPPED: the temp folder is on tmpfs here");
        return;
    }
    let src = tmp.path().join("src");
    write(&src.join("secret.txt"), FILE_PLAINTEXT.as_bytes());
    let store = tmp.path().join("store");
    ok(store_cmd(&["init"]).arg(&store));
    ok(store_cmd(&["encrypt"]).arg(&src).arg(&store));
    let materialize = |target: &Path| {
        run(ss(["run", "--store"])
            .arg(&store)
            .arg("--materialize")
            .arg(target)
            .args(["--", "true"])
            .env("STORE_PASSWORD", KEY))
    };
    // A persistent folder, a new folder inside one, and a symlink in
    // /dev/shm pointing at a persistent folder.
    let persistent = tmp.path().join("plain");
    let r = materialize(&persistent);
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(r.stderr.contains("not on tmpfs"), "{}", r.stderr);
    assert!(!persistent.exists());
    if Path::new("/dev/shm").is_dir() && on_tmpfs(Path::new("/dev/shm")) {
        let shm = tempfile::tempdir_in("/dev/shm").unwrap();
        std::fs::create_dir(&persistent).unwrap();
        let link = shm.path().join("link");
        std::os::unix::fs::symlink(&persistent, &link).unwrap();
        let r = materialize(&link);
        assert_eq!(r.code, Some(1), "{}", r.stderr);
        assert_eq!(std::fs::read_dir(&persistent).unwrap().count(), 0);
        let r = materialize(&link.join("app"));
        assert_eq!(r.code, Some(1), "{}", r.stderr);
        assert!(!persistent.join("app").exists());
    }
    let (_, files) = snapshot(tmp.path());
    let leaked: Vec<_> = files
        .iter()
        .filter(|(n, b)| !n.starts_with("src") && b == FILE_PLAINTEXT.as_bytes())
        .collect();
    assert!(leaked.is_empty(), "plaintext left on disk: {leaked:?}");
}
