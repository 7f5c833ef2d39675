//! A minimal HTTP/1.1 client over TCP or TLS (tokio-rustls + hyper's http1
//! client connection), one new connection per request, with a deadline on
//! every phase: name resolution + TCP connect, the TLS handshake, and the
//! whole request/response exchange.
//!
//! Why our own and not a full client crate: the device client, the admin
//! client and the `bench storm` load generator each send one small request
//! per connection, need to tell "server unreachable" from "server refused
//! our certificate" from "too slow" (they back off differently), and must
//! not pull a second TLS stack. Errors are therefore a closed set of kinds
//! ([`HttpErrorKind`]). Response bodies are capped at [`MAX_RESPONSE_BODY`].
//!
//! ```no_run
//! # async fn demo(tls: std::sync::Arc<rustls::ClientConfig>) -> Result<(), secure_store::client::http::HttpError> {
//! use secure_store::client::http::{request, Timeouts};
//! let resp = request("https://keys.example:8443/key", "GET", None, Some(tls), &Timeouts::default()).await?;
//! assert_eq!(resp.status, 201);
//! # Ok(()) }
//! ```

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::Uri;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// Largest response body read (1 MiB); larger answers fail as [`HttpErrorKind::Protocol`].
pub const MAX_RESPONSE_BODY: usize = 1 << 20;

/// Deadlines for one request.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Name resolution and TCP connect (all addresses together).
    pub connect: Duration,
    /// The TLS handshake.
    pub handshake: Duration,
    /// Sending the request and reading the whole response.
    pub response: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(5),
            handshake: Duration::from_secs(10),
            response: Duration::from_secs(15),
        }
    }
}

impl Timeouts {
    /// The same deadline for every phase.
    pub fn all(d: Duration) -> Self {
        Timeouts {
            connect: d,
            handshake: d,
            response: d,
        }
    }
}

/// What went wrong, coarse enough to decide what to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpErrorKind {
    /// The URL is not `http(s)://host[:port]/path`, or https without a TLS config.
    BadUrl,
    /// The host name did not resolve.
    Dns,
    /// Every address refused the TCP connection.
    Refused,
    /// Other connect failure (unreachable network, reset, …).
    Connect,
    /// The TLS handshake failed or the server rejected our certificate
    /// (with TLS 1.3 that shows on the first read after the handshake).
    TlsRejected,
    /// A phase ran past its deadline.
    Timeout,
    /// The server's answer was not valid HTTP/1.1, was cut off, or too large.
    Protocol,
}

/// A failed request: its kind and one line naming the server and the cause.
#[derive(Debug, thiserror::Error)]
#[error("{target}: {detail}")]
pub struct HttpError {
    kind: HttpErrorKind,
    target: String,
    detail: String,
}

impl HttpError {
    fn new(kind: HttpErrorKind, target: &str, detail: impl Into<String>) -> Self {
        HttpError {
            kind,
            target: target.to_string(),
            detail: detail.into(),
        }
    }
    pub fn kind(&self) -> HttpErrorKind {
        self.kind
    }
}

/// One response: status, `Content-Type` if any, and the body.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

/// Sends one request on a new connection and reads the whole answer.
///
/// `url` is `http://` or `https://` (then `tls` is required; the server
/// name checked is the URL's host, an IP literal included). `body` is
/// `(content_type, bytes)`. Any status is a successful [`Response`]; only
/// transport failures are errors.
pub async fn request(
    url: &str,
    method: &str,
    body: Option<(&str, &[u8])>,
    tls: Option<Arc<rustls::ClientConfig>>,
    timeouts: &Timeouts,
) -> Result<Response, HttpError> {
    request_to(url, None, method, body, tls, timeouts).await
}

