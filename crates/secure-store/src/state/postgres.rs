//! PostgreSQL implementation of [`Store`], for several `secure-store server`
//! replicas sharing one state (`--database-url postgres://…`).
//!
//! It runs the very migration files SQLite runs (`state/migrations/*.sql`,
//! written in the dialect both accept) and the same queries with `$n`
//! placeholders, so both backends store the same rows. What differs:
//!
//! - **Connections.** A small pool of synchronous [`postgres::Client`]s
//!   ([`DEFAULT_MAX_CONNECTIONS`] at most, idle ones kept). Every call takes
//!   one, runs one short transaction and hands it back. A connection that
//!   broke (server restart, `pg_terminate_backend`, network cut) is dropped,
//!   never reused; when the very first statement of a call (`BEGIN`) fails
//!   because the connection is gone, the call is retried once on a fresh
//!   connection (nothing was done yet, so that is safe), and the other idle
//!   connections are dropped too (they most likely died with it). A break
//!   later in a call is returned as an error: the next call gets a fresh
//!   connection.
//! - **Durable commits.** Every new connection turns a
//!   `synchronous_commit = off` (from the database, role or URL) into `on`
//!   ([`DURABLE_COMMITS`]): the server answers a key only after its audit
//!   entry is committed, and that must mean it survives a database crash.
//!   Found by `cli::pg_restart` (an immediate shutdown of a database running
//!   with `synchronous_commit = off` lost audit entries of unlocks already
//!   answered).
//! - **Audit appends from several writers.** Inside the append transaction
//!   each writer takes the transaction-level advisory lock
//!   [`AUDIT_LOCK_KEY`] (`pg_advisory_xact_lock`, released at commit or
//!   rollback; needs no table privilege), then reads the head and inserts
//!   the next entry: appends from every replica are serialised and the chain
//!   stays linear. The `seq` primary key is the backstop.
//! - **Reads** of several statements run in `REPEATABLE READ, READ ONLY`
//!   transactions: one snapshot per call, like SQLite's read transactions.
//!   A read that is one statement (the per-request [`Store::policy_inputs`]
//!   unless the rules must be re-read, `rules`, `revocations`, `audit`,
//!   `tang_keys`) runs without `BEGIN`/`COMMIT`: one statement sees one
//!   snapshot anyway, and that saves two round trips. A read whose
//!   connection broke anywhere is retried once on a fresh one (reads are
//!   repeatable).
//! - **Prepared statements, once per connection.** Run with its SQL text, a
//!   statement costs two round trips in rust-postgres (Parse/Describe, then
//!   Bind/Execute) plus the server's parse and plan. The statements of every
//!   unlock (policy read, sighting, audit append) are prepared the first
//!   time a connection needs them and kept with it (`Conn`,
//!   `Session::prepared`): one round trip each afterwards. An unlock went
//!   from 18 round trips to 11 (policy read 2 → 1; sighting `BEGIN`, three
//!   statements, `COMMIT`: 8 → 5; append `BEGIN`, lock, head, insert,
//!   `COMMIT`: 8 → 5). Prepared statements belong to the database session,
//!   so the cache is dropped with its connection and a reconnect (after a
//!   restart, say) prepares again. A call that fails for any reason also
//!   empties its connection's cache, so a statement that went stale (a
//!   table changed under it by a newer replica's migration: "cached plan
//!   must not change result type") costs one failed call, not a broken
//!   replica. The audit lock stays a statement of its own before the head
//!   read: taken in the same statement, the head would be read from a
//!   snapshot older than the lock.
//! - **Freshness across replicas.** Nothing a decision depends on is cached
//!   across calls except the rule list, which is tagged with the
//!   `rules_version` counter it was read at; [`Store::policy_inputs`] reads
//!   revocation, status and that counter from the database on every call, so
//!   a change made through any replica applies to the next request of every
//!   other one (docs/STATE.md).
//!
//! No TLS to the database yet (`NoTls`): reach it over a Unix socket, the
//! loopback or a private network. A URL asking for `sslmode=require` fails
//! to connect rather than silently going clear.
//!
//! The client is synchronous and runs its own small runtime per connection:
//! call it from plain threads or `spawn_blocking`, never directly from an
//! async task (as with [`super::sqlite::SqliteStore`]).

use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use postgres::error::SqlState;
use postgres::fallible_iterator::FallibleIterator;
use postgres::types::ToSql;
use postgres::{Client, Config, GenericClient, IsolationLevel, NoTls, Row, Statement, Transaction};

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

/// Most connections one store opens at once.
pub const DEFAULT_MAX_CONNECTIONS: usize = 16;
/// How long a call waits for a free connection when all are busy.
const POOL_WAIT: Duration = Duration::from_secs(10);
/// Connect timeout when the URL sets none.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Server-side limits set on every session: a transaction left idle (its
/// replica hung or lost the network) is ended after 10 s, and a lock is
/// waited for 10 s at most.
pub const SESSION_TIMEOUTS: &str =
    "-c idle_in_transaction_session_timeout=10000 -c lock_timeout=10000";
/// Run on every new connection: a database (or role, or URL) set to
/// `synchronous_commit = off` acknowledges a commit before its WAL is
/// written, so a database crash or immediate shutdown can lose transactions
/// the server was told were committed: an audit entry for a key already
/// handed out, a revocation the admin saw succeed. The server relies on
/// "committed = durable", so it turns `off` into `on` for its own sessions.
/// Any other value (`local`, `remote_write`, `on`, `remote_apply`: all wait
/// at least for the local WAL flush) is kept, so a stronger setting is never
/// weakened. One statement per new connection, not per call.
pub const DURABLE_COMMITS: &str = "SELECT set_config('synchronous_commit', 'on', false) \
     WHERE current_setting('synchronous_commit') = 'off'";
/// The advisory lock every audit appender takes (ASCII `SSAUDIT1`).
pub const AUDIT_LOCK_KEY: i64 = 0x5353_4155_4449_5431;
/// The advisory lock migrations run under (ASCII `SSMIGRAT`), so replicas
/// starting together on an empty database do not both apply them.
pub const MIGRATION_LOCK_KEY: i64 = 0x5353_4d49_4752_4154;

impl From<postgres::Error> for StateError {
    fn from(e: postgres::Error) -> Self {
        // The Display of a bare DbError is only "db error"; the server's
        // message is what names the problem.
        match e.as_db_error() {
            Some(db) => StateError::Database(format!("{}: {}", db.code().code(), db.message())),
            None => StateError::Database(e.to_string()),
        }
    }
}

/// The rules as last read, with the `rules_version` they were read at.
#[derive(Debug)]
struct CachedRules {
    version: i64,
    rules: Vec<Rule>,
}

