//! The decrypted view of a store, as a file system, knowing nothing about
//! FUSE (the `mountpoint-s3` split: `fs.rs` logic, `fuse.rs` adapter).
//!
//! Inodes are numbers we hand out for (parent, plaintext name) pairs; each
//! remembers its encrypted on-disk name, so a path in `storage/` is found
//! by walking up the parents. Names go the way rclone's local backend and
//! crypt layer send them (`crypt::tree` does the same): plaintext name →
//! rclone Standard encoding → encrypted → on-disk encoding, and back for
//! listings. Sizes come from the encrypted size formula; nothing is
//! decrypted to `stat`.
//!
//! Content: reads decrypt only the blocks they touch (a one-block cache per
//! handle for small reads); writes go to one [`Writer`] per inode, shared
//! by every handle open for writing on it, and become visible in
//! `storage/` on flush, fsync or the last release (see
//! `docs/SEMANTICS.md`). Every failure is a [`ViewError`]; the FUSE
//! adapter turns them into errno values in one place.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ssformat::rclone::content::{self, BlockCipher, ContentError, BLOCK_DATA_SIZE};
use ssformat::rclone::local;
use zeroize::Zeroizing;

use super::content::{ReadJob, Sealed, TempSealed, Writer};
use crate::crypt::output::TEMP_PREFIX;
use crate::crypt::store::Store;
use crate::crypt::stream::StreamError;

/// The root folder's inode number (FUSE's `FUSE_ROOT_ID`).
pub const ROOT: u64 = 1;

/// Longest on-disk name most Linux file systems take.
const NAME_MAX: usize = 255;

/// Why an operation on the view failed.
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    #[error("no such file or folder")]
    NotFound,
    #[error("already exists")]
    Exists,
    #[error("not a folder")]
    NotDir,
    #[error("is a folder")]
    IsDir,
    #[error("the encrypted name is too long for the storage file system")]
    NameTooLong,
    #[error("this name cannot be stored: {0}")]
    BadName(&'static str),
    #[error("the mount is read-only")]
    ReadOnly,
    #[error("no such open file handle")]
    BadHandle,
    #[error("not supported: {0}")]
    Unsupported(&'static str),
    #[error("{path}: the encrypted content is damaged: {error}")]
    Corrupt { path: PathBuf, error: ContentError },
    #[error("{path}: {error}")]
    Io { path: PathBuf, error: io::Error },
}

impl ViewError {
    fn io(path: &Path) -> impl FnOnce(io::Error) -> ViewError + '_ {
        move |error| match error.kind() {
            io::ErrorKind::NotFound => ViewError::NotFound,
            _ => ViewError::Io {
                path: path.to_owned(),
                error,
            },
        }
    }

    /// A content or I/O failure on the file at `path`.
    pub fn from_stream(path: &Path, e: StreamError) -> ViewError {
        ViewError::stream(path)(e)
    }

    fn stream(path: &Path) -> impl FnOnce(StreamError) -> ViewError + '_ {
        move |e| match e {
            StreamError::Io(error) => ViewError::io(path)(error),
            StreamError::Content(error) => ViewError::Corrupt {
                path: path.to_owned(),
                error,
            },
        }
    }
}

type Result<T> = std::result::Result<T, ViewError>;

/// File or folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
}

/// What `stat` shows (owner and permission bits are the mount's).
#[derive(Clone, Copy, Debug)]
pub struct Attr {
    pub ino: u64,
    pub kind: Kind,
    /// Plaintext size (files), 0 for folders.
    pub size: u64,
    pub mtime: SystemTime,
    pub atime: SystemTime,
    pub ctime: SystemTime,
    /// 0o600 for files, 0o700 for folders (0o400/0o500 read-only).
    pub perm: u16,
}

/// What a read gives: the bytes now, or a job that decrypts them on
/// another thread.
#[derive(Debug)]
pub enum ReadOutcome<'a> {
    Data(&'a [u8]),
    Job(ReadJob),
}

/// One listing entry.
#[derive(Clone, Debug)]
pub struct DirEntry {
    pub ino: u64,
    pub kind: Kind,
    pub name: String,
}

#[derive(Debug)]
struct Node {
    parent: u64,
    name: String,
    disk: String,
    kind: Kind,
    lookups: u64,
    /// Bumped on every commit, so read handles reopen the new version.
    version: u64,
    /// Removed (or replaced by a rename): pending writes are dropped.
    gone: bool,
}

#[derive(Debug)]
enum Handle {
    Read {
        ino: u64,
        file: Option<Sealed>,
        version: u64,
        /// (block index, plaintext length) of `block`.
        cached: Option<(u64, usize)>,
        block: Zeroizing<Vec<u8>>,
    },
    Write {
        ino: u64,
    },
}

#[derive(Debug)]
struct WriterSlot {
    writer: Writer,
    users: usize,
}

/// The decrypted view of one store.
#[derive(Debug)]
pub struct View {
    store: Store,
    cipher: Arc<BlockCipher>,
    read_only: bool,
    nodes: HashMap<u64, Node>,
    by_name: HashMap<(u64, String), u64>,
    next_ino: u64,
    handles: HashMap<u64, Handle>,
    next_fh: u64,
    writers: HashMap<u64, WriterSlot>,
    pending: Vec<u8>,
    sealed: Vec<u8>,
    hidden_logged: HashSet<PathBuf>,
}

