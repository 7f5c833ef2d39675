//! Whole folders through a store: encrypt a source tree in, decrypt the
//! store out, list it, verify it. Files are processed in parallel (and a
//! large file's blocks too, see [`super::stream`]).
//!
//! Safety rules, each with a test:
//! - a source symlink is refused (or skipped on request), never followed;
//! - every decrypted name is checked twice (by the format crate, and here
//!   as a plain path component) before it becomes a path, and two names
//!   that decrypt to the same path are refused, so a hostile store cannot
//!   write outside the destination or over another file;
//! - decryption builds the whole result in a private temporary folder and
//!   renames it into place at the end: on any error nothing is left;
//! - an existing destination is never overwritten.
//!
//! Names on disk are rclone's: rclone's crypt encrypts names in rclone's
//! internal "Standard" encoding, and its local backend converts between
//! that and file names on disk ([`ssformat::rclone::local`]). We do the
//! same, segment by segment, both ways, so that rclone reads every name we
//! write and we read every name it writes, byte for byte (see
//! `docs/formats/rclone-names.md`, "On-disk names").

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

use rayon::prelude::*;
use ssformat::rclone::content::{self, FileNonce};
use ssformat::rclone::local;
use ssformat::rclone::name::{NameCipher, NameError};

use super::output::{self, TempDir, TempFile, TEMP_PREFIX};
use super::store::Store;
use super::stream::{self, StreamError};
use super::CryptError;

/// Counts of a finished operation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub files: u64,
    pub dirs: u64,
    pub bytes: u64,
    pub skipped: u64,
}

/// A file in a store, by its encrypted and decrypted names.
#[derive(Clone, Debug)]
pub struct StoredFile {
    /// Full path of the encrypted file.
    pub encrypted: PathBuf,
    /// Decrypted path relative to the store, `/`-separated.
    pub plain: String,
    /// Size of the encrypted file.
    pub encrypted_size: u64,
}

impl StoredFile {
    /// The plaintext size the encrypted size implies.
    pub fn plain_size(&self) -> Result<u64, CryptError> {
        content::decrypted_size(self.encrypted_size).map_err(|error| CryptError::Stored {
            plain: self.plain.clone(),
            path: self.encrypted.clone(),
            error,
        })
    }
}

/// What a store holds, by decrypted name, sorted.
#[derive(Clone, Debug, Default)]
pub struct Listing {
    pub dirs: Vec<String>,
    pub files: Vec<StoredFile>,
}

impl Listing {
    /// Plaintext bytes of all files whose size is valid.
    pub fn plain_total(&self) -> u64 {
        self.files.iter().filter_map(|f| f.plain_size().ok()).sum()
    }
}

/// Progress callback: plaintext bytes done.
pub type Progress<'a> = &'a (dyn Fn(u64) + Sync);

/// A source tree to encrypt, walked once ([`plan_source`]).
#[derive(Debug, Default)]
pub struct SourcePlan {
    src: PathBuf,
    dirs: Vec<String>,
    files: Vec<(PathBuf, String, u64)>,
    skipped: u64,
}

/// Reads from `inner` until the process is asked to stop.
struct Interruptible<R>(R);

impl<R: Read> Read for Interruptible<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if output::interrupted() {
            return Err(output::interrupted_error());
        }
        self.0.read(buf)
    }
}

/// The name of a source entry: valid UTF-8, and one that rclone's local
/// backend reads back as itself (only names with a stray `‛`, U+201B, are
/// not: rclone reads `a‛b` as `a‛‛b` and cannot open it; whatever we
/// stored, rclone would decrypt it to a different name).
fn source_name(path: &Path) -> Result<String, CryptError> {
    let name = path.file_name().unwrap_or_default();
    let name = name.to_str().ok_or_else(|| CryptError::Layout {
        path: path.to_owned(),
        reason: "the name is not valid UTF-8; rclone crypt names must be".into(),
    })?;
    if !local::is_canonical_disk_name(name) {
        return Err(CryptError::Layout {
            path: path.to_owned(),
            reason: format!(
                "rclone cannot keep this name: it reads it as {:?} and would restore it as {:?} \
                 (a U+201B quote must be doubled, or come before ␀ or ／); rename it",
                local::to_standard(name),
                local::from_standard(&local::to_standard(name)),
            ),
        });
    }
    Ok(name.to_owned())
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}/{name}")
    }
}

