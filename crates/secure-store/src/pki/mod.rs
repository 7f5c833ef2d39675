//! The fleet's public-key infrastructure: a fleet CA, the server
//! certificate, admin and device client certificates, and the legacy single
//! self-signed certificate of the original project.
//!
//! [`layout`] fixes where each file lives in a fleet directory, so that the
//! server, the admin client and the device client agree on it.

pub mod layout;
