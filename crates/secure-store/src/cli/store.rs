//! `secure-store store init|encrypt|decrypt|ls|verify|rekey`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use ssformat::rclone::name::{NameEncoding, NameMode};
use zeroize::Zeroizing;

use super::key::{read_key_file, KeyArgs};
use super::progress::Ui;
use crate::crypt::store::{self, InitOptions, Store, StorePaths};
use crate::crypt::tree;
use crate::secret::StoreKey;

/// Where the store is: the folder, and overrides for original-project files
/// laid out differently.
#[derive(Debug, clap::Args)]
pub struct StoreLocation {
    /// The store folder (holds encrypt.conf and storage/).
    #[arg(value_name = "STORE")]
    store: PathBuf,
    /// The encrypted rclone config, if not STORE/encrypt.conf.
    #[arg(long, value_name = "PATH", env = "SECURE_STORE_CONFIG")]
    config: Option<PathBuf>,
    /// The folder of encrypted files, if not where the config's remote points.
    #[arg(long, value_name = "PATH", env = "SECURE_STORE_STORAGE")]
    storage: Option<PathBuf>,
}

impl StoreLocation {
    fn paths(&self) -> StorePaths {
        StorePaths::new(&self.store, self.config.clone(), self.storage.clone())
    }
}

// No `Debug`: the parsed arguments can hold a key or a secret value.
#[allow(missing_debug_implementations)]
#[derive(clap::Subcommand)]
pub enum StoreCommand {
    /// Create a new, empty store sealed under the store key.
    ///
    /// Writes STORE/encrypt.conf (an rclone config encrypted with the store
    /// key, holding a fresh random crypt password) and STORE/storage/: the
    /// original secure-store layout. The name options are rclone's own and
    /// are fixed for the life of the store.
    #[command(after_help = "\
Examples:
  secure-store store init ./store
  secure-store store init ./store --filename-encoding base64 --password2-file salt.txt
  secure-store store init ./store --filename-encryption off   # names in clear, content encrypted")]
    Init {
        #[command(flatten)]
        location: StoreLocation,
        /// How file names are hidden: standard (encrypted), obfuscate (rotated), off (clear + .bin).
        #[arg(long, default_value = "standard", env = "SECURE_STORE_FILENAME_ENCRYPTION", value_parser = parse_mode)]
        filename_encryption: NameMode,
        /// Encoding of encrypted names: base32 (any file system), base64 (case-sensitive ones), base32768 (shortest).
        #[arg(long, default_value = "base32", env = "SECURE_STORE_FILENAME_ENCODING", value_parser = parse_encoding)]
        filename_encoding: NameEncoding,
        /// Leave directory names in clear (file names are still encrypted).
        #[arg(long, env = "SECURE_STORE_NO_DIRECTORY_NAME_ENCRYPTION")]
        no_directory_name_encryption: bool,
        /// rclone's password2 (salt) from this file; without it rclone's built-in salt is used.
        #[arg(long, value_name = "FILE", env = "SECURE_STORE_PASSWORD2_FILE")]
        password2_file: Option<PathBuf>,
        #[command(flatten)]
        key: KeyArgs,
    },
    /// Encrypt a file or folder into the store (copy: files with the same name are replaced).
    #[command(after_help = "\
Examples:
  secure-store store encrypt ./config ./store
  secure-store store encrypt ./model.bin ./store")]
    Encrypt {
        /// The file or folder to encrypt.
        #[arg(value_name = "SRC")]
        src: PathBuf,
        #[command(flatten)]
        location: StoreLocation,
        /// Leave symbolic links out (with a warning) instead of refusing them.
        #[arg(long, env = "SECURE_STORE_SKIP_SYMLINKS")]
        skip_symlinks: bool,
        #[command(flatten)]
        key: KeyArgs,
    },
    /// Decrypt the whole store into DST, which must not exist.
    ///
    /// DST appears complete or not at all (built in a private temporary
    /// folder beside it, then renamed). Folders are 0700 and files 0600.
    /// Decrypted secrets belong on tmpfs or an encrypted disk: see `secure-store run`.
    #[command(after_help = "Example:\n  secure-store store decrypt ./store /dev/shm/config")]
    Decrypt {
        #[command(flatten)]
        location: StoreLocation,
        /// Where to write the decrypted tree (must not exist).
        #[arg(value_name = "DST")]
        dst: PathBuf,
        #[command(flatten)]
        key: KeyArgs,
    },
    /// List the files of a store with their decrypted names and sizes.
    #[command(name = "ls", after_help = "Example:\n  secure-store store ls ./store")]
    Ls {
        #[command(flatten)]
        location: StoreLocation,
        #[command(flatten)]
        key: KeyArgs,
    },
    /// Check every name and authenticate every block of every file; writes nothing.
    #[command(after_help = "Example:\n  secure-store store verify ./store && echo intact")]
    Verify {
        #[command(flatten)]
        location: StoreLocation,
        #[command(flatten)]
        key: KeyArgs,
    },
    /// Seal the store under a new store key (only encrypt.conf is rewritten).
    ///
    /// The new key comes from --new-key-file or NEW_STORE_PASSWORD; with
    /// neither, a new key is generated and printed on stdout. Env values
    /// encrypted with the old key must be encrypted again.
    #[command(after_help = "\
Examples:
  secure-store store rekey ./store --key-file old.key --new-key-file new.key
  NEW=$(secure-store store rekey ./store --key-file old.key)")]
    Rekey {
        #[command(flatten)]
        location: StoreLocation,
        #[command(flatten)]
        key: KeyArgs,
        /// Read the new store key from this file.
        #[arg(long, value_name = "FILE", env = "NEW_STORE_KEY_FILE")]
        new_key_file: Option<PathBuf>,
        /// The new store key itself (visible to other users: prefer a file).
        #[arg(
            long,
            value_name = "KEY",
            env = "NEW_STORE_PASSWORD",
            hide_env_values = true
        )]
        new_key: Option<String>,
    },
}

