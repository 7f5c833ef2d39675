//! Where the store key comes from, and the retry loop that gets it.
//!
//! Sources (one per run, chosen by `cli::run`):
//! - **envelope** (default when one is given): a clevis tang-pin JWE
//!   (`SECURE_STORE_ENVELOPE`) recovered through the Store Server's
//!   `POST /rec/{kid}` over mutual TLS (McCallum-Relyea: the server never
//!   sees the key). See [`crate::tang`].
//! - **legacy**: `GET /key` over mutual TLS, answered `201
//!   {"password": KEY}` by the original project's server (and ours when
//!   started the original way). The original client parsed the body of any
//!   answer; we accept 200 or 201 with a non-empty `password` and treat
//!   everything else as a refusal or a failure.
//! - **local**: the key itself (`STORE_PASSWORD`, `--local-key`) or a key
//!   file, offline: the original's `-local`.
//! - **env hash**: `--key-from-env-hash ITEM…`, see [`key_from_env_hash`].
//!
//! Network sources run in [`retry`]: every server in turn, then a backoff
//! wait ([`super::backoff`]), one log line per failed attempt with its
//! [`FailureKind`]. A `revoked` or `disabled` refusal ends the loop at
//! once: retrying would only hammer the server and fill its audit log.

use std::time::Duration;

use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::backoff::{Backoff, Policy};
use crate::api::{ErrorBody, Reason};
use crate::secret::StoreKey;

/// Why one attempt failed, as logged (`reason=…`) and acted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The server name did not resolve.
    Dns,
    /// Nothing listens there (connection refused).
    Refused,
    /// Other connection failures (unreachable network, reset).
    Connect,
    /// The TLS handshake failed (our certificate refused, or theirs untrusted).
    TlsRejected,
    /// The device is revoked: final.
    Revoked,
    /// The device is disabled: final.
    Disabled,
    /// Too many requests.
    RateLimited,
    /// A phase timed out.
    Timeout,
    /// The server failed (5xx).
    ServerError,
    /// Another refusal (address not allowed, unknown identity, …).
    Refused4xx,
    /// The answer made no sense (not HTTP, bad JSON, bad point).
    Protocol,
}

impl FailureKind {
    /// The log code.
    pub fn code(self) -> &'static str {
        match self {
            FailureKind::Dns => "dns",
            FailureKind::Refused => "refused",
            FailureKind::Connect => "connect",
            FailureKind::TlsRejected => "tls_rejected",
            FailureKind::Revoked => "revoked",
            FailureKind::Disabled => "disabled",
            FailureKind::RateLimited => "rate_limited",
            FailureKind::Timeout => "timeout",
            FailureKind::ServerError => "server_error",
            FailureKind::Refused4xx => "refused_by_policy",
            FailureKind::Protocol => "protocol",
        }
    }

    /// Whether retrying is pointless (the device must be re-enabled first).
    pub fn is_final(self) -> bool {
        matches!(self, FailureKind::Revoked | FailureKind::Disabled)
    }
}

/// One failed attempt.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{detail}")]
pub struct AttemptError {
    pub kind: FailureKind,
    pub detail: String,
}

impl AttemptError {
    pub fn new(kind: FailureKind, detail: impl Into<String>) -> Self {
        AttemptError {
            kind,
            detail: detail.into(),
        }
    }
}

/// Classifies a non-success HTTP answer: the server's JSON refusal code
/// (`crate::api`) when there is one, else the status.
pub fn classify_refusal(status: u16, body: &[u8]) -> AttemptError {
    let parsed: Option<ErrorBody> = serde_json::from_slice(body).ok();
    let reason = parsed.as_ref().and_then(|b| Reason::from_code(&b.error));
    let kind = match reason {
        Some(Reason::Revoked) => FailureKind::Revoked,
        Some(Reason::Disabled) => FailureKind::Disabled,
        Some(Reason::RateLimited) => FailureKind::RateLimited,
        Some(Reason::Internal) => FailureKind::ServerError,
        _ if status == 429 => FailureKind::RateLimited,
        _ if status >= 500 => FailureKind::ServerError,
        _ => FailureKind::Refused4xx,
    };
    // The message is the server's text, trimmed to one short line.
    let message: String = parsed
        .map(|b| format!("{}: {}", b.error, b.message))
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect();
    AttemptError::new(
        kind,
        format!("HTTP {status} {message}").trim_end().to_owned(),
    )
}

/// Parses the legacy `/key` answer `{"password": "…"}`.
pub fn parse_legacy(status: u16, body: &[u8]) -> Result<StoreKey, AttemptError> {
    if status != 200 && status != 201 {
        return Err(classify_refusal(status, body));
    }
    #[derive(serde::Deserialize)]
    struct Password {
        password: String,
    }
    let parsed: Password = serde_json::from_slice(body).map_err(|_| {
        AttemptError::new(
            FailureKind::Protocol,
            format!("HTTP {status}: the body is not {{\"password\": …}}"),
        )
    })?;
    let password = Zeroizing::new(parsed.password);
    StoreKey::new(&password).map_err(|e| {
        AttemptError::new(
            FailureKind::Protocol,
            format!("the served key is unusable: {e}"),
        )
    })
}

