//! The Store Server: mutual-TLS listener, per-request policy, the legacy
//! `GET /key`, the Tang protocol (`/adv`, `/rec`), the admin API, health and
//! Prometheus metrics, and the audit of every decision.
//!
//! Layout (issue 3; `docs/SERVER.md` is the operator's page):
//! - [`listener`]: our own accept loop (tokio `TcpListener` → tokio-rustls
//!   → hyper http1), with a deadline on every connection phase, a cap on
//!   open connections, size limits, graceful shutdown, and the optional
//!   plain-HTTP Tang listener restricted to CIDRs;
//! - [`routes`]: one function maps a request to a handler and every error
//!   to an HTTP answer (status from [`crate::api::Reason::status`] or, for
//!   Tang, from [`crate::tang::TangError::status`]);
//! - [`admin`]: the admin API's handlers (admin certificate only);
//! - [`metrics`]: counters, gauge and histogram in Prometheus text format.
//!
//! The peer's identity comes only from the client certificate the TLS
//! layer verified, and its address only from the TCP socket: headers such
//! as `X-Forwarded-For` are never read.

use std::net::IpAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use crate::state::Store;
use crate::tang::sealed::{self, Fingerprint, Kek, SealError};
use crate::tang::KeySet;

pub mod admin;
pub mod listener;
pub mod metrics;
pub mod routes;

pub use listener::{serve, Listeners};

/// Deadlines and sizes for every connection.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Open connections (TLS and plain Tang together); beyond it a new
    /// connection is closed at once.
    pub max_connections: usize,
    /// From TCP accept to the end of the TLS handshake.
    pub handshake_timeout: Duration,
    /// Reading one request's headers; also how long an idle keep-alive
    /// connection may wait for its next request.
    pub header_timeout: Duration,
    /// Reading one request's body.
    pub body_timeout: Duration,
    /// A write that makes no progress for this long closes the connection.
    pub write_timeout: Duration,
    /// Largest request head (request line + headers), bytes.
    pub max_header_bytes: usize,
    /// Largest request body, bytes (413 beyond).
    pub max_body_bytes: usize,
    /// On SIGTERM/SIGINT: how long in-flight connections may finish.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 4096,
            handshake_timeout: Duration::from_secs(10),
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
            max_header_bytes: 16 * 1024,
            max_body_bytes: 16 * 1024,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// Who is on the other end, as the TLS layer verified it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerIdentity {
    /// A device certificate issued by the fleet CA.
    Device {
        id: String,
        groups: Vec<String>,
        serial: String,
    },
    /// An admin certificate issued by the fleet CA.
    Admin { name: String, serial: String },
    /// The original project's single shared certificate (`--legacy`).
    Legacy { serial: String },
    /// A certificate the CA verified but that names no device or admin.
    Unrecognized,
    /// The plain-HTTP Tang listener: no certificate at all.
    Anonymous,
}

/// A request's peer: verified identity and the TCP source address.
#[derive(Debug, Clone)]
pub struct Peer {
    pub identity: PeerIdentity,
    pub addr: IpAddr,
}

/// The unlock-rate limits: token buckets refilled at `*_per_second` up to
/// `*_burst` (a rate of 0 turns that limit off). See docs/POLICY.md.
#[derive(Debug, Clone, Copy)]
pub struct RateLimits {
    pub device_per_second: f64,
    pub device_burst: u32,
    pub address_per_second: f64,
    pub address_burst: u32,
}

impl Default for RateLimits {
    fn default() -> Self {
        let d = crate::policy::RateLimitConfig::default();
        let (dev, addr) = (
            d.device.unwrap_or(crate::policy::RateLimit {
                per_second: 1.0,
                burst: 10,
            }),
            d.address.unwrap_or(crate::policy::RateLimit {
                per_second: 20.0,
                burst: 200,
            }),
        );
        RateLimits {
            device_per_second: dev.per_second,
            device_burst: dev.burst,
            address_per_second: addr.per_second,
            address_burst: addr.burst,
        }
    }
}

impl RateLimits {
    /// The policy module's limiter settings.
    pub fn config(&self) -> crate::policy::RateLimitConfig {
        let limit = |per_second: f64, burst: u32| {
            (per_second > 0.0).then_some(crate::policy::RateLimit {
                per_second,
                burst: burst.max(1),
            })
        };
        crate::policy::RateLimitConfig {
            device: limit(self.device_per_second, self.device_burst),
            address: limit(self.address_per_second, self.address_burst),
            ..crate::policy::RateLimitConfig::default()
        }
    }
}

