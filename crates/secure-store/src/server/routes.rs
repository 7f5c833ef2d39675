//! Request routing and the unlock handlers, and the one place where an
//! error becomes an HTTP answer ([`ApiError::into_response`]).
//!
//! | route | who | policy | audited |
//! |---|---|---|---|
//! | `GET /key` (legacy) | device, legacy cert | yes, store `legacy` | every answer |
//! | `GET /adv`, `/adv/`, `/adv/{thp}` | device, admin, legacy, plain Tang listener | identity only | refusals |
//! | `POST /rec/{kid}` | device, legacy, plain Tang listener | yes, store = exchange key id | every answer |
//! | `GET /healthz` | any verified certificate | none | no |
//! | `GET /metrics` | admin | none | refusals |
//! | `/admin/…` | admin | none | changes and refusals |
//!
//! Tang answers follow tangd 11 (`shared/design/tang-notes.md` §1.2):
//! repeated slashes are allowed, success carries only `Content-Type` and
//! `Content-Length`, errors take [`crate::tang::TangError::status`] and an
//! empty body, wrong methods answer 405. Our own refusals (policy, admin)
//! carry the JSON [`crate::api::ErrorBody`] with the reason code.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
#[cfg(doc)]
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};

use super::{admin, App, Peer, PeerIdentity, RateLimits};
use crate::api::{ErrorBody, Reason};
use crate::state::{AuditEvent, Decision, Sighting};

/// Our response body type.
pub type Body = Full<Bytes>;

/// A refusal: the reason (its code goes into the body, audit and metrics),
/// the HTTP status, and a human message (never a secret).
#[derive(Debug, Clone)]
pub struct ApiError {
    pub reason: Reason,
    pub status: u16,
    pub message: String,
    /// Tang errors answer like tangd: status only, empty body.
    pub bare: bool,
}

impl ApiError {
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        ApiError {
            reason,
            status: reason.status(),
            message: message.into(),
            bare: false,
        }
    }

    fn tang(err: &crate::tang::TangError) -> Self {
        let status = err.status();
        let reason = match status {
            400 => Reason::BadRequest,
            403 => Reason::BadRequest,
            404 => Reason::NotFound,
            405 => Reason::MethodNotAllowed,
            413 => Reason::TooLarge,
            _ => Reason::Internal,
        };
        ApiError {
            reason,
            status,
            message: err.to_string(),
            bare: true,
        }
    }

    /// The HTTP answer for this refusal.
    pub fn into_response(self) -> Response<Body> {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if self.bare {
            let mut r = Response::new(Body::default());
            *r.status_mut() = status;
            return r;
        }
        let body = ErrorBody {
            error: self.reason.code().to_string(),
            message: self.message,
        };
        let json = serde_json::to_vec(&body).unwrap_or_default();
        respond(status, "application/json", json)
    }
}

/// A response with a body and its content type.
pub fn respond(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    r
}

/// JSON answer (200).
pub fn json<T: serde::Serialize>(value: &T) -> Result<Response<Body>, ApiError> {
    let body = serde_json::to_vec(value)
        .map_err(|e| ApiError::new(Reason::Internal, format!("cannot encode the answer: {e}")))?;
    Ok(respond(StatusCode::OK, "application/json", body))
}

/// The route names used as metric labels and in the audit.
fn route_name(path: &str) -> &'static str {
    if path == "/key" {
        "/key"
    } else if path == "/adv" || path.starts_with("/adv/") {
        "/adv"
    } else if path.starts_with("/rec/") || path == "/rec" {
        "/rec"
    } else if path == "/healthz" {
        "/healthz"
    } else if path == "/metrics" {
        "/metrics"
    } else if path.starts_with("/admin/") {
        "/admin"
    } else {
        "other"
    }
}