/// The statements one connection has prepared, by SQL text. Prepared
/// statements belong to the database session, so the cache lives and dies
/// with its [`Conn`]: a fresh connection (after a restart, say) starts
/// empty and prepares again.
#[derive(Default)]
struct Statements(HashMap<&'static str, Statement>);

impl Statements {
    /// `sql` prepared on `client`'s connection: by the first call that
    /// needs it, then reused.
    fn get(
        &mut self,
        client: &mut impl GenericClient,
        sql: &'static str,
    ) -> Result<Statement, postgres::Error> {
        if let Some(statement) = self.0.get(sql) {
            return Ok(statement.clone());
        }
        let statement = client.prepare(sql)?;
        self.0.insert(sql, statement.clone());
        Ok(statement)
    }
}

/// A pooled connection and the statements prepared on it.
struct Conn {
    client: Client,
    statements: Statements,
}

/// What a call's closure works with: the connection's client (or the
/// transaction open on it) and the statements prepared on that connection.
/// It derefs to the client, so `query("…", …)` with a text still works for
/// statements not worth caching; [`Session::prepared`] gives a cached one.
struct Session<'s, C> {
    client: &'s mut C,
    statements: &'s mut Statements,
}

impl<C: GenericClient> Session<'_, C> {
    /// The hot-path statement `sql`, prepared once per connection.
    fn prepared(&mut self, sql: &'static str) -> Result<Statement, postgres::Error> {
        self.statements.get(self.client, sql)
    }
}

impl<C> Deref for Session<'_, C> {
    type Target = C;
    fn deref(&self) -> &C {
        self.client
    }
}

impl<C> DerefMut for Session<'_, C> {
    fn deref_mut(&mut self) -> &mut C {
        self.client
    }
}

#[derive(Default)]
struct Pool {
    idle: Vec<Conn>,
    /// Connections handed out or idle.
    open: usize,
}

/// The PostgreSQL state store. `Send + Sync`: share it in an `Arc`.
pub struct PostgresStore {
    config: Config,
    /// The URL without its password, for messages.
    shown: String,
    max_connections: usize,
    pool: Mutex<Pool>,
    freed: Condvar,
    rules: RwLock<Option<Arc<CachedRules>>>,
    /// Calls retried on a fresh connection after finding theirs dead.
    reconnects: AtomicU64,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("url", &self.shown)
            .field("max_connections", &self.max_connections)
            .finish_non_exhaustive()
    }
}

