//! `secure-store bench storm`: an unlock storm against a Store Server (or
//! any mTLS server answering `GET /key`, such as the nginx baseline in
//! `scripts/bench-storm`). N distinct device certificates, C concurrent
//! workers, a NEW TLS connection (full handshake, no resumption) for every
//! unlock; reports unlocks per second, p50/p99 latency and errors. With
//! several `--server` URLs (replicas) the unlocks are spread over them in
//! turn.
//!
//! Two hidden helpers for `scripts/bench-scale`: `bench fill-state` puts N
//! filler devices and M revocations into a state database through the
//! [`crate::state::Store`] API (so the policy read runs against a big
//! state), and `bench revoke-latency` measures how long after an
//! `admin revoke` through one replica another replica refuses the device.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;

use crate::client::http::{self, Timeouts};

#[allow(missing_debug_implementations)]
#[derive(clap::Subcommand)]
pub enum BenchCommand {
    /// Unlock storm: a new mutual-TLS connection per unlock, N device certificates.
    Storm(StormArgs),
    /// Fill a state database with filler devices and revocations.
    #[command(hide = true)]
    FillState(FillArgs),
    /// Time from an admin revoke through one server to refusal by another.
    #[command(hide = true)]
    RevokeLatency(RevokeArgs),
}

#[allow(missing_debug_implementations)]
#[derive(clap::Args)]
pub struct FillArgs {
    /// The state database (postgres://…, sqlite:PATH or a path).
    #[arg(long, value_name = "URL", env = "SECURE_STORE_DATABASE_URL")]
    database_url: String,
    /// Filler devices to register (each with one serial and one group).
    #[arg(long, value_name = "N", default_value_t = 0)]
    devices: usize,
    /// Revocations to add (half device ids, half certificate serials).
    #[arg(long, value_name = "M", default_value_t = 0)]
    revocations: usize,
    /// Writer threads.
    #[arg(long, value_name = "N", default_value_t = 8)]
    threads: usize,
    /// PostgreSQL: skip the final `VACUUM (ANALYZE)`, leaving the tables as
    /// the inserts left them (no statistics yet, autovacuum's pass still due).
    #[arg(long)]
    no_vacuum: bool,
}

#[allow(missing_debug_implementations)]
#[derive(clap::Args)]
pub struct RevokeArgs {
    /// The replica the revocation is sent to (admin API).
    #[arg(long, value_name = "URL")]
    revoke_via: String,
    /// The replica polled with the device's certificate until it refuses.
    #[arg(long, value_name = "URL")]
    poll: String,
    /// The fleet directory (its CA enrolls the device, its admin revokes).
    #[arg(long, value_name = "DIR", env = "SECURE_STORE_FLEET")]
    fleet: PathBuf,
    /// How many times to measure (a new device each time).
    #[arg(long, value_name = "N", default_value_t = 5)]
    repeat: usize,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[allow(missing_debug_implementations)]
#[derive(clap::Args)]
pub struct StormArgs {
    /// The server's base URL (https://HOST:PORT); repeat (or comma-separate)
    /// to spread the unlocks over several replicas in turn.
    #[arg(
        long,
        value_name = "URL",
        env = "SECURE_STORE_SERVER",
        value_delimiter = ',',
        required = true
    )]
    server: Vec<String>,
    /// The fleet directory: its CA key enrolls the bench devices in memory.
    #[arg(long, value_name = "DIR", env = "SECURE_STORE_FLEET")]
    fleet: PathBuf,
    /// Distinct device certificates.
    #[arg(long, value_name = "N", default_value_t = 100)]
    devices: usize,
    /// Concurrent workers (connections in flight).
    #[arg(long, value_name = "C", default_value_t = 16)]
    concurrency: usize,
    /// How long to run, seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0)]
    duration: f64,
    /// What one unlock is: legacy GET /key, or Tang POST /rec/{kid}.
    #[arg(long, value_enum, default_value = "key")]
    endpoint: Endpoint,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
    /// Worker threads of the load generator [default: one per core].
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Endpoint {
    Key,
    Rec,
}