impl SourcePlan {
    /// Plaintext bytes to encrypt.
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.2).sum()
    }
}

/// Walks the file or folder `src`: what `store encrypt` will read.
pub fn plan_source(src: &Path, skip_symlinks: bool) -> Result<SourcePlan, CryptError> {
    let mut plan = SourcePlan {
        src: src.to_owned(),
        ..SourcePlan::default()
    };
    let meta = fs::symlink_metadata(src).map_err(CryptError::io(src))?;
    if meta.is_file() {
        plan.files
            .push((src.to_owned(), source_name(src)?, meta.len()));
        return Ok(plan);
    }
    if !meta.is_dir() {
        return Err(CryptError::Layout {
            path: src.to_owned(),
            reason: "is neither a folder nor a regular file".into(),
        });
    }
    let mut stack = vec![(src.to_owned(), String::new())];
    while let Some((dir, rel)) = stack.pop() {
        for entry in fs::read_dir(&dir).map_err(CryptError::io(&dir))? {
            let entry = entry.map_err(CryptError::io(&dir))?;
            let path = entry.path();
            let meta = fs::symlink_metadata(&path).map_err(CryptError::io(&path))?;
            let rel = join(&rel, &source_name(&path)?);
            if meta.file_type().is_symlink() {
                if skip_symlinks {
                    tracing::warn!(path = %path.display(), "skipping a symbolic link");
                    plan.skipped += 1;
                    continue;
                }
                return Err(CryptError::Symlink { path });
            } else if meta.is_dir() {
                plan.dirs.push(rel.clone());
                stack.push((path, rel));
            } else if meta.is_file() {
                plan.files.push((path, rel, meta.len()));
            } else {
                return Err(CryptError::Special { path });
            }
        }
    }
    plan.dirs.sort();
    // Largest first: the long files start early and both cores stay busy.
    plan.files
        .sort_by(|a, b| b.2.cmp(&a.2).then_with(|| a.1.cmp(&b.1)));
    Ok(plan)
}

fn make_dir(path: &Path) -> Result<(), CryptError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(CryptError::io(path))
}

/// Total plaintext bytes `store encrypt` would read from `src`.
pub fn source_size(src: &Path, skip_symlinks: bool) -> Result<u64, CryptError> {
    Ok(plan_source(src, skip_symlinks)?
        .files
        .iter()
        .map(|f| f.2)
        .sum())
}

/// Encrypts a planned source into the store. Files already in the store
/// under the same name are replaced atomically; other files in the store
/// are left alone (copy, not sync).
pub fn encrypt_tree(
    store: &Store,
    plan: &SourcePlan,
    progress: Progress<'_>,
) -> Result<Summary, CryptError> {
    let src = &plan.src;
    let encrypted = |rel: &str, is_dir: bool| store_path(store, src, rel, is_dir);
    let mut dirs = vec![store.storage().to_owned()];
    for dir in &plan.dirs {
        let path = encrypted(dir, true)?;
        make_dir(&path)?;
        dirs.push(path);
    }
    // What is already there, one read_dir per folder instead of a stat per
    // file: a file that replaces another is synced before the rename.
    let mut existing = std::collections::HashSet::new();
    for dir in &dirs {
        for entry in fs::read_dir(dir).map_err(CryptError::io(dir))? {
            existing.insert(entry.map_err(CryptError::io(dir))?.path());
        }
    }
    let bytes = plan
        .files
        .par_iter()
        .map(|(path, rel, size)| {
            let dest = encrypted(rel, false)?;
            let exists = existing.contains(&dest);
            encrypt_file(store, path, &dest, exists, *size, progress)
        })
        .try_reduce(|| 0, |a, b| Ok(a + b))?;
    Ok(Summary {
        files: plan.files.len() as u64,
        dirs: plan.dirs.len() as u64,
        bytes,
        skipped: plan.skipped,
    })
}

