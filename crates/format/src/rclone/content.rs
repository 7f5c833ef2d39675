//! rclone crypt file content: the 32-byte header and the 64 KiB
//! XSalsa20-Poly1305 blocks that follow it.
//!
//! Layout (spec: `docs/formats/rclone-crypt.md`, "File content"; facts from
//! rclone's `backend/crypt/cipher.go`, checked against
//! `shared/vectors/rclone/` and the original secure-store's files):
//!
//! ```text
//! "RCLONE\0\0" ‖ file nonce (24) ‖ block 0 ‖ block 1 ‖ … ‖ block n-1
//! block i = NaCl secretbox(plaintext chunk i, nonce = file nonce + i, data key)
//!         = Poly1305 tag (16) ‖ XSalsa20 ciphertext (1..=65536)
//! ```
//!
//! Every block but the last holds exactly [`BLOCK_DATA_SIZE`] plaintext
//! bytes; the last holds 1..=65536. An empty file is the header alone, and a
//! file of exactly 65536 bytes is one block with no empty block after it.
//! "+ i" is addition modulo 2^192 on the nonce read as a little-endian
//! number, which is what rclone's byte-wise carry does.
//!
//! Decisions made here:
//! - A block of 16 bytes or fewer (a tag and no data) is never written by
//!   rclone and rclone refuses to read one ("truncated block header"); we
//!   refuse it too, as [`ContentError::TruncatedBlock`].
//! - The format has no end marker: a file cut exactly at a block boundary
//!   reads as a shorter, valid file. Cuts inside a block are always caught:
//!   a tail of 1..=16 bytes is [`ContentError::TruncatedBlock`], a longer
//!   one fails authentication ([`ContentError::BadBlock`]).
//! - Authentication failures say only which block failed, never why.
//! - The writer and reader own one block-sized buffer each, reuse it for
//!   every block, seal and open in place, and zeroize it on drop.

use std::fmt;
use std::io::{self, Read, Seek, SeekFrom, Write};

use zeroize::{Zeroize, Zeroizing};

use super::keys::CryptKeys;
use super::secretbox::XSalsa20Poly1305;

/// The first 8 bytes of every rclone crypt file.
pub const MAGIC: &[u8; 8] = b"RCLONE\0\0";
/// Size of the per-file nonce that follows [`MAGIC`].
pub const NONCE_SIZE: usize = 24;
/// Magic plus file nonce.
pub const HEADER_SIZE: usize = MAGIC.len() + NONCE_SIZE;
/// Plaintext bytes in every block but the last.
pub const BLOCK_DATA_SIZE: usize = 65536;
/// The Poly1305 tag that starts every block.
pub const BLOCK_OVERHEAD: usize = 16;
/// Encrypted size of a full block.
pub const BLOCK_SIZE: usize = BLOCK_DATA_SIZE + BLOCK_OVERHEAD;

const BLOCK_DATA_SIZE_U64: u64 = BLOCK_DATA_SIZE as u64;
const BLOCK_SIZE_U64: u64 = BLOCK_SIZE as u64;
const HEADER_SIZE_U64: u64 = HEADER_SIZE as u64;

/// Why encrypted content could not be read.
///
/// Inside [`DecryptReader`]'s `Read`/`Seek` these arrive wrapped in an
/// [`io::Error`] of kind [`io::ErrorKind::InvalidData`]; get them back with
/// `err.get_ref().and_then(|e| e.downcast_ref::<ContentError>())`.
#[derive(Debug, Clone, Copy, thiserror::Error, PartialEq, Eq)]
pub enum ContentError {
    /// Fewer than the 32 header bytes.
    #[error("the encrypted file is shorter than the 32-byte rclone crypt header")]
    TooShort,
    /// The first 8 bytes are not `RCLONE\0\0`.
    #[error("not an rclone crypt file: it does not start with RCLONE\\0\\0")]
    BadMagic,
    /// An encrypted size no rclone crypt file can have (it ends 1..=16
    /// bytes into a block), or a block longer than [`BLOCK_SIZE`].
    #[error("impossible size for rclone crypt content (the last block has no data)")]
    InvalidSize,
    /// The file ends 1..=16 bytes into a block: a tag with no data.
    #[error("the encrypted file is truncated: its last block is too short")]
    TruncatedBlock,
    /// The block's Poly1305 tag did not verify: wrong key, corrupt or
    /// tampered data, or a truncated last block.
    #[error("block {index} failed authentication")]
    BadBlock {
        /// Zero-based index of the block.
        index: u64,
    },
    /// Reading the header from the underlying reader failed.
    #[error("reading the rclone crypt header failed: {0}")]
    Io(io::ErrorKind),
}

impl From<ContentError> for io::Error {
    fn from(err: ContentError) -> Self {
        match err {
            ContentError::Io(kind) => io::Error::new(kind, err),
            _ => io::Error::new(io::ErrorKind::InvalidData, err),
        }
    }
}

/// Encrypted size of a plaintext of `plain` bytes, or `None` if it does not
/// fit in a `u64`.
pub fn checked_encrypted_size(plain: u64) -> Option<u64> {
    let blocks = plain / BLOCK_DATA_SIZE_U64;
    let rest = plain % BLOCK_DATA_SIZE_U64;
    let tail = if rest == 0 {
        0
    } else {
        rest + BLOCK_OVERHEAD as u64
    };
    blocks
        .checked_mul(BLOCK_SIZE_U64)?
        .checked_add(HEADER_SIZE_U64)?
        .checked_add(tail)
}

