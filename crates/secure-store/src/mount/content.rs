//! File content behind the mount: random-offset reads of an rclone crypt
//! file, and the copy-on-write [`Writer`] that produces a new version of a
//! file in a temporary file and renames it over the old one on commit.
//!
//! Format: rclone crypt content (`ssformat::rclone::content`,
//! `docs/formats/rclone-crypt.md`): a 32-byte header, then 64 KiB blocks,
//! each sealed with the file nonce plus its index. Blocks are independent,
//! so a read decrypts only the blocks it touches, and a batch of blocks is
//! opened or sealed on all cores at once (rayon), as `crypt::stream` does.
//!
//! Why copy-on-write: a block cannot be rewritten in place without either
//! reusing its nonce (which leaks the XOR of the old and new plaintexts) or
//! changing the file nonce (which re-encrypts the whole file anyway). So a
//! new version is always a new file with a fresh random nonce, written
//! strictly front to back. The old file stays untouched until the new one
//! is complete and on disk; `rename(2)` then swaps them atomically. A crash
//! at any point leaves the old file intact plus, at worst, a temporary file
//! that the next mount removes.
//!
//! The writer keeps a window of [`WINDOW_BLOCKS`] plaintext blocks (1 MiB)
//! in memory. Writes inside or after the window are cheap; blocks between
//! the window and a later write are copied from the old version (decrypted
//! and re-sealed). A write *before* the window (going backwards) finishes
//! the current temporary file and starts another from it: correct, but it
//! costs a pass over the file. Sequential writers and appenders never pay it.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::ops::Range;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rayon::prelude::*;
use ssformat::rclone::content::{
    self, BlockCipher, ContentError, FileNonce, BLOCK_DATA_SIZE, BLOCK_OVERHEAD, BLOCK_SIZE,
    HEADER_SIZE,
};
use zeroize::Zeroizing;

use crate::crypt::output::TEMP_PREFIX;
use crate::crypt::stream::StreamError;

/// Plaintext blocks a writer holds before sealing them as one batch.
pub const WINDOW_BLOCKS: usize = 16;
const WINDOW: usize = WINDOW_BLOCKS * BLOCK_DATA_SIZE;
const BDS: u64 = BLOCK_DATA_SIZE as u64;
/// A 1 MiB read splits into at most two tasks: several reads are usually
/// in flight (kernel readahead), so finer splitting only adds stealing.
const MIN_BLOCKS_PER_TASK: usize = WINDOW_BLOCKS / 2;

/// Reusable buffers for batch reads: ciphertext and plaintext of up to a
/// few MiB. The plaintext one is zeroized when dropped.
#[derive(Default)]
pub struct Scratch {
    sealed: Vec<u8>,
    plain: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for Scratch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Scratch")
    }
}

/// A complete rclone crypt file open for reading: its file, nonce and
/// plaintext size (from the encrypted size, without decrypting anything).
#[derive(Clone, Debug)]
pub struct Sealed {
    file: Arc<File>,
    nonce: FileNonce,
    size: u64,
}

impl Sealed {
    /// Reads the header of an open rclone crypt file.
    pub fn open(file: File) -> Result<Sealed, StreamError> {
        let len = file.metadata()?.len();
        let size = content::decrypted_size(len)?;
        let mut head = [0u8; HEADER_SIZE];
        file.read_exact_at(&mut head, 0)?;
        let nonce = content::parse_header(&head)?;
        Ok(Sealed {
            file: Arc::new(file),
            nonce,
            size,
        })
    }

