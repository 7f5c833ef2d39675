//! Socket-level tests of the listener and routes with an in-memory state
//! store and a throw-away CA made with rcgen (the binary-level tests with a
//! real fleet live in `tests/cli/server.rs`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::client::http::{request, HttpErrorKind, Timeouts};
use crate::state::{DeviceStatus, RevocationTarget};

struct Pki {
    server: Arc<rustls::ServerConfig>,
    device: Arc<rustls::ClientConfig>,
    admin: Arc<rustls::ClientConfig>,
    stranger: Arc<rustls::ClientConfig>,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn ca(name: &str) -> (rcgen::Certificate, KeyPair) {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    (p.self_signed(&key).unwrap(), key)
}

fn leaf(
    cn: &str,
    sans: Vec<String>,
    ca: &(rcgen::Certificate, KeyPair),
) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(sans).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    let cert = p.signed_by(&key, &ca.0, &ca.1).unwrap();
    (
        cert.der().clone(),
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    )
}

fn client(
    ca: &rcgen::Certificate,
    who: (CertificateDer<'static>, PrivateKeyDer<'static>),
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der().clone()).unwrap();
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(roots)
            .with_client_auth_cert(vec![who.0], who.1)
            .unwrap(),
    )
}

fn pki() -> Pki {
    let fleet = ca("fleet");
    let other = ca("other");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(fleet.0.der().clone()).unwrap();
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .unwrap();
    let (cert, key) = leaf(
        "server",
        vec!["localhost".into(), "127.0.0.1".into()],
        &fleet,
    );
    let server = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![cert], key)
        .unwrap();
    Pki {
        server: Arc::new(server),
        device: client(&fleet.0, leaf("dev1", Vec::new(), &fleet)),
        admin: client(&fleet.0, leaf("admin", Vec::new(), &fleet)),
        stranger: client(&fleet.0, leaf("dev1", Vec::new(), &other)),
    }
}

/// CN "dev1" is a device in group "g", CN "admin" the admin.
fn identify() -> listener::Identify {
    Arc::new(|cert: &CertificateDer<'_>| {
        let text = String::from_utf8_lossy(cert.as_ref()).into_owned();
        if text.contains("dev1") {
            PeerIdentity::Device {
                id: "dev1".into(),
                groups: vec!["g".into()],
                serial: "0a".into(),
            }
        } else if text.contains("admin") {
            PeerIdentity::Admin {
                name: "admin".into(),
                serial: "0b".into(),
            }
        } else {
            PeerIdentity::Unrecognized
        }
    })
}

