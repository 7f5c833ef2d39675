//! `secure-store server`: runs the Store Server (see `docs/SERVER.md`), and
//! `secure-store server rotate-keys`: rotates its Tang keys, and
//! `secure-store server import-keys`: copies a key directory into the state
//! database, sealed, for replicas to share (`tang::sealed`).
//!
//! Two stages as everywhere in `cli`: parsed arguments ([`ServerArgs`]),
//! then a resolved configuration that reads the fleet directory, opens the
//! state store and binds the sockets. When the sockets are bound, one line
//! goes to stdout (tests and scripts read the port from it):
//!
//! ```text
//! secure-store server listening on https://127.0.0.1:40123
//! secure-store server listening on https://127.0.0.1:40123 tang http://127.0.0.1:40124
//! ```

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};

use crate::pki::layout::ServerDir;
use crate::secret::StoreKey;
use crate::server::{self, App, Limits, Listeners, PeerIdentity, RateLimits};

/// Run the Store Server: mutual TLS, per-device policy, Tang, legacy /key, admin API, audit.
#[allow(missing_debug_implementations)]
#[derive(clap::Args)]
#[command(
    args_conflicts_with_subcommands = true,
    after_help = "Examples:
  secure-store server --fleet ./fleet --listen 0.0.0.0:8443
  STORE_PASSWORD=$(cat store.key) secure-store server --fleet /etc/secure-store/server
  secure-store server --fleet ./fleet --tang-listen 0.0.0.0:8080 --tang-allow 10.0.0.0/8
  secure-store server --fleet ./fleet --mdns        # advertise _secure-store._tcp.local
  secure-store server rotate-keys --fleet ./fleet
  SECURE_STORE_DATABASE_URL=postgres://… secure-store server --fleet ./fleet \\
    --tang-kek-file /etc/secure-store/tang.kek      # Tang keys shared in the database

The legacy GET /key is enabled when STORE_PASSWORD (or RCLONE_CONFIG_PASS) is set
or --legacy-password-file is given."
)]
pub struct ServerArgs {
    #[command(subcommand)]
    command: Option<ServerCommand>,

    /// The fleet directory, or the server directory copied from it (FLEET/server).
    #[arg(long, value_name = "DIR", env = "SECURE_STORE_FLEET")]
    fleet: Option<PathBuf>,

