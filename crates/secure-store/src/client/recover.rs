//! One network attempt at the store key, for [`super::unlock::retry`]:
//! the envelope through `POST {server}/rec/{kid}` (the clevis tang pin,
//! [`crate::tang::clevis::unseal`]), or the legacy `GET {server}/key`. Also
//! the advertisement fetch `seal --server` uses.
//!
//! Every request goes through [`super::http`] with a time limit on each
//! phase; its error kinds become [`FailureKind`]s, and a refusal's JSON
//! code (`crate::api`) decides whether retrying makes sense. An `https`
//! URL needs the client TLS configuration; a plain `http` one (a stock
//! Tang listener) goes without.

use std::sync::Arc;

use base64::Engine;
use zeroize::Zeroizing;

use super::http::{self, HttpError, HttpErrorKind, Timeouts};
use super::unlock::{self, Attempt, AttemptError, FailureKind};
use crate::secret::StoreKey;
use crate::tang::clevis::{self, RecRequest, UnsealError};

/// The client side of a connection: TLS (for https URLs) and time limits.
#[derive(Clone)]
pub struct Client {
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub timeouts: Timeouts,
    runtime: Arc<tokio::runtime::Runtime>,
    /// Addresses to connect to instead of resolving the URL's host (mDNS).
    connect_to: Option<Arc<[std::net::SocketAddr]>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("tls", &self.tls.is_some())
            .field("timeouts", &self.timeouts)
            .finish()
    }
}

impl Client {
    /// A client with its own single-threaded runtime (dropped with it, so
    /// no runtime thread outlives the unlock).
    pub fn new(
        tls: Option<Arc<rustls::ClientConfig>>,
        timeouts: Timeouts,
    ) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(Client {
            tls,
            timeouts,
            runtime: Arc::new(runtime),
            connect_to: None,
        })
    }

    /// The same client, connecting to `addrs` whatever the URL's host
    /// (which stays the TLS server name): a server found by mDNS.
    pub fn at(&self, addrs: Vec<std::net::SocketAddr>) -> Client {
        Client {
            connect_to: Some(addrs.into()),
            ..self.clone()
        }
    }

    /// One request; errors classified.
    pub fn request(
        &self,
        url: &str,
        method: &str,
        body: Option<(&str, &[u8])>,
    ) -> Result<http::Response, AttemptError> {
        if url.starts_with("https://") && self.tls.is_none() {
            return Err(AttemptError::new(
                FailureKind::TlsRejected,
                format!("{url}: https needs a client certificate (MTLS_CERT/MTLS_KEY/MTLS_CA or --cert/--key/--ca)"),
            ));
        }
        self.runtime
            .block_on(http::request_to(
                url,
                self.connect_to.as_deref(),
                method,
                body,
                self.tls.clone(),
                &self.timeouts,
            ))
            .map_err(|e| from_http(&e))
    }
}

/// Maps the HTTP client's error kinds onto ours.
pub fn from_http(error: &HttpError) -> AttemptError {
    let kind = match error.kind() {
        HttpErrorKind::Dns => FailureKind::Dns,
        HttpErrorKind::Refused => FailureKind::Refused,
        HttpErrorKind::Connect => FailureKind::Connect,
        HttpErrorKind::TlsRejected => FailureKind::TlsRejected,
        HttpErrorKind::Timeout => FailureKind::Timeout,
        HttpErrorKind::Protocol | HttpErrorKind::BadUrl => FailureKind::Protocol,
    };
    AttemptError::new(kind, error.to_string())
}

fn join(base: &str, path: &str) -> String {
    format!(
        "{}/{}",
        base.trim_end_matches('/'),
        path.trim_start_matches('/')
    )
}

/// `clevis.tang.url` of an envelope, read without verifying anything: it
/// only names where to send the request (and what to log).
pub fn envelope_url(jwe: &str) -> Option<String> {
    let header = jwe.split('.').next()?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header.trim_end_matches('='))
        .ok()?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    value
        .get("clevis")?
        .get("tang")?
        .get("url")?
        .as_str()
        .map(str::to_owned)
}

/// The envelope unlocked through `server` (a base URL; `/rec/{kid}` is
/// appended). The recovered plaintext must be a valid store key.
pub fn envelope(client: &Client, jwe: &str, server: &str) -> Attempt<StoreKey> {
    let mut rec = |req: &RecRequest| -> Result<Vec<u8>, AttemptError> {
        let url = join(server, &format!("rec/{}", req.kid));
        let resp = client.request(&url, "POST", Some(("application/jwk+json", &req.body)))?;
        if resp.status != 200 {
            return Err(unlock::classify_refusal(resp.status, &resp.body));
        }
        Ok(resp.body)
    };
    match clevis::unseal(jwe, &mut rec) {
        Ok(plain) => match std::str::from_utf8(&plain).ok().map(StoreKey::new) {
            Some(Ok(key)) => Attempt::Ok(key),
            _ => Attempt::Fatal("the envelope opened, but what it holds is not a store key".into()),
        },
        Err(UnsealError::Server(e)) => Attempt::Failed(e),
        Err(UnsealError::BadServerReply(detail)) => Attempt::Failed(AttemptError::new(
            FailureKind::Protocol,
            format!("{server}: bad reply: {detail}"),
        )),
        Err(e @ (UnsealError::BadEnvelope(_) | UnsealError::NotTangPin(_))) => {
            Attempt::Fatal(format!("the envelope: {e}"))
        }
        Err(e @ UnsealError::Decryption) => Attempt::Fatal(format!(
            "the envelope did not decrypt with the key {server} holds: {e}"
        )),
    }
}

/// The legacy `GET {server}/key`.
pub fn legacy(client: &Client, server: &str) -> Attempt<StoreKey> {
    match client.request(&join(server, "key"), "GET", None) {
        Ok(resp) => {
            let body = Zeroizing::new(resp.body);
            match unlock::parse_legacy(resp.status, &body) {
                Ok(key) => Attempt::Ok(key),
                Err(e) => Attempt::Failed(e),
            }
        }
        Err(e) => Attempt::Failed(e),
    }
}

/// `GET {server}/adv` (or `/adv/{thp}`): the signed advertisement.
pub fn advertisement(
    client: &Client,
    server: &str,
    thp: Option<&str>,
) -> Result<Vec<u8>, AttemptError> {
    let path = match thp {
        Some(thp) => format!("adv/{thp}"),
        None => "adv".to_owned(),
    };
    let resp = client.request(&join(server, &path), "GET", None)?;
    if resp.status != 200 {
        return Err(unlock::classify_refusal(resp.status, &resp.body));
    }
    Ok(resp.body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_url_reads_the_protected_header() {
        let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"alg":"ECDH-ES","clevis":{"pin":"tang","tang":{"url":"https://k:1"}}}"#);
        assert_eq!(
            envelope_url(&format!("{header}..a.b.c")).as_deref(),
            Some("https://k:1")
        );
        assert_eq!(envelope_url("junk"), None);
        assert_eq!(join("https://a:1/", "/rec/x"), "https://a:1/rec/x");
    }
}
