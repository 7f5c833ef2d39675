//! A store on disk: where its parts are, and how it is created, opened and
//! re-keyed.
//!
//! The layout is the original Go secure-store's: `STORE/encrypt.conf` is an
//! rclone config encrypted with the store key (`RCLONE_ENCRYPT_V0:`),
//! holding a crypt remote `encrypted_storage` whose `remote = storage`
//! points at `STORE/storage/`, the encrypted files. rclone resolves a bare
//! relative remote against its working directory, so `cd STORE &&
//! RCLONE_CONFIG_PASS=KEY rclone --config encrypt.conf ls
//! encrypted_storage:` works; we resolve it against `STORE` itself.

use std::fs;
use std::io::Write;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use base64::Engine;
use ssformat::rclone::config::{self, ConfigError, ConfigFile, CryptSettings};
use ssformat::rclone::content::BlockCipher;
use ssformat::rclone::name::{NameCipher, NameEncoding, NameMode};
use zeroize::Zeroizing;

use super::output::TempFile;
use super::CryptError;
use crate::secret::StoreKey;

/// The store config's file name inside a store.
pub const CONFIG_FILE: &str = "encrypt.conf";
/// The encrypted files' folder inside a store.
pub const STORAGE_DIR: &str = "storage";
/// The crypt remote's name in the config (the original project's).
pub const CRYPT_REMOTE: &str = "encrypted_storage";
/// The local remote's name in the config (kept for rclone users).
pub const LOCAL_REMOTE: &str = "storage";

/// Where a store's config and encrypted files are.
#[derive(Clone, Debug)]
pub struct StorePaths {
    /// The store folder; a relative crypt `remote` is resolved against it.
    pub root: PathBuf,
    /// The encrypted config (default `ROOT/encrypt.conf`).
    pub config: PathBuf,
    /// The encrypted files, when given explicitly (else from the config).
    pub storage: Option<PathBuf>,
}

impl StorePaths {
    /// The standard layout under `root`, with optional overrides for
    /// original-project files laid out differently.
    pub fn new(root: &Path, config: Option<PathBuf>, storage: Option<PathBuf>) -> Self {
        StorePaths {
            root: root.to_owned(),
            config: config.unwrap_or_else(|| root.join(CONFIG_FILE)),
            storage,
        }
    }
}

/// Choices made once, when a store is created (rclone's own option names).
/// `Debug` leaves `password2` out.
#[derive(Clone)]
pub struct InitOptions {
    pub filename_encryption: NameMode,
    pub filename_encoding: NameEncoding,
    pub directory_name_encryption: bool,
    /// rclone's `password2` (the scrypt salt); `None` = rclone's built-in salt.
    pub password2: Option<Zeroizing<String>>,
}

impl std::fmt::Debug for InitOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InitOptions")
            .field("filename_encryption", &self.filename_encryption)
            .field("filename_encoding", &self.filename_encoding)
            .field("directory_name_encryption", &self.directory_name_encryption)
            .field("password2", &self.password2.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            filename_encryption: NameMode::Standard,
            filename_encoding: NameEncoding::Base32,
            directory_name_encryption: true,
            password2: None,
        }
    }
}

/// An open store: the crypt settings and the ciphers derived from them.
#[derive(Debug)]
pub struct Store {
    storage: PathBuf,
    settings: CryptSettings,
    names: NameCipher,
    blocks: BlockCipher,
}

impl Store {
    /// Creates a new store at `paths` (the folder must be absent or empty)
    /// with a fresh random crypt password, sealed under `key`.
    pub fn init(
        paths: &StorePaths,
        key: &StoreKey,
        options: &InitOptions,
    ) -> Result<Store, CryptError> {
        let root = &paths.root;
        match fs::read_dir(root) {
            Ok(mut entries) => {
                if entries.next().is_some() {
                    return Err(CryptError::Layout {
                        path: root.clone(),
                        reason: "is not empty; a new store needs an empty or absent folder".into(),
                    });
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(root)
                    .map_err(CryptError::io(root))?;
            }
            Err(e) => return Err(CryptError::io(root)(e)),
        }
        // The original project's crypt password: base64url of 32 random bytes.
        let raw = Zeroizing::new(crate::rng::bytes::<32>());
        let password = Zeroizing::new(base64::engine::general_purpose::URL_SAFE.encode(*raw));
        let settings = CryptSettings {
            remote: STORAGE_DIR.to_owned(),
            password,
            password2: options.password2.clone().unwrap_or_default(),
            filename_encryption: options.filename_encryption,
            filename_encoding: options.filename_encoding,
            directory_name_encryption: options.directory_name_encryption,
            suffix: ".bin".to_owned(),
        };
        let mut conf = ConfigFile::default();
        conf.add_section(LOCAL_REMOTE).set("type", "local");
        settings.write_to(
            conf.add_section(CRYPT_REMOTE),
            crate::rng::bytes(),
            crate::rng::bytes(),
        );
        let storage = paths
            .storage
            .clone()
            .unwrap_or_else(|| root.join(STORAGE_DIR));
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&storage)
            .map_err(CryptError::io(&storage))?;
        let plaintext = Zeroizing::new(conf.to_string());
        write_config(&paths.config, &plaintext, key, false)?;
        Store::from_settings(paths, settings, Some(storage))
    }