/// Collapses repeated slashes (tangd's routes allow them).
fn normalize(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut prev_slash = false;
    for c in path.chars() {
        if c == '/' {
            if prev_slash {
                continue;
            }
            prev_slash = true;
        } else {
            prev_slash = false;
        }
        out.push(c);
    }
    out
}

/// What a request body may be: hyper's [`Incoming`] on a connection, or
/// any in-memory body (the `http_api` fuzz target drives [`service`]
/// without sockets).
pub trait RequestBody: hyper::body::Body<Error = Self::E> + Send + 'static {
    type E: Into<Box<dyn std::error::Error + Send + Sync>>;
}

impl<B> RequestBody for B
where
    B: hyper::body::Body + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type E = B::Error;
}

/// The hyper service entry: never fails, every error is an answer.
pub async fn service<B: RequestBody>(
    app: Arc<App>,
    peer: Arc<Peer>,
    req: Request<B>,
) -> Result<Response<Body>, Infallible> {
    let started = Instant::now();
    let path = normalize(req.uri().path());
    let route = route_name(&path);
    let result = dispatch(&app, &peer, req, &path).await;
    let (allowed, reason, response) = match result {
        Ok(r) => (true, "ok", r),
        Err(e) => (false, e.reason.code(), e.into_response()),
    };
    app.metrics
        .request(route, allowed, reason, started.elapsed());
    Ok(response)
}

async fn dispatch<B: RequestBody>(
    app: &Arc<App>,
    peer: &Peer,
    req: Request<B>,
    path: &str,
) -> Result<Response<Body>, ApiError> {
    let plain = peer.identity == PeerIdentity::Anonymous;
    let method = req.method().clone();
    if plain && !(path == "/adv" || path.starts_with("/adv/") || path.starts_with("/rec/")) {
        return Err(ApiError::new(
            Reason::NotFound,
            "only /adv and /rec on this listener",
        ));
    }
    let unlock = path == "/key" || path.starts_with("/rec/");
    if !unlock {
        // Unlocks record the sighting with their policy read.
        record_sighting(app, peer).await;
    }
    if path == "/key" {
        if method != Method::GET {
            return Err(ApiError::new(Reason::MethodNotAllowed, "use GET /key"));
        }
        return legacy_key(app, peer).await;
    }
    if path == "/adv" || path.starts_with("/adv/") {
        if method != Method::GET {
            return Err(ApiError {
                bare: true,
                ..ApiError::new(Reason::MethodNotAllowed, "use GET")
            });
        }
        let thp = path
            .strip_prefix("/adv")
            .unwrap_or("")
            .trim_start_matches('/');
        return adv(app, peer, thp).await;
    }
    if let Some(kid) = path.strip_prefix("/rec/") {
        if method != Method::POST {
            return Err(ApiError {
                bare: true,
                ..ApiError::new(Reason::MethodNotAllowed, "use POST")
            });
        }
        let kid = kid.trim_end_matches('/').to_string();
        let body = read_body(app, req).await?;
        return rec(app, peer, &kid, body).await;
    }
    match (path, &method) {
        ("/healthz", &Method::GET) => {
            if matches!(peer.identity, PeerIdentity::Unrecognized) {
                return Err(refuse_identity(app, peer, "GET /healthz").await);
            }
            Ok(respond(
                StatusCode::OK,
                "text/plain; charset=utf-8",
                b"ok\n".to_vec(),
            ))
        }
        ("/metrics", &Method::GET) => {
            if !matches!(peer.identity, PeerIdentity::Admin { .. }) {
                let err = ApiError::new(Reason::NotAdmin, "/metrics needs the admin certificate");
                audit_refusal(app, peer, "GET /metrics", None, &err).await;
                return Err(err);
            }
            Ok(respond(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                app.metrics.render().into_bytes(),
            ))
        }
        ("/healthz" | "/metrics", _) => Err(ApiError::new(Reason::MethodNotAllowed, "use GET")),
        _ if path.starts_with("/admin/") => {
            let PeerIdentity::Admin { .. } = &peer.identity else {
                let err = ApiError::new(
                    Reason::NotAdmin,
                    "the admin API needs the admin certificate",
                );
                audit_refusal(app, peer, &format!("{method} {path}"), None, &err).await;
                return Err(err);
            };
            let query = req.uri().query().unwrap_or("").to_string();
            let body = read_body(app, req).await?;
            admin::handle(app, peer, &method, path, &query, &body).await
        }
        _ => Err(ApiError::new(
            Reason::NotFound,
            format!("no such endpoint: {path}"),
        )),
    }
}

