//! Where things live in a fleet directory (`secure-store fleet init FLEET`).
//!
//! ```text
//! FLEET/                     0700, operator side; never copied whole to a server
//!   fleet.json               names, key type, creation time (no secrets)
//!   ca/ca.crt  ca/ca.key     the fleet CA; ca.key stays with the operator
//!   server/                  copy THIS folder to the Store Server
//!     ca.crt                 verifies client certificates
//!     server.crt server.key  the server's TLS identity
//!     tang/*.jwk             Tang signing + exchange keys (tangd's own format)
//!     state.db               server state, created by the server (default data dir)
//!   admin/                   the operator's admin client identity
//!     ca.crt client.crt client.key
//!   devices/<DEVICE>/        written by `fleet enroll` (unless --out / --env)
//!     ca.crt client.crt client.key
//!   legacy/                  `fleet init --legacy`: the original's one cert
//!     cert.pem key.pem
//! ```
//!
//! Identities in client certificates: a device has CN = device id and the
//! URI SAN [`DEVICE_URI_PREFIX`]`<id>`, its groups as OU attributes; an
//! admin has the URI SAN [`ADMIN_URI_PREFIX`]`<name>`. The server decides
//! who is an admin from that SAN on a certificate the fleet CA issued.

use std::path::{Path, PathBuf};

/// URI SAN prefix that marks a device certificate; the device id follows.
pub const DEVICE_URI_PREFIX: &str = "urn:secure-store:device:";
/// URI SAN prefix that marks an admin certificate; the admin name follows.
pub const ADMIN_URI_PREFIX: &str = "urn:secure-store:admin:";

/// The paths of one fleet directory.
#[derive(Debug, Clone)]
pub struct FleetDir {
    root: PathBuf,
}

/// The paths of a server directory (`FLEET/server`, or a copy of it).
#[derive(Debug, Clone)]
pub struct ServerDir {
    root: PathBuf,
}

/// The paths of one client identity folder (`FLEET/admin`, `FLEET/devices/<id>`).
#[derive(Debug, Clone)]
pub struct ClientDir {
    root: PathBuf,
}

impl FleetDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        FleetDir { root: root.into() }
    }
    pub fn root(&self) -> &Path {
        &self.root
    }
    pub fn meta(&self) -> PathBuf {
        self.root.join("fleet.json")
    }
    pub fn ca_cert(&self) -> PathBuf {
        self.root.join("ca").join("ca.crt")
    }
    pub fn ca_key(&self) -> PathBuf {
        self.root.join("ca").join("ca.key")
    }
    pub fn server(&self) -> ServerDir {
        ServerDir::new(self.root.join("server"))
    }
    pub fn admin(&self) -> ClientDir {
        ClientDir::new(self.root.join("admin"))
    }
    pub fn device(&self, id: &str) -> ClientDir {
        ClientDir::new(self.root.join("devices").join(id))
    }
    pub fn legacy_cert(&self) -> PathBuf {
        self.root.join("legacy").join("cert.pem")
    }
    pub fn legacy_key(&self) -> PathBuf {
        self.root.join("legacy").join("key.pem")
    }
}

impl ServerDir {
    /// `path` is either a fleet directory (its `server/` is used) or a
    /// server directory itself (what the operator copied to the server).
    pub fn locate(path: &Path) -> Self {
        let inner = path.join("server");
        if inner.join("server.crt").exists() {
            ServerDir::new(inner)
        } else {
            ServerDir::new(path)
        }
    }
    pub fn new(root: impl Into<PathBuf>) -> Self {
        ServerDir { root: root.into() }
    }
    pub fn root(&self) -> &Path {
        &self.root
    }
    pub fn ca_cert(&self) -> PathBuf {
        self.root.join("ca.crt")
    }
    pub fn cert(&self) -> PathBuf {
        self.root.join("server.crt")
    }
    pub fn key(&self) -> PathBuf {
        self.root.join("server.key")
    }
    pub fn tang(&self) -> PathBuf {
        self.root.join("tang")
    }
    pub fn state_db(&self) -> PathBuf {
        self.root.join("state.db")
    }
}

impl ClientDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        ClientDir { root: root.into() }
    }
    pub fn root(&self) -> &Path {
        &self.root
    }
    pub fn ca_cert(&self) -> PathBuf {
        self.root.join("ca.crt")
    }
    pub fn cert(&self) -> PathBuf {
        self.root.join("client.crt")
    }
    pub fn key(&self) -> PathBuf {
        self.root.join("client.key")
    }
}
