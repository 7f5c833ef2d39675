//! Making a fleet directory (`fleet init`, `fleet init --legacy`) and
//! enrolling devices (`fleet enroll`). The layout is [`super::layout`]'s.
//!
//! `init` builds the whole fleet in a hidden sibling folder and renames it
//! into place at the end, so a failure halfway leaves nothing behind and an
//! existing fleet is never touched. Every file is 0600, every folder 0700
//! ([`super::files`]). `fleet.json` holds names and dates only.
//!
//! Names: a device id (and an admin name, and a group) is 1 to 64 of
//! `A-Z a-z 0-9 . _ -`, not starting with `.`; that keeps it safe as a
//! folder name, in a URI and in logs, and covers balena device UUIDs and
//! names.

use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use time::OffsetDateTime;

use super::ca::{FleetCa, Issued, Leaf};
use super::files;
use super::key::KeyType;
use super::layout::FleetDir;
use super::legacy::{self, LegacyCert};
use super::PkiError;

/// The admin identity `fleet init` creates.
pub const ADMIN_NAME: &str = "admin";
/// The `format` value of fleet.json.
pub const META_FORMAT: &str = "secure-store-fleet/1";

/// Checks a device id (or admin name): `[A-Za-z0-9._-]{1,64}`, no leading `.`.
pub fn check_device_id(id: &str) -> Result<(), PkiError> {
    check_name(id).map_err(|why| PkiError::BadDeviceId(id.to_owned(), why))
}

/// Checks a group name (same rule as a device id).
pub fn check_group(group: &str) -> Result<(), PkiError> {
    check_name(group).map_err(|why| PkiError::BadGroup(group.to_owned(), why))
}

fn check_name(s: &str) -> Result<(), &'static str> {
    const RULE: &str = "use 1 to 64 of A-Z a-z 0-9 . _ - (not starting with '.')";
    if s.is_empty() || s.len() > 64 || s.starts_with('.') {
        return Err(RULE);
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(RULE);
    }
    Ok(())
}

/// Checks a server DNS name (a valid DNS name, not an IP address).
pub fn check_server_name(name: &str) -> Result<(), PkiError> {
    if name.parse::<IpAddr>().is_ok() {
        return Err(PkiError::BadServerName(
            name.to_owned(),
            "an IP address; give it with --server-ip".into(),
        ));
    }
    rustls::pki_types::DnsName::try_from(name)
        .map(|_| ())
        .map_err(|_| PkiError::BadServerName(name.to_owned(), "not a valid DNS name".into()))
}

/// What fleet.json holds (no secrets).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct FleetMeta {
    pub format: String,
    pub name: String,
    pub key_type: KeyType,
    /// RFC 3339, UTC.
    pub created: String,
    pub server_names: Vec<String>,
    pub server_ips: Vec<IpAddr>,
    /// SHA-256 of the CA certificate (hex).
    pub ca_fingerprint: String,
    /// RFC 3339, UTC.
    pub ca_not_after: String,
}

impl FleetMeta {
    /// Reads `FLEET/fleet.json`.
    pub fn load(fleet: &FleetDir) -> Result<FleetMeta, PkiError> {
        let path = fleet.meta();
        if !path.exists() {
            return Err(PkiError::NotAFleet(fleet.root().to_owned()));
        }
        let bytes = files::read(&path)?;
        serde_json::from_slice(&bytes).map_err(|source| PkiError::Meta { path, source })
    }
}

/// Options of `fleet init`.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// DNS names of the server; with no names and no IPs, `localhost`,
    /// `127.0.0.1` and `::1` are used.
    pub server_names: Vec<String>,
    pub server_ips: Vec<IpAddr>,
    pub key_type: KeyType,
    /// Validity of the CA, server and admin certificates.
    pub days: u32,
}

/// What `init` made.
#[derive(Debug)]
pub struct InitReport {
    pub meta: FleetMeta,
    /// Why the Tang keys could not be made, if they could not.
    pub tang_error: Option<String>,
}

/// The server names used when none are given.
pub fn default_server_names() -> (Vec<String>, Vec<IpAddr>) {
    (
        vec!["localhost".to_owned()],
        vec![
            IpAddr::from([127, 0, 0, 1]),
            IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
        ],
    )
}