/// Reads the whole body within the size and time limits.
async fn read_body<B: RequestBody>(app: &App, req: Request<B>) -> Result<Bytes, ApiError> {
    let max = app.limits.max_body_bytes;
    let too_large = || {
        ApiError::new(
            Reason::TooLarge,
            format!("the body is larger than {max} bytes"),
        )
    };
    if let Some(len) = req
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        if len > max as u64 {
            return Err(too_large());
        }
    }
    let collect = Limited::new(req.into_body(), max).collect();
    match tokio::time::timeout(app.limits.body_timeout, collect).await {
        Err(_) => Err(ApiError::new(
            Reason::BadRequest,
            "the body did not arrive in time",
        )),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Ok(Err(e)) => Err(ApiError::new(
            Reason::BadRequest,
            format!("cannot read the body: {e}"),
        )),
        Ok(Ok(c)) => Ok(c.to_bytes()),
    }
}

/// Records that a device certificate was seen (every verified request;
/// a failure is logged, the request goes on).
async fn record_sighting(app: &App, peer: &Peer) {
    let Some(subject) = subject(peer).filter(|s| s.sighting) else {
        return;
    };
    let st = app.store.clone();
    let addr = peer.addr;
    let result = tokio::task::spawn_blocking(move || {
        st.record_sighting(&Sighting {
            device_id: &subject.device,
            groups: &subject.groups,
            serial: &subject.serial,
            address: addr,
            at: now(),
        })
    })
    .await;
    if let Ok(Err(e)) = result {
        tracing::warn!(error = %e, "cannot record the device sighting");
    }
}

/// Who a policy check is about.
struct Subject {
    /// The id whose status and revocations count (and that is recorded).
    device: String,
    /// The rate limiter's key for the device.
    limiter_key: String,
    groups: Vec<String>,
    serial: String,
    /// Record a sighting (verified certificates only).
    sighting: bool,
}

/// The id under which the original project's shared certificate is
/// recorded, disabled or revoked (its serial can be revoked too).
pub const LEGACY_DEVICE: &str = "legacy";

fn subject(peer: &Peer) -> Option<Subject> {
    match &peer.identity {
        PeerIdentity::Device { id, groups, serial } => Some(Subject {
            device: id.clone(),
            limiter_key: id.clone(),
            groups: groups.clone(),
            serial: serial.clone(),
            sighting: true,
        }),
        // One certificate shared by every legacy device: rate-limit it per
        // address, not as one device.
        PeerIdentity::Legacy { serial } => Some(Subject {
            device: LEGACY_DEVICE.to_string(),
            limiter_key: format!("{LEGACY_DEVICE}@{}", peer.addr),
            groups: Vec::new(),
            serial: serial.clone(),
            sighting: true,
        }),
        PeerIdentity::Anonymous => Some(Subject {
            device: String::new(),
            limiter_key: format!("tang@{}", peer.addr),
            groups: Vec::new(),
            serial: String::new(),
            sighting: false,
        }),
        PeerIdentity::Admin { .. } | PeerIdentity::Unrecognized => None,
    }
}

async fn refuse_identity(app: &App, peer: &Peer, endpoint: &str) -> ApiError {
    let err = ApiError::new(
        Reason::UnknownIdentity,
        "this certificate is not a device certificate of this fleet",
    );
    audit_refusal(app, peer, endpoint, None, &err).await;
    err
}

