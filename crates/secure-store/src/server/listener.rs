//! The accept loops: mutual TLS (tokio-rustls) and the optional plain-HTTP
//! Tang listener, each connection served by hyper's HTTP/1.1 server.
//!
//! Every phase has a deadline (the tokio-rustls server example's lesson:
//! IoT links stall, the key server must not):
//! - TCP accept → end of the TLS handshake: [`Limits::handshake_timeout`](super::Limits::handshake_timeout)
//!   (frees connections that never send a byte);
//! - each request head, and an idle keep-alive connection waiting for the
//!   next one: [`Limits::header_timeout`](super::Limits::header_timeout) (hyper's header read timeout;
//!   cuts off slow-loris clients);
//! - each request body: [`Limits::body_timeout`](super::Limits::body_timeout) (in the handlers);
//! - each write that makes no progress: [`Limits::write_timeout`](super::Limits::write_timeout)
//!   ([`TimedIo`]).
//!
//! Open connections are capped by a semaphore ([`Limits::max_connections`](super::Limits::max_connections));
//! a connection beyond the cap is closed at once instead of queued. Request
//! heads are limited to [`Limits::max_header_bytes`](super::Limits::max_header_bytes) (hyper answers 431).
//! On shutdown the listeners close, idle keep-alive connections are told
//! to finish, and in-flight requests get [`Limits::shutdown_grace`](super::Limits::shutdown_grace).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;

use super::routes::{self, audit};
use super::{App, Peer, PeerIdentity};
use crate::state::Decision;

/// The bound sockets the server serves.
#[derive(Debug)]
pub struct Listeners {
    /// Mutual TLS: every route.
    pub tls: TcpListener,
    /// Plain HTTP, Tang routes only, restricted to `--tang-allow` networks.
    pub tang: Option<TcpListener>,
}

