//! `secure-store fleet init/enroll` and `pki::tls`, checked by independent
//! verifiers: `openssl verify`, rustls' own webpki verifiers, real TLS
//! handshakes (tokio-rustls both ends), and the system `curl` and
//! `openssl s_client` against a tiny rustls echo server. In CI a missing
//! openssl or curl fails these tests (see `tool`).

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::{mpsc, Arc};

use base64::Engine;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use secure_store::pki::layout::{FleetDir, ServerDir};
use secure_store::pki::{tls, Identity};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::harness::*;

/// `fleet init` with the usual test names.
fn init_fleet(dir: &Path) -> FleetDir {
    ok(ss(["fleet", "init"]).arg(dir).args([
        "--server-name",
        "localhost",
        "--server-name",
        "store.example.com",
        "--server-ip",
        "127.0.0.1",
    ]));
    FleetDir::new(dir)
}

fn enroll(fleet: &FleetDir, id: &str, extra: &[&str]) -> String {
    ok(ss(["fleet", "enroll"])
        .arg(fleet.root())
        .arg(id)
        .args(extra))
}

/// Every folder under `root` is 0700 and every file 0600.
fn assert_private_tree(root: &Path) {
    assert_eq!(mode(root), 0o700, "{}", root.display());
    for entry in std::fs::read_dir(root).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            assert_private_tree(&path);
        } else {
            assert_eq!(mode(&path), 0o600, "{}", path.display());
        }
    }
}

fn der(path: &Path) -> CertificateDer<'static> {
    tls::load_certs(path).unwrap().remove(0)
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

// ---------------------------------------------------------------- files

#[test]
fn init_writes_the_layout_with_private_modes() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("fleet");
    let out = ok(ss(["fleet", "init"]).arg(&root));
    assert!(out.contains("server/"), "{out}");
    let fleet = FleetDir::new(&root);
    let server = fleet.server();
    let admin = fleet.admin();
    for file in [
        fleet.meta(),
        fleet.ca_cert(),
        fleet.ca_key(),
        server.ca_cert(),
        server.cert(),
        server.key(),
        admin.ca_cert(),
        admin.cert(),
        admin.key(),
    ] {
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
    for dir in [
        root.clone(),
        root.join("ca"),
        root.join("server"),
        root.join("admin"),
        root.join("devices"),
    ] {
        assert_eq!(mode(&dir), 0o700, "{}", dir.display());
    }
    // The same for everything else in the tree (the Tang keys included).
    assert_private_tree(&root);
    // The CA key never lands in the server folder; nothing else is left over.
    let server_files: Vec<_> = std::fs::read_dir(server.root())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(!server_files.iter().any(|f| f.contains("ca.key")));
    let siblings: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert_eq!(siblings.len(), 1, "staging folder left behind");
    assert_eq!(read(&server.ca_cert()), read(&fleet.ca_cert()));
    assert_eq!(read(&admin.ca_cert()), read(&fleet.ca_cert()));

    // fleet.json: names, no secrets.
    let meta: serde_json::Value = serde_json::from_slice(&read(&fleet.meta())).unwrap();
    assert_eq!(meta["key_type"], "p256");
    assert_eq!(meta["server_names"][0], "localhost");
    assert_eq!(meta["server_ips"][0], "127.0.0.1");
    assert_eq!(meta["server_ips"][1], "::1");
    assert_eq!(
        meta["ca_fingerprint"],
        secure_store::pki::fingerprint(&der(&fleet.ca_cert()))
    );
    assert!(!String::from_utf8_lossy(&read(&fleet.meta())).contains("PRIVATE"));
}

#[test]
fn init_refuses_an_existing_fleet_and_a_full_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("fleet");
    let fleet = init_fleet(&root);
    let before = read(&fleet.ca_key());
    fails(ss(["fleet", "init"]).arg(&root), "already exists");
    assert_eq!(read(&fleet.ca_key()), before, "the CA key was replaced");

    let full = tmp.path().join("full");
    write(&full.join("notes.txt"), b"mine");
    fails(ss(["fleet", "init"]).arg(&full), "already exists");
    assert_eq!(read(&full.join("notes.txt")), b"mine");

    // An empty folder is fine.
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    ok(ss(["fleet", "init"]).arg(&empty));
    assert!(FleetDir::new(&empty).ca_key().is_file());
}