/// `GET /key`: the original project's unlock.
async fn legacy_key(app: &Arc<App>, peer: &Peer) -> Result<Response<Body>, ApiError> {
    const ENDPOINT: &str = "GET /key";
    let Some(password) = app.legacy_password.clone() else {
        let err = ApiError::new(
            Reason::LegacyDisabled,
            "legacy /key is not enabled on this server",
        );
        audit_refusal(app, peer, ENDPOINT, Some("legacy"), &err).await;
        return Err(err);
    };
    let body = unlock(app, peer, ENDPOINT, "legacy".to_string(), move || {
        // What Go's json.Encoder writes: HTML-safe escapes and a newline.
        let json = zeroize::Zeroizing::new(
            serde_json::to_string(&serde_json::json!({ "password": password.expose() }))
                .map_err(|_| ApiError::new(Reason::Internal, "cannot encode the answer"))?,
        );
        let mut body = json
            .replace('<', "\\u003c")
            .replace('>', "\\u003e")
            .replace('&', "\\u0026")
            .replace('\u{2028}', "\\u2028")
            .replace('\u{2029}', "\\u2029");
        body.push('\n');
        Ok(body.into_bytes())
    })
    .await?;
    Ok(respond(StatusCode::CREATED, "application/json", body))
}

/// `GET /adv[/thp]`: the Tang advertisement.
async fn adv(app: &App, peer: &Peer, thp: &str) -> Result<Response<Body>, ApiError> {
    if matches!(peer.identity, PeerIdentity::Unrecognized) {
        return Err(refuse_identity(app, peer, "GET /adv").await);
    }
    if let PeerIdentity::Anonymous = peer.identity {
        // A refusal is audited inside.
        app.policy.check_address(app, peer).await?;
    }
    let keys = app.keys().ok_or_else(|| ApiError {
        bare: true,
        ..ApiError::new(Reason::NotFound, "no Tang keys on this server")
    })?;
    let thp = if thp.is_empty() { None } else { Some(thp) };
    let body = keys.adv(thp).map_err(|e| ApiError::tang(&e))?;
    Ok(respond(StatusCode::OK, "application/jose+json", body))
}

/// `POST /rec/{kid}`: one McCallum-Relyea exchange, after the policy.
async fn rec(
    app: &Arc<App>,
    peer: &Peer,
    kid: &str,
    body: Bytes,
) -> Result<Response<Body>, ApiError> {
    const ENDPOINT: &str = "POST /rec";
    let Some(keys) = app.keys() else {
        let err = ApiError {
            bare: true,
            ..ApiError::new(Reason::NotFound, "no Tang keys on this server")
        };
        audit_refusal(app, peer, ENDPOINT, Some(kid), &err).await;
        return Err(err);
    };
    let store = keys.exchange_key_id(kid).unwrap_or_else(|| kid.to_string());
    let kid = kid.to_string();
    let answer = unlock(app, peer, ENDPOINT, store, move || {
        keys.rec(&kid, &body).map_err(|e| ApiError::tang(&e))
    })
    .await?;
    Ok(respond(StatusCode::OK, "application/jwk+json", answer))
}