    /// Address of the mutual-TLS listener (port 0 picks a free port).
    #[arg(
        long,
        value_name = "ADDR",
        default_value = "0.0.0.0:8443",
        env = "SECURE_STORE_LISTEN"
    )]
    listen: SocketAddr,

    /// Where state.db lives [default: the server directory].
    #[arg(long, value_name = "DIR", env = "SECURE_STORE_DATA_DIR")]
    data_dir: Option<PathBuf>,

    /// State store URL: postgres://… (replicas share it) or sqlite:PATH. Overrides --data-dir.
    #[arg(long, value_name = "URL", env = "SECURE_STORE_DATABASE_URL")]
    database_url: Option<String>,

    /// Also serve /adv and /rec over plain HTTP here (for stock clevis hosts).
    #[arg(long, value_name = "ADDR", env = "SECURE_STORE_TANG_LISTEN")]
    tang_listen: Option<SocketAddr>,

    /// Networks allowed on the plain Tang listener (repeatable; none = deny all).
    #[arg(
        long,
        value_name = "CIDR",
        env = "SECURE_STORE_TANG_ALLOW",
        value_delimiter = ','
    )]
    tang_allow: Vec<ipnet::IpNet>,

    /// The fleet was made by `fleet init --legacy`: one self-signed certificate for both ends.
    #[arg(long, env = "SECURE_STORE_LEGACY")]
    legacy: bool,

    /// Serve legacy GET /key with the store key in this file (instead of STORE_PASSWORD).
    #[arg(long, value_name = "FILE", env = "SECURE_STORE_LEGACY_PASSWORD_FILE")]
    legacy_password_file: Option<PathBuf>,

    /// Open connections at most; beyond, new connections are closed at once.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 4096,
        env = "SECURE_STORE_MAX_CONNECTIONS"
    )]
    max_connections: usize,

    /// Deadline from TCP accept to the end of the TLS handshake (e.g. 10s, 500ms).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration, env = "SECURE_STORE_HANDSHAKE_TIMEOUT")]
    handshake_timeout: Duration,

    /// Deadline to read a request head; also the idle keep-alive limit.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration, env = "SECURE_STORE_HEADER_TIMEOUT")]
    header_timeout: Duration,

    /// Deadline to read a request body.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration, env = "SECURE_STORE_BODY_TIMEOUT")]
    body_timeout: Duration,

    /// A write making no progress this long closes the connection.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration, env = "SECURE_STORE_WRITE_TIMEOUT")]
    write_timeout: Duration,

    /// On SIGTERM/SIGINT, how long in-flight requests may finish.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration, env = "SECURE_STORE_SHUTDOWN_GRACE")]
    shutdown_grace: Duration,

    /// Largest request head in bytes (431 beyond).
    #[arg(
        long,
        value_name = "BYTES",
        default_value_t = 16384,
        env = "SECURE_STORE_MAX_HEADER_BYTES"
    )]
    max_header_bytes: usize,

    /// Largest request body in bytes (413 beyond).
    #[arg(
        long,
        value_name = "BYTES",
        default_value_t = 16384,
        env = "SECURE_STORE_MAX_BODY_BYTES"
    )]
    max_body_bytes: usize,

    /// Unlocks per second a device may sustain (0 = no per-device limit).
    #[arg(
        long,
        value_name = "RATE",
        default_value_t = 1.0,
        env = "SECURE_STORE_RATE_PER_DEVICE"
    )]
    rate_per_device: f64,

    /// Unlocks a device may make at once before the rate applies.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 10,
        env = "SECURE_STORE_RATE_BURST_DEVICE"
    )]
    rate_burst_device: u32,

    /// Unlocks per second one source address may sustain (0 = no per-address limit).
    #[arg(
        long,
        value_name = "RATE",
        default_value_t = 20.0,
        env = "SECURE_STORE_RATE_PER_ADDRESS"
    )]
    rate_per_address: f64,

    /// Unlocks one source address may make at once before the rate applies.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 200,
        env = "SECURE_STORE_RATE_BURST_ADDRESS"
    )]
    rate_burst_address: u32,

    /// Advertise the TLS listener on the local link by mDNS as _secure-store._tcp.local.
    #[arg(long, env = "SECURE_STORE_MDNS")]
    mdns: bool,

    /// The mDNS instance name [default: the server certificate's first DNS name, else the host name].
    #[arg(
        long,
        value_name = "NAME",
        env = "SECURE_STORE_MDNS_NAME",
        requires = "mdns"
    )]
    mdns_name: Option<String>,

    /// Worker threads [default: one per core].
    #[arg(long, value_name = "N", env = "SECURE_STORE_THREADS")]
    threads: Option<usize>,

    /// Take the Tang keys from the state database, sealed under the key-encryption
    /// key in FILE (64 hex digits or base64 of 32 bytes; mode 0600), instead of
    /// FLEET/server/tang. SECURE_STORE_TANG_KEK may hold the key itself instead.
    #[arg(long, value_name = "FILE", env = "SECURE_STORE_TANG_KEK_FILE")]
    tang_kek_file: Option<PathBuf>,

    /// With database Tang keys: how often to re-read the key table (a rotation
    /// through any replica reaches this one within that time; SIGHUP re-reads at once).
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_duration, env = "SECURE_STORE_TANG_KEYS_REFRESH")]
    tang_keys_refresh: Duration,
}

/// Where the Tang keys of the database commands live.
#[derive(clap::Args)]
struct KeyDb {
    /// State store URL (postgres://… or sqlite:PATH) [default: state.db in the
    /// server directory or --data-dir].
    #[arg(long, value_name = "URL", env = "SECURE_STORE_DATABASE_URL")]
    database_url: Option<String>,

    /// Where state.db lives when no --database-url is given.
    #[arg(long, value_name = "DIR", env = "SECURE_STORE_DATA_DIR")]
    data_dir: Option<PathBuf>,

    /// The key-encryption key file (or SECURE_STORE_TANG_KEK holds the key).
    #[arg(long, value_name = "FILE", env = "SECURE_STORE_TANG_KEK_FILE")]
    tang_kek_file: Option<PathBuf>,
}