/// Encrypted size of a plaintext of `plain` bytes: the header, a full block
/// per 64 KiB and a short block for any rest.
///
/// # Panics
/// If the result overflows `u64` (plaintexts of about 2^64 − 2^48 bytes and
/// more); use [`checked_encrypted_size`] where that can happen.
pub fn encrypted_size(plain: u64) -> u64 {
    checked_encrypted_size(plain).expect("encrypted size overflows u64")
}

/// Plaintext size of an encrypted file of `encrypted` bytes.
///
/// Fails with [`ContentError::TooShort`] below 32 bytes and with
/// [`ContentError::InvalidSize`] when the last block would hold 1..=16
/// bytes (a tag without data), as rclone does.
pub fn decrypted_size(encrypted: u64) -> Result<u64, ContentError> {
    let body = encrypted
        .checked_sub(HEADER_SIZE_U64)
        .ok_or(ContentError::TooShort)?;
    let blocks = body / BLOCK_SIZE_U64;
    let rest = body % BLOCK_SIZE_U64;
    let tail = match rest {
        0 => 0,
        r if r <= BLOCK_OVERHEAD as u64 => return Err(ContentError::InvalidSize),
        r => r - BLOCK_OVERHEAD as u64,
    };
    Ok(blocks * BLOCK_DATA_SIZE_U64 + tail)
}

/// Offset of block `index` in the encrypted file, if it fits in a `u64`.
fn block_offset(index: u64) -> Option<u64> {
    index
        .checked_mul(BLOCK_SIZE_U64)?
        .checked_add(HEADER_SIZE_U64)
}

/// The random 24-byte nonce of one file, stored in its header. Nonces are
/// public, so `Debug` shows them (in hex).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct FileNonce(pub [u8; NONCE_SIZE]);

impl FileNonce {
    /// The nonce of block `index`: the file nonce plus `index`, reading the
    /// 24 bytes as one little-endian number and wrapping at 2^192. This is
    /// the same as rclone incrementing the nonce once per block, with the
    /// carry running through all 24 bytes.
    pub fn for_block(&self, index: u64) -> [u8; NONCE_SIZE] {
        let mut out = self.0;
        // `pending` is what is still to be added at this byte's weight: the
        // remaining bytes of `index` plus the carry from the byte below.
        let mut pending = index;
        for byte in out.iter_mut() {
            if pending == 0 {
                break;
            }
            let sum = u64::from(*byte) + (pending & 0xff);
            *byte = sum as u8;
            pending = (pending >> 8) + (sum >> 8);
        }
        out
    }
}

impl fmt::Debug for FileNonce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FileNonce({})", hex::encode(self.0))
    }
}

/// The 32-byte header of a file encrypted with `nonce`.
pub fn header(nonce: &FileNonce) -> [u8; HEADER_SIZE] {
    let mut out = [0u8; HEADER_SIZE];
    out[..MAGIC.len()].copy_from_slice(MAGIC);
    out[MAGIC.len()..].copy_from_slice(&nonce.0);
    out
}

/// Reads the file nonce from the first 32 bytes of `bytes` (more may follow).
pub fn parse_header(bytes: &[u8]) -> Result<FileNonce, ContentError> {
    let header = bytes.get(..HEADER_SIZE).ok_or(ContentError::TooShort)?;
    if &header[..MAGIC.len()] != MAGIC {
        return Err(ContentError::BadMagic);
    }
    let mut nonce = [0u8; NONCE_SIZE];
    nonce.copy_from_slice(&header[MAGIC.len()..]);
    Ok(FileNonce(nonce))
}

/// Seals and opens single blocks with the data key. Cloning copies the key;
/// every copy is zeroized when dropped. `Debug` is redacted.
#[derive(Clone)]
pub struct BlockCipher {
    // Our multi-block secretbox (`super::secretbox`); it zeroizes its key
    // when dropped.
    aead: XSalsa20Poly1305,
}

impl BlockCipher {
    /// A cipher keyed with the crypt remote's data key.
    pub fn new(keys: &CryptKeys) -> Self {
        BlockCipher {
            aead: XSalsa20Poly1305::new(keys.data_key()),
        }
    }

    /// Seals `plain` as block `index` of the file with `nonce`, writing
    /// tag ‖ ciphertext to `out`.
    ///
    /// # Panics
    /// If `plain` is longer than [`BLOCK_DATA_SIZE`] or `out.len()` is not
    /// `plain.len() + 16`.
    pub fn seal_into(&self, nonce: &FileNonce, index: u64, plain: &[u8], out: &mut [u8]) {
        assert_eq!(
            out.len(),
            plain.len() + BLOCK_OVERHEAD,
            "output must be the plaintext length plus 16"
        );
        assert!(
            plain.len() <= BLOCK_DATA_SIZE,
            "a block holds 0..=65536 plaintext bytes after a 16-byte tag"
        );
        // Encrypts while copying: no separate `memcpy`.
        self.aead.seal_into(&nonce.for_block(index), plain, out);
    }

    /// Seals a block in place: on entry `block[16..]` is the plaintext (the
    /// first 16 bytes are ignored); on return `block` is tag ‖ ciphertext.
    ///
    /// # Panics
    /// If `block` is shorter than 16 or longer than [`BLOCK_SIZE`] bytes.
    pub fn seal_in_place(&self, nonce: &FileNonce, index: u64, block: &mut [u8]) {
        assert!(
            (BLOCK_OVERHEAD..=BLOCK_SIZE).contains(&block.len()),
            "a block holds 0..=65536 plaintext bytes after a 16-byte tag"
        );
        self.aead.seal_in_place(&nonce.for_block(index), block);
    }

