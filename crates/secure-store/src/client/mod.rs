//! The device client (filled in by the client work).
pub mod http;