#[test]
fn enroll_writes_device_files_and_refuses_to_re_enroll() {
    let tmp = tempfile::tempdir().unwrap();
    let fleet = init_fleet(&tmp.path().join("fleet"));
    let out = enroll(&fleet, "kiosk-17", &["--group", "kiosk", "--group", "eu"]);
    let dev = fleet.device("kiosk-17");
    assert!(out.contains("enrolled device kiosk-17"), "{out}");
    assert_eq!(mode(dev.root()), 0o700);
    for f in [dev.ca_cert(), dev.cert(), dev.key()] {
        assert_eq!(mode(&f), 0o600, "{}", f.display());
    }
    let Identity::Device { id, groups, serial } = Identity::from_der(&der(&dev.cert())).unwrap()
    else {
        panic!("not a device identity")
    };
    assert_eq!(id, "kiosk-17");
    assert_eq!(groups, ["kiosk", "eu"]);
    assert!(out.contains(&serial), "{out}");

    let err = fails(
        ss(["fleet", "enroll"]).arg(fleet.root()).arg("kiosk-17"),
        "already enrolled",
    );
    assert!(err.contains(&serial), "names the old serial: {err}");
    assert!(err.contains("--force"), "{err}");

    // --force issues a new certificate and says the old one still works.
    let r = run(ss(["fleet", "enroll", "--force"])
        .arg(fleet.root())
        .arg("kiosk-17"));
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(r.stderr.contains(&serial), "{}", r.stderr);
    let new = Identity::from_der(&der(&dev.cert())).unwrap();
    assert_ne!(new.serial(), serial);
    assert_private_tree(fleet.root());
}

#[test]
fn enroll_refuses_bad_device_ids_and_groups() {
    let tmp = tempfile::tempdir().unwrap();
    let fleet = init_fleet(&tmp.path().join("fleet"));
    for bad in [
        ".hidden",
        "a/b",
        "../escape",
        "with space",
        "ünï",
        &"x".repeat(65),
    ] {
        fails(
            ss(["fleet", "enroll"]).arg(fleet.root()).arg(bad),
            "invalid device id",
        );
    }
    fails(
        ss(["fleet", "enroll"])
            .arg(fleet.root())
            .args(["dev", "--group", "a,b;c"]),
        "invalid group name",
    );
    // Nothing was written for any of them.
    assert_eq!(
        std::fs::read_dir(fleet.root().join("devices"))
            .unwrap()
            .count(),
        0
    );
    fails(
        ss(["fleet", "enroll"])
            .arg(tmp.path().join("nope"))
            .arg("dev"),
        "not a fleet directory",
    );
    // --out and --env exclude each other (a usage error, exit 2).
    let r = run(ss(["fleet", "enroll"])
        .arg(fleet.root())
        .args(["dev", "--env", "--out"])
        .arg(tmp.path().join("x")));
    assert_eq!(r.code, Some(2), "{}", r.stderr);
}