/// Maps the verified client certificate (end entity first) to an identity.
pub type Identify = Arc<dyn Fn(&CertificateDer<'_>) -> PeerIdentity + Send + Sync>;

/// Serves until `shutdown` resolves, then drains (see the module docs).
pub async fn serve(
    app: Arc<App>,
    listeners: Listeners,
    tls: Arc<rustls::ServerConfig>,
    identify: Identify,
    shutdown: impl Future<Output = ()>,
) {
    let max = app.limits.max_connections.max(1);
    let permits = Arc::new(Semaphore::new(max));
    let (stop_tx, stop_rx) = watch::channel(false);
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let Listeners {
        tls: tls_listener,
        tang,
    } = listeners;
    tokio::pin!(shutdown);
    loop {
        let (stream, addr, plain) = tokio::select! {
            _ = &mut shutdown => break,
            r = tls_listener.accept() => match r {
                Ok((s, a)) => (s, a, false),
                Err(e) => { accept_failed(e).await; continue; }
            },
            r = accept_optional(tang.as_ref()) => match r {
                Ok((s, a)) => (s, a, true),
                Err(e) => { accept_failed(e).await; continue; }
            },
        };
        // An IPv4 client on a dual-stack socket is its IPv4 address.
        let addr = SocketAddr::new(addr.ip().to_canonical(), addr.port());
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            app.metrics.connection_rejected();
            tracing::debug!(%addr, "connection cap reached; closing");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let stop = stop_rx.clone();
        if plain {
            tokio::spawn(async move {
                let _guard = ConnGuard::new(&app, permit);
                let peer = Peer {
                    identity: PeerIdentity::Anonymous,
                    addr: addr.ip(),
                };
                serve_http(app.clone(), stream, peer, stop).await;
            });
        } else {
            let acceptor = acceptor.clone();
            let identify = identify.clone();
            tokio::spawn(async move {
                let _guard = ConnGuard::new(&app, permit);
                tls_connection(app.clone(), acceptor, identify, stream, addr, stop).await;
            });
        }
    }
    drop(tls_listener);
    drop(tang);
    let _ = stop_tx.send(true);
    let grace = app.limits.shutdown_grace;
    let drained = tokio::time::timeout(grace, permits.acquire_many(max as u32)).await;
    match drained {
        Ok(_) => tracing::info!("all connections closed"),
        Err(_) => tracing::warn!(
            open = app.metrics.open_connections(),
            "shutdown grace period over; closing the remaining connections"
        ),
    }
}

async fn accept_optional(l: Option<&TcpListener>) -> io::Result<(TcpStream, SocketAddr)> {
    match l {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

/// Out of file descriptors or similar: log and breathe instead of spinning.
async fn accept_failed(e: io::Error) {
    tracing::warn!(error = %e, "accept failed");
    tokio::time::sleep(Duration::from_millis(50)).await;
}

/// Counts the connection as open while it lives and returns its permit.
struct ConnGuard {
    app: Arc<App>,
    _permit: OwnedSemaphorePermit,
}

impl ConnGuard {
    fn new(app: &Arc<App>, permit: OwnedSemaphorePermit) -> Self {
        app.metrics.connection_opened();
        ConnGuard {
            app: app.clone(),
            _permit: permit,
        }
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.app.metrics.connection_closed();
    }
}

async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

async fn tls_connection(
    app: Arc<App>,
    acceptor: tokio_rustls::TlsAcceptor,
    identify: Identify,
    stream: TcpStream,
    addr: SocketAddr,
    stop: watch::Receiver<bool>,
) {
    let deadline = tokio::time::Instant::now() + app.limits.handshake_timeout;
    // A TLS connection starts with a handshake record (0x16). A plain-HTTP
    // client on this port gets one line telling it so, then the door.
    let mut first = [0u8; 1];
    match tokio::time::timeout_at(deadline, stream.peek(&mut first)).await {
        Err(_) => {
            app.metrics.handshake_failure("timeout");
            return;
        }
        Ok(Ok(0)) | Ok(Err(_)) => {
            app.metrics.handshake_failure("eof");
            return;
        }
        Ok(Ok(_)) if first[0] != 0x16 => {
            app.metrics.handshake_failure("not_tls");
            if first[0].is_ascii_uppercase() {
                let mut stream = stream;
                // Take what already arrived, so closing does not reset
                // the connection before the client reads the answer.
                let mut sink = [0u8; 4096];
                for _ in 0..4 {
                    match stream.try_read(&mut sink) {
                        Ok(n) if n > 0 => continue,
                        _ => break,
                    }
                }
                let _ = tokio::time::timeout(app.limits.write_timeout, async {
                    stream.write_all(PLAIN_HTTP_ANSWER).await?;
                    stream.shutdown().await
                })
                .await;
            }
            return;
        }
        Ok(Ok(_)) => {}
    }
    let handshake = tokio::time::timeout_at(deadline, acceptor.accept(stream));
    let result = tokio::select! {
        r = handshake => r,
        _ = stopped(stop.clone()) => return,
    };
    let tls = match result {
        Err(_) => {
            app.metrics.handshake_failure("timeout");
            tracing::debug!(%addr, "TLS handshake timed out");
            return;
        }
        Ok(Err(e)) => {
            let kind = handshake_failure_kind(&e);
            app.metrics.handshake_failure(kind);
            tracing::debug!(%addr, kind, error = %e, "TLS handshake failed");
            if is_certificate_refusal(kind) {
                let peer = Peer {
                    identity: PeerIdentity::Unrecognized,
                    addr: addr.ip(),
                };
                let reason = format!("tls_{kind}");
                let _ = audit(
                    &app,
                    &peer,
                    "TLS handshake",
                    None,
                    Decision::Refused,
                    &reason,
                )
                .await;
            }
            return;
        }
        Ok(Ok(tls)) => tls,
    };
    let identity = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|certs| certs.first())
        .map(|cert| identify(cert))
        .unwrap_or(PeerIdentity::Unrecognized);
    let peer = Peer {
        identity,
        addr: addr.ip(),
    };
    serve_http(app, tls, peer, stop).await;
}

/// What a plain-HTTP request on the TLS port gets.
const PLAIN_HTTP_ANSWER: &[u8] = b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: 54\r\n\r\nThis port speaks HTTPS and needs a client certificate\n";

/// The kind label of a failed handshake (metrics, audit `tls_<kind>`).
pub fn handshake_failure_kind(e: &io::Error) -> &'static str {
    use rustls::CertificateError as C;
    let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) else {
        return match e.kind() {
            io::ErrorKind::UnexpectedEof => "eof",
            io::ErrorKind::InvalidData => "not_tls",
            _ => "io",
        };
    };
    match tls {
        rustls::Error::InvalidCertificate(c) => match c {
            C::UnknownIssuer => "unknown_ca",
            C::Expired | C::ExpiredContext { .. } => "expired",
            C::NotValidYet | C::NotValidYetContext { .. } => "not_yet_valid",
            C::Revoked => "revoked_certificate",
            _ => "bad_certificate",
        },
        rustls::Error::NoCertificatesPresented => "no_certificate",
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => "not_tls",
        rustls::Error::PeerIncompatible(_) => "protocol",
        rustls::Error::AlertReceived(_) => "client_alert",
        _ => "protocol",
    }
}