/// [`request`], connecting to `connect_to` (in turn) instead of resolving
/// the URL's host, which stays the TLS server name and `Host` (an address
/// found by mDNS for a name only the certificate knows).
pub async fn request_to(
    url: &str,
    connect_to: Option<&[SocketAddr]>,
    method: &str,
    body: Option<(&str, &[u8])>,
    tls: Option<Arc<rustls::ClientConfig>>,
    timeouts: &Timeouts,
) -> Result<Response, HttpError> {
    let target = Target::parse(url)?;
    if target.https && tls.is_none() {
        return Err(HttpError::new(
            HttpErrorKind::BadUrl,
            &target.display,
            "https needs a TLS client configuration",
        ));
    }
    let tcp = connect(&target, connect_to, timeouts.connect).await?;
    if let Some(tls) = tls.filter(|_| target.https) {
        let name = match target.host.parse::<IpAddr>() {
            Ok(ip) => ServerName::IpAddress(ip.into()),
            Err(_) => ServerName::try_from(target.host.clone()).map_err(|_| {
                HttpError::new(HttpErrorKind::BadUrl, &target.display, "invalid host name")
            })?,
        };
        let connector = tokio_rustls::TlsConnector::from(tls);
        let stream = tokio::time::timeout(timeouts.handshake, connector.connect(name, tcp))
            .await
            .map_err(|_| {
                HttpError::new(
                    HttpErrorKind::Timeout,
                    &target.display,
                    "TLS handshake timed out",
                )
            })?
            .map_err(|e| {
                HttpError::new(
                    HttpErrorKind::TlsRejected,
                    &target.display,
                    format!("TLS handshake failed: {e}"),
                )
            })?;
        exchange(stream, &target, method, body, timeouts.response).await
    } else {
        exchange(tcp, &target, method, body, timeouts.response).await
    }
}

/// Parsed `scheme://host:port/path?query`.
struct Target {
    https: bool,
    host: String,
    port: u16,
    path_and_query: String,
    authority: String,
    display: String,
}

impl Target {
    fn parse(url: &str) -> Result<Target, HttpError> {
        let bad = |d: &str| HttpError::new(HttpErrorKind::BadUrl, url, d.to_string());
        let uri: Uri = url.parse().map_err(|_| bad("not a URL"))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(bad("the URL must start with http:// or https://")),
        };
        let authority = uri.authority().ok_or_else(|| bad("no host in the URL"))?;
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        if host.is_empty() {
            return Err(bad("no host in the URL"));
        }
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        let path_and_query = uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".to_string());
        Ok(Target {
            https,
            display: format!("{}://{}", if https { "https" } else { "http" }, authority),
            authority: authority.as_str().to_string(),
            host,
            port,
            path_and_query,
        })
    }
}

async fn connect(
    target: &Target,
    connect_to: Option<&[SocketAddr]>,
    deadline: Duration,
) -> Result<TcpStream, HttpError> {
    let work = async {
        let addrs: Vec<SocketAddr> = match (connect_to, target.host.parse::<IpAddr>()) {
            (Some(given), _) => given.to_vec(),
            (None, Ok(ip)) => vec![SocketAddr::new(ip, target.port)],
            (None, Err(_)) => tokio::net::lookup_host((target.host.as_str(), target.port))
                .await
                .map_err(|e| {
                    HttpError::new(
                        HttpErrorKind::Dns,
                        &target.display,
                        format!("cannot resolve {}: {e}", target.host),
                    )
                })?
                .collect(),
        };
        if addrs.is_empty() {
            return Err(HttpError::new(
                HttpErrorKind::Dns,
                &target.display,
                format!("{} has no addresses", target.host),
            ));
        }
        let mut last = None;
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    return Ok(s);
                }
                Err(e) => last = Some((addr, e)),
            }
        }
        let (addr, e) = last.expect("at least one address was tried");
        let kind = if e.kind() == std::io::ErrorKind::ConnectionRefused {
            HttpErrorKind::Refused
        } else {
            HttpErrorKind::Connect
        };
        Err(HttpError::new(
            kind,
            &target.display,
            format!("cannot connect to {addr}: {e}"),
        ))
    };
    tokio::time::timeout(deadline, work)
        .await
        .map_err(|_| HttpError::new(HttpErrorKind::Timeout, &target.display, "connect timed out"))?
}