/// One unlock in one trip to the blocking pool: the policy inputs, the
/// sighting, the policy (revoked → disabled → address → rate → store
/// grant), then `answer` (the key or the exchange), then the audit entry.
/// An allowed unlock whose audit entry cannot be written is not answered.
async fn unlock<F>(
    app: &Arc<App>,
    peer: &Peer,
    endpoint: &'static str,
    store: String,
    answer: F,
) -> Result<Vec<u8>, ApiError>
where
    F: FnOnce() -> Result<Vec<u8>, ApiError> + Send + 'static,
{
    let Some(subject) = subject(peer) else {
        let err = if matches!(peer.identity, PeerIdentity::Admin { .. }) {
            ApiError::new(
                Reason::UnknownIdentity,
                "the admin certificate cannot unlock; use a device certificate",
            )
        } else {
            ApiError::new(
                Reason::UnknownIdentity,
                "this certificate is not a device certificate of this fleet",
            )
        };
        audit_refusal(app, peer, endpoint, Some(&store), &err).await;
        return Err(err);
    };
    let app = app.clone();
    let peer = peer.clone();
    tokio::task::spawn_blocking(move || {
        let st = app.store.as_ref();
        let outcome = app
            .policy
            .decide(st, &peer, &subject, &store)
            .and_then(|()| answer());
        match outcome {
            Ok(bytes) => {
                audit_sync(st, &peer, endpoint, Some(&store), Decision::Allowed, "ok")?;
                Ok(bytes)
            }
            Err(err) => {
                let _ = audit_sync(
                    st,
                    &peer,
                    endpoint,
                    Some(&store),
                    Decision::Refused,
                    err.reason.code(),
                );
                Err(err)
            }
        }
    })
    .await
    .map_err(|_| ApiError::new(Reason::Internal, "the unlock task failed"))?
}

fn device_label(peer: &Peer) -> Option<String> {
    match &peer.identity {
        PeerIdentity::Device { id, .. } => Some(id.clone()),
        PeerIdentity::Admin { name, .. } => Some(format!("admin:{name}")),
        PeerIdentity::Legacy { .. } => Some(LEGACY_DEVICE.to_string()),
        PeerIdentity::Unrecognized | PeerIdentity::Anonymous => None,
    }
}

/// Appends one audit entry and logs the decision (on a blocking thread).
pub(crate) fn audit_sync(
    store: &dyn crate::state::Store,
    peer: &Peer,
    endpoint: &str,
    key_id: Option<&str>,
    decision: Decision,
    reason: &str,
) -> Result<(), ApiError> {
    let event = AuditEvent {
        time: now(),
        decision,
        reason: reason.to_string(),
        device: device_label(peer),
        address: Some(peer.addr),
        // Paths come from the client: bounded in the audit and the log.
        endpoint: endpoint.chars().take(128).collect(),
        key_id: key_id.map(|k| k.chars().take(128).collect()),
    };
    tracing::info!(
        decision = ?event.decision,
        reason = %event.reason,
        device = event.device.as_deref().unwrap_or("-"),
        address = %peer.addr,
        endpoint = %event.endpoint,
        key_id = event.key_id.as_deref().unwrap_or("-"),
        "decision"
    );
    store.append_audit(&event).map(|_| ()).map_err(|e| {
        tracing::error!(error = %e, "cannot append to the audit log");
        ApiError::new(Reason::Internal, "the audit log is unavailable")
    })
}

/// [`audit_sync`] from async code.
pub(crate) async fn audit(
    app: &App,
    peer: &Peer,
    endpoint: &str,
    key_id: Option<&str>,
    decision: Decision,
    reason: &str,
) -> Result<(), ApiError> {
    let store = app.store.clone();
    let peer = peer.clone();
    let endpoint = endpoint.to_string();
    let key_id = key_id.map(str::to_string);
    let reason = reason.to_string();
    tokio::task::spawn_blocking(move || {
        audit_sync(
            store.as_ref(),
            &peer,
            &endpoint,
            key_id.as_deref(),
            decision,
            &reason,
        )
    })
    .await
    .map_err(|_| ApiError::new(Reason::Internal, "the audit task failed"))?
}

/// Audits a refusal (a failing audit is logged, the refusal stands).
pub(crate) async fn audit_refusal(
    app: &App,
    peer: &Peer,
    endpoint: &str,
    key_id: Option<&str>,
    err: &ApiError,
) {
    let _ = audit(
        app,
        peer,
        endpoint,
        key_id,
        Decision::Refused,
        err.reason.code(),
    )
    .await;
}

pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Applies [`crate::policy`] to a request: reads the inputs from the state
/// store, records the sighting, and checks (revoked → disabled → address →
/// rate → store grant). The plain Tang listener's `--tang-allow` networks
/// are checked first for anonymous peers.
#[derive(Debug)]
pub struct PolicyEngine {
    limiter: crate::policy::RateLimiter,
    /// Plain Tang listener: allowed source networks (empty = deny all).
    pub tang_allow: Vec<ipnet::IpNet>,
}

impl PolicyEngine {
    pub fn new(rates: RateLimits) -> Self {
        PolicyEngine {
            limiter: crate::policy::RateLimiter::new(rates.config()),
            tang_allow: Vec::new(),
        }
    }

    fn tang_allowed(&self, addr: std::net::IpAddr) -> bool {
        let addr = match addr {
            std::net::IpAddr::V6(v6) => v6
                .to_ipv4_mapped()
                .map(std::net::IpAddr::V4)
                .unwrap_or(addr),
            v4 => v4,
        };
        self.tang_allow.iter().any(|n| n.contains(&addr))
    }

    async fn check_address(&self, app: &App, peer: &Peer) -> Result<(), ApiError> {
        if self.tang_allowed(peer.addr) {
            return Ok(());
        }
        let err = ApiError::new(
            Reason::AddressNotAllowed,
            "this address may not use the Tang listener",
        );
        audit_refusal(app, peer, "GET /adv", None, &err).await;
        Err(err)
    }

    /// The policy for one unlock, on a blocking thread: reads the inputs,
    /// records the sighting, decides.
    fn decide(
        &self,
        st: &dyn crate::state::Store,
        peer: &Peer,
        subject: &Subject,
        store: &str,
    ) -> Result<(), ApiError> {
        if peer.identity == PeerIdentity::Anonymous && !self.tang_allowed(peer.addr) {
            return Err(ApiError::new(
                Reason::AddressNotAllowed,
                "this address may not use the Tang listener",
            ));
        }
        let unavailable = |e: crate::state::StateError| {
            tracing::error!(error = %e, "state store failed");
            ApiError::new(Reason::Internal, "the state store is unavailable")
        };
        let inputs = st
            .policy_inputs(&subject.device, &subject.serial)
            .map_err(unavailable)?;
        if subject.sighting {
            st.record_sighting(&Sighting {
                device_id: &subject.device,
                groups: &subject.groups,
                serial: &subject.serial,
                address: peer.addr,
                at: now(),
            })
            .map_err(unavailable)?;
        }
        let request = crate::policy::Request {
            device_id: &subject.limiter_key,
            groups: &subject.groups,
            address: peer.addr,
            store: Some(store),
        };
        crate::policy::check(&request, &inputs, &self.limiter, Instant::now()).map_err(|reason| {
            let message = match reason {
                Reason::Revoked => "this certificate is revoked",
                Reason::Disabled => "this device is disabled",
                Reason::AddressNotAllowed => "this address may not unlock",
                Reason::RateLimited => "too many requests; retry later",
                Reason::StoreNotAllowed => "this store is not granted to the device's groups",
                _ => "refused by policy",
            };
            ApiError::new(reason, message)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_and_names_routes() {
        assert_eq!(normalize("//adv///abc"), "/adv/abc");
        assert_eq!(route_name("/adv/"), "/adv");
        assert_eq!(route_name("/rec/xyz"), "/rec");
        assert_eq!(route_name("/admin/devices"), "/admin");
        assert_eq!(route_name("/../etc/passwd"), "other");
    }

    #[test]
    fn tang_errors_answer_bare() {
        let e = ApiError::tang(&crate::tang::TangError::NoKeys);
        assert!(e.bare);
        let r = e.into_response();
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(r.headers().get(hyper::header::CONTENT_TYPE).is_none());
    }

    #[test]
    fn refusals_carry_the_reason_code() {
        let r = ApiError::new(Reason::RateLimited, "slow down").into_response();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    }
}
