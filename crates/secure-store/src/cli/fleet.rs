//! `secure-store fleet`: make a fleet (CA, server and admin certificates,
//! Tang keys), the original's legacy certificate, and device certificates.
//! The work is in [`crate::pki::fleet`]; this file parses, prints and
//! picks exit codes. Docs: docs/FLEET.md.

use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use base64::Engine;

use crate::pki::ca::{DEFAULT_CA_DAYS, DEFAULT_DEVICE_DAYS};
use crate::pki::fleet::{self, EnrollOptions, EnrollOut, InitOptions};
use crate::pki::layout::FleetDir;
use crate::pki::KeyType;

const INIT_HELP: &str = "\
Examples:
  secure-store fleet init ./fleet --server-name store.example.com --server-ip 192.168.1.10
  secure-store fleet init ./fleet                       # localhost, 127.0.0.1, ::1
  secure-store fleet init --legacy ./fleet --base64     # the original's -generate-keys -base64

Copy ./fleet/server/ (only that folder) to the Store Server. ./fleet/ca/ca.key
signs device certificates: keep it with the operator, never on the server.";

const ENROLL_HELP: &str = "\
Examples:
  secure-store fleet enroll ./fleet kiosk-17 --group kiosk --group eu
  secure-store fleet enroll ./fleet kiosk-17 --out /media/usb/kiosk-17
  secure-store fleet enroll ./fleet 3f2a9c1 --env   # MTLS_CERT=… MTLS_KEY=… MTLS_CA=… for a balena dashboard";

// No `Debug`: kept consistent with the other parsed commands.
#[allow(missing_debug_implementations)]
#[derive(clap::Subcommand)]
pub enum FleetCommand {
    /// Create a fleet folder: CA, server certificate, admin certificate, Tang keys.
    #[command(after_help = INIT_HELP)]
    Init(InitArgs),
    /// Issue a client certificate for one device.
    #[command(after_help = ENROLL_HELP)]
    Enroll(EnrollArgs),
    /// List the enrolled devices: id, certificate serial, expiry, groups.
    List(ListArgs),
}

#[allow(missing_debug_implementations)]
#[derive(clap::Args)]
pub struct ListArgs {
    /// The fleet folder.
    #[arg(value_name = "FLEET", env = "SECURE_STORE_FLEET")]
    fleet: PathBuf,

    /// One JSON object per line instead of a table.
    #[arg(long, env = "SECURE_STORE_JSON")]
    json: bool,
}

#[allow(missing_debug_implementations)]
#[derive(clap::Args)]
pub struct InitArgs {
    /// The fleet folder to create (must not exist, be empty, or hold only legacy/).
    #[arg(value_name = "FLEET", env = "SECURE_STORE_FLEET")]
    fleet: PathBuf,

    /// A DNS name clients use to reach the server (repeatable). With no
    /// --server-name and no --server-ip: localhost, 127.0.0.1 and ::1.
    #[arg(
        long = "server-name",
        value_name = "NAME",
        env = "SECURE_STORE_SERVER_NAMES",
        value_delimiter = ','
    )]
    server_names: Vec<String>,

    /// An IP address clients use to reach the server (repeatable).
    #[arg(
        long = "server-ip",
        value_name = "IP",
        env = "SECURE_STORE_SERVER_IPS",
        value_delimiter = ','
    )]
    server_ips: Vec<IpAddr>,

    /// Key algorithm of every key in the fleet.
    #[arg(long, value_name = "TYPE", default_value = "p256", value_parser = key_type_parser(), env = "SECURE_STORE_KEY_TYPE")]
    key_type: KeyType,

    /// Validity of the CA, server and admin certificates, in days.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_CA_DAYS, value_parser = clap::value_parser!(u32).range(1..=36500), env = "SECURE_STORE_CERT_DAYS")]
    days: u32,

    /// Write the original project's single self-signed RSA certificate
    /// (used by server and clients alike) to FLEET/legacy/ instead.
    #[arg(long, env = "SECURE_STORE_LEGACY", conflicts_with_all = ["key_type", "days"])]
    legacy: bool,

    /// With --legacy: also print MTLS_CERT= and MTLS_KEY= lines (base64
    /// PEM), like the original's -base64.
    #[arg(long, requires = "legacy", env = "SECURE_STORE_BASE64")]
    base64: bool,
}

