//! The thin FUSE adapter: turns kernel requests (through `fuser`) into
//! [`View`] calls, and every [`ViewError`] into an errno in one place
//! ([`errno`]). No file system logic lives here.
//!
//! Kernel tuning, set at `init`: 1 MiB writes (`max_write`, with the
//! `max_pages` of FUSE ABI 7.28) and the largest readahead the kernel
//! offers, so that sequential I/O moves in batches of 16 blocks that
//! `mount::content` seals and opens on all cores.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::time::Duration;

use fuser::{
    FileAttr, FileType, Filesystem, KernelConfig, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyWrite, Request, TimeOrNow,
};
use libc::c_int;

use super::view::{Attr, Kind, ReadOutcome, View, ViewError};

/// How long the kernel may cache names and attributes. Only this mount
/// changes the store while it is mounted, so a second is safe and saves
/// most `getattr` round trips.
const TTL: Duration = Duration::from_secs(1);

/// Largest read or write request we ask the kernel for.
pub const MAX_IO: u32 = 1 << 20;

/// The one place where view errors become errno values.
pub fn errno(err: &ViewError) -> c_int {
    match err {
        ViewError::NotFound => libc::ENOENT,
        ViewError::Exists => libc::EEXIST,
        ViewError::NotDir => libc::ENOTDIR,
        ViewError::IsDir => libc::EISDIR,
        ViewError::NameTooLong => libc::ENAMETOOLONG,
        ViewError::BadName(_) => libc::EINVAL,
        ViewError::ReadOnly => libc::EROFS,
        ViewError::BadHandle => libc::EBADF,
        ViewError::Unsupported(_) => libc::ENOTSUP,
        ViewError::Corrupt { .. } => libc::EIO,
        ViewError::Io { error, .. } => error.raw_os_error().unwrap_or(libc::EIO),
    }
}

/// Logs a failure worth a line (damage and I/O errors, not `ENOENT`) and
/// returns its errno.
fn fail(op: &str, err: &ViewError) -> c_int {
    match err {
        ViewError::Corrupt { .. } | ViewError::Io { .. } => {
            tracing::warn!("{op}: {err}");
        }
        _ => tracing::debug!("{op}: {err}"),
    }
    errno(err)
}

/// A [`View`] served over FUSE.
#[derive(Debug)]
pub struct FuseView {
    view: View,
    storage: std::path::PathBuf,
    uid: u32,
    gid: u32,
    /// Directory listings taken at `opendir`, so offsets stay stable.
    listings: HashMap<u64, Vec<(u64, FileType, String)>>,
    next_dir: u64,
}

impl FuseView {
    /// Serves `view`, presenting every file as owned by `uid:gid`.
    pub fn new(view: View, uid: u32, gid: u32) -> Self {
        FuseView {
            storage: view.storage().to_owned(),
            view,
            uid,
            gid,
            listings: HashMap::new(),
            next_dir: 1,
        }
    }

    fn attr(&self, a: &Attr) -> FileAttr {
        let (kind, nlink) = match a.kind {
            Kind::File => (FileType::RegularFile, 1),
            Kind::Dir => (FileType::Directory, 2),
        };
        FileAttr {
            ino: a.ino,
            size: a.size,
            blocks: a.size.div_ceil(512),
            atime: a.atime,
            mtime: a.mtime,
            ctime: a.ctime,
            crtime: a.ctime,
            kind,
            perm: a.perm,
            nlink,
            uid: self.uid,
            gid: self.gid,
            rdev: 0,
            blksize: MAX_IO,
            flags: 0,
        }
    }
}

fn file_type(kind: Kind) -> FileType {
    match kind {
        Kind::File => FileType::RegularFile,
        Kind::Dir => FileType::Directory,
    }
}

impl Filesystem for FuseView {
    fn init(&mut self, _req: &Request<'_>, config: &mut KernelConfig) -> Result<(), c_int> {
        if let Err(nearest) = config.set_max_write(MAX_IO) {
            let _ = config.set_max_write(nearest);
        }
        if let Err(nearest) = config.set_max_readahead(MAX_IO) {
            let _ = config.set_max_readahead(nearest);
        }
        let _ = config.set_max_background(64);
        // O_TRUNC arrives with `open`, so that truncating a file and
        // writing it again is one pending version, committed at close
        // (without it the kernel sends a bare SETATTR(size = 0) first).
        let _ = config.add_capabilities(fuser::consts::FUSE_ATOMIC_O_TRUNC);
        Ok(())
    }

