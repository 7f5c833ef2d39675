//! `secure-store run [OPTIONS] -- APP [ARGS…]`: what runs on a device.
//!
//! Sequence (ARCHITECTURE.md §6): harden the process, install the signal
//! handlers, get the store key (from the server with retries, or locally),
//! decrypt the `ENCRYPTED_*` values into the app's environment, make the
//! store's content available (materialize or mount), start the app, pass
//! signals on, and when it ends remove the decrypted content and exit with
//! its code. Exit codes are listed in docs/CLIENT.md and in [`codes`].

use std::ffi::OsString;
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::Duration;

use anyhow::Context;

use crate::client::backoff::{parse_duration, Policy};
use crate::client::discover;
use crate::client::env as child_env;
use crate::client::http::Timeouts;
use crate::client::identity::{self, Identity};
use crate::client::materialize::{self, Materialized};
use crate::client::recover::{self, Client};
use crate::client::supervise::{self, Signals, SpawnError};
use crate::client::sys;
use crate::client::unlock::{self, HashItem, RetryError};
use crate::crypt::store::{Store, StorePaths};
use crate::mount::{MountOptions, Mounted};
use crate::secret::StoreKey;

/// Our own exit codes (the app's code is passed through otherwise).
pub mod codes {
    /// Setup failed (bad options, unreadable store, …).
    pub const SETUP: u8 = 1;
    /// An `ENCRYPTED_*` value or the envelope did not decrypt (EX_DATAERR).
    pub const DATA: u8 = 65;
    /// No server answered before `--deadline` (EX_TEMPFAIL).
    pub const UNREACHABLE: u8 = 75;
    /// The server refused for good: this device is revoked or disabled (EX_CONFIG).
    pub const REVOKED: u8 = 78;
    /// The app exists but cannot be executed (the shell's code).
    pub const NOT_EXECUTABLE: u8 = 126;
    /// The app was not found (the shell's code).
    pub const NOT_FOUND: u8 = 127;
}

const AFTER_HELP: &str = "\
Examples:
  # Envelope unlock over mutual TLS, certs from the dashboard's base64 env:
  SECURE_STORE_SERVER=https://keys.local:8443 SECURE_STORE_ENVELOPE=eyJ... \\
  MTLS_CERT=... MTLS_KEY=... MTLS_CA=... secure-store run -- node app.js
  # The original server (GET /key):
  secure-store run --legacy --server https://keys.local:8443 --cert cert.pem --key key.pem -- ./app
  # No URL configured: find a `server --mdns` on the local link (TLS still checks it):
  SECURE_STORE_ENVELOPE=eyJ... MTLS_CERT=... secure-store run --discover -- ./app
  # Offline, store decrypted into RAM:
  STORE_PASSWORD=... secure-store run --store /data/store --materialize /dev/shm/app -- ./app

Exit codes: the app's own (128+N if a signal N ended it); 1 setup error; 2 usage;
65 an ENCRYPTED_* value or the envelope did not decrypt; 75 no server before --deadline;
78 this device is revoked or disabled; 126/127 the app is not executable / not found;
128+N a signal N stopped us before the app started.";

