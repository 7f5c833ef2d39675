//! The fleet CA and the certificates it issues: the server certificate,
//! the admin client certificate and device client certificates.
//!
//! Profile (RFC 5280; checked by OpenSSL and webpki in the tests):
//!
//! | | CA | server | admin / device |
//! |---|---|---|---|
//! | subject | `O=Secure Store, CN=<fleet> fleet CA` | `O=Secure Store, CN=<first name>` | `O=Secure Store, OU=<group>…, CN=<id>` |
//! | basicConstraints (critical) | CA, pathlen 0 | not a CA | not a CA |
//! | keyUsage (critical) | keyCertSign, cRLSign | digitalSignature | digitalSignature |
//! | extKeyUsage | — | serverAuth | clientAuth |
//! | subjectAltName | — | the DNS names and IPs given | URI `urn:secure-store:{device,admin}:<id>` |
//! | key identifiers | subject KI | authority KI | authority KI |
//!
//! Serial numbers are 16 random bytes, positive (RFC 5280 §4.1.2.2: at most
//! 20 octets; CA/B forum: at least 64 random bits). `notBefore` is one hour
//! in the past so a device whose clock lags a little still accepts the
//! server, and a leaf never outlives the CA (`notAfter` is clamped).
//!
//! rcgen builds each certificate; because it keeps one value per name
//! attribute, the subject (one OU per group) and the issuer (the CA's exact
//! bytes) are then set by `pki::der` and the TBS is signed again.

use std::net::IpAddr;

use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use time::{Duration, OffsetDateTime};
use x509_parser::prelude::{FromDer, X509Certificate};
use zeroize::Zeroizing;

use super::der;
use super::key::{self, KeyType};
use super::layout::{ADMIN_URI_PREFIX, DEVICE_URI_PREFIX};
use super::PkiError;

/// The organization name in every subject we issue.
pub const ORGANIZATION: &str = "Secure Store";
/// How far `notBefore` lies in the past (clock skew allowance).
pub const BACKDATE: Duration = Duration::hours(1);
/// Default validity of the CA, server and admin certificates (10 years).
pub const DEFAULT_CA_DAYS: u32 = 3650;
/// Default validity of a device certificate (10 years; revoke to end it sooner).
pub const DEFAULT_DEVICE_DAYS: u32 = 3650;

/// What a certificate is for.
#[derive(Debug, Clone)]
pub enum Leaf {
    /// The Store Server: DNS names and IP addresses (at least one of them).
    Server {
        names: Vec<String>,
        ips: Vec<IpAddr>,
    },
    /// The operator's admin client.
    Admin { name: String },
    /// A device client; `groups` become OU attributes.
    Device { id: String, groups: Vec<String> },
}

/// A certificate just issued, with its new private key (redacted in `Debug`).
pub struct Issued {
    pub cert_pem: String,
    pub cert_der: Vec<u8>,
    pub key_pem: Zeroizing<String>,
    /// Lower-case hex, as in [`super::Identity`] and `openssl x509 -serial`.
    pub serial: String,
    pub not_after: OffsetDateTime,
    /// `true` when the requested validity was cut to the CA's `notAfter`
    /// by more than a day (a few seconds' difference is not worth a word).
    pub clamped: bool,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued")
            .field("serial", &self.serial)
            .field("not_after", &self.not_after)
            .field("clamped", &self.clamped)
            .field("key_pem", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// The fleet CA: its certificate and private key.
pub struct FleetCa {
    /// The CA as rcgen needs it to issue (rebuilt from the file on load).
    issuer: rcgen::Certificate,
    cert_pem: String,
    /// The CA certificate's raw subject, copied into every issuer field.
    subject_der: Vec<u8>,
    not_after: OffsetDateTime,
    key: KeyPair,
}

impl std::fmt::Debug for FleetCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetCa")
            .field("key_type", &self.key_type())
            .field("not_after", &self.not_after)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl FleetCa {
    /// A new CA named after the fleet, valid for `days`.
    pub fn generate(fleet_name: &str, kind: KeyType, days: u32) -> Result<FleetCa, PkiError> {
        let key = key::generate(kind)?;
        let now = OffsetDateTime::now_utc();
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::OrganizationName, ORGANIZATION);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{fleet_name} fleet CA"));
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.serial_number = Some(random_serial());
        params.not_before = now - BACKDATE;
        params.not_after = now + Duration::days(days.into());
        let cert = params.self_signed(&key)?;
        let cert_pem = cert.pem();
        FleetCa::from_parts(cert_pem, key)
    }

    /// The CA from its certificate and key files' contents.
    pub fn load(cert_pem: &[u8], key_pem: &[u8]) -> Result<FleetCa, PkiError> {
        let key = key::from_pem(key_pem, "the CA key")?;
        let cert_pem = std::str::from_utf8(cert_pem)
            .map_err(|_| PkiError::Pem("the CA certificate is not PEM".into()))?
            .to_owned();
        FleetCa::from_parts(cert_pem, key)
    }

    fn from_parts(cert_pem: String, key: KeyPair) -> Result<FleetCa, PkiError> {
        let der = super::tls::certs_from_pem(cert_pem.as_bytes(), "the CA certificate")?
            .into_iter()
            .next()
            .ok_or_else(|| PkiError::Pem("no certificate in the CA file".into()))?;
        let (_, x509) = X509Certificate::from_der(&der)
            .map_err(|e| PkiError::Cert(format!("the CA certificate: {e}")))?;
        if x509.public_key().raw != key.public_key_der().as_slice() {
            return Err(PkiError::Cert(
                "the CA key does not belong to the CA certificate".into(),
            ));
        }
        let subject_der = x509.subject().as_raw().to_vec();
        let not_after = x509.validity().not_after.to_datetime();
        let params = CertificateParams::from_ca_cert_der(&der)?;
        // Only the name, key identifier and key usages of `issuer` are
        // used by rcgen when issuing; re-signing it is harmless.
        let issuer = params.self_signed(&key)?;
        Ok(FleetCa {
            issuer,
            cert_pem,
            subject_der,
            not_after,
            key,
        })
    }

    /// The CA certificate (PEM), for ca.crt files.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA private key (PKCS#8 PEM), for ca/ca.key only.
    pub fn key_pem(&self) -> Zeroizing<String> {
        key::to_pem(&self.key)
    }

    /// The key type of the CA, which its leaves share.
    pub fn key_type(&self) -> KeyType {
        KeyType::of(&self.key).unwrap_or_default()
    }

    /// When the CA expires.
    pub fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }

