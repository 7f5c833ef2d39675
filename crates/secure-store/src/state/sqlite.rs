//! SQLite implementation of [`Store`], the server's default state
//! (`<data-dir>/state.db`).
//!
//! One file in WAL mode, so readers never wait for the writer and several
//! processes (a server and `secure-store admin` run locally, or two
//! servers in tests) can share it. A [`SqliteStore`] holds one write
//! connection behind a mutex and a few read connections; every call is one
//! short transaction. Writes take the database write lock up front
//! (`BEGIN IMMEDIATE`), which is what makes [`Store::append_audit`] atomic
//! across processes: read the last hash and insert the next entry under
//! one lock. `busy_timeout` (5 s) makes a writer wait for another rather
//! than fail.
//!
//! `synchronous = NORMAL`: a committed transaction survives a crash of the
//! process; a power loss may drop the last few commits (never corrupt the
//! file, and the audit chain stays valid: what is lost is a suffix).
//!
//! [`Store::policy_inputs`] runs on every request: one prepared statement
//! for revocation and device status, plus the rules. The rules are kept in
//! memory together with the `rules_version` counter they were read at; each
//! call reads the counter in the same transaction and reloads the rules
//! when it moved, so a rule change (from this process or another) applies
//! to the very next request. Revocations and status are never cached.

use std::fs::{DirBuilder, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior};

use super::chain::{ChainEntry, Verifier, GENESIS_HASH};
use super::schema::{
    self, decision_str, parse_addr, status_from_str, status_str, DEVICE_COLUMNS, MIGRATIONS,
    MIGRATIONS_TABLE, SCHEMA_VERSION,
};
use super::{
    AuditEvent, AuditFilter, AuditRecord, AuditVerification, Decision, Device, DeviceStatus,
    PolicyInputs, RevocationTarget, Rule, RuleAction, RuleSpec, Sighting, StateError, Store,
    TangKeyRow,
};

/// How long a writer waits for another writer's lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Read connections per store (file databases).
const READERS: usize = 4;

impl From<rusqlite::Error> for StateError {
    fn from(e: rusqlite::Error) -> Self {
        StateError::Database(e.to_string())
    }
}

impl From<rusqlite::types::FromSqlError> for StateError {
    fn from(e: rusqlite::types::FromSqlError) -> Self {
        StateError::Database(e.to_string())
    }
}

/// The rules as last read, with the `rules_version` they were read at.
#[derive(Debug)]
struct CachedRules {
    version: i64,
    rules: Vec<Rule>,
}

/// The SQLite state store. `Send + Sync`: share it in an `Arc`.
pub struct SqliteStore {
    writer: Mutex<Connection>,
    /// Empty for an in-memory database (reads use the writer).
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
    rules: RwLock<Option<Arc<CachedRules>>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("readers", &self.readers.len())
            .finish_non_exhaustive()
    }
}

fn lock(m: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    // A panic while holding a connection leaves no half-done transaction
    // behind (rusqlite rolls back on drop), so the connection is usable.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn configure(conn: &Connection, file: bool) -> Result<(), StateError> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    if file {
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StateError::Database(format!(
                "could not switch to WAL (journal mode is {mode})"
            )));
        }
    }
    conn.execute_batch("PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;")?;
    Ok(())
}