#[test]
fn enroll_env_prints_three_lines_that_decode_to_the_pems() {
    let tmp = tempfile::tempdir().unwrap();
    let fleet = init_fleet(&tmp.path().join("fleet"));
    let out = enroll(&fleet, "3f2a9c1e", &["--env"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    let b64 = base64::engine::general_purpose::STANDARD;
    let value = |prefix: &str, line: &str| -> Vec<u8> {
        let v = line
            .strip_prefix(prefix)
            .unwrap_or_else(|| panic!("{line}"));
        // Standard base64, and what the device client decodes.
        let decoded = b64.decode(v).unwrap();
        assert_eq!(
            tls::decode_env_pem(prefix, v).unwrap().as_slice(),
            decoded.as_slice()
        );
        decoded
    };
    let cert = value("MTLS_CERT=", lines[0]);
    let key = value("MTLS_KEY=", lines[1]);
    let ca = value("MTLS_CA=", lines[2]);
    assert_eq!(ca, read(&fleet.ca_cert()));
    // The record copy of the certificate is kept; the key is not.
    let dev = fleet.device("3f2a9c1e");
    assert_eq!(cert, read(&dev.cert()));
    assert!(!dev.key().exists());
    assert_eq!(mode(&dev.cert()), 0o600);
    // The key belongs to the certificate and the whole works for TLS.
    tls::client_config(&ca, &cert, &key).unwrap();
    let cert_der = tls::certs_from_pem(&cert, "MTLS_CERT").unwrap();
    assert_eq!(
        Identity::from_der(&cert_der[0]).unwrap().device_id(),
        Some("3f2a9c1e")
    );
    if let Some(openssl) = tool("openssl") {
        let key_file = tmp.path().join("k.pem");
        let cert_file = tmp.path().join("c.pem");
        std::fs::write(&key_file, &key).unwrap();
        std::fs::write(&cert_file, &cert).unwrap();
        let pub_of = |args: &[&str], file: &Path| {
            let o = Command::new(&openssl)
                .args(args)
                .arg(file)
                .output()
                .unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            o.stdout
        };
        assert_eq!(
            pub_of(&["pkey", "-pubout", "-in"], &key_file),
            pub_of(&["x509", "-noout", "-pubkey", "-in"], &cert_file)
        );
    }
}

#[test]
fn enroll_out_writes_elsewhere_and_keeps_a_record() {
    let tmp = tempfile::tempdir().unwrap();
    let fleet = init_fleet(&tmp.path().join("fleet"));
    let out_dir = tmp.path().join("usb/dev-9");
    enroll(&fleet, "dev-9", &["--out", out_dir.to_str().unwrap()]);
    assert_eq!(mode(&out_dir), 0o700);
    assert_eq!(mode(&out_dir.join("client.key")), 0o600);
    assert_eq!(
        read(&out_dir.join("client.crt")),
        read(&fleet.device("dev-9").cert())
    );
    assert!(!fleet.device("dev-9").key().exists());
}

// ------------------------------------------------- independent verifiers

#[test]
fn openssl_verifies_every_issued_certificate() {
    let Some(openssl) = tool("openssl") else {
        return;
    };
    for key_type in ["p256", "rsa4096"] {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("fleet");
        ok(ss(["fleet", "init", "--key-type", key_type]).arg(&root));
        let fleet = FleetDir::new(&root);
        enroll(&fleet, "dev-1", &["--group", "g1"]);
        let verify = |purpose: &str, cert: &Path| {
            let o = Command::new(&openssl)
                .arg("verify")
                .arg("-CAfile")
                .arg(fleet.ca_cert())
                .args(["-purpose", purpose])
                .arg(cert)
                .output()
                .unwrap();
            (
                o.status.success(),
                String::from_utf8_lossy(&o.stdout).into_owned(),
            )
        };
        let server = fleet.server().cert();
        let device = fleet.device("dev-1").cert();
        let admin = fleet.admin().cert();
        for (purpose, cert) in [
            ("sslserver", &server),
            ("sslclient", &device),
            ("sslclient", &admin),
        ] {
            let (good, out) = verify(purpose, cert);
            assert!(good && out.contains(": OK"), "{key_type} {purpose}: {out}");
        }
        // And the purposes are not interchangeable.
        assert!(
            !verify("sslserver", &device).0,
            "a device cert passes as server"
        );
        assert!(
            !verify("sslclient", &server).0,
            "the server cert passes as client"
        );

        let text = Command::new(&openssl)
            .args(["x509", "-noout", "-text", "-in"])
            .arg(fleet.ca_cert())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&text.stdout);
        assert!(text.contains("CA:TRUE, pathlen:0"), "{text}");
        assert!(text.contains("Certificate Sign, CRL Sign"), "{text}");
        let sig = if key_type == "p256" {
            "ecdsa-with-SHA256"
        } else {
            "sha256WithRSAEncryption"
        };
        assert!(text.contains(sig), "{text}");
    }
}

#[test]
fn rustls_verifiers_accept_the_fleet_certificates() {
    let tmp = tempfile::tempdir().unwrap();
    let fleet = init_fleet(&tmp.path().join("fleet"));
    enroll(&fleet, "dev-1", &[]);
    let mut roots = RootCertStore::empty();
    roots.add(der(&fleet.ca_cert())).unwrap();
    let roots = Arc::new(roots);
    let now = UnixTime::now();

    let clients =
        rustls::server::WebPkiClientVerifier::builder_with_provider(roots.clone(), tls::provider())
            .build()
            .unwrap();
    clients
        .verify_client_cert(&der(&fleet.device("dev-1").cert()), &[], now)
        .unwrap();
    clients
        .verify_client_cert(&der(&fleet.admin().cert()), &[], now)
        .unwrap();
    assert!(clients
        .verify_client_cert(&der(&fleet.server().cert()), &[], now)
        .is_err());

    let servers =
        rustls::client::WebPkiServerVerifier::builder_with_provider(roots, tls::provider())
            .build()
            .unwrap();
    let server = der(&fleet.server().cert());
    for name in ["localhost", "store.example.com", "127.0.0.1"] {
        servers
            .verify_server_cert(&server, &[], &ServerName::try_from(name).unwrap(), &[], now)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    assert!(servers
        .verify_server_cert(
            &server,
            &[],
            &ServerName::try_from("evil.example.com").unwrap(),
            &[],
            now
        )
        .is_err());
    assert!(servers
        .verify_server_cert(
            &der(&fleet.device("dev-1").cert()),
            &[],
            &ServerName::try_from("localhost").unwrap(),
            &[],
            now
        )
        .is_err());
}

// ------------------------------------------------------------ handshakes

/// A one-response HTTPS server on 127.0.0.1 (rustls through tokio-rustls)
/// that answers with the client's identity and reports each handshake.
struct Echo {
    rt: tokio::runtime::Runtime,
    addr: SocketAddr,
    results: mpsc::Receiver<Result<String, String>>,
}

impl Echo {
    fn start(config: Arc<ServerConfig>, legacy: bool) -> Echo {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let (tx, results) = mpsc::channel();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        rt.spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    let mut conn = match acceptor.accept(tcp).await {
                        Ok(conn) => conn,
                        Err(e) => {
                            let _ = tx.send(Err(e.to_string()));
                            return;
                        }
                    };
                    let peer = conn.get_ref().1.peer_certificates().unwrap()[0].clone();
                    let who = if legacy {
                        Identity::legacy_from_der(&peer)
                    } else {
                        Identity::from_der(&peer)
                    };
                    let who = match who {
                        Ok(Identity::Device { id, .. }) => format!("device {id}"),
                        Ok(Identity::Admin { name, .. }) => format!("admin {name}"),
                        Ok(Identity::Legacy { serial }) => format!("legacy {serial}"),
                        Err(e) => format!("error {e}"),
                    };
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut chunk).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let reply = format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{who}",
                        who.len()
                    );
                    let _ = conn.write_all(reply.as_bytes()).await;
                    let _ = conn.shutdown().await;
                    let _ = tx.send(Ok(who));
                });
            }
        });
        Echo { rt, addr, results }
    }

    /// One request from a rustls client; the body, or the error.
    fn request(&self, config: Arc<ClientConfig>, name: &str) -> Result<String, String> {
        let connector = tokio_rustls::TlsConnector::from(config);
        let name = ServerName::try_from(name.to_owned()).unwrap();
        let addr = self.addr;
        self.rt.block_on(async move {
            let tcp = tokio::net::TcpStream::connect(addr)
                .await
                .map_err(|e| e.to_string())?;
            let mut tls = connector
                .connect(name, tcp)
                .await
                .map_err(|e| e.to_string())?;
            tls.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
                .await
                .map_err(|e| e.to_string())?;
            let mut body = Vec::new();
            tls.read_to_end(&mut body)
                .await
                .map_err(|e| e.to_string())?;
            let text = String::from_utf8_lossy(&body).into_owned();
            text.split("\r\n\r\n")
                .nth(1)
                .map(str::to_owned)
                .ok_or_else(|| format!("no HTTP answer: {text:?}"))
        })
    }

    /// What the server saw of the last connection.
    fn server_saw(&self) -> Result<String, String> {
        self.results
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("the server reports every connection")
    }
}