    /// Opens the store at `paths` with `key`.
    pub fn open(paths: &StorePaths, key: &StoreKey) -> Result<Store, CryptError> {
        let conf = read_config(&paths.config, key)?;
        let settings = crypt_section(&conf, &paths.config)?;
        Store::from_settings(paths, settings, None)
    }

    fn from_settings(
        paths: &StorePaths,
        settings: CryptSettings,
        storage: Option<PathBuf>,
    ) -> Result<Store, CryptError> {
        let storage = match storage.or_else(|| paths.storage.clone()) {
            Some(s) => s,
            None => resolve_remote(paths, &settings.remote)?,
        };
        let keys = settings.keys().map_err(|error| CryptError::Keys {
            path: paths.config.clone(),
            error,
        })?;
        let names = settings.name_cipher(&keys);
        let blocks = BlockCipher::new(&keys);
        Ok(Store {
            storage,
            settings,
            names,
            blocks,
        })
    }

    /// The folder of encrypted files.
    pub fn storage(&self) -> &Path {
        &self.storage
    }

    /// The crypt settings (passwords revealed: do not print).
    pub fn settings(&self) -> &CryptSettings {
        &self.settings
    }

    /// Name encryption of this store.
    pub fn names(&self) -> &NameCipher {
        &self.names
    }

    /// Content encryption of this store.
    pub fn blocks(&self) -> &BlockCipher {
        &self.blocks
    }
}

/// Re-encrypts the store config under `new` (the files are untouched: they
/// depend on the crypt password inside the config, which stays the same).
/// The plaintext is kept byte for byte (comments and all); the old config
/// is replaced atomically, only after the new one has been read back with
/// the new key.
pub fn rekey(paths: &StorePaths, old: &StoreKey, new: &StoreKey) -> Result<(), CryptError> {
    let plaintext = decrypt_config_text(&paths.config, old)?;
    let conf = parse_config(&paths.config, &plaintext)?;
    crypt_section(&conf, &paths.config)?;
    write_config(&paths.config, &plaintext, new, true)?;
    let again = decrypt_config_text(&paths.config, new)?;
    debug_assert_eq!(again.as_str(), plaintext.as_str());
    Ok(())
}

/// Reads, decrypts and parses a store config.
pub fn read_config(path: &Path, key: &StoreKey) -> Result<ConfigFile, CryptError> {
    parse_config(path, &decrypt_config_text(path, key)?)
}

fn parse_config(path: &Path, plaintext: &str) -> Result<ConfigFile, CryptError> {
    ConfigFile::parse(plaintext).map_err(|error| CryptError::Config {
        path: path.to_owned(),
        error,
    })
}

/// Reads and decrypts a store config into its plaintext.
fn decrypt_config_text(path: &Path, key: &StoreKey) -> Result<Zeroizing<String>, CryptError> {
    let text = fs::read(path).map_err(CryptError::io(path))?;
    let text = String::from_utf8(text).map_err(|_| CryptError::Layout {
        path: path.to_owned(),
        reason: "is not a text file; expected an rclone config encrypted with the store key".into(),
    })?;
    if !config::is_encrypted(&text) {
        return Err(CryptError::Layout {
            path: path.to_owned(),
            reason: format!(
                "is not encrypted (no {} header); a store config must be encrypted with the store key",
                config::ENCRYPTED_PREFIX
            ),
        });
    }
    config::decrypt_config(&text, key.expose()).map_err(|e| match e {
        ConfigError::WrongPassword => CryptError::WrongKey {
            path: path.to_owned(),
        },
        error => CryptError::Config {
            path: path.to_owned(),
            error,
        },
    })
}

fn write_config(
    path: &Path,
    plaintext: &str,
    key: &StoreKey,
    replace: bool,
) -> Result<(), CryptError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let sealed = config::encrypt_config(plaintext, key.expose(), crate::rng::bytes());
    let mut tmp = TempFile::create_in(dir, 0o600).map_err(CryptError::io(dir))?;
    tmp.file()
        .write_all(sealed.as_bytes())
        .and_then(|()| tmp.file().sync_all())
        .map_err(CryptError::io(path))?;
    tmp.commit(path, replace).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            CryptError::Exists {
                path: path.to_owned(),
            }
        } else {
            CryptError::io(path)(e)
        }
    })
}