    /// Opens block `index` (tag ‖ ciphertext) of the file with `nonce` into
    /// `out`, returning the plaintext length (`block.len() - 16`).
    ///
    /// A block of 16 bytes or fewer is [`ContentError::TruncatedBlock`]
    /// (rclone never writes an empty block and refuses to read one); one
    /// longer than [`BLOCK_SIZE`] is [`ContentError::InvalidSize`]. On
    /// [`ContentError::BadBlock`], the first `block.len() - 16` bytes of
    /// `out` are zeroed.
    ///
    /// # Panics
    /// If `out` is shorter than `block.len() - 16`.
    pub fn open_into(
        &self,
        nonce: &FileNonce,
        index: u64,
        block: &[u8],
        out: &mut [u8],
    ) -> Result<usize, ContentError> {
        check_block_len(block.len())?;
        let out = &mut out[..block.len() - BLOCK_OVERHEAD];
        // The tag is checked before anything is written to `out`; the
        // plaintext is then decrypted while copying.
        if self
            .aead
            .open_into(&nonce.for_block(index), block, out)
            .is_err()
        {
            out.zeroize();
            return Err(ContentError::BadBlock { index });
        }
        Ok(out.len())
    }

    /// Opens a block in place: on entry `block` is tag ‖ ciphertext; on
    /// success `block[16..]` is the plaintext and its length is returned.
    /// Errors as [`BlockCipher::open_into`]; on failure `block` is unchanged.
    pub fn open_in_place(
        &self,
        nonce: &FileNonce,
        index: u64,
        block: &mut [u8],
    ) -> Result<usize, ContentError> {
        check_block_len(block.len())?;
        // The tag is checked before any byte is decrypted, so a failure
        // leaves `block` as it was.
        self.aead
            .open_in_place(&nonce.for_block(index), block)
            .map_err(|_| ContentError::BadBlock { index })?;
        Ok(block.len() - BLOCK_OVERHEAD)
    }
}

fn check_block_len(len: usize) -> Result<(), ContentError> {
    if len <= BLOCK_OVERHEAD {
        Err(ContentError::TruncatedBlock)
    } else if len > BLOCK_SIZE {
        Err(ContentError::InvalidSize)
    } else {
        Ok(())
    }
}

impl fmt::Debug for BlockCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BlockCipher(<redacted>)")
    }
}

/// A block-sized buffer, zeroized when dropped (it holds plaintext).
fn block_buffer() -> Zeroizing<Vec<u8>> {
    Zeroizing::new(vec![0u8; BLOCK_SIZE])
}

/// Encrypts a stream into rclone crypt content.
///
/// `new` writes the header; `write` collects plaintext into one 64 KiB
/// block buffer and writes each block once it is full and more data (or
/// `flush`/`finish`) arrives; [`EncryptWriter::finish`] writes the last,
/// possibly short, block and returns the inner writer.
///
/// **Dropping without `finish`**: the format has no end marker, so the
/// full blocks already written would read as a complete, shorter file. To
/// prevent that, `Drop` appends one junk byte (best effort, errors ignored):
/// the output then ends 1 byte into a block, which rclone and
/// [`DecryptReader`] both reject (and [`decrypted_size`] calls invalid).
/// The buffered, unwritten plaintext is zeroized and lost. The same happens
/// when `finish` fails.
///
/// After an error from the inner writer the stream is broken and every
/// later call fails.
pub struct EncryptWriter<W: Write> {
    inner: Option<W>,
    cipher: BlockCipher,
    nonce: FileNonce,
    /// Index of the block being filled.
    index: u64,
    /// `buf[16..16 + filled]` is the pending plaintext.
    buf: Zeroizing<Vec<u8>>,
    filled: usize,
    failed: bool,
}

impl<W: Write> EncryptWriter<W> {
    /// Writes the header for `nonce` to `inner` and returns the writer.
    /// `nonce` must be fresh random bytes for every file.
    pub fn new(cipher: BlockCipher, nonce: FileNonce, mut inner: W) -> io::Result<Self> {
        inner.write_all(&header(&nonce))?;
        Ok(EncryptWriter {
            inner: Some(inner),
            cipher,
            nonce,
            index: 0,
            buf: block_buffer(),
            filled: 0,
            failed: false,
        })
    }

    /// The file nonce (also in the header).
    pub fn nonce(&self) -> FileNonce {
        self.nonce
    }

    /// The inner writer.
    pub fn get_ref(&self) -> &W {
        self.inner.as_ref().expect("inner is present until finish")
    }

    /// Writes any pending plaintext as the last block and returns the
    /// inner writer (not flushed: flush it yourself if it buffers).
    pub fn finish(mut self) -> io::Result<W> {
        self.check()?;
        self.write_block()?;
        Ok(self.inner.take().expect("inner is present until finish"))
    }

    fn check(&self) -> io::Result<()> {
        if self.failed {
            Err(io::Error::other(
                "an earlier write of the encrypted stream failed",
            ))
        } else {
            Ok(())
        }
    }

    /// Seals and writes the pending block, if any.
    fn write_block(&mut self) -> io::Result<()> {
        if self.filled == 0 {
            return Ok(());
        }
        let block = &mut self.buf[..BLOCK_OVERHEAD + self.filled];
        self.cipher.seal_in_place(&self.nonce, self.index, block);
        let inner = self.inner.as_mut().expect("inner is present until finish");
        if let Err(err) = inner.write_all(block) {
            self.failed = true;
            return Err(err);
        }
        self.index += 1;
        self.filled = 0;
        Ok(())
    }
}