/// `secure-store run` options. No `Debug`: they can hold a key.
#[allow(missing_debug_implementations)]
#[derive(clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct RunArgs {
    /// Store Server URL (https://HOST:PORT); repeat or comma-separate to try several in turn.
    /// Default for the envelope mode: the URL sealed into the envelope.
    #[arg(
        long = "server",
        value_name = "URL",
        env = "SECURE_STORE_SERVER",
        value_delimiter = ','
    )]
    pub servers: Vec<String>,

    /// Also look for servers by mDNS (_secure-store._tcp.local), after any --server/envelope URL.
    /// Without a URL at all, discovery is used anyway.
    #[arg(long, env = "SECURE_STORE_DISCOVER")]
    pub discover: bool,

    /// Client certificate PEM file (MTLS_CERT, base64 PEM, wins over it).
    #[arg(long, value_name = "FILE", env = "MTLS_CERT_FILE")]
    pub cert: Option<PathBuf>,
    /// Client private key PEM file (MTLS_KEY, base64 PEM, wins over it).
    #[arg(
        long,
        visible_alias = "tls-key",
        value_name = "FILE",
        env = "MTLS_KEY_FILE"
    )]
    pub key: Option<PathBuf>,
    /// CA certificate PEM file that signed the server's certificate (MTLS_CA wins over it).
    #[arg(long, value_name = "FILE", env = "MTLS_CA_FILE")]
    pub ca: Option<PathBuf>,

    /// The sealed store key (compact JWE from `secure-store seal`): unlock through /rec.
    #[arg(
        long,
        value_name = "JWE",
        env = "SECURE_STORE_ENVELOPE",
        hide_env_values = true
    )]
    pub envelope: Option<String>,
    /// Read the envelope from this file instead.
    #[arg(
        long,
        value_name = "FILE",
        env = "SECURE_STORE_ENVELOPE_FILE",
        conflicts_with = "envelope"
    )]
    pub envelope_file: Option<PathBuf>,
    /// Ask the original project's endpoint, GET /key ({"password": …}).
    #[arg(long, env = "SECURE_STORE_LEGACY")]
    pub legacy: bool,
    /// The store key itself, offline (the original's -local). Prefer STORE_PASSWORD.
    #[arg(
        long,
        value_name = "KEY",
        env = "STORE_PASSWORD",
        hide_env_values = true
    )]
    pub local_key: Option<String>,
    /// Read the store key from this file, offline.
    #[arg(long, value_name = "FILE", env = "STORE_KEY_FILE")]
    pub key_file: Option<PathBuf>,
    /// Derive the store key: hex SHA-256 over these files' contents and env:NAME values, in order.
    #[arg(long, value_name = "PATH|env:NAME", num_args = 1.., value_delimiter = ',', env = "SECURE_STORE_KEY_FROM_ENV_HASH")]
    pub key_from_env_hash: Vec<HashItem>,

    /// First backoff window (retries wait a random time up to min(cap, base*2^n)).
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration, env = "SECURE_STORE_RETRY_BASE")]
    pub retry_base: Duration,
    /// Largest backoff window.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration, env = "SECURE_STORE_RETRY_CAP")]
    pub retry_cap: Duration,
    /// Give up (exit 75) when no server answered within this time. Default: retry forever.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, env = "SECURE_STORE_DEADLINE")]
    pub deadline: Option<Duration>,
    /// Time limit for each phase of one request (connect, TLS handshake, answer).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration, env = "SECURE_STORE_TIMEOUT")]
    pub timeout: Duration,

    /// Start the app even if this ENCRYPTED_NAME value does not decrypt (it is left out). Repeatable.
    #[arg(
        long,
        value_name = "NAME",
        env = "SECURE_STORE_ALLOW_MISSING",
        value_delimiter = ','
    )]
    pub allow_missing: Vec<String>,

    /// The encrypted store (folder with encrypt.conf) for --mount or --materialize.
    #[arg(long, value_name = "DIR", env = "SECURE_STORE_STORE")]
    pub store: Option<PathBuf>,
    /// Mount the decrypted store here (FUSE, read-write) while the app runs.
    #[arg(
        long,
        value_name = "DIR",
        env = "SECURE_STORE_MOUNT",
        requires = "store",
        conflicts_with = "materialize"
    )]
    pub mount: Option<PathBuf>,
    /// Decrypt the store into this folder on tmpfs (0700, files 0600), removed on exit.
    #[arg(
        long,
        value_name = "DIR",
        env = "SECURE_STORE_MATERIALIZE",
        requires = "store"
    )]
    pub materialize: Option<PathBuf>,
    /// Let --materialize write to a folder that is not on tmpfs/ramfs.
    #[arg(
        long,
        env = "SECURE_STORE_ALLOW_PERSISTENT_MATERIALIZE",
        requires = "materialize"
    )]
    pub allow_persistent_materialize: bool,
    /// Only decrypt the ENCRYPTED_* values; no store content.
    #[arg(long, env = "SECURE_STORE_ENV_ONLY", conflicts_with_all = ["mount", "materialize", "store"])]
    pub env_only: bool,
    /// Detach a stale mount at --mount first (the original's -force-unmount).
    #[arg(long, env = "SECURE_STORE_FORCE_UNMOUNT", requires = "mount")]
    pub force_unmount: bool,

    /// The app and its arguments (after --).
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "APP"
    )]
    pub app: Vec<OsString>,
}

/// The chosen unlock source.
enum Source {
    Envelope(String),
    Legacy,
    Local(StoreKey),
    EnvHash(Vec<HashItem>),
}

/// A setup failure with its exit code.
struct Exit(u8, anyhow::Error);

impl<E: Into<anyhow::Error>> From<E> for Exit {
    fn from(e: E) -> Self {
        Exit(codes::SETUP, e.into())
    }
}

pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    if let Err(e) = sys::harden() {
        tracing::warn!("cannot disable core dumps: {e}");
    }
    let mut signals = Signals::install().context("cannot install the signal handlers")?;
    match run_inner(args, &mut signals) {
        Ok(code) => Ok(code),
        Err(Exit(code, err)) => {
            eprintln!("error: {err:#}");
            Ok(ExitCode::from(code))
        }
    }
}