/// Where the source entry `rel` (`/`-separated source names) goes in the
/// store. Each segment goes the way rclone's would: disk name → Standard
/// name → encrypted → disk name.
fn store_path(store: &Store, src: &Path, rel: &str, is_dir: bool) -> Result<PathBuf, CryptError> {
    let names = store.names();
    let standard: Vec<String> = rel.split('/').map(local::to_standard).collect();
    let encrypted = names
        .try_encrypt_path(&standard.join("/"), is_dir)
        .map_err(|error| CryptError::Name {
            path: src.join(rel),
            error,
        })?;
    let mut path = store.storage().to_owned();
    for segment in encrypted.split('/') {
        let disk = local::from_standard(segment);
        // A stored name with a `‛` that quotes nothing would be read back,
        // by rclone and by us, as another name. Never so in mode standard;
        // obfuscate can rotate a character into a `‛`, and mode off turns
        // the name `‛．` into `‛．.bin`.
        if local::to_standard(&disk) != segment {
            return Err(CryptError::Layout {
                path: src.join(rel),
                reason: "rclone cannot keep the stored form of this name: it would read it \
                         back as another name; rename it"
                    .into(),
            });
        }
        path.push(disk);
    }
    Ok(path)
}

fn encrypt_file(
    store: &Store,
    src: &Path,
    dest: &Path,
    dest_exists: bool,
    size: u64,
    progress: Progress<'_>,
) -> Result<u64, CryptError> {
    let input = File::open(src).map_err(CryptError::io(src))?;
    let dir = dest.parent().unwrap_or(store.storage());
    let mut tmp = TempFile::create_in(dir, 0o600).map_err(CryptError::io(dir))?;
    let nonce = FileNonce(crate::rng::bytes());
    // No BufWriter: `stream::seal` already writes whole batches.
    let written = stream::seal(
        store.blocks(),
        &nonce,
        &mut Interruptible(input),
        tmp.file(),
        size,
        progress,
    )
    .map_err(|e| stream_error(src, e))?;
    tmp.replace(dest, dest_exists)
        .map_err(CryptError::io(dest))?;
    Ok(written)
}

fn stream_error(path: &Path, err: StreamError) -> CryptError {
    match err {
        StreamError::Io(error) => CryptError::Io {
            path: path.to_owned(),
            error,
        },
        StreamError::Content(error) => CryptError::Content {
            path: path.to_owned(),
            error,
        },
    }
}

/// Lists a store by decrypted names, without reading any content.
pub fn list(store: &Store) -> Result<Listing, CryptError> {
    let mut listing = Listing::default();
    let mut seen = BTreeSet::new();
    let mut stack = vec![(store.storage().to_owned(), String::new())];
    let names = store.names();
    while let Some((dir, rel)) = stack.pop() {
        for entry in fs::read_dir(&dir).map_err(CryptError::io(&dir))? {
            let entry = entry.map_err(CryptError::io(&dir))?;
            let path = entry.path();
            let encrypted = entry.file_name();
            let Some(encrypted) = encrypted.to_str() else {
                return Err(CryptError::Layout {
                    path,
                    reason: "the name is not valid UTF-8, so it is no rclone crypt name".into(),
                });
            };
            if encrypted.starts_with(TEMP_PREFIX) {
                tracing::warn!(path = %path.display(), "ignoring a leftover temporary file of an interrupted write");
                continue;
            }
            let meta = fs::symlink_metadata(&path).map_err(CryptError::io(&path))?;
            let name_error = |error| CryptError::Name {
                path: path.clone(),
                error,
            };
            let plain = if meta.is_dir() || meta.is_file() {
                read_name(names, encrypted, meta.is_dir()).map_err(name_error)?
            } else if meta.file_type().is_symlink() {
                return Err(CryptError::Symlink { path });
            } else {
                return Err(CryptError::Special { path });
            };
            check_component(&plain, &path)?;
            let plain = join(&rel, &plain);
            if !seen.insert(plain.clone()) {
                return Err(CryptError::Layout {
                    path,
                    reason: format!("decrypts to {plain:?}, a name another file already has"),
                });
            }
            if meta.is_dir() {
                listing.dirs.push(plain.clone());
                stack.push((path, plain));
            } else {
                listing.files.push(StoredFile {
                    encrypted: path,
                    plain,
                    encrypted_size: meta.len(),
                });
            }
        }
    }
    listing.dirs.sort();
    listing.files.sort_by(|a, b| a.plain.cmp(&b.plain));
    Ok(listing)
}