/// Applies the migrations this database lacks, under the write lock, so
/// two processes opening a new file at once do not both apply them.
fn migrate(conn: &mut Connection, now: i64) -> Result<(), StateError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(MIGRATIONS_TABLE)?;
    let found: i64 = tx.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
        [],
        |r| r.get(0),
    )?;
    if found > SCHEMA_VERSION {
        return Err(StateError::SchemaTooNew {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    for &(version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > found) {
        tx.execute_batch(sql)
            .map_err(|e| StateError::Database(format!("migration {version}: {e}")))?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied) VALUES (?1, ?2)",
            (version, now),
        )?;
    }
    tx.commit()?;
    Ok(())
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl SqliteStore {
    /// Opens (creating if missing) the state database at `path`: the file
    /// is created 0600 and a missing parent directory 0700; WAL, busy
    /// timeout, foreign keys; migrations applied. A database written by a
    /// newer program is refused with [`StateError::SchemaTooNew`].
    pub fn open(path: &Path) -> Result<SqliteStore, StateError> {
        let io = |what: &str, e: std::io::Error| {
            StateError::Database(format!("{what} {}: {e}", path.display()))
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            if !parent.exists() {
                DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(parent)
                    .map_err(|e| io("creating the directory of", e))?;
            }
        }
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
        {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                use std::os::unix::fs::PermissionsExt;
                if let Ok(meta) = std::fs::metadata(path) {
                    if meta.permissions().mode() & 0o077 != 0 {
                        tracing::warn!(
                            path = %path.display(),
                            mode = format_args!("{:o}", meta.permissions().mode() & 0o777),
                            "state database is readable by others; chmod 600 it"
                        );
                    }
                }
            }
            Err(e) => return Err(io("creating", e)),
        }
        let open = || -> Result<Connection, StateError> {
            Connection::open(path)
                .map_err(|e| StateError::Database(format!("opening {}: {e}", path.display())))
        };
        let mut writer = open()?;
        configure(&writer, true)?;
        migrate(&mut writer, unix_now())?;
        let mut readers = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            let r = open()?;
            configure(&r, true)?;
            r.execute_batch("PRAGMA query_only = ON")?;
            readers.push(Mutex::new(r));
        }
        Ok(SqliteStore {
            writer: Mutex::new(writer),
            readers,
            next_reader: AtomicUsize::new(0),
            rules: RwLock::new(None),
        })
    }

    /// A private in-memory database (tests; one connection).
    pub fn open_in_memory() -> Result<SqliteStore, StateError> {
        let mut conn = Connection::open_in_memory()?;
        configure(&conn, false)?;
        migrate(&mut conn, unix_now())?;
        Ok(SqliteStore {
            writer: Mutex::new(conn),
            readers: Vec::new(),
            next_reader: AtomicUsize::new(0),
            rules: RwLock::new(None),
        })
    }

    /// The schema version of the open database.
    pub fn schema_version(&self) -> Result<i64, StateError> {
        self.read(|c| {
            Ok(
                c.query_row("SELECT MAX(version) FROM schema_migrations", [], |r| {
                    r.get(0)
                })?,
            )
        })
    }

    /// Runs `f` on a read connection: a free one if any, else waits.
    fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StateError>,
    ) -> Result<T, StateError> {
        if self.readers.is_empty() {
            return f(&lock(&self.writer));
        }
        let n = self.readers.len();
        let start = self.next_reader.fetch_add(1, Ordering::Relaxed) % n;
        for i in 0..n {
            if let Ok(conn) = self.readers[(start + i) % n].try_lock() {
                return f(&conn);
            }
        }
        f(&lock(&self.readers[start]))
    }

    /// Runs `f` in a write transaction (`BEGIN IMMEDIATE`), committed when
    /// `f` succeeds.
    fn write<T>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, StateError>,
    ) -> Result<T, StateError> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }

    /// The rules current at `version`, from memory or read on `conn`
    /// (inside the caller's transaction).
    fn rules_at(&self, conn: &Connection, version: i64) -> Result<Vec<Rule>, StateError> {
        if let Some(cached) = self
            .rules
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            if cached.version == version {
                return Ok(cached.rules.clone());
            }
        }
        let rules = load_rules(conn)?;
        *self.rules.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(CachedRules {
            version,
            rules: rules.clone(),
        }));
        Ok(rules)
    }
}

fn rule_from_row(row: &Row<'_>) -> Result<Rule, StateError> {
    let id: i64 = row.get(0)?;
    let kind: String = row.get(1)?;
    let action: Option<String> = row.get(2)?;
    let cidr: Option<String> = row.get(3)?;
    let group: Option<String> = row.get(4)?;
    let store: Option<String> = row.get(5)?;
    let created: i64 = row.get(6)?;
    let bad = |detail: &str| StateError::Database(format!("rule {id}: {detail}"));
    let spec = match (kind.as_str(), action.as_deref(), cidr, store) {
        ("network", Some(action), Some(cidr), None) => RuleSpec::Network {
            action: match action {
                "allow" => RuleAction::Allow,
                "deny" => RuleAction::Deny,
                other => return Err(bad(&format!("unknown action {other:?}"))),
            },
            cidr: ipnet::IpNet::from_str(&cidr).map_err(|_| bad(&format!("bad CIDR {cidr:?}")))?,
            group,
        },
        ("store", None, None, Some(store)) => RuleSpec::Store {
            store,
            group: group.ok_or_else(|| bad("store grant without a group"))?,
        },
        _ => return Err(bad(&format!("malformed {kind:?} rule"))),
    };
    Ok(Rule { id, spec, created })
}

