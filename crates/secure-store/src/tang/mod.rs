//! Tang on the server ([`KeySet`]) and the clevis tang pin on the client
//! ([`clevis`]), over the pure JOSE of `ssformat::jose`.
//!
//! The key directory is tangd's (tang 11): one private JWK per file, named
//! `<S256 thumbprint>.jwk`, compact JSON with sorted keys; rotated keys are
//! hidden as `.<thumbprint>.jwk` and still answer `/rec`. A directory made
//! by `tangd-keygen` loads here, and one made by [`KeySet::generate`] serves
//! with tangd. Protocol facts: `shared/design/tang-notes.md` §1.2–1.6; spec:
//! `docs/formats/tang-jose.md`.
//!
//! [`KeySet::adv`] and [`KeySet::rec`] answer what tangd answers, byte for
//! byte for `/rec` (the advertisement's ECDSA signatures are randomised,
//! as tangd's are), with tangd's statuses ([`TangError::status`]). Unlike
//! tangd, which re-reads the directory for every request, a `KeySet`
//! parses it once: thumbprints (all five hashes), keys and the signed
//! payload are precomputed, so `rec` is one JSON parse and one scalar
//! multiplication. It is `Send + Sync`; share it behind an `Arc` and
//! [`KeySet::load`] a new one after a rotation.
//!
//! Replicas sharing one state database keep the keys there instead, sealed
//! under the operator's key-encryption key ([`sealed`]); they build their
//! set with [`KeySet::from_jwks`] from the unsealed texts.
//!
//! Differences from tangd, on purpose: a `.jwk` file that is not a valid
//! P-521 ES512 or ECMR private key is an error naming the file (tangd
//! skips bad JSON and fails later); an empty directory is not populated by
//! `load` (call [`KeySet::generate`]); an advertisement lists each key's
//! `alg`, `crv`, `key_ops` (public operations only), `kty`, `x`, `y`.

pub mod clevis;
pub mod sealed;

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde_json::Value;
use ssformat::jose::ecmr::{self, RecError, RecRequest};
use ssformat::jose::jwk::{is_thumbprint_syntax, permits, COORD_LEN};
use ssformat::jose::{b64, jws, JoseError, PrivateKey, ThpHash};
use zeroize::{Zeroize, Zeroizing};

/// The `Content-Type` tangd sends with `GET /adv` replies.
pub const ADV_CONTENT_TYPE: &str = "application/jose+json";
/// The `Content-Type` tangd sends with `POST /rec` replies (and clevis with requests).
pub const REC_CONTENT_TYPE: &str = "application/jwk+json";

/// The protected header of every advertisement signature (tangd's).
const ADV_PROTECTED: &str = r#"{"alg":"ES512","cty":"jwk-set+json"}"#;

/// A Tang failure, with the HTTP status tangd 11 answers for it.
#[derive(Debug, thiserror::Error)]
pub enum TangError {
    /// 400: the request body is malformed or not a usable point.
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    /// 403: the request or the named key does not allow `deriveKey`.
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    /// 404: no key has this thumbprint (or it is the wrong kind of key).
    #[error("no {kind} key with thumbprint {thp:?}")]
    NotFound { kind: &'static str, thp: String },
    /// 500: the key set has no advertised signing key.
    #[error("no usable Tang keys (an advertised ES512 signing key is needed)")]
    NoKeys,
    /// 500: a key held in memory (e.g. unsealed from the database) that is
    /// not a P-521 Tang key.
    #[error("Tang key {name}: {reason}")]
    BadKey { name: String, reason: String },
    /// 500: a key file that is not a P-521 Tang key.
    #[error("Tang key file {}: {reason}", path.display())]
    BadKeyFile { path: PathBuf, reason: String },
    /// 500: reading or writing the key directory.
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// The advertisement given to [`clevis::seal`] is not acceptable.
    #[error("advertisement: {0}")]
    Advertisement(JoseError),
    /// A JOSE operation failed.
    #[error("{0}")]
    Jose(JoseError),
}

impl TangError {
    /// The HTTP status tangd answers for this error (400, 403, 404, 500).
    pub fn status(&self) -> u16 {
        match self {
            TangError::BadRequest(_) => 400,
            TangError::Forbidden(_) => 403,
            TangError::NotFound { .. } => 404,
            _ => 500,
        }
    }
}

impl From<RecError> for TangError {
    fn from(e: RecError) -> Self {
        match e {
            RecError::BadRequest(m) => TangError::BadRequest(m),
            RecError::Forbidden(m) => TangError::Forbidden(m),
        }
    }
}

/// What a key is for, from its `alg`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// `ES512`: signs advertisements.
    Signing,
    /// `ECMR`: the McCallum-Relyea exchange.
    Exchange,
}