/// The plaintext name of the store entry called `disk_name`, as rclone
/// reads it: the disk name in rclone's Standard encoding is decrypted and
/// the result turned back into a disk name ([`ssformat::rclone::local`]).
/// The result is still checked by the caller (single component, no
/// duplicates); `from_standard` itself never returns `.`, `..`, `/` or NUL.
fn read_name(names: &NameCipher, disk_name: &str, is_dir: bool) -> Result<String, NameError> {
    let standard = local::to_standard(disk_name);
    let plain = if is_dir {
        names.decrypt_dir_name(&standard)?
    } else {
        names.decrypt_file_name(&standard)?
    };
    Ok(local::from_standard(&plain))
}

/// Defence in depth: a decrypted name must be exactly one normal path
/// component (the format crate already refuses `.`, `..`, `/` and NUL).
fn check_component(plain: &str, path: &Path) -> Result<(), CryptError> {
    let mut parts = Path::new(plain).components();
    match (parts.next(), parts.next()) {
        (Some(Component::Normal(c)), None) if c == plain => Ok(()),
        _ => Err(CryptError::Layout {
            path: path.to_owned(),
            reason: "decrypts to a name that is not a single plain file name; refusing it".into(),
        }),
    }
}

/// Decrypts the listed store into `dest`, which must not exist. The result
/// appears all at once (folders 0700, files 0600) or not at all.
pub fn decrypt_tree(
    store: &Store,
    listing: &Listing,
    dest: &Path,
    progress: Progress<'_>,
) -> Result<Summary, CryptError> {
    let dest_error = |e: io::Error| match e.kind() {
        io::ErrorKind::AlreadyExists => CryptError::Exists {
            path: dest.to_owned(),
        },
        _ => CryptError::io(dest)(e),
    };
    let staging = TempDir::beside(dest).map_err(dest_error)?;
    for dir in &listing.dirs {
        make_dir(&staging.path().join(dir))?;
    }
    let mut files = listing.files.clone();
    files.sort_by_key(|f| std::cmp::Reverse(f.encrypted_size));
    let bytes = files
        .par_iter()
        .map(|file| {
            let target = staging.path().join(&file.plain);
            let out = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&target)
                .map_err(CryptError::io(dest.join(&file.plain)))?;
            // Unbuffered on purpose: `stream::open_file` writes whole
            // batches, and a buffer would keep a copy of the plaintext we
            // cannot zeroize.
            decrypt_file(store, file, Some(&out), progress)
        })
        .try_reduce(|| 0, |a, b| Ok(a + b))?;
    staging.commit(dest).map_err(dest_error)?;
    Ok(Summary {
        files: files.len() as u64,
        dirs: listing.dirs.len() as u64,
        bytes,
        skipped: 0,
    })
}

fn decrypt_file(
    store: &Store,
    file: &StoredFile,
    out: Option<&File>,
    progress: Progress<'_>,
) -> Result<u64, CryptError> {
    let input = File::open(&file.encrypted).map_err(CryptError::io(&file.encrypted))?;
    let stop = || output::interrupted().then(output::interrupted_error);
    stream::open_file(store.blocks(), &input, out, progress, &stop).map_err(|e| match e {
        StreamError::Content(error) => CryptError::Stored {
            plain: file.plain.clone(),
            path: file.encrypted.clone(),
            error,
        },
        StreamError::Io(error) => CryptError::Io {
            path: file.encrypted.clone(),
            error,
        },
    })
}

/// The outcome of [`verify`]: every file checked, failures collected.
#[derive(Debug, Default)]
pub struct VerifyReport {
    pub files: u64,
    pub bytes: u64,
    pub failures: Vec<CryptError>,
}

/// Decrypts every name and authenticates every block of every file,
/// writing nothing. Keeps going after a bad file so that the report is
/// complete; a bad name makes the listing itself fail.
pub fn verify(
    store: &Store,
    listing: &Listing,
    progress: Progress<'_>,
) -> Result<VerifyReport, CryptError> {
    let results: Vec<Result<u64, CryptError>> = listing
        .files
        .par_iter()
        .map(|file| decrypt_file(store, file, None, progress))
        .collect();
    let mut report = VerifyReport {
        files: listing.files.len() as u64,
        ..Default::default()
    };
    for result in results {
        match result {
            Ok(n) => report.bytes += n,
            Err(e) => report.failures.push(e),
        }
    }
    Ok(report)
}