impl<W: Write> Write for EncryptWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.check()?;
        let mut taken = 0;
        while taken < data.len() {
            if self.filled == BLOCK_DATA_SIZE {
                // Only now is it known that this full block is not the last.
                if let Err(err) = self.write_block() {
                    return if taken == 0 { Err(err) } else { Ok(taken) };
                }
            }
            let n = (data.len() - taken).min(BLOCK_DATA_SIZE - self.filled);
            let at = BLOCK_OVERHEAD + self.filled;
            self.buf[at..at + n].copy_from_slice(&data[taken..taken + n]);
            self.filled += n;
            taken += n;
        }
        Ok(taken)
    }

    /// Writes a full pending block and flushes the inner writer. A partial
    /// block stays buffered: writing it would end the file.
    fn flush(&mut self) -> io::Result<()> {
        self.check()?;
        if self.filled == BLOCK_DATA_SIZE {
            self.write_block()?;
        }
        self.inner
            .as_mut()
            .expect("inner is present until finish")
            .flush()
    }
}

impl<W: Write> Drop for EncryptWriter<W> {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.as_mut() {
            // Not finished: make the output invalid rather than a valid
            // truncation (see the type's documentation).
            let _ = inner.write_all(&[0]);
        }
    }
}

impl<W: Write> fmt::Debug for EncryptWriter<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptWriter")
            .field("nonce", &self.nonce)
            .field("block", &self.index)
            .field("buffered", &self.filled)
            .finish_non_exhaustive()
    }
}

/// Decrypts rclone crypt content from a reader; seekable (in plaintext
/// offsets) when the reader is.
///
/// One block-sized buffer holds the current block, decrypted in place and
/// zeroized on drop. Sequential reads decrypt each block once; a seek
/// decrypts nothing by itself, and the next read decrypts only the block it
/// lands in (none if it is the block already loaded).
///
/// Errors are [`io::ErrorKind::InvalidData`] wrapping a [`ContentError`]:
/// [`ContentError::BadBlock`] for a block that fails authentication
/// (including a last block cut short by more than 16 bytes) and
/// [`ContentError::TruncatedBlock`] for a file ending 1..=16 bytes into a
/// block. An error repeats on every later read until a successful seek.
/// A file cut exactly at a block boundary cannot be told from a shorter
/// file (the format has no end marker).
///
/// For `Seek`, the crypt file must start at offset 0 of the inner reader.
pub struct DecryptReader<R: Read> {
    inner: R,
    cipher: BlockCipher,
    nonce: FileNonce,
    /// After a successful load, `buf[16..16 + len]` is the plaintext of
    /// block `loaded`.
    buf: Zeroizing<Vec<u8>>,
    loaded: Option<u64>,
    len: usize,
    /// Plaintext position of the next byte `read` returns.
    pos: u64,
    /// The block `inner` is positioned at the start of (when `in_sync`).
    next_block: u64,
    in_sync: bool,
    error: Option<ContentError>,
}

impl<R: Read> DecryptReader<R> {
    /// Reads and checks the 32-byte header, leaving `inner` at the first
    /// block.
    pub fn new(cipher: BlockCipher, mut inner: R) -> Result<Self, ContentError> {
        let mut head = [0u8; HEADER_SIZE];
        let got = read_fill(&mut inner, &mut head).map_err(|e| ContentError::Io(e.kind()))?;
        let nonce = parse_header(&head[..got])?;
        Ok(Self::after_header(cipher, nonce, inner))
    }

    /// For callers that read the header themselves: `inner` must be
    /// positioned just after it, at offset 32 of the crypt file.
    pub fn after_header(cipher: BlockCipher, nonce: FileNonce, inner: R) -> Self {
        DecryptReader {
            inner,
            cipher,
            nonce,
            buf: block_buffer(),
            loaded: None,
            len: 0,
            pos: 0,
            next_block: 0,
            in_sync: true,
            error: None,
        }
    }

    /// The file nonce from the header.
    pub fn nonce(&self) -> FileNonce {
        self.nonce
    }

    /// The inner reader.
    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    /// Gives back the inner reader (at an unspecified position).
    pub fn into_inner(self) -> R {
        self.inner
    }

    /// Reads and opens block `next_block` into the buffer. `Ok(false)` at a
    /// clean end of file (no bytes at a block boundary).
    fn load_next(&mut self) -> io::Result<bool> {
        let index = self.next_block;
        // Whatever happens below, `inner` may no longer be at a block start.
        self.in_sync = false;
        self.loaded = None;
        let got = read_fill(&mut self.inner, &mut self.buf[..])?;
        if got == 0 {
            self.in_sync = true;
            return Ok(false);
        }
        let result = self
            .cipher
            .open_in_place(&self.nonce, index, &mut self.buf[..got]);
        let len = match result {
            Ok(len) => len,
            Err(err) => {
                self.error = Some(err);
                return Err(err.into());
            }
        };
        self.loaded = Some(index);
        self.len = len;
        self.next_block = index + 1;
        // A short block means `inner` is at its end; the next load then
        // reads nothing, which is the clean end of file.
        self.in_sync = true;
        Ok(true)
    }
}