fn run_inner(args: RunArgs, signals: &mut Signals) -> Result<ExitCode, Exit> {
    let source = choose_source(&args)?;
    if args.store.is_some() && args.mount.is_none() && args.materialize.is_none() {
        return Err(anyhow::anyhow!("--store needs --mount DIR or --materialize DIR").into());
    }
    let env = |name: &str| std::env::var(name).ok();
    let policy = Policy {
        base: args.retry_base,
        cap: args.retry_cap.max(args.retry_base),
        deadline: args.deadline,
    };

    let key = match source {
        Source::Local(key) => key,
        Source::EnvHash(items) => {
            unlock::key_from_env_hash(&items, &env).map_err(|e| anyhow::anyhow!(e))?
        }
        Source::Legacy | Source::Envelope(_) => {
            let mut stop = || signals.pending_stop();
            network_unlock(&args, &source, policy, &mut stop)?
        }
    };

    let mut app_env =
        child_env::prepare(std::env::vars_os(), key.expose(), &args.allow_missing, &[])
            .map_err(|e| Exit(codes::DATA, e.into()))?;
    if !app_env.decrypted().is_empty() {
        tracing::info!(count = app_env.decrypted().len(), names = %app_env.decrypted().join(","), "decrypted env values");
    }

    // Content. The guards remove it when this function returns.
    let mut materialized: Option<Materialized> = None;
    if let (Some(store), Some(dir)) = (&args.store, &args.materialize) {
        let m = materialize::materialize(store, &key, dir, args.allow_persistent_materialize)
            .with_context(|| format!("cannot materialize the store into {}", dir.display()))?;
        tracing::info!(files = m.files(), dir = %m.dir().display(), "store decrypted into RAM");
        materialized = Some(m);
    }
    let mut mounted: Option<Mounted> = None;
    let mut created_mount_point: Option<PathBuf> = None;
    if let (Some(store), Some(dir)) = (&args.store, &args.mount) {
        if args.force_unmount {
            crate::mount::force_unmount(dir);
        }
        let opened = Store::open(&StorePaths::new(store, None, None), &key)
            .with_context(|| format!("cannot open the store {}", store.display()))?;
        // A missing mount point is created (0700) and removed again on exit.
        if std::fs::symlink_metadata(dir).is_err() {
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(dir)
                .with_context(|| format!("cannot create the mount point {}", dir.display()))?;
            created_mount_point = Some(dir.clone());
        }
        let m = Mounted::spawn(opened, dir, &MountOptions::default())
            .with_context(|| format!("cannot mount the store at {}", dir.display()));
        let m = match m {
            Ok(m) => m,
            Err(e) => {
                if let Some(dir) = created_mount_point.take() {
                    let _ = std::fs::remove_dir(dir);
                }
                return Err(e.into());
            }
        };
        mounted = Some(m);
    }
    drop(key);

    if let Some(sig) = signals.pending_stop() {
        drop(mounted);
        remove_mount_point(created_mount_point);
        drop(materialized);
        return Err(Exit(
            128u8.saturating_add(sig as u8),
            anyhow::anyhow!("stopped by signal {sig} before the app started"),
        ));
    }

    let mut cmd = Command::new(&args.app[0]);
    cmd.args(&args.app[1..]).env_clear().envs(app_env.vars());
    app_env.clear();
    tracing::info!(app = %args.app[0].to_string_lossy(), "starting the app");
    let end = supervise::supervise(signals, cmd);
    // Unmount (pending writes are committed) and remove decrypted files.
    drop(mounted);
    remove_mount_point(created_mount_point);
    drop(materialized);
    match end {
        Ok(end) => {
            tracing::info!(code = end.code(), "the app ended");
            Ok(ExitCode::from(end.code().clamp(0, 255) as u8))
        }
        Err(e) => {
            let code = match e {
                SpawnError::NotFound { .. } => codes::NOT_FOUND,
                SpawnError::NotExecutable { .. } => codes::NOT_EXECUTABLE,
                _ => codes::SETUP,
            };
            Err(Exit(code, e.into()))
        }
    }
}

