//! Two Store Server replicas sharing one real PostgreSQL
//! (`--database-url postgres://…`, a throwaway cluster from
//! `secure_store::state::pg_cluster`): a device unlocks through either, a
//! revocation made through one is enforced by the other on the next
//! request, and the audit chain both write to verifies. Skipped without
//! PostgreSQL; fails under `SECURE_STORE_REQUIRE_INTEROP=1`.

use std::path::Path;
use std::time::Duration;

use secure_store::client::http::Response;
use secure_store::pki::layout::FleetDir;
use secure_store::state::pg_cluster;

use super::harness::*;
use super::server::{admin, device_tls, enroll, get, init_fleet, Server};

const PASSWORD: &str = "legacy-store-key-0123456789";

/// A running server replica on the shared database: a [`Server`] whose
/// stderr is printed when the test fails.
struct Replica(Server);

impl Replica {
    fn start(fleet: &Path, database_url: &str) -> Replica {
        Self::start_with(fleet, database_url, &[])
    }

    fn start_with(fleet: &Path, database_url: &str, env: &[(&str, &Path)]) -> Replica {
        let mut vars: Vec<(&str, &str)> =
            env.iter().map(|(k, v)| (*k, v.to_str().unwrap())).collect();
        vars.push(("SECURE_STORE_DATABASE_URL", database_url));
        vars.push(("STORE_PASSWORD", PASSWORD));
        Replica(Server::start(fleet, &[], &vars))
    }

    fn url(&self, path: &str) -> String {
        self.0.url(path)
    }

    fn key(&self, fleet: &FleetDir, device: &str) -> Response {
        get(&self.0, "/key", device_tls(fleet, device))
    }

    fn adv(&self, fleet: &FleetDir, device: &str) -> Vec<u8> {
        let r = get(&self.0, "/adv", device_tls(fleet, device));
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        r.body
    }

