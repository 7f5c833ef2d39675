//! The Store Server's state: devices, revocations, network rules, store
//! grants and the hash-chained audit log, behind the [`Store`] trait.
//!
//! SQLite (`sqlite`, the default, `<data-dir>/state.db`, WAL) and
//! PostgreSQL (`postgres`, several server replicas sharing one database)
//! implement it over the same schema; [`open`] picks one from a database
//! URL. Every call is a short
//! synchronous transaction: the server calls it from `spawn_blocking`.
//! Nothing here ever holds key material in clear: the shared Tang keys
//! ([`TangKeyRow`]) are stored sealed by `tang::sealed` under a key the
//! database never sees.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub mod chain;
pub mod pg_cluster;
pub mod postgres;
pub mod schema;
pub mod sqlite;
#[cfg(test)]
mod suite;

/// Errors of the state store.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state database: {0}")]
    Database(String),
    #[error("state database schema version {found} is newer than this program's ({supported})")]
    SchemaTooNew { found: i64, supported: i64 },
    #[error("no such device: {0}")]
    NoSuchDevice(String),
    #[error("no such rule: {0}")]
    NoSuchRule(i64),
    #[error("no such Tang key: {0}")]
    NoSuchTangKey(String),
    #[error("invalid {what}: {detail}")]
    Invalid { what: &'static str, detail: String },
}

/// An admin's decision about a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceStatus {
    Enabled,
    Disabled,
}

/// A device as the server knows it. Devices are registered on first sight
/// (their first verified request) from their certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    pub id: String,
    pub groups: Vec<String>,
    pub status: DeviceStatus,
    /// Certificate serials seen for this device (hex, lower case).
    pub serials: Vec<String>,
    /// Unix seconds.
    pub first_seen: i64,
    pub last_seen: i64,
    pub last_address: Option<IpAddr>,
    /// True when some revocation names this device id.
    pub revoked: bool,
}

/// One sighting of a verified client certificate.
#[derive(Debug, Clone)]
pub struct Sighting<'a> {
    pub device_id: &'a str,
    pub groups: &'a [String],
    pub serial: &'a str,
    pub address: IpAddr,
    pub at: i64,
}

/// What a revocation names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "value")]
pub enum RevocationTarget {
    Device(String),
    Serial(String),
}

/// Allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleAction {
    Allow,
    Deny,
}

/// A network rule (CIDR), global or for one group; or a store grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum RuleSpec {
    /// Addresses in `cidr` are allowed/denied; `group: None` = every device.
    Network {
        action: RuleAction,
        cidr: ipnet::IpNet,
        group: Option<String>,
    },
    /// Store `store` (a Tang exchange key id, or `legacy`) may be used by
    /// devices of `group`. A store with no grant is open to every device.
    Store { store: String, group: String },
}

/// A stored rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    pub id: i64,
    #[serde(flatten)]
    pub spec: RuleSpec,
    pub created: i64,
}

/// Everything the policy needs for one request, read in one transaction.
#[derive(Debug, Clone, Default)]
pub struct PolicyInputs {
    /// The device id or the certificate serial is revoked.
    pub revoked: bool,
    /// `None` when the device was never seen before.
    pub status: Option<DeviceStatus>,
    /// All rules (network rules and store grants).
    pub rules: Vec<Rule>,
}

/// Whether a request was allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Allowed,
    Refused,
}

/// One audit entry as the server hands it in (no id, no hashes yet).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Unix seconds.
    pub time: i64,
    pub decision: Decision,
    /// `ok` or a [`crate::api::Reason`] code.
    pub reason: String,
    pub device: Option<String>,
    pub address: Option<IpAddr>,
    /// E.g. `POST /rec`, `GET /key`, `admin revoke`.
    pub endpoint: String,
    /// Tang key id or store name when there is one.
    pub key_id: Option<String>,
}

/// A stored audit entry: `hash = hex(SHA-256(prev_hash ‖ canonical JSON of
/// (seq, event)))`. The first entry's `prev_hash` is 64 zeros. The exact
/// format is in docs/AUDIT.md and [`chain`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub seq: i64,
    #[serde(flatten)]
    pub event: AuditEvent,
    pub prev_hash: String,
    pub hash: String,
}

/// Which audit entries to list.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub since: Option<i64>,
    pub device: Option<String>,
    pub limit: Option<usize>,
}

/// The result of walking the whole chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditVerification {
    pub entries: u64,
    /// The first entry whose hash or link does not match, if any.
    pub first_bad_seq: Option<i64>,
}

/// One Tang key as the database holds it: a private JWK sealed by
/// `tang::sealed` (AES-256-GCM under the operator's key-encryption key).
/// The store treats `sealed` as opaque bytes; it never sees a clear key.
#[derive(Clone, PartialEq, Eq)]
pub struct TangKeyRow {
    /// S256 JWK thumbprint (base64url), the key's name.
    pub thumbprint: String,
    /// Rotated away: not advertised, still answers `/rec`.
    pub hidden: bool,
    /// Unix seconds.
    pub created: i64,
    /// Sealing format version (`tang::sealed::FORMAT`).
    pub format: i64,
    /// nonce ‖ ciphertext ‖ tag.
    pub sealed: Vec<u8>,
}