fn choose_source(args: &RunArgs) -> Result<Source, Exit> {
    let mut chosen = Vec::new();
    // An empty variable (a dashboard field cleared) counts as not set.
    let given = |v: &Option<String>| {
        v.as_deref()
            .filter(|s| !s.trim().is_empty())
            .map(str::to_owned)
    };
    let local_key = given(&args.local_key);
    let envelope = match (given(&args.envelope), &args.envelope_file) {
        (Some(e), _) => Some(e.trim().to_owned()),
        (None, Some(path)) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the envelope {}", path.display()))?
                .trim()
                .to_owned(),
        ),
        (None, None) => None,
    };
    if envelope.is_some() {
        chosen.push("the envelope (SECURE_STORE_ENVELOPE/--envelope-file)");
    }
    if args.legacy {
        chosen.push("--legacy");
    }
    if local_key.is_some() {
        chosen.push("--local-key/STORE_PASSWORD");
    }
    if args.key_file.is_some() {
        chosen.push("--key-file/STORE_KEY_FILE");
    }
    if !args.key_from_env_hash.is_empty() {
        chosen.push("--key-from-env-hash");
    }
    if chosen.len() > 1 {
        return Err(anyhow::anyhow!(
            "several unlock sources given ({}); keep one",
            chosen.join(", ")
        )
        .into());
    }
    if let Some(envelope) = envelope {
        return Ok(Source::Envelope(envelope));
    }
    if args.legacy {
        return Ok(Source::Legacy);
    }
    if let Some(k) = &local_key {
        return Ok(Source::Local(
            StoreKey::new(k).context("the store key from --local-key/STORE_PASSWORD")?,
        ));
    }
    if let Some(path) = &args.key_file {
        return Ok(Source::Local(super::key::read_key_file(path)?));
    }
    if !args.key_from_env_hash.is_empty() {
        return Ok(Source::EnvHash(args.key_from_env_hash.clone()));
    }
    Err(anyhow::anyhow!(
        "no unlock source: set SECURE_STORE_ENVELOPE (or --envelope-file), or use --legacy, \
         STORE_PASSWORD/--local-key, --key-file or --key-from-env-hash"
    )
    .into())
}

/// The servers to try: `--server`, else the URL sealed into the envelope;
/// then mDNS discovery ([`discover::PSEUDO_SERVER`]) with `--discover` or
/// when there is no URL at all.
fn servers_for(args: &RunArgs, source: &Source) -> Result<Vec<String>, Exit> {
    let mut servers = if !args.servers.is_empty() {
        args.servers.clone()
    } else {
        match source {
            Source::Envelope(jwe) => recover::envelope_url(jwe)
                .filter(|u| !u.trim().is_empty())
                .into_iter()
                .collect(),
            _ => Vec::new(),
        }
    };
    if args.discover || servers.is_empty() {
        if servers.is_empty() {
            tracing::info!("no server URL given: looking for one by mDNS");
        }
        servers.push(discover::PSEUDO_SERVER.to_owned());
    }
    Ok(servers)
}

/// The HTTP client: with the TLS identity when any server is https.
pub(crate) fn client_for(
    servers: &[String],
    files: &identity::Files,
    legacy: bool,
    timeout: Duration,
) -> anyhow::Result<Client> {
    let tls = if servers
        .iter()
        .any(|s| s.starts_with("https://") || s == discover::PSEUDO_SERVER)
    {
        let env = |name: &str| std::env::var(name).ok();
        let id = Identity::load(files, &env)?;
        // The original's one self-signed certificate is its own CA.
        let ca = match (&id.ca_pem, legacy) {
            (Some(ca), _) => ca.clone(),
            (None, true) => id.cert_pem.clone(),
            (None, false) => id.require_ca()?.to_vec(),
        };
        Some(crate::pki::tls::client_config(
            &ca,
            &id.cert_pem,
            &id.key_pem,
        )?)
    } else {
        None
    };
    Client::new(tls, Timeouts::all(timeout)).context("cannot start the network runtime")
}

fn network_unlock(
    args: &RunArgs,
    source: &Source,
    policy: Policy,
    stop: &mut dyn FnMut() -> Option<i32>,
) -> Result<StoreKey, Exit> {
    let servers = servers_for(args, source)?;
    let files = identity::Files {
        cert: args.cert.clone(),
        key: args.key.clone(),
        ca: args.ca.clone(),
    };
    let client = client_for(
        &servers,
        &files,
        matches!(source, Source::Legacy),
        args.timeout,
    )?;
    let mut one = |client: &Client, server: &str| match source {
        Source::Envelope(jwe) => recover::envelope(client, jwe, server),
        _ => recover::legacy(client, server),
    };
    let wait = discover::browse_wait(args.timeout);
    let mut attempt = |server: &str| {
        if server == discover::PSEUDO_SERVER {
            discover::attempt(&client, wait, &mut one)
        } else {
            one(&client, server)
        }
    };
    unlock::retry(&servers, policy, &mut attempt, stop).map_err(|e| match e {
        RetryError::Refused { .. } => Exit(codes::REVOKED, e.into()),
        RetryError::Deadline { .. } => Exit(codes::UNREACHABLE, e.into()),
        RetryError::Stopped(sig) => Exit(128u8.saturating_add(sig as u8), e.into()),
        RetryError::Fatal(_) => Exit(codes::DATA, e.into()),
    })
}

/// Removes a mount point we created, once unmounted (only if empty).
fn remove_mount_point(dir: Option<PathBuf>) {
    if let Some(dir) = dir {
        if let Err(e) = std::fs::remove_dir(&dir) {
            tracing::warn!(dir = %dir.display(), "cannot remove the mount point: {e}");
        }
    }
}
