//! `secure-store bench storm`: an unlock storm against a Store Server (or
//! any mTLS server answering `GET /key`, such as the nginx baseline in
//! `scripts/bench-storm`). N distinct device certificates, C concurrent
//! workers, a NEW TLS connection (full handshake, no resumption) for every
//! unlock; reports unlocks per second, p50/p99 latency and errors.

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
}

#[allow(missing_debug_implementations)]
#[derive(clap::Args)]
pub struct StormArgs {
    /// The server's base URL (https://HOST:PORT).
    #[arg(long, value_name = "URL", env = "SECURE_STORE_SERVER")]
    server: String,
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
    first_error: Option<String>,
}

pub fn run(cmd: BenchCommand) -> anyhow::Result<ExitCode> {
    let BenchCommand::Storm(args) = cmd;
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
        Endpoint::Rec => rec_unlock(&args.server, configs[0].clone()).await?,
    };
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
        let url = format!("{}{}", args.server.trim_end_matches('/'), unlock.path);
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(4096);
            let timeouts = Timeouts::all(Duration::from_secs(10));
            while Instant::now() < deadline {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize % configs.len();
                let t0 = Instant::now();
                let body = unlock.body.as_deref().map(|b| ("application/jwk+json", b));
                let result = http::request(
                    &url,
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
    use crate::pki::ca::{FleetCa, Leaf};
    let dir = crate::pki::layout::FleetDir::new(fleet);
    let read =
        |p: PathBuf| std::fs::read(&p).with_context(|| format!("cannot read {}", p.display()));
    let ca_pem = read(dir.ca_cert())?;
    let ca_key = zeroize::Zeroizing::new(read(dir.ca_key())?);
    let ca = FleetCa::load(&ca_pem, &ca_key).context("cannot load the fleet CA")?;
    let stamp = crate::server::routes::now();
    (0..n)
        .map(|i| {
            let leaf = Leaf::Device {
                id: format!("storm-{stamp}-{i}"),
                groups: vec!["storm".to_string()],
            };
            let issued = ca.issue(&leaf, 1).context("cannot enroll a bench device")?;
            let config = crate::pki::tls::client_config(
                &ca_pem,
                issued.cert_pem.as_bytes(),
                issued.key_pem.as_bytes(),
            )
            .context("cannot build a device TLS configuration")?;
            let mut config = (*config).clone();
            config.resumption = rustls::client::Resumption::disabled();
            Ok(Arc::new(config))
        })
        .collect()
}
