//! Two Store Server replicas sharing one real PostgreSQL
//! (`--database-url postgres://…`, a throwaway cluster from
//! `secure_store::state::pg_cluster`): a device unlocks through either, a
//! revocation made through one is enforced by the other on the next
//! request, and the audit chain both write to verifies. Skipped without
//! PostgreSQL; fails under `SECURE_STORE_REQUIRE_INTEROP=1`.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::time::Duration;

use secure_store::client::http::{self, Response, Timeouts};
use secure_store::pki::layout::FleetDir;
use secure_store::state::pg_cluster;

use super::harness::*;

const PASSWORD: &str = "legacy-store-key-0123456789";

/// A running server replica; killed when dropped.
struct Replica {
    child: Child,
    addr: SocketAddr,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Replica {
    fn start(fleet: &Path, database_url: &str) -> Replica {
        let mut cmd = ss(["server", "--listen", "127.0.0.1:0", "--fleet"]);
        cmd.arg(fleet)
            .env("SECURE_STORE_DATABASE_URL", database_url)
            .env("STORE_PASSWORD", PASSWORD)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
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
        let addr = line
            .trim()
            .strip_prefix("secure-store server listening on https://")
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        Replica {
            child,
            addr,
            stderr: Some(stderr),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.addr.port())
    }

    fn key(&self, fleet: &FleetDir, device: &str) -> Response {
        let d = fleet.device(device);
        let read = |p: &Path| std::fs::read(p).unwrap();
        let tls = secure_store::pki::tls::client_config(
            &read(&d.ca_cert()),
            &read(&d.cert()),
            &read(&d.key()),
        )
        .unwrap();
        call(&self.url("/key"), tls)
    }

    fn admin(&self, fleet: &FleetDir, args: &[&str]) -> String {
        let mut cmd = ss(["admin", "--server", &self.url(""), "--fleet"]);
        cmd.arg(fleet.root()).args(args);
        ok(&mut cmd)
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            if let Some(s) = self.stderr.take() {
                eprintln!("replica stderr:\n{}", s.join().unwrap_or_default());
            }
        }
    }
}

fn call(url: &str, tls: Arc<rustls::ClientConfig>) -> Response {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(http::request(
            url,
            "GET",
            None,
            Some(tls),
            &Timeouts::all(Duration::from_secs(10)),
        ))
        .unwrap()
}

fn error_code(r: &Response) -> String {
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
    v["error"].as_str().unwrap_or_default().to_owned()
}

#[test]
fn two_replicas_on_postgres_share_revocations_and_one_audit_chain() {
    let Some(url) = pg_cluster::fresh_database() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("fleet");
    ok(ss([
        "fleet",
        "init",
        "--server-name",
        "localhost",
        "--server-ip",
        "127.0.0.1",
    ])
    .arg(&root));
    let fleet = FleetDir::new(&root);
    for id in ["sensor-17", "sensor-18"] {
        ok(ss(["fleet", "enroll"]).arg(fleet.root()).arg(id));
    }
    let a = Replica::start(fleet.root(), &url);
    let b = Replica::start(fleet.root(), &url);

    for replica in [&a, &b] {
        for device in ["sensor-17", "sensor-18"] {
            let r = replica.key(&fleet, device);
            assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
        }
    }
    // Both replicas registered the devices in the one database.
    let devices = b.admin(&fleet, &["devices"]);
    assert!(
        devices.contains("sensor-17") && devices.contains("sensor-18"),
        "{devices}"
    );

    a.admin(&fleet, &["revoke", "sensor-17"]);
    let r = b.key(&fleet, "sensor-17");
    assert_eq!((r.status, error_code(&r).as_str()), (403, "revoked"));
    a.admin(&fleet, &["disable", "sensor-18"]);
    let r = b.key(&fleet, "sensor-18");
    assert_eq!((r.status, error_code(&r).as_str()), (403, "disabled"));
    b.admin(&fleet, &["enable", "sensor-18"]);
    assert_eq!(a.key(&fleet, "sensor-18").status, 201);

    // Entries from both replicas form one chain, verified through either.
    let audit: Vec<serde_json::Value> =
        serde_json::from_str(&a.admin(&fleet, &["audit", "--json"])).unwrap();
    assert!(audit.len() >= 7, "{audit:?}");
    let seqs: Vec<i64> = audit.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
    for replica in [&a, &b] {
        let verify = replica.admin(&fleet, &["audit", "--verify"]);
        assert!(verify.contains("audit chain ok"), "{verify}");
    }
    // The state is in PostgreSQL, not in a state.db beside the fleet.
    let mut db = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let rows: i64 = db
        .query_one("SELECT COUNT(*) FROM audit", &[])
        .unwrap()
        .get(0);
    assert!(rows >= audit.len() as i64);
    let revoked: i64 = db
        .query_one(
            "SELECT COUNT(*) FROM revocations WHERE value = 'sensor-17'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(revoked, 1);
    let stray: Vec<_> = walk(tmp.path())
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n == "state.db"))
        .collect();
    assert!(stray.is_empty(), "{stray:?}");
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