#[derive(Debug)]
struct Key {
    private: PrivateKey,
    role: Role,
    hidden: bool,
    /// S256 thumbprint (the file name for tangd-made keys).
    s256: String,
    /// jose's permission checks, as tangd makes them (see `load`).
    can_sign_and_verify: bool,
    can_sign: bool,
    derive_advertised: bool,
    derive_required: bool,
    /// This key's entry in the advertisement payload (tangd's spacing).
    payload_entry: String,
}

/// The server's Tang keys, loaded from a key directory in tangd's format.
#[derive(Debug)]
pub struct KeySet {
    keys: Vec<Key>,
    /// Every thumbprint (5 hashes) of every key → index in `keys`; the
    /// first key wins, advertised keys before hidden ones (tangd's order).
    by_thp: HashMap<String, usize>,
    /// Advertised signing keys: they sign every advertisement.
    signers: Vec<usize>,
    /// The advertisement payload, base64url.
    payload_b64: String,
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> TangError + 'a {
    move |source| TangError::Io {
        what,
        path: path.to_owned(),
        source,
    }
}

fn random<const N: usize>() -> [u8; N] {
    crate::rng::bytes::<N>()
}

/// Writes `bytes` to `dir/name` through a temporary file and a rename, mode 0600.
fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), TangError> {
    let tmp = dir.join(format!(".{name}.{}.tmp", hex::encode(random::<6>())));
    let path = dir.join(name);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io_err("cannot create Tang key file", &tmp))?;
    let written = file
        .write_all(bytes)
        .and_then(|_| file.sync_all())
        .map_err(io_err("cannot write Tang key file", &tmp));
    drop(file);
    if let Err(e) = written
        .and_then(|_| fs::rename(&tmp, &path).map_err(io_err("cannot rename Tang key file", &tmp)))
    {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(())
}

/// The `.jwk` files of `dir`: (file name, hidden), sorted by name.
fn jwk_files(dir: &Path) -> Result<Vec<(String, bool)>, TangError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err("cannot read Tang key directory", dir))? {
        let entry = entry.map_err(io_err("cannot read Tang key directory", dir))?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        // tangd: the text after the last dot is "jwk".
        if name.rsplit_once('.').is_some_and(|(_, ext)| ext == "jwk") {
            let hidden = name.starts_with('.');
            out.push((name, hidden));
        }
    }
    out.sort();
    Ok(out)
}

/// One key file read from a directory: (file name, hidden, contents).
pub type JwkFile = (String, bool, Zeroizing<Vec<u8>>);

/// The `.jwk` files of `dir` with their contents, sorted by name.
pub fn read_jwk_files(dir: &Path) -> Result<Vec<JwkFile>, TangError> {
    let mut out = Vec::new();
    for (name, hidden) in jwk_files(dir)? {
        let path = dir.join(&name);
        let bytes =
            Zeroizing::new(fs::read(&path).map_err(io_err("cannot read Tang key file", &path))?);
        out.push((name, hidden, bytes));
    }
    Ok(out)
}