    /// Plaintext size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Decrypts the plaintext range `offset..offset + len` (clipped to the
    /// file) into `scratch` and returns where it is in `scratch.plain`.
    pub fn read_range<'s>(
        &self,
        cipher: &BlockCipher,
        offset: u64,
        len: usize,
        scratch: &'s mut Scratch,
    ) -> Result<&'s [u8], StreamError> {
        let range = read_blocks(
            &self.file,
            &self.nonce,
            self.size,
            cipher,
            offset,
            len,
            scratch,
        )?;
        Ok(&scratch.plain[range])
    }

    /// Decrypts one whole block into `out` (which must hold 64 KiB);
    /// returns its plaintext length.
    pub fn read_block(
        &self,
        cipher: &BlockCipher,
        index: u64,
        sealed: &mut Vec<u8>,
        out: &mut [u8],
    ) -> Result<usize, StreamError> {
        let start = index * BDS;
        if start >= self.size {
            return Ok(0);
        }
        let plain_len = (self.size - start).min(BDS) as usize;
        let enc_len = plain_len + BLOCK_OVERHEAD;
        sealed.resize(enc_len, 0);
        self.file
            .read_exact_at(sealed, HEADER_SIZE as u64 + index * BLOCK_SIZE as u64)?;
        Ok(cipher.open_into(&self.nonce, index, sealed, out)?)
    }
}

thread_local! {
    /// Each worker thread's buffers for [`ReadJob`]s.
    static JOB_SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
}

/// A large read of a committed file, to run on a worker thread so that the
/// FUSE thread can take the next request meanwhile (the kernel sends
/// readahead requests ahead of the reader). It holds its own reference to
/// the open file, so a release or a commit in between does not disturb it.
#[derive(Debug)]
pub struct ReadJob {
    sealed: Sealed,
    cipher: Arc<BlockCipher>,
    offset: u64,
    len: usize,
}

impl ReadJob {
    /// A read of `len` bytes at `offset` of `sealed`.
    pub fn new(sealed: Sealed, cipher: Arc<BlockCipher>, offset: u64, len: usize) -> Self {
        ReadJob {
            sealed,
            cipher,
            offset,
            len,
        }
    }

    /// Decrypts the range into this thread's buffers and hands it to
    /// `reply`.
    pub fn run<R>(self, reply: impl FnOnce(Result<&[u8], StreamError>) -> R) -> R {
        // Taken out of the slot, not borrowed: while this job waits for its
        // parallel decryption, rayon may run another job on this thread.
        let mut scratch = JOB_SCRATCH.with(|slot| slot.take());
        let out = reply(
            self.sealed
                .read_range(&self.cipher, self.offset, self.len, &mut scratch),
        );
        JOB_SCRATCH.with(|slot| slot.replace(scratch));
        out
    }
}

/// Reads and decrypts the blocks covering `offset..offset+len` of a file
/// whose first `size` plaintext bytes are complete blocks sealed with
/// `nonce`. Returns the requested bytes' range in `scratch.plain`.
fn read_blocks(
    file: &File,
    nonce: &FileNonce,
    size: u64,
    cipher: &BlockCipher,
    offset: u64,
    len: usize,
    scratch: &mut Scratch,
) -> Result<Range<usize>, StreamError> {
    if offset >= size || len == 0 {
        return Ok(0..0);
    }
    let end = size.min(offset.saturating_add(len as u64));
    let first = offset / BDS;
    let last = (end - 1) / BDS;
    let count = (last - first + 1) as usize;
    let plain_len = (end.min((last + 1) * BDS) - first * BDS) as usize;
    // Plaintext of the covered blocks: every block is full but the file's
    // last, which may be short.
    let block_plain_end = size.min((last + 1) * BDS);
    let covered_plain = (block_plain_end - first * BDS) as usize;
    let enc_len = covered_plain + count * BLOCK_OVERHEAD;
    // Buffers only grow (no zero-filling per request).
    if scratch.sealed.len() < enc_len {
        scratch.sealed.resize(enc_len, 0);
    }
    if scratch.plain.len() < covered_plain {
        scratch.plain.resize(covered_plain, 0);
    }
    file.read_exact_at(
        &mut scratch.sealed[..enc_len],
        HEADER_SIZE as u64 + first * BLOCK_SIZE as u64,
    )?;
    let sealed = &scratch.sealed[..enc_len];
    let plain = &mut scratch.plain[..covered_plain];
    let open = |(i, (block, out)): (usize, (&[u8], &mut [u8]))| {
        cipher
            .open_into(nonce, first + i as u64, block, out)
            .map(|_| ())
    };
    if count == 1 {
        open((0, (sealed, plain)))?;
    } else {
        sealed
            .par_chunks(BLOCK_SIZE)
            .zip(plain.par_chunks_mut(BLOCK_DATA_SIZE))
            .enumerate()
            .with_min_len(MIN_BLOCKS_PER_TASK)
            .try_for_each(open)?;
    }
    let skip = (offset - first * BDS) as usize;
    debug_assert!(skip <= plain_len);
    Ok(skip..plain_len)
}