/// Where the Tang keys come from.
enum KeySource {
    /// None at all (legacy fleets): `/adv` and `/rec` answer 404.
    None,
    /// A tangd key directory (`FLEET/server/tang`), re-read on SIGHUP.
    Dir(std::path::PathBuf),
    /// The state database's `tang_keys` table, sealed under `kek`
    /// (replicas share it); `seen` is the table as last loaded.
    Database { kek: Kek, seen: Mutex<Fingerprint> },
}

/// Everything the handlers share.
pub struct App {
    pub store: Arc<dyn Store>,
    /// `None` when the server directory has no Tang keys (legacy fleets).
    keys: RwLock<Option<Arc<KeySet>>>,
    source: KeySource,
    /// The legacy `/key` answer, when enabled.
    pub legacy_password: Option<crate::secret::StoreKey>,
    pub metrics: metrics::Metrics,
    pub limits: Limits,
    pub rates: RateLimits,
    pub policy: routes::PolicyEngine,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("legacy", &self.legacy_password.is_some())
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl App {
    /// `keys_dir`: the Tang key directory, loaded now and again on
    /// [`App::reload_keys`] (SIGHUP, after `server rotate-keys`).
    pub fn new(
        store: Arc<dyn Store>,
        keys_dir: Option<std::path::PathBuf>,
        legacy_password: Option<crate::secret::StoreKey>,
        limits: Limits,
        rates: RateLimits,
    ) -> Result<App, crate::tang::TangError> {
        let keys = match &keys_dir {
            Some(dir) => Some(Arc::new(KeySet::load(dir)?)),
            None => None,
        };
        Ok(App {
            store,
            keys: RwLock::new(keys),
            source: match keys_dir {
                Some(dir) => KeySource::Dir(dir),
                None => KeySource::None,
            },
            legacy_password,
            metrics: metrics::Metrics::default(),
            limits,
            rates,
            policy: routes::PolicyEngine::new(rates),
        })
    }

    /// The current Tang keys.
    pub fn keys(&self) -> Option<Arc<KeySet>> {
        match self.keys.read() {
            Ok(k) => k.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn set_keys(&self, fresh: Arc<KeySet>) {
        match self.keys.write() {
            Ok(mut k) => *k = Some(fresh),
            Err(poisoned) => *poisoned.into_inner() = Some(fresh),
        }
    }

    /// Switches to the Tang keys shared in the state database, sealed
    /// under `kek` (docs/STATE.md "Shared Tang keys"), and loads them now.
    /// Fails (and the server must not start) when the table is empty or
    /// `kek` does not open a row. Blocking: call it off the async threads.
    pub fn use_database_keys(&mut self, kek: Kek) -> Result<(), SealError> {
        let (set, seen) = sealed::load(self.store.as_ref(), &kek)?;
        self.set_keys(Arc::new(set));
        self.source = KeySource::Database {
            kek,
            seen: Mutex::new(seen),
        };
        Ok(())
    }

    /// Whether the Tang keys come from the state database.
    pub fn keys_from_database(&self) -> bool {
        matches!(self.source, KeySource::Database { .. })
    }

    /// Loads the Tang keys again (SIGHUP, after a rotation): the key
    /// directory, or the database table. On error the current keys stay.
    /// Blocking (the database): call it off the async threads.
    pub fn reload_keys(&self) -> Result<(), SealError> {
        match &self.source {
            KeySource::None => {}
            KeySource::Dir(dir) => self.set_keys(Arc::new(KeySet::load(dir)?)),
            KeySource::Database { kek, seen } => {
                let (set, fp) = sealed::load(self.store.as_ref(), kek)?;
                self.set_keys(Arc::new(set));
                *seen.lock().unwrap_or_else(|p| p.into_inner()) = fp;
            }
        }
        Ok(())
    }

    /// With database keys: re-reads the key table and rebuilds the key set
    /// when a key was added or hidden since the last load (through any
    /// replica). Returns whether it changed. Cheap when nothing changed:
    /// one read of the table, nothing unsealed. Blocking.
    pub fn refresh_keys(&self) -> Result<bool, SealError> {
        let KeySource::Database { kek, seen } = &self.source else {
            return Ok(false);
        };
        let rows = self.store.tang_keys()?;
        let fp = sealed::fingerprint(&rows);
        if *seen.lock().unwrap_or_else(|p| p.into_inner()) == fp {
            return Ok(false);
        }
        let set = sealed::key_set(kek, &rows)?;
        self.set_keys(Arc::new(set));
        *seen.lock().unwrap_or_else(|p| p.into_inner()) = fp;
        Ok(true)
    }
}

#[cfg(test)]
mod tests;