#[allow(missing_debug_implementations)]
#[derive(clap::Args)]
pub struct EnrollArgs {
    /// The fleet folder (made by `fleet init`; needs ca/ca.key).
    #[arg(value_name = "FLEET", env = "SECURE_STORE_FLEET")]
    fleet: PathBuf,

    /// The device id: 1-64 of A-Z a-z 0-9 . _ - (e.g. the balena device UUID).
    #[arg(value_name = "DEVICE", env = "SECURE_STORE_DEVICE")]
    device: String,

    /// A group the device belongs to (repeatable); policy rules use groups.
    #[arg(
        long = "group",
        value_name = "GROUP",
        env = "SECURE_STORE_GROUPS",
        value_delimiter = ','
    )]
    groups: Vec<String>,

    /// Validity in days (never beyond the CA's own expiry).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_DEVICE_DAYS, value_parser = clap::value_parser!(u32).range(1..=36500), env = "SECURE_STORE_CERT_DAYS")]
    days: u32,

    /// Write ca.crt, client.crt and client.key to DIR instead of FLEET/devices/DEVICE/.
    #[arg(
        long,
        value_name = "DIR",
        conflicts_with = "env",
        env = "SECURE_STORE_ENROLL_OUT"
    )]
    out: Option<PathBuf>,

    /// Print MTLS_CERT=, MTLS_KEY= and MTLS_CA= lines (base64 PEM) instead
    /// of writing the key anywhere; only the certificate is kept, in
    /// FLEET/devices/DEVICE/client.crt.
    #[arg(long, env = "SECURE_STORE_ENROLL_ENV")]
    env: bool,

    /// Issue a new certificate for an already enrolled device (revoke the
    /// old serial on the server afterwards).
    #[arg(long, env = "SECURE_STORE_FORCE")]
    force: bool,
}

/// `p256` or `rsa4096`, listed in the help.
fn key_type_parser() -> impl clap::builder::TypedValueParser<Value = KeyType> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(["p256", "rsa4096"]).try_map(|s| s.parse::<KeyType>())
}

pub fn run(cmd: FleetCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        FleetCommand::Init(args) if args.legacy => init_legacy(args),
        FleetCommand::Init(args) => init(args),
        FleetCommand::Enroll(args) => enroll(args),
        FleetCommand::List(args) => list(args),
    }
}

