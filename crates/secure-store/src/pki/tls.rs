//! rustls configurations for the Store Server and its clients.
//!
//! Everything here is TLS 1.3 only, with ring as the crypto provider, and
//! mutual: the server always *requires* a client certificate. ALPN is
//! `http/1.1` on both sides (curl and the original Go client speak it).
//!
//! - [`server_config`]: a fleet server; client certificates are verified by
//!   rustls' `WebPkiClientVerifier` against `server/ca.crt`, so only
//!   certificates the fleet CA issued (clientAuth usage, in their validity
//!   period) get through. Who the client is, and whether it is revoked, is
//!   the server's business afterwards ([`super::Identity`]).
//! - [`legacy_server_config`]: the original project's mode, where one
//!   self-signed certificate is both the server's and every client's. The
//!   client must present exactly that certificate (byte for byte), and it
//!   must also pass webpki with itself as the only trust anchor (signature,
//!   validity, clientAuth).
//! - [`client_config`]: a device or admin client; the server certificate is
//!   verified by `WebPkiServerVerifier` against the given CA file, and its
//!   name against the URL's host. For legacy, pass the shared certificate as
//!   the CA: a self-signed leaf with `CA:FALSE` is a valid webpki trust
//!   anchor for itself, which is exactly the original Go client's trust.
//!
//! Private keys are read into wiped buffers and parsed into rustls' key
//! types, which wipe themselves too.
//!
//! ```no_run
//! use secure_store::pki::layout::{FleetDir, ServerDir};
//! use secure_store::pki::{tls, Identity};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // The server, from FLEET/server (or a copy of that folder):
//! let server = tls::server_config(&ServerDir::locate("fleet".as_ref()))?;
//! let acceptor = tokio_rustls::TlsAcceptor::from(server);
//! // A device, from its folder or from MTLS_* variables:
//! let device = tls::client_config_from_dir(&FleetDir::new("fleet").device("kiosk-17"))?;
//! let cert = tls::decode_env_pem("MTLS_CERT", &std::env::var("MTLS_CERT")?)?;
//! # let _ = (acceptor, device, cert);
//! // After the handshake, who is it? (`conn.peer_certificates()`)
//! # let peer: rustls::pki_types::CertificateDer = Vec::new().into();
//! let who = Identity::from_der(&peer)?;
//! # let _ = who;
//! # Ok(()) }
//! ```

use std::path::Path;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use zeroize::Zeroizing;

use rustls::{
    ClientConfig, DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig,
    SignatureScheme,
};

use super::files;
use super::layout::{ClientDir, ServerDir};
use super::PkiError;

/// The ALPN protocol both sides offer.
pub const ALPN_HTTP1: &[u8] = b"http/1.1";

/// The crypto provider every config here uses (ring).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The TLS configuration of a fleet's Store Server (`server/` folder).
pub fn server_config(server_dir: &ServerDir) -> Result<Arc<ServerConfig>, PkiError> {
    let ca = files::read(&server_dir.ca_cert())?;
    let chain = load_certs(&server_dir.cert())?;
    let key = load_key(&server_dir.key())?;
    let roots = root_store(&ca, &server_dir.ca_cert().display().to_string())?;
    let verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider()).build()?;
    finish_server(verifier, chain, key)
}

/// The TLS configuration of a legacy server: `cert_pem` is presented as the
/// server certificate and is the only client certificate accepted.
pub fn legacy_server_config(
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<Arc<ServerConfig>, PkiError> {
    let chain = certs_from_pem(cert_pem, "the legacy certificate")?;
    let key = key_from_pem(key_pem, "the legacy key")?;
    let pinned = chain[0].clone().into_owned();
    let roots = root_store(cert_pem, "the legacy certificate")?;
    let inner = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider()).build()?;
    let verifier = Arc::new(PinnedClientVerifier { pinned, inner });
    finish_server(verifier, chain, key)
}

fn finish_server(
    verifier: Arc<dyn ClientCertVerifier>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<ServerConfig>, PkiError> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![ALPN_HTTP1.to_vec()];
    Ok(Arc::new(config))
}

