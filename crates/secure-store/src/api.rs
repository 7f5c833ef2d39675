//! Wire types shared by the Store Server and its clients (device client,
//! admin client): refusal reasons and their HTTP status, and the admin
//! API's JSON bodies. Changing a reason code is a protocol change.
//!
//! A refusal is answered with the status of its [`Reason`] and the body
//! `{"error":"<code>","message":"<text>"}`, where `code` is
//! [`Reason::code`]. Clients act on the code, never on the text.

use serde::{Deserialize, Serialize};

/// Why the server refused a request, in the order policy checks them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The certificate (by device id or serial) is revoked.
    Revoked,
    /// The device is disabled by an admin.
    Disabled,
    /// The source address is outside the allowed networks (or denied).
    AddressNotAllowed,
    /// Too many requests from this device or address.
    RateLimited,
    /// The store (Tang key id / legacy key) is not granted to the device's groups.
    StoreNotAllowed,
    /// An admin endpoint was called without an admin certificate.
    NotAdmin,
    /// The client certificate is not a device or admin identity of this fleet.
    UnknownIdentity,
    /// Malformed request (bad JSON, bad point, …).
    BadRequest,
    /// No such endpoint or key.
    NotFound,
    /// Wrong HTTP method.
    MethodNotAllowed,
    /// Body too large.
    TooLarge,
    /// Legacy `/key` is not enabled on this server.
    LegacyDisabled,
    /// The server failed (state store unavailable, …); retry later.
    Internal,
}

impl Reason {
    pub const ALL: [Reason; 13] = [
        Reason::Revoked,
        Reason::Disabled,
        Reason::AddressNotAllowed,
        Reason::RateLimited,
        Reason::StoreNotAllowed,
        Reason::NotAdmin,
        Reason::UnknownIdentity,
        Reason::BadRequest,
        Reason::NotFound,
        Reason::MethodNotAllowed,
        Reason::TooLarge,
        Reason::LegacyDisabled,
        Reason::Internal,
    ];

    /// The stable snake_case code used in responses, audit and metrics.
    pub fn code(self) -> &'static str {
        match self {
            Reason::Revoked => "revoked",
            Reason::Disabled => "disabled",
            Reason::AddressNotAllowed => "address_not_allowed",
            Reason::RateLimited => "rate_limited",
            Reason::StoreNotAllowed => "store_not_allowed",
            Reason::NotAdmin => "not_admin",
            Reason::UnknownIdentity => "unknown_identity",
            Reason::BadRequest => "bad_request",
            Reason::NotFound => "not_found",
            Reason::MethodNotAllowed => "method_not_allowed",
            Reason::TooLarge => "too_large",
            Reason::LegacyDisabled => "legacy_disabled",
            Reason::Internal => "internal",
        }
    }

    pub fn from_code(code: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.code() == code)
    }

    /// The HTTP status a refusal with this reason carries.
    pub fn status(self) -> u16 {
        match self {
            Reason::Revoked | Reason::Disabled | Reason::AddressNotAllowed => 403,
            Reason::StoreNotAllowed | Reason::NotAdmin | Reason::UnknownIdentity => 403,
            Reason::RateLimited => 429,
            Reason::BadRequest => 400,
            Reason::NotFound | Reason::LegacyDisabled => 404,
            Reason::MethodNotAllowed => 405,
            Reason::TooLarge => 413,
            Reason::Internal => 500,
        }
    }
}

/// The JSON body of every refusal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_are_distinct() {
        let mut seen = std::collections::HashSet::new();
        for r in Reason::ALL {
            assert_eq!(Reason::from_code(r.code()), Some(r));
            assert!(seen.insert(r.code()));
            let json = serde_json::to_string(&r).unwrap();
            assert_eq!(json, format!("\"{}\"", r.code()));
        }
    }
}
