//! Client failover across Store Server replicas: two real `secure-store
//! server` processes on one real PostgreSQL (`state::pg_cluster`), 20
//! devices unlocking again and again with `secure-store run --server A
//! --server B … -- true` (envelope mode, each device its own certificate).
//! Replica A is killed with SIGKILL while the devices are running: every
//! unlock still succeeds (through B), none is refused, and the audit chain
//! both replicas wrote verifies afterwards. Skipped without PostgreSQL;
//! fails under `SECURE_STORE_REQUIRE_INTEROP=1`.
//!
//! Bounded in time: every `run` has `--deadline 60s`, every device thread
//! stops after a fixed number of rounds.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use secure_store::state::pg_cluster;

use super::harness::*;
use super::run::{enroll_env, plain, seal_offline, Server};
use super::server::init_fleet;

const DEVICES: usize = 20;
/// Unlocks every device makes after A is gone (each must fail over).
const ROUNDS_AFTER_KILL: usize = 2;
/// Safety bound on the rounds of one device.
const MAX_ROUNDS: usize = 40;

/// One device: its id and its `MTLS_*` variables.
struct Device {
    id: String,
    mtls: Vec<(String, String)>,
}

#[test]
fn devices_keep_unlocking_through_replica_b_when_replica_a_is_killed() {
    let Some(db) = pg_cluster::fresh_database() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let fleet = tmp.path().join("fleet");
    init_fleet(&fleet);
    let devices: Vec<Device> = (0..DEVICES)
        .map(|i| {
            let id = format!("fo-{i:02}");
            let mtls = enroll_env(&fleet, &id);
            Device { id, mtls }
        })
        .collect();

    // No rate limits: every device unlocks from 127.0.0.1 many times, and
    // a 429 would be retried anyway; here any refusal is a failure.
    let args = ["--rate-per-device", "0", "--rate-per-address", "0"];
    let envs = [("SECURE_STORE_DATABASE_URL", db.as_str())];
    let a = Server::start(&fleet, &args, &envs);
    let b = Server::start(&fleet, &args, &envs);
    let (a_url, b_url) = (a.url.clone(), b.url.clone());
    // Sealed to A's URL; the devices are told both servers, A first, so
    // before the kill they unlock through A and after it must fail over.
    let envelope = Arc::new(seal_offline(&fleet, &a_url));

    let done_before_kill = Arc::new(AtomicUsize::new(0));
    let killed = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = devices
        .into_iter()
        .map(|device| {
            let (envelope, a_url, b_url) = (envelope.clone(), a_url.clone(), b_url.clone());
            let (done_before_kill, killed) = (done_before_kill.clone(), killed.clone());
            std::thread::spawn(move || {
                // (round, killed when it started, exit code, log)
                let mut results = Vec::new();
                let mut after_kill = 0;
                for round in 0..MAX_ROUNDS {
                    let started_after_kill = killed.load(Ordering::SeqCst);
                    let r = run(ss([
                        "run",
                        "--server",
                        &a_url,
                        "--server",
                        &b_url,
                        "--retry-base",
                        "50ms",
                        "--retry-cap",
                        "200ms",
                        "--timeout",
                        "5s",
                        "--deadline",
                        "60s",
                        "--",
                        "true",
                    ])
                    .envs(device.mtls.iter().map(|(k, v)| (k, v)))
                    .env("SECURE_STORE_ENVELOPE", envelope.as_str()));
                    let code = r.code;
                    results.push((round, started_after_kill, code, plain(&r.stderr)));
                    if code != Some(0) {
                        break;
                    }
                    if started_after_kill {
                        after_kill += 1;
                        if after_kill >= ROUNDS_AFTER_KILL {
                            break;
                        }
                    } else {
                        done_before_kill.fetch_add(1, Ordering::SeqCst);
                    }
                }
                (device.id, results)
            })
        })
        .collect();

    // Mid-run: once every device unlocked through A about twice, SIGKILL A.
    let start = Instant::now();
    while done_before_kill.load(Ordering::SeqCst) < 2 * DEVICES {
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "the devices did not get going"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(a); // Child::kill: SIGKILL, then reaped.
    killed.store(true, Ordering::SeqCst);

    let mut failed_over = 0;
    for t in threads {
        let (id, results) = t.join().expect("a device thread panicked");
        for (round, after, code, log) in &results {
            assert_eq!(
                *code,
                Some(0),
                "{id} round {round} (after kill: {after}) did not unlock:\n{log}"
            );
            assert!(
                !log.contains("reason=revoked")
                    && !log.contains("reason=disabled")
                    && !log.contains("reason=refused_by_policy")
                    && !log.contains("reason=rate_limited"),
                "{id} round {round} was refused by a replica:\n{log}"
            );
        }
        let after: Vec<_> = results.iter().filter(|r| r.1).collect();
        assert!(
            after.len() >= ROUNDS_AFTER_KILL,
            "{id} ran only {} rounds after the kill",
            after.len()
        );
        // After the kill A is unreachable: the unlock came through B.
        for (_, _, _, log) in after {
            assert!(
                log.contains(&format!("server={a_url}")) && log.contains("reason=refused"),
                "{id}: A should have refused the connection:\n{log}"
            );
            failed_over += 1;
        }
    }
    assert!(failed_over >= DEVICES * ROUNDS_AFTER_KILL);

    // The chain A and B wrote into verifies (through B, the survivor), and
    // no unlock in it was refused.
    let admin = |args: &[&str]| {
        ok(ss(["admin", "--server", &b_url, "--fleet"])
            .arg(&fleet)
            .args(args))
    };
    let verify = admin(&["audit", "--verify"]);
    assert!(verify.contains("audit chain ok"), "{verify}");
    let audit: Vec<serde_json::Value> =
        serde_json::from_str(&admin(&["audit", "--json", "--limit", "100000"]))
            .unwrap_or_else(|e| panic!("audit JSON: {e}"));
    let unlocks: Vec<_> = audit
        .iter()
        .filter(|e| e["endpoint"].as_str().is_some_and(|p| p.contains("/rec")))
        .collect();
    assert!(
        unlocks.len() >= DEVICES * (2 + ROUNDS_AFTER_KILL),
        "{} unlocks audited",
        unlocks.len()
    );
    let refused: Vec<_> = unlocks
        .iter()
        .filter(|e| e["decision"].as_str() != Some("allowed"))
        .collect();
    assert!(refused.is_empty(), "refused unlocks: {refused:#?}");
    drop(b);
}

/// The load generator of `scripts/bench-scale`: `bench fill-state` writes
/// filler devices and revocations into a state database, and `bench storm`
/// with two `--server` URLs spreads its unlocks over two servers sharing
/// that state (SQLite here: no PostgreSQL needed). Not a measurement.
#[test]
fn bench_fill_state_and_a_storm_over_two_servers() {
    let tmp = tempfile::tempdir().unwrap();
    let fleet = tmp.path().join("fleet");
    init_fleet(&fleet);
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let db = format!("sqlite:{}", data.join("state.db").display());
    let out = ok(&mut ss([
        "bench",
        "fill-state",
        "--database-url",
        &db,
        "--devices",
        "50",
        "--revocations",
        "20",
        "--threads",
        "3",
    ]));
    assert!(
        out.contains("filled 50 devices and 20 revocations"),
        "{out}"
    );

    let args = [
        "--rate-per-device",
        "0",
        "--rate-per-address",
        "0",
        "--database-url",
        &db,
    ];
    let a = Server::start(&fleet, &args, &[]);
    let b = Server::start(&fleet, &args, &[]);
    let devices: Vec<serde_json::Value> =
        serde_json::from_str(&ok(ss(["admin", "--server", &a.url, "--fleet"])
            .arg(&fleet)
            .args(["devices", "--json"])))
        .unwrap();
    let fillers: Vec<_> = devices
        .iter()
        .filter(|d| d["id"].as_str().is_some_and(|id| id.starts_with("filler-")))
        .collect();
    assert_eq!(fillers.len(), 50);
    // Even revocations name filler-0 … filler-9.
    let revoked = fillers.iter().filter(|d| d["revoked"] == true).count();
    assert_eq!(revoked, 10, "{fillers:?}");

    let report = ok(ss([
        "bench", "storm", "--server", &a.url, "--server", &b.url, "--fleet",
    ])
    .arg(&fleet)
    .args([
        "--devices",
        "4",
        "--concurrency",
        "2",
        "--duration",
        "1",
        "--endpoint",
        "rec",
        "--json",
    ]));
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert_eq!(report["servers"], 2, "{report}");
    assert_eq!(report["errors"], 0, "{report}");
    assert!(report["unlocks"].as_u64().unwrap() > 0, "{report}");
    // The unlocks alternate between the two servers; each audits the ones
    // it answered into the one shared chain: all of them are there.
    let audit: Vec<serde_json::Value> =
        serde_json::from_str(&ok(ss(["admin", "--server", &b.url, "--fleet"])
            .arg(&fleet)
            .args(["audit", "--json", "--limit", "100000"])))
        .unwrap();
    let storm = audit
        .iter()
        .filter(|e| {
            e["device"]
                .as_str()
                .is_some_and(|d| d.starts_with("storm-"))
        })
        .count();
    assert_eq!(
        storm as u64,
        report["unlocks"].as_u64().unwrap(),
        "{report}"
    );
    let verify = ok(ss(["admin", "--server", &b.url, "--fleet"])
        .arg(&fleet)
        .args(["audit", "--verify"]));
    assert!(verify.contains("audit chain ok"), "{verify}");
    // And each server answered about half (its own /metrics, curl with the
    // admin certificate).
    let admin = fleet.join("admin");
    for server in [&a, &b] {
        let out = std::process::Command::new("curl")
            .args(["-sS", "--cacert"])
            .arg(admin.join("ca.crt"))
            .arg("--cert")
            .arg(admin.join("client.crt"))
            .arg("--key")
            .arg(admin.join("client.key"))
            .arg(format!("{}/metrics", server.url))
            .output()
            .expect("curl runs");
        let text = String::from_utf8_lossy(&out.stdout);
        let allowed: u64 = text
            .lines()
            .find(|l| {
                l.starts_with(r#"secure_store_requests_total{endpoint="/rec",outcome="allowed""#)
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no allowed /rec in the metrics of {}:\n{text}", server.url));
        let total = report["unlocks"].as_u64().unwrap();
        assert!(
            allowed * 2 + 2 >= total && allowed * 2 <= total + 2,
            "{} answered {allowed} of {total}",
            server.url
        );
    }
}
