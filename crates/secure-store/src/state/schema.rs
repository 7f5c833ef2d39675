//! The state schema and the rules for values stored in it, shared by every
//! [`super::Store`] backend.
//!
//! Migrations are plain SQL files in `state/migrations/`, written in the
//! dialect SQLite and PostgreSQL share (see the header of
//! `0001_initial.sql`). A backend records each applied migration in
//! [`MIGRATIONS_TABLE`] and refuses a database whose highest version is
//! newer than [`SCHEMA_VERSION`] ([`super::StateError::SchemaTooNew`]): an
//! older program must not write into a schema it does not know.

use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net};

use super::{Decision, DeviceStatus, StateError};

/// The table that records applied migrations (one row per version).
pub const MIGRATIONS_TABLE: &str =
    "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied BIGINT NOT NULL)";

/// Every migration, in order: (version, SQL).
pub const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("migrations/0001_initial.sql")),
    (2, include_str!("migrations/0002_tang_keys.sql")),
];

/// The schema version this program writes.
pub const SCHEMA_VERSION: i64 = 2;

/// Longest device id, group or store name we store.
pub const MAX_NAME_LEN: usize = 256;

/// Checks a device id, group or store name: 1 to [`MAX_NAME_LEN`] bytes, no
/// control characters.
pub fn check_name(what: &'static str, name: &str) -> Result<(), StateError> {
    if name.is_empty() || name.len() > MAX_NAME_LEN || name.chars().any(char::is_control) {
        return Err(StateError::Invalid {
            what,
            detail: format!("{name:?} (1 to {MAX_NAME_LEN} bytes, no control characters)"),
        });
    }
    Ok(())
}

/// Checks a Tang key thumbprint: 1 to 128 base64url characters.
pub fn check_thumbprint(thp: &str) -> Result<(), StateError> {
    if thp.is_empty()
        || thp.len() > 128
        || !thp
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(StateError::Invalid {
            what: "Tang key thumbprint",
            detail: format!("{thp:?} (base64url)"),
        });
    }
    Ok(())
}

/// The stored text of a sealed Tang key (`tang_keys.sealed`): base64url
/// without padding.
pub fn encode_sealed(sealed: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sealed)
}

/// The bytes of a stored `tang_keys.sealed` text.
pub fn decode_sealed(thp: &str, text: &str) -> Result<Vec<u8>, StateError> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| StateError::Database(format!("Tang key {thp}: sealed value is not base64url")))
}

/// A certificate serial in its stored form: lower-case hex without
/// separators (`:`) or leading zeros (`0` for zero). `0A:1B`, `0a1b` and
/// `A1B` are the same serial `a1b`.
pub fn normalize_serial(serial: &str) -> Result<String, StateError> {
    let digits: String = serial
        .chars()
        .filter(|&c| c != ':')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    if digits.is_empty() || digits.len() > 2 * 64 || !digits.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return Err(StateError::Invalid {
            what: "certificate serial",
            detail: format!("{serial:?} (hex digits, optionally separated by ':')"),
        });
    }
    let trimmed = digits.trim_start_matches('0');
    Ok(if trimmed.is_empty() {
        "0".to_owned()
    } else {
        trimmed.to_owned()
    })
}

/// An address as policy sees it: an IPv4-mapped IPv6 address
/// (`::ffff:a.b.c.d`) is the IPv4 address it carries.
pub fn canonical_addr(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => addr,
        },
        v4 => v4,
    }
}

/// A network as policy sees it: host bits cleared, and an IPv4-mapped IPv6
/// network of prefix 96 or more (`::ffff:10.0.0.0/104`) turned into the
/// IPv4 network it covers (`10.0.0.0/8`).
pub fn canonical_net(net: IpNet) -> IpNet {
    if let IpNet::V6(v6) = net {
        if v6.prefix_len() >= 96 {
            if let Some(v4) = v6.network().to_ipv4_mapped() {
                if let Ok(n) = Ipv4Net::new(v4, v6.prefix_len() - 96) {
                    return IpNet::V4(n.trunc());
                }
            }
        }
    }
    net.trunc()
}

// Column encodings shared by the SQLite and PostgreSQL backends.

pub(crate) fn status_from_str(s: &str) -> Result<DeviceStatus, StateError> {
    match s {
        "enabled" => Ok(DeviceStatus::Enabled),
        "disabled" => Ok(DeviceStatus::Disabled),
        other => Err(StateError::Database(format!(
            "unknown device status {other:?}"
        ))),
    }
}

pub(crate) fn status_str(s: DeviceStatus) -> &'static str {
    match s {
        DeviceStatus::Enabled => "enabled",
        DeviceStatus::Disabled => "disabled",
    }
}

pub(crate) fn decision_str(d: Decision) -> &'static str {
    match d {
        Decision::Allowed => "allowed",
        Decision::Refused => "refused",
    }
}

pub(crate) fn parse_addr(
    s: Option<String>,
    what: &str,
) -> Result<Option<std::net::IpAddr>, StateError> {
    s.map(|a| {
        a.parse()
            .map_err(|_| StateError::Database(format!("{what}: bad address {a:?}")))
    })
    .transpose()
}

/// The device columns both backends select (`device_from_row` reads them in order).
pub(crate) const DEVICE_COLUMNS: &str =
    "d.id, d.status, d.first_seen, d.last_seen, d.last_address, \
     EXISTS (SELECT 1 FROM revocations r WHERE r.kind = 'device' AND r.value = d.id)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_normalize() {
        assert_eq!(normalize_serial("0A:1B").unwrap(), "a1b");
        assert_eq!(normalize_serial("a1b").unwrap(), "a1b");
        assert_eq!(normalize_serial("00").unwrap(), "0");
        assert!(normalize_serial("").is_err());
        assert!(normalize_serial("xyz").is_err());
        assert!(normalize_serial(&"f".repeat(129)).is_err());
    }

    #[test]
    fn names_checked() {
        assert!(check_name("device id", "dev-1").is_ok());
        assert!(check_name("device id", "").is_err());
        assert!(check_name("device id", "a\nb").is_err());
        assert!(check_name("device id", &"a".repeat(257)).is_err());
    }

    #[test]
    fn mapped_addresses_and_nets_become_ipv4() {
        let a: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
        assert_eq!(canonical_addr(a), "10.1.2.3".parse::<IpAddr>().unwrap());
        let n: IpNet = "::ffff:10.1.2.3/104".parse().unwrap();
        assert_eq!(canonical_net(n), "10.0.0.0/8".parse::<IpNet>().unwrap());
        let n: IpNet = "2001:db8::1/32".parse().unwrap();
        assert_eq!(canonical_net(n), "2001:db8::/32".parse::<IpNet>().unwrap());
        let n: IpNet = "::ffff:0:0/95".parse().unwrap();
        assert_eq!(canonical_net(n), n.trunc());
    }
}