/// The storm's result (also the `--json` output).
#[derive(Debug, Serialize)]
struct Report {
    unlocks: u64,
    errors: u64,
    seconds: f64,
    unlocks_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    devices: usize,
    concurrency: usize,
    endpoint: &'static str,
    servers: usize,
    first_error: Option<String>,
}

pub fn run(cmd: BenchCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        BenchCommand::Storm(args) => run_storm(args),
        BenchCommand::FillState(args) => fill_state(&args),
        BenchCommand::RevokeLatency(args) => revoke_latency(&args),
    }
}

fn run_storm(args: StormArgs) -> anyhow::Result<ExitCode> {
    if args.devices == 0 || args.concurrency == 0 {
        bail!("--devices and --concurrency must be at least 1");
    }
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if let Some(n) = args.threads {
        builder.worker_threads(n.max(1));
    }
    let runtime = builder.build().context("cannot start the async runtime")?;
    let report = runtime.block_on(storm(&args))?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "{} unlocks in {:.1}s: {:.0}/s, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, {} errors ({} devices, concurrency {})",
            report.unlocks,
            report.seconds,
            report.unlocks_per_sec,
            report.p50_ms,
            report.p99_ms,
            report.max_ms,
            report.errors,
            report.devices,
            report.concurrency
        );
        if let Some(e) = &report.first_error {
            println!("first error: {e}");
            if e.contains("rate_limited") {
                println!("hint: start the server with --rate-per-device 0 --rate-per-address 0 for a storm");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What one unlock sends.
#[derive(Clone)]
struct Unlock {
    path: String,
    method: &'static str,
    body: Option<Vec<u8>>,
    ok_status: u16,
}

async fn storm(args: &StormArgs) -> anyhow::Result<Report> {
    let configs = Arc::new(device_configs(&args.fleet, args.devices)?);
    let unlock = match args.endpoint {
        Endpoint::Key => Unlock {
            path: "/key".into(),
            method: "GET",
            body: None,
            ok_status: 201,
        },
        // Replicas share the fleet's Tang keys: one advertisement serves all.
        Endpoint::Rec => rec_unlock(&args.server[0], configs[0].clone()).await?,
    };
    let urls: Arc<Vec<String>> = Arc::new(
        args.server
            .iter()
            .map(|s| format!("{}{}", s.trim_end_matches('/'), unlock.path))
            .collect(),
    );
    let deadline = Instant::now() + Duration::from_secs_f64(args.duration.max(0.1));
    let next = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let first_error = Arc::new(std::sync::Mutex::new(None::<String>));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency {
        let configs = configs.clone();
        let next = next.clone();
        let errors = errors.clone();
        let first_error = first_error.clone();
        let unlock = unlock.clone();
        let urls = urls.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(4096);
            let timeouts = Timeouts::all(Duration::from_secs(10));
            while Instant::now() < deadline {
                let n = next.fetch_add(1, Ordering::Relaxed) as usize;
                let i = n % configs.len();
                let url = &urls[n % urls.len()];
                let t0 = Instant::now();
                let body = unlock.body.as_deref().map(|b| ("application/jwk+json", b));
                let result = http::request(
                    url,
                    unlock.method,
                    body,
                    Some(configs[i].clone()),
                    &timeouts,
                )
                .await;
                match result {
                    Ok(r) if r.status == unlock.ok_status => latencies.push(t0.elapsed()),
                    other => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        let text = match other {
                            Ok(r) => {
                                format!("HTTP {}: {}", r.status, String::from_utf8_lossy(&r.body))
                            }
                            Err(e) => e.to_string(),
                        };
                        let mut slot = first_error.lock().unwrap_or_else(|p| p.into_inner());
                        if slot.is_none() {
                            *slot = Some(text);
                        }
                    }
                }
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.context("a storm worker failed")?);
    }
    let seconds = started.elapsed().as_secs_f64();
    all.sort();
    let pct = |p: f64| -> f64 {
        if all.is_empty() {
            return 0.0;
        }
        let idx = ((all.len() as f64 - 1.0) * p).round() as usize;
        all[idx.min(all.len() - 1)].as_secs_f64() * 1000.0
    };
    let first_error = first_error
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    Ok(Report {
        unlocks: all.len() as u64,
        errors: errors.load(Ordering::Relaxed),
        seconds,
        unlocks_per_sec: all.len() as f64 / seconds,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        max_ms: pct(1.0),
        devices: args.devices,
        concurrency: args.concurrency,
        endpoint: match args.endpoint {
            Endpoint::Key => "key",
            Endpoint::Rec => "rec",
        },
        servers: args.server.len(),
        first_error,
    })
}

/// Fetches the advertisement and builds a valid `/rec` request for its
/// exchange key (a random client point, as clevis would send).
async fn rec_unlock(server: &str, tls: Arc<rustls::ClientConfig>) -> anyhow::Result<Unlock> {
    let url = format!("{}/adv", server.trim_end_matches('/'));
    let resp = http::request(&url, "GET", None, Some(tls), &Timeouts::default())
        .await
        .with_context(|| format!("GET {url}"))?;
    if resp.status != 200 {
        bail!("GET {url} answered HTTP {}", resp.status);
    }
    let (kid, body) = rec_request_for(&resp.body)?;
    Ok(Unlock {
        path: format!("/rec/{kid}"),
        method: "POST",
        body: Some(body),
        ok_status: 200,
    })
}

/// From an advertisement (JWS, JSON serialization), the exchange key's
/// thumbprint (RFC 7638, SHA-256) and a request body with a fresh point.
fn rec_request_for(adv: &[u8]) -> anyhow::Result<(String, Vec<u8>)> {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use base64::Engine;
    use sha2::Digest;
    let jws: serde_json::Value =
        serde_json::from_slice(adv).context("the advertisement is not JSON")?;
    let payload = jws["payload"]
        .as_str()
        .context("the advertisement has no payload")?;
    let keys: serde_json::Value =
        serde_json::from_slice(&B64.decode(payload).context("bad advertisement payload")?)
            .context("bad payload")?;
    let key = keys["keys"]
        .as_array()
        .and_then(|ks| {
            ks.iter().find(|k| {
                k["key_ops"]
                    .as_array()
                    .is_some_and(|ops| ops.iter().any(|o| o == "deriveKey"))
            })
        })
        .context("the advertisement has no exchange key")?;
    let (crv, x, y) = (
        key["crv"].as_str().unwrap_or_default(),
        key["x"].as_str().unwrap_or_default(),
        key["y"].as_str().unwrap_or_default(),
    );
    let canonical = format!(r#"{{"crv":"{crv}","kty":"EC","x":"{x}","y":"{y}"}}"#);
    let kid = B64.encode(sha2::Sha256::digest(canonical.as_bytes()));
    let secret = p521::SecretKey::random(&mut rand_core::OsRng);
    let point =
        p521::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(&secret.public_key(), false);
    let (Some(px), Some(py)) = (point.x(), point.y()) else {
        bail!("cannot encode a P-521 point");
    };
    let body = serde_json::json!({
        "alg": "ECMR",
        "crv": "P-521",
        "key_ops": ["deriveKey"],
        "kty": "EC",
        "x": B64.encode(px),
        "y": B64.encode(py),
    });
    Ok((kid, serde_json::to_vec(&body)?))
}

/// N device client configurations, enrolled in memory with the fleet CA
/// (`FLEET/ca/ca.{crt,key}`; nothing is written), resumption off so every
/// unlock is a full handshake.
fn device_configs(fleet: &Path, n: usize) -> anyhow::Result<Vec<Arc<rustls::ClientConfig>>> {
    let ca = BenchCa::load(fleet)?;
    let stamp = crate::server::routes::now();
    (0..n)
        .map(|i| ca.device(&format!("storm-{stamp}-{i}")))
        .collect()
}

/// The fleet CA, for enrolling bench devices in memory.
struct BenchCa {
    ca: crate::pki::ca::FleetCa,
    ca_pem: Vec<u8>,
}

impl BenchCa {
    fn load(fleet: &Path) -> anyhow::Result<BenchCa> {
        let dir = crate::pki::layout::FleetDir::new(fleet);
        let ca_pem = read(&dir.ca_cert())?;
        let ca_key = zeroize::Zeroizing::new(read(&dir.ca_key())?);
        let ca =
            crate::pki::ca::FleetCa::load(&ca_pem, &ca_key).context("cannot load the fleet CA")?;
        Ok(BenchCa { ca, ca_pem })
    }

    /// A client configuration for device `id` (group `storm`), no resumption.
    fn device(&self, id: &str) -> anyhow::Result<Arc<rustls::ClientConfig>> {
        let leaf = crate::pki::ca::Leaf::Device {
            id: id.to_owned(),
            groups: vec!["storm".to_string()],
        };
        let issued = self
            .ca
            .issue(&leaf, 1)
            .context("cannot enroll a bench device")?;
        let config = crate::pki::tls::client_config(
            &self.ca_pem,
            issued.cert_pem.as_bytes(),
            issued.key_pem.as_bytes(),
        )
        .context("cannot build a device TLS configuration")?;
        let mut config = (*config).clone();
        config.resumption = rustls::client::Resumption::disabled();
        Ok(Arc::new(config))
    }
}

fn read(p: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))
}

