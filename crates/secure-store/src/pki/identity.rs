//! Who a client certificate names: a device, an admin, or (when the server
//! runs in legacy mode) the original project's one shared certificate.
//!
//! Call this only on a certificate the TLS layer has already verified
//! against the fleet CA (or the pinned legacy certificate): it reads, it
//! does not authenticate. The identity comes from our URI SAN
//! ([`DEVICE_URI_PREFIX`]`<id>` or [`ADMIN_URI_PREFIX`]`<name>`, see
//! [`super::layout`]); groups are the subject's OU attributes; the serial
//! is lower-case hex without leading zero bytes (the digits `openssl x509
//! -noout -serial` prints). A certificate with no URI SAN of ours, or with
//! two, is refused: the server must not guess.

use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::ca::serial_hex;
use super::layout::{ADMIN_URI_PREFIX, DEVICE_URI_PREFIX};

/// The identity a verified client certificate carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// A device: its id, groups (OU attributes, in order) and serial.
    Device {
        id: String,
        groups: Vec<String>,
        serial: String,
    },
    /// An operator with the admin certificate.
    Admin { name: String, serial: String },
    /// The original project's shared self-signed certificate (legacy mode).
    Legacy { serial: String },
}

/// Why a certificate names no identity we accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("the client certificate is not valid DER X.509: {0}")]
    Parse(String),
    #[error("the client certificate has no secure-store device or admin URI name")]
    NoIdentity,
    #[error("the client certificate names more than one secure-store identity")]
    Ambiguous,
    #[error("the client certificate names an invalid device id {0:?}")]
    BadId(String),
}

impl Identity {
    /// The identity of a fleet certificate (device or admin).
    pub fn from_der(cert_der: &[u8]) -> Result<Identity, IdentityError> {
        let x509 = parse(cert_der)?;
        let serial = serial_hex(x509.raw_serial());
        let mut found = None;
        let san = x509
            .subject_alternative_name()
            .map_err(|e| IdentityError::Parse(format!("subjectAltName: {e}")))?;
        if let Some(san) = san {
            for name in &san.value.general_names {
                let GeneralName::URI(uri) = name else {
                    continue;
                };
                let this = if let Some(id) = uri.strip_prefix(DEVICE_URI_PREFIX) {
                    super::fleet::check_device_id(id)
                        .map_err(|_| IdentityError::BadId(id.to_owned()))?;
                    Identity::Device {
                        id: id.to_owned(),
                        groups: groups(&x509),
                        serial: serial.clone(),
                    }
                } else if let Some(name) = uri.strip_prefix(ADMIN_URI_PREFIX) {
                    super::fleet::check_device_id(name)
                        .map_err(|_| IdentityError::BadId(name.to_owned()))?;
                    Identity::Admin {
                        name: name.to_owned(),
                        serial: serial.clone(),
                    }
                } else {
                    continue;
                };
                if found.replace(this).is_some() {
                    return Err(IdentityError::Ambiguous);
                }
            }
        }
        found.ok_or(IdentityError::NoIdentity)
    }

    /// The identity of the legacy shared certificate (any certificate the
    /// legacy verifier accepted): only its serial distinguishes it.
    pub fn legacy_from_der(cert_der: &[u8]) -> Result<Identity, IdentityError> {
        let x509 = parse(cert_der)?;
        Ok(Identity::Legacy {
            serial: serial_hex(x509.raw_serial()),
        })
    }

    /// The certificate serial (lower-case hex).
    pub fn serial(&self) -> &str {
        match self {
            Identity::Device { serial, .. }
            | Identity::Admin { serial, .. }
            | Identity::Legacy { serial } => serial,
        }
    }

    /// The device id, for a device.
    pub fn device_id(&self) -> Option<&str> {
        match self {
            Identity::Device { id, .. } => Some(id),
            _ => None,
        }
    }