    fn destroy(&mut self) {
        self.view.shutdown();
    }

    fn lookup(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEntry) {
        match self.view.lookup(parent, name) {
            Ok(a) => reply.entry(&TTL, &self.attr(&a), 0),
            Err(e) => reply.error(fail("lookup", &e)),
        }
    }

    fn forget(&mut self, _req: &Request<'_>, ino: u64, nlookup: u64) {
        self.view.forget(ino, nlookup);
    }

    fn getattr(&mut self, _req: &Request<'_>, ino: u64, _fh: Option<u64>, reply: ReplyAttr) {
        match self.view.getattr(ino) {
            Ok(a) => reply.attr(&TTL, &self.attr(&a)),
            Err(e) => reply.error(fail("getattr", &e)),
        }
    }

    fn setattr(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<std::time::SystemTime>,
        fh: Option<u64>,
        _crtime: Option<std::time::SystemTime>,
        _chgtime: Option<std::time::SystemTime>,
        _bkuptime: Option<std::time::SystemTime>,
        _flags: Option<u32>,
        reply: ReplyAttr,
    ) {
        // Mode, owner and times are fixed by the mount (docs/SEMANTICS.md);
        // changing them succeeds without effect, as on vfat.
        let result = match size {
            Some(size) => self.view.setattr_size(ino, fh, size),
            None => self.view.getattr(ino),
        };
        match result {
            Ok(a) => reply.attr(&TTL, &self.attr(&a)),
            Err(e) => reply.error(fail("setattr", &e)),
        }
    }

    fn mkdir(
        &mut self,
        _req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        _mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        match self.view.mkdir(parent, name) {
            Ok(a) => reply.entry(&TTL, &self.attr(&a), 0),
            Err(e) => reply.error(fail("mkdir", &e)),
        }
    }