fn is_certificate_refusal(kind: &str) -> bool {
    matches!(
        kind,
        "unknown_ca"
            | "expired"
            | "not_yet_valid"
            | "revoked_certificate"
            | "bad_certificate"
            | "no_certificate"
    )
}

async fn serve_http<S>(app: Arc<App>, io: S, peer: Peer, stop: watch::Receiver<bool>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let limits = &app.limits;
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192))
        .max_header_size(limits.max_header_bytes)
        .auto_date_header(false)
        .keep_alive(true);
    let io = TimedIo::new(io, limits.write_timeout);
    let peer = Arc::new(peer);
    let svc_app = app.clone();
    let svc = service_fn(move |req| routes::service(svc_app.clone(), peer.clone(), req));
    let conn = builder.serve_connection(TokioIo::new(io), svc);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        }
        _ = stopped(stop) => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// A stream whose writes fail with `TimedOut` when they make no progress
/// for `limit` (a peer that stops reading cannot hold the connection).
pub struct TimedIo<S> {
    inner: S,
    limit: Duration,
    write_deadline: Option<Pin<Box<Sleep>>>,
}

impl<S> std::fmt::Debug for TimedIo<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimedIo")
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl<S> TimedIo<S> {
    pub fn new(inner: S, limit: Duration) -> Self {
        TimedIo {
            inner,
            limit,
            write_deadline: None,
        }
    }

    fn stalled(&mut self, cx: &mut Context<'_>) -> bool {
        let limit = self.limit;
        let sleep = self
            .write_deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        sleep.as_mut().poll(cx).is_ready()
    }

    fn track<T>(&mut self, cx: &mut Context<'_>, r: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        match r {
            Poll::Pending => {
                if self.stalled(cx) {
                    self.write_deadline = None;
                    Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "write timed out",
                    )))
                } else {
                    Poll::Pending
                }
            }
            ready => {
                self.write_deadline = None;
                ready
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for TimedIo<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for TimedIo<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.track(cx, r)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_flush(cx);
        self.track(cx, r)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.track(cx, r)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.track(cx, r)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[test]
    fn a_stalled_write_times_out() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            // The other end never reads: the pipe fills, the write stalls.
            let (ours, _theirs) = tokio::io::duplex(1024);
            let mut io = TimedIo::new(ours, Duration::from_millis(100));
            let err = io.write_all(&vec![0u8; 1 << 20]).await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        });
    }

    #[test]
    fn handshake_failures_are_named() {
        let tls = |e: rustls::Error| io::Error::new(io::ErrorKind::InvalidData, e);
        assert_eq!(
            handshake_failure_kind(&tls(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer
            ))),
            "unknown_ca"
        );
        assert_eq!(
            handshake_failure_kind(&tls(rustls::Error::InvalidCertificate(
                rustls::CertificateError::Expired
            ))),
            "expired"
        );
        assert_eq!(
            handshake_failure_kind(&tls(rustls::Error::NoCertificatesPresented)),
            "no_certificate"
        );
        assert_eq!(
            handshake_failure_kind(&io::Error::from(io::ErrorKind::UnexpectedEof)),
            "eof"
        );
        assert!(is_certificate_refusal("expired") && !is_certificate_refusal("timeout"));
    }
}