    /// Issues a certificate for `leaf` with a new key of the CA's type,
    /// valid from an hour ago for `days` (at most until the CA expires).
    pub fn issue(&self, leaf: &Leaf, days: u32) -> Result<Issued, PkiError> {
        let now = OffsetDateTime::now_utc();
        let wanted = now + Duration::days(days.into());
        let not_after = wanted.min(self.not_after);
        let mut issued = self.issue_between(leaf, now - BACKDATE, not_after)?;
        issued.clamped = wanted - not_after > Duration::days(1);
        Ok(issued)
    }

    /// Issues a certificate valid exactly from `not_before` to `not_after`,
    /// unchecked: tests use it for expired and not-yet-valid certificates.
    pub fn issue_between(
        &self,
        leaf: &Leaf,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> Result<Issued, PkiError> {
        let key = key::generate(self.key_type())?;
        let mut params = CertificateParams::default();
        let serial = random_serial();
        params.serial_number = Some(serial.clone());
        params.not_before = not_before;
        params.not_after = not_after;
        params.use_authority_key_identifier_extension = true;
        params.is_ca = IsCa::NoCa;
        params.custom_extensions.push(not_a_ca());
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let mut subject: Vec<(&[u8], &str)> = vec![(der::OID_ORGANIZATION, ORGANIZATION)];
        let cn;
        match leaf {
            Leaf::Server { names, ips } => {
                params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
                for name in names {
                    params.subject_alt_names.push(SanType::DnsName(
                        name.clone().try_into().map_err(|_| {
                            PkiError::BadServerName(name.clone(), "not ASCII".into())
                        })?,
                    ));
                }
                for ip in ips {
                    params.subject_alt_names.push(SanType::IpAddress(*ip));
                }
                cn = names
                    .first()
                    .cloned()
                    .or_else(|| ips.first().map(IpAddr::to_string))
                    .ok_or_else(|| {
                        PkiError::BadServerName(String::new(), "no server name or IP".into())
                    })?;
            }
            Leaf::Admin { name } => {
                params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
                params
                    .subject_alt_names
                    .push(uri_san(&format!("{ADMIN_URI_PREFIX}{name}"))?);
                cn = name.clone();
            }
            Leaf::Device { id, groups } => {
                params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
                params
                    .subject_alt_names
                    .push(uri_san(&format!("{DEVICE_URI_PREFIX}{id}"))?);
                for group in groups {
                    subject.push((der::OID_ORG_UNIT, group));
                }
                cn = id.clone();
            }
        }
        subject.push((der::OID_COMMON_NAME, &cn));
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, cn.as_str());

        let draft = params.signed_by(&key, &self.issuer, &self.key)?;
        let cert_der = self.rename(draft.der(), &der::name(&subject))?;
        let cert_pem = pem_encode("CERTIFICATE", &cert_der);
        Ok(Issued {
            cert_pem,
            cert_der,
            key_pem: key::to_pem(&key),
            serial: serial_hex(serial.as_ref()),
            not_after,
            clamped: false,
        })
    }