    fn unlink(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEmpty) {
        match self.view.unlink(parent, name) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(fail("unlink", &e)),
        }
    }

    fn rmdir(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEmpty) {
        match self.view.rmdir(parent, name) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(fail("rmdir", &e)),
        }
    }

    fn rename(
        &mut self,
        _req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        newparent: u64,
        newname: &OsStr,
        flags: u32,
        reply: ReplyEmpty,
    ) {
        let no_replace = flags & libc::RENAME_NOREPLACE != 0;
        if flags & !libc::RENAME_NOREPLACE != 0 {
            // RENAME_EXCHANGE and RENAME_WHITEOUT are not supported.
            reply.error(libc::EINVAL);
            return;
        }
        match self
            .view
            .rename(parent, name, newparent, newname, no_replace)
        {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(fail("rename", &e)),
        }
    }

    fn open(&mut self, _req: &Request<'_>, ino: u64, flags: i32, reply: ReplyOpen) {
        let write = flags & libc::O_ACCMODE != libc::O_RDONLY;
        let truncate = flags & libc::O_TRUNC != 0;
        match self.view.open(ino, write, truncate) {
            Ok(fh) => reply.opened(fh, 0),
            Err(e) => reply.error(fail("open", &e)),
        }
    }

    fn read(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        fh: u64,
        offset: i64,
        size: u32,
        _flags: i32,
        _lock_owner: Option<u64>,
        reply: ReplyData,
    ) {
        let Ok(offset) = u64::try_from(offset) else {
            reply.error(libc::EINVAL);
            return;
        };
        match self.view.read_or_job(fh, offset, size) {
            Ok(ReadOutcome::Data(data)) => reply.data(data),
            // Large reads decrypt on a worker while this thread takes the
            // next request (readahead arrives several at a time).
            Ok(ReadOutcome::Job(job)) => {
                let storage = self.storage.clone();
                rayon::spawn(move || {
                    job.run(|result| match result {
                        Ok(data) => reply.data(data),
                        Err(e) => reply.error(fail("read", &ViewError::from_stream(&storage, e))),
                    })
                });
            }
            Err(e) => reply.error(fail("read", &e)),
        }
    }

    fn write(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        fh: u64,
        offset: i64,
        data: &[u8],
        _write_flags: u32,
        _flags: i32,
        _lock_owner: Option<u64>,
        reply: ReplyWrite,
    ) {
        let Ok(offset) = u64::try_from(offset) else {
            reply.error(libc::EINVAL);
            return;
        };
        match self.view.write(fh, offset, data) {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(fail("write", &e)),
        }
    }

    fn flush(&mut self, _req: &Request<'_>, _ino: u64, fh: u64, _lock: u64, reply: ReplyEmpty) {
        match self.view.flush(fh) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(fail("flush", &e)),
        }
    }

    fn release(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        fh: u64,
        _flags: i32,
        _lock_owner: Option<u64>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        match self.view.release(fh) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(fail("release", &e)),
        }
    }

    fn fsync(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        fh: u64,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        match self.view.flush(fh) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(fail("fsync", &e)),
        }
    }

    fn opendir(&mut self, _req: &Request<'_>, ino: u64, _flags: i32, reply: ReplyOpen) {
        let parent = match self.view.getattr(ino) {
            Ok(_) => ino,
            Err(e) => {
                reply.error(fail("opendir", &e));
                return;
            }
        };
        match self.view.readdir(ino) {
            Ok(entries) => {
                let mut list = Vec::with_capacity(entries.len() + 2);
                list.push((ino, FileType::Directory, ".".to_owned()));
                list.push((parent, FileType::Directory, "..".to_owned()));
                list.extend(
                    entries
                        .into_iter()
                        .map(|e| (e.ino, file_type(e.kind), e.name)),
                );
                let fh = self.next_dir;
                self.next_dir += 1;
                self.listings.insert(fh, list);
                reply.opened(fh, 0);
            }
            Err(e) => reply.error(fail("opendir", &e)),
        }
    }

    fn readdir(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        fh: u64,
        offset: i64,
        mut reply: ReplyDirectory,
    ) {
        let Some(list) = self.listings.get(&fh) else {
            reply.error(libc::EBADF);
            return;
        };
        let start = usize::try_from(offset).unwrap_or(0);
        for (i, (ino, kind, name)) in list.iter().enumerate().skip(start) {
            if reply.add(*ino, (i + 1) as i64, *kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn releasedir(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        fh: u64,
        _flags: i32,
        reply: ReplyEmpty,
    ) {
        self.listings.remove(&fh);
        reply.ok();
    }

    fn statfs(&mut self, _req: &Request<'_>, _ino: u64, reply: fuser::ReplyStatfs) {
        // The storage file system's numbers: `df` on the mount shows the
        // space left for encrypted files.
        match nix::sys::statvfs::statvfs(self.storage.as_path()) {
            Ok(s) => reply.statfs(
                s.blocks(),
                s.blocks_free(),
                s.blocks_available(),
                s.files(),
                s.files_free(),
                s.block_size() as u32,
                255,
                s.fragment_size() as u32,
            ),
            Err(e) => reply.error(e as c_int),
        }
    }

    fn access(&mut self, _req: &Request<'_>, ino: u64, _mask: i32, reply: ReplyEmpty) {
        // `default_permissions` makes the kernel check the mode bits.
        match self.view.getattr(ino) {
            Ok(_) => reply.ok(),
            Err(e) => reply.error(fail("access", &e)),
        }
    }

    fn create(
        &mut self,
        _req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        _mode: u32,
        _umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        match self.view.create(parent, name) {
            Ok((a, fh)) => reply.created(&TTL, &self.attr(&a), 0, fh, 0),
            Err(e) => reply.error(fail("create", &e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_has_an_errno() {
        let io = |raw| ViewError::Io {
            path: "x".into(),
            error: std::io::Error::from_raw_os_error(raw),
        };
        assert_eq!(errno(&ViewError::NotFound), libc::ENOENT);
        assert_eq!(errno(&ViewError::ReadOnly), libc::EROFS);
        assert_eq!(errno(&io(libc::ENOTEMPTY)), libc::ENOTEMPTY);
        assert_eq!(
            errno(&ViewError::Io {
                path: "x".into(),
                error: std::io::Error::other("no errno"),
            }),
            libc::EIO
        );
        assert_eq!(
            errno(&ViewError::Corrupt {
                path: "x".into(),
                error: ssformat::rclone::content::ContentError::BadBlock { index: 0 },
            }),
            libc::EIO
        );
    }
}