/// `fleet init`: a new fleet at `root`, which must not exist, or be an
/// empty folder, or hold only the `legacy/` folder of `init --legacy`.
pub fn init(root: &Path, opts: &InitOptions) -> Result<InitReport, PkiError> {
    refuse_existing(root)?;
    for name in &opts.server_names {
        check_server_name(name)?;
    }
    let (names, ips) = if opts.server_names.is_empty() && opts.server_ips.is_empty() {
        default_server_names()
    } else {
        (opts.server_names.clone(), opts.server_ips.clone())
    };
    let fleet_name = fleet_name(root);

    let staging = staging_dir(root)?;
    let result = (|| {
        let fleet = FleetDir::new(&staging);
        let ca = FleetCa::generate(&fleet_name, opts.key_type, opts.days)?;
        let server = ca.issue(
            &Leaf::Server {
                names: names.clone(),
                ips: ips.clone(),
            },
            opts.days,
        )?;
        let admin = ca.issue(
            &Leaf::Admin {
                name: ADMIN_NAME.to_owned(),
            },
            opts.days,
        )?;

        files::create_dir(&fleet.root().join("ca"))?;
        files::write(&fleet.ca_key(), ca.key_pem().as_bytes(), false)?;
        files::write(&fleet.ca_cert(), ca.cert_pem().as_bytes(), false)?;

        let server_dir = fleet.server();
        files::create_dir(server_dir.root())?;
        files::write(&server_dir.ca_cert(), ca.cert_pem().as_bytes(), false)?;
        files::write(&server_dir.key(), server.key_pem.as_bytes(), false)?;
        files::write(&server_dir.cert(), server.cert_pem.as_bytes(), false)?;
        let tang_error = crate::tang::KeySet::generate(&server_dir.tang())
            .err()
            .map(|e| e.to_string());

        write_client(fleet.admin().root(), ca.cert_pem(), &admin, false)?;
        files::create_dir(&fleet.root().join("devices"))?;

        let meta = FleetMeta {
            format: META_FORMAT.to_owned(),
            name: fleet_name.clone(),
            key_type: opts.key_type,
            created: rfc3339(OffsetDateTime::now_utc()),
            server_names: names.clone(),
            server_ips: ips.clone(),
            ca_fingerprint: fingerprint_of_pem(ca.cert_pem())?,
            ca_not_after: rfc3339(ca.not_after()),
        };
        let mut json = serde_json::to_vec_pretty(&meta).map_err(|source| PkiError::Meta {
            path: fleet.meta(),
            source,
        })?;
        json.push(b'\n');
        files::write(&fleet.meta(), &json, false)?;
        Ok(InitReport { meta, tang_error })
    })();
    let report = match result {
        Ok(report) => report,
        Err(e) => {
            let _ = fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    // A legacy certificate made first (`init --legacy`) moves along.
    let legacy_here = root.join(LEGACY);
    let legacy_staged = staging.join(LEGACY);
    let moved_legacy = legacy_here.is_dir();
    if moved_legacy {
        if let Err(e) = fs::rename(&legacy_here, &legacy_staged) {
            let _ = fs::remove_dir_all(&staging);
            return Err(PkiError::io(&legacy_here, e));
        }
    }
    // rename(2) replaces an empty folder and fails on a full one.
    if let Err(e) = fs::rename(&staging, root) {
        if moved_legacy {
            let _ = fs::rename(&legacy_staged, &legacy_here);
        }
        let _ = fs::remove_dir_all(&staging);
        return Err(
            if matches!(e.raw_os_error(), Some(libc::ENOTEMPTY) | Some(libc::EEXIST)) {
                PkiError::Exists(root.to_owned())
            } else {
                PkiError::io(root, e)
            },
        );
    }
    Ok(report)
}

/// The legacy folder's name in a fleet.
const LEGACY: &str = "legacy";

/// Where `enroll` puts the device's files.
#[derive(Debug, Clone)]
pub enum EnrollOut {
    /// `FLEET/devices/<id>/{ca.crt,client.crt,client.key}`.
    Fleet,
    /// `DIR/{ca.crt,client.crt,client.key}` (and the record copy of the
    /// certificate in `FLEET/devices/<id>/client.crt`).
    Dir(PathBuf),
    /// Nothing but the record copy of the certificate; the caller prints
    /// the PEMs.
    Env,
}

/// Options of `fleet enroll`.
#[derive(Debug, Clone)]
pub struct EnrollOptions {
    pub groups: Vec<String>,
    pub days: u32,
    pub out: EnrollOut,
    /// Issue a new certificate for an enrolled device (the old one stays
    /// valid until revoked on the server).
    pub force: bool,
}

/// An enrolled device.
#[derive(Debug)]
pub struct Enrolled {
    pub id: String,
    pub issued: Issued,
    pub ca_pem: String,
    /// Files written, in order.
    pub written: Vec<PathBuf>,
    /// The serial of the certificate this one replaces (`--force`).
    pub replaced_serial: Option<String>,
}

/// `fleet enroll`: a client certificate for device `id`.
pub fn enroll(root: &Path, id: &str, opts: &EnrollOptions) -> Result<Enrolled, PkiError> {
    check_device_id(id)?;
    for group in &opts.groups {
        check_group(group)?;
    }
    let fleet = FleetDir::new(root);
    let _meta = FleetMeta::load(&fleet)?;
    let record = fleet.device(id);
    let replaced_serial = match fs::read(record.cert()) {
        Ok(pem) => {
            let serial = super::tls::certs_from_pem(&pem, "the enrolled certificate")
                .ok()
                .and_then(|c| super::Identity::from_der(&c[0]).ok())
                .map(|i| i.serial().to_owned())
                .unwrap_or_else(|| "unknown".into());
            if !opts.force {
                return Err(PkiError::AlreadyEnrolled(id.to_owned(), serial));
            }
            Some(serial)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(PkiError::io(record.cert(), e)),
    };
    if let EnrollOut::Dir(dir) = &opts.out {
        if !opts.force {
            for name in ["ca.crt", "client.crt", "client.key"] {
                let path = dir.join(name);
                if path.exists() {
                    return Err(PkiError::Exists(path));
                }
            }
        }
    }

    let ca_key = files::read_secret(&fleet.ca_key())?;
    let ca_cert = files::read(&fleet.ca_cert())?;
    let ca = FleetCa::load(&ca_cert, &ca_key)?;
    let issued = ca.issue(
        &Leaf::Device {
            id: id.to_owned(),
            groups: opts.groups.clone(),
        },
        opts.days,
    )?;

    let mut written = Vec::new();
    match &opts.out {
        EnrollOut::Fleet => {
            written = write_client(record.root(), ca.cert_pem(), &issued, opts.force)?;
        }
        EnrollOut::Dir(dir) => {
            written = write_client(dir, ca.cert_pem(), &issued, opts.force)?;
            written.push(write_record(&fleet, id, &issued)?);
        }
        EnrollOut::Env => written.push(write_record(&fleet, id, &issued)?),
    }
    Ok(Enrolled {
        id: id.to_owned(),
        issued,
        ca_pem: ca.cert_pem().to_owned(),
        written,
        replaced_serial,
    })
}

/// One enrolled device, from its record certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRecord {
    pub id: String,
    pub groups: Vec<String>,
    pub serial: String,
    /// RFC 3339, UTC.
    pub not_after: String,
    /// The private key is still in the fleet folder (not handed over yet).
    pub key_in_fleet: bool,
}

/// Every device enrolled in the fleet (by the record certificates in
/// `FLEET/devices/*/client.crt`), sorted by id. Unreadable records are
/// reported as errors, not skipped.
pub fn devices(root: &Path) -> Result<Vec<DeviceRecord>, PkiError> {
    let fleet = FleetDir::new(root);
    FleetMeta::load(&fleet)?;
    let dir = root.join("devices");
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(PkiError::io(&dir, e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| PkiError::io(&dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if check_device_id(&name).is_err() {
            continue; // temp files and strays
        }
        let record = fleet.device(&name);
        let path = record.cert();
        if !path.exists() {
            continue;
        }
        let der = super::tls::load_certs(&path)?.remove(0);
        let bad = |e: &dyn std::fmt::Display| PkiError::Cert(format!("{}: {e}", path.display()));
        let identity = super::Identity::from_der(&der).map_err(|e| bad(&e))?;
        let (_, x509) = x509_parser::parse_x509_certificate(&der).map_err(|e| bad(&e))?;
        let super::Identity::Device { id, groups, serial } = identity else {
            return Err(bad(&"not a device certificate"));
        };
        out.push(DeviceRecord {
            id,
            groups,
            serial,
            not_after: rfc3339(x509.validity().not_after.to_datetime()),
            key_in_fleet: record.key().exists(),
        });
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

/// The record copy of a device certificate, with no key beside it (a key
/// left from an earlier enrollment belongs to the old certificate).
fn write_record(fleet: &FleetDir, id: &str, issued: &Issued) -> Result<PathBuf, PkiError> {
    let record = fleet.device(id);
    files::create_dir(record.root())?;
    for stale in [record.key(), record.ca_cert()] {
        match fs::remove_file(&stale) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(PkiError::io(stale, e)),
        }
    }
    files::write(&record.cert(), issued.cert_pem.as_bytes(), true)?;
    Ok(record.cert())
}

/// Writes `ca.crt`, `client.key`, then `client.crt` into `dir`.
fn write_client(
    dir: &Path,
    ca_pem: &str,
    issued: &Issued,
    overwrite: bool,
) -> Result<Vec<PathBuf>, PkiError> {
    let client = super::layout::ClientDir::new(dir);
    files::create_dir(dir)?;
    files::write(&client.ca_cert(), ca_pem.as_bytes(), overwrite)?;
    files::write(&client.key(), issued.key_pem.as_bytes(), overwrite)?;
    files::write(&client.cert(), issued.cert_pem.as_bytes(), overwrite)?;
    Ok(vec![client.ca_cert(), client.cert(), client.key()])
}

/// `fleet init --legacy`: the original's shared certificate in
/// `FLEET/legacy/` (the fleet folder may exist; `legacy/` must not hold
/// a certificate already).
pub fn init_legacy(root: &Path, names: &[String], ips: &[IpAddr]) -> Result<LegacyCert, PkiError> {
    for name in names {
        check_server_name(name)?;
    }
    let fleet = FleetDir::new(root);
    for path in [fleet.legacy_cert(), fleet.legacy_key()] {
        if path.exists() {
            return Err(PkiError::Exists(path));
        }
    }
    let cert = legacy::generate(names, ips)?;
    let dir = fleet.legacy_cert();
    let dir = dir.parent().unwrap_or(root);
    files::create_dir(dir)?;
    files::write(&fleet.legacy_key(), cert.key_pem.as_bytes(), false)?;
    files::write(&fleet.legacy_cert(), cert.cert_pem.as_bytes(), false)?;
    Ok(cert)
}

/// `root` may be missing, empty, or hold only a `legacy/` folder.
fn refuse_existing(root: &Path) -> Result<(), PkiError> {
    match fs::read_dir(root) {
        Ok(entries) => {
            for entry in entries {
                let entry = entry.map_err(|e| PkiError::io(root, e))?;
                let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
                if !(is_dir && entry.file_name() == LEGACY) {
                    return Err(PkiError::Exists(root.to_owned()));
                }
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => {
            Err(PkiError::Exists(root.to_owned()))
        }
        Err(e) => Err(PkiError::io(root, e)),
    }
}

/// A hidden 0700 folder beside `root`, on the same file system.
fn staging_dir(root: &Path) -> Result<PathBuf, PkiError> {
    let parent = match root.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    files::create_dir(&parent)?;
    let name = format!(
        ".{}.partial-{}",
        fleet_name(root),
        hex::encode(crate::rng::bytes::<6>())
    );
    let staging = parent.join(name);
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .mode(files::DIR_MODE)
        .create(&staging)
        .map_err(|e| PkiError::io(&staging, e))?;
    Ok(staging)
}

fn fleet_name(root: &Path) -> String {
    root.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| !n.is_empty() && n != "." && n != "..")
        .unwrap_or_else(|| "fleet".to_owned())
}

fn fingerprint_of_pem(pem: &str) -> Result<String, PkiError> {
    let der = super::tls::certs_from_pem(pem.as_bytes(), "the CA certificate")?;
    Ok(super::fingerprint(&der[0]))
}

/// RFC 3339 in UTC, to the second.
pub fn rfc3339(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_ids() {
        for ok in ["a", "dev-1", "A.b_c", &"x".repeat(64), "0123abcd"] {
            check_device_id(ok).unwrap();
        }
        for bad in [
            "",
            ".hidden",
            "a/b",
            "a b",
            "é",
            &"x".repeat(65),
            "..",
            "a\n",
        ] {
            let err = check_device_id(bad).unwrap_err().to_string();
            assert!(err.starts_with("invalid device id"), "{err}");
        }
    }

    #[test]
    fn server_names() {
        check_server_name("store.example.com").unwrap();
        check_server_name("localhost").unwrap();
        assert!(check_server_name("10.0.0.1").is_err());
        assert!(check_server_name("bad name").is_err());
    }

    #[test]
    fn rfc3339_format() {
        let t = OffsetDateTime::from_unix_timestamp(0).unwrap();
        assert_eq!(rfc3339(t), "1970-01-01T00:00:00Z");
    }
}