    /// `true` for the admin certificate.
    pub fn is_admin(&self) -> bool {
        matches!(self, Identity::Admin { .. })
    }
}

fn parse(der: &[u8]) -> Result<X509Certificate<'_>, IdentityError> {
    match X509Certificate::from_der(der) {
        Ok(([], x509)) => Ok(x509),
        Ok(_) => Err(IdentityError::Parse("trailing bytes".into())),
        Err(e) => Err(IdentityError::Parse(e.to_string())),
    }
}

/// The subject's OU values that are valid group names, in order.
fn groups(x509: &X509Certificate<'_>) -> Vec<String> {
    x509.subject()
        .iter_organizational_unit()
        .filter_map(|ou| ou.as_str().ok())
        .filter(|g| super::fleet::check_group(g).is_ok())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::ca::{FleetCa, Leaf};
    use crate::pki::KeyType;

    #[test]
    fn admin_and_device_and_foreign() {
        let ca = FleetCa::generate("t", KeyType::P256, 5).unwrap();
        let admin = ca
            .issue(
                &Leaf::Admin {
                    name: "admin".into(),
                },
                5,
            )
            .unwrap();
        let id = Identity::from_der(&admin.cert_der).unwrap();
        assert_eq!(
            id,
            Identity::Admin {
                name: "admin".into(),
                serial: admin.serial.clone()
            }
        );
        assert!(id.is_admin());
        let dev = ca
            .issue(
                &Leaf::Device {
                    id: "a.b_c-9".into(),
                    groups: vec![],
                },
                5,
            )
            .unwrap();
        let id = Identity::from_der(&dev.cert_der).unwrap();
        assert_eq!(id.device_id(), Some("a.b_c-9"));
        assert_eq!(id.serial(), dev.serial);
        // The server certificate names no client identity.
        let server = ca
            .issue(
                &Leaf::Server {
                    names: vec!["localhost".into()],
                    ips: vec![],
                },
                5,
            )
            .unwrap();
        assert_eq!(
            Identity::from_der(&server.cert_der),
            Err(IdentityError::NoIdentity)
        );
        assert!(matches!(
            Identity::from_der(b"junk"),
            Err(IdentityError::Parse(_))
        ));
        // Every truncation and every single-byte corruption is an error or
        // an identity, never a panic.
        for len in 0..dev.cert_der.len() {
            assert!(Identity::from_der(&dev.cert_der[..len]).is_err());
        }
        for i in 0..dev.cert_der.len() {
            let mut bad = dev.cert_der.clone();
            bad[i] ^= 0x5a;
            let _ = Identity::from_der(&bad);
            let _ = Identity::legacy_from_der(&bad);
        }
        // Legacy: any parsed certificate, identified by its serial.
        assert_eq!(
            Identity::legacy_from_der(&server.cert_der).unwrap(),
            Identity::Legacy {
                serial: server.serial
            }
        );
    }

    fn self_signed_with(uris: &[&str]) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        for uri in uris {
            params
                .subject_alt_names
                .push(rcgen::SanType::URI((*uri).try_into().unwrap()));
        }
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn two_identities_or_a_bad_id_are_refused() {
        let both = self_signed_with(&["urn:secure-store:device:a", "urn:secure-store:admin:b"]);
        assert_eq!(Identity::from_der(&both), Err(IdentityError::Ambiguous));
        let bad = self_signed_with(&["urn:secure-store:device:../x"]);
        assert_eq!(
            Identity::from_der(&bad),
            Err(IdentityError::BadId("../x".into()))
        );
        let other = self_signed_with(&["https://example.com/", "urn:other:device:a"]);
        assert_eq!(Identity::from_der(&other), Err(IdentityError::NoIdentity));
        let one = self_signed_with(&["https://example.com/", "urn:secure-store:device:a"]);
        assert_eq!(Identity::from_der(&one).unwrap().device_id(), Some("a"));
    }
}