/// `url` with the password (if any) replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match authority.rfind('@') {
        Some(at) => match authority[..at].find(':') {
            Some(colon) => format!(
                "{}{}:***{}",
                &url[..scheme_end + 3],
                &authority[..colon],
                &url[scheme_end + 3 + at..]
            ),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Whether an error means the connection is unusable (as opposed to a
/// statement refused on a healthy connection).
fn connection_broken(client: &Client, e: &postgres::Error) -> bool {
    if client.is_closed() || e.is_closed() {
        return true;
    }
    match e.as_db_error() {
        Some(db) => {
            let code = db.code();
            *code == SqlState::ADMIN_SHUTDOWN
                || *code == SqlState::CRASH_SHUTDOWN
                || *code == SqlState::CANNOT_CONNECT_NOW
                || code.code().starts_with("08")
                || matches!(
                    db.severity(),
                    "FATAL" | "PANIC" // the server ends the session
                )
        }
        // An I/O or protocol error, not a server's answer.
        None => true,
    }
}

/// What a call did: `Begin` errors happened before anything was sent that
/// could change the database.
enum Failure {
    Begin(postgres::Error),
    Other(StateError, bool),
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user:password@host:port/db?…` or
    /// `postgresql://…`; libpq's URL format) and applies the migrations the
    /// database lacks. A database written by a newer program is refused
    /// with [`StateError::SchemaTooNew`].
    pub fn open(url: &str) -> Result<PostgresStore, StateError> {
        Self::open_with(url, DEFAULT_MAX_CONNECTIONS)
    }

    /// [`Self::open`] with at most `max_connections` (at least 1) open at once.
    pub fn open_with(url: &str, max_connections: usize) -> Result<PostgresStore, StateError> {
        let shown = redact_url(url);
        let mut config = Config::from_str(url).map_err(|e| StateError::Invalid {
            what: "database URL",
            detail: format!("{shown}: {e}"),
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("secure-store");
        }
        // A replica that vanishes in the middle of a transaction (holding
        // the audit lock, say) is cut by the database after
        // SESSION_TIMEOUTS instead of blocking the others until TCP gives
        // up; a waiter gives up after as long. Options in the URL come
        // after these, so they win.
        let options = match config.get_options() {
            Some(theirs) => format!("{SESSION_TIMEOUTS} {theirs}"),
            None => SESSION_TIMEOUTS.to_owned(),
        };
        config.options(&options);
        let store = PostgresStore {
            config,
            shown,
            max_connections: max_connections.max(1),
            pool: Mutex::new(Pool::default()),
            freed: Condvar::new(),
            rules: RwLock::new(None),
            reconnects: AtomicU64::new(0),
        };
        let mut conn = store.connect()?;
        let migrated = migrate(&mut conn.client, unix_now());
        store.give_back(conn, migrated.is_ok());
        migrated?;
        Ok(store)
    }

    /// The URL this store connects to, password hidden.
    pub fn url(&self) -> &str {
        &self.shown
    }

    /// How many calls found their connection dead at `BEGIN` and were
    /// retried on a fresh one (for logs and metrics).
    pub fn reconnects(&self) -> u64 {
        self.reconnects.load(Ordering::Relaxed)
    }

    /// The schema version of the database.
    pub fn schema_version(&self) -> Result<i64, StateError> {
        self.read_single(|c| {
            Ok(
                c.query_one("SELECT MAX(version) FROM schema_migrations", &[])?
                    .get(0),
            )
        })
    }

    fn connect(&self) -> Result<Conn, StateError> {
        let failed = |e: postgres::Error| {
            StateError::Database(format!("connecting to {}: {}", self.shown, {
                match e.as_db_error() {
                    Some(db) => db.message().to_owned(),
                    None => e.to_string(),
                }
            }))
        };
        let mut client = self.config.connect(NoTls).map_err(failed)?;
        client.batch_execute(DURABLE_COMMITS).map_err(failed)?;
        Ok(Conn {
            client,
            statements: Statements::default(),
        })
    }

    fn lock_pool(&self) -> MutexGuard<'_, Pool> {
        self.pool.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An idle connection, or a new one when fewer than the maximum are
    /// open; else waits for one to be given back.
    fn take(&self) -> Result<Conn, StateError> {
        let mut pool = self.lock_pool();
        loop {
            if let Some(c) = pool.idle.pop() {
                return Ok(c);
            }
            if pool.open < self.max_connections {
                pool.open += 1;
                drop(pool);
                return self.connect().inspect_err(|_| {
                    self.lock_pool().open -= 1;
                    self.freed.notify_one();
                });
            }
            let (p, timeout) = self
                .freed
                .wait_timeout(pool, POOL_WAIT)
                .unwrap_or_else(|p| p.into_inner());
            pool = p;
            if timeout.timed_out() && pool.idle.is_empty() && pool.open >= self.max_connections {
                return Err(StateError::Database(format!(
                    "no free connection to {} after {} s ({} in use)",
                    self.shown,
                    POOL_WAIT.as_secs(),
                    pool.open
                )));
            }
        }
    }

    /// Returns a connection to the pool, or closes it when it is not
    /// `healthy`.
    fn give_back(&self, conn: Conn, healthy: bool) {
        let mut pool = self.lock_pool();
        if healthy && !conn.client.is_closed() {
            pool.idle.push(conn);
        } else {
            pool.open = pool.open.saturating_sub(1);
            drop(pool);
            drop(conn);
        }
        self.freed.notify_one();
    }

    /// Drops every idle connection (after one was found dead).
    fn drop_idle(&self) {
        let idle = {
            let mut pool = self.lock_pool();
            let idle = std::mem::take(&mut pool.idle);
            pool.open = pool.open.saturating_sub(idle.len());
            idle
        };
        drop(idle);
        self.freed.notify_all();
    }

    /// Runs `f` in one transaction on a pooled connection, committed when
    /// `f` succeeds; retried once on a fresh connection when `BEGIN` fails
    /// on a dead one.
    fn run<T>(
        &self,
        read_only: bool,
        mut f: impl FnMut(&mut Session<'_, Transaction<'_>>) -> Result<T, StateError>,
    ) -> Result<T, StateError> {
        for attempt in 0..2 {
            let mut conn = self.take()?;
            let out = Self::once(&mut conn, read_only, &mut f);
            match out {
                Ok(v) => {
                    self.give_back(conn, true);
                    return Ok(v);
                }
                Err(Failure::Other(e, broken)) => {
                    let broken = broken || conn.client.is_closed();
                    // Whatever failed, the connection re-prepares from
                    // scratch (e.g. after a newer replica's migration
                    // changed a table under a cached statement).
                    conn.statements = Statements::default();
                    self.give_back(conn, !broken);
                    if broken {
                        self.drop_idle();
                    }
                    // A read can be repeated safely wherever it broke.
                    if !(broken && read_only && attempt == 0) {
                        return Err(e);
                    }
                    self.reconnects.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(url = %self.shown, error = %e, "state database connection lost; reconnecting");
                }
                Err(Failure::Begin(e)) => {
                    let broken = connection_broken(&conn.client, &e);
                    self.give_back(conn, !broken);
                    if !broken || attempt == 1 {
                        return Err(e.into());
                    }
                    self.reconnects.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(url = %self.shown, error = %e, "state database connection lost; reconnecting");
                    self.drop_idle();
                }
            }
        }
        unreachable!("the loop returns on its second attempt")
    }

    fn once<T>(
        conn: &mut Conn,
        read_only: bool,
        f: &mut impl FnMut(&mut Session<'_, Transaction<'_>>) -> Result<T, StateError>,
    ) -> Result<T, Failure> {
        let mut builder = conn.client.build_transaction();
        if read_only {
            builder = builder
                .isolation_level(IsolationLevel::RepeatableRead)
                .read_only(true);
        }
        let mut tx = builder.start().map_err(Failure::Begin)?;
        let out = f(&mut Session {
            client: &mut tx,
            statements: &mut conn.statements,
        });
        let out = match out {
            Ok(v) => v,
            Err(e) => {
                // Dropping `tx` rolls back; a failed rollback means the
                // connection is gone.
                let broken = tx.rollback().is_err();
                return Err(Failure::Other(e, broken));
            }
        };
        match tx.commit() {
            Ok(()) => Ok(out),
            Err(e) => Err(Failure::Other(e.into(), true)),
        }
    }

    /// Runs `f` outside a transaction (each statement is atomic on its
    /// own): one round trip for a one-statement read. `f` must only read;
    /// it is retried once on a fresh connection when the connection broke.
    fn read_single<T>(
        &self,
        mut f: impl FnMut(&mut Session<'_, Client>) -> Result<T, StateError>,
    ) -> Result<T, StateError> {
        for attempt in 0..2 {
            let mut conn = self.take()?;
            let out = f(&mut Session {
                client: &mut conn.client,
                statements: &mut conn.statements,
            });
            match out {
                Ok(v) => {
                    self.give_back(conn, true);
                    return Ok(v);
                }
                Err(e) => {
                    let broken = conn.client.is_closed()
                        || conn.client.is_valid(Duration::from_secs(2)).is_err();
                    conn.statements = Statements::default();
                    self.give_back(conn, !broken);
                    if !broken || attempt == 1 {
                        return Err(e);
                    }
                    self.reconnects.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(url = %self.shown, error = %e, "state database connection lost; reconnecting");
                    self.drop_idle();
                }
            }
        }
        unreachable!("the loop returns on its second attempt")
    }

    fn read<T>(
        &self,
        f: impl FnMut(&mut Session<'_, Transaction<'_>>) -> Result<T, StateError>,
    ) -> Result<T, StateError> {
        self.run(true, f)
    }

    fn write<T>(
        &self,
        f: impl FnMut(&mut Session<'_, Transaction<'_>>) -> Result<T, StateError>,
    ) -> Result<T, StateError> {
        self.run(false, f)
    }

    /// The rules current at `version`, from memory or read in `tx`.
    fn rules_at(&self, tx: &mut impl GenericClient, version: i64) -> Result<Vec<Rule>, StateError> {
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
        let rules = load_rules(tx)?;
        *self.rules.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(CachedRules {
            version,
            rules: rules.clone(),
        }));
        Ok(rules)
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        let idle = std::mem::take(&mut self.pool.get_mut().unwrap_or_else(|p| p.into_inner()).idle);
        if idle.is_empty() {
            return;
        }
        // A sync client closes through its own small runtime, which must
        // not run on an async task's thread (tokio panics there): when the
        // last handle of the store is dropped inside a runtime, close the
        // connections on a thread of their own.
        if tokio::runtime::Handle::try_current().is_ok() {
            if let Err(e) = std::thread::Builder::new()
                .name("state-db-close".into())
                .spawn(move || drop(idle))
            {
                tracing::warn!(error = %e, "cannot close the state database connections");
            }
        } else {
            drop(idle);
        }
    }
}

/// Applies the migrations this database lacks, in one transaction under
/// [`MIGRATION_LOCK_KEY`].
fn migrate(client: &mut Client, now: i64) -> Result<(), StateError> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK_KEY])?;
    tx.batch_execute(MIGRATIONS_TABLE)?;
    let found: i64 = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0)::BIGINT FROM schema_migrations",
            &[],
        )?
        .get(0);
    if found > SCHEMA_VERSION {
        return Err(StateError::SchemaTooNew {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    for &(version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > found) {
        tx.batch_execute(sql).map_err(|e| {
            StateError::Database(format!("migration {version}: {}", StateError::from(e)))
        })?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied) VALUES ($1, $2)",
            &[&version, &now],
        )?;
    }
    tx.commit()?;
    Ok(())
}

