//! The Store Server's HTTP request handling without sockets: hostile
//! method, path, query and body through `server::routes::service` (the
//! same entry the TLS listener calls) for every kind of peer (device,
//! admin, legacy, unrecognized certificate, anonymous plain Tang). It
//! reaches the admin API, `/rec/{kid}` through `KeySet::rec` with real
//! Tang keys, `/adv`, `/key`, `/healthz` and `/metrics`.
//!
//! Input: byte 0 picks the peer, byte 1 the method, then the request
//! target up to the first newline (`KID` in it becomes the exchange key's
//! id), then the body.
//!
//! Besides "never a panic", it checks the authorization invariants: only
//! the admin certificate gets a 2xx from `/admin/…` and `/metrics`, an
//! anonymous peer gets a 2xx only from `/adv` and `/rec`, and only a
//! device or the legacy certificate is ever given the legacy key.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request};
use libfuzzer_sys::fuzz_target;
use secure_store::server::routes::service;
use secure_store::server::{App, Limits, Peer, PeerIdentity, RateLimits};
use secure_store::state::sqlite::SqliteStore;

struct Fixture {
    _dir: tempfile::TempDir,
    keys: PathBuf,
    /// The exchange key's id.
    kid: String,
    runtime: tokio::runtime::Runtime,
    /// The app and how many requests it served (a fresh state store every
    /// so often keeps the audit log, and so each run, small).
    app: Mutex<(Arc<App>, u32)>,
}

fn new_app(keys: &std::path::Path) -> Arc<App> {
    let store = Arc::new(SqliteStore::open_in_memory().expect("in-memory state"));
    let password = secure_store::secret::StoreKey::new("fuzz-legacy-password").expect("password");
    let rates = RateLimits {
        device_per_second: 0.0,
        device_burst: 0,
        address_per_second: 0.0,
        address_burst: 0,
    };
    let mut app = App::new(
        store,
        Some(keys.to_owned()),
        Some(password),
        Limits::default(),
        rates,
    )
    .expect("app");
    app.policy.tang_allow = vec!["127.0.0.0/8".parse().expect("net")];
    Arc::new(app)
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let keys = dir.path().join("tang");
        secure_store::tang::KeySet::generate(&keys).expect("tang keys");
        let kid = secure_store::tang::KeySet::load(&keys)
            .expect("tang keys")
            .exchange_key_ids()
            .into_iter()
            .next()
            .expect("an exchange key");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        let app = Mutex::new((new_app(&keys), 0));
        Fixture {
            _dir: dir,
            keys,
            kid,
            runtime,
            app,
        }
    })
}

fn peer(selector: u8) -> PeerIdentity {
    match selector % 5 {
        0 => PeerIdentity::Device {
            id: "dev1".into(),
            groups: vec!["g".into()],
            serial: "0a".into(),
        },
        1 => PeerIdentity::Admin {
            name: "admin".into(),
            serial: "0b".into(),
        },
        2 => PeerIdentity::Legacy {
            serial: "0c".into(),
        },
        3 => PeerIdentity::Unrecognized,
        _ => PeerIdentity::Anonymous,
    }
}

fn method(selector: u8) -> Method {
    match selector % 6 {
        0 => Method::GET,
        1 => Method::POST,
        2 => Method::DELETE,
        3 => Method::PUT,
        4 => Method::HEAD,
        _ => Method::PATCH,
    }
}

/// The path as the router sees it (repeated slashes collapsed).
fn normalized(path: &str) -> String {
    let mut out = String::new();
    for c in path.chars() {
        if !(c == '/' && out.ends_with('/')) {
            out.push(c);
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let [who, how, rest @ ..] = data else {
        return;
    };
    let (target, body) = match rest.iter().position(|&b| b == b'\n') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let Ok(target) = std::str::from_utf8(target) else {
        return;
    };
    let f = fixture();
    // `KID` stands for the fixture's exchange key (generated per process),
    // so the seeds reach the McCallum-Relyea exchange.
    let target = target.replace("KID", &f.kid);
    let identity = peer(*who);
    let Ok(req) = Request::builder()
        .method(method(*how))
        .uri(target.as_str())
        .body(Full::new(Bytes::copy_from_slice(body)))
    else {
        // hyper refuses such a request line before the router sees it.
        return;
    };
    let path = normalized(req.uri().path());

    let app = {
        let mut slot = f.app.lock().unwrap_or_else(|p| p.into_inner());
        slot.1 += 1;
        if slot.1 > 2000 {
            *slot = (new_app(&f.keys), 0);
        }
        slot.0.clone()
    };
    let peer = Arc::new(Peer {
        identity: identity.clone(),
        addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
    });
    let response = match f.runtime.block_on(service(app, peer, req)) {
        Ok(r) => r,
        Err(never) => match never {},
    };
    let status = response.status().as_u16();
    let ok = (200..300).contains(&status);

    let admin = matches!(identity, PeerIdentity::Admin { .. });
    if path.starts_with("/admin") || path == "/metrics" {
        assert!(!ok || admin, "{status} for {path} to {identity:?}");
    }
    if identity == PeerIdentity::Anonymous {
        assert!(
            !ok || path == "/adv" || path.starts_with("/adv/") || path.starts_with("/rec/"),
            "{status} for {path} on the plain Tang listener"
        );
    }
    if path == "/key" && ok {
        assert!(
            matches!(
                identity,
                PeerIdentity::Device { .. } | PeerIdentity::Legacy { .. }
            ),
            "the legacy key given to {identity:?}"
        );
    }
});