/// Parses one private Tang JWK (the `d` member of the parsed JSON is
/// zeroized); the error is the reason, without the key's name.
fn parse_key(bytes: &[u8], hidden: bool) -> Result<Key, String> {
    let mut obj: Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON ({e})"))?;
    let private = PrivateKey::from_jwk(&obj).map_err(|e| e.to_string());
    if let Some(Value::String(d)) = obj.get_mut("d") {
        d.zeroize();
    }
    let private = private?;
    let role = match obj.get("alg").and_then(Value::as_str) {
        Some("ES512") => Role::Signing,
        Some("ECMR") => Role::Exchange,
        _ => return Err("alg is neither ES512 nor ECMR".into()),
    };
    let s256 = private.public().thumbprint(ThpHash::S256);
    Ok(Key {
        role,
        hidden,
        s256,
        can_sign_and_verify: permits(&obj, false, "sign") && permits(&obj, false, "verify"),
        can_sign: permits(&obj, false, "sign"),
        derive_advertised: permits(&obj, false, "deriveKey"),
        derive_required: permits(&obj, true, "deriveKey"),
        payload_entry: payload_entry(&obj, &private),
        private,
    })
}

fn new_key(role: Role) -> Result<(String, Zeroizing<String>), TangError> {
    let random = Zeroizing::new(random::<COORD_LEN>());
    let key = PrivateKey::from_random(&random).map_err(TangError::Jose)?;
    let text = match role {
        Role::Signing => key.to_jwk_string("ES512", &["sign", "verify"]),
        Role::Exchange => key.to_jwk_string("ECMR", &["deriveKey"]),
    };
    Ok((key.public().thumbprint(ThpHash::S256), text))
}