fn load_rules(conn: &Connection) -> Result<Vec<Rule>, StateError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, kind, action, cidr, group_name, store, created FROM rules ORDER BY id",
    )?;
    let mut rows = stmt.query([])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(rule_from_row(row)?);
    }
    Ok(out)
}

fn device_from_row(row: &Row<'_>) -> Result<Device, StateError> {
    let id: String = row.get(0)?;
    let status: String = row.get(1)?;
    let last_address = parse_addr(row.get(4)?, &format!("device {id}"))?;
    Ok(Device {
        status: status_from_str(&status)?,
        first_seen: row.get(2)?,
        last_seen: row.get(3)?,
        last_address,
        revoked: row.get(5)?,
        groups: Vec::new(),
        serials: Vec::new(),
        id,
    })
}

const AUDIT_COLUMNS: &str =
    "seq, time, decision, reason, device, address, endpoint, key_id, prev_hash, hash";

fn audit_from_row(row: &Row<'_>) -> Result<AuditRecord, StateError> {
    let seq: i64 = row.get(0)?;
    let decision: String = row.get(2)?;
    let decision = match decision.as_str() {
        "allowed" => Decision::Allowed,
        "refused" => Decision::Refused,
        other => {
            return Err(StateError::Database(format!(
                "audit entry {seq}: unknown decision {other:?}"
            )))
        }
    };
    Ok(AuditRecord {
        seq,
        event: AuditEvent {
            time: row.get(1)?,
            decision,
            reason: row.get(3)?,
            device: row.get(4)?,
            address: parse_addr(row.get(5)?, &format!("audit entry {seq}"))?,
            endpoint: row.get(6)?,
            key_id: row.get(7)?,
        },
        prev_hash: row.get(8)?,
        hash: row.get(9)?,
    })
}

fn revocation_target(kind: &str, value: String) -> Result<RevocationTarget, StateError> {
    match kind {
        "device" => Ok(RevocationTarget::Device(value)),
        "serial" => Ok(RevocationTarget::Serial(value)),
        other => Err(StateError::Database(format!(
            "unknown revocation kind {other:?}"
        ))),
    }
}

fn bump(tx: &Connection, counter: &str) -> Result<i64, StateError> {
    Ok(tx.query_row(
        "UPDATE counters SET value = value + 1 WHERE name = ?1 RETURNING value",
        [counter],
        |r| r.get(0),
    )?)
}

