//! Secure Store: network-bound encryption for IoT fleets.
//!
//! This crate is the `secure-store` binary and everything in it that does
//! I/O. The byte formats live in the pure `ssformat` crate
//! (`crates/format`). Layout (see `shared/design/ARCHITECTURE.md` §7):
//!
//! - [`cli`]: argument parsing, the only place that prints results and
//!   chooses exit codes;
//! - [`crypt`]: encrypted stores on disk (rclone crypt folders), streaming
//!   and parallel;
//! - [`envfile`]: dotenv files and `ENCRYPTED_*` variables;
//! - [`secret`]: the store key and other secrets as zeroizing newtypes;
//! - [`rng`]: the operating system's random numbers;
//! - [`pki`]: the fleet CA and certificates; [`tang`]: Tang keys and the
//!   clevis tang pin; [`state`]: the server's state store; [`api`]: wire
//!   types; [`server`]: the Store Server; [`client`]: the device client;
//!   [`discovery`]: mDNS advertisement and browsing of `_secure-store._tcp`;
//!   [`mount`]: the decrypted view of a store (FUSE).

pub mod api;
pub mod cli;
pub mod client;
pub mod crypt;
pub mod discovery;
pub mod envfile;
pub mod logging;
pub mod mount;
pub mod pki;
pub mod policy;
pub mod rng;
pub mod secret;
pub mod server;
pub mod state;
pub mod tang;