impl std::fmt::Debug for TangKeyRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TangKeyRow")
            .field("thumbprint", &self.thumbprint)
            .field("hidden", &self.hidden)
            .field("created", &self.created)
            .field("format", &self.format)
            .field("sealed", &format_args!("<{} bytes>", self.sealed.len()))
            .finish()
    }
}

/// The server's state store.
pub trait Store: Send + Sync {
    /// Revocation, status and rules for one request.
    fn policy_inputs(&self, device_id: &str, serial: &str) -> Result<PolicyInputs, StateError>;
    /// Registers the device on first sight, records serial/address/time.
    fn record_sighting(&self, sighting: &Sighting<'_>) -> Result<(), StateError>;
    fn device(&self, id: &str) -> Result<Option<Device>, StateError>;
    fn devices(&self) -> Result<Vec<Device>, StateError>;
    /// Enables or disables a device; a device never seen is registered
    /// (so it can be disabled before its first request).
    fn set_status(&self, id: &str, status: DeviceStatus, at: i64) -> Result<(), StateError>;
    fn revoke(&self, target: &RevocationTarget, at: i64) -> Result<(), StateError>;
    fn revocations(&self) -> Result<Vec<RevocationTarget>, StateError>;
    fn add_rule(&self, spec: &RuleSpec, at: i64) -> Result<Rule, StateError>;
    fn remove_rule(&self, id: i64) -> Result<(), StateError>;
    fn rules(&self) -> Result<Vec<Rule>, StateError>;
    /// Appends to the hash chain (atomically with respect to other writers).
    fn append_audit(&self, event: &AuditEvent) -> Result<AuditRecord, StateError>;
    fn audit(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, StateError>;
    fn verify_audit(&self) -> Result<AuditVerification, StateError>;
    /// Every shared Tang key (hidden ones too), ordered by thumbprint.
    fn tang_keys(&self) -> Result<Vec<TangKeyRow>, StateError>;
    /// In one transaction: when `hide_current`, hides every advertised key;
    /// then inserts `rows`, skipping thumbprints already stored (their
    /// rows are left as they are). Returns how many rows were inserted.
    fn insert_tang_keys(
        &self,
        rows: &[TangKeyRow],
        hide_current: bool,
    ) -> Result<usize, StateError>;
    /// Hides one key ([`StateError::NoSuchTangKey`] when absent).
    fn hide_tang_key(&self, thumbprint: &str) -> Result<(), StateError>;
}

/// Opens the state store a database URL names:
///
/// - `None`: SQLite at `default_sqlite_path` (`<data-dir>/state.db`);
/// - `sqlite:PATH`, `sqlite://PATH` or a plain path: SQLite at that path;
/// - `postgres://…` or `postgresql://…`: PostgreSQL (libpq URL format,
///   e.g. `postgres://secure_store:PASSWORD@db.example:5432/secure_store`).
///
/// Migrations are applied on open. Any other `scheme://` is refused.
pub fn open(
    database_url: Option<&str>,
    default_sqlite_path: &Path,
) -> Result<Arc<dyn Store>, StateError> {
    match database_url {
        None => Ok(Arc::new(sqlite::SqliteStore::open(default_sqlite_path)?)),
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            Ok(Arc::new(postgres::PostgresStore::open(url)?))
        }
        Some(url) => {
            let path = match url.strip_prefix("sqlite:") {
                Some(rest) => rest.strip_prefix("//").unwrap_or(rest),
                None if url.contains("://") => {
                    let scheme = url.split("://").next().unwrap_or_default();
                    return Err(StateError::Invalid {
                        what: "database URL",
                        detail: format!(
                            "unsupported scheme {scheme:?} (use postgres://…, sqlite:PATH or a path)"
                        ),
                    });
                }
                None => url,
            };
            if path.is_empty() {
                return Err(StateError::Invalid {
                    what: "database URL",
                    detail: format!("{url:?} names no file"),
                });
            }
            Ok(Arc::new(sqlite::SqliteStore::open(Path::new(path))?))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_picks_sqlite_for_paths_and_sqlite_urls() {
        let tmp = tempfile::tempdir().unwrap();
        let default = tmp.path().join("default/state.db");
        open(None, &default)
            .unwrap()
            .revoke(&RevocationTarget::Device("a".into()), 1)
            .unwrap();
        assert!(default.is_file());
        let plain = tmp.path().join("plain.db");
        open(Some(plain.to_str().unwrap()), &default).unwrap();
        assert!(plain.is_file());
        let prefixed = tmp.path().join("prefixed.db");
        open(Some(&format!("sqlite:{}", prefixed.display())), &default).unwrap();
        assert!(prefixed.is_file());
        let slashes = tmp.path().join("slashes.db");
        open(Some(&format!("sqlite://{}", slashes.display())), &default).unwrap();
        assert!(slashes.is_file());
    }

    #[test]
    fn open_refuses_other_schemes() {
        let tmp = tempfile::tempdir().unwrap();
        let default = tmp.path().join("state.db");
        for url in ["mysql://db/x", "sqlite:", ""] {
            assert!(
                matches!(open(Some(url), &default), Err(StateError::Invalid { .. })),
                "{url}"
            );
        }
        assert!(!default.exists());
    }
}
