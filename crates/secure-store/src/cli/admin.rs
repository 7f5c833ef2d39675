//! `secure-store admin`: the operator's client for a running Store Server's
//! admin API (`docs/SERVER.md`, "Admin API"). It speaks mutual TLS with the
//! admin certificate from `FLEET/admin` (or `--cert/--key/--ca`), one
//! request per command, and prints a table (or JSON with `--json`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context};

use crate::api::ErrorBody;
use crate::client::http::{self, Timeouts};
use crate::pki::layout::{ClientDir, FleetDir};
use crate::server::admin::Ack;
use crate::state::{AuditRecord, AuditVerification, Device, Rule, RuleAction, RuleSpec};

/// Manage a running Store Server: devices, revocations, rules, audit.
#[allow(missing_debug_implementations)]
#[derive(clap::Args)]
#[command(after_help = "Examples:
  secure-store admin --fleet ./fleet --server https://keys.local:8443 devices
  secure-store admin --fleet ./fleet --server https://keys.local:8443 revoke kiosk-17
  secure-store admin --fleet ./fleet --server https://keys.local:8443 rules add allow 10.0.0.0/8
  secure-store admin --fleet ./fleet --server https://keys.local:8443 audit --since 1h --verify")]
pub struct AdminArgs {
    /// The fleet directory (its admin/ identity is used).
    #[arg(long, value_name = "DIR", env = "SECURE_STORE_FLEET")]
    fleet: Option<PathBuf>,

    /// The server's URL.
    #[arg(long, value_name = "URL", env = "SECURE_STORE_SERVER")]
    server: String,

    /// Admin client certificate (PEM) [default: FLEET/admin/client.crt].
    #[arg(long, value_name = "FILE", env = "SECURE_STORE_ADMIN_CERT")]
    cert: Option<PathBuf>,

    /// Admin client key (PEM) [default: FLEET/admin/client.key].
    #[arg(long, value_name = "FILE", env = "SECURE_STORE_ADMIN_KEY")]
    key: Option<PathBuf>,

    /// CA certificate that verifies the server [default: FLEET/admin/ca.crt].
    #[arg(long, value_name = "FILE", env = "SECURE_STORE_ADMIN_CA")]
    ca: Option<PathBuf>,

    /// Print JSON instead of a table.
    #[arg(long, global = true, env = "SECURE_STORE_JSON")]
    json: bool,

    /// Deadline for each phase of the request (connect, handshake, answer).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = super::server::parse_duration, env = "SECURE_STORE_ADMIN_TIMEOUT")]
    timeout: std::time::Duration,

    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(clap::Subcommand)]
enum AdminCommand {
    /// List the devices the server has seen or been told about.
    Devices,
    /// Revoke a device (by id) or one certificate (--serial); effective on the next request.
    Revoke {
        /// The device id.
        #[arg(required_unless_present = "serial", conflicts_with = "serial")]
        device: Option<String>,
        /// A certificate serial (hex).
        #[arg(long, value_name = "HEX")]
        serial: Option<String>,
    },
    /// Enable a disabled device.
    Enable { device: String },
    /// Disable a device (refused until enabled again).
    Disable { device: String },
    /// Network rules and store grants.
    #[command(subcommand)]
    Rules(RulesCommand),
    /// Show the audit log (newest last), or check its hash chain with --verify.
    Audit {
        /// Only entries since a time: a duration back (1h, 30m) or unix seconds or YYYY-MM-DD[THH:MM:SSZ].
        #[arg(long, value_name = "WHEN")]
        since: Option<String>,
        /// Only entries for this device.
        #[arg(long, value_name = "ID")]
        device: Option<String>,
        /// At most this many entries.
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
        /// Walk the whole hash chain and report whether it is intact (exit 1 if not).
        #[arg(long)]
        verify: bool,
    },
}

#[derive(clap::Subcommand)]
enum RulesCommand {
    /// Add a rule: `allow CIDR`, `deny CIDR` (optionally for one --group), or `store STORE --group G`.
    Add {
        /// allow, deny or store.
        #[arg(value_parser = ["allow", "deny", "store"])]
        kind: String,
        /// The CIDR (allow/deny) or the store (a Tang key id, or `legacy`).
        target: String,
        /// The group the rule is for (required for store grants).
        #[arg(long, value_name = "GROUP")]
        group: Option<String>,
    },
    /// Remove a rule by id.
    Rm { id: i64 },
    /// List the rules.
    List,
}

/// The admin client's TLS configuration and the server URL.
struct Conn {
    base: String,
    tls: Arc<rustls::ClientConfig>,
    timeouts: Timeouts,
}