impl Store for SqliteStore {
    fn policy_inputs(&self, device_id: &str, serial: &str) -> Result<PolicyInputs, StateError> {
        // A serial that does not parse cannot be revoked: compare it as given.
        let serial = schema::normalize_serial(serial).unwrap_or_else(|_| serial.to_owned());
        self.read(|conn| {
            let tx = conn.unchecked_transaction()?;
            let (revoked, status, version) = {
                let mut stmt = tx.prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM revocations WHERE (kind = 'device' AND value = ?1) \
                                                            OR (kind = 'serial' AND value = ?2)), \
                            (SELECT status FROM devices WHERE id = ?1), \
                            (SELECT value FROM counters WHERE name = 'rules_version')",
                )?;
                stmt.query_row((device_id, &serial), |r| {
                    Ok((
                        r.get::<_, bool>(0)?,
                        r.get::<_, Option<String>>(1)?,
                        r.get::<_, i64>(2)?,
                    ))
                })?
            };
            let status = status.as_deref().map(status_from_str).transpose()?;
            let rules = self.rules_at(&tx, version)?;
            tx.finish()?;
            Ok(PolicyInputs {
                revoked,
                status,
                rules,
            })
        })
    }

    fn record_sighting(&self, s: &Sighting<'_>) -> Result<(), StateError> {
        schema::check_name("device id", s.device_id)?;
        let mut groups: Vec<&str> = Vec::with_capacity(s.groups.len());
        for g in s.groups {
            schema::check_name("group", g)?;
            groups.push(g);
        }
        groups.sort_unstable();
        groups.dedup();
        let serial = schema::normalize_serial(s.serial)?;
        let address = s.address.to_string();
        self.write(|tx| {
            tx.prepare_cached(
                "INSERT INTO devices (id, status, first_seen, last_seen, last_address) \
                 VALUES (?1, 'enabled', ?2, ?2, ?3) \
                 ON CONFLICT (id) DO UPDATE SET last_seen = excluded.last_seen, \
                                                last_address = excluded.last_address",
            )?
            .execute((s.device_id, s.at, &address))?;
            // The certificate's groups are authoritative; rewrite only on change.
            let current: Vec<String> = tx
                .prepare_cached(
                    "SELECT group_name FROM device_groups WHERE device_id = ?1 ORDER BY group_name",
                )?
                .query_map([s.device_id], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            if current
                .iter()
                .map(String::as_str)
                .ne(groups.iter().copied())
            {
                tx.execute(
                    "DELETE FROM device_groups WHERE device_id = ?1",
                    [s.device_id],
                )?;
                let mut ins = tx.prepare_cached(
                    "INSERT INTO device_groups (device_id, group_name) VALUES (?1, ?2)",
                )?;
                for g in &groups {
                    ins.execute((s.device_id, g))?;
                }
            }
            tx.prepare_cached(
                "INSERT INTO device_serials (device_id, serial, first_seen, last_seen) \
                 VALUES (?1, ?2, ?3, ?3) \
                 ON CONFLICT (device_id, serial) DO UPDATE SET last_seen = excluded.last_seen",
            )?
            .execute((s.device_id, &serial, s.at))?;
            Ok(())
        })
    }

    fn device(&self, id: &str) -> Result<Option<Device>, StateError> {
        self.read(|conn| {
            let tx = conn.unchecked_transaction()?;
            let device = {
                let mut stmt = tx.prepare_cached(&format!(
                    "SELECT {DEVICE_COLUMNS} FROM devices d WHERE d.id = ?1"
                ))?;
                let mut rows = stmt.query([id])?;
                match rows.next()? {
                    Some(row) => Some(device_from_row(row)?),
                    None => None,
                }
            };
            let Some(mut device) = device else {
                return Ok(None);
            };
            device.groups = tx
                .prepare_cached(
                    "SELECT group_name FROM device_groups WHERE device_id = ?1 ORDER BY group_name",
                )?
                .query_map([id], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            device.serials = tx
                .prepare_cached(
                    "SELECT serial FROM device_serials WHERE device_id = ?1 \
                     ORDER BY first_seen, serial",
                )?
                .query_map([id], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            tx.finish()?;
            Ok(Some(device))
        })
    }

    fn devices(&self) -> Result<Vec<Device>, StateError> {
        self.read(|conn| {
            let tx = conn.unchecked_transaction()?;
            let mut devices = Vec::new();
            {
                let mut stmt =
                    tx.prepare_cached(&format!("SELECT {DEVICE_COLUMNS} FROM devices d ORDER BY d.id"))?;
                let mut rows = stmt.query([])?;
                while let Some(row) = rows.next()? {
                    devices.push(device_from_row(row)?);
                }
            }
            let index: std::collections::HashMap<String, usize> = devices
                .iter()
                .enumerate()
                .map(|(i, d)| (d.id.clone(), i))
                .collect();
            let mut each = |sql: &str, pick: fn(&mut Device) -> &mut Vec<String>| {
                let mut stmt = tx.prepare_cached(sql)?;
                let mut rows = stmt.query([])?;
                while let Some(row) = rows.next()? {
                    let id: String = row.get(0)?;
                    if let Some(&i) = index.get(&id) {
                        pick(&mut devices[i]).push(row.get(1)?);
                    }
                }
                Ok::<_, StateError>(())
            };
            each(
                "SELECT device_id, group_name FROM device_groups ORDER BY device_id, group_name",
                |d| &mut d.groups,
            )?;
            each(
                "SELECT device_id, serial FROM device_serials ORDER BY device_id, first_seen, serial",
                |d| &mut d.serials,
            )?;
            tx.finish()?;
            Ok(devices)
        })
    }

    fn set_status(&self, id: &str, status: DeviceStatus, at: i64) -> Result<(), StateError> {
        schema::check_name("device id", id)?;
        self.write(|tx| {
            tx.execute(
                "INSERT INTO devices (id, status, first_seen, last_seen, last_address) \
                 VALUES (?1, ?2, ?3, ?3, NULL) \
                 ON CONFLICT (id) DO UPDATE SET status = excluded.status",
                (id, status_str(status), at),
            )?;
            Ok(())
        })
    }

    fn revoke(&self, target: &RevocationTarget, at: i64) -> Result<(), StateError> {
        let (kind, value) = match target {
            RevocationTarget::Device(id) => {
                schema::check_name("device id", id)?;
                ("device", id.clone())
            }
            RevocationTarget::Serial(s) => ("serial", schema::normalize_serial(s)?),
        };
        self.write(|tx| {
            tx.execute(
                "INSERT INTO revocations (kind, value, at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (kind, value) DO NOTHING",
                (kind, &value, at),
            )?;
            Ok(())
        })
    }

    fn revocations(&self) -> Result<Vec<RevocationTarget>, StateError> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare_cached("SELECT kind, value FROM revocations ORDER BY at, kind, value")?;
            let mut rows = stmt.query([])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                let kind: String = row.get(0)?;
                out.push(revocation_target(&kind, row.get(1)?)?);
            }
            Ok(out)
        })
    }

    fn add_rule(&self, spec: &RuleSpec, at: i64) -> Result<Rule, StateError> {
        let spec = match spec {
            RuleSpec::Network {
                action,
                cidr,
                group,
            } => {
                if let Some(g) = group {
                    schema::check_name("group", g)?;
                }
                RuleSpec::Network {
                    action: *action,
                    cidr: schema::canonical_net(*cidr),
                    group: group.clone(),
                }
            }
            RuleSpec::Store { store, group } => {
                schema::check_name("store", store)?;
                schema::check_name("group", group)?;
                spec.clone()
            }
        };
        self.write(|tx| {
            let id = bump(tx, "next_rule_id")?;
            let (kind, action, cidr, group, store) = match &spec {
                RuleSpec::Network {
                    action,
                    cidr,
                    group,
                } => (
                    "network",
                    Some(match action {
                        RuleAction::Allow => "allow",
                        RuleAction::Deny => "deny",
                    }),
                    Some(cidr.to_string()),
                    group.as_deref(),
                    None,
                ),
                RuleSpec::Store { store, group } => (
                    "store",
                    None,
                    None,
                    Some(group.as_str()),
                    Some(store.as_str()),
                ),
            };
            tx.execute(
                "INSERT INTO rules (id, kind, action, cidr, group_name, store, created) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                (id, kind, action, cidr, group, store, at),
            )?;
            bump(tx, "rules_version")?;
            Ok(Rule {
                id,
                spec: spec.clone(),
                created: at,
            })
        })
    }

    fn remove_rule(&self, id: i64) -> Result<(), StateError> {
        self.write(|tx| {
            if tx.execute("DELETE FROM rules WHERE id = ?1", [id])? == 0 {
                return Err(StateError::NoSuchRule(id));
            }
            bump(tx, "rules_version")?;
            Ok(())
        })
    }

    fn rules(&self) -> Result<Vec<Rule>, StateError> {
        self.read(load_rules)
    }

    fn append_audit(&self, event: &AuditEvent) -> Result<AuditRecord, StateError> {
        let address = event.address.map(|a| a.to_string());
        self.write(|tx| {
            let last: Option<(i64, String)> = tx
                .prepare_cached("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")?
                .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            let (seq, prev_hash) = match last {
                Some((seq, hash)) => (seq + 1, hash),
                None => (1, GENESIS_HASH.to_owned()),
            };
            let entry = ChainEntry {
                address: address.as_deref(),
                decision: decision_str(event.decision),
                device: event.device.as_deref(),
                endpoint: &event.endpoint,
                key_id: event.key_id.as_deref(),
                reason: &event.reason,
                seq,
                time: event.time,
            };
            let hash = entry.hash(&prev_hash);
            tx.prepare_cached(&format!(
                "INSERT INTO audit ({AUDIT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
            ))?
            .execute(rusqlite::params![
                seq,
                event.time,
                entry.decision,
                &event.reason,
                &event.device,
                &address,
                &event.endpoint,
                &event.key_id,
                &prev_hash,
                &hash,
            ])?;
            Ok(AuditRecord {
                seq,
                event: event.clone(),
                prev_hash,
                hash,
            })
        })
    }

    fn audit(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, StateError> {
        let mut conditions = Vec::new();
        let mut params: Vec<Value> = Vec::new();
        if let Some(since) = filter.since {
            params.push(Value::Integer(since));
            conditions.push(format!("time >= ?{}", params.len()));
        }
        if let Some(device) = &filter.device {
            params.push(Value::Text(device.clone()));
            conditions.push(format!("device = ?{}", params.len()));
        }
        let limit = filter
            .limit
            .map(|l| i64::try_from(l).unwrap_or(i64::MAX))
            .unwrap_or(i64::MAX);
        params.push(Value::Integer(limit));
        let where_clause = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        // The newest `limit` matching entries, listed oldest first.
        let sql = format!(
            "SELECT {AUDIT_COLUMNS} FROM (SELECT {AUDIT_COLUMNS} FROM audit {where_clause} \
             ORDER BY seq DESC LIMIT ?{}) AS newest ORDER BY seq",
            params.len()
        );
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(&sql)?;
            let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                out.push(audit_from_row(row)?);
            }
            Ok(out)
        })
    }

    fn verify_audit(&self) -> Result<AuditVerification, StateError> {
        self.read(|conn| {
            let mut stmt =
                conn.prepare(&format!("SELECT {AUDIT_COLUMNS} FROM audit ORDER BY seq"))?;
            let mut rows = stmt.query([])?;
            let mut verifier = Verifier::new();
            while let Some(row) = rows.next()? {
                let text = |i: usize| -> Result<&str, StateError> { Ok(row.get_ref(i)?.as_str()?) };
                let opt = |i: usize| -> Result<Option<&str>, StateError> {
                    Ok(row.get_ref(i)?.as_str_or_null()?)
                };
                let entry = ChainEntry {
                    seq: row.get(0)?,
                    time: row.get(1)?,
                    decision: text(2)?,
                    reason: text(3)?,
                    device: opt(4)?,
                    address: opt(5)?,
                    endpoint: text(6)?,
                    key_id: opt(7)?,
                };
                verifier.push(&entry, text(8)?, text(9)?);
            }
            Ok(verifier.finish())
        })
    }

    fn tang_keys(&self) -> Result<Vec<TangKeyRow>, StateError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT thumbprint, hidden, created, format, sealed FROM tang_keys ORDER BY thumbprint",
            )?;
            let mut rows = stmt.query([])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                let thumbprint: String = row.get(0)?;
                let sealed: String = row.get(4)?;
                out.push(TangKeyRow {
                    sealed: schema::decode_sealed(&thumbprint, &sealed)?,
                    hidden: row.get::<_, i64>(1)? != 0,
                    created: row.get(2)?,
                    format: row.get(3)?,
                    thumbprint,
                });
            }
            Ok(out)
        })
    }

    fn insert_tang_keys(
        &self,
        rows: &[TangKeyRow],
        hide_current: bool,
    ) -> Result<usize, StateError> {
        for r in rows {
            schema::check_thumbprint(&r.thumbprint)?;
        }
        self.write(|tx| {
            if hide_current {
                tx.execute("UPDATE tang_keys SET hidden = 1 WHERE hidden = 0", [])?;
            }
            let mut inserted = 0;
            let mut ins = tx.prepare_cached(
                "INSERT INTO tang_keys (thumbprint, hidden, created, format, sealed) \
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (thumbprint) DO NOTHING",
            )?;
            for r in rows {
                inserted += ins.execute((
                    &r.thumbprint,
                    i64::from(r.hidden),
                    r.created,
                    r.format,
                    schema::encode_sealed(&r.sealed),
                ))?;
            }
            Ok(inserted)
        })
    }

    fn hide_tang_key(&self, thumbprint: &str) -> Result<(), StateError> {
        self.write(|tx| {
            if tx.execute(
                "UPDATE tang_keys SET hidden = 1 WHERE thumbprint = ?1",
                [thumbprint],
            )? == 0
            {
                return Err(StateError::NoSuchTangKey(thumbprint.to_owned()));
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::super::suite::{self, event, ip};
    use super::*;

    fn memory() -> SqliteStore {
        SqliteStore::open_in_memory().unwrap()
    }

    #[test]
    fn store_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<SqliteStore>();
        let _: Box<dyn Store> = Box::new(SqliteStore::open_in_memory().unwrap());
    }

    #[test]
    fn open_creates_private_file_and_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("data/state.db");
        let store = SqliteStore::open(&path).unwrap();
        store
            .revoke(&RevocationTarget::Device("d".into()), 1)
            .unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&tmp.path().join("data")), 0o700);
        assert_eq!(mode(&tmp.path().join("data/state.db-wal")), 0o600);
        let journal: String = Connection::open(&path)
            .unwrap()
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(journal, "wal");
    }

    #[test]
    fn reopen_keeps_data_and_applies_no_migration_twice() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("state.db");
        let rule = {
            let store = SqliteStore::open(&path).unwrap();
            assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
            let spec = RuleSpec::Network {
                action: RuleAction::Allow,
                cidr: "10.0.0.0/8".parse().unwrap(),
                group: None,
            };
            store.add_rule(&spec, 5).unwrap()
        };
        for _ in 0..2 {
            let store = SqliteStore::open(&path).unwrap();
            assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
            assert_eq!(store.rules().unwrap(), vec![rule.clone()]);
        }
        let rows: i64 = Connection::open(&path)
            .unwrap()
            .query_row("SELECT COUNT(*) FROM schema_migrations", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, MIGRATIONS.len() as i64);
    }

    #[test]
    fn newer_schema_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("state.db");
        drop(SqliteStore::open(&path).unwrap());
        Connection::open(&path)
            .unwrap()
            .execute(
                "INSERT INTO schema_migrations (version, applied) VALUES (?1, 0)",
                [SCHEMA_VERSION + 1],
            )
            .unwrap();
        match SqliteStore::open(&path) {
            Err(StateError::SchemaTooNew { found, supported }) => {
                assert_eq!((found, supported), (SCHEMA_VERSION + 1, SCHEMA_VERSION));
            }
            other => panic!("expected SchemaTooNew, got {other:?}"),
        }
    }

    // The behavioural suite shared with the PostgreSQL backend (state/suite.rs).

    #[test]
    fn sightings_register_and_update_devices() {
        suite::sightings_register_and_update_devices(&memory());
    }

    #[test]
    fn bad_values_are_refused() {
        suite::bad_values_are_refused(&memory());
    }

    #[test]
    fn status_registers_unseen_devices_and_feeds_policy() {
        suite::status_registers_unseen_devices_and_feeds_policy(&memory());
    }

    #[test]
    fn revocations_by_device_and_serial_apply_at_once() {
        suite::revocations_by_device_and_serial_apply_at_once(&memory());
    }

    #[test]
    fn rules_add_list_remove() {
        suite::rules_add_list_remove(&memory());
    }

    #[test]
    fn rule_changes_from_another_process_apply_to_the_next_request() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("state.db");
        let server = SqliteStore::open(&path).unwrap();
        let admin = SqliteStore::open(&path).unwrap();
        suite::changes_through_one_instance_apply_to_the_next_request_of_another(&server, &admin);
    }

    #[test]
    fn audit_appends_chain_and_filters() {
        suite::audit_appends_chain_and_filters(&memory());
    }

    #[test]
    fn tang_keys_insert_list_hide() {
        suite::tang_keys_insert_list_hide(&memory());
    }

    #[test]
    fn tang_key_rotation_through_one_instance_is_seen_by_another() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("state.db");
        let a = SqliteStore::open(&path).unwrap();
        let b = SqliteStore::open(&path).unwrap();
        suite::tang_key_rotation_through_one_instance_is_seen_by_another(&a, &b);
    }

    /// A file database holding a chain of `n` entries, and raw SQL on it.
    fn chain_on_file(n: i64) -> suite::ChainedStore {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("state.db");
        let store = SqliteStore::open(&path).unwrap();
        suite::append_chain(&store, n);
        let exec = move |sql: &str| {
            Connection::open(tmp.path().join("state.db"))
                .unwrap()
                .execute_batch(sql)
                .unwrap();
        };
        (Box::new(store), Box::new(exec))
    }

    #[test]
    fn tampering_is_detected_at_the_right_seq() {
        suite::tampering_is_detected_at_the_right_seq(&chain_on_file);
    }

    #[test]
    fn tampered_then_counted_to_the_end() {
        suite::tampered_then_counted_to_the_end(&chain_on_file);
    }

    #[test]
    fn concurrent_appenders_in_two_stores_keep_one_chain() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("state.db");
        suite::concurrent_appenders_in_two_stores_keep_one_chain([
            Arc::new(SqliteStore::open(&path).unwrap()),
            Arc::new(SqliteStore::open(&path).unwrap()),
        ]);
    }

    /// The Python verifier published in docs/AUDIT.md, or `None` when
    /// python3 is missing and interop is not required.
    fn audit_md_script() -> Option<(std::path::PathBuf, String)> {
        let python = std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join("python3"))
                .find(|p| p.is_file())
        });
        let required = std::env::var("SECURE_STORE_REQUIRE_INTEROP").is_ok_and(|v| v == "1")
            || std::env::var("CI").is_ok_and(|v| v == "true");
        let python = match python {
            Some(p) => p,
            None if required => panic!("python3 is not installed and interop tests are required"),
            None => {
                eprintln!("SKIPPED: python3 is not installed");
                return None;
            }
        };
        let doc = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/AUDIT.md"),
        )
        .unwrap();
        let start = doc.find("```python\n").unwrap() + "```python\n".len();
        let len = doc[start..].find("```").unwrap();
        Some((python, doc[start..start + len].to_owned()))
    }

    #[test]
    fn script_in_audit_md_verifies_the_chain() {
        let Some((python, script)) = audit_md_script() else {
            return;
        };
        let tmp = tempfile::tempdir().unwrap();
        let script_path = tmp.path().join("verify_audit.py");
        std::fs::write(&script_path, script).unwrap();
        let path = tmp.path().join("state.db");
        let store = SqliteStore::open(&path).unwrap();
        let awkward = [
            "plain",
            "quote \" and backslash \\ and slash /",
            "controls \u{0}\u{1}\u{8}\t\n\u{b}\u{c}\r\u{1f}\u{7f}",
            "non-ASCII é 設備 \u{2028} 🔑",
        ];
        let mut head = String::new();
        for (i, text) in awkward.iter().enumerate() {
            let mut e = event(i as i64, text);
            e.endpoint = format!("admin {text}");
            e.address = Some(if i % 2 == 0 {
                ip("2001:db8::1:0:0:7")
            } else {
                ip("::ffff:192.0.2.1")
            });
            if i == 3 {
                e.device = None;
                e.key_id = None;
                e.address = None;
            }
            head = store.append_audit(&e).unwrap().hash;
        }
        let run = || {
            let out = std::process::Command::new(&python)
                .arg(&script_path)
                .arg(&path)
                .output()
                .unwrap();
            (out.status.success(), String::from_utf8(out.stdout).unwrap())
        };
        let (ok, stdout) = run();
        assert!(ok, "{stdout}");
        assert_eq!(
            stdout.trim(),
            format!("4 entries, chain intact, head {head}")
        );

        Connection::open(&path)
            .unwrap()
            .execute("UPDATE audit SET decision = 'allowed' WHERE seq = 2", [])
            .unwrap();
        let (ok, stdout) = run();
        assert!(!ok);
        assert_eq!(stdout.trim(), "4 entries, first bad entry: seq 2");
        assert_eq!(store.verify_audit().unwrap().first_bad_seq, Some(2));
    }
}