#[derive(clap::Subcommand)]
enum ServerCommand {
    /// Hide the current Tang keys (still recover old envelopes) and make a new pair.
    ///
    /// A running server picks the new keys up on SIGHUP (or restart).
    ///
    /// With a key-encryption key (--tang-kek-file or SECURE_STORE_TANG_KEK) the
    /// rotation happens in the state database instead: every replica using
    /// database keys picks it up within --tang-keys-refresh.
    #[command(after_help = "Examples:
  secure-store server rotate-keys --fleet ./fleet
  secure-store server rotate-keys --database-url \"$URL\" --tang-kek-file /etc/secure-store/tang.kek")]
    RotateKeys {
        /// The fleet directory or the server directory.
        #[arg(long, value_name = "DIR", env = "SECURE_STORE_FLEET")]
        fleet: Option<PathBuf>,

        #[command(flatten)]
        db: KeyDb,
    },
    /// Copy the Tang keys of FLEET/server/tang (hidden ones too) into the state
    /// database, sealed under the key-encryption key, for replicas to share.
    ///
    /// Keys already in the database are skipped, so running it twice is harmless.
    #[command(after_help = "Example:
  (umask 077; openssl rand -hex 32 > /etc/secure-store/tang.kek)
  secure-store server import-keys --fleet ./fleet --database-url \"$URL\" \\
    --tang-kek-file /etc/secure-store/tang.kek")]
    ImportKeys {
        /// The fleet directory or the server directory.
        #[arg(long, value_name = "DIR", env = "SECURE_STORE_FLEET")]
        fleet: PathBuf,

        #[command(flatten)]
        db: KeyDb,
    },
}