impl<R: Read> Read for DecryptReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if let Some(err) = self.error {
            return Err(err.into());
        }
        if out.is_empty() {
            return Ok(0);
        }
        let block = self.pos / BLOCK_DATA_SIZE_U64;
        let offset = (self.pos % BLOCK_DATA_SIZE_U64) as usize;
        if self.loaded != Some(block) {
            if !self.in_sync {
                return Err(io::Error::other(
                    "an earlier read of the encrypted stream failed; seek to retry",
                ));
            }
            // Sequential reads and `seek` keep `next_block == block` here.
            debug_assert_eq!(self.next_block, block);
            if !self.load_next()? {
                return Ok(0);
            }
        }
        if offset >= self.len {
            // Past the end of the (short) last block: end of file.
            return Ok(0);
        }
        let n = out.len().min(self.len - offset);
        let start = BLOCK_OVERHEAD + offset;
        out[..n].copy_from_slice(&self.buf[start..start + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl<R: Read + Seek> Seek for DecryptReader<R> {
    /// Seeks in plaintext offsets. Seeking past the end is allowed (reads
    /// there return 0 bytes). `SeekFrom::End` computes the plaintext length
    /// from the inner reader's length with [`decrypted_size`] and fails with
    /// `InvalidData` if that length is impossible.
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::Current(delta) => self.pos.checked_add_signed(delta),
            SeekFrom::End(delta) => {
                let here = self.inner.stream_position()?;
                let end = self.inner.seek(SeekFrom::End(0))?;
                self.inner.seek(SeekFrom::Start(here))?;
                decrypted_size(end)?.checked_add_signed(delta)
            }
        };
        let target = target.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek to a negative or overflowing position",
            )
        })?;
        let block = target / BLOCK_DATA_SIZE_U64;
        // Invariant: while a block is loaded, `inner` is just after it. So
        // the loaded block is kept (not decrypted again) only if `inner`
        // does not move.
        if self.loaded != Some(block) && (!self.in_sync || self.next_block != block) {
            let at = block_offset(block).ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidInput, "seek position too large")
            })?;
            self.loaded = None;
            self.in_sync = false;
            self.inner.seek(SeekFrom::Start(at))?;
            self.next_block = block;
            self.in_sync = true;
        }
        self.pos = target;
        self.error = None;
        Ok(target)
    }

    fn stream_position(&mut self) -> io::Result<u64> {
        Ok(self.pos)
    }
}

impl<R: Read> fmt::Debug for DecryptReader<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DecryptReader")
            .field("nonce", &self.nonce)
            .field("position", &self.pos)
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