impl View {
    /// A view of `store`. Removes temporary files that an earlier mount or
    /// store command left behind when it was killed (they are never
    /// complete files: see `docs/SEMANTICS.md`).
    pub fn new(store: Store, read_only: bool) -> Result<View> {
        let storage = store.storage().to_owned();
        let meta = fs::metadata(&storage).map_err(ViewError::io(&storage))?;
        if !meta.is_dir() {
            return Err(ViewError::NotDir);
        }
        if !read_only {
            remove_stale_temps(&storage);
        }
        let mut nodes = HashMap::new();
        nodes.insert(
            ROOT,
            Node {
                parent: ROOT,
                name: String::new(),
                disk: String::new(),
                kind: Kind::Dir,
                lookups: 1,
                version: 0,
                gone: false,
            },
        );
        Ok(View {
            cipher: Arc::new(store.blocks().clone()),
            store,
            read_only,
            nodes,
            by_name: HashMap::new(),
            next_ino: ROOT + 1,
            handles: HashMap::new(),
            next_fh: 1,
            writers: HashMap::new(),
            pending: Vec::new(),
            sealed: Vec::new(),
            hidden_logged: HashSet::new(),
        })
    }

    /// The folder of encrypted files.
    pub fn storage(&self) -> &Path {
        self.store.storage()
    }

    /// Whether writes are refused.
    pub fn read_only(&self) -> bool {
        self.read_only
    }

    fn node(&self, ino: u64) -> Result<&Node> {
        self.nodes.get(&ino).ok_or(ViewError::NotFound)
    }

    /// The storage path of `ino`.
    fn path(&self, ino: u64) -> Result<PathBuf> {
        let mut parts = Vec::new();
        let mut cur = ino;
        while cur != ROOT {
            let node = self.node(cur)?;
            if node.gone {
                return Err(ViewError::NotFound);
            }
            parts.push(node.disk.as_str());
            cur = node.parent;
        }
        let mut path = self.store.storage().to_owned();
        path.extend(parts.iter().rev());
        Ok(path)
    }

    fn dir_path(&self, ino: u64) -> Result<PathBuf> {
        if self.node(ino)?.kind != Kind::Dir {
            return Err(ViewError::NotDir);
        }
        self.path(ino)
    }

    /// The on-disk name of the plaintext name `plain`.
    fn disk_name(&self, plain: &str, kind: Kind) -> Result<String> {
        let names = self.store.names();
        let standard = local::to_standard(plain);
        // A name whose local-encoding round trip is another name (a quote
        // character before a full-width one, found by the mount_names fuzz
        // target) would be listed under that other name and could not be
        // opened by it.
        if local::from_standard(&standard) != plain {
            return Err(ViewError::BadName(
                "it would be listed back as another name",
            ));
        }
        let encrypted = match kind {
            Kind::File => names.try_encrypt_file_name(&standard),
            Kind::Dir => names.try_encrypt_dir_name(&standard),
        }
        .map_err(|_| ViewError::NameTooLong)?;
        let disk = local::from_standard(&encrypted);
        if local::to_standard(&disk) != encrypted {
            return Err(ViewError::BadName(
                "rclone would read its stored form back as another name",
            ));
        }
        if disk.len() > NAME_MAX {
            return Err(ViewError::NameTooLong);
        }
        if disk.starts_with(TEMP_PREFIX) {
            return Err(ViewError::BadName(
                "its stored form looks like a temporary file",
            ));
        }
        Ok(disk)
    }

    /// The plaintext name of the on-disk name `disk`, if it decrypts.
    fn plain_name(&self, disk: &str, kind: Kind) -> Option<String> {
        let names = self.store.names();
        let standard = local::to_standard(disk);
        let plain = match kind {
            Kind::File => names.decrypt_file_name(&standard),
            Kind::Dir => names.decrypt_dir_name(&standard),
        }
        .ok()?;
        let plain = local::from_standard(&plain);
        let ok = !plain.is_empty() && plain != "." && plain != ".." && !plain.contains('/');
        ok.then_some(plain)
    }

