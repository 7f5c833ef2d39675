//! `secure-store seal` and `secure-store unseal`: the store key wrapped
//! into a clevis tang-pin envelope (compact JWE) and recovered from it.
//!
//! Sealing needs only the server's signed advertisement: from the fleet
//! folder (offline), from a file, or fetched from a server (`GET /adv`,
//! over mutual TLS with the fleet's admin certificate, or plain HTTP from
//! a stock Tang listener). `--url` is what devices will use to reach the
//! server and is written into the envelope. Unsealing is one `/rec`
//! request and is meant for checks and debugging: devices use `run`.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};

use super::key::KeyArgs;
use super::run::{client_for, codes};
use crate::client::backoff::parse_duration;
use crate::client::discover;
use crate::client::identity;
use crate::client::recover;
use crate::client::unlock::Attempt;
use crate::pki::layout::FleetDir;

/// `secure-store seal` options. No `Debug`: they can hold a key.
#[allow(missing_debug_implementations)]
#[derive(clap::Args)]
#[command(after_help = "\
Examples:
  # Offline, from the fleet folder (the advertisement of FLEET/server/tang):
  secure-store seal --url https://keys.local:8443 --fleet ./fleet --key-file store.key
  # From the running server (admin certificate of the fleet):
  secure-store seal --url https://keys.local:8443 --server https://keys.local:8443 --fleet ./fleet
  # From a stock Tang server, into a file:
  secure-store seal --url http://tang.local --server http://tang.local --out store.jwe

Prints SECURE_STORE_ENVELOPE=<JWE> for a dashboard, or writes the bare JWE
(what `clevis decrypt` and `run --envelope-file` read) with --out.")]
pub struct SealArgs {
    /// The server URL devices will use; written into the envelope.
    #[arg(long, value_name = "URL", env = "SECURE_STORE_SEAL_URL")]
    pub url: String,
    /// Fleet folder: its Tang advertisement (offline), or its admin identity with --server.
    #[arg(long, value_name = "FLEET", env = "SECURE_STORE_FLEET")]
    pub fleet: Option<PathBuf>,
    /// The advertisement (JWS from GET /adv) in a file.
    #[arg(
        long,
        value_name = "ADV.json",
        env = "SECURE_STORE_ADV",
        conflicts_with = "server"
    )]
    pub adv: Option<PathBuf>,
    /// Fetch the advertisement from this server (https: mutual TLS; http: a plain Tang listener).
    #[arg(long, value_name = "URL", env = "SECURE_STORE_ADV_SERVER")]
    pub server: Option<String>,
    /// Require the advertisement to be signed by the key with this thumbprint.
    #[arg(long, value_name = "THP", env = "SECURE_STORE_THP")]
    pub thp: Option<String>,
    /// Write the bare JWE (no newline) to this new file (mode 0600) instead of printing.
    #[arg(long, value_name = "FILE", env = "SECURE_STORE_SEAL_OUT")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub tls: TlsArgs,
    /// Time limit for each phase of the request to --server.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration, env = "SECURE_STORE_TIMEOUT")]
    pub timeout: Duration,
    #[command(flatten)]
    pub key: KeyArgs,
}

/// A client identity from files (MTLS_CERT/MTLS_KEY/MTLS_CA base64 env win).
#[derive(clap::Args, Debug)]
pub struct TlsArgs {
    /// Client certificate PEM file.
    #[arg(long, value_name = "FILE", env = "MTLS_CERT_FILE")]
    pub cert: Option<PathBuf>,
    /// Client private key PEM file.
    #[arg(long, value_name = "FILE", env = "MTLS_KEY_FILE")]
    pub tls_key: Option<PathBuf>,
    /// CA certificate PEM file for the server's certificate.
    #[arg(long, value_name = "FILE", env = "MTLS_CA_FILE")]
    pub ca: Option<PathBuf>,
}

impl TlsArgs {
    /// The files: explicit ones, else `dir`'s client identity (the fleet's admin folder).
    fn files(&self, dir: Option<crate::pki::layout::ClientDir>) -> identity::Files {
        identity::Files {
            cert: self.cert.clone().or_else(|| dir.as_ref().map(|d| d.cert())),
            key: self
                .tls_key
                .clone()
                .or_else(|| dir.as_ref().map(|d| d.key())),
            ca: self
                .ca
                .clone()
                .or_else(|| dir.as_ref().map(|d| d.ca_cert())),
        }
    }
}