fn client_of(dir: &secure_store::pki::layout::ClientDir) -> Arc<ClientConfig> {
    tls::client_config_from_dir(dir).unwrap()
}

#[test]
fn handshake_admits_an_enrolled_device_and_refuses_strangers() {
    let tmp = tempfile::tempdir().unwrap();
    let fleet = init_fleet(&tmp.path().join("fleet"));
    enroll(&fleet, "dev-1", &["--group", "kiosk"]);
    let server = Echo::start(
        tls::server_config(&ServerDir::locate(fleet.root())).unwrap(),
        false,
    );

    // The enrolled device and the admin get through, as themselves.
    let device = client_of(&fleet.device("dev-1"));
    assert_eq!(
        server.request(device.clone(), "localhost").unwrap(),
        "device dev-1"
    );
    assert_eq!(server.server_saw().unwrap(), "device dev-1");
    assert_eq!(
        server
            .request(client_of(&fleet.admin()), "store.example.com")
            .unwrap(),
        "admin admin"
    );
    assert_eq!(server.server_saw().unwrap(), "admin admin");
    // TLS 1.3 only, ALPN http/1.1: checked through a raw rustls client below.
    assert!(device.alpn_protocols == vec![b"http/1.1".to_vec()]);

    // A device of another fleet (trusting our CA, so only its own cert is wrong).
    let other = init_fleet(&tmp.path().join("other"));
    enroll(&other, "dev-1", &[]);
    let odev = other.device("dev-1");
    let foreign = tls::client_config(
        &read(&fleet.ca_cert()),
        &read(&odev.cert()),
        &read(&odev.key()),
    )
    .unwrap();
    assert!(server.request(foreign, "localhost").is_err());
    let seen = server.server_saw().unwrap_err();
    assert!(
        seen.contains("UnknownIssuer") || seen.contains("unknown"),
        "{seen}"
    );

    // A self-signed certificate with our device URI.
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.subject_alt_names.push(rcgen::SanType::URI(
        "urn:secure-store:device:dev-1".try_into().unwrap(),
    ));
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let selfsigned = params.self_signed(&key).unwrap();
    let forged = tls::client_config(
        &read(&fleet.ca_cert()),
        selfsigned.pem().as_bytes(),
        key.serialize_pem().as_bytes(),
    )
    .unwrap();
    assert!(server.request(forged, "localhost").is_err());
    assert!(server.server_saw().is_err());

    // No client certificate at all.
    let mut roots = RootCertStore::empty();
    roots.add(der(&fleet.ca_cert())).unwrap();
    let anonymous = ClientConfig::builder_with_provider(tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    assert!(server.request(Arc::new(anonymous), "localhost").is_err());
    let seen = server.server_saw().unwrap_err();
    assert!(seen.to_lowercase().contains("certificate"), "{seen}");

    // An expired certificate from the right CA.
    let ca = secure_store::pki::ca::FleetCa::load(&read(&fleet.ca_cert()), &read(&fleet.ca_key()))
        .unwrap();
    let now = time::OffsetDateTime::now_utc();
    let expired = ca
        .issue_between(
            &secure_store::pki::ca::Leaf::Device {
                id: "dev-1".into(),
                groups: vec![],
            },
            now - time::Duration::days(10),
            now - time::Duration::days(1),
        )
        .unwrap();
    let stale = tls::client_config(
        &read(&fleet.ca_cert()),
        expired.cert_pem.as_bytes(),
        expired.key_pem.as_bytes(),
    )
    .unwrap();
    assert!(server.request(stale, "localhost").is_err());
    let seen = server.server_saw().unwrap_err();
    assert!(seen.contains("expired"), "{seen}");

    // The client refuses a server name the certificate does not carry.
    assert!(server.request(device, "evil.example.com").is_err());
    assert!(server.server_saw().is_err());
}

#[test]
fn curl_and_openssl_s_client_talk_to_a_fleet_server() {
    let tmp = tempfile::tempdir().unwrap();
    let fleet = init_fleet(&tmp.path().join("fleet"));
    enroll(&fleet, "dev-7", &[]);
    let server = Echo::start(
        tls::server_config(&ServerDir::locate(fleet.root())).unwrap(),
        false,
    );
    let dev = fleet.device("dev-7");
    if let Some(curl) = tool("curl") {
        let o = Command::new(&curl)
            .args(["-sS", "--http1.1", "--cert"])
            .arg(dev.cert())
            .arg("--key")
            .arg(dev.key())
            .arg("--cacert")
            .arg(dev.ca_cert())
            .arg(format!("https://localhost:{}/key", server.addr.port()))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(String::from_utf8_lossy(&o.stdout), "device dev-7");
        assert_eq!(server.server_saw().unwrap(), "device dev-7");

        // curl without a client certificate is refused by the server.
        let o = Command::new(&curl)
            .args(["-sS", "--cacert"])
            .arg(dev.ca_cert())
            .arg(format!("https://localhost:{}/key", server.addr.port()))
            .output()
            .unwrap();
        assert!(!o.status.success());
        assert!(server.server_saw().is_err());
    }
    if let Some(openssl) = tool("openssl") {
        let mut child = Command::new(&openssl)
            .args(["s_client", "-quiet", "-tls1_3", "-verify_return_error"])
            .args(["-connect", &format!("127.0.0.1:{}", server.addr.port())])
            .args(["-servername", "localhost", "-verify_hostname", "localhost"])
            .arg("-cert")
            .arg(dev.cert())
            .arg("-key")
            .arg(dev.key())
            .arg("-CAfile")
            .arg(dev.ca_cert())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            .unwrap();
        let mut out = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        let _ = child.wait();
        assert!(out.ends_with("device dev-7"), "{out}");
        assert_eq!(server.server_saw().unwrap(), "device dev-7");

        // TLS 1.2 is not spoken.
        let o = Command::new(&openssl)
            .args(["s_client", "-tls1_2"])
            .args(["-connect", &format!("127.0.0.1:{}", server.addr.port())])
            .arg("-cert")
            .arg(dev.cert())
            .arg("-key")
            .arg(dev.key())
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert!(!o.status.success(), "a TLS 1.2 handshake succeeded");
        assert!(server.server_saw().is_err());
    }
}

// ---------------------------------------------------------------- legacy

#[test]
fn legacy_cert_mirrors_the_original_and_works_at_both_ends() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("fleet");
    let out = ok(ss(["fleet", "init", "--legacy", "--base64"]).arg(&root));
    let fleet = FleetDir::new(&root);
    let (cert_path, key_path) = (fleet.legacy_cert(), fleet.legacy_key());
    assert_eq!(mode(&root.join("legacy")), 0o700);
    assert_eq!(mode(&cert_path), 0o600);
    assert_eq!(mode(&key_path), 0o600);
    let cert = read(&cert_path);
    let key = read(&key_path);
    assert!(key.starts_with(b"-----BEGIN RSA PRIVATE KEY-----"));

    // --base64 prints MTLS_CERT and MTLS_KEY, the original's two values.
    let b64 = base64::engine::general_purpose::STANDARD;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert_eq!(
        b64.decode(lines[0].strip_prefix("MTLS_CERT=").unwrap())
            .unwrap(),
        cert
    );
    assert_eq!(
        b64.decode(lines[1].strip_prefix("MTLS_KEY=").unwrap())
            .unwrap(),
        key
    );
    fails(
        ss(["fleet", "init", "--legacy"]).arg(&root),
        "already exists",
    );
    // A full fleet can join the legacy certificate in the same folder.
    ok(ss(["fleet", "init"]).arg(&root));
    assert_eq!(read(&fleet.legacy_cert()), cert);
    assert_eq!(read(&fleet.legacy_key()), key);
    assert!(fleet.ca_key().is_file());
    assert_private_tree(&root);

    let cert_der = der(&cert_path);
    assert_eq!(
        Identity::legacy_from_der(&cert_der).unwrap(),
        Identity::Legacy {
            serial: "00".into()
        }
    );
    assert!(Identity::from_der(&cert_der).is_err());

    if let Some(openssl) = tool("openssl") {
        let text = Command::new(&openssl)
            .args(["x509", "-noout", "-text", "-in"])
            .arg(&cert_path)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&text.stdout);
        for fact in [
            "Serial Number: 0 (0x0)",
            "sha256WithRSAEncryption",
            "Issuer: CN = localhost",
            "Subject: CN = localhost",
            "Public-Key: (4096 bit)",
            "Digital Signature, Key Encipherment, Data Encipherment, Key Agreement",
            "TLS Web Server Authentication, TLS Web Client Authentication",
            "CA:FALSE",
            "DNS:localhost",
        ] {
            assert!(text.contains(fact), "missing {fact:?} in\n{text}");
        }
        // ~100 years, as the original's 3650 × 24 × 10 hours.
        let o = Command::new(&openssl)
            .args([
                "x509",
                "-noout",
                "-checkend",
                &(99u64 * 365 * 86400).to_string(),
                "-in",
            ])
            .arg(&cert_path)
            .output()
            .unwrap();
        assert!(o.status.success(), "expires within 99 years");
    }

    // One cert, both ends: server presents and pins it, client trusts and presents it.
    let server = Echo::start(tls::legacy_server_config(&cert, &key).unwrap(), true);
    let client = tls::client_config(&cert, &cert, &key).unwrap();
    assert_eq!(server.request(client, "localhost").unwrap(), "legacy 00");
    assert_eq!(server.server_saw().unwrap(), "legacy 00");

    // Another legacy certificate (another deployment) is refused.
    let other_root = tmp.path().join("other");
    ok(ss(["fleet", "init", "--legacy"]).arg(&other_root));
    let other = FleetDir::new(&other_root);
    let stranger = tls::client_config(
        &cert,
        &read(&other.legacy_cert()),
        &read(&other.legacy_key()),
    )
    .unwrap();
    assert!(server.request(stranger, "localhost").is_err());
    assert!(server.server_saw().is_err());

    // curl as the original client did: the one cert as CA, cert and key.
    if let Some(curl) = tool("curl") {
        let o = Command::new(&curl)
            .args(["-sS", "--cert"])
            .arg(&cert_path)
            .arg("--key")
            .arg(&key_path)
            .arg("--cacert")
            .arg(&cert_path)
            .arg(format!("https://localhost:{}/key", server.addr.port()))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(String::from_utf8_lossy(&o.stdout), "legacy 00");
        assert_eq!(server.server_saw().unwrap(), "legacy 00");
    }
}