/// The Tang key-encryption key from `--tang-kek-file` or
/// `SECURE_STORE_TANG_KEK`, if either is given (both is an error).
fn tang_kek(file: Option<&Path>) -> anyhow::Result<Option<crate::tang::sealed::Kek>> {
    use crate::tang::sealed::{Kek, KEK_ENV};
    let env = std::env::var_os(KEK_ENV)
        .map(|v| zeroize::Zeroizing::new(v.to_string_lossy().into_owned()))
        .filter(|v| !v.is_empty());
    match (file, env) {
        (Some(_), Some(_)) => bail!(
            "both --tang-kek-file (SECURE_STORE_TANG_KEK_FILE) and {KEK_ENV} are set: give one"
        ),
        (Some(path), None) => Ok(Some(Kek::from_file(path)?)),
        (None, Some(text)) => Ok(Some(Kek::parse(&text, &format!("env {KEK_ENV}"))?)),
        (None, None) => Ok(None),
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Opens the state store of a database command (not inside a runtime).
fn open_key_db(
    db: &KeyDb,
    fleet: Option<&Path>,
) -> anyhow::Result<(std::sync::Arc<dyn crate::state::Store>, String)> {
    let default = match (&db.data_dir, fleet) {
        (Some(d), _) => d.join("state.db"),
        (None, Some(f)) => ServerDir::locate(f).state_db(),
        (None, None) if db.database_url.is_none() => bail!(
            "--database-url (SECURE_STORE_DATABASE_URL), --data-dir or --fleet is needed to find the state database"
        ),
        (None, None) => PathBuf::new(),
    };
    let shown = match &db.database_url {
        Some(url) => crate::state::postgres::redact_url(url),
        None => default.display().to_string(),
    };
    let store = crate::state::open(db.database_url.as_deref(), &default)
        .with_context(|| format!("cannot open the state store {shown}"))?;
    Ok((store, shown))
}

fn key_command(command: &ServerCommand) -> anyhow::Result<ExitCode> {
    match command {
        ServerCommand::RotateKeys { fleet, db } => match tang_kek(db.tang_kek_file.as_deref())? {
            Some(kek) => {
                let (store, shown) = open_key_db(db, fleet.as_deref())?;
                let new = crate::tang::sealed::rotate(store.as_ref(), &kek, unix_now())
                    .with_context(|| format!("cannot rotate the Tang keys in {shown}"))?;
                println!(
                    "rotated the Tang keys in {shown}: new signing key {}, exchange key {}; \
                     replicas using database keys pick them up within --tang-keys-refresh",
                    new[0], new[1]
                );
                Ok(ExitCode::SUCCESS)
            }
            None => {
                let Some(fleet) = fleet else {
                    bail!("--fleet is required (or a key-encryption key to rotate the keys in the state database)");
                };
                let dir = ServerDir::locate(fleet);
                crate::tang::KeySet::rotate(&dir.tang()).with_context(|| {
                    format!("cannot rotate the Tang keys in {}", dir.tang().display())
                })?;
                println!(
                    "rotated the Tang keys in {}; send SIGHUP to a running server (or restart it)",
                    dir.tang().display()
                );
                Ok(ExitCode::SUCCESS)
            }
        },
        ServerCommand::ImportKeys { fleet, db } => {
            let Some(kek) = tang_kek(db.tang_kek_file.as_deref())? else {
                bail!("a key-encryption key is needed: --tang-kek-file FILE (SECURE_STORE_TANG_KEK_FILE) or SECURE_STORE_TANG_KEK");
            };
            let dir = ServerDir::locate(fleet).tang();
            let (store, shown) = open_key_db(db, Some(fleet))?;
            let (read, inserted) =
                crate::tang::sealed::import_dir(store.as_ref(), &kek, &dir, unix_now())
                    .with_context(|| {
                        format!(
                            "cannot import the Tang keys of {} into {shown}",
                            dir.display()
                        )
                    })?;
            println!(
                "imported {inserted} of {read} Tang keys from {} into {shown} ({} already there)",
                dir.display(),
                read - inserted
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `10s`, `500ms`, `2m`, `1h` or plain seconds.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (num, unit) = match t.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => t.split_at(i),
        None => (t, "s"),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("not a duration: {text:?} (e.g. 10s, 500ms)"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("unknown unit in {text:?}: use ms, s, m or h")),
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("not a duration: {text:?}"));
    }
    Ok(Duration::from_secs_f64(secs))
}

pub fn run(args: ServerArgs) -> anyhow::Result<ExitCode> {
    if let Some(command) = &args.command {
        return key_command(command);
    }
    let Some(fleet) = args.fleet.clone() else {
        bail!(
            "--fleet is required (the fleet directory or its server/ copy; env SECURE_STORE_FLEET)"
        );
    };
    let dir = ServerDir::locate(&fleet);
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if let Some(n) = args.threads {
        builder.worker_threads(n.max(1));
    }
    let runtime = builder.build().context("cannot start the async runtime")?;
    runtime.block_on(serve(args, dir))
}

fn legacy_password(args: &ServerArgs) -> anyhow::Result<Option<StoreKey>> {
    if let Some(path) = &args.legacy_password_file {
        let text = zeroize::Zeroizing::new(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?,
        );
        return Ok(Some(StoreKey::new(&text).with_context(|| {
            format!("bad store key in {}", path.display())
        })?));
    }
    for var in ["STORE_PASSWORD", "RCLONE_CONFIG_PASS"] {
        if let Some(value) = std::env::var_os(var) {
            let value = zeroize::Zeroizing::new(value.to_string_lossy().into_owned());
            if !value.is_empty() {
                return Ok(Some(
                    StoreKey::new(&value).with_context(|| format!("bad store key in {var}"))?,
                ));
            }
        }
    }
    Ok(None)
}

fn state_path(args: &ServerArgs, dir: &ServerDir) -> anyhow::Result<PathBuf> {
    if let Some(url) = &args.database_url {
        if let Some(path) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            return Ok(PathBuf::from(path));
        }
        bail!(
            "unsupported --database-url {url:?}: use postgres://…, postgresql://… or sqlite:PATH"
        );
    }
    Ok(match &args.data_dir {
        Some(d) => d.join("state.db"),
        None => dir.state_db(),
    })
}

async fn serve(args: ServerArgs, dir: ServerDir) -> anyhow::Result<ExitCode> {
    let limits = Limits {
        max_connections: args.max_connections,
        handshake_timeout: args.handshake_timeout,
        header_timeout: args.header_timeout,
        body_timeout: args.body_timeout,
        write_timeout: args.write_timeout,
        max_header_bytes: args.max_header_bytes,
        max_body_bytes: args.max_body_bytes,
        shutdown_grace: args.shutdown_grace,
    };
    let rates = RateLimits {
        device_per_second: args.rate_per_device,
        device_burst: args.rate_burst_device,
        address_per_second: args.rate_per_address,
        address_burst: args.rate_burst_address,
    };
    let password = legacy_password(&args)?;
    let tls = tls_config(
        args.fleet.as_deref().unwrap_or(dir.root()),
        &dir,
        args.legacy,
    )?;
    let (store, db) = match postgres_url(&args) {
        Some(url) => {
            let shown = crate::state::postgres::redact_url(&url);
            (open_postgres(url).await?, shown)
        }
        None => {
            let db = state_path(&args, &dir)?;
            if let Some(parent) = db.parent() {
                if !parent.as_os_str().is_empty() && !parent.exists() {
                    create_private_dir(parent)?;
                }
            }
            (open_store(&db)?, db.display().to_string())
        }
    };
    let kek = tang_kek(args.tang_kek_file.as_deref())?;
    let mut app = match kek {
        Some(kek) => {
            // Database keys: FLEET/server/tang is not read.
            let app = App::new(store, None, password, limits, rates)?;
            let shown = db.clone();
            tokio::task::spawn_blocking(move || {
                let mut app = app;
                app.use_database_keys(kek).map(|()| app)
            })
            .await
            .context("the key loading task failed")?
            .with_context(|| format!("cannot load the Tang keys from the state database {shown}"))?
        }
        None => {
            let keys_dir = dir.tang();
            let keys_dir = keys_dir.is_dir().then_some(keys_dir);
            if keys_dir.is_none() && !args.legacy {
                tracing::warn!(dir = %dir.tang().display(), "no Tang key directory: /adv and /rec answer 404");
            }
            App::new(store, keys_dir, password, limits, rates)
                .with_context(|| format!("cannot load the Tang keys in {}", dir.tang().display()))?
        }
    };
    app.policy.tang_allow = args.tang_allow.clone();
    let app = Arc::new(app);

    let tls_listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let tang_listener = match args.tang_listen {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} (--tang-listen)"))?,
        ),
        None => None,
    };
    let mut line = format!(
        "secure-store server listening on https://{}",
        tls_listener.local_addr()?
    );
    if let Some(t) = &tang_listener {
        line.push_str(&format!(" tang http://{}", t.local_addr()?));
        if args.tang_allow.is_empty() {
            tracing::warn!("--tang-listen without --tang-allow: every address is refused");
        }
    }
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}")?;
        out.flush()?;
    }
    tracing::info!(
        legacy_key = app.legacy_password.is_some(),
        tang_keys = if app.keys_from_database() { "database" } else { "directory" },
        state = %db,
        "{line}"
    );

    let reload_app = app.clone();
    tokio::spawn(async move {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            return;
        };
        while hup.recv().await.is_some() {
            let app = reload_app.clone();
            // A key directory is a few small files: read it here, as
            // before; the database is read off the async threads.
            let reloaded = if app.keys_from_database() {
                tokio::task::spawn_blocking(move || app.reload_keys()).await
            } else {
                Ok(app.reload_keys())
            };
            match reloaded {
                Ok(Ok(())) => tracing::info!("reloaded the Tang keys"),
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "cannot reload the Tang keys; keeping the old ones")
                }
                Err(e) => tracing::error!(error = %e, "the key reload task failed"),
            }
        }
    });
    if app.keys_from_database() {
        let refresh_app = app.clone();
        let every = args.tang_keys_refresh.max(Duration::from_millis(100));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let app = refresh_app.clone();
                match tokio::task::spawn_blocking(move || app.refresh_keys()).await {
                    Ok(Ok(true)) => {
                        tracing::info!("the Tang keys changed in the state database; reloaded")
                    }
                    Ok(Ok(false)) => {}
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "cannot re-read the Tang keys from the state database; keeping the current ones")
                    }
                    Err(e) => tracing::warn!(error = %e, "the key refresh task failed"),
                }
            }
        });
    }

    let responder = if args.mdns {
        let ad = mdns_advertisement(&args, &dir, tls_listener.local_addr()?);
        Some(
            crate::discovery::Responder::start(ad)
                .context("cannot start the mDNS responder (--mdns)")?,
        )
    } else {
        None
    };

    let listeners = Listeners {
        tls: tls_listener,
        tang: tang_listener,
    };
    server::serve(
        app,
        listeners,
        tls,
        identify_fn(args.legacy),
        shutdown_signal(),
    )
    .await;
    if let Some(r) = responder {
        tokio::task::spawn_blocking(move || r.stop()).await.ok();
    }
    tracing::info!("server stopped");
    Ok(ExitCode::SUCCESS)
}

