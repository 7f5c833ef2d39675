//! `secure-store run` without a server URL (or with `--discover`): one
//! network attempt through mDNS. Each attempt browses
//! `_secure-store._tcp.local` ([`crate::discovery::browse`]) and tries the
//! servers found in turn, like a `--server` list.
//!
//! A discovered server is just an address: the URL is
//! `https://SRV-TARGET:PORT` with the TLS server name = the SRV target
//! (which the server's certificate must contain) and the connection goes
//! to the A records of the answer. The server certificate is still
//! verified against the fleet CA and the server still verifies ours, so a
//! spoofed answer can at worst waste an attempt.

use std::time::Duration;

use super::recover::Client;
use super::unlock::{Attempt, AttemptError, FailureKind};

/// The pseudo server name the retry loop logs for a discovery attempt.
pub const PSEUDO_SERVER: &str = "mdns:_secure-store._tcp.local";

/// How long one browse waits for answers at most: the per-request
/// timeout, capped at 3 s (answers come within milliseconds on a LAN).
pub fn browse_wait(timeout: Duration) -> Duration {
    timeout.min(Duration::from_secs(3))
}

/// Browses, then runs `one(client, url)` against every server found, until
/// one succeeds or refuses for good. No answer is a [`FailureKind::Dns`]
/// failure, retried like an unreachable server.
pub fn attempt<T>(
    client: &Client,
    wait: Duration,
    one: &mut dyn FnMut(&Client, &str) -> Attempt<T>,
) -> Attempt<T> {
    let found = match crate::discovery::browse(wait) {
        Ok(found) => found,
        Err(e) => {
            return Attempt::Failed(AttemptError::new(
                FailureKind::Dns,
                format!("mDNS discovery failed: {e}"),
            ))
        }
    };
    if found.is_empty() {
        return Attempt::Failed(AttemptError::new(
            FailureKind::Dns,
            format!(
                "no {} server answered on mDNS within {:.1} s",
                crate::discovery::SERVICE,
                wait.as_secs_f64()
            ),
        ));
    }
    let mut last = None;
    for server in found {
        let url = server.url();
        let addrs = server.socket_addrs();
        tracing::info!(instance = %server.instance, url = %url,
            addrs = %addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(","),
            "mDNS: found a server");
        let c = if addrs.is_empty() {
            client.clone()
        } else {
            client.at(addrs)
        };
        match one(&c, &url) {
            Attempt::Failed(e) => {
                let e = AttemptError::new(e.kind, format!("{url} (found by mDNS): {}", e.detail));
                if e.kind.is_final() {
                    return Attempt::Failed(e);
                }
                tracing::warn!(server = %url, reason = %e.kind.code(), "unlock failed: {e}");
                last = Some(e);
            }
            other => return other,
        }
    }
    Attempt::Failed(last.unwrap_or_else(|| AttemptError::new(FailureKind::Dns, "no server")))
}