/// An item of `--key-from-env-hash`: a file, or `env:NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashItem {
    File(std::path::PathBuf),
    Env(String),
}

impl std::str::FromStr for HashItem {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.strip_prefix("env:") {
            Some("") => Err("env: needs a variable name (env:NAME)".into()),
            Some(name) => Ok(HashItem::Env(name.to_owned())),
            None if s.is_empty() => Err("an empty path".into()),
            None => Ok(HashItem::File(s.into())),
        }
    }
}

/// A key derived from things distinct about the device: the lower-case
/// hex SHA-256 of the items' bytes concatenated in order (a file's whole
/// content; an environment variable's value, no newline). The operator
/// computes the same on a copy of those facts, e.g.
/// `{ cat /etc/machine-id; printf %s "$BALENA_DEVICE_UUID"; } | sha256sum`,
/// and uses it as the store key.
pub fn key_from_env_hash(
    items: &[HashItem],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<StoreKey, String> {
    if items.is_empty() {
        return Err("--key-from-env-hash needs at least one file or env:NAME".into());
    }
    let mut hasher = Sha256::new();
    for item in items {
        match item {
            HashItem::File(path) => {
                let bytes = Zeroizing::new(std::fs::read(path).map_err(|e| {
                    format!("--key-from-env-hash: cannot read {}: {e}", path.display())
                })?);
                hasher.update(&*bytes);
            }
            HashItem::Env(name) => {
                let value = Zeroizing::new(
                    env(name).ok_or_else(|| format!("--key-from-env-hash: {name} is not set"))?,
                );
                hasher.update(value.as_bytes());
            }
        }
    }
    let digest = Zeroizing::new(hasher.finalize().to_vec());
    let hex = Zeroizing::new(hex::encode(&*digest));
    StoreKey::new(&hex).map_err(|e| e.to_string())
}

/// How the retry loop ended without a key.
#[derive(Debug, thiserror::Error)]
pub enum RetryError {
    /// A final refusal (revoked, disabled).
    #[error("{server} refused: {error} (kind {kind})", kind = error.kind.code())]
    Refused { server: String, error: AttemptError },
    /// The deadline passed.
    #[error("no server answered before the deadline; last failure: {server}: {error} (kind {kind})", kind = error.kind.code())]
    Deadline { server: String, error: AttemptError },
    /// A stopping signal arrived while waiting.
    #[error("stopped by signal {0} before the app started")]
    Stopped(i32),
    /// Something that no retry can fix (a malformed envelope, a wrong key).
    #[error("{0}")]
    Fatal(String),
}

/// The outcome of one attempt, for [`retry`].
#[derive(Debug)]
pub enum Attempt<T> {
    Ok(T),
    Failed(AttemptError),
    Fatal(String),
}

/// Runs `attempt` against every server in turn until one succeeds, waiting
/// per the backoff `policy` after each full round. `stop` is polled while
/// waiting (every 50 ms) and ends the loop with its signal.
pub fn retry<T>(
    servers: &[String],
    policy: Policy,
    attempt: &mut dyn FnMut(&str) -> Attempt<T>,
    stop: &mut dyn FnMut() -> Option<i32>,
) -> Result<T, RetryError> {
    let mut backoff = Backoff::new(policy);
    let mut number = 0u32;
    loop {
        let mut last = None;
        for server in servers {
            if let Some(sig) = stop() {
                return Err(RetryError::Stopped(sig));
            }
            number += 1;
            match attempt(server) {
                Attempt::Ok(value) => {
                    tracing::info!(server = %server, attempt = number, "unlocked");
                    return Ok(value);
                }
                Attempt::Fatal(message) => return Err(RetryError::Fatal(message)),
                Attempt::Failed(error) if error.kind.is_final() => {
                    tracing::error!(server = %server, attempt = number, reason = %error.kind.code(), "refused: {error}; not retrying");
                    return Err(RetryError::Refused {
                        server: server.clone(),
                        error,
                    });
                }
                Attempt::Failed(error) => {
                    tracing::warn!(server = %server, attempt = number, reason = %error.kind.code(), "unlock failed: {error}");
                    last = Some((server.clone(), error));
                }
            }
        }
        let Some((server, error)) = last else {
            return Err(RetryError::Fatal(
                "no server to ask: give --server URL".into(),
            ));
        };
        let Some(delay) = backoff.next_delay() else {
            return Err(RetryError::Deadline { server, error });
        };
        tracing::info!(
            "retrying in {:.1} s (next window {:.1} s)",
            delay.as_secs_f64(),
            backoff.window().as_secs_f64()
        );
        if let Some(sig) = sleep_unless(delay, stop) {
            return Err(RetryError::Stopped(sig));
        }
    }
}

fn sleep_unless(delay: Duration, stop: &mut dyn FnMut() -> Option<i32>) -> Option<i32> {
    let end = std::time::Instant::now() + delay;
    loop {
        if let Some(sig) = stop() {
            return Some(sig);
        }
        let now = std::time::Instant::now();
        if now >= end {
            return None;
        }
        std::thread::sleep((end - now).min(Duration::from_millis(50)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_classified_by_code_then_status() {
        let body = br#"{"error":"revoked","message":"device d1 is revoked"}"#;
        let e = classify_refusal(403, body);
        assert_eq!(e.kind, FailureKind::Revoked);
        assert!(e.kind.is_final());
        assert!(e.detail.contains("device d1 is revoked"));
        assert_eq!(
            classify_refusal(403, br#"{"error":"disabled","message":""}"#).kind,
            FailureKind::Disabled
        );
        assert_eq!(classify_refusal(429, b"").kind, FailureKind::RateLimited);
        assert_eq!(classify_refusal(503, b"").kind, FailureKind::ServerError);
        let other = classify_refusal(403, br#"{"error":"address_not_allowed","message":"x"}"#);
        assert_eq!(other.kind, FailureKind::Refused4xx);
        assert!(!other.kind.is_final());
        // A plain 403 without our JSON (another server) is not "revoked".
        assert_eq!(
            classify_refusal(403, b"Forbidden").kind,
            FailureKind::Refused4xx
        );
    }

    #[test]
    fn legacy_answers() {
        let key = parse_legacy(201, br#"{"password":"abc"}"#).unwrap();
        assert_eq!(key.expose(), "abc");
        assert!(parse_legacy(200, b"{\"password\":\"abc\"}\n").is_ok());
        assert_eq!(
            parse_legacy(201, b"{}").unwrap_err().kind,
            FailureKind::Protocol
        );
        assert_eq!(
            parse_legacy(201, br#"{"password":""}"#).unwrap_err().kind,
            FailureKind::Protocol
        );
        assert_eq!(
            parse_legacy(403, br#"{"error":"revoked","message":"r"}"#)
                .unwrap_err()
                .kind,
            FailureKind::Revoked
        );
    }

    #[test]
    fn env_hash_is_sha256_of_the_items_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("machine-id");
        std::fs::write(&file, "abc\n").unwrap();
        let env = |name: &str| (name == "UUID").then(|| "1234".to_owned());
        let items = vec![HashItem::File(file.clone()), "env:UUID".parse().unwrap()];
        let key = key_from_env_hash(&items, &env).unwrap();
        assert_eq!(key.expose(), hex::encode(Sha256::digest(b"abc\n1234")));
        let reversed = vec![items[1].clone(), items[0].clone()];
        assert_ne!(
            key_from_env_hash(&reversed, &env).unwrap().expose(),
            key.expose()
        );
        assert!(key_from_env_hash(&["env:NOPE".parse().unwrap()], &env)
            .unwrap_err()
            .contains("NOPE"));
        assert!(key_from_env_hash(&[], &env).is_err());
        assert!("env:".parse::<HashItem>().is_err());
    }

    #[test]
    fn retry_tries_servers_in_turn_and_stops_on_revocation() {
        let servers = vec!["a".to_owned(), "b".to_owned()];
        let policy = Policy {
            base: Duration::from_millis(1),
            cap: Duration::from_millis(2),
            deadline: None,
        };
        let mut seen = Vec::new();
        let got = retry(
            &servers,
            policy,
            &mut |s| {
                seen.push(s.to_owned());
                if seen.len() < 3 {
                    Attempt::Failed(AttemptError::new(FailureKind::Refused, "down"))
                } else {
                    Attempt::Ok(s.to_owned())
                }
            },
            &mut || None,
        )
        .unwrap();
        assert_eq!(seen, ["a", "b", "a"]);
        assert_eq!(got, "a");

        let mut calls = 0;
        let err = retry::<()>(
            &servers,
            policy,
            &mut |_| {
                calls += 1;
                Attempt::Failed(AttemptError::new(FailureKind::Revoked, "revoked"))
            },
            &mut || None,
        )
        .unwrap_err();
        assert!(matches!(err, RetryError::Refused { .. }));
        assert_eq!(calls, 1);

        let err = retry::<()>(
            &servers,
            Policy {
                deadline: Some(Duration::ZERO),
                ..policy
            },
            &mut |_| Attempt::Failed(AttemptError::new(FailureKind::Timeout, "slow")),
            &mut || None,
        )
        .unwrap_err();
        assert!(matches!(err, RetryError::Deadline { .. }), "{err}");

        let err = retry::<()>(
            &servers,
            policy,
            &mut |_| Attempt::Failed(AttemptError::new(FailureKind::Dns, "x")),
            &mut || Some(15),
        )
        .unwrap_err();
        assert!(matches!(err, RetryError::Stopped(15)));
    }
}