async fn exchange<S>(
    io: S,
    target: &Target,
    method: &str,
    body: Option<(&str, &[u8])>,
    deadline: Duration,
) -> Result<Response, HttpError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let disp = &target.display;
    let mut builder = hyper::Request::builder()
        .method(method)
        .uri(target.path_and_query.as_str())
        .header(hyper::header::HOST, target.authority.as_str())
        .header(
            hyper::header::USER_AGENT,
            concat!("secure-store/", env!("CARGO_PKG_VERSION")),
        );
    let payload = match body {
        Some((content_type, bytes)) => {
            builder = builder.header(hyper::header::CONTENT_TYPE, content_type);
            Bytes::copy_from_slice(bytes)
        }
        None => Bytes::new(),
    };
    let req = builder
        .body(Full::new(payload))
        .map_err(|e| HttpError::new(HttpErrorKind::BadUrl, disp, format!("bad request: {e}")))?;
    let work = async {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(|e| classify(disp, &e))?;
        let driver = tokio::spawn(conn);
        let resp = match sender.send_request(req).await {
            Ok(r) => r,
            Err(e) => {
                // When the connection dies (a TLS alert after the
                // handshake: our certificate was refused), the request
                // only sees "canceled"; the driver has the cause.
                if let Ok(Ok(Err(cause))) =
                    tokio::time::timeout(Duration::from_secs(1), driver).await
                {
                    return Err(classify(disp, &cause));
                }
                return Err(classify(disp, &e));
            }
        };
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get(hyper::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = Limited::new(resp.into_body(), MAX_RESPONSE_BODY)
            .collect()
            .await
            .map_err(|e| match e.downcast::<hyper::Error>() {
                Ok(he) => classify(disp, &he),
                Err(other) => HttpError::new(HttpErrorKind::Protocol, disp, other.to_string()),
            })?
            .to_bytes()
            .to_vec();
        drop(sender);
        driver.abort();
        Ok(Response {
            status,
            content_type,
            body,
        })
    };
    tokio::time::timeout(deadline, work)
        .await
        .map_err(|_| HttpError::new(HttpErrorKind::Timeout, disp, "no complete response in time"))?
}

/// A hyper error: a TLS alert underneath (certificate refused) or a
/// protocol failure.
fn classify(target: &str, err: &hyper::Error) -> HttpError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(err);
    while let Some(e) = source {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return HttpError::new(
                HttpErrorKind::TlsRejected,
                target,
                format!("the server refused the TLS session: {tls}"),
            );
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if let Some(tls) = io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                return HttpError::new(
                    HttpErrorKind::TlsRejected,
                    target,
                    format!("the server refused the TLS session: {tls}"),
                );
            }
        }
        source = e.source();
    }
    HttpError::new(
        HttpErrorKind::Protocol,
        target,
        format!("HTTP exchange failed: {err}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn parses_urls() {
        let t = Target::parse("https://[::1]:8443/adv?x=1").unwrap();
        assert!(t.https);
        assert_eq!(t.host, "::1");
        assert_eq!(t.port, 8443);
        assert_eq!(t.path_and_query, "/adv?x=1");
        let t = Target::parse("http://example.org").unwrap();
        assert_eq!((t.port, t.path_and_query.as_str()), (80, "/"));
        assert_eq!(
            Target::parse("ftp://x/").err().unwrap().kind(),
            HttpErrorKind::BadUrl
        );
    }

    #[test]
    fn plain_http_round_trip() {
        rt().block_on(async {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = l.local_addr().unwrap();
            tokio::spawn(async move {
                let (mut s, _) = l.accept().await.unwrap();
                let mut buf = vec![0u8; 4096];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = s.read(&mut buf).await.unwrap();
                    got.extend_from_slice(&buf[..n]);
                }
                s.write_all(b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
                    .await
                    .unwrap();
            });
            let r = request(&format!("http://{addr}/key"), "GET", None, None, &Timeouts::default())
                .await
                .unwrap();
            assert_eq!(r.status, 201);
            assert_eq!(r.content_type.as_deref(), Some("application/json"));
            assert_eq!(r.body, b"{}");
        });
    }

    #[test]
    fn refused_and_timeout_kinds() {
        rt().block_on(async {
            // A port that was just free: connection refused.
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = l.local_addr().unwrap();
            drop(l);
            let e = request(
                &format!("http://{addr}/"),
                "GET",
                None,
                None,
                &Timeouts::default(),
            )
            .await
            .unwrap_err();
            assert_eq!(e.kind(), HttpErrorKind::Refused);

            // A server that accepts and never answers: timeout.
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = l.local_addr().unwrap();
            tokio::spawn(async move {
                let (_s, _) = l.accept().await.unwrap();
                tokio::time::sleep(Duration::from_secs(30)).await;
            });
            let e = request(
                &format!("http://{addr}/"),
                "GET",
                None,
                None,
                &Timeouts::all(Duration::from_millis(200)),
            )
            .await
            .unwrap_err();
            assert_eq!(e.kind(), HttpErrorKind::Timeout);

            // https without a TLS configuration.
            let e = request(
                "https://127.0.0.1:1/",
                "GET",
                None,
                None,
                &Timeouts::default(),
            )
            .await
            .unwrap_err();
            assert_eq!(e.kind(), HttpErrorKind::BadUrl);
        });
    }
}
