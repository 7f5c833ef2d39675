//! The original project's single self-signed certificate
//! (`secure-store -generate-keys [-base64] [-hostname H]`), which its server
//! and all of its clients share: the server presents it and trusts it as
//! the only client certificate; each client presents it and trusts it as
//! the only server certificate.
//!
//! What the original generated (balena-labs-research/secure-store,
//! `pkg/mtls/generate_keys.go`, called with `GenerateKeys(4096, 3650,
//! hostname)`), mirrored here:
//!
//! - an RSA 4096-bit key, written as PKCS#1 PEM (`RSA PRIVATE KEY`);
//! - a self-signed X.509 v3 certificate, `sha256WithRSAEncryption`,
//!   serial number 0, subject = issuer = `CN=<hostname>`, one DNS SAN
//!   `<hostname>` (the `-hostname` flag, default `localhost`);
//! - `notBefore` = now, `notAfter` = now + 876,000 hours (36,500 days,
//!   about 100 years: the original multiplied 3650 "days" by 24 × 10 h);
//! - basicConstraints critical, `CA:FALSE`; keyUsage critical:
//!   digitalSignature, keyEncipherment, dataEncipherment, keyAgreement;
//!   extKeyUsage serverAuth + clientAuth; no key identifiers.
//!
//! Differences, on purpose: files are 0600 (the original wrote 0644), and
//! more than one `--server-name`/`--server-ip` may be given (the first
//! name, or else the first IP, is the CN).

use std::net::IpAddr;

use rcgen::{
    CertificateParams, DistinguishedName, DnType, DnValue, ExtendedKeyUsagePurpose, IsCa,
    KeyUsagePurpose, SanType, SerialNumber,
};
use time::{Duration, OffsetDateTime};
use zeroize::Zeroizing;

use super::key;
use super::PkiError;

/// RSA key size of the original.
pub const RSA_BITS: usize = 4096;
/// Validity of the original's certificate, in hours (3650 × 24 × 10).
pub const VALIDITY_HOURS: i64 = 3650 * 24 * 10;
/// The original's default `-hostname`.
pub const DEFAULT_HOSTNAME: &str = "localhost";

/// A legacy certificate and its key, as PEM.
pub struct LegacyCert {
    pub cert_pem: String,
    pub key_pem: Zeroizing<String>,
}

impl std::fmt::Debug for LegacyCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LegacyCert")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

/// Generates the shared certificate for these names (`localhost` if none).
pub fn generate(names: &[String], ips: &[IpAddr]) -> Result<LegacyCert, PkiError> {
    let default = [DEFAULT_HOSTNAME.to_owned()];
    let names = if names.is_empty() && ips.is_empty() {
        &default[..]
    } else {
        names
    };
    let cn = names
        .first()
        .cloned()
        .or_else(|| ips.first().map(IpAddr::to_string))
        .unwrap_or_else(|| DEFAULT_HOSTNAME.to_owned());

    let rsa_key = key::generate_rsa(RSA_BITS)?;
    let key_pair = key::rsa_key_pair(&rsa_key)?;

    let now = OffsetDateTime::now_utc();
    let mut params = CertificateParams::default();
    params.serial_number = Some(SerialNumber::from_slice(&[0]));
    params.not_before = now;
    params.not_after = now + Duration::hours(VALIDITY_HOURS);
    params.distinguished_name = DistinguishedName::new();
    // Go writes a CN as PrintableString when its characters allow.
    let value = match cn.clone().try_into() {
        Ok(printable) => DnValue::PrintableString(printable),
        Err(_) => DnValue::Utf8String(cn.clone()),
    };
    params.distinguished_name.push(DnType::CommonName, value);
    for name in names {
        params.subject_alt_names.push(SanType::DnsName(
            name.clone()
                .try_into()
                .map_err(|_| PkiError::BadServerName(name.clone(), "not ASCII".into()))?,
        ));
    }
    for ip in ips {
        params.subject_alt_names.push(SanType::IpAddress(*ip));
    }
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
        KeyUsagePurpose::DataEncipherment,
        KeyUsagePurpose::KeyAgreement,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.is_ca = IsCa::NoCa;
    params.custom_extensions.push(super::ca::not_a_ca());
    let cert = params.self_signed(&key_pair)?;
    Ok(LegacyCert {
        cert_pem: cert.pem(),
        key_pem: key::rsa_pkcs1_pem(&rsa_key)?,
    })
}