fn rule_from_row(row: &Row) -> Result<Rule, StateError> {
    let id: i64 = row.try_get(0)?;
    let kind: String = row.try_get(1)?;
    let action: Option<String> = row.try_get(2)?;
    let cidr: Option<String> = row.try_get(3)?;
    let group: Option<String> = row.try_get(4)?;
    let store: Option<String> = row.try_get(5)?;
    let created: i64 = row.try_get(6)?;
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

fn load_rules(tx: &mut impl GenericClient) -> Result<Vec<Rule>, StateError> {
    tx.query(
        "SELECT id, kind, action, cidr, group_name, store, created FROM rules ORDER BY id",
        &[],
    )?
    .iter()
    .map(rule_from_row)
    .collect()
}

fn device_from_row(row: &Row) -> Result<Device, StateError> {
    let id: String = row.try_get(0)?;
    let status: String = row.try_get(1)?;
    let last_address = parse_addr(row.try_get(4)?, &format!("device {id}"))?;
    Ok(Device {
        status: status_from_str(&status)?,
        first_seen: row.try_get(2)?,
        last_seen: row.try_get(3)?,
        last_address,
        revoked: row.try_get(5)?,
        groups: Vec::new(),
        serials: Vec::new(),
        id,
    })
}

macro_rules! audit_columns {
    () => {
        "seq, time, decision, reason, device, address, endpoint, key_id, prev_hash, hash"
    };
}
const AUDIT_COLUMNS: &str = audit_columns!();

// The statements of every unlock, prepared once per connection
// ([`Session::prepared`]).

/// [`Store::policy_inputs`]: revocation, status and the rules' version.
const POLICY_INPUTS: &str =
    "SELECT EXISTS (SELECT 1 FROM revocations WHERE (kind = 'device' AND value = $1) \
                                             OR (kind = 'serial' AND value = $2)), \
            (SELECT status FROM devices WHERE id = $1), \
            (SELECT value FROM counters WHERE name = 'rules_version')";
/// [`Store::record_sighting`]: the device row, its groups, its serial.
const SIGHTING_DEVICE: &str =
    "INSERT INTO devices (id, status, first_seen, last_seen, last_address) \
     VALUES ($1, 'enabled', $2, $2, $3) \
     ON CONFLICT (id) DO UPDATE SET last_seen = excluded.last_seen, \
                                    last_address = excluded.last_address";
const DEVICE_GROUPS: &str =
    "SELECT group_name FROM device_groups WHERE device_id = $1 ORDER BY group_name";
const GROUPS_DELETE: &str = "DELETE FROM device_groups WHERE device_id = $1";
const GROUP_INSERT: &str = "INSERT INTO device_groups (device_id, group_name) VALUES ($1, $2)";
const SIGHTING_SERIAL: &str =
    "INSERT INTO device_serials (device_id, serial, first_seen, last_seen) \
     VALUES ($1, $2, $3, $3) \
     ON CONFLICT (device_id, serial) DO UPDATE SET last_seen = excluded.last_seen";
/// [`Store::append_audit`]: the appenders' lock, the head, the new entry.
const AUDIT_LOCK: &str = "SELECT pg_advisory_xact_lock($1)";
const AUDIT_HEAD: &str = "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1";
const AUDIT_INSERT: &str = concat!(
    "INSERT INTO audit (",
    audit_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
);

fn audit_from_row(row: &Row) -> Result<AuditRecord, StateError> {
    let seq: i64 = row.try_get(0)?;
    let decision: String = row.try_get(2)?;
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
            time: row.try_get(1)?,
            decision,
            reason: row.try_get(3)?,
            device: row.try_get(4)?,
            address: parse_addr(row.try_get(5)?, &format!("audit entry {seq}"))?,
            endpoint: row.try_get(6)?,
            key_id: row.try_get(7)?,
        },
        prev_hash: row.try_get(8)?,
        hash: row.try_get(9)?,
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

fn bump(tx: &mut Transaction<'_>, counter: &str) -> Result<i64, StateError> {
    Ok(tx
        .query_one(
            "UPDATE counters SET value = value + 1 WHERE name = $1 RETURNING value",
            &[&counter],
        )?
        .try_get(0)?)
}

fn strings(tx: &mut Transaction<'_>, sql: &str, id: &str) -> Result<Vec<String>, StateError> {
    tx.query(sql, &[&id])?
        .iter()
        .map(|r| r.try_get(0).map_err(StateError::from))
        .collect()
}

impl Store for PostgresStore {
    fn policy_inputs(&self, device_id: &str, serial: &str) -> Result<PolicyInputs, StateError> {
        // A serial that does not parse cannot be revoked: compare it as given.
        let serial = schema::normalize_serial(serial).unwrap_or_else(|_| serial.to_owned());
        // One statement, one snapshot, one round trip. When the rules must
        // be re-read, that read may see a newer rule set than `version`
        // says; it is then re-read on the next call, never kept stale.
        self.read_single(|c| {
            let statement = c.prepared(POLICY_INPUTS)?;
            let row = c.query_one(&statement, &[&device_id, &serial])?;
            let revoked: bool = row.try_get(0)?;
            let status: Option<String> = row.try_get(1)?;
            let version: i64 = row.try_get(2)?;
            let status = status.as_deref().map(status_from_str).transpose()?;
            let rules = self.rules_at(&mut **c, version)?;
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
            // The upsert locks the device's row until commit, so two
            // sightings of one device (two replicas) rewrite its groups
            // one after the other.
            let upsert = tx.prepared(SIGHTING_DEVICE)?;
            tx.execute(&upsert, &[&s.device_id, &s.at, &address])?;
            // The certificate's groups are authoritative; rewrite only on change.
            let select = tx.prepared(DEVICE_GROUPS)?;
            let current = tx
                .query(&select, &[&s.device_id])?
                .iter()
                .map(|r| r.try_get(0))
                .collect::<Result<Vec<String>, _>>()?;
            if current
                .iter()
                .map(String::as_str)
                .ne(groups.iter().copied())
            {
                let delete = tx.prepared(GROUPS_DELETE)?;
                tx.execute(&delete, &[&s.device_id])?;
                let insert = tx.prepared(GROUP_INSERT)?;
                for g in &groups {
                    tx.execute(&insert, &[&s.device_id, g])?;
                }
            }
            let upsert = tx.prepared(SIGHTING_SERIAL)?;
            tx.execute(&upsert, &[&s.device_id, &serial, &s.at])?;
            Ok(())
        })
    }

    fn device(&self, id: &str) -> Result<Option<Device>, StateError> {
        self.read(|tx| {
            let row = tx.query_opt(
                &format!("SELECT {DEVICE_COLUMNS} FROM devices d WHERE d.id = $1"),
                &[&id],
            )?;
            let Some(row) = row else {
                return Ok(None);
            };
            let mut device = device_from_row(&row)?;
            device.groups = strings(tx, DEVICE_GROUPS, id)?;
            device.serials = strings(
                tx,
                "SELECT serial FROM device_serials WHERE device_id = $1 \
                 ORDER BY first_seen, serial",
                id,
            )?;
            Ok(Some(device))
        })
    }

    fn devices(&self) -> Result<Vec<Device>, StateError> {
        self.read(|tx| {
            let mut devices = tx
                .query(
                    &format!("SELECT {DEVICE_COLUMNS} FROM devices d ORDER BY d.id"),
                    &[],
                )?
                .iter()
                .map(device_from_row)
                .collect::<Result<Vec<_>, _>>()?;
            let index: std::collections::HashMap<String, usize> = devices
                .iter()
                .enumerate()
                .map(|(i, d)| (d.id.clone(), i))
                .collect();
            let mut each = |sql: &str, pick: fn(&mut Device) -> &mut Vec<String>| {
                for row in tx.query(sql, &[])? {
                    let id: String = row.try_get(0)?;
                    if let Some(&i) = index.get(&id) {
                        pick(&mut devices[i]).push(row.try_get(1)?);
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
            Ok(devices)
        })
    }

    fn set_status(&self, id: &str, status: DeviceStatus, at: i64) -> Result<(), StateError> {
        schema::check_name("device id", id)?;
        self.write(|tx| {
            tx.execute(
                "INSERT INTO devices (id, status, first_seen, last_seen, last_address) \
                 VALUES ($1, $2, $3, $3, NULL) \
                 ON CONFLICT (id) DO UPDATE SET status = excluded.status",
                &[&id, &status_str(status), &at],
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
                "INSERT INTO revocations (kind, value, at) VALUES ($1, $2, $3) \
                 ON CONFLICT (kind, value) DO NOTHING",
                &[&kind, &value, &at],
            )?;
            Ok(())
        })
    }

    fn revocations(&self) -> Result<Vec<RevocationTarget>, StateError> {
        self.read_single(|tx| {
            tx.query(
                "SELECT kind, value FROM revocations ORDER BY at, kind, value",
                &[],
            )?
            .iter()
            .map(|row| {
                let kind: String = row.try_get(0)?;
                revocation_target(&kind, row.try_get(1)?)
            })
            .collect()
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
        self.write(|tx| {
            let id = bump(tx, "next_rule_id")?;
            tx.execute(
                "INSERT INTO rules (id, kind, action, cidr, group_name, store, created) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[&id, &kind, &action, &cidr, &group, &store, &at],
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
            if tx.execute("DELETE FROM rules WHERE id = $1", &[&id])? == 0 {
                return Err(StateError::NoSuchRule(id));
            }
            bump(tx, "rules_version")?;
            Ok(())
        })
    }

    fn rules(&self) -> Result<Vec<Rule>, StateError> {
        self.read_single(|c| load_rules(&mut **c))
    }

    fn append_audit(&self, event: &AuditEvent) -> Result<AuditRecord, StateError> {
        let address = event.address.map(|a| a.to_string());
        self.write(|tx| {
            // Serialises appenders of every replica until commit.
            let lock = tx.prepared(AUDIT_LOCK)?;
            tx.execute(&lock, &[&AUDIT_LOCK_KEY])?;
            let head = tx.prepared(AUDIT_HEAD)?;
            let last = tx.query_opt(&head, &[])?;
            let (seq, prev_hash) = match last {
                Some(row) => (row.try_get::<_, i64>(0)? + 1, row.try_get::<_, String>(1)?),
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
            let insert = tx.prepared(AUDIT_INSERT)?;
            tx.execute(
                &insert,
                &[
                    &seq,
                    &event.time,
                    &entry.decision,
                    &event.reason,
                    &event.device,
                    &address,
                    &event.endpoint,
                    &event.key_id,
                    &prev_hash,
                    &hash,
                ],
            )?;
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
        let since = filter.since;
        let device = filter.device.clone();
        let limit = filter
            .limit
            .map(|l| i64::try_from(l).unwrap_or(i64::MAX))
            .unwrap_or(i64::MAX);
        let mut params: Vec<&(dyn ToSql + Sync)> = Vec::new();
        if let Some(since) = &since {
            params.push(since);
            conditions.push(format!("time >= ${}", params.len()));
        }
        if let Some(device) = &device {
            params.push(device);
            conditions.push(format!("device = ${}", params.len()));
        }
        params.push(&limit);
        let where_clause = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        // The newest `limit` matching entries, listed oldest first.
        let sql = format!(
            "SELECT {AUDIT_COLUMNS} FROM (SELECT {AUDIT_COLUMNS} FROM audit {where_clause} \
             ORDER BY seq DESC LIMIT ${}) AS newest ORDER BY seq",
            params.len()
        );
        self.read_single(|tx| {
            tx.query(&sql, &params)?
                .iter()
                .map(audit_from_row)
                .collect()
        })
    }

    fn verify_audit(&self) -> Result<AuditVerification, StateError> {
        self.read(|tx| {
            let mut verifier = Verifier::new();
            // Streamed row by row, so a long log is not held in memory.
            let mut rows = tx.query_raw(
                &format!("SELECT {AUDIT_COLUMNS} FROM audit ORDER BY seq"),
                std::iter::empty::<i64>(),
            )?;
            while let Some(row) = rows.next()? {
                let text = |i: usize| row.try_get::<_, &str>(i);
                let opt = |i: usize| row.try_get::<_, Option<&str>>(i);
                let entry = ChainEntry {
                    seq: row.try_get(0)?,
                    time: row.try_get(1)?,
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
        self.read_single(|tx| {
            tx.query(
                "SELECT thumbprint, hidden, created, format, sealed FROM tang_keys ORDER BY thumbprint",
                &[],
            )?
            .iter()
            .map(|row| {
                let thumbprint: String = row.try_get(0)?;
                let sealed: String = row.try_get(4)?;
                Ok(TangKeyRow {
                    sealed: schema::decode_sealed(&thumbprint, &sealed)?,
                    hidden: row.try_get::<_, i64>(1)? != 0,
                    created: row.try_get(2)?,
                    format: row.try_get(3)?,
                    thumbprint,
                })
            })
            .collect()
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
        let encoded: Vec<String> = rows
            .iter()
            .map(|r| schema::encode_sealed(&r.sealed))
            .collect();
        self.write(|tx| {
            if hide_current {
                tx.execute("UPDATE tang_keys SET hidden = 1 WHERE hidden = 0", &[])?;
            }
            let ins = tx.prepare(
                "INSERT INTO tang_keys (thumbprint, hidden, created, format, sealed) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (thumbprint) DO NOTHING",
            )?;
            let mut inserted = 0;
            for (r, sealed) in rows.iter().zip(&encoded) {
                let hidden = i64::from(r.hidden);
                inserted += tx.execute(
                    &ins,
                    &[&r.thumbprint, &hidden, &r.created, &r.format, sealed],
                )?;
            }
            Ok(inserted as usize)
        })
    }

    fn hide_tang_key(&self, thumbprint: &str) -> Result<(), StateError> {
        self.write(|tx| {
            if tx.execute(
                "UPDATE tang_keys SET hidden = 1 WHERE thumbprint = $1",
                &[&thumbprint],
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
    //! The shared behavioural suite (state/suite.rs) against a real
    //! PostgreSQL ([`super::super::pg_cluster`]), plus what only several
    //! replicas and a network database can do: concurrent appenders in two
    //! stores, changes seen across stores, connections killed under a store.

    use super::super::pg_cluster;
    use super::super::suite::{self, event};
    use super::*;

    /// A new database's URL, or `None` to skip (PostgreSQL missing and not
    /// required).
    fn database() -> Option<String> {
        pg_cluster::fresh_database()
    }

    fn db_name(url: &str) -> &str {
        url.rsplit('/').next().unwrap()
    }

    fn exec(url: &str, sql: &str) {
        Client::connect(url, NoTls)
            .unwrap()
            .batch_execute(sql)
            .unwrap();
    }

    #[test]
    fn store_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<PostgresStore>();
    }

    #[test]
    fn urls_are_shown_without_password() {
        assert_eq!(
            redact_url("postgres://ss:s3cr:et@db.example:5432/state?sslmode=disable"),
            "postgres://ss:***@db.example:5432/state?sslmode=disable"
        );
        assert_eq!(
            redact_url("postgresql://ss@db.example/state"),
            "postgresql://ss@db.example/state"
        );
        assert_eq!(redact_url("postgres:///state"), "postgres:///state");
        assert_eq!(
            redact_url("postgres://ss:pw@[::1]:5432/x"),
            "postgres://ss:***@[::1]:5432/x"
        );
    }

    #[test]
    fn unreachable_database_is_an_error_without_the_password() {
        // Port 1 on the loopback: nothing listens, the connect is refused.
        let err = PostgresStore::open("postgres://ss:hunter2@127.0.0.1:1/state").unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, StateError::Database(_)), "{text}");
        assert!(
            text.contains("connecting to postgres://ss:***@127.0.0.1:1/state"),
            "{text}"
        );
        assert!(!text.contains("hunter2"), "{text}");
        assert!(matches!(
            PostgresStore::open("postgres://ss@127.0.0.1:notaport/state"),
            Err(StateError::Invalid { .. })
        ));
    }

    #[test]
    fn sightings_register_and_update_devices() {
        let Some(url) = database() else { return };
        suite::sightings_register_and_update_devices(&PostgresStore::open(&url).unwrap());
    }

    #[test]
    fn bad_values_are_refused() {
        let Some(url) = database() else { return };
        suite::bad_values_are_refused(&PostgresStore::open(&url).unwrap());
    }

    #[test]
    fn status_registers_unseen_devices_and_feeds_policy() {
        let Some(url) = database() else { return };
        suite::status_registers_unseen_devices_and_feeds_policy(
            &PostgresStore::open(&url).unwrap(),
        );
    }

    #[test]
    fn revocations_by_device_and_serial_apply_at_once() {
        let Some(url) = database() else { return };
        suite::revocations_by_device_and_serial_apply_at_once(&PostgresStore::open(&url).unwrap());
    }

    #[test]
    fn rules_add_list_remove() {
        let Some(url) = database() else { return };
        suite::rules_add_list_remove(&PostgresStore::open(&url).unwrap());
    }

    #[test]
    fn audit_appends_chain_and_filters() {
        let Some(url) = database() else { return };
        suite::audit_appends_chain_and_filters(&PostgresStore::open(&url).unwrap());
    }

    #[test]
    fn tang_keys_insert_list_hide() {
        let Some(url) = database() else { return };
        suite::tang_keys_insert_list_hide(&PostgresStore::open(&url).unwrap());
    }

    #[test]
    fn tang_key_rotation_through_replica_a_is_seen_by_replica_b() {
        let Some(url) = database() else { return };
        let a = PostgresStore::open(&url).unwrap();
        let b = PostgresStore::open(&url).unwrap();
        suite::tang_key_rotation_through_one_instance_is_seen_by_another(&a, &b);
    }

    #[test]
    fn changes_through_replica_a_apply_to_the_next_request_of_replica_b() {
        let Some(url) = database() else { return };
        let b = PostgresStore::open(&url).unwrap();
        let a = PostgresStore::open(&url).unwrap();
        suite::changes_through_one_instance_apply_to_the_next_request_of_another(&b, &a);
    }

    #[test]
    fn revoke_through_replica_a_is_refused_by_replica_b_at_once() {
        let Some(url) = database() else { return };
        let a = PostgresStore::open(&url).unwrap();
        let b = PostgresStore::open(&url).unwrap();
        let groups = vec!["cam".to_owned()];
        b.record_sighting(&suite::sighting("sensor-17", &groups, "0a", 1))
            .unwrap();
        // B has served the device before (rules cached, connections pooled).
        for _ in 0..3 {
            let p = b.policy_inputs("sensor-17", "0a").unwrap();
            assert!(!p.revoked);
            assert_eq!(p.status, Some(DeviceStatus::Enabled));
        }
        a.revoke(&RevocationTarget::Device("sensor-17".into()), 2)
            .unwrap();
        assert!(b.policy_inputs("sensor-17", "0a").unwrap().revoked);
        a.set_status("sensor-18", DeviceStatus::Disabled, 3)
            .unwrap();
        assert_eq!(
            b.policy_inputs("sensor-18", "1").unwrap().status,
            Some(DeviceStatus::Disabled)
        );
        assert!(b.device("sensor-17").unwrap().unwrap().revoked);
    }

    fn chain_in_new_database(n: i64) -> suite::ChainedStore {
        let url = database().expect("PostgreSQL was there for the first database");
        let store = PostgresStore::open(&url).unwrap();
        suite::append_chain(&store, n);
        (Box::new(store), Box::new(move |sql: &str| exec(&url, sql)))
    }

    #[test]
    fn tampering_is_detected_at_the_right_seq() {
        if database().is_none() {
            return;
        }
        suite::tampering_is_detected_at_the_right_seq(&chain_in_new_database);
    }

    #[test]
    fn tampered_then_counted_to_the_end() {
        if database().is_none() {
            return;
        }
        suite::tampered_then_counted_to_the_end(&chain_in_new_database);
    }

    #[test]
    fn concurrent_appenders_in_two_replicas_keep_one_chain() {
        let Some(url) = database() else { return };
        suite::concurrent_appenders_in_two_stores_keep_one_chain([
            Arc::new(PostgresStore::open_with(&url, 2).unwrap()),
            Arc::new(PostgresStore::open(&url).unwrap()),
        ]);
    }

    #[test]
    fn reopen_keeps_data_and_applies_no_migration_twice() {
        let Some(url) = database() else { return };
        let spec = RuleSpec::Network {
            action: RuleAction::Allow,
            cidr: "10.0.0.0/8".parse().unwrap(),
            group: None,
        };
        let rule = {
            let store = PostgresStore::open(&url).unwrap();
            assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
            store.add_rule(&spec, 5).unwrap()
        };
        for _ in 0..2 {
            let store = PostgresStore::open(&url).unwrap();
            assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
            assert_eq!(store.rules().unwrap(), vec![rule.clone()]);
        }
        let rows: i64 = Client::connect(&url, NoTls)
            .unwrap()
            .query_one("SELECT COUNT(*) FROM schema_migrations", &[])
            .unwrap()
            .get(0);
        assert_eq!(rows, MIGRATIONS.len() as i64);
    }

    #[test]
    fn replicas_starting_together_on_an_empty_database_migrate_once() {
        let Some(url) = database() else { return };
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let url = url.clone();
                std::thread::spawn(move || PostgresStore::open(&url).map(|_| ()))
            })
            .collect();
        for t in threads {
            t.join().unwrap().unwrap();
        }
        let rows: i64 = Client::connect(&url, NoTls)
            .unwrap()
            .query_one("SELECT COUNT(*) FROM schema_migrations", &[])
            .unwrap()
            .get(0);
        assert_eq!(rows, MIGRATIONS.len() as i64);
    }

    #[test]
    fn newer_schema_is_refused() {
        let Some(url) = database() else { return };
        drop(PostgresStore::open(&url).unwrap());
        exec(
            &url,
            &format!(
                "INSERT INTO schema_migrations (version, applied) VALUES ({}, 0)",
                SCHEMA_VERSION + 1
            ),
        );
        match PostgresStore::open(&url) {
            Err(StateError::SchemaTooNew { found, supported }) => {
                assert_eq!((found, supported), (SCHEMA_VERSION + 1, SCHEMA_VERSION));
            }
            other => panic!("expected SchemaTooNew, got {other:?}"),
        }
    }

    #[test]
    fn the_sqlite_migration_files_run_unchanged() {
        let Some(url) = database() else { return };
        drop(PostgresStore::open(&url).unwrap());
        let mut c = Client::connect(&url, NoTls).unwrap();
        let tables: Vec<String> = c
            .query(
                "SELECT table_name::TEXT FROM information_schema.tables \
                 WHERE table_schema = 'public' ORDER BY table_name",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(
            tables,
            [
                "audit",
                "counters",
                "device_groups",
                "device_serials",
                "devices",
                "revocations",
                "rules",
                "schema_migrations",
                "tang_keys"
            ]
        );
    }

    /// Waits until no session of the store is left on the database
    /// (`pg_terminate_backend` only signals).
    fn wait_until_gone(url: &str) {
        let mut admin = Client::connect(&pg_cluster::shared().unwrap().admin_url(), NoTls).unwrap();
        while admin
            .query_one(
                "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = $1 \
                 AND application_name = 'secure-store'",
                &[&db_name(url)],
            )
            .unwrap()
            .get::<_, i64>(0)
            > 0
        {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn lost_connections_are_replaced_and_no_audit_entry_is_lost_or_doubled() {
        let Some(url) = database() else { return };
        let cluster = pg_cluster::shared().unwrap();
        let store = Arc::new(PostgresStore::open_with(&url, 4).unwrap());
        let mut appended = 0u64;
        let mut n = 0i64;
        for round in 0..4 {
            // Fill the pool with several idle connections.
            let threads: Vec<_> = (0..4)
                .map(|t| {
                    let store = Arc::clone(&store);
                    std::thread::spawn(move || {
                        store
                            .append_audit(&event(1000 * round + t, "warm"))
                            .unwrap();
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
            appended += 4;
            assert!(cluster.terminate_sessions(db_name(&url)).unwrap() >= 1);
            wait_until_gone(&url);
            // The next call finds its connection dead at BEGIN (nothing
            // done yet) and is retried once on a fresh connection.
            let before = store.reconnects();
            n += 1;
            store.append_audit(&event(n, "after-cut")).unwrap();
            appended += 1;
            assert_eq!(store.reconnects(), before + 1);
            n += 1;
            store.append_audit(&event(n, "after-cut")).unwrap();
            appended += 1;
            assert!(!store.policy_inputs("d", "1").unwrap().revoked);
            // Reads recover the same way.
            for read in [
                &(|| drop(store.policy_inputs("d", "1").unwrap())) as &dyn Fn(),
                &|| drop(store.rules().unwrap()),
            ] {
                cluster.terminate_sessions(db_name(&url)).unwrap();
                wait_until_gone(&url);
                let before = store.reconnects();
                read();
                assert_eq!(store.reconnects(), before + 1);
            }
        }
        assert_eq!(
            store.verify_audit().unwrap(),
            AuditVerification {
                entries: appended,
                first_bad_seq: None
            }
        );
    }

    /// Every statement the store caches.
    const HOT: [&str; 9] = [
        POLICY_INPUTS,
        SIGHTING_DEVICE,
        DEVICE_GROUPS,
        GROUPS_DELETE,
        GROUP_INSERT,
        SIGHTING_SERIAL,
        AUDIT_LOCK,
        AUDIT_HEAD,
        AUDIT_INSERT,
    ];

    /// The backend pid of the store's connection and the cached statements
    /// prepared on it, as (SQL, name, prepare time), sorted, read from
    /// `pg_prepared_statements` (a store of one connection, so it is the one
    /// every call uses).
    fn prepared_on(store: &PostgresStore) -> (i32, Vec<(String, String, String)>) {
        store
            .read_single(|c| {
                let pid: i32 = c.query_one("SELECT pg_backend_pid()", &[])?.get(0);
                let hot: Vec<&str> = HOT.to_vec();
                let rows = c.query(
                    "SELECT statement, name, prepare_time::TEXT FROM pg_prepared_statements \
                     WHERE statement = ANY($1) ORDER BY statement",
                    &[&hot],
                )?;
                Ok((
                    pid,
                    rows.iter()
                        .map(|r| (r.get(0), r.get(1), r.get(2)))
                        .collect(),
                ))
            })
            .unwrap()
    }

    /// One unlock's calls, with groups that change every time (so the
    /// group rewrite runs too).
    fn unlock(store: &PostgresStore, n: i64) {
        store.policy_inputs("cached", "1").unwrap();
        let groups = [format!("g{n}")];
        store
            .record_sighting(&Sighting {
                device_id: "cached",
                groups: &groups,
                serial: "01",
                address: "192.0.2.7".parse().unwrap(),
                at: n,
            })
            .unwrap();
        store.append_audit(&event(n, "cached")).unwrap();
    }

    #[test]
    fn hot_statements_are_prepared_once_per_connection_and_again_after_a_reconnect() {
        let Some(url) = database() else { return };
        let cluster = pg_cluster::shared().unwrap();
        let store = PostgresStore::open_with(&url, 1).unwrap();
        unlock(&store, 1);
        let (pid, first) = prepared_on(&store);
        let mut sqls: Vec<String> = first.iter().map(|(sql, _, _)| sql.clone()).collect();
        let mut want: Vec<String> = HOT.iter().map(|s| s.to_string()).collect();
        want.sort();
        assert_eq!(sqls, want, "each hot statement prepared exactly once");
        // More unlocks on the same connection reuse them: same names, same
        // prepare times, nothing prepared twice.
        for n in 2..6 {
            unlock(&store, n);
        }
        assert_eq!(prepared_on(&store), (pid, first.clone()));

        // The connection is cut: the next call reconnects, and the new
        // session prepares the statements again as they are needed.
        assert!(cluster.terminate_sessions(db_name(&url)).unwrap() >= 1);
        wait_until_gone(&url);
        let before = store.reconnects();
        store.policy_inputs("cached", "1").unwrap();
        assert_eq!(store.reconnects(), before + 1);
        let (new_pid, after_cut) = prepared_on(&store);
        assert_ne!(new_pid, pid);
        let only: Vec<&str> = after_cut.iter().map(|(sql, _, _)| sql.as_str()).collect();
        assert_eq!(only, [POLICY_INPUTS]);
        unlock(&store, 6);
        let (_, again) = prepared_on(&store);
        sqls = again.iter().map(|(sql, _, _)| sql.clone()).collect();
        assert_eq!(sqls, want);

        // A failed call leaves its connection with nothing cached (a
        // statement may have gone stale, e.g. a table changed under it);
        // the next calls prepare again and work.
        assert!(matches!(
            store.remove_rule(12345),
            Err(StateError::NoSuchRule(12345))
        ));
        assert_eq!(prepared_on(&store), (new_pid, Vec::new()));
        unlock(&store, 7);
        assert_eq!(prepared_on(&store).1.len(), HOT.len());
        assert_eq!(
            store.verify_audit().unwrap(),
            AuditVerification {
                entries: 7,
                first_bad_seq: None
            }
        );
    }

    #[test]
    fn usable_from_spawn_blocking_and_dropped_inside_a_runtime() {
        let Some(url) = database() else { return };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let store =
                tokio::task::spawn_blocking(move || Arc::new(PostgresStore::open(&url).unwrap()))
                    .await
                    .unwrap();
            let s = Arc::clone(&store);
            tokio::task::spawn_blocking(move || {
                s.append_audit(&event(1, "d")).unwrap();
                s.policy_inputs("d", "1").unwrap();
            })
            .await
            .unwrap();
            // The last handle goes away on an async task's thread.
            drop(store);
        });
    }

    #[test]
    fn connects_over_a_unix_socket() {
        let Some(url) = database() else { return };
        let cluster = pg_cluster::shared().unwrap();
        let socket_url = format!(
            "postgresql://{}@/{}?host={}&port={}",
            pg_cluster::USER,
            db_name(&url),
            cluster.dir().display(),
            cluster.port()
        );
        let store = PostgresStore::open(&socket_url).unwrap();
        store
            .revoke(&RevocationTarget::Device("u".into()), 1)
            .unwrap();
        assert!(
            PostgresStore::open(&url)
                .unwrap()
                .policy_inputs("u", "1")
                .unwrap()
                .revoked
        );
    }

    #[test]
    fn connection_cut_in_the_middle_of_an_append_loses_nothing_and_doubles_nothing() {
        let Some(url) = database() else { return };
        let store = Arc::new(PostgresStore::open(&url).unwrap());
        suite::append_chain(store.as_ref(), 3);
        // Hold the appenders' lock so the next append waits inside its
        // transaction, then cut its connection there.
        let mut holder = Client::connect(&url, NoTls).unwrap();
        let mut held = holder.transaction().unwrap();
        held.execute("SELECT pg_advisory_xact_lock($1)", &[&AUDIT_LOCK_KEY])
            .unwrap();
        let s = Arc::clone(&store);
        let appender = std::thread::spawn(move || s.append_audit(&event(99, "cut")));
        let mut admin = Client::connect(&url, NoTls).unwrap();
        let waiting = "SELECT pid FROM pg_stat_activity WHERE datname = $1 \
                       AND application_name = 'secure-store' AND wait_event_type = 'Lock'";
        let pid: i32 = loop {
            if let Some(row) = admin.query_opt(waiting, &[&db_name(&url)]).unwrap() {
                break row.get(0);
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        admin
            .execute("SELECT pg_terminate_backend($1)", &[&pid])
            .unwrap();
        let cut = appender.join().unwrap();
        assert!(matches!(cut, Err(StateError::Database(_))), "{cut:?}");
        held.commit().unwrap();
        let next = store.append_audit(&event(100, "after")).unwrap();
        assert_eq!(next.seq, 4);
        assert_eq!(
            store.verify_audit().unwrap(),
            AuditVerification {
                entries: 4,
                first_bad_seq: None
            }
        );
    }

    #[test]
    fn sessions_carry_the_timeouts_and_url_options_win() {
        let Some(url) = database() else { return };
        let show = |store: &PostgresStore, name: &str| -> String {
            store
                .read(|tx| Ok(tx.query_one(&format!("SHOW {name}"), &[])?.get(0)))
                .unwrap()
        };
        let store = PostgresStore::open(&url).unwrap();
        assert_eq!(show(&store, "idle_in_transaction_session_timeout"), "10s");
        assert_eq!(show(&store, "lock_timeout"), "10s");
        let custom =
            PostgresStore::open(&format!("{url}?options=-c%20lock_timeout%3D3000")).unwrap();
        assert_eq!(show(&custom, "lock_timeout"), "3s");
        assert_eq!(show(&custom, "idle_in_transaction_session_timeout"), "10s");
    }

    #[test]
    fn a_url_requiring_tls_fails_rather_than_going_clear() {
        let Some(url) = database() else { return };
        let err = PostgresStore::open(&format!("{url}?sslmode=require")).unwrap_err();
        assert!(matches!(err, StateError::Database(_)), "{err}");
        // `prefer` (the default) connects in clear, as documented.
        PostgresStore::open(&format!("{url}?sslmode=prefer")).unwrap();
    }

    #[test]
    fn open_by_url_picks_postgres() {
        let Some(url) = database() else { return };
        let tmp = std::env::temp_dir().join("never-created.db");
        let store = super::super::open(Some(&url), &tmp).unwrap();
        store
            .revoke(&RevocationTarget::Device("x".into()), 1)
            .unwrap();
        assert!(!tmp.exists());
        let alt = url.replacen("postgres://", "postgresql://", 1);
        let other = super::super::open(Some(&alt), &tmp).unwrap();
        assert!(other.policy_inputs("x", "1").unwrap().revoked);
    }

    /// The `synchronous_commit` the store's sessions run with.
    fn session_sync_commit(store: &PostgresStore) -> String {
        store
            .read_single(|c| Ok(c.query_one("SHOW synchronous_commit", &[])?.get(0)))
            .unwrap()
    }

    #[test]
    fn commits_are_durable_even_where_the_database_says_synchronous_commit_off() {
        let Some(url) = database() else { return };
        // The test cluster runs with `synchronous_commit=off`, and the
        // database and the URL can say it again: the store's sessions
        // still wait for the WAL flush.
        exec(
            &url,
            &format!(
                "ALTER DATABASE {} SET synchronous_commit = off",
                db_name(&url)
            ),
        );
        let mut plain = Client::connect(&url, NoTls).unwrap();
        let configured: String = plain
            .query_one("SHOW synchronous_commit", &[])
            .unwrap()
            .get(0);
        assert_eq!(configured, "off");
        assert_eq!(
            session_sync_commit(&PostgresStore::open(&url).unwrap()),
            "on"
        );
        let with = |value: &str| format!("{url}?options=-c%20synchronous_commit%3D{value}");
        assert_eq!(
            session_sync_commit(&PostgresStore::open(&with("off")).unwrap()),
            "on"
        );
        // Anything at least as strong is left as it is.
        for kept in ["local", "remote_write", "remote_apply"] {
            let store = PostgresStore::open(&with(kept)).unwrap();
            assert_eq!(session_sync_commit(&store), kept);
        }
    }

    #[test]
    fn a_database_restart_loses_no_committed_entry_and_the_store_recovers() {
        // A cluster of its own (stopped and started here), configured
        // `synchronous_commit=off` like the shared one.
        let Some(cluster) = pg_cluster::private(&[]) else {
            return;
        };
        let url = cluster.create_database().unwrap();
        let store = PostgresStore::open_with(&url, 4).unwrap();
        let mut n = 0i64;
        for mode in [pg_cluster::StopMode::Fast, pg_cluster::StopMode::Immediate] {
            for _ in 0..50 {
                n += 1;
                store.append_audit(&event(n, "before")).unwrap();
            }
            store
                .revoke(&RevocationTarget::Device(format!("r{n}")), n)
                .unwrap();
            // Stopped right after the commits: with `synchronous_commit`
            // off an immediate shutdown would drop the last of them.
            cluster.stop(mode).unwrap();
            // Down: a clean error, no panic, nothing half-written.
            let down = store.append_audit(&event(n + 1, "down")).unwrap_err();
            assert!(matches!(down, StateError::Database(_)), "{down}");
            assert!(store.policy_inputs("d", "1").is_err());
            cluster.start_again().unwrap();
            // Back: the dead pooled connections are replaced by themselves.
            assert_eq!(
                store.verify_audit().unwrap(),
                AuditVerification {
                    entries: n as u64,
                    first_bad_seq: None
                },
                "{mode:?}"
            );
            assert!(store.policy_inputs(&format!("r{n}"), "1").unwrap().revoked);
        }
        n += 1;
        assert_eq!(store.append_audit(&event(n, "after")).unwrap().seq, n);
    }
}