fn parse_mode(s: &str) -> Result<NameMode, String> {
    s.parse::<NameMode>()
        .map_err(|_| "expected standard, obfuscate or off".to_owned())
}

fn parse_encoding(s: &str) -> Result<NameEncoding, String> {
    s.parse::<NameEncoding>()
        .map_err(|_| "expected base32, base64 or base32768".to_owned())
}

pub fn run(cmd: StoreCommand, ui: Ui) -> anyhow::Result<ExitCode> {
    match cmd {
        StoreCommand::Init {
            location,
            filename_encryption,
            filename_encoding,
            no_directory_name_encryption,
            password2_file,
            key,
        } => {
            let key = key.load()?;
            let password2 = match &password2_file {
                Some(path) => Some(read_password2(path)?),
                None => None,
            };
            let options = InitOptions {
                filename_encryption,
                filename_encoding,
                directory_name_encryption: !no_directory_name_encryption,
                password2,
            };
            let paths = location.paths();
            let store = Store::init(&paths, &key, &options)?;
            println!(
                "created store {} (config {}, files in {})",
                paths.root.display(),
                paths.config.display(),
                store.storage().display()
            );
            Ok(ExitCode::SUCCESS)
        }
        StoreCommand::Encrypt {
            src,
            location,
            skip_symlinks,
            key,
        } => {
            let store = open(&location, &key)?;
            let plan = tree::plan_source(&src, skip_symlinks)?;
            let bar = ui.bytes(plan.total_bytes(), "encrypting");
            let summary = tree::encrypt_tree(&store, &plan, &|n| bar.inc(n))?;
            bar.finish_and_clear();
            let skipped = if summary.skipped > 0 {
                format!(", skipped {} symbolic links", summary.skipped)
            } else {
                String::new()
            };
            println!(
                "encrypted {} files ({} bytes) in {} folders into {}{skipped}",
                summary.files,
                summary.bytes,
                summary.dirs,
                location.store.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        StoreCommand::Decrypt { location, dst, key } => {
            let store = open(&location, &key)?;
            let listing = tree::list(&store)?;
            let bar = ui.bytes(listing.plain_total(), "decrypting");
            let summary = tree::decrypt_tree(&store, &listing, &dst, &|n| bar.inc(n))?;
            bar.finish_and_clear();
            println!(
                "decrypted {} files ({} bytes) in {} folders into {}",
                summary.files,
                summary.bytes,
                summary.dirs,
                dst.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        StoreCommand::Ls { location, key } => {
            let store = open(&location, &key)?;
            let listing = tree::list(&store)?;
            let mut out = std::io::stdout().lock();
            for file in &listing.files {
                let size = file.plain_size()?;
                std::io::Write::write_fmt(&mut out, format_args!("{size:>9} {}\n", file.plain))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        StoreCommand::Verify { location, key } => {
            let store = open(&location, &key)?;
            let listing = tree::list(&store)?;
            let bar = ui.bytes(listing.plain_total(), "verifying");
            let report = tree::verify(&store, &listing, &|n| bar.inc(n))?;
            bar.finish_and_clear();
            if report.failures.is_empty() {
                println!(
                    "ok: {} files, {} bytes, every block authentic",
                    report.files, report.bytes
                );
                return Ok(ExitCode::SUCCESS);
            }
            for failure in &report.failures {
                eprintln!("error: {failure}");
            }
            eprintln!(
                "error: {} of {} files failed verification",
                report.failures.len(),
                report.files
            );
            Ok(ExitCode::FAILURE)
        }
        StoreCommand::Rekey {
            location,
            key,
            new_key_file,
            new_key,
        } => {
            let old = key.load()?;
            let (new, generated) = match (&new_key_file, &new_key) {
                (Some(path), _) => (read_key_file(path)?, false),
                (None, Some(k)) => (StoreKey::new(k).context("the new store key")?, false),
                (None, None) => (StoreKey::generate(), true),
            };
            let paths = location.paths();
            store::rekey(&paths, &old, &new)?;
            if generated {
                println!("{}", new.expose());
                tracing::warn!(
                    "re-keyed {}; the new store key is on stdout: keep it safe",
                    paths.config.display()
                );
            } else {
                tracing::info!("re-keyed {}", paths.config.display());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn open(location: &StoreLocation, key: &KeyArgs) -> anyhow::Result<Store> {
    let key = key.load()?;
    Ok(Store::open(&location.paths(), &key)?)
}

fn read_password2(path: &Path) -> anyhow::Result<Zeroizing<String>> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?,
    );
    let first = text.lines().next().unwrap_or("").trim_end_matches('\r');
    if first.is_empty() {
        anyhow::bail!("{}: password2 is empty", path.display());
    }
    Ok(Zeroizing::new(first.to_owned()))
}