    fn admin(&self, fleet: &FleetDir, args: &[&str]) -> String {
        ok(&mut admin(fleet, &self.0, args))
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.0.child.kill();
        let _ = self.0.child.wait();
        if std::thread::panicking() {
            if let Some(s) = self.0.stderr.take() {
                eprintln!("replica stderr:\n{}", s.join().unwrap_or_default());
            }
        }
    }
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
    let fleet = init_fleet(&root);
    for id in ["sensor-17", "sensor-18"] {
        enroll(&fleet, id, &[]);
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

/// The `d` (private scalar) member of a private JWK text.
fn jwk_d(text: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(text).unwrap();
    v["d"].as_str().unwrap().to_owned()
}

#[test]
fn replicas_share_tang_keys_sealed_in_postgres_and_a_rotation_reaches_both() {
    let Some(url) = pg_cluster::fresh_database() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("fleet");
    let fleet = init_fleet(&root);
    enroll(&fleet, "dev-1", &[]);
    let kek = tmp.path().join("tang.kek");
    write(&kek, format!("{}\n", "5a".repeat(32)).as_bytes());
    std::fs::set_permissions(&kek, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();

    // Import the fleet's key directory, then take it away: the replicas
    // can only have their keys from the database.
    let tang_dir = root.join("server/tang");
    let mut clear_d: Vec<String> = std::fs::read_dir(&tang_dir)
        .unwrap()
        .map(|e| jwk_d(&std::fs::read(e.unwrap().path()).unwrap()))
        .collect();
    assert_eq!(clear_d.len(), 2);
    let import = || {
        ok(ss(["server", "import-keys", "--fleet"])
            .arg(&root)
            .args(["--database-url", &url, "--tang-kek-file"])
            .arg(&kek))
    };
    assert!(import().contains("imported 2 of 2"));
    assert!(
        import().contains("imported 0 of 2"),
        "a second import adds nothing"
    );
    std::fs::rename(&tang_dir, tmp.path().join("tang-moved")).unwrap();

    let env = [("SECURE_STORE_TANG_KEK_FILE", kek.as_path())];
    let a = Replica::start_with(fleet.root(), &url, &env);
    let b = Replica::start_with(fleet.root(), &url, &env);
    // A third one that re-reads the table only on SIGHUP.
    let hour = Path::new("1h");
    let c = Replica::start_with(
        fleet.root(),
        &url,
        &[env[0], ("SECURE_STORE_TANG_KEYS_REFRESH", hour)],
    );

    // A wrong key-encryption key: one clear error, no server.
    let wrong = tmp.path().join("wrong.kek");
    write(&wrong, "6b".repeat(32).as_bytes());
    let err = fails(
        ss(["server", "--listen", "127.0.0.1:0", "--fleet"])
            .arg(&root)
            .args(["--database-url", &url, "--tang-kek-file"])
            .arg(&wrong),
        "does not open Tang key",
    );
    assert!(err.contains(&format!("file {}", wrong.display())), "{err}");
    assert!(
        err.contains("chmod 600"),
        "a readable KEK file is warned about: {err}"
    );

    // Sealed against A's advertisement, unsealed through B.
    let seal = |adv_from: &Replica, unlock_at: &Replica| {
        let out = ok(ss([
            "seal",
            "--url",
            &unlock_at.url(""),
            "--server",
            &adv_from.url(""),
            "--fleet",
        ])
        .arg(&root)
        .env("STORE_PASSWORD", KEY));
        out.trim()
            .strip_prefix("SECURE_STORE_ENVELOPE=")
            .unwrap()
            .to_owned()
    };
    let unseal = |jwe: &str, through: &Replica| {
        ok(ss([
            "unseal",
            "--envelope",
            jwe,
            "--server",
            &through.url(""),
            "--fleet",
        ])
        .arg(&root)
        .args(["--device", "dev-1"]))
        .trim()
        .to_owned()
    };
    let old = seal(&a, &b);
    assert_eq!(unseal(&old, &b), KEY);
    assert_eq!(unseal(&old, &a), KEY);

    // Rotate through the CLI, in the database only.
    let out = ok(ss([
        "server",
        "rotate-keys",
        "--database-url",
        &url,
        "--tang-kek-file",
    ])
    .arg(&kek));
    let new_sig = out
        .split("new signing key ")
        .nth(1)
        .and_then(|t| t.split(',').next())
        .unwrap_or_else(|| panic!("{out}"))
        .to_owned();
    let advertises = |r: &Replica, thp: &str| {
        ssformat::jose::clevis::verify_advertisement(&r.adv(&fleet, "dev-1"), Some(thp)).is_ok()
    };
    assert!(!advertises(&c, &new_sig), "C re-reads only on SIGHUP");
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &c.0.child.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    // Both replicas advertise the new key after their next re-read of the
    // table (every 2 s by default), C after the SIGHUP; no deadline
    // asserted here.
    for replica in [&a, &b, &c] {
        let mut tries = 0;
        while !advertises(replica, &new_sig) {
            tries += 1;
            assert!(tries < 600, "the new key never reached a replica");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    // The old envelope still opens (its key is hidden, not gone); a new one
    // sealed through B opens through A.
    assert_eq!(unseal(&old, &a), KEY);
    assert_eq!(unseal(&old, &b), KEY);
    let new = seal(&b, &a);
    assert_eq!(unseal(&new, &a), KEY);
    assert_eq!(unseal(&new, &c), KEY);

    // The database holds no private key in clear: not the imported keys'
    // `d`, nor the rotated ones' (opened here with the KEK to know them).
    let mut db = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let rows = db
        .query(
            "SELECT thumbprint, hidden, created, format, sealed FROM tang_keys",
            &[],
        )
        .unwrap();
    assert_eq!(rows.len(), 4);
    assert_eq!(rows.iter().filter(|r| r.get::<_, i64>(1) == 1).count(), 2);
    let key = secure_store::tang::sealed::Kek::from_file(&kek).unwrap();
    let mut raw = Vec::new();
    for r in &rows {
        let row = secure_store::state::TangKeyRow {
            thumbprint: r.get(0),
            hidden: r.get::<_, i64>(1) == 1,
            created: r.get(2),
            format: r.get(3),
            sealed: secure_store::state::schema::decode_sealed("t", r.get(4)).unwrap(),
        };
        let clear = secure_store::tang::sealed::unseal(&key, &row).unwrap();
        clear_d.push(jwk_d(&clear));
        raw.extend_from_slice(r.get::<_, &str>(4).as_bytes());
        raw.extend_from_slice(&row.sealed);
    }
    let dump: String = db
        .query_one("SELECT string_agg(t::TEXT, '|') FROM tang_keys t", &[])
        .unwrap()
        .get(0);
    raw.extend_from_slice(dump.as_bytes());
    clear_d.sort();
    clear_d.dedup();
    assert_eq!(clear_d.len(), 4);
    for d in &clear_d {
        let scalar =
            base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, d).unwrap();
        assert!(
            !raw.windows(d.len()).any(|w| w == d.as_bytes()),
            "clear d in the table"
        );
        assert!(
            !raw.windows(scalar.len()).any(|w| w == scalar),
            "clear scalar in the table"
        );
        assert!(!dump.contains(&d[..16]));
    }
}