/// The payload entry for a key: the public members with public operations
/// only, sorted, with jansson's default separators (as tangd writes).
fn payload_entry(obj: &Value, private: &PrivateKey) -> String {
    let mut parts = Vec::new();
    if let Some(alg) = obj.get("alg").and_then(Value::as_str) {
        parts.push(format!(r#""alg": {}"#, ssformat::jose::json::string(alg)));
    }
    parts.push(r#""crv": "P-521""#.to_owned());
    if let Some(Value::Array(ops)) = obj.get("key_ops") {
        let public: Vec<String> = ops
            .iter()
            .filter_map(Value::as_str)
            .filter(|op| !matches!(*op, "sign" | "decrypt" | "unwrapKey"))
            .map(ssformat::jose::json::string)
            .collect();
        parts.push(format!(r#""key_ops": [{}]"#, public.join(", ")));
    }
    parts.push(r#""kty": "EC""#.to_owned());
    parts.push(format!(r#""x": "{}""#, b64::encode(&private.public().x())));
    parts.push(format!(r#""y": "{}""#, b64::encode(&private.public().y())));
    format!("{{{}}}", parts.join(", "))
}

impl KeySet {
    /// Creates `dir` (0700) with one ES512 signing and one ECMR exchange key (files 0600).
    ///
    /// The files are tangd's: `<S256 thumbprint>.jwk`, compact sorted JSON,
    /// key_ops `["sign","verify"]` and `["deriveKey"]`. An existing
    /// directory is kept (its mode is not changed) and gains a new pair.
    pub fn generate(dir: &Path) -> Result<(), TangError> {
        if !dir.is_dir() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io_err("cannot create Tang key directory", dir))?;
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
                .map_err(io_err("cannot set the mode of", dir))?;
        }
        for role in [Role::Signing, Role::Exchange] {
            let (thp, text) = new_key(role)?;
            write_atomic(dir, &format!("{thp}.jwk"), text.as_bytes())?;
        }
        Ok(())
    }

    /// Hides the current keys (`.<thp>.jwk`) and generates a new pair.
    ///
    /// The new pair is written first, so the directory always holds an
    /// advertised pair. Hidden keys keep answering `rec` until deleted;
    /// delete them once every client is rebound.
    pub fn rotate(dir: &Path) -> Result<(), TangError> {
        let current: Vec<String> = jwk_files(dir)?
            .into_iter()
            .filter(|(_, hidden)| !hidden)
            .map(|(name, _)| name)
            .collect();
        Self::generate(dir)?;
        for name in current {
            let from = dir.join(&name);
            fs::rename(&from, dir.join(format!(".{name}")))
                .map_err(io_err("cannot hide rotated Tang key", &from))?;
        }
        Ok(())
    }

    /// Loads every key (hidden ones too) from `dir`.
    pub fn load(dir: &Path) -> Result<KeySet, TangError> {
        let mut keys = Vec::new();
        for (name, hidden, bytes) in read_jwk_files(dir)? {
            let path = dir.join(&name);
            let key = parse_key(&bytes, hidden).map_err(|reason| TangError::BadKeyFile {
                path: path.clone(),
                reason,
            })?;
            keys.push(key);
        }
        Ok(Self::build(keys))
    }

    /// A key set from private JWK texts held in memory: `(name, JSON,
    /// hidden)`, e.g. keys unsealed from the state database
    /// (`tang::sealed`). The same checks as [`KeySet::load`]; an error
    /// names the key by `name`. The texts are not kept (the caller
    /// zeroizes them).
    pub fn from_jwks<'a>(
        jwks: impl IntoIterator<Item = (&'a str, &'a [u8], bool)>,
    ) -> Result<KeySet, TangError> {
        let mut keys = Vec::new();
        for (name, json, hidden) in jwks {
            keys.push(parse_key(json, hidden).map_err(|reason| TangError::BadKey {
                name: name.to_owned(),
                reason,
            })?);
        }
        Ok(Self::build(keys))
    }

    /// A new ES512 signing key and ECMR exchange key, in memory: `(S256
    /// thumbprint, private JWK text)` each, the texts tangd writes.
    pub fn generate_jwks() -> Result<Vec<(String, Zeroizing<String>)>, TangError> {
        [Role::Signing, Role::Exchange]
            .into_iter()
            .map(new_key)
            .collect()
    }

    /// The S256 thumbprint of a private Tang JWK text (checked as
    /// [`KeySet::from_jwks`] checks it).
    pub fn jwk_thumbprint(name: &str, json: &[u8]) -> Result<String, TangError> {
        parse_key(json, false)
            .map(|k| k.s256)
            .map_err(|reason| TangError::BadKey {
                name: name.to_owned(),
                reason,
            })
    }

    fn build(mut keys: Vec<Key>) -> KeySet {
        // tangd looks keys up advertised first, then hidden.
        keys.sort_by_key(|k| k.hidden);
        let mut by_thp = HashMap::new();
        for (i, key) in keys.iter().enumerate() {
            let input = key.private.public().thumbprint_input();
            for hash in ThpHash::ALL {
                by_thp.entry(hash.hash_b64(input.as_bytes())).or_insert(i);
            }
        }
        let mut signers = Vec::new();
        let mut entries = Vec::new();
        for (i, key) in keys.iter().enumerate().filter(|(_, k)| !k.hidden) {
            match key.role {
                Role::Signing if key.can_sign_and_verify => {
                    signers.push(i);
                    entries.push(key.payload_entry.as_str());
                }
                Role::Exchange if key.derive_advertised => entries.push(key.payload_entry.as_str()),
                _ => {}
            }
        }
        let payload = format!(r#"{{"keys": [{}]}}"#, entries.join(", "));
        KeySet {
            keys,
            by_thp,
            signers,
            payload_b64: b64::encode(payload.as_bytes()),
        }
    }

    fn find(&self, thp: &str) -> Option<&Key> {
        self.by_thp.get(thp).map(|&i| &self.keys[i])
    }

    /// The body of `GET /adv` (`thp: None`) or `GET /adv/{thp}`.
    ///
    /// A flattened JWS signed by every advertised signing key; with `thp`,
    /// one more signature by the signing key (hidden or not) with that
    /// thumbprint (any hash), and then the general serialization. An
    /// empty `thp` is `/adv/`, the same as `None`. Unknown `thp`, or the
    /// thumbprint of an exchange key: 404. No advertised signing key: 500.
    pub fn adv(&self, thp: Option<&str>) -> Result<Vec<u8>, TangError> {
        if self.signers.is_empty() {
            return Err(TangError::NoKeys);
        }
        let mut signers: Vec<&PrivateKey> = self
            .signers
            .iter()
            .map(|&i| &self.keys[i].private)
            .collect();
        if let Some(thp) = thp.filter(|t| !t.is_empty()) {
            let not_found = || TangError::NotFound {
                kind: "signing",
                thp: thp.to_owned(),
            };
            if !is_thumbprint_syntax(thp) {
                return Err(not_found());
            }
            let key = self.find(thp).ok_or_else(not_found)?;
            if key.role != Role::Signing || !key.can_sign {
                return Err(not_found());
            }
            signers.push(&key.private);
        }
        let with_random: Vec<(&PrivateKey, [u8; COORD_LEN])> = signers
            .into_iter()
            .map(|k| (k, random::<COORD_LEN>()))
            .collect();
        let jws =
            jws::sign(&self.payload_b64, ADV_PROTECTED, &with_random).map_err(TangError::Jose)?;
        Ok(jws.into_bytes())
    }

    /// The body of `POST /rec/{kid}`; `kid` may be any tangd-accepted thumbprint.
    ///
    /// Checks in tangd's order: the body (400/403, see
    /// `ssformat::jose::ecmr`), usable keys (500), the `kid` (404), the
    /// key's permission to derive (403), the point (400). The reply is
    /// tangd's exact bytes.
    pub fn rec(&self, kid: &str, body: &[u8]) -> Result<Vec<u8>, TangError> {
        let not_found = || TangError::NotFound {
            kind: "exchange",
            thp: kid.to_owned(),
        };
        // tangd's route takes only [0-9A-Za-z_-]+: anything else is 404
        // before the body is read.
        if !is_thumbprint_syntax(kid) {
            return Err(not_found());
        }
        let request = RecRequest::parse(body)?;
        if self.signers.is_empty() {
            return Err(TangError::NoKeys);
        }
        let key = self.find(kid).ok_or_else(not_found)?;
        if !key.derive_required {
            return Err(TangError::Forbidden("the key does not allow deriveKey"));
        }
        if key.role != Role::Exchange {
            return Err(TangError::Forbidden("the key is not an ECMR key"));
        }
        let y = request.exchange(&key.private)?;
        Ok(ecmr::reply_json(&y).into_bytes())
    }

    /// The S256 thumbprint of the exchange key `kid` refers to (its store name), if any.
    pub fn exchange_key_id(&self, kid: &str) -> Option<String> {
        self.find(kid)
            .filter(|k| k.role == Role::Exchange)
            .map(|k| k.s256.clone())
    }

    /// S256 thumbprints of the advertised signing keys (what a client pins
    /// as `thp`; `tang-show-keys` prints these).
    pub fn signing_key_ids(&self) -> Vec<String> {
        self.signers
            .iter()
            .map(|&i| self.keys[i].s256.clone())
            .collect()
    }

    /// S256 thumbprints of every exchange key, advertised or hidden.
    pub fn exchange_key_ids(&self) -> Vec<String> {
        self.keys
            .iter()
            .filter(|k| k.role == Role::Exchange)
            .map(|k| k.s256.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ssformat::jose::clevis::verify_advertisement;
    use ssformat::jose::jws::Jws;

    fn statics<T: Send + Sync>() {}

    #[test]
    fn send_sync() {
        statics::<KeySet>();
    }

    #[test]
    fn generate_load_adv_rec_rotate() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("tang");
        KeySet::generate(&dir).unwrap();
        assert_eq!(
            fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let files = jwk_files(&dir).unwrap();
        assert_eq!(files.len(), 2);
        for (name, _) in &files {
            let path = dir.join(name);
            assert_eq!(
                fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
            let text = fs::read_to_string(&path).unwrap();
            let key = PrivateKey::from_jwk(&serde_json::from_str(&text).unwrap()).unwrap();
            assert_eq!(
                format!("{}.jwk", key.public().thumbprint(ThpHash::S256)),
                *name
            );
        }
        let set = KeySet::load(&dir).unwrap();
        let adv = set.adv(None).unwrap();
        let checked = verify_advertisement(&adv, Some(&set.signing_key_ids()[0])).unwrap();
        let kid = checked.exchange_key.thumbprint(ThpHash::S256);
        assert_eq!(set.exchange_key_id(&kid), Some(kid.clone()));
        assert_eq!(
            set.exchange_key_id(&checked.exchange_key.thumbprint(ThpHash::S1)),
            Some(kid.clone())
        );
        assert_eq!(set.exchange_key_id(&set.signing_key_ids()[0]), None);
        let x = PrivateKey::from_random(&[3; 66]).unwrap();
        let reply = set
            .rec(&kid, ecmr::request_json(x.public()).as_bytes())
            .unwrap();
        assert_eq!(reply.len(), 253);
        assert_eq!(
            set.rec("nope", x.public().to_jwk().to_string().as_bytes())
                .unwrap_err()
                .status(),
            404
        );
        assert_eq!(
            set.rec("nope", b"{}").unwrap_err().status(),
            400,
            "body checked first"
        );
        assert_eq!(
            set.rec(
                &set.signing_key_ids()[0],
                x.public().to_jwk().to_string().as_bytes()
            )
            .unwrap_err()
            .status(),
            403
        );
        assert_eq!(set.adv(Some(&kid)).unwrap_err().status(), 404);
        assert_eq!(set.adv(Some("a/b")).unwrap_err().status(), 404);

        let old_sig = set.signing_key_ids()[0].clone();
        KeySet::rotate(&dir).unwrap();
        let rotated = KeySet::load(&dir).unwrap();
        assert_eq!(jwk_files(&dir).unwrap().iter().filter(|f| f.1).count(), 2);
        assert_eq!(
            rotated
                .rec(&kid, ecmr::request_json(x.public()).as_bytes())
                .unwrap(),
            reply
        );
        let two = rotated.adv(Some(&old_sig)).unwrap();
        let jws = Jws::parse(&two).unwrap();
        assert_eq!(jws.signatures().len(), 2);
        assert!(
            verify_advertisement(&two, Some(&old_sig)).is_err(),
            "old key is not in the payload"
        );
        assert!(verify_advertisement(&rotated.adv(None).unwrap(), Some(&old_sig)).is_err());
    }

    #[test]
    fn bad_key_file_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        KeySet::generate(tmp.path()).unwrap();
        fs::write(tmp.path().join("broken.jwk"), "{").unwrap();
        let err = KeySet::load(tmp.path()).unwrap_err().to_string();
        assert!(
            err.contains("broken.jwk") && err.contains("not JSON"),
            "{err}"
        );
        fs::write(
            tmp.path().join("broken.jwk"),
            r#"{"kty":"EC","crv":"P-256"}"#,
        )
        .unwrap();
        let err = KeySet::load(tmp.path()).unwrap_err().to_string();
        assert!(err.contains("broken.jwk") && err.contains("P-521"), "{err}");
        fs::remove_file(tmp.path().join("broken.jwk")).unwrap();
        fs::write(tmp.path().join("notes.txt"), "ignored").unwrap();
        assert!(KeySet::load(tmp.path()).is_ok());
    }

    #[test]
    fn from_jwks_matches_the_directory_and_names_a_bad_key() {
        let tmp = tempfile::tempdir().unwrap();
        KeySet::generate(tmp.path()).unwrap();
        KeySet::rotate(tmp.path()).unwrap();
        let files = read_jwk_files(tmp.path()).unwrap();
        let set = KeySet::from_jwks(
            files
                .iter()
                .map(|(name, hidden, bytes)| (name.as_str(), bytes.as_slice(), *hidden)),
        )
        .unwrap();
        let dir = KeySet::load(tmp.path()).unwrap();
        assert_eq!(set.signing_key_ids(), dir.signing_key_ids());
        assert_eq!(set.payload_b64, dir.payload_b64);
        assert_eq!(set.exchange_key_ids().len(), 2);
        for (name, _, bytes) in &files {
            let thp = KeySet::jwk_thumbprint(name, bytes).unwrap();
            assert_eq!(format!("{thp}.jwk"), name.trim_start_matches('.'));
        }
        let err = KeySet::from_jwks([("row-7", &b"{"[..], false)])
            .unwrap_err()
            .to_string();
        assert!(err.contains("row-7") && err.contains("not JSON"), "{err}");
    }

    #[test]
    fn empty_set_is_500() {
        let tmp = tempfile::tempdir().unwrap();
        let set = KeySet::load(tmp.path()).unwrap();
        assert_eq!(set.adv(None).unwrap_err().status(), 500);
        let x = PrivateKey::from_random(&[3; 66]).unwrap();
        assert_eq!(
            set.rec("abc", x.public().to_jwk().to_string().as_bytes())
                .unwrap_err()
                .status(),
            500
        );
        assert_eq!(set.rec("abc", b"nope").unwrap_err().status(), 400);
    }
}