fn list(args: ListArgs) -> anyhow::Result<ExitCode> {
    let devices = fleet::devices(&args.fleet)
        .with_context(|| format!("cannot list the devices of {}", args.fleet.display()))?;
    let mut out = std::io::stdout().lock();
    if args.json {
        for d in &devices {
            let line = serde_json::json!({
                "id": d.id,
                "serial": d.serial,
                "not_after": d.not_after,
                "groups": d.groups,
                "key_in_fleet": d.key_in_fleet,
            });
            writeln!(out, "{line}")?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(out, "DEVICE\tSERIAL\tNOT AFTER\tGROUPS")?;
    for d in &devices {
        writeln!(
            out,
            "{}\t{}\t{}\t{}",
            d.id,
            d.serial,
            d.not_after,
            d.groups.join(",")
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

fn init(args: InitArgs) -> anyhow::Result<ExitCode> {
    if args.key_type == KeyType::Rsa4096 {
        tracing::info!("generating RSA-4096 keys takes a few seconds each");
    }
    let opts = InitOptions {
        server_names: args.server_names,
        server_ips: args.server_ips,
        key_type: args.key_type,
        days: args.days,
    };
    let report = fleet::init(&args.fleet, &opts)
        .with_context(|| format!("cannot create the fleet {}", args.fleet.display()))?;
    if let Some(err) = &report.tang_error {
        tracing::warn!("the Tang keys were not generated ({err}); the server cannot answer Tang requests until they are");
    }
    let dir = FleetDir::new(&args.fleet);
    let meta = &report.meta;
    let mut names: Vec<String> = meta.server_names.clone();
    names.extend(meta.server_ips.iter().map(IpAddr::to_string));
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "created fleet {} ({}, CA valid until {})",
        meta.name, meta.key_type, meta.ca_not_after
    )?;
    writeln!(out, "  server names: {}", names.join(", "))?;
    writeln!(out, "  CA fingerprint (SHA-256): {}", meta.ca_fingerprint)?;
    writeln!(
        out,
        "  copy to the Store Server: {}/ (and nothing else)",
        dir.server().root().display()
    )?;
    writeln!(
        out,
        "  keep with the operator:   {} (signs device certificates)",
        dir.ca_key().display()
    )?;
    writeln!(
        out,
        "  admin identity:           {}/",
        dir.admin().root().display()
    )?;
    writeln!(
        out,
        "next: secure-store fleet enroll {} DEVICE [--group G] [--env]",
        args.fleet.display()
    )?;
    Ok(ExitCode::SUCCESS)
}

fn init_legacy(args: InitArgs) -> anyhow::Result<ExitCode> {
    let cert = fleet::init_legacy(&args.fleet, &args.server_names, &args.server_ips).with_context(
        || {
            format!(
                "cannot create the legacy certificate in {}",
                args.fleet.display()
            )
        },
    )?;
    let dir = FleetDir::new(&args.fleet);
    let mut out = std::io::stdout().lock();
    if args.base64 {
        let b64 = base64::engine::general_purpose::STANDARD;
        writeln!(out, "MTLS_CERT={}", b64.encode(cert.cert_pem.as_bytes()))?;
        let key_line = zeroize::Zeroizing::new(b64.encode(cert.key_pem.as_bytes()));
        writeln!(out, "MTLS_KEY={}", key_line.as_str())?;
    } else {
        writeln!(
            out,
            "created the legacy certificate {} and key {}",
            dir.legacy_cert().display(),
            dir.legacy_key().display()
        )?;
        writeln!(
            out,
            "  the server and every device use both files (the original's cert.pem/key.pem)"
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

fn enroll(args: EnrollArgs) -> anyhow::Result<ExitCode> {
    let out = match (&args.out, args.env) {
        (Some(dir), _) => EnrollOut::Dir(dir.clone()),
        (None, true) => EnrollOut::Env,
        (None, false) => EnrollOut::Fleet,
    };
    let opts = EnrollOptions {
        groups: args.groups,
        days: args.days,
        out,
        force: args.force,
    };
    let enrolled = fleet::enroll(&args.fleet, &args.device, &opts)
        .with_context(|| format!("cannot enroll {:?}", args.device))?;
    let issued = &enrolled.issued;
    if issued.clamped {
        tracing::warn!(
            "the certificate ends when the fleet CA does ({})",
            fleet::rfc3339(issued.not_after)
        );
    }
    if let Some(old) = &enrolled.replaced_serial {
        tracing::warn!(
            device = %enrolled.id,
            "the previous certificate (serial {old}) stays valid until you revoke it on the server"
        );
    }
    let mut out = std::io::stdout().lock();
    if args.env {
        let b64 = base64::engine::general_purpose::STANDARD;
        writeln!(out, "MTLS_CERT={}", b64.encode(issued.cert_pem.as_bytes()))?;
        let key_line = zeroize::Zeroizing::new(b64.encode(issued.key_pem.as_bytes()));
        writeln!(out, "MTLS_KEY={}", key_line.as_str())?;
        writeln!(out, "MTLS_CA={}", b64.encode(enrolled.ca_pem.as_bytes()))?;
    } else {
        writeln!(
            out,
            "enrolled device {} (serial {}, valid until {})",
            enrolled.id,
            issued.serial,
            fleet::rfc3339(issued.not_after)
        )?;
        for path in &enrolled.written {
            writeln!(out, "  wrote {}", path.display())?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