/// Seals `plain` as blocks starting at `index` into `out` (resized).
fn seal_blocks(
    cipher: &BlockCipher,
    nonce: &FileNonce,
    index: u64,
    plain: &[u8],
    out: &mut Vec<u8>,
) {
    let count = plain.len().div_ceil(BLOCK_DATA_SIZE);
    out.resize(plain.len() + count * BLOCK_OVERHEAD, 0);
    let seal = |(i, (o, p)): (usize, (&mut [u8], &[u8]))| {
        let o = &mut o[..p.len() + BLOCK_OVERHEAD];
        cipher.seal_into(nonce, index + i as u64, p, o);
    };
    if count <= 1 {
        if count == 1 {
            seal((0, (&mut out[..], plain)));
        }
    } else {
        out.par_chunks_mut(BLOCK_SIZE)
            .zip(plain.par_chunks(BLOCK_DATA_SIZE))
            .enumerate()
            .for_each(seal);
    }
}

/// A temporary file in the storage folder, removed when dropped unless it
/// was renamed into place.
#[derive(Debug)]
pub struct TempSealed {
    path: PathBuf,
    file: File,
    nonce: FileNonce,
    kept: bool,
}

impl TempSealed {
    /// Creates a new temporary rclone crypt file (header only) in `dir`,
    /// with a fresh random nonce.
    pub fn create(dir: &Path) -> io::Result<TempSealed> {
        let nonce = FileNonce(crate::rng::bytes());
        loop {
            let path = dir.join(temp_name());
            match OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
            {
                Ok(file) => {
                    file.write_all_at(&content::header(&nonce), 0)?;
                    return Ok(TempSealed {
                        path,
                        file,
                        nonce,
                        kept: false,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Places the file at `dest` only if nothing is there (`link(2)` then
    /// `unlink`): an empty file appearing for `create`.
    pub fn link_new(mut self, dest: &Path) -> io::Result<File> {
        fs::hard_link(&self.path, dest)?;
        let _ = fs::remove_file(&self.path);
        self.kept = true;
        self.file.try_clone()
    }
}

impl Drop for TempSealed {
    fn drop(&mut self) {
        if !self.kept {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// `.secure-store-tmp.mount.<pid>.<counter>.<random>`: the prefix that
/// listings skip and the next mount removes.
fn temp_name() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let r: [u8; 4] = crate::rng::bytes();
    format!(
        "{TEMP_PREFIX}mount.{}.{n}.{}",
        std::process::id(),
        hex::encode(r)
    )
}

/// A pending new version of one file (see the module docs).
#[derive(Debug)]
pub struct Writer {
    /// The version being rewritten (the committed file, or an earlier
    /// pass of this writer, already unlinked).
    src: Sealed,
    /// Bytes of `src` that still count; beyond them, zeros (truncation).
    src_valid: u64,
    /// The new version: blocks `0..frontier/64Ki` are sealed in it.
    out: Option<TempSealed>,
    frontier: u64,
    /// Plaintext at `frontier..frontier+wlen`.
    window: Zeroizing<Vec<u8>>,
    wlen: usize,
    /// Logical size of the new version.
    size: u64,
    dirty: bool,
    sealed: Vec<u8>,
    scratch: Scratch,
    temp_dir: PathBuf,
}

impl Writer {
    /// A writer over the committed version `src`; temporary files go to
    /// `temp_dir` (on the same file system as the destination).
    pub fn new(src: Sealed, temp_dir: &Path) -> Writer {
        Writer {
            src_valid: src.size,
            size: src.size,
            src,
            out: None,
            frontier: 0,
            window: Zeroizing::new(Vec::new()),
            wlen: 0,
            dirty: false,
            sealed: Vec::new(),
            scratch: Scratch::default(),
            temp_dir: temp_dir.to_owned(),
        }
    }

    /// Logical size, including uncommitted writes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// True when there is something to commit.
    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    fn ensure_out(&mut self) -> io::Result<()> {
        if self.out.is_none() {
            self.out = Some(TempSealed::create(&self.temp_dir)?);
            self.frontier = 0;
            self.wlen = 0;
        }
        if self.window.len() < WINDOW {
            self.window.resize(WINDOW, 0);
        }
        Ok(())
    }

    /// Writes `data` at `offset`.
    pub fn write(
        &mut self,
        cipher: &BlockCipher,
        offset: u64,
        mut data: &[u8],
    ) -> Result<(), StreamError> {
        self.ensure_out()?;
        if offset < self.frontier {
            self.rewind(cipher)?;
        }
        let mut pos = offset;
        while !data.is_empty() {
            if pos >= self.frontier + WINDOW as u64 {
                self.fill_to(cipher, WINDOW)?;
                self.emit(cipher, WINDOW)?;
                continue;
            }
            let at = (pos - self.frontier) as usize;
            if at > self.wlen {
                self.fill_to(cipher, at)?;
            }
            let n = data.len().min(WINDOW - at);
            self.window[at..at + n].copy_from_slice(&data[..n]);
            self.wlen = self.wlen.max(at + n);
            pos += n as u64;
            data = &data[n..];
            self.size = self.size.max(pos);
        }
        self.dirty = true;
        Ok(())
    }

    /// Sets the logical size to `size` (shrinking or growing with zeros).
    pub fn truncate(&mut self, cipher: &BlockCipher, size: u64) -> Result<(), StreamError> {
        self.ensure_out()?;
        if size < self.frontier {
            self.rewind(cipher)?;
        }
        self.wlen = self.wlen.min((size - self.frontier) as usize);
        self.src_valid = self.src_valid.min(size);
        self.size = size;
        self.dirty = true;
        Ok(())
    }

    /// Fills the window from its current end up to `target` bytes with
    /// the old content (or zeros past it).
    fn fill_to(&mut self, cipher: &BlockCipher, target: usize) -> Result<(), StreamError> {
        while self.wlen < target {
            let pos = self.frontier + self.wlen as u64;
            if pos >= self.src_valid {
                self.window[self.wlen..target].fill(0);
                self.wlen = target;
                break;
            }
            let want = (target - self.wlen).min((self.src_valid - pos) as usize);
            let got = self.src.read_range(cipher, pos, want, &mut self.scratch)?;
            if got.is_empty() {
                return Err(ContentError::InvalidSize.into());
            }
            let n = got.len().min(want);
            self.window[self.wlen..self.wlen + n].copy_from_slice(&got[..n]);
            self.wlen += n;
        }
        Ok(())
    }

    /// Seals the first `len` window bytes and appends them to the new
    /// version; the window then starts after them.
    fn emit(&mut self, cipher: &BlockCipher, len: usize) -> Result<(), StreamError> {
        let Some(out) = &self.out else {
            return Ok(());
        };
        if len == 0 {
            return Ok(());
        }
        debug_assert!(self.frontier.is_multiple_of(BDS));
        let index = self.frontier / BDS;
        seal_blocks(
            cipher,
            &out.nonce,
            index,
            &self.window[..len],
            &mut self.sealed,
        );
        out.file
            .write_all_at(&self.sealed, HEADER_SIZE as u64 + index * BLOCK_SIZE as u64)?;
        self.frontier += len as u64;
        self.wlen = 0;
        Ok(())
    }

    /// Completes the new version up to `size`.
    fn finish(&mut self, cipher: &BlockCipher) -> Result<(), StreamError> {
        self.ensure_out()?;
        loop {
            let remaining = self.size - self.frontier;
            let take = remaining.min(WINDOW as u64) as usize;
            self.fill_to(cipher, take)?;
            self.emit(cipher, take)?;
            if remaining <= WINDOW as u64 {
                return Ok(());
            }
        }
    }

    /// Finishes the current pass and starts a new one from it, for a write
    /// behind the window.
    fn rewind(&mut self, cipher: &BlockCipher) -> Result<(), StreamError> {
        self.finish(cipher)?;
        let Some(mut out) = self.out.take() else {
            return Ok(());
        };
        let file = out.file.try_clone()?;
        let _ = fs::remove_file(&out.path);
        out.kept = true;
        self.src = Sealed {
            file: Arc::new(file),
            nonce: out.nonce,
            size: self.size,
        };
        self.src_valid = self.size;
        Ok(self.ensure_out()?)
    }

    /// Completes the new version, flushes it to disk and renames it over
    /// `dest`. Nothing happens when there is nothing to commit.
    pub fn commit(&mut self, cipher: &BlockCipher, dest: &Path) -> Result<(), StreamError> {
        if !self.dirty {
            return Ok(());
        }
        self.finish(cipher)?;
        let Some(mut out) = self.out.take() else {
            return Ok(());
        };
        out.file.sync_data()?;
        fs::rename(&out.path, dest)?;
        out.kept = true;
        self.src = Sealed {
            file: Arc::new(out.file.try_clone()?),
            nonce: out.nonce,
            size: self.size,
        };
        self.src_valid = self.size;
        self.frontier = 0;
        self.wlen = 0;
        self.dirty = false;
        Ok(())
    }

    /// Reads `offset..offset+len` of the pending version into `buf`
    /// (cleared first).
    pub fn read(
        &mut self,
        cipher: &BlockCipher,
        offset: u64,
        len: usize,
        buf: &mut Vec<u8>,
    ) -> Result<(), StreamError> {
        buf.clear();
        if offset >= self.size {
            return Ok(());
        }
        let end = self.size.min(offset.saturating_add(len as u64));
        let mut pos = offset;
        let win_end = self.frontier + self.wlen as u64;
        while pos < end {
            if pos < self.frontier {
                let out = self.out.as_ref().ok_or(ContentError::InvalidSize)?;
                let n = (self.frontier.min(end) - pos) as usize;
                let r = read_blocks(
                    &out.file,
                    &out.nonce,
                    self.frontier,
                    cipher,
                    pos,
                    n,
                    &mut self.scratch,
                )?;
                buf.extend_from_slice(&self.scratch.plain[r]);
                pos += n as u64;
            } else if pos < win_end {
                let a = (pos - self.frontier) as usize;
                let b = (win_end.min(end) - self.frontier) as usize;
                buf.extend_from_slice(&self.window[a..b]);
                pos += (b - a) as u64;
            } else if pos < self.src_valid {
                let n = (self.src_valid.min(end) - pos) as usize;
                let got = self.src.read_range(cipher, pos, n, &mut self.scratch)?;
                if got.is_empty() {
                    return Err(ContentError::InvalidSize.into());
                }
                buf.extend_from_slice(got);
                pos += got.len() as u64;
            } else {
                buf.resize(buf.len() + (end - pos) as usize, 0);
                pos = end;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ssformat::rclone::keys::CryptKeys;

    fn cipher() -> BlockCipher {
        BlockCipher::new(&CryptKeys::from_bytes(&[7u8; 80]))
    }

    fn noise(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 9) as u8)
            .collect()
    }

    fn sealed_file(dir: &Path, cipher: &BlockCipher, plain: &[u8]) -> PathBuf {
        let path = dir.join("f");
        let mut out = Vec::new();
        let nonce = FileNonce(crate::rng::bytes());
        crate::crypt::stream::seal(
            cipher,
            &nonce,
            &mut &plain[..],
            &mut out,
            plain.len() as u64,
            &|_| {},
        )
        .unwrap();
        fs::write(&path, out).unwrap();
        path
    }

    fn read_all(path: &Path, cipher: &BlockCipher) -> Vec<u8> {
        let s = Sealed::open(File::open(path).unwrap()).unwrap();
        let mut scratch = Scratch::default();
        s.read_range(cipher, 0, s.size() as usize, &mut scratch)
            .unwrap()
            .to_vec()
    }

    #[test]
    fn random_offset_reads_match() {
        let dir = tempfile::tempdir().unwrap();
        let c = cipher();
        let b = BLOCK_DATA_SIZE;
        for len in [0, 1, b - 1, b, b + 1, 20 * b + 7] {
            let plain = noise(len, 3);
            let path = sealed_file(dir.path(), &c, &plain);
            let s = Sealed::open(File::open(&path).unwrap()).unwrap();
            assert_eq!(s.size(), len as u64);
            let mut scratch = Scratch::default();
            for (off, n) in [
                (0, 10),
                (b - 3, 7),
                (b, b),
                (5, 3 * b),
                (len, 5),
                (len + 9, 1),
            ] {
                let got = s.read_range(&c, off as u64, n, &mut scratch).unwrap();
                let lo = off.min(len);
                let hi = (off + n).min(len);
                assert_eq!(got, &plain[lo..hi], "len {len} off {off} n {n}");
            }
        }
    }

    fn model_check(initial: &[u8], ops: &[(&str, u64, usize)]) {
        let dir = tempfile::tempdir().unwrap();
        let c = cipher();
        let path = sealed_file(dir.path(), &c, initial);
        let mut model = initial.to_vec();
        let mut w = Writer::new(
            Sealed::open(File::open(&path).unwrap()).unwrap(),
            dir.path(),
        );
        for (i, &(op, off, n)) in ops.iter().enumerate() {
            match op {
                "w" => {
                    let data = noise(n, i as u8 + 7);
                    w.write(&c, off, &data).unwrap();
                    let end = off as usize + n;
                    if model.len() < end {
                        model.resize(end, 0);
                    }
                    model[off as usize..end].copy_from_slice(&data);
                }
                "t" => {
                    w.truncate(&c, off).unwrap();
                    model.resize(off as usize, 0);
                }
                "c" => w.commit(&c, &path).unwrap(),
                _ => unreachable!(),
            }
            assert_eq!(w.size(), model.len() as u64);
            let mut buf = Vec::new();
            w.read(&c, 0, model.len() + 10, &mut buf).unwrap();
            assert!(buf == model, "pending read after op {i}");
        }
        // Before the commit the old file is intact.
        assert!(read_all(&path, &c) == initial || ops.iter().any(|o| o.0 == "c"));
        w.commit(&c, &path).unwrap();
        assert!(read_all(&path, &c) == model, "committed content");
        let leftovers = fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with(TEMP_PREFIX)
            })
            .count();
        assert_eq!(leftovers, 0, "no temporary files left");
    }

    #[test]
    fn writer_sequential_append_overwrite_truncate() {
        let b = BLOCK_DATA_SIZE;
        let base = noise(3 * b + 100, 1);
        model_check(
            &[],
            &[
                ("w", 0, 10),
                ("w", 10, 3 * b),
                ("w", 3 * b as u64 + 10, 17 * b),
            ],
        );
        model_check(&base, &[("w", base.len() as u64, 5000)]);
        model_check(&base, &[("w", 7, 3)]);
        model_check(&base, &[("t", 0, 0), ("w", 0, 100)]);
        model_check(
            &base,
            &[("t", 5, 0), ("t", b as u64 * 2, 0), ("w", b as u64, 1)],
        );
        model_check(
            &base,
            &[
                ("w", 40 * b as u64, 10),
                ("w", 3, 3),
                ("c", 0, 0),
                ("w", 1, 1),
            ],
        );
        model_check(&noise(20 * b, 2), &[("w", 18 * b as u64, 10), ("t", 1, 0)]);
        model_check(&base, &[("w", 0, 0)]);
    }

    /// One step of the reference model: write, truncate, commit or read.
    #[derive(Clone, Debug)]
    enum Op {
        Write(u64, usize),
        Truncate(u64),
        Commit,
        Read(u64, usize),
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        // Offsets and sizes around block and window edges.
        let pos = prop_oneof![
            0u64..200,
            (0u64..40).prop_map(|b| b * BDS),
            (0u64..40).prop_map(|b| b * BDS + BDS - 1),
            0u64..(40 * BDS),
        ];
        let len = prop_oneof![1usize..100, Just(BLOCK_DATA_SIZE), 0usize..(3 * WINDOW / 2)];
        prop_oneof![
            4 => (pos.clone(), len.clone()).prop_map(|(p, l)| Op::Write(p, l)),
            1 => pos.clone().prop_map(Op::Truncate),
            1 => Just(Op::Commit),
            2 => (pos, len).prop_map(|(p, l)| Op::Read(p, l)),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]
        /// The writer against a `Vec<u8>`: every read, the size and the
        /// committed file agree with the model after any sequence of ops.
        #[test]
        fn writer_matches_a_byte_vector(
            initial_len in 0usize..(3 * BLOCK_DATA_SIZE),
            ops in proptest::collection::vec(op(), 1..12),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let c = cipher();
            let initial = noise(initial_len, 5);
            let path = sealed_file(dir.path(), &c, &initial);
            let mut model = initial.clone();
            let mut w = Writer::new(Sealed::open(File::open(&path).unwrap()).unwrap(), dir.path());
            for (i, op) in ops.iter().enumerate() {
                match *op {
                    Op::Write(off, n) => {
                        let data = noise(n, i as u8);
                        w.write(&c, off, &data).unwrap();
                        let end = off as usize + n;
                        if model.len() < end {
                            model.resize(end, 0);
                        }
                        model[off as usize..end].copy_from_slice(&data);
                    }
                    Op::Truncate(size) => {
                        w.truncate(&c, size).unwrap();
                        model.resize(size as usize, 0);
                    }
                    Op::Commit => {
                        w.commit(&c, &path).unwrap();
                        proptest::prop_assert!(read_all(&path, &c) == model);
                    }
                    Op::Read(off, n) => {
                        let mut buf = Vec::new();
                        w.read(&c, off, n, &mut buf).unwrap();
                        let lo = (off as usize).min(model.len());
                        let hi = (off as usize + n).min(model.len());
                        proptest::prop_assert!(buf == model[lo..hi]);
                    }
                }
                proptest::prop_assert_eq!(w.size(), model.len() as u64);
            }
            w.commit(&c, &path).unwrap();
            proptest::prop_assert!(read_all(&path, &c) == model);
        }
    }

    #[test]
    fn uncommitted_writer_leaves_old_file_and_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let c = cipher();
        let plain = noise(200_000, 9);
        let path = sealed_file(dir.path(), &c, &plain);
        {
            let mut w = Writer::new(
                Sealed::open(File::open(&path).unwrap()).unwrap(),
                dir.path(),
            );
            w.write(&c, 0, &noise(5_000_000, 1)).unwrap();
        }
        assert!(read_all(&path, &c) == plain);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