impl Conn {
    fn call(&self, method: &str, path: &str, body: Option<&[u8]>) -> anyhow::Result<Vec<u8>> {
        let url = format!("{}{}", self.base.trim_end_matches('/'), path);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        let resp = runtime
            .block_on(http::request(
                &url,
                method,
                body.map(|b| ("application/json", b)),
                Some(self.tls.clone()),
                &self.timeouts,
            ))
            .with_context(|| format!("{method} {path} failed"))?;
        if !(200..300).contains(&resp.status) {
            match serde_json::from_slice::<ErrorBody>(&resp.body) {
                Ok(e) => bail!(
                    "the server refused {method} {path}: {} ({}, HTTP {})",
                    e.message,
                    e.error,
                    resp.status
                ),
                Err(_) => bail!(
                    "the server answered HTTP {} to {method} {path}",
                    resp.status
                ),
            }
        }
        Ok(resp.body)
    }

    fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let body = self.call("GET", path, None)?;
        serde_json::from_slice(&body).with_context(|| format!("unexpected answer to GET {path}"))
    }
}

fn escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub fn run(args: AdminArgs) -> anyhow::Result<ExitCode> {
    let identity = args.fleet.as_ref().map(|f| FleetDir::new(f).admin());
    let pick = |given: &Option<PathBuf>,
                from: fn(&ClientDir) -> PathBuf,
                what: &str|
     -> anyhow::Result<PathBuf> {
        match (given, &identity) {
            (Some(p), _) => Ok(p.clone()),
            (None, Some(dir)) => Ok(from(dir)),
            (None, None) => bail!("no admin {what}: give --fleet or --{what}"),
        }
    };
    let cert = pick(&args.cert, ClientDir::cert, "cert")?;
    let key = pick(&args.key, ClientDir::key, "key")?;
    let ca = pick(&args.ca, ClientDir::ca_cert, "ca")?;
    let conn = Conn {
        base: args.server.clone(),
        tls: client_tls(&cert, &key, &ca)?,
        timeouts: Timeouts::all(args.timeout),
    };
    let json = args.json;
    match args.command {
        AdminCommand::Devices => {
            let devices: Vec<Device> = conn.get("/admin/devices")?;
            if json {
                print_json(&devices)?;
            } else {
                print_devices(&devices);
            }
        }
        AdminCommand::Revoke { device, serial } => {
            let path = match (device, serial) {
                (Some(d), None) => format!("/admin/devices/{}/revoke", escape(&d)),
                (None, Some(s)) => format!("/admin/revoke-serial/{}", escape(&s)),
                _ => bail!("give a DEVICE or --serial"),
            };
            ack(&conn, &path, None, json)?;
        }
        AdminCommand::Enable { device } => ack(
            &conn,
            &format!("/admin/devices/{}/enable", escape(&device)),
            None,
            json,
        )?,
        AdminCommand::Disable { device } => ack(
            &conn,
            &format!("/admin/devices/{}/disable", escape(&device)),
            None,
            json,
        )?,
        AdminCommand::Rules(RulesCommand::List) => {
            let rules: Vec<Rule> = conn.get("/admin/rules")?;
            if json {
                print_json(&rules)?;
            } else {
                print_rules(&rules);
            }
        }
        AdminCommand::Rules(RulesCommand::Add {
            kind,
            target,
            group,
        }) => {
            let spec = match kind.as_str() {
                "store" => RuleSpec::Store {
                    store: target,
                    group: group.context("a store grant needs --group")?,
                },
                action => RuleSpec::Network {
                    action: if action == "allow" {
                        RuleAction::Allow
                    } else {
                        RuleAction::Deny
                    },
                    cidr: target
                        .parse()
                        .with_context(|| format!("not a CIDR: {target}"))?,
                    group,
                },
            };
            let body = serde_json::to_vec(&spec)?;
            let rule: Rule =
                serde_json::from_slice(&conn.call("POST", "/admin/rules", Some(&body))?)
                    .context("unexpected answer to POST /admin/rules")?;
            if json {
                print_json(&rule)?;
            } else {
                println!("added rule {}", rule.id);
            }
        }
        AdminCommand::Rules(RulesCommand::Rm { id }) => {
            ack(&conn, &format!("/admin/rules/{id}"), Some("DELETE"), json)?
        }
        AdminCommand::Audit {
            since,
            device,
            limit,
            verify,
        } => {
            if verify {
                let v: AuditVerification = conn.get("/admin/audit/verify")?;
                if json {
                    print_json(&v)?;
                } else if let Some(bad) = v.first_bad_seq {
                    println!("audit chain BROKEN at entry {bad} ({} entries)", v.entries);
                } else {
                    println!("audit chain ok ({} entries)", v.entries);
                }
                return Ok(if v.first_bad_seq.is_some() {
                    ExitCode::FAILURE
                } else {
                    ExitCode::SUCCESS
                });
            }
            let mut query = Vec::new();
            if let Some(s) = since {
                query.push(format!("since={}", parse_since(&s)?));
            }
            if let Some(d) = device {
                query.push(format!("device={}", escape(&d)));
            }
            if let Some(l) = limit {
                query.push(format!("limit={l}"));
            }
            let path = if query.is_empty() {
                "/admin/audit".to_string()
            } else {
                format!("/admin/audit?{}", query.join("&"))
            };
            let records: Vec<AuditRecord> = conn.get(&path)?;
            if json {
                print_json(&records)?;
            } else {
                print_audit(&records);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn ack(conn: &Conn, path: &str, method: Option<&str>, json: bool) -> anyhow::Result<()> {
    let body = conn.call(method.unwrap_or("POST"), path, None)?;
    let ack: Ack =
        serde_json::from_slice(&body).with_context(|| format!("unexpected answer to {path}"))?;
    if json {
        print_json(&ack)
    } else {
        println!("{}", ack.message);
        Ok(())
    }
}

fn print_json<T: serde::Serialize>(v: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

fn print_table(header: &[&str], rows: Vec<Vec<String>>) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        println!("{}", s.trim_end());
    };
    line(header.iter().map(|h| h.to_string()).collect());
    for row in rows {
        line(row);
    }
}

fn print_devices(devices: &[Device]) {
    let rows = devices
        .iter()
        .map(|d| {
            vec![
                d.id.clone(),
                if d.revoked {
                    "revoked".into()
                } else {
                    format!("{:?}", d.status).to_lowercase()
                },
                d.groups.join(","),
                format_time(d.last_seen),
                d.last_address
                    .map(|a| a.to_string())
                    .unwrap_or_else(|| "-".into()),
                d.serials.join(","),
            ]
        })
        .collect();
    print_table(
        &[
            "DEVICE",
            "STATUS",
            "GROUPS",
            "LAST SEEN",
            "LAST ADDRESS",
            "SERIALS",
        ],
        rows,
    );
}

fn print_rules(rules: &[Rule]) {
    let rows = rules
        .iter()
        .map(|r| match &r.spec {
            RuleSpec::Network {
                action,
                cidr,
                group,
            } => vec![
                r.id.to_string(),
                format!("{action:?}").to_lowercase(),
                cidr.to_string(),
                group.clone().unwrap_or_else(|| "*".into()),
            ],
            RuleSpec::Store { store, group } => vec![
                r.id.to_string(),
                "store".into(),
                store.clone(),
                group.clone(),
            ],
        })
        .collect();
    print_table(&["ID", "KIND", "TARGET", "GROUP"], rows);
}

fn print_audit(records: &[AuditRecord]) {
    let rows = records
        .iter()
        .map(|r| {
            let e = &r.event;
            vec![
                r.seq.to_string(),
                format_time(e.time),
                format!("{:?}", e.decision).to_lowercase(),
                e.reason.clone(),
                e.device.clone().unwrap_or_else(|| "-".into()),
                e.address
                    .map(|a| a.to_string())
                    .unwrap_or_else(|| "-".into()),
                e.endpoint.clone(),
                e.key_id.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    print_table(
        &[
            "SEQ", "TIME", "DECISION", "REASON", "DEVICE", "ADDRESS", "ENDPOINT", "KEY",
        ],
        rows,
    );
}

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// `YYYY-MM-DDTHH:MM:SSZ` (UTC) for unix seconds.
pub(crate) fn format_time(t: i64) -> String {
    let days = t.div_euclid(86400);
    let secs = t.rem_euclid(86400);
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// `--since`: a duration back from now, unix seconds, or a UTC date/time.
fn parse_since(text: &str) -> anyhow::Result<i64> {
    let now = crate::server::routes::now();
    if let Ok(n) = text.parse::<i64>() {
        return Ok(n);
    }
    if let Ok(d) = super::server::parse_duration(text) {
        return Ok(now - d.as_secs() as i64);
    }
    let t = text.trim_end_matches('Z');
    let (date, clock) = t.split_once('T').unwrap_or((t, "00:00:00"));
    let num = |s: &str| s.parse::<i64>().ok();
    let dp: Vec<Option<i64>> = date.split('-').map(num).collect();
    let cp: Vec<Option<i64>> = clock.split(':').map(num).collect();
    match (dp.as_slice(), cp.as_slice()) {
        ([Some(y), Some(m), Some(d)], [Some(h), Some(mi), Some(s)])
            if (1..=12).contains(m) && (1..=31).contains(d) =>
        {
            Ok(days_from_civil(*y, *m, *d) * 86400 + h * 3600 + mi * 60 + s)
        }
        _ => {
            bail!("--since {text:?}: use a duration (1h), unix seconds, or YYYY-MM-DD[THH:MM:SSZ]")
        }
    }
}

fn client_tls(
    cert: &std::path::Path,
    key: &std::path::Path,
    ca: &std::path::Path,
) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let read = |p: &std::path::Path| {
        std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))
    };
    let ca_pem = read(ca)?;
    let cert_pem = read(cert)?;
    let key_pem = zeroize::Zeroizing::new(read(key)?);
    crate::pki::tls::client_config(&ca_pem, &cert_pem, &key_pem)
        .context("cannot build the admin TLS configuration")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip() {
        assert_eq!(format_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_time(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(parse_since("2023-11-14T22:13:20Z").unwrap(), 1_700_000_000);
        assert_eq!(parse_since("1970-01-02").unwrap(), 86400);
        assert_eq!(parse_since("12345").unwrap(), 12345);
        assert!(parse_since("1h").unwrap() < crate::server::routes::now());
        assert!(parse_since("yesterday").is_err());
    }
}