    fn intern(&mut self, parent: u64, name: &str, disk: String, kind: Kind) -> u64 {
        if let Some(&ino) = self.by_name.get(&(parent, name.to_owned())) {
            if let Some(node) = self.nodes.get_mut(&ino) {
                if node.kind == kind {
                    node.disk = disk;
                    return ino;
                }
                node.gone = true;
            }
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        self.nodes.insert(
            ino,
            Node {
                parent,
                name: name.to_owned(),
                disk,
                kind,
                lookups: 0,
                version: 0,
                gone: false,
            },
        );
        self.by_name.insert((parent, name.to_owned()), ino);
        ino
    }

    /// Forgets the (parent, name) → inode mapping of a removed entry.
    fn drop_name(&mut self, parent: u64, name: &str) {
        if let Some(ino) = self.by_name.remove(&(parent, name.to_owned())) {
            if let Some(node) = self.nodes.get_mut(&ino) {
                node.gone = true;
            }
        }
    }

    /// Finds `name` in folder `parent` on disk: its kind and on-disk name.
    fn find(&self, parent: u64, name: &str) -> Result<(Kind, String, fs::Metadata)> {
        let dir = self.dir_path(parent)?;
        let file_disk = self.disk_name(name, Kind::File);
        if let Ok(disk) = &file_disk {
            if let Ok(meta) = fs::symlink_metadata(dir.join(disk)) {
                if meta.is_file() {
                    return Ok((Kind::File, disk.clone(), meta));
                }
            }
        }
        let dir_disk = self.disk_name(name, Kind::Dir)?;
        match fs::symlink_metadata(dir.join(&dir_disk)) {
            Ok(meta) if meta.is_dir() => Ok((Kind::Dir, dir_disk, meta)),
            _ => match file_disk {
                Err(e) => Err(e),
                Ok(_) => Err(ViewError::NotFound),
            },
        }
    }

    fn attr_of(&self, ino: u64, kind: Kind, meta: &fs::Metadata) -> Attr {
        let size = match kind {
            Kind::Dir => 0,
            Kind::File => match self.writers.get(&ino) {
                Some(slot) => slot.writer.size(),
                // A damaged file shows as empty; reading it fails with EIO.
                None => content::decrypted_size(meta.len()).unwrap_or(0),
            },
        };
        let time = |s: i64, ns: i64| {
            let base = if s >= 0 {
                SystemTime::UNIX_EPOCH + Duration::from_secs(s as u64)
            } else {
                SystemTime::UNIX_EPOCH - Duration::from_secs(s.unsigned_abs())
            };
            base + Duration::from_nanos(ns.clamp(0, 999_999_999) as u64)
        };
        let perm = match (kind, self.read_only) {
            (Kind::File, false) => 0o600,
            (Kind::File, true) => 0o400,
            (Kind::Dir, false) => 0o700,
            (Kind::Dir, true) => 0o500,
        };
        Attr {
            ino,
            kind,
            size,
            mtime: time(meta.mtime(), meta.mtime_nsec()),
            atime: time(meta.atime(), meta.atime_nsec()),
            ctime: time(meta.ctime(), meta.ctime_nsec()),
            perm,
        }
    }

    /// Looks `name` up in folder `parent` and counts one kernel reference.
    pub fn lookup(&mut self, parent: u64, name: &OsStr) -> Result<Attr> {
        let name = utf8(name)?;
        let (kind, disk, meta) = self.find(parent, name)?;
        let ino = self.intern(parent, name, disk, kind);
        if let Some(node) = self.nodes.get_mut(&ino) {
            node.lookups += 1;
        }
        Ok(self.attr_of(ino, kind, &meta))
    }

    /// Drops `n` kernel references to `ino`.
    pub fn forget(&mut self, ino: u64, n: u64) {
        if ino == ROOT {
            return;
        }
        let Some(node) = self.nodes.get_mut(&ino) else {
            return;
        };
        node.lookups = node.lookups.saturating_sub(n);
        // Folders stay (their children's paths go through them; there are
        // few of them); files go once unused.
        let in_use = node.kind == Kind::Dir
            || self.writers.contains_key(&ino)
            || self.handles.values().any(|h| match h {
                Handle::Read { ino: i, .. } | Handle::Write { ino: i } => *i == ino,
            });
        let node = &self.nodes[&ino];
        if node.lookups == 0 && !in_use {
            let key = (node.parent, node.name.clone());
            if self.by_name.get(&key) == Some(&ino) {
                self.by_name.remove(&key);
            }
            self.nodes.remove(&ino);
        }
    }

    /// Attributes of `ino`.
    pub fn getattr(&self, ino: u64) -> Result<Attr> {
        let path = self.path(ino)?;
        let kind = self.node(ino)?.kind;
        let meta = fs::symlink_metadata(&path).map_err(ViewError::io(&path))?;
        Ok(self.attr_of(ino, kind, &meta))
    }

    /// The entries of folder `ino` (without `.` and `..`). Entries whose
    /// names do not decrypt are left out and logged once each.
    pub fn readdir(&mut self, ino: u64) -> Result<Vec<DirEntry>> {
        let dir = self.dir_path(ino)?;
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        for entry in fs::read_dir(&dir).map_err(ViewError::io(&dir))? {
            let entry = entry.map_err(ViewError::io(&dir))?;
            let Ok(ft) = entry.file_type() else { continue };
            let kind = if ft.is_dir() {
                Kind::Dir
            } else if ft.is_file() {
                Kind::File
            } else {
                continue;
            };
            let disk = entry.file_name();
            let Some(disk) = disk.to_str() else {
                self.hide(entry.path(), "the stored name is not UTF-8");
                continue;
            };
            if disk.starts_with(TEMP_PREFIX) {
                continue;
            }
            let Some(plain) = self.plain_name(disk, kind) else {
                self.hide(
                    entry.path(),
                    "the name does not decrypt with this store's key",
                );
                continue;
            };
            if !seen.insert(plain.clone()) {
                self.hide(entry.path(), "decrypts to a name another entry already has");
                continue;
            }
            let ino = self.intern(ino, &plain, disk.to_owned(), kind);
            out.push(DirEntry {
                ino,
                kind,
                name: plain,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn hide(&mut self, path: PathBuf, reason: &str) {
        if self.hidden_logged.len() < 10_000 && !self.hidden_logged.contains(&path) {
            tracing::warn!(path = %path.display(), "hiding a stored file: {reason}");
            self.hidden_logged.insert(path);
        }
    }

    fn check_writable(&self) -> Result<()> {
        if self.read_only {
            Err(ViewError::ReadOnly)
        } else {
            Ok(())
        }
    }

    fn open_sealed(&self, ino: u64) -> Result<Sealed> {
        let path = self.path(ino)?;
        let file = File::open(&path).map_err(ViewError::io(&path))?;
        Sealed::open(file).map_err(ViewError::stream(&path))
    }

    fn add_handle(&mut self, handle: Handle) -> u64 {
        let fh = self.next_fh;
        self.next_fh += 1;
        self.handles.insert(fh, handle);
        fh
    }

    /// Opens file `ino`; `write` for any write access, `truncate` for
    /// `O_TRUNC`. Returns a handle.
    pub fn open(&mut self, ino: u64, write: bool, truncate: bool) -> Result<u64> {
        let node = self.node(ino)?;
        if node.kind == Kind::Dir {
            return Err(ViewError::IsDir);
        }
        if !write {
            if truncate {
                self.check_writable()?;
                self.setattr_size(ino, None, 0)?;
            }
            let version = self.node(ino)?.version;
            return Ok(self.add_handle(Handle::Read {
                ino,
                file: None,
                version,
                cached: None,
                block: Zeroizing::new(Vec::new()),
            }));
        }
        self.check_writable()?;
        self.start_writer(ino)?;
        if let Some(slot) = self.writers.get_mut(&ino) {
            slot.users += 1;
        }
        let fh = self.add_handle(Handle::Write { ino });
        if truncate {
            let result = self.truncate_writer(ino, 0);
            if let Err(e) = result {
                let _ = self.release(fh);
                return Err(e);
            }
        }
        Ok(fh)
    }

    fn start_writer(&mut self, ino: u64) -> Result<()> {
        if !self.writers.contains_key(&ino) {
            let src = self.open_sealed(ino)?;
            let writer = Writer::new(src, self.store.storage());
            self.writers.insert(ino, WriterSlot { writer, users: 0 });
        }
        Ok(())
    }

    fn truncate_writer(&mut self, ino: u64, size: u64) -> Result<()> {
        let path = self.store.storage().to_owned();
        let Some(slot) = self.writers.get_mut(&ino) else {
            return Err(ViewError::BadHandle);
        };
        slot.writer
            .truncate(self.store.blocks(), size)
            .map_err(ViewError::stream(&path))
    }

    /// Creates the new, empty file `name` in `parent` and opens it for
    /// writing. The empty file is visible (and valid for rclone) at once.
    pub fn create(&mut self, parent: u64, name: &OsStr) -> Result<(Attr, u64)> {
        self.check_writable()?;
        let name = utf8(name)?;
        let dir = self.dir_path(parent)?;
        let disk = self.disk_name(name, Kind::File)?;
        let dest = dir.join(&disk);
        if fs::symlink_metadata(dir.join(self.disk_name(name, Kind::Dir)?)).is_ok() {
            return Err(ViewError::Exists);
        }
        let temp = TempSealed::create(self.store.storage())
            .map_err(ViewError::io(self.store.storage()))?;
        temp.link_new(&dest).map_err(|e| match e.kind() {
            io::ErrorKind::AlreadyExists => ViewError::Exists,
            _ => ViewError::io(&dest)(e),
        })?;
        let ino = self.intern(parent, name, disk, Kind::File);
        if let Some(node) = self.nodes.get_mut(&ino) {
            node.lookups += 1;
            node.version += 1;
        }
        self.writers.remove(&ino);
        let fh = self.open(ino, true, false)?;
        let attr = self.getattr(ino)?;
        Ok((attr, fh))
    }

    /// Reads up to `size` bytes at `offset` through handle `fh`, at once.
    pub fn read(&mut self, fh: u64, offset: u64, size: u32) -> Result<Vec<u8>> {
        match self.read_or_job(fh, offset, size)? {
            ReadOutcome::Data(d) => Ok(d.to_vec()),
            ReadOutcome::Job(job) => {
                let storage = self.store.storage();
                job.run(|r| r.map(<[u8]>::to_vec).map_err(ViewError::stream(storage)))
            }
        }
    }

    /// Reads up to `size` bytes at `offset` through handle `fh`: small
    /// reads and reads of files with pending writes at once, large reads
    /// of committed files as a [`ReadJob`] for a worker thread.
    pub fn read_or_job(&mut self, fh: u64, offset: u64, size: u32) -> Result<ReadOutcome<'_>> {
        let ino = match self.handles.get(&fh) {
            Some(Handle::Read { ino, .. } | Handle::Write { ino }) => *ino,
            None => return Err(ViewError::BadHandle),
        };
        if self.writers.contains_key(&ino) {
            let storage = self.store.storage().to_owned();
            let cipher = self.store.blocks();
            let slot = self.writers.get_mut(&ino).ok_or(ViewError::BadHandle)?;
            slot.writer
                .read(cipher, offset, size as usize, &mut self.pending)
                .map_err(ViewError::stream(&storage))?;
            return Ok(ReadOutcome::Data(&self.pending));
        }
        let version = self.node(ino)?.version;
        let stale = match self.handles.get(&fh) {
            Some(Handle::Read {
                file, version: v, ..
            }) => file.is_none() || *v != version,
            _ => true,
        };
        if stale {
            let sealed = self.open_sealed(ino)?;
            if let Some(Handle::Read {
                file,
                version: v,
                cached,
                ..
            }) = self.handles.get_mut(&fh)
            {
                *file = Some(sealed);
                *v = version;
                *cached = None;
            }
        }
        let cipher = self.store.blocks();
        let storage = self.store.storage();
        let Some(Handle::Read {
            file: Some(file),
            cached,
            block,
            ..
        }) = self.handles.get_mut(&fh)
        else {
            return Err(ViewError::BadHandle);
        };
        let bds = BLOCK_DATA_SIZE as u64;
        let end = offset.saturating_add(u64::from(size)).min(file.size());
        if offset >= end {
            return Ok(ReadOutcome::Data(&[]));
        }
        let index = offset / bds;
        if (end - 1) / bds == index {
            // One block: serve it from (or into) the handle's cache.
            if cached.map(|c| c.0) != Some(index) {
                block.resize(BLOCK_DATA_SIZE, 0);
                let n = file
                    .read_block(cipher, index, &mut self.sealed, block)
                    .map_err(ViewError::stream(storage))?;
                *cached = Some((index, n));
            }
            let start = (offset - index * bds) as usize;
            let stop = (end - index * bds) as usize;
            return Ok(ReadOutcome::Data(&block[start..stop]));
        }
        Ok(ReadOutcome::Job(ReadJob::new(
            file.clone(),
            Arc::clone(&self.cipher),
            offset,
            size as usize,
        )))
    }

    /// Writes `data` at `offset` through handle `fh` (open for writing).
    pub fn write(&mut self, fh: u64, offset: u64, data: &[u8]) -> Result<u32> {
        let Some(Handle::Write { ino }) = self.handles.get(&fh) else {
            return Err(ViewError::BadHandle);
        };
        let ino = *ino;
        let storage = self.store.storage().to_owned();
        let cipher = self.store.blocks();
        let slot = self.writers.get_mut(&ino).ok_or(ViewError::BadHandle)?;
        slot.writer
            .write(cipher, offset, data)
            .map_err(ViewError::stream(&storage))?;
        Ok(data.len() as u32)
    }

    /// Publishes the pending writes of `ino`, if any: the new version
    /// replaces the old one atomically.
    fn commit(&mut self, ino: u64) -> Result<()> {
        let dirty = self
            .writers
            .get(&ino)
            .is_some_and(|slot| slot.writer.is_dirty());
        if !dirty {
            return Ok(());
        }
        let dest = match self.path(ino) {
            Ok(p) => p,
            // Removed while open: the pending version goes with it.
            Err(ViewError::NotFound) => {
                self.writers.remove(&ino);
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let cipher = self.store.blocks();
        if let Some(slot) = self.writers.get_mut(&ino) {
            slot.writer
                .commit(cipher, &dest)
                .map_err(ViewError::stream(&dest))?;
        }
        if let Some(node) = self.nodes.get_mut(&ino) {
            node.version += 1;
        }
        Ok(())
    }

    /// `close(2)` of one descriptor (flush) or `fsync(2)`: commits.
    pub fn flush(&mut self, fh: u64) -> Result<()> {
        match self.handles.get(&fh) {
            Some(Handle::Write { ino }) => {
                let ino = *ino;
                self.commit(ino)
            }
            Some(Handle::Read { .. }) => Ok(()),
            None => Err(ViewError::BadHandle),
        }
    }

    /// The last reference to handle `fh` is gone: commits (for the last
    /// writer of the file) and forgets it.
    pub fn release(&mut self, fh: u64) -> Result<()> {
        match self.handles.remove(&fh) {
            Some(Handle::Write { ino }) => {
                let last = match self.writers.get_mut(&ino) {
                    Some(slot) => {
                        slot.users = slot.users.saturating_sub(1);
                        slot.users == 0
                    }
                    None => false,
                };
                if last {
                    let result = self.commit(ino);
                    self.writers.remove(&ino);
                    result
                } else {
                    Ok(())
                }
            }
            Some(Handle::Read { .. }) => Ok(()),
            None => Err(ViewError::BadHandle),
        }
    }

    /// `truncate(2)`/`ftruncate(2)`. While the file is open for writing
    /// through the mount the new size is pending like any write (committed
    /// at close); otherwise it is committed at once.
    pub fn setattr_size(&mut self, ino: u64, fh: Option<u64>, size: u64) -> Result<Attr> {
        self.check_writable()?;
        if self.node(ino)?.kind == Kind::Dir {
            return Err(ViewError::IsDir);
        }
        // The kernel does not always say which handle truncates (no
        // FATTR_FH on `ftruncate`): while the file is open for writing, a
        // truncation is part of the pending version.
        let by_handle = matches!(fh.and_then(|fh| self.handles.get(&fh)), Some(Handle::Write { ino: i }) if *i == ino);
        let open_for_writing = self.writers.get(&ino).is_some_and(|s| s.users > 0);
        let through_writer = by_handle || open_for_writing;
        let temporary = !self.writers.contains_key(&ino);
        self.start_writer(ino)?;
        let result = self.truncate_writer(ino, size).and_then(|()| {
            if through_writer {
                Ok(())
            } else {
                self.commit(ino)
            }
        });
        if temporary {
            self.writers.remove(&ino);
        }
        result?;
        self.getattr(ino)
    }

    /// Creates folder `name` in `parent` (mode 0700 in storage).
    pub fn mkdir(&mut self, parent: u64, name: &OsStr) -> Result<Attr> {
        self.check_writable()?;
        let name = utf8(name)?;
        let dir = self.dir_path(parent)?;
        if self.find(parent, name).is_ok() {
            return Err(ViewError::Exists);
        }
        let disk = self.disk_name(name, Kind::Dir)?;
        let path = dir.join(&disk);
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .map_err(|e| match e.kind() {
                io::ErrorKind::AlreadyExists => ViewError::Exists,
                _ => ViewError::io(&path)(e),
            })?;
        let ino = self.intern(parent, name, disk, Kind::Dir);
        if let Some(node) = self.nodes.get_mut(&ino) {
            node.lookups += 1;
        }
        self.getattr(ino)
    }

    /// Removes file `name` from `parent`. Readers that have it open keep
    /// reading it; pending writes to it are dropped.
    pub fn unlink(&mut self, parent: u64, name: &OsStr) -> Result<()> {
        self.check_writable()?;
        let name = utf8(name)?;
        let (kind, disk, _) = self.find(parent, name)?;
        if kind == Kind::Dir {
            return Err(ViewError::IsDir);
        }
        let path = self.dir_path(parent)?.join(disk);
        fs::remove_file(&path).map_err(ViewError::io(&path))?;
        self.drop_name(parent, name);
        Ok(())
    }

    /// Removes the empty folder `name` from `parent`.
    pub fn rmdir(&mut self, parent: u64, name: &OsStr) -> Result<()> {
        self.check_writable()?;
        let name = utf8(name)?;
        let (kind, disk, _) = self.find(parent, name)?;
        if kind != Kind::Dir {
            return Err(ViewError::NotDir);
        }
        let path = self.dir_path(parent)?.join(disk);
        fs::remove_dir(&path).map_err(ViewError::io(&path))?;
        self.drop_name(parent, name);
        Ok(())
    }

    /// Renames `parent/name` to `new_parent/new_name`, atomically (one
    /// `rename(2)` in storage), replacing a file or empty folder there
    /// unless `no_replace`.
    pub fn rename(
        &mut self,
        parent: u64,
        name: &OsStr,
        new_parent: u64,
        new_name: &OsStr,
        no_replace: bool,
    ) -> Result<()> {
        self.check_writable()?;
        let name = utf8(name)?;
        let new_name = utf8(new_name)?;
        let (kind, disk, _) = self.find(parent, name)?;
        let from = self.dir_path(parent)?.join(&disk);
        let new_disk = self.disk_name(new_name, kind)?;
        let to_dir = self.dir_path(new_parent)?;
        let to = to_dir.join(&new_disk);
        let existing = self.find(new_parent, new_name).ok();
        if let Some((other, _, _)) = &existing {
            if no_replace {
                return Err(ViewError::Exists);
            }
            match (kind, other) {
                (Kind::File, Kind::Dir) => return Err(ViewError::IsDir),
                (Kind::Dir, Kind::File) => return Err(ViewError::NotDir),
                _ => {}
            }
        }
        if kind == Kind::Dir {
            // A folder cannot move into itself or its own subfolders.
            if let Some(&src_ino) = self.by_name.get(&(parent, name.to_owned())) {
                let mut cur = new_parent;
                while cur != ROOT {
                    if cur == src_ino {
                        return Err(ViewError::BadName("a folder cannot move into itself"));
                    }
                    cur = self.node(cur)?.parent;
                }
            }
        }
        fs::rename(&from, &to).map_err(ViewError::io(&from))?;
        if existing.is_some() && (new_parent, new_name) != (parent, name) {
            self.drop_name(new_parent, new_name);
        }
        match self.by_name.remove(&(parent, name.to_owned())) {
            Some(ino) => {
                if let Some(node) = self.nodes.get_mut(&ino) {
                    node.parent = new_parent;
                    node.name = new_name.to_owned();
                    node.disk = new_disk;
                    node.gone = false;
                }
                self.by_name.insert((new_parent, new_name.to_owned()), ino);
            }
            None => {
                self.intern(new_parent, new_name, new_disk, kind);
            }
        }
        Ok(())
    }

    /// Commits every pending write (at unmount).
    pub fn shutdown(&mut self) {
        let inos: Vec<u64> = self.writers.keys().copied().collect();
        for ino in inos {
            if let Err(e) = self.commit(ino) {
                tracing::error!("could not save pending writes at unmount: {e}");
            }
        }
        self.writers.clear();
        self.handles.clear();
    }
}

fn utf8(name: &OsStr) -> Result<&str> {
    let name = name
        .to_str()
        .ok_or(ViewError::BadName("names must be UTF-8 to be encrypted"))?;
    if name.is_empty() || name == "." || name == ".." || name.contains('/') {
        return Err(ViewError::BadName("not a single file name"));
    }
    Ok(name)
}

/// Removes our temporary files anywhere under `storage` (left by a killed
/// mount or store command; never complete files, see the module docs of
/// `mount::content`).
fn remove_stale_temps(storage: &Path) {
    let mut stack = vec![storage.to_owned()];
    let mut removed = 0u64;
    while let Some(dir) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(ft) = entry.file_type() else { continue };
            let name = entry.file_name();
            let temp = name.to_str().is_some_and(|n| n.starts_with(TEMP_PREFIX));
            if ft.is_dir() && !temp {
                stack.push(entry.path());
            } else if temp && ft.is_file() && fs::remove_file(entry.path()).is_ok() {
                removed += 1;
            }
        }
    }
    if removed > 0 {
        tracing::info!(
            removed,
            "removed temporary files of interrupted writes (the files they were replacing are intact)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypt::store::{InitOptions, StorePaths};
    use crate::secret::StoreKey;

    fn new_view(dir: &Path, options: &InitOptions) -> View {
        let paths = StorePaths::new(&dir.join("store"), None, None);
        let key = StoreKey::new("view test key").unwrap();
        let store = Store::init(&paths, &key, options).unwrap();
        View::new(store, false).unwrap()
    }

    fn os(s: &str) -> &OsStr {
        OsStr::new(s)
    }

    /// Regression (fuzz/mount_names): a name with rclone's quote character
    /// before a full-width one was created, then listed as another name.
    #[test]
    fn names_that_would_list_as_another_name_are_refused() {
        use ssformat::rclone::name::NameMode;
        for mode in [NameMode::Standard, NameMode::Obfuscate, NameMode::Off] {
            let tmp = tempfile::tempdir().unwrap();
            let options = InitOptions {
                filename_encryption: mode,
                ..InitOptions::default()
            };
            let mut view = new_view(tmp.path(), &options);
            let name = "hello.t-t\u{1}\u{2}dir\u{201b}\u{ff0e}";
            assert!(matches!(
                view.create(ROOT, os(name)),
                Err(ViewError::BadName(_))
            ));
            assert!(matches!(
                view.mkdir(ROOT, os(name)),
                Err(ViewError::BadName(_))
            ));
            // Every name accepted is listed as itself.
            for name in ["a\u{ff0e}", "b\u{201b}", "c\u{201b}\u{201b}\u{ff0e}", "d."] {
                if let Ok((_, fh)) = view.create(ROOT, os(name)) {
                    view.release(fh).unwrap();
                    let listed = view.readdir(ROOT).unwrap();
                    assert!(
                        listed.iter().any(|e| e.name == name),
                        "{mode:?} {name:?}: {listed:?}"
                    );
                }
            }
        }
    }

    fn write_file(view: &mut View, parent: u64, name: &str, data: &[u8]) -> u64 {
        let (attr, fh) = view.create(parent, os(name)).unwrap();
        assert_eq!(attr.size, 0);
        for (i, chunk) in data.chunks(100_000).enumerate() {
            view.write(fh, (i * 100_000) as u64, chunk).unwrap();
        }
        view.flush(fh).unwrap();
        view.release(fh).unwrap();
        attr.ino
    }

    fn read_file(view: &mut View, ino: u64) -> Vec<u8> {
        let fh = view.open(ino, false, false).unwrap();
        let mut out = Vec::new();
        loop {
            let chunk = view.read(fh, out.len() as u64, 131072).unwrap();
            if chunk.is_empty() {
                break;
            }
            out.extend_from_slice(&chunk);
        }
        view.release(fh).unwrap();
        out
    }

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 1000) as u8).collect()
    }

    #[test]
    fn create_write_read_list_and_names_are_encrypted() {
        let dir = tempfile::tempdir().unwrap();
        let mut view = new_view(dir.path(), &InitOptions::default());
        let content = data(300_000);
        let ino = write_file(&mut view, ROOT, "hello.txt", &content);
        assert_eq!(view.getattr(ino).unwrap().size, content.len() as u64);
        assert!(read_file(&mut view, ino) == content);
        let sub = view.mkdir(ROOT, os("sub dir")).unwrap().ino;
        write_file(&mut view, sub, "日本.txt", b"x");
        let names: Vec<String> = view
            .readdir(ROOT)
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(names, ["hello.txt", "sub dir"]);
        // On disk nothing is in clear, and no temporary file is left.
        let storage = dir.path().join("store/storage");
        for entry in fs::read_dir(&storage).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            assert!(!name.contains("hello") && !name.starts_with('.'), "{name}");
        }
        // Random offsets.
        let fh = view.open(ino, false, false).unwrap();
        for (off, n) in [(65530u64, 12u32), (1, 1), (200_000, 70_000), (299_999, 5)] {
            let got = view.read(fh, off, n).unwrap();
            let end = (off as usize + n as usize).min(content.len());
            assert!(got == content[off as usize..end], "offset {off}");
        }
        view.release(fh).unwrap();
    }

    #[test]
    fn append_truncate_rename_unlink_rmdir() {
        let dir = tempfile::tempdir().unwrap();
        let mut view = new_view(dir.path(), &InitOptions::default());
        let ino = write_file(&mut view, ROOT, "a", b"hello");
        let fh = view.open(ino, true, false).unwrap();
        view.write(fh, 5, b" world").unwrap();
        // Pending writes are visible through the mount before the commit.
        assert_eq!(view.getattr(ino).unwrap().size, 11);
        view.release(fh).unwrap();
        assert_eq!(read_file(&mut view, ino), b"hello world");
        view.setattr_size(ino, None, 4).unwrap();
        assert_eq!(read_file(&mut view, ino), b"hell");
        let fh = view.open(ino, true, true).unwrap();
        view.write(fh, 0, b"new").unwrap();
        view.release(fh).unwrap();
        assert_eq!(read_file(&mut view, ino), b"new");

        let sub = view.mkdir(ROOT, os("d")).unwrap().ino;
        view.rename(ROOT, os("a"), sub, os("b"), false).unwrap();
        assert!(matches!(
            view.lookup(ROOT, os("a")),
            Err(ViewError::NotFound)
        ));
        let moved = view.lookup(sub, os("b")).unwrap();
        assert_eq!(moved.ino, ino);
        assert_eq!(read_file(&mut view, ino), b"new");
        assert!(matches!(
            view.rmdir(ROOT, os("d")),
            Err(ViewError::Io { .. })
        ));
        view.unlink(sub, os("b")).unwrap();
        view.rmdir(ROOT, os("d")).unwrap();
        assert!(view.readdir(ROOT).unwrap().is_empty());
    }

    #[test]
    fn undecryptable_names_and_temps_are_hidden_and_read_only_refuses() {
        let dir = tempfile::tempdir().unwrap();
        let mut view = new_view(dir.path(), &InitOptions::default());
        write_file(&mut view, ROOT, "ok", b"1");
        let storage = dir.path().join("store/storage");
        fs::write(storage.join("not-a-crypt-name"), b"junk").unwrap();
        fs::write(storage.join(format!("{TEMP_PREFIX}x")), b"junk").unwrap();
        let names: Vec<String> = view
            .readdir(ROOT)
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(names, ["ok"]);
        // A new view removes the temporary file, not the foreign one.
        let paths = StorePaths::new(&dir.path().join("store"), None, None);
        let key = StoreKey::new("view test key").unwrap();
        let mut ro = View::new(Store::open(&paths, &key).unwrap(), true).unwrap();
        assert!(storage.join(format!("{TEMP_PREFIX}x")).exists());
        drop(View::new(Store::open(&paths, &key).unwrap(), false).unwrap());
        assert!(!storage.join(format!("{TEMP_PREFIX}x")).exists());
        assert!(storage.join("not-a-crypt-name").exists());
        assert!(matches!(ro.create(ROOT, os("n")), Err(ViewError::ReadOnly)));
        assert!(matches!(ro.mkdir(ROOT, os("n")), Err(ViewError::ReadOnly)));
        let ino = ro.lookup(ROOT, os("ok")).unwrap().ino;
        assert!(matches!(
            ro.open(ino, true, false),
            Err(ViewError::ReadOnly)
        ));
        assert_eq!(read_file(&mut ro, ino), b"1");
    }

    #[test]
    fn every_name_mode_round_trips() {
        use ssformat::rclone::name::{NameEncoding, NameMode};
        for (mode, encoding, dirs) in [
            (NameMode::Standard, NameEncoding::Base64, true),
            (NameMode::Standard, NameEncoding::Base32768, false),
            (NameMode::Obfuscate, NameEncoding::Base32, true),
            (NameMode::Off, NameEncoding::Base32, true),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let options = InitOptions {
                filename_encryption: mode,
                filename_encoding: encoding,
                directory_name_encryption: dirs,
                password2: None,
            };
            let mut view = new_view(dir.path(), &options);
            let sub = view.mkdir(ROOT, os("folder")).unwrap().ino;
            let ino = write_file(&mut view, sub, "report-v2021-01-02-150405-000.txt", b"v");
            let listed = view.readdir(sub).unwrap();
            assert_eq!(listed.len(), 1, "{mode:?}");
            assert_eq!(listed[0].name, "report-v2021-01-02-150405-000.txt");
            assert_eq!(listed[0].ino, ino);
            assert_eq!(read_file(&mut view, ino), b"v");
        }
    }

    #[test]
    fn two_writers_on_one_file_share_the_pending_version() {
        let dir = tempfile::tempdir().unwrap();
        let mut view = new_view(dir.path(), &InitOptions::default());
        let ino = write_file(&mut view, ROOT, "f", b"0123456789");
        let a = view.open(ino, true, false).unwrap();
        let b = view.open(ino, true, false).unwrap();
        view.write(a, 0, b"AA").unwrap();
        view.write(b, 8, b"BB").unwrap();
        view.release(a).unwrap();
        view.release(b).unwrap();
        assert_eq!(read_file(&mut view, ino), b"AA234567BB");
    }
}