struct Running {
    addr: SocketAddr,
    app: Arc<App>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

async fn start(limits: Limits, pki: &Pki) -> Running {
    let store = Arc::new(crate::state::sqlite::SqliteStore::open_in_memory().unwrap());
    let password = crate::secret::StoreKey::new("s3cret-<&>").unwrap();
    let app =
        Arc::new(App::new(store, None, Some(password), limits, RateLimits::default()).unwrap());
    let tls = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tls.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(serve(
        app.clone(),
        Listeners { tls, tang: None },
        pki.server.clone(),
        identify(),
        async move {
            let _ = rx.await;
        },
    ));
    Running {
        addr,
        app,
        stop: Some(tx),
        task,
    }
}

fn url(r: &Running, path: &str) -> String {
    format!("https://127.0.0.1:{}{path}", r.addr.port())
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn quick() -> Limits {
    Limits {
        handshake_timeout: Duration::from_millis(500),
        header_timeout: Duration::from_millis(500),
        body_timeout: Duration::from_millis(500),
        write_timeout: Duration::from_millis(500),
        shutdown_grace: Duration::from_secs(2),
        ..Limits::default()
    }
}

#[test]
fn unlock_refusals_and_admin() {
    rt().block_on(async {
        let pki = pki();
        let mut r = start(quick(), &pki).await;
        let t = Timeouts::all(Duration::from_secs(5));

        let ok = request(&url(&r, "/key"), "GET", None, Some(pki.device.clone()), &t)
            .await
            .unwrap();
        assert_eq!(ok.status, 201);
        assert_eq!(ok.content_type.as_deref(), Some("application/json"));
        assert_eq!(
            ok.body,
            b"{\"password\":\"s3cret-\\u003c\\u0026\\u003e\"}\n"
        );

        let h = request(
            &url(&r, "//healthz"),
            "GET",
            None,
            Some(pki.device.clone()),
            &t,
        )
        .await
        .unwrap();
        assert_eq!(h.status, 200, "repeated slashes are collapsed");

        let m = request(
            &url(&r, "/metrics"),
            "GET",
            None,
            Some(pki.device.clone()),
            &t,
        )
        .await
        .unwrap();
        assert_eq!(m.status, 403);
        assert!(String::from_utf8_lossy(&m.body).contains("not_admin"));
        let a = request(
            &url(&r, "/admin/devices"),
            "GET",
            None,
            Some(pki.device.clone()),
            &t,
        )
        .await
        .unwrap();
        assert_eq!(a.status, 403);

        let devs = request(
            &url(&r, "/admin/devices"),
            "GET",
            None,
            Some(pki.admin.clone()),
            &t,
        )
        .await
        .unwrap();
        assert_eq!(devs.status, 200);
        let devices: Vec<crate::state::Device> = serde_json::from_slice(&devs.body).unwrap();
        assert_eq!(devices.len(), 1);
        assert_eq!(devices[0].id, "dev1");

        // Unknown CA: refused in the handshake.
        let e = request(
            &url(&r, "/key"),
            "GET",
            None,
            Some(pki.stranger.clone()),
            &t,
        )
        .await
        .unwrap_err();
        assert_eq!(e.kind(), HttpErrorKind::TlsRejected, "{e}");

        // Disable, then revoke: the very next request is refused.
        r.app
            .store
            .set_status("dev1", DeviceStatus::Disabled, 1)
            .unwrap();
        let d = request(&url(&r, "/key"), "GET", None, Some(pki.device.clone()), &t)
            .await
            .unwrap();
        assert_eq!(d.status, 403);
        assert!(String::from_utf8_lossy(&d.body).contains("\"disabled\""));
        let rv = request(
            &url(&r, "/admin/devices/dev1/revoke"),
            "POST",
            None,
            Some(pki.admin.clone()),
            &t,
        )
        .await
        .unwrap();
        assert_eq!(rv.status, 200, "{}", String::from_utf8_lossy(&rv.body));
        let d = request(&url(&r, "/key"), "GET", None, Some(pki.device.clone()), &t)
            .await
            .unwrap();
        assert_eq!(d.status, 403);
        assert!(String::from_utf8_lossy(&d.body).contains("\"revoked\""));
        assert!(r
            .app
            .store
            .revocations()
            .unwrap()
            .contains(&RevocationTarget::Device("dev1".into())));

        // Garbage on the socket, then the server still answers.
        let mut s = tokio::net::TcpStream::connect(r.addr).await.unwrap();
        s.write_all(b"\x00\x01garbage garbage\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 64];
        let _ = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .unwrap();
        // Idle connection: cut off by the handshake timeout.
        let mut idle = tokio::net::TcpStream::connect(r.addr).await.unwrap();
        let n = tokio::time::timeout(Duration::from_secs(5), idle.read(&mut buf))
            .await
            .unwrap();
        assert!(matches!(n, Ok(0) | Err(_)));

        let audit = r.app.store.audit(&Default::default()).unwrap();
        let reasons: Vec<&str> = audit.iter().map(|a| a.event.reason.as_str()).collect();
        for want in ["ok", "not_admin", "tls_unknown_ca", "disabled", "revoked"] {
            assert!(reasons.contains(&want), "{want} missing from {reasons:?}");
        }
        let metrics = request(
            &url(&r, "/metrics"),
            "GET",
            None,
            Some(pki.admin.clone()),
            &t,
        )
        .await
        .unwrap();
        let text = String::from_utf8_lossy(&metrics.body);
        assert!(
            text.contains("secure_store_handshake_failures_total{kind=\"timeout\"} 1"),
            "{text}"
        );
        assert!(text.contains("kind=\"unknown_ca\""), "{text}");

        let _ = r.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(5), r.task)
            .await
            .unwrap()
            .unwrap();
    });
}

#[test]
fn database_keys_load_refresh_after_a_rotation_and_refuse_a_wrong_kek() {
    use crate::tang::sealed::{self, Kek};
    let store = Arc::new(crate::state::sqlite::SqliteStore::open_in_memory().unwrap());
    let kek = || Kek::parse(&"11".repeat(32), "test").unwrap();
    let new_app = || {
        App::new(
            store.clone(),
            None,
            None,
            Limits::default(),
            RateLimits::default(),
        )
        .unwrap()
    };
    // An empty table: the server must not start.
    let mut app = new_app();
    assert!(matches!(
        app.use_database_keys(kek()),
        Err(sealed::SealError::Empty)
    ));
    let first = sealed::rotate(store.as_ref(), &kek(), 1).unwrap();
    let wrong = Kek::parse(&"22".repeat(32), "file /x/tang.kek").unwrap();
    let err = new_app().use_database_keys(wrong).unwrap_err().to_string();
    assert!(err.contains("file /x/tang.kek"), "{err}");

    app.use_database_keys(kek()).unwrap();
    assert!(app.keys_from_database());
    assert_eq!(
        app.keys().unwrap().signing_key_ids(),
        vec![first[0].clone()]
    );
    assert!(!app.refresh_keys().unwrap(), "nothing changed");
    // A rotation made elsewhere (another replica, the CLI).
    let second = sealed::rotate(store.as_ref(), &kek(), 2).unwrap();
    assert!(app.refresh_keys().unwrap());
    assert!(!app.refresh_keys().unwrap());
    let keys = app.keys().unwrap();
    assert_eq!(keys.signing_key_ids(), vec![second[0].clone()]);
    assert!(
        keys.exchange_key_id(&first[1]).is_some(),
        "hidden, still there"
    );
    // SIGHUP reloads unconditionally.
    app.reload_keys().unwrap();
    assert_eq!(
        app.keys().unwrap().signing_key_ids(),
        vec![second[0].clone()]
    );
    // A directory-keyed app never refreshes from the database.
    assert!(!new_app().refresh_keys().unwrap());
}