/// Reads until `buf` is full or the reader ends; returns the bytes read.
fn read_fill<R: Read>(reader: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match reader.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => {
                // Do not leave partial ciphertext or plaintext around.
                buf[..got].zeroize();
                return Err(err);
            }
        }
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::io::Cursor;

    const SIZES: [usize; 8] = [0, 1, 16, 17, 65535, 65536, 65537, 3 * 65536 + 5];

    fn keys() -> CryptKeys {
        let mut bytes = [0u8; 80];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(7).wrapping_add(3);
        }
        CryptKeys::from_bytes(&bytes)
    }

    fn cipher() -> BlockCipher {
        BlockCipher::new(&keys())
    }

    fn nonce() -> FileNonce {
        let mut n = [0u8; NONCE_SIZE];
        for (i, b) in n.iter_mut().enumerate() {
            *b = 0xf0 ^ i as u8;
        }
        FileNonce(n)
    }

    fn plaintext(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 + i / 65536) as u8).collect()
    }

    fn encrypt(plain: &[u8]) -> Vec<u8> {
        let mut w = EncryptWriter::new(cipher(), nonce(), Vec::new()).unwrap();
        w.write_all(plain).unwrap();
        w.finish().unwrap()
    }

    fn decrypt(data: &[u8]) -> io::Result<Vec<u8>> {
        let mut r = DecryptReader::new(cipher(), Cursor::new(data)).map_err(io::Error::from)?;
        let mut out = Vec::new();
        r.read_to_end(&mut out)?;
        Ok(out)
    }

    fn content_error(err: &io::Error) -> ContentError {
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
        *err.get_ref()
            .and_then(|e| e.downcast_ref::<ContentError>())
            .expect("wraps a ContentError")
    }

    /// rclone's one-step increment: add 1 at byte 0, carry upwards.
    fn increment(n: &mut [u8; NONCE_SIZE]) {
        for b in n.iter_mut() {
            *b = b.wrapping_add(1);
            if *b != 0 {
                break;
            }
        }
    }

    #[test]
    fn round_trips_at_edge_sizes() {
        for len in SIZES {
            let plain = plaintext(len);
            let enc = encrypt(&plain);
            assert_eq!(enc.len() as u64, encrypted_size(len as u64), "len {len}");
            assert_eq!(&enc[..8], MAGIC);
            assert_eq!(parse_header(&enc).unwrap(), nonce());
            assert_eq!(decrypt(&enc).unwrap(), plain, "len {len}");
        }
    }

    #[test]
    fn empty_file_is_header_only_and_64k_is_one_block() {
        assert_eq!(encrypt(&[]), header(&nonce()).to_vec());
        assert_eq!(encrypt(&plaintext(65536)).len(), HEADER_SIZE + BLOCK_SIZE);
    }

    #[test]
    fn blocks_are_secretbox_with_incremented_nonces() {
        let plain = plaintext(2 * 65536 + 100);
        let enc = encrypt(&plain);
        let c = cipher();
        for (i, chunk) in plain.chunks(BLOCK_DATA_SIZE).enumerate() {
            let start = HEADER_SIZE + i * BLOCK_SIZE;
            let block = &enc[start..start + chunk.len() + BLOCK_OVERHEAD];
            let mut sealed = vec![0u8; chunk.len() + BLOCK_OVERHEAD];
            c.seal_into(&nonce(), i as u64, chunk, &mut sealed);
            assert_eq!(block, &sealed[..]);
            let mut out = vec![0u8; BLOCK_DATA_SIZE];
            let n = c.open_into(&nonce(), i as u64, block, &mut out).unwrap();
            assert_eq!(&out[..n], chunk);
        }
    }

    #[test]
    fn writes_in_odd_pieces_give_the_same_bytes() {
        let plain = plaintext(3 * 65536 + 5);
        let expected = encrypt(&plain);
        for piece in [1, 7, 4096, 65535, 65537, 200_000] {
            let mut w = EncryptWriter::new(cipher(), nonce(), Vec::new()).unwrap();
            for chunk in plain.chunks(piece) {
                w.write_all(chunk).unwrap();
                w.flush().unwrap();
            }
            assert_eq!(w.finish().unwrap(), expected, "piece {piece}");
        }
    }

    #[test]
    fn reads_with_tiny_and_odd_buffers() {
        let plain = plaintext(3 * 65536 + 5);
        let enc = encrypt(&plain);
        for size in [1, 3, 17, 4095, 65535, 65536, 65537, 300_000] {
            let mut r = DecryptReader::new(cipher(), Cursor::new(&enc)).unwrap();
            let mut out = Vec::new();
            let mut buf = vec![0u8; size];
            loop {
                let n = r.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                out.extend_from_slice(&buf[..n]);
            }
            assert_eq!(out, plain, "buffer {size}");
            // End of file is stable.
            assert_eq!(r.read(&mut buf).unwrap(), 0);
        }
    }

    #[test]
    fn seek_to_interesting_offsets() {
        for len in SIZES {
            let plain = plaintext(len);
            let enc = encrypt(&plain);
            let mut r = DecryptReader::new(cipher(), Cursor::new(&enc)).unwrap();
            let l = len as u64;
            let mut offsets = vec![0, 1, l.saturating_sub(1), l, l + 1, l + 100_000];
            for b in 1..=4u64 {
                let edge = b * BLOCK_DATA_SIZE_U64;
                offsets.extend([edge - 1, edge, edge + 1]);
            }
            // Twice, so that seeks go backwards as well as forwards.
            for &at in offsets.iter().chain(offsets.iter().rev()) {
                assert_eq!(r.seek(SeekFrom::Start(at)).unwrap(), at);
                assert_eq!(r.stream_position().unwrap(), at);
                let mut got = vec![0u8; 70_000];
                let mut filled = 0;
                while filled < got.len() {
                    let n = r.read(&mut got[filled..]).unwrap();
                    if n == 0 {
                        break;
                    }
                    filled += n;
                }
                let from = (at as usize).min(len);
                let to = (from + got.len()).min(len);
                assert_eq!(&got[..filled], &plain[from..to], "len {len} at {at}");
            }
            assert_eq!(r.seek(SeekFrom::End(0)).unwrap(), l);
            let mut rest = Vec::new();
            r.read_to_end(&mut rest).unwrap();
            assert!(rest.is_empty());
            if len > 0 {
                assert_eq!(r.seek(SeekFrom::End(-1)).unwrap(), l - 1);
                let mut last = [0u8; 1];
                r.read_exact(&mut last).unwrap();
                assert_eq!(last[0], plain[len - 1]);
                assert_eq!(r.seek(SeekFrom::Current(-1)).unwrap(), l - 1);
            }
            let err = r.seek(SeekFrom::Current(-(l as i64) - 1)).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        }
    }

    #[test]
    fn seek_back_into_the_loaded_block_then_read_across() {
        let plain = plaintext(3 * 65536 + 5);
        let enc = encrypt(&plain);
        let mut r = DecryptReader::new(cipher(), Cursor::new(&enc)).unwrap();
        let mut buf = vec![0u8; 100];
        r.read_exact(&mut buf).unwrap();
        r.seek(SeekFrom::Start(2 * 65536 + 3)).unwrap();
        r.seek(SeekFrom::Start(65500)).unwrap();
        let mut across = vec![0u8; 200];
        r.read_exact(&mut across).unwrap();
        assert_eq!(across, &plain[65500..65700]);
        r.seek(SeekFrom::Start(65600)).unwrap();
        r.seek(SeekFrom::End(-10)).unwrap();
        r.seek(SeekFrom::Start(131_000)).unwrap();
        let mut rest = Vec::new();
        r.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, &plain[131_000..]);
    }

    #[test]
    fn seek_end_on_impossible_size_is_invalid_data() {
        let mut enc = encrypt(&plaintext(10));
        enc.truncate(HEADER_SIZE + 5);
        let mut r = DecryptReader::new(cipher(), Cursor::new(&enc)).unwrap();
        let err = r.seek(SeekFrom::End(0)).unwrap_err();
        assert_eq!(content_error(&err), ContentError::InvalidSize);
    }

    #[test]
    fn size_formulas() {
        assert_eq!(encrypted_size(0), 32);
        assert_eq!(encrypted_size(1), 49);
        assert_eq!(encrypted_size(65536), 32 + 65552);
        assert_eq!(encrypted_size(65537), 32 + 65552 + 17);
        assert_eq!(encrypted_size(1_000_000), 1_000_288);
        assert_eq!(decrypted_size(32), Ok(0));
        assert_eq!(decrypted_size(31), Err(ContentError::TooShort));
        assert_eq!(decrypted_size(0), Err(ContentError::TooShort));
        for bad in 1..=16 {
            assert_eq!(decrypted_size(32 + bad), Err(ContentError::InvalidSize));
            assert_eq!(
                decrypted_size(32 + 65552 + bad),
                Err(ContentError::InvalidSize)
            );
        }
        assert_eq!(decrypted_size(32 + 17), Ok(1));
        assert_eq!(decrypted_size(32 + 65552), Ok(65536));
        assert_eq!(decrypted_size(u64::MAX).map(|_| ()), Ok(()));
        assert_eq!(checked_encrypted_size(u64::MAX), None);
    }

    proptest! {
        #[test]
        fn decrypted_size_inverts_encrypted_size(n in 0u64..=(u64::MAX / 65552 * 65536)) {
            prop_assert_eq!(decrypted_size(encrypted_size(n)), Ok(n));
        }

        #[test]
        fn valid_encrypted_sizes_round_trip(e in 32u64..=u64::MAX) {
            if let Ok(p) = decrypted_size(e) {
                prop_assert_eq!(encrypted_size(p), e);
            }
        }

        #[test]
        fn random_round_trip(plain in proptest::collection::vec(any::<u8>(), 0..140_000),
                             piece in 1usize..100_000) {
            let mut w = EncryptWriter::new(cipher(), nonce(), Vec::new()).unwrap();
            for chunk in plain.chunks(piece) {
                w.write_all(chunk).unwrap();
            }
            let enc = w.finish().unwrap();
            prop_assert_eq!(enc.len() as u64, encrypted_size(plain.len() as u64));
            prop_assert_eq!(decrypt(&enc).unwrap(), plain);
        }
    }

    #[test]
    fn header_errors() {
        let enc = encrypt(&plaintext(100));
        for cut in [0, 1, 8, 31] {
            assert_eq!(parse_header(&enc[..cut]), Err(ContentError::TooShort));
            let err = DecryptReader::new(cipher(), Cursor::new(&enc[..cut])).unwrap_err();
            assert_eq!(err, ContentError::TooShort, "cut {cut}");
        }
        for at in 0..8 {
            let mut bad = enc.clone();
            bad[at] ^= 0x20;
            assert_eq!(parse_header(&bad), Err(ContentError::BadMagic));
            let err = DecryptReader::new(cipher(), Cursor::new(&bad)).unwrap_err();
            assert_eq!(err, ContentError::BadMagic);
        }
    }

    #[test]
    fn header_read_error_is_reported_as_io() {
        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::ErrorKind::PermissionDenied.into())
            }
        }
        let err = DecryptReader::new(cipher(), Failing).unwrap_err();
        assert_eq!(err, ContentError::Io(io::ErrorKind::PermissionDenied));
    }

    #[test]
    fn truncated_last_block() {
        let plain = plaintext(2 * 65536 + 40);
        let enc = encrypt(&plain);
        let last = HEADER_SIZE + 2 * BLOCK_SIZE;
        for keep in 1..=16 {
            let err = decrypt(&enc[..last + keep]).unwrap_err();
            assert_eq!(content_error(&err), ContentError::TruncatedBlock, "{keep}");
        }
        for keep in [17, 30, 55] {
            let err = decrypt(&enc[..last + keep]).unwrap_err();
            assert_eq!(content_error(&err), ContentError::BadBlock { index: 2 });
        }
        // Cut inside a full block: that block is now the short last one.
        let err = decrypt(&enc[..HEADER_SIZE + BLOCK_SIZE + 1000]).unwrap_err();
        assert_eq!(content_error(&err), ContentError::BadBlock { index: 1 });
        // Cut at a block boundary: undetectable by the format.
        assert_eq!(decrypt(&enc[..last]).unwrap(), &plain[..2 * 65536]);
    }

    #[test]
    fn flipped_bit_in_any_block_names_that_block() {
        let plain = plaintext(3 * 65536 + 5);
        let enc = encrypt(&plain);
        for index in 0..4usize {
            let start = HEADER_SIZE + index * BLOCK_SIZE;
            // In the tag, first ciphertext byte, and last byte of the block.
            let end = (start + BLOCK_SIZE).min(enc.len());
            for at in [start, start + 15, start + 16, end - 1] {
                let mut bad = enc.clone();
                bad[at] ^= 0x01;
                let err = decrypt(&bad).unwrap_err();
                let expected = ContentError::BadBlock {
                    index: index as u64,
                };
                assert_eq!(content_error(&err), expected, "byte {at}");
                assert_eq!(
                    err.to_string(),
                    format!("block {index} failed authentication")
                );
            }
        }
        // A flipped nonce bit breaks block 0.
        let mut bad = enc.clone();
        bad[8] ^= 0x80;
        assert_eq!(
            content_error(&decrypt(&bad).unwrap_err()),
            ContentError::BadBlock { index: 0 }
        );
    }

    #[test]
    fn errors_are_sticky_until_a_seek() {
        let plain = plaintext(2 * 65536 + 5);
        let mut enc = encrypt(&plain);
        enc[HEADER_SIZE + BLOCK_SIZE + 100] ^= 1; // block 1
        let mut r = DecryptReader::new(cipher(), Cursor::new(&enc)).unwrap();
        let mut buf = vec![0u8; 65536];
        r.read_exact(&mut buf).unwrap();
        assert_eq!(buf, &plain[..65536]);
        for _ in 0..2 {
            let err = r.read(&mut buf).unwrap_err();
            assert_eq!(content_error(&err), ContentError::BadBlock { index: 1 });
        }
        // Other blocks stay readable.
        r.seek(SeekFrom::Start(2 * 65536)).unwrap();
        let mut rest = Vec::new();
        r.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, &plain[2 * 65536..]);
        r.seek(SeekFrom::Start(10)).unwrap();
        let mut first = [0u8; 10];
        r.read_exact(&mut first).unwrap();
        assert_eq!(first, plain[10..20]);
    }

    #[test]
    fn wrong_key_fails_block_zero() {
        let enc = encrypt(&plaintext(5));
        let other = BlockCipher::new(&CryptKeys::from_bytes(&[9u8; 80]));
        let mut r = DecryptReader::new(other, Cursor::new(&enc)).unwrap();
        let err = r.read(&mut [0u8; 8]).unwrap_err();
        assert_eq!(content_error(&err), ContentError::BadBlock { index: 0 });
    }

    #[test]
    fn open_rejects_empty_and_oversized_blocks() {
        let c = cipher();
        let mut out = vec![0u8; BLOCK_SIZE];
        // A correctly sealed empty block is still refused, as rclone does.
        let mut empty = [0u8; BLOCK_OVERHEAD];
        c.seal_in_place(&nonce(), 0, &mut empty);
        assert_eq!(
            c.open_into(&nonce(), 0, &empty, &mut out),
            Err(ContentError::TruncatedBlock)
        );
        assert_eq!(
            c.open_into(&nonce(), 0, &[], &mut out),
            Err(ContentError::TruncatedBlock)
        );
        let big = vec![0u8; BLOCK_SIZE + 1];
        assert_eq!(
            c.open_into(&nonce(), 0, &big, &mut out),
            Err(ContentError::InvalidSize)
        );
    }

    #[test]
    fn open_failure_zeroes_output() {
        let c = cipher();
        let mut block = vec![0u8; 40];
        c.seal_into(&nonce(), 0, &[0xaa; 24], &mut block);
        block[20] ^= 1;
        let mut out = vec![0x55u8; 24];
        assert_eq!(
            c.open_into(&nonce(), 0, &block, &mut out),
            Err(ContentError::BadBlock { index: 0 })
        );
        assert!(out.iter().all(|&b| b == 0));
        // Wrong index: the same block fails under another nonce.
        block[20] ^= 1;
        assert!(c.open_into(&nonce(), 1, &block, &mut out).is_err());
        assert_eq!(c.open_into(&nonce(), 0, &block, &mut out), Ok(24));
    }

    #[test]
    fn nonce_increment_carries_through_all_bytes() {
        let patterns: [[u8; NONCE_SIZE]; 5] = [
            [0xff; NONCE_SIZE],
            [0u8; NONCE_SIZE],
            {
                let mut n = [0u8; NONCE_SIZE];
                n[..8].fill(0xff);
                n
            },
            {
                let mut n = [0xffu8; NONCE_SIZE];
                n[23] = 0x00;
                n[0] = 0xfe;
                n
            },
            nonce().0,
        ];
        for pattern in patterns {
            let file = FileNonce(pattern);
            let mut stepped = pattern;
            for i in 0..600u64 {
                assert_eq!(file.for_block(i), stepped, "{file:?} + {i}");
                increment(&mut stepped);
            }
        }
        assert_eq!(FileNonce([0xff; NONCE_SIZE]).for_block(1), [0; NONCE_SIZE]);
        let mut all_but_top = [0xffu8; NONCE_SIZE];
        all_but_top[23] = 0;
        let mut top = [0u8; NONCE_SIZE];
        top[23] = 1;
        assert_eq!(FileNonce(all_but_top).for_block(1), top);
        // A big index: low 8 bytes overflow into byte 8 (rclone's `add`).
        let mut low = [0u8; NONCE_SIZE];
        low[..8].fill(0xff);
        let mut expected = [0u8; NONCE_SIZE];
        expected[0] = 0xfe;
        expected[1..8].fill(0xff);
        expected[8] = 1;
        assert_eq!(FileNonce(low).for_block(u64::MAX), expected);
    }

    proptest! {
        #[test]
        fn nonce_add_is_little_endian_addition(n in any::<[u8; NONCE_SIZE]>(), i in any::<u64>()) {
            // Compare in u128 on the low 16 bytes, carry checked on the rest.
            let lo = u128::from_le_bytes(n[..16].try_into().unwrap());
            let (sum, carry) = lo.overflowing_add(u128::from(i));
            let got = FileNonce(n).for_block(i);
            prop_assert_eq!(u128::from_le_bytes(got[..16].try_into().unwrap()), sum);
            let hi = u64::from_le_bytes(n[16..].try_into().unwrap()).wrapping_add(u64::from(carry));
            prop_assert_eq!(u64::from_le_bytes(got[16..].try_into().unwrap()), hi);
        }
    }

    #[test]
    fn dropping_unfinished_writer_leaves_an_invalid_file() {
        for len in [0, 10, 65536, 65537] {
            let mut out = Vec::new();
            {
                let mut w = EncryptWriter::new(cipher(), nonce(), &mut out).unwrap();
                w.write_all(&plaintext(len)).unwrap();
            }
            assert!(decrypted_size(out.len() as u64).is_err(), "len {len}");
            let err = decrypt(&out).unwrap_err();
            assert_eq!(content_error(&err), ContentError::TruncatedBlock);
        }
    }

    #[test]
    fn writer_errors_are_sticky() {
        struct Limited(usize);
        impl Write for Limited {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                if self.0 == 0 {
                    return Err(io::Error::other("disk full"));
                }
                let n = b.len().min(self.0);
                self.0 -= n;
                Ok(n)
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut w = EncryptWriter::new(cipher(), nonce(), Limited(1000)).unwrap();
        let plain = plaintext(200_000);
        assert!(w.write_all(&plain).is_err());
        assert!(w.write(b"x").is_err());
        assert!(w.finish().is_err());
        assert!(EncryptWriter::new(cipher(), nonce(), Limited(10)).is_err());
    }

    #[test]
    fn debug_output_has_no_secrets() {
        let c = cipher();
        assert_eq!(format!("{c:?}"), "BlockCipher(<redacted>)");
        let n = format!("{:?}", nonce());
        assert!(n.starts_with("FileNonce(f0f1f2"), "{n}");
        let w = EncryptWriter::new(cipher(), nonce(), Vec::new()).unwrap();
        let text = format!("{w:?}");
        assert!(!text.contains("buf:"), "{text}");
        let r = DecryptReader::new(c, Cursor::new(header(&nonce()))).unwrap();
        assert!(format!("{r:?}").starts_with("DecryptReader"));
        let _ = w.finish().unwrap();
    }
}