/// Finds the crypt remote: `encrypted_storage` when present (the original
/// layout), else the config's only `type = crypt` section.
fn crypt_section(conf: &ConfigFile, path: &Path) -> Result<CryptSettings, CryptError> {
    let section = match conf.section(CRYPT_REMOTE) {
        Some(s) => s,
        None => {
            let mut crypts = conf.sections().filter(|s| s.get("type") == Some("crypt"));
            match (crypts.next(), crypts.next()) {
                (Some(s), None) => s,
                (None, _) => {
                    return Err(CryptError::Layout {
                        path: path.to_owned(),
                        reason: "has no crypt remote (a section with type = crypt)".into(),
                    })
                }
                (Some(_), Some(_)) => {
                    return Err(CryptError::Layout {
                        path: path.to_owned(),
                        reason: format!(
                            "has several crypt remotes and none is named {CRYPT_REMOTE}"
                        ),
                    })
                }
            }
        }
    };
    CryptSettings::from_section(section).map_err(|error| CryptError::Config {
        path: path.to_owned(),
        error,
    })
}

/// Where a crypt `remote = …` value points on this machine. A bare path is
/// relative to the store folder; `name:path` must name a local remote.
fn resolve_remote(paths: &StorePaths, remote: &str) -> Result<PathBuf, CryptError> {
    let local_path = match remote.split_once(':') {
        None => remote,
        Some((name, rest)) => {
            let conf_ok = name.is_empty() || name == LOCAL_REMOTE || name == "local";
            if !conf_ok {
                return Err(CryptError::Layout {
                    path: paths.config.clone(),
                    reason: format!(
                        "the crypt remote points at {remote:?}; only local folders are supported (use --storage PATH)"
                    ),
                });
            }
            rest
        }
    };
    Ok(paths.root.join(local_path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_open_rekey_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("store");
        let paths = StorePaths::new(&root, None, None);
        let key = StoreKey::new("first key").unwrap();
        let created = Store::init(&paths, &key, &InitOptions::default()).unwrap();
        assert!(root.join(STORAGE_DIR).is_dir());
        let opened = Store::open(&paths, &key).unwrap();
        assert_eq!(
            created.settings().password.as_str(),
            opened.settings().password.as_str()
        );
        assert_eq!(opened.storage(), root.join(STORAGE_DIR));

        let wrong = StoreKey::new("other key").unwrap();
        assert!(matches!(
            Store::open(&paths, &wrong),
            Err(CryptError::WrongKey { .. })
        ));

        let new = StoreKey::new("second key").unwrap();
        let before = decrypt_config_text(&paths.config, &key).unwrap();
        rekey(&paths, &key, &new).unwrap();
        let after = decrypt_config_text(&paths.config, &new).unwrap();
        assert_eq!(
            before.as_str(),
            after.as_str(),
            "plaintext kept byte for byte"
        );
        assert!(matches!(
            Store::open(&paths, &key),
            Err(CryptError::WrongKey { .. })
        ));
        let reopened = Store::open(&paths, &new).unwrap();
        assert_eq!(
            reopened.settings().password.as_str(),
            created.settings().password.as_str()
        );
    }

    #[test]
    fn init_options_debug_hides_password2() {
        let options = InitOptions {
            password2: Some(Zeroizing::new("pepper".to_owned())),
            ..InitOptions::default()
        };
        let shown = format!("{options:?}");
        assert!(
            !shown.contains("pepper") && shown.contains("<redacted>"),
            "{shown}"
        );
    }

    #[test]
    fn init_refuses_a_non_empty_folder() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("x"), b"x").unwrap();
        let paths = StorePaths::new(dir.path(), None, None);
        let key = StoreKey::new("k").unwrap();
        let err = Store::init(&paths, &key, &InitOptions::default()).unwrap_err();
        assert!(err.to_string().contains("is not empty"), "{err}");
    }

    #[test]
    fn garbage_and_plain_configs_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let key = StoreKey::new("k").unwrap();
        let paths = StorePaths::new(dir.path(), None, None);
        fs::write(&paths.config, "[x]\ntype = crypt\n").unwrap();
        let err = Store::open(&paths, &key).unwrap_err();
        assert!(err.to_string().contains("is not encrypted"), "{err}");
        fs::write(&paths.config, "RCLONE_ENCRYPT_V0:\n!!!not base64").unwrap();
        assert!(Store::open(&paths, &key).is_err());
        fs::write(&paths.config, [0xffu8, 0xfe, 0]).unwrap();
        assert!(Store::open(&paths, &key).is_err());
    }
}