    /// Sets the subject and the CA's exact issuer bytes, signs again.
    fn rename(&self, cert: &[u8], subject: &[u8]) -> Result<Vec<u8>, PkiError> {
        let broken = || PkiError::Cert("rcgen wrote a certificate we cannot re-encode".into());
        let (tbs, alg) = der::certificate_parts(cert).ok_or_else(broken)?;
        let tbs = der::replace_names(tbs, &self.subject_der, subject).ok_or_else(broken)?;
        let signature = key::sign(&self.key, &tbs)?;
        Ok(der::assemble(&tbs, alg, &signature))
    }
}

/// basicConstraints, critical, `cA` absent (= FALSE, the DER default):
/// what Go writes too. rcgen's `ExplicitNoCa` writes the default value.
pub(crate) fn not_a_ca() -> CustomExtension {
    let mut ext = CustomExtension::from_oid_content(&[2, 5, 29, 19], vec![0x30, 0x00]);
    ext.set_criticality(true);
    ext
}

fn uri_san(uri: &str) -> Result<SanType, PkiError> {
    Ok(SanType::URI(uri.to_owned().try_into()?))
}

/// 16 random bytes as a positive serial without a leading zero byte.
fn random_serial() -> SerialNumber {
    let mut bytes = crate::rng::bytes::<16>();
    bytes[0] &= 0x7f;
    if bytes[0] == 0 {
        bytes[0] = 1;
    }
    SerialNumber::from_slice(&bytes)
}

/// Lower-case hex of a serial's magnitude, leading zero bytes dropped
/// (`"00"` for zero).
pub fn serial_hex(bytes: &[u8]) -> String {
    let start = bytes
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(bytes.len().saturating_sub(1));
    if bytes.is_empty() {
        return "00".into();
    }
    hex::encode(&bytes[start..])
}

/// PEM with 64-character lines (RFC 7468).
pub fn pem_encode(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::Identity;

    #[test]
    fn serial_hex_strips_leading_zero_bytes() {
        assert_eq!(serial_hex(&[0]), "00");
        assert_eq!(serial_hex(&[]), "00");
        assert_eq!(serial_hex(&[0, 0x80, 1]), "8001");
        assert_eq!(serial_hex(&[0x7f, 0xab]), "7fab");
    }

    #[test]
    fn issued_device_cert_names_its_groups_and_chains_to_the_ca() {
        let ca = FleetCa::generate("test", KeyType::P256, 30).unwrap();
        let issued = ca
            .issue(
                &Leaf::Device {
                    id: "dev-1".into(),
                    groups: vec!["kiosk".into(), "eu".into()],
                },
                10,
            )
            .unwrap();
        let (_, x509) = X509Certificate::from_der(&issued.cert_der).unwrap();
        assert_eq!(
            x509.subject().to_string(),
            "O=Secure Store, OU=kiosk, OU=eu, CN=dev-1"
        );
        assert_eq!(
            x509.issuer().to_string(),
            "O=Secure Store, CN=test fleet CA"
        );
        // The signature verifies with the CA's public key (x509-parser,
        // through ring); openssl and webpki check it in the CLI tests.
        let ca_der = crate::pki::tls::certs_from_pem(ca.cert_pem().as_bytes(), "ca")
            .unwrap()
            .remove(0);
        let (_, ca_x509) = X509Certificate::from_der(&ca_der).unwrap();
        x509.verify_signature(Some(ca_x509.public_key())).unwrap();
        match Identity::from_der(&issued.cert_der).unwrap() {
            Identity::Device { id, groups, serial } => {
                assert_eq!(id, "dev-1");
                assert_eq!(groups, ["kiosk", "eu"]);
                assert_eq!(serial, issued.serial);
                assert_eq!(serial.len(), 32);
            }
            other => panic!("{other:?}"),
        }
        assert!(!issued.clamped);
        let debug = format!("{issued:?}");
        assert!(
            debug.contains("<redacted>") && !debug.contains("PRIVATE"),
            "{debug}"
        );
    }

    #[test]
    fn a_leaf_never_outlives_the_ca() {
        let ca = FleetCa::generate("t", KeyType::P256, 5).unwrap();
        let issued = ca
            .issue(
                &Leaf::Admin {
                    name: "admin".into(),
                },
                100,
            )
            .unwrap();
        assert!(issued.clamped);
        assert_eq!(issued.not_after, ca.not_after());
    }

    #[test]
    fn load_round_trips_and_rejects_a_foreign_key() {
        let ca = FleetCa::generate("t", KeyType::P256, 5).unwrap();
        let again = FleetCa::load(ca.cert_pem().as_bytes(), ca.key_pem().as_bytes()).unwrap();
        assert_eq!(again.cert_pem(), ca.cert_pem());
        let other = FleetCa::generate("t", KeyType::P256, 5).unwrap();
        let err = FleetCa::load(ca.cert_pem().as_bytes(), other.key_pem().as_bytes())
            .unwrap_err()
            .to_string();
        assert!(err.contains("does not belong"), "{err}");
    }
}