/// `bench fill-state`: filler devices `filler-N` (one serial, group
/// `filler`, a 10.x.y.z address) and revocations (even: a device id, the
/// first ones being filler devices; odd: a certificate serial nobody
/// uses), written through the `Store` API by a few threads.
///
/// On PostgreSQL it ends with `VACUUM (ANALYZE)` (unless `--no-vacuum`): a
/// live fleet's tables are kept vacuumed and analysed by autovacuum as they
/// grow, whereas a bulk fill leaves autovacuum's pass due, and that pass
/// then lands inside whatever runs next (docs/BENCHMARKS.md, "Fleet scale").
fn fill_state(args: &FillArgs) -> anyhow::Result<ExitCode> {
    let store = crate::state::open(Some(&args.database_url), Path::new("state.db"))
        .context("cannot open the state database")?;
    let now = crate::server::routes::now();
    let threads = args.threads.max(1);
    let started = Instant::now();
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let mut handles = Vec::new();
        for t in 0..threads {
            let store = store.clone();
            handles.push(scope.spawn(move || -> anyhow::Result<()> {
                let groups = vec!["filler".to_string()];
                for i in (t..args.devices).step_by(threads) {
                    let id = format!("filler-{i}");
                    let serial = format!("f{i:031x}");
                    let [_, b, c, d] = (i as u32).to_be_bytes();
                    store
                        .record_sighting(&crate::state::Sighting {
                            device_id: &id,
                            groups: &groups,
                            serial: &serial,
                            address: std::net::IpAddr::from([10, b, c, d]),
                            at: now,
                        })
                        .with_context(|| format!("cannot register {id}"))?;
                }
                for j in (t..args.revocations).step_by(threads) {
                    let target = if j % 2 == 0 {
                        crate::state::RevocationTarget::Device(format!("filler-{}", j / 2))
                    } else {
                        crate::state::RevocationTarget::Serial(format!("e{j:031x}"))
                    };
                    store
                        .revoke(&target, now)
                        .context("cannot add a revocation")?;
                }
                Ok(())
            }));
        }
        for h in handles {
            h.join()
                .map_err(|_| anyhow::anyhow!("a fill thread panicked"))??;
        }
        Ok(())
    })?;
    println!(
        "filled {} devices and {} revocations in {:.1}s",
        args.devices,
        args.revocations,
        started.elapsed().as_secs_f64()
    );
    // The writers' connections close here; their backends report their
    // row counts to the statistics when they exit.
    drop(store);
    let url = &args.database_url;
    if !args.no_vacuum && (url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        let started = Instant::now();
        settle_postgres(url)?;
        println!(
            "vacuumed and analysed the tables in {:.1}s",
            started.elapsed().as_secs_f64()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `VACUUM (ANALYZE)` once the fill's own connections are gone, repeated
/// (at most three times) while the statistics still count rows modified
/// since: a writer backend reports its counts as it exits, possibly just
/// after the first pass, and a count left over would make autovacuum do
/// its pass anyway.
fn settle_postgres(url: &str) -> anyhow::Result<()> {
    let shown = crate::state::postgres::redact_url(url);
    let mut client = postgres::Client::connect(url, postgres::NoTls)
        .with_context(|| format!("cannot connect to {shown}"))?;
    let others = "SELECT COUNT(*) FROM pg_stat_activity \
                  WHERE datname = current_database() AND pid <> pg_backend_pid() \
                  AND backend_type = 'client backend'";
    let deadline = Instant::now() + Duration::from_secs(10);
    while client.query_one(others, &[])?.try_get::<_, i64>(0)? > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    for _ in 0..3 {
        // Outside a transaction block (VACUUM refuses to run inside one).
        client
            .batch_execute("VACUUM (ANALYZE)")
            .with_context(|| format!("VACUUM (ANALYZE) failed on {shown}"))?;
        std::thread::sleep(Duration::from_millis(200));
        let left: i64 = client
            .query_one(
                "SELECT COALESCE(SUM(n_mod_since_analyze), 0)::BIGINT FROM pg_stat_user_tables",
                &[],
            )?
            .try_get(0)?;
        if left == 0 {
            break;
        }
    }
    Ok(())
}

/// The result of `bench revoke-latency` (also its `--json` output).
#[derive(Debug, Serialize)]
struct RevokeReport {
    /// Per run: ms from sending the revoke to the first refusal received
    /// from the polled replica.
    from_send_ms: Vec<f64>,
    /// Per run: ms from the revoke's answer to that first refusal (<= 0
    /// when the refusal came before the admin answer arrived).
    from_ack_ms: Vec<f64>,
    /// Polls that started after the revoke was acknowledged and were still
    /// allowed (should be 0: a change is enforced on the next request).
    allowed_after_ack: Vec<u64>,
}

/// `bench revoke-latency`: for each run a fresh in-memory device unlocks
/// once through `--poll`, then polls it in a tight loop (new connection
/// per request) while `POST /admin/devices/{id}/revoke` goes to
/// `--revoke-via`; reports the time until the poller's first `revoked`.
fn revoke_latency(args: &RevokeArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let report = runtime.block_on(revoke_runs(args))?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        for (i, (send, ack)) in report
            .from_send_ms
            .iter()
            .zip(&report.from_ack_ms)
            .enumerate()
        {
            println!(
                "run {i}: refused {send:.1} ms after the revoke was sent ({ack:.1} ms after its answer), {} allowed after the answer",
                report.allowed_after_ack[i]
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn revoke_runs(args: &RevokeArgs) -> anyhow::Result<RevokeReport> {
    let ca = BenchCa::load(&args.fleet)?;
    let admin_dir = crate::pki::layout::FleetDir::new(&args.fleet).admin();
    let admin = crate::pki::tls::client_config(
        &read(&admin_dir.ca_cert())?,
        &read(&admin_dir.cert())?,
        &zeroize::Zeroizing::new(read(&admin_dir.key())?),
    )
    .context("cannot load the fleet's admin identity")?;
    let timeouts = Timeouts::all(Duration::from_secs(10));
    let poll_url = format!("{}/key", args.poll.trim_end_matches('/'));
    let stamp = crate::server::routes::now();
    let mut report = RevokeReport {
        from_send_ms: Vec::new(),
        from_ack_ms: Vec::new(),
        allowed_after_ack: Vec::new(),
    };
    for run in 0..args.repeat.max(1) {
        let id = format!("revlat-{stamp}-{run}");
        let device = ca.device(&id)?;
        let first = http::request(&poll_url, "GET", None, Some(device.clone()), &timeouts)
            .await
            .with_context(|| format!("GET {poll_url}"))?;
        if first.status != 201 {
            bail!(
                "{id} is not allowed before the revoke: HTTP {} {}",
                first.status,
                String::from_utf8_lossy(&first.body)
            );
        }
        let acked = Arc::new(std::sync::Mutex::new(None::<Instant>));
        let poller = {
            let (url, device, acked, timeouts) =
                (poll_url.clone(), device.clone(), acked.clone(), timeouts);
            tokio::spawn(async move {
                let mut allowed_after_ack = 0u64;
                let give_up = Instant::now() + Duration::from_secs(30);
                while Instant::now() < give_up {
                    let began = Instant::now();
                    let r = http::request(&url, "GET", None, Some(device.clone()), &timeouts).await;
                    let at = Instant::now();
                    match r {
                        Ok(r)
                            if r.status == 403
                                && String::from_utf8_lossy(&r.body).contains("revoked") =>
                        {
                            return Ok((at, allowed_after_ack));
                        }
                        Ok(r) if r.status == 201 => {
                            let acked = *acked.lock().unwrap_or_else(|p| p.into_inner());
                            if acked.is_some_and(|ack| ack <= began) {
                                allowed_after_ack += 1;
                            }
                        }
                        Ok(r) => bail!("unexpected answer while polling: HTTP {}", r.status),
                        Err(e) => bail!("polling failed: {e}"),
                    }
                }
                bail!("the polled replica never refused the revoked device")
            })
        };
        let url = format!(
            "{}/admin/devices/{id}/revoke",
            args.revoke_via.trim_end_matches('/')
        );
        let sent = Instant::now();
        let answer = http::request(&url, "POST", None, Some(admin.clone()), &timeouts)
            .await
            .with_context(|| format!("POST {url}"))?;
        let ack = Instant::now();
        *acked.lock().unwrap_or_else(|p| p.into_inner()) = Some(ack);
        if answer.status != 200 {
            bail!("the revoke failed: HTTP {}", answer.status);
        }
        let (refused_at, allowed_after_ack) = poller.await.context("the poller failed")??;
        let ms = |from: Instant, to: Instant| {
            if to >= from {
                (to - from).as_secs_f64() * 1000.0
            } else {
                -((from - to).as_secs_f64() * 1000.0)
            }
        };
        report.from_send_ms.push(ms(sent, refused_at));
        report.from_ack_ms.push(ms(ack, refused_at));
        report.allowed_after_ack.push(allowed_after_ack);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(url: &str) -> Vec<(String, i64, bool)> {
        let mut client = postgres::Client::connect(url, postgres::NoTls).unwrap();
        client
            .query(
                "SELECT relname::TEXT, n_mod_since_analyze, last_analyze IS NOT NULL \
                 FROM pg_stat_user_tables \
                 WHERE relname IN ('devices', 'device_groups', 'device_serials', 'revocations') \
                 ORDER BY relname",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect()
    }

    /// A PostgreSQL fill ends settled: every filled table analysed, no row
    /// counted as modified since (so autovacuum has no pass due), unless
    /// `--no-vacuum`.
    #[test]
    fn fill_state_on_postgres_leaves_the_tables_analysed() {
        for no_vacuum in [false, true] {
            let Some(url) = crate::state::pg_cluster::fresh_database() else {
                return;
            };
            let args = FillArgs {
                database_url: url.clone(),
                devices: 300,
                revocations: 40,
                threads: 3,
                no_vacuum,
            };
            fill_state(&args).unwrap();
            let stats = stats(&url);
            assert_eq!(stats.len(), 4, "{stats:?}");
            for (table, modified, analysed) in stats {
                if no_vacuum {
                    assert!(!analysed, "{table} analysed with --no-vacuum");
                } else {
                    assert!(analysed, "{table} not analysed");
                    assert_eq!(modified, 0, "{table}: rows modified since the analyse");
                }
            }
        }
    }
}