#[test]
fn list_shows_every_enrolled_device() {
    let tmp = tempfile::tempdir().unwrap();
    let fleet = init_fleet(&tmp.path().join("fleet"));
    let out = ok(ss(["fleet", "list"]).arg(fleet.root()));
    assert_eq!(out.lines().count(), 1, "header only: {out}");
    enroll(&fleet, "b-dev", &["--group", "g1", "--group", "g2"]);
    enroll(&fleet, "a-dev", &["--env"]);
    let out = ok(ss(["fleet", "list", "--json"]).arg(fleet.root()));
    let rows: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2, "{out}");
    assert_eq!(rows[0]["id"], "a-dev");
    assert_eq!(rows[0]["key_in_fleet"], false);
    assert_eq!(rows[1]["id"], "b-dev");
    assert_eq!(rows[1]["groups"], serde_json::json!(["g1", "g2"]));
    assert_eq!(rows[1]["key_in_fleet"], true);
    let serial = Identity::from_der(&der(&fleet.device("b-dev").cert()))
        .unwrap()
        .serial()
        .to_owned();
    assert_eq!(rows[1]["serial"], serial);
    let table = ok(ss(["fleet", "list"]).arg(fleet.root()));
    assert!(table.contains(&format!("b-dev\t{serial}\t")), "{table}");
}