/// The TLS configuration of a client (device, admin, or legacy): trusts the
/// server certificates `ca_pem` vouches for, presents `cert_pem`/`key_pem`.
pub fn client_config(
    ca_pem: &[u8],
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<Arc<ClientConfig>, PkiError> {
    let roots = root_store(ca_pem, "the CA certificate")?;
    let chain = certs_from_pem(cert_pem, "the client certificate")?;
    let key = key_from_pem(key_pem, "the client key")?;
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .map_err(|e| PkiError::Pem(format!("the CA certificate: {e}")))?;
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_webpki_verifier(verifier)
        .with_client_auth_cert(chain, key)?;
    config.alpn_protocols = vec![ALPN_HTTP1.to_vec()];
    Ok(Arc::new(config))
}

/// [`client_config`] from a client identity folder (`FLEET/admin`,
/// `FLEET/devices/<id>`): its `ca.crt`, `client.crt` and `client.key`.
pub fn client_config_from_dir(dir: &ClientDir) -> Result<Arc<ClientConfig>, PkiError> {
    let ca = files::read(&dir.ca_cert())?;
    let cert = files::read(&dir.cert())?;
    let key = files::read_secret(&dir.key())?;
    client_config(&ca, &cert, &key)
}

/// The PEM text in an `MTLS_CERT` / `MTLS_KEY` / `MTLS_CA` value: standard
/// base64 of the PEM (what `fleet enroll --env` and the original's
/// `-base64` print; whitespace ignored), or the PEM text itself. `name`
/// names the variable in errors. The result is wiped when dropped.
pub fn decode_env_pem(name: &str, value: &str) -> Result<Zeroizing<Vec<u8>>, PkiError> {
    use base64::Engine;
    let trimmed = value.trim();
    if trimmed.starts_with("-----BEGIN ") {
        return Ok(Zeroizing::new(trimmed.as_bytes().to_vec()));
    }
    let compact = Zeroizing::new(
        trimmed
            .bytes()
            .filter(|b| !b.is_ascii_whitespace())
            .collect::<Vec<u8>>(),
    );
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(compact.as_slice())
        .map(Zeroizing::new)
        .map_err(|_| PkiError::Pem(format!("{name}: neither base64 nor PEM")))?;
    if !decoded.starts_with(b"-----BEGIN ") {
        return Err(PkiError::Pem(format!(
            "{name}: the base64 does not hold PEM"
        )));
    }
    Ok(decoded)
}

/// The bytes of a PEM file (certificate or key) in a wiped buffer, for
/// [`client_config`] and [`legacy_server_config`]; errors name the file.
pub fn load_pem_file(path: &Path) -> Result<Zeroizing<Vec<u8>>, PkiError> {
    files::read_secret(path)
}

/// Every certificate in a PEM file (at least one).
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, PkiError> {
    let pem = files::read(path)?;
    certs_from_pem(&pem, &path.display().to_string())
}

/// The first private key in a PEM file (PKCS#8, PKCS#1 or SEC1), read
/// through a wiped buffer.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, PkiError> {
    let pem = files::read_secret(path)?;
    key_from_pem(&pem, &path.display().to_string())
}

/// Every certificate in PEM text (at least one); `what` names the source
/// in errors.
pub fn certs_from_pem(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, PkiError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PkiError::Pem(format!("{what}: bad PEM ({e})")))?;
    if certs.is_empty() {
        return Err(PkiError::Pem(format!("{what}: no certificate in it")));
    }
    Ok(certs)
}

/// The first private key in PEM text; `what` names the source in errors.
pub fn key_from_pem(pem: &[u8], what: &str) -> Result<PrivateKeyDer<'static>, PkiError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => {
            PkiError::Pem(format!("{what}: no private key in it"))
        }
        other => PkiError::Pem(format!("{what}: bad PEM ({other})")),
    })
}

/// A root store of every certificate in `pem`.
fn root_store(pem: &[u8], what: &str) -> Result<RootCertStore, PkiError> {
    let mut roots = RootCertStore::empty();
    for cert in certs_from_pem(pem, what)? {
        roots
            .add(cert)
            .map_err(|e| PkiError::Pem(format!("{what}: not a usable trust anchor ({e})")))?;
    }
    Ok(roots)
}

/// Accepts exactly one client certificate (the legacy shared one), after
/// webpki has checked it against itself as the only trust anchor.
#[derive(Debug)]
struct PinnedClientVerifier {
    pinned: CertificateDer<'static>,
    inner: Arc<dyn ClientCertVerifier>,
}

impl ClientCertVerifier for PinnedClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // Public bytes: no need for a constant-time comparison.
        if end_entity.as_ref() != self.pinned.as_ref() {
            return Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer,
            ));
        }
        self.inner
            .verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_errors_name_the_source() {
        let err = certs_from_pem(b"", "x.crt").unwrap_err().to_string();
        assert_eq!(err, "x.crt: no certificate in it");
        let err = key_from_pem(b"nothing", "x.key").unwrap_err().to_string();
        assert_eq!(err, "x.key: no private key in it");
    }

    #[test]
    fn env_values_decode_from_base64_or_pem() {
        let pem = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(pem);
        assert_eq!(
            decode_env_pem("MTLS_CERT", &b64).unwrap().as_slice(),
            pem.as_bytes()
        );
        let wrapped = format!("{}\n{}", &b64[..10], &b64[10..]);
        assert_eq!(
            decode_env_pem("MTLS_CERT", &wrapped).unwrap().as_slice(),
            pem.as_bytes()
        );
        assert_eq!(
            decode_env_pem("MTLS_CERT", pem).unwrap().as_slice(),
            pem.trim().as_bytes()
        );
        let err = decode_env_pem("MTLS_KEY", "%%%").unwrap_err().to_string();
        assert_eq!(err, "MTLS_KEY: neither base64 nor PEM");
        let err = decode_env_pem("MTLS_KEY", "aGVsbG8=")
            .unwrap_err()
            .to_string();
        assert!(err.contains("does not hold PEM"), "{err}");
    }
}