/// What `--mdns` advertises: the SRV target is the name clients check in
/// the server certificate (its first DNS name; the host name + `.local`
/// when it has none, which then only works if that name is in it).
fn mdns_advertisement(
    args: &ServerArgs,
    dir: &ServerDir,
    local: SocketAddr,
) -> crate::discovery::Advertisement {
    let cert = if args.legacy {
        let fleet = args.fleet.as_deref().unwrap_or(dir.root());
        let fd = crate::pki::layout::FleetDir::new(fleet);
        if fd.legacy_cert().exists() {
            fd.legacy_cert()
        } else {
            fleet.join("cert.pem")
        }
    } else {
        dir.cert()
    };
    let host = std::fs::read(&cert)
        .ok()
        .and_then(|pem| crate::discovery::first_dns_name(&pem))
        .unwrap_or_else(|| {
            let h = format!("{}.local", crate::discovery::hostname());
            tracing::warn!(cert = %cert.display(), "the server certificate has no DNS name; advertising {h}, which clients check against it");
            h
        });
    let bound = match local.ip() {
        std::net::IpAddr::V4(ip) if !ip.is_unspecified() => Some(ip),
        _ => None,
    };
    crate::discovery::Advertisement {
        instance: args.mdns_name.clone().unwrap_or_else(|| host.clone()),
        host,
        port: local.port(),
        txt: vec!["path=/".into(), "v=1".into()],
        bound,
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    let mut int = match signal(SignalKind::interrupt()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
}

fn create_private_dir(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .with_context(|| format!("cannot create {}", path.display()))
}

// ---- the pki and state modules --------------------------------------------

/// The server's TLS configuration: the fleet's (client certificates
/// verified against `ca.crt`), or with `--legacy` the original's one
/// shared certificate (`FLEET/legacy/{cert,key}.pem`, else
/// `FLEET/{cert,key}.pem` as the original laid them out).
fn tls_config(
    fleet: &Path,
    dir: &ServerDir,
    legacy: bool,
) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    if !legacy {
        return crate::pki::tls::server_config(dir).with_context(|| {
            format!(
                "cannot load the server identity from {}",
                dir.root().display()
            )
        });
    }
    let fd = crate::pki::layout::FleetDir::new(fleet);
    let (cert, key) = if fd.legacy_cert().exists() {
        (fd.legacy_cert(), fd.legacy_key())
    } else {
        (fleet.join("cert.pem"), fleet.join("key.pem"))
    };
    let cert_pem = std::fs::read(&cert)
        .with_context(|| format!("cannot read the legacy certificate {}", cert.display()))?;
    let key_pem = zeroize::Zeroizing::new(
        std::fs::read(&key)
            .with_context(|| format!("cannot read the legacy key {}", key.display()))?,
    );
    crate::pki::tls::legacy_server_config(&cert_pem, &key_pem)
        .with_context(|| format!("cannot use the legacy certificate {}", cert.display()))
}

/// `--database-url` when it names PostgreSQL.
fn postgres_url(args: &ServerArgs) -> Option<String> {
    args.database_url
        .clone()
        .filter(|u| u.starts_with("postgres://") || u.starts_with("postgresql://"))
}

/// Connects to PostgreSQL and migrates, off the async threads (the client
/// is synchronous).
async fn open_postgres(url: String) -> anyhow::Result<Arc<dyn crate::state::Store>> {
    let shown = crate::state::postgres::redact_url(&url);
    tokio::task::spawn_blocking(move || crate::state::open(Some(&url), Path::new("")))
        .await
        .context("the state store task failed")?
        .with_context(|| format!("cannot open the state store {shown}"))
}

fn open_store(path: &Path) -> anyhow::Result<Arc<dyn crate::state::Store>> {
    let store = crate::state::sqlite::SqliteStore::open(path)
        .with_context(|| format!("cannot open the state store {}", path.display()))?;
    Ok(Arc::new(store))
}

/// Maps the verified client certificate to the handlers' identity.
fn identify_fn(legacy: bool) -> server::listener::Identify {
    use crate::pki::Identity;
    Arc::new(move |cert| {
        let parsed = if legacy {
            Identity::legacy_from_der(cert.as_ref())
        } else {
            Identity::from_der(cert.as_ref())
        };
        match parsed {
            Ok(Identity::Device { id, groups, serial }) => {
                PeerIdentity::Device { id, groups, serial }
            }
            Ok(Identity::Admin { name, serial }) => PeerIdentity::Admin { name, serial },
            Ok(Identity::Legacy { serial }) => PeerIdentity::Legacy { serial },
            Err(e) => {
                tracing::debug!(error = %e, "verified certificate names no identity");
                PeerIdentity::Unrecognized
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        assert!(parse_duration("x").is_err());
        assert!(parse_duration("5y").is_err());
    }
}