pub fn run(args: SealArgs) -> anyhow::Result<ExitCode> {
    let adv = if let Some(path) = &args.adv {
        std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?
    } else if let Some(server) = &args.server {
        let admin = args.fleet.as_ref().map(|f| FleetDir::new(f).admin());
        let client = client_for(
            std::slice::from_ref(server),
            &args.tls.files(admin),
            false,
            args.timeout,
        )?;
        recover::advertisement(&client, server, args.thp.as_deref()).map_err(|e| {
            anyhow::anyhow!(
                "cannot fetch the advertisement from {server}: {e} (kind {})",
                e.kind.code()
            )
        })?
    } else if let Some(fleet) = &args.fleet {
        let dir = FleetDir::new(fleet).server().tang();
        crate::tang::KeySet::load(&dir)
            .and_then(|set| set.adv(None))
            .with_context(|| format!("cannot read the Tang keys in {}", dir.display()))?
    } else {
        bail!("say where the advertisement comes from: --fleet FLEET, --adv FILE or --server URL");
    };
    let key = args.key.load()?;
    let jwe = crate::tang::clevis::seal(
        &adv,
        &args.url,
        args.thp.as_deref(),
        key.expose().as_bytes(),
    )
    .context("cannot seal to this advertisement")?;
    match &args.out {
        None => println!("SECURE_STORE_ENVELOPE={jwe}"),
        Some(path) => {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .with_context(|| {
                    format!("cannot create {} (it must not exist yet)", path.display())
                })?;
            file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
            // No newline: `clevis decrypt < FILE` takes the whole input as the JWE.
            file.write_all(jwe.as_bytes())
                .and_then(|()| file.sync_all())
                .with_context(|| format!("cannot write {}", path.display()))?;
            tracing::info!(
                "wrote the envelope to {} ({} bytes)",
                path.display(),
                jwe.len()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `secure-store unseal` options.
#[allow(missing_debug_implementations)]
#[derive(clap::Args)]
#[command(after_help = "\
Prints the store key: for checks and debugging only (devices use `secure-store run`).
Example:
  secure-store unseal --envelope-file store.jwe --cert client.crt --tls-key client.key --ca ca.crt")]
pub struct UnsealArgs {
    /// The envelope (compact JWE).
    #[arg(
        long,
        value_name = "JWE",
        env = "SECURE_STORE_ENVELOPE",
        hide_env_values = true
    )]
    pub envelope: Option<String>,
    /// Read the envelope from this file (`-` for stdin).
    #[arg(
        long,
        value_name = "FILE",
        env = "SECURE_STORE_ENVELOPE_FILE",
        conflicts_with = "envelope"
    )]
    pub envelope_file: Option<PathBuf>,
    /// Ask this server instead of the URL in the envelope.
    #[arg(long, value_name = "URL", env = "SECURE_STORE_SERVER")]
    pub server: Option<String>,
    /// Find the server by mDNS (_secure-store._tcp.local) instead (also used when there is no URL).
    #[arg(long, env = "SECURE_STORE_DISCOVER", conflicts_with = "server")]
    pub discover: bool,
    /// Use this fleet's device (with --device) identity files.
    #[arg(
        long,
        value_name = "FLEET",
        env = "SECURE_STORE_FLEET",
        requires = "device"
    )]
    pub fleet: Option<PathBuf>,
    /// The device folder in --fleet (FLEET/devices/DEVICE).
    #[arg(
        long,
        value_name = "DEVICE",
        env = "SECURE_STORE_DEVICE",
        requires = "fleet"
    )]
    pub device: Option<String>,
    #[command(flatten)]
    pub tls: TlsArgs,
    /// Time limit for each phase of the request.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration, env = "SECURE_STORE_TIMEOUT")]
    pub timeout: Duration,
}

pub fn run_unseal(args: UnsealArgs) -> anyhow::Result<ExitCode> {
    let jwe = match (&args.envelope, &args.envelope_file) {
        (Some(e), _) => e.trim().to_owned(),
        (None, Some(p)) if p.as_os_str() == "-" => {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
                .context("cannot read the envelope from stdin")?;
            s.trim().to_owned()
        }
        (None, Some(p)) => std::fs::read_to_string(p)
            .with_context(|| format!("cannot read {}", p.display()))?
            .trim()
            .to_owned(),
        (None, None) => {
            bail!("no envelope: pass --envelope-file FILE or set SECURE_STORE_ENVELOPE")
        }
    };
    let server = match &args.server {
        Some(s) => s.clone(),
        None if args.discover => discover::PSEUDO_SERVER.to_owned(),
        None => recover::envelope_url(&jwe)
            .filter(|u| !u.trim().is_empty())
            .unwrap_or_else(|| discover::PSEUDO_SERVER.to_owned()),
    };
    let device = match (&args.fleet, &args.device) {
        (Some(f), Some(d)) => Some(FleetDir::new(f).device(d)),
        _ => None,
    };
    let client = client_for(
        std::slice::from_ref(&server),
        &args.tls.files(device),
        false,
        args.timeout,
    )?;
    let outcome = if server == discover::PSEUDO_SERVER {
        let wait = discover::browse_wait(args.timeout);
        discover::attempt(&client, wait, &mut |c, url| recover::envelope(c, &jwe, url))
    } else {
        recover::envelope(&client, &jwe, &server)
    };
    match outcome {
        Attempt::Ok(key) => {
            tracing::warn!("printing the store key: use this for debugging only");
            println!("{}", key.expose());
            Ok(ExitCode::SUCCESS)
        }
        Attempt::Failed(e) if e.kind.is_final() => {
            eprintln!("error: {server} refused: {e} (kind {})", e.kind.code());
            Ok(ExitCode::from(codes::REVOKED))
        }
        Attempt::Failed(e) => bail!("{server}: {e} (kind {})", e.kind.code()),
        Attempt::Fatal(message) => bail!("{message}"),
    }
}
