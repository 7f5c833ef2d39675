//! The admin API (admin certificate only; [`super::routes`] checks that
//! before calling in). JSON in and out; bodies are the [`crate::state`]
//! types, acknowledgements are [`Ack`].
//!
//! | method + path | body → answer |
//! |---|---|
//! | `GET /admin/devices` | → `[Device]` |
//! | `POST /admin/devices/{id}/revoke` | → `Ack` |
//! | `POST /admin/devices/{id}/disable`, `…/enable` | → `Ack` |
//! | `POST /admin/revoke-serial/{serial}` | → `Ack` |
//! | `GET /admin/rules` | → `[Rule]` |
//! | `POST /admin/rules` | `RuleSpec` → `Rule` |
//! | `DELETE /admin/rules/{id}` | → `Ack` |
//! | `GET /admin/audit?since=&device=&limit=` | → `[AuditRecord]` |
//! | `GET /admin/audit/verify` | → `AuditVerification` |
//!
//! Every change is audited (endpoint `admin …`, device `admin:<name>`,
//! key id = the target). Reads are not.

use hyper::{Method, Response};
use serde::{Deserialize, Serialize};

use super::routes::{audit, json, now, ApiError, Body};
use super::{App, Peer};
use crate::api::Reason;
use crate::state::{AuditFilter, Decision, DeviceStatus, RevocationTarget, RuleSpec, StateError};

/// The answer to a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    pub ok: bool,
    pub message: String,
}

fn state_error(e: StateError) -> ApiError {
    match e {
        StateError::NoSuchDevice(_) | StateError::NoSuchRule(_) => {
            ApiError::new(Reason::NotFound, e.to_string())
        }
        StateError::Invalid { .. } => ApiError::new(Reason::BadRequest, e.to_string()),
        other => {
            tracing::error!(error = %other, "state store failed");
            ApiError::new(Reason::Internal, "the state store is unavailable")
        }
    }
}

/// Runs a state call off the async threads.
async fn blocking<T: Send + 'static>(
    app: &App,
    f: impl FnOnce(&dyn crate::state::Store) -> Result<T, StateError> + Send + 'static,
) -> Result<T, ApiError> {
    let store = app.store.clone();
    tokio::task::spawn_blocking(move || f(store.as_ref()))
        .await
        .map_err(|_| ApiError::new(Reason::Internal, "the state task failed"))?
        .map_err(state_error)
}

fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Decodes `%XX` and `+` in a query value.
fn unescape(v: &str) -> String {
    let bytes = v.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn changed(
    app: &App,
    peer: &Peer,
    what: &str,
    target: &str,
    message: String,
) -> Result<Response<Body>, ApiError> {
    audit(
        app,
        peer,
        &format!("admin {what}"),
        Some(target),
        Decision::Allowed,
        "ok",
    )
    .await?;
    json(&Ack { ok: true, message })
}

/// One admin request.
pub async fn handle(
    app: &App,
    peer: &Peer,
    method: &Method,
    path: &str,
    query: &str,
    body: &[u8],
) -> Result<Response<Body>, ApiError> {
    let parts: Vec<&str> = path
        .trim_start_matches("/admin/")
        .trim_end_matches('/')
        .split('/')
        .collect();
    let wrong_method = || {
        ApiError::new(
            Reason::MethodNotAllowed,
            format!("{method} is not allowed on {path}"),
        )
    };
    match parts.as_slice() {
        ["devices"] => {
            if method != Method::GET {
                return Err(wrong_method());
            }
            json(&blocking(app, |s| s.devices()).await?)
        }
        ["devices", id, action] => {
            if method != Method::POST {
                return Err(wrong_method());
            }
            let id = unescape(id);
            let at = now();
            match *action {
                "revoke" => {
                    let target = RevocationTarget::Device(id.clone());
                    blocking(app, move |s| s.revoke(&target, at)).await?;
                    changed(app, peer, "revoke", &id, format!("device {id} revoked")).await
                }
                "disable" | "enable" => {
                    let status = if *action == "disable" {
                        DeviceStatus::Disabled
                    } else {
                        DeviceStatus::Enabled
                    };
                    let id2 = id.clone();
                    blocking(app, move |s| s.set_status(&id2, status, at)).await?;
                    changed(app, peer, action, &id, format!("device {id} {action}d")).await
                }
                _ => Err(ApiError::new(
                    Reason::NotFound,
                    format!("no such admin action: {action}"),
                )),
            }
        }
        ["revoke-serial", serial] => {
            if method != Method::POST {
                return Err(wrong_method());
            }
            let serial = unescape(serial).to_ascii_lowercase();
            if serial.is_empty() || !serial.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
                return Err(ApiError::new(Reason::BadRequest, "a serial is hexadecimal"));
            }
            let serial: String = serial.chars().filter(|c| *c != ':').collect();
            let target = RevocationTarget::Serial(serial.clone());
            let at = now();
            blocking(app, move |s| s.revoke(&target, at)).await?;
            changed(
                app,
                peer,
                "revoke-serial",
                &serial,
                format!("serial {serial} revoked"),
            )
            .await
        }
        ["rules"] => match *method {
            Method::GET => json(&blocking(app, |s| s.rules()).await?),
            Method::POST => {
                let spec: RuleSpec = serde_json::from_slice(body)
                    .map_err(|e| ApiError::new(Reason::BadRequest, format!("not a rule: {e}")))?;
                let at = now();
                let rule = blocking(app, move |s| s.add_rule(&spec, at)).await?;
                audit(
                    app,
                    peer,
                    "admin rules add",
                    Some(&rule.id.to_string()),
                    Decision::Allowed,
                    "ok",
                )
                .await?;
                json(&rule)
            }
            _ => Err(wrong_method()),
        },
        ["rules", id] => {
            if method != Method::DELETE {
                return Err(wrong_method());
            }
            let id: i64 = id
                .parse()
                .map_err(|_| ApiError::new(Reason::BadRequest, "a rule id is a number"))?;
            blocking(app, move |s| s.remove_rule(id)).await?;
            changed(
                app,
                peer,
                "rules rm",
                &id.to_string(),
                format!("rule {id} removed"),
            )
            .await
        }
        ["audit"] => {
            if method != Method::GET {
                return Err(wrong_method());
            }
            let bad = |what: &str| ApiError::new(Reason::BadRequest, format!("bad {what}"));
            let filter = AuditFilter {
                since: match query_param(query, "since") {
                    Some(v) => Some(v.parse().map_err(|_| bad("since (unix seconds)"))?),
                    None => None,
                },
                device: query_param(query, "device").map(unescape),
                limit: match query_param(query, "limit") {
                    Some(v) => Some(v.parse().map_err(|_| bad("limit"))?),
                    None => None,
                },
            };
            json(&blocking(app, move |s| s.audit(&filter)).await?)
        }
        ["audit", "verify"] => {
            if method != Method::GET {
                return Err(wrong_method());
            }
            json(&blocking(app, |s| s.verify_audit()).await?)
        }
        _ => Err(ApiError::new(
            Reason::NotFound,
            format!("no such admin endpoint: {path}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values() {
        assert_eq!(
            query_param("since=5&device=a%20b", "device")
                .map(unescape)
                .as_deref(),
            Some("a b")
        );
        assert_eq!(query_param("since=5", "limit"), None);
        assert_eq!(unescape("100%"), "100%");
        assert_eq!(unescape("%4"), "%4");
        assert_eq!(unescape("a+b%2Fc"), "a b/c");
    }
}
