//! Prometheus metrics of the Store Server, rendered in the text exposition
//! format (version 0.0.4) by [`Metrics::render`]:
//!
//! - `secure_store_requests_total{endpoint,outcome,reason}`: every answered
//!   request; `endpoint` is the route name (never the raw path, so a client
//!   cannot blow up the label set), `outcome` is `allowed`/`refused`,
//!   `reason` is `ok` or an [`crate::api::Reason`] code;
//! - `secure_store_handshake_failures_total{kind}`: TLS handshakes that did
//!   not complete (`timeout`, `not_tls`, `unknown_ca`, `expired`,
//!   `bad_certificate`, `no_certificate`, `protocol`, `io`);
//! - `secure_store_request_duration_seconds{endpoint}`: a histogram from
//!   request head to response;
//! - `secure_store_open_connections` and `secure_store_connections_rejected_total`
//!   (closed at once because the connection cap was reached).
//!
//! Counters are plain atomics or a mutex-guarded map over a small, fixed
//! label space: a request costs one short lock.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Histogram bucket upper bounds, seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

#[derive(Debug, Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// All counters of one server.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, &'static str, &'static str), u64>>,
    handshakes: Mutex<BTreeMap<&'static str, u64>>,
    latency: Mutex<BTreeMap<&'static str, Histogram>>,
    open: AtomicI64,
    rejected: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Metrics {
    /// One answered request.
    pub fn request(
        &self,
        endpoint: &'static str,
        allowed: bool,
        reason: &'static str,
        took: Duration,
    ) {
        let outcome = if allowed { "allowed" } else { "refused" };
        *lock(&self.requests)
            .entry((endpoint, outcome, reason))
            .or_default() += 1;
        let secs = took.as_secs_f64();
        let mut lat = lock(&self.latency);
        let h = lat.entry(endpoint).or_default();
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                h.counts[i] += 1;
            }
        }
        h.count += 1;
        h.sum += secs;
    }

    /// One TLS handshake that did not complete.
    pub fn handshake_failure(&self, kind: &'static str) {
        *lock(&self.handshakes).entry(kind).or_default() += 1;
    }

    pub fn connection_opened(&self) {
        self.open.fetch_add(1, Ordering::Relaxed);
    }
    pub fn connection_closed(&self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }
    pub fn connection_rejected(&self) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
    }
    pub fn open_connections(&self) -> i64 {
        self.open.load(Ordering::Relaxed)
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        out.push_str("# HELP secure_store_requests_total Answered requests by endpoint, outcome and reason.\n");
        out.push_str("# TYPE secure_store_requests_total counter\n");
        for ((e, o, r), n) in lock(&self.requests).iter() {
            let _ = writeln!(
                out,
                "secure_store_requests_total{{endpoint=\"{e}\",outcome=\"{o}\",reason=\"{r}\"}} {n}"
            );
        }
        out.push_str(
            "# HELP secure_store_handshake_failures_total TLS handshakes that failed, by kind.\n",
        );
        out.push_str("# TYPE secure_store_handshake_failures_total counter\n");
        for (k, n) in lock(&self.handshakes).iter() {
            let _ = writeln!(
                out,
                "secure_store_handshake_failures_total{{kind=\"{k}\"}} {n}"
            );
        }
        out.push_str(
            "# HELP secure_store_request_duration_seconds Time from request head to response.\n",
        );
        out.push_str("# TYPE secure_store_request_duration_seconds histogram\n");
        for (e, h) in lock(&self.latency).iter() {
            for (i, b) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "secure_store_request_duration_seconds_bucket{{endpoint=\"{e}\",le=\"{b}\"}} {}",
                    h.counts[i]
                );
            }
            let _ = writeln!(
                out,
                "secure_store_request_duration_seconds_bucket{{endpoint=\"{e}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "secure_store_request_duration_seconds_sum{{endpoint=\"{e}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "secure_store_request_duration_seconds_count{{endpoint=\"{e}\"}} {}",
                h.count
            );
        }
        out.push_str("# HELP secure_store_open_connections Connections open now.\n");
        out.push_str("# TYPE secure_store_open_connections gauge\n");
        let _ = writeln!(
            out,
            "secure_store_open_connections {}",
            self.open_connections()
        );
        out.push_str("# HELP secure_store_connections_rejected_total Connections closed at once because the cap was reached.\n");
        out.push_str("# TYPE secure_store_connections_rejected_total counter\n");
        let _ = writeln!(
            out,
            "secure_store_connections_rejected_total {}",
            self.rejected.load(Ordering::Relaxed)
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histogram() {
        let m = Metrics::default();
        m.request("/rec", true, "ok", Duration::from_millis(3));
        m.request("/rec", false, "revoked", Duration::from_millis(1));
        m.handshake_failure("unknown_ca");
        m.connection_opened();
        let text = m.render();
        assert!(text.contains(
            "secure_store_requests_total{endpoint=\"/rec\",outcome=\"allowed\",reason=\"ok\"} 1"
        ));
        assert!(text.contains("secure_store_requests_total{endpoint=\"/rec\",outcome=\"refused\",reason=\"revoked\"} 1"));
        assert!(text.contains("secure_store_handshake_failures_total{kind=\"unknown_ca\"} 1"));
        assert!(text.contains(
            "secure_store_request_duration_seconds_bucket{endpoint=\"/rec\",le=\"0.005\"} 2"
        ));
        assert!(text.contains(
            "secure_store_request_duration_seconds_bucket{endpoint=\"/rec\",le=\"0.001\"} 1"
        ));
        assert!(text.contains("secure_store_request_duration_seconds_count{endpoint=\"/rec\"} 2"));
        assert!(text.contains("secure_store_open_connections 1"));
    }
}
