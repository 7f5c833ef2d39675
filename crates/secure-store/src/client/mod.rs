//! The device client: everything `secure-store run` does between boot and
//! the app, and after it.
//!
//! - [`identity`]: the TLS client certificate, from base64 env or files, in memory only;
//! - [`unlock`]: where the store key comes from (envelope via `/rec`, legacy
//!   `/key`, local key, env hash) and the retry loop, timed by [`backoff`];
//! - [`discover`]: one attempt through mDNS ([`crate::discovery`]) when no URL is given or `--discover`;
//! - [`recover`]: one network attempt (envelope via `/rec`, legacy `/key`, `/adv`) over [`http`];
//! - [`env`](mod@env): `ENCRYPTED_*` values decrypted into the app's environment only;
//! - [`materialize`]: the store decrypted into a tmpfs folder, removed on exit;
//! - [`supervise`]: the app as a child, signals forwarded, zombies reaped;
//! - [`sys`]: the few system calls `std` lacks (all of the client's `unsafe`).
//!
//! See docs/CLIENT.md for the user's view and the exit codes.

pub mod backoff;
pub mod discover;
pub mod env;
pub mod http;
pub mod identity;
pub mod materialize;
pub mod recover;
pub mod supervise;
pub mod sys;
pub mod unlock;
