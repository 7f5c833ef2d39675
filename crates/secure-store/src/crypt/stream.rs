//! One file's content through the rclone crypt block format, fast.
//!
//! Blocks are independent (each has its own nonce: file nonce + index), so
//! a batch of blocks is sealed or opened on all cores at once. A batch is
//! [`BATCH_BLOCKS`] blocks (1 MiB of plaintext): memory stays the same for
//! a 1 KiB and a 1 TiB file. Buffers come from a small per-thread pool
//! (`Scratch`) so that ten thousand small files do not cost ten thousand
//! allocations, and every byte a buffer held is zeroized before it goes
//! back to the pool.
//!
//! Two shapes: [`seal`] streams any reader to any writer (a pipeline that
//! overlaps the I/O with the crypto); [`open_file`] decrypts a file of
//! known size with positional reads and writes, each core taking whole
//! batches end to end, which measured 25% faster than the same pipeline
//! did for decryption on a 1 GiB file (no hand-off between threads).
//! `store decrypt`, `store verify` and `--materialize` use `open_file`.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;

use rayon::prelude::*;
use ssformat::rclone::content::{
    self, BlockCipher, ContentError, FileNonce, BLOCK_DATA_SIZE, BLOCK_OVERHEAD, BLOCK_SIZE,
    HEADER_SIZE,
};
use zeroize::Zeroize;

/// Blocks per batch: enough to keep two cores busy, small enough for a Pi.
pub const BATCH_BLOCKS: usize = 16;

/// A failure while streaming: the bytes (I/O) or the format (content).
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error(transparent)]
    Content(#[from] ContentError),
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Size of every pooled buffer: the largest batch either way.
const SCRATCH_SIZE: usize = BATCH_BLOCKS * BLOCK_SIZE;
/// Buffers each thread keeps for reuse (four per file in flight).
const SCRATCH_KEPT: usize = 4;

thread_local! {
    static SPARE: std::cell::RefCell<Vec<Vec<u8>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A batch buffer borrowed from this thread's pool. It remembers how far
/// it was written (`dirty`) and zeroizes exactly that much when dropped,
/// before going back to the pool.
struct Scratch {
    data: Vec<u8>,
    dirty: usize,
}

impl Scratch {
    fn take() -> Scratch {
        let data = SPARE
            .with(|pool| pool.borrow_mut().pop())
            .unwrap_or_else(|| vec![0u8; SCRATCH_SIZE]);
        Scratch { data, dirty: 0 }
    }

    /// Fills the buffer's first bytes with `write`, which returns how many
    /// it wrote; those are the ones to zeroize later.
    fn fill<E>(
        &mut self,
        len: usize,
        write: impl FnOnce(&mut [u8]) -> Result<usize, E>,
    ) -> Result<usize, E> {
        let result = write(&mut self.data[..len]);
        // On error the callee may have written anything up to `len`.
        let used = *result.as_ref().unwrap_or(&len);
        self.dirty = self.dirty.max(used);
        result
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        self.data[..self.dirty].zeroize();
        let data = std::mem::take(&mut self.data);
        SPARE.with(|pool| {
            let mut pool = pool.borrow_mut();
            if pool.len() < SCRATCH_KEPT {
                pool.push(data);
            }
        });
    }
}

/// Blocks in a batch for a file of `size_hint` plaintext bytes: small
/// files get small buffers, large ones a full batch.
fn batch_for(size_hint: u64) -> usize {
    let blocks = size_hint / BLOCK_DATA_SIZE as u64 + 1;
    blocks.min(BATCH_BLOCKS as u64) as usize
}

/// Transforms one batch: (index of its first block, input, output buffer)
/// to the length of output written.
type Batch<'a> = &'a (dyn Fn(u64, &[u8], &mut [u8]) -> Result<usize, ContentError> + Sync);

/// Runs `transform` over `input` batch by batch, overlapping the I/O with
/// the crypto: while batch k is transformed (itself on all cores), batch
/// k-1 is written and batch k+1 read. Four [`Scratch`] buffers (either
/// side may be plaintext). A failed batch is never written, and nothing
/// after it is. Returns the input and output lengths.
fn pipeline(
    input: &mut (impl Read + Send),
    output: &mut (impl Write + Send),
    in_batch: usize,
    out_batch: usize,
    in_block: usize,
    transform: Batch<'_>,
    on_batch: &(dyn Fn(usize, usize) + Sync),
) -> Result<(u64, u64), StreamError> {
    let (mut cur_in, mut next_in) = (Scratch::take(), Scratch::take());
    let (mut cur_out, mut prev_out) = (Scratch::take(), Scratch::take());
    let mut prev_len = 0;
    let mut n = cur_in.fill(in_batch, |buf| read_full(input, buf))?;
    let mut index = 0u64;
    let (mut in_total, mut out_total) = (0u64, 0u64);
    while n > 0 {
        let last = n < in_batch;
        let (io, done) = rayon::join(
            || -> io::Result<usize> {
                output.write_all(&prev_out.data[..prev_len])?;
                if last {
                    Ok(0)
                } else {
                    next_in.fill(in_batch, |buf| read_full(input, buf))
                }
            },
            || cur_out.fill(out_batch, |buf| transform(index, &cur_in.data[..n], buf)),
        );
        let out_len = done?;
        let next_n = io?;
        on_batch(n, out_len);
        index += n.div_ceil(in_block) as u64;
        in_total += n as u64;
        out_total += out_len as u64;
        std::mem::swap(&mut cur_in, &mut next_in);
        std::mem::swap(&mut cur_out, &mut prev_out);
        prev_len = out_len;
        n = next_n;
    }
    output.write_all(&prev_out.data[..prev_len])?;
    Ok((in_total, out_total))
}

/// Encrypts `input` into `output` (header, then blocks). `size_hint` is
/// the expected plaintext size (0 when unknown); `progress` is called with
/// plaintext bytes done. Returns the plaintext length.
pub fn seal(
    cipher: &BlockCipher,
    nonce: &FileNonce,
    input: &mut (impl Read + Send),
    output: &mut (impl Write + Send),
    size_hint: u64,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<u64, StreamError> {
    output.write_all(&content::header(nonce))?;
    let blocks = batch_for(size_hint);
    let seal_batch = |index: u64, plain: &[u8], sealed: &mut [u8]| {
        let count = plain.len().div_ceil(BLOCK_DATA_SIZE);
        let out_len = plain.len() + count * BLOCK_OVERHEAD;
        sealed[..out_len]
            .par_chunks_mut(BLOCK_SIZE)
            .zip(plain.par_chunks(BLOCK_DATA_SIZE))
            .enumerate()
            .for_each(|(i, (out, p))| {
                let out = &mut out[..p.len() + BLOCK_OVERHEAD];
                cipher.seal_into(nonce, index + i as u64, p, out);
            });
        Ok(out_len)
    };
    let (plain, _) = pipeline(
        input,
        output,
        blocks * BLOCK_DATA_SIZE,
        blocks * BLOCK_SIZE,
        BLOCK_DATA_SIZE,
        &seal_batch,
        &|plain, _| progress(plain as u64),
    )?;
    Ok(plain)
}

/// Decrypts the whole of `input`, a file of known size, into `output`
/// (when given; without one every block is only authenticated) with
/// positional I/O: batches are independent, so each core reads, opens and
/// writes its own batches with no hand-off between threads, and the
/// kernel's copies run on both cores too. A batch's plaintext is written
/// only once all its blocks are authenticated, but batches may complete
/// out of order: the caller writes into a file that it discards on error
/// (a temporary one). Returns the plaintext length. `progress` is called
/// with plaintext bytes done; `stop` is asked before each batch.
pub fn open_file(
    cipher: &BlockCipher,
    input: &File,
    output: Option<&File>,
    progress: &(dyn Fn(u64) + Sync),
    stop: &(dyn Fn() -> Option<io::Error> + Sync),
) -> Result<u64, StreamError> {
    // Positional reads only: the file's cursor is not ours to move, and
    // the same `File` may be opened again.
    let sealed_len = input.metadata()?.len();
    let mut head = [0u8; HEADER_SIZE];
    let got = HEADER_SIZE.min(sealed_len as usize);
    input.read_exact_at(&mut head[..got], 0)?;
    let nonce = content::parse_header(&head[..got])?;
    let plain_len = content::decrypted_size(sealed_len).map_err(|e| match e {
        ContentError::InvalidSize => ContentError::TruncatedBlock,
        e => e,
    })?;
    const SEALED_BATCH: u64 = (BATCH_BLOCKS * BLOCK_SIZE) as u64;
    const PLAIN_BATCH: u64 = (BATCH_BLOCKS * BLOCK_DATA_SIZE) as u64;
    let body = sealed_len - HEADER_SIZE as u64;
    let batches = body.div_ceil(SEALED_BATCH);
    let open_batch = |bufs: &mut (Scratch, Scratch), batch: u64| -> Result<(), StreamError> {
        if let Some(err) = stop() {
            return Err(err.into());
        }
        let (sealed, plain) = bufs;
        let at = batch * SEALED_BATCH;
        let len = SEALED_BATCH.min(body - at) as usize;
        // A short read means the file shrank under us: refuse it as the
        // truncation it now is.
        sealed
            .fill(len, |buf| {
                input
                    .read_exact_at(buf, HEADER_SIZE as u64 + at)
                    .map(|()| len)
            })
            .map_err(|e| match e.kind() {
                io::ErrorKind::UnexpectedEof => StreamError::Content(ContentError::TruncatedBlock),
                _ => StreamError::Io(e),
            })?;
        let first = batch * BATCH_BLOCKS as u64;
        let out_len = plain.fill(len, |out| {
            let mut done = 0;
            for (i, block) in sealed.data[..len].chunks(BLOCK_SIZE).enumerate() {
                done += cipher.open_into(&nonce, first + i as u64, block, &mut out[done..])?;
            }
            Ok::<_, ContentError>(done)
        })?;
        if let Some(output) = output {
            output.write_all_at(&plain.data[..out_len], batch * PLAIN_BATCH)?;
        }
        progress(out_len as u64);
        Ok(())
    };
    (0..batches)
        .into_par_iter()
        .try_for_each_init(|| (Scratch::take(), Scratch::take()), open_batch)?;
    Ok(plain_len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ssformat::rclone::keys::CryptKeys;

    fn cipher() -> BlockCipher {
        BlockCipher::new(&CryptKeys::from_bytes(&[9u8; 80]))
    }

    fn round_trip(len: usize, hint: u64) {
        let plain: Vec<u8> = (0..len).map(|i| (i * 7 + i / 251) as u8).collect();
        let nonce = FileNonce([3u8; 24]);
        let mut sealed = Vec::new();
        let n = seal(
            &cipher(),
            &nonce,
            &mut &plain[..],
            &mut sealed,
            hint,
            &|_| {},
        )
        .unwrap();
        assert_eq!(n, len as u64);
        assert_eq!(sealed.len() as u64, content::encrypted_size(len as u64));
        let (n, back) = open_via_files(&sealed);
        assert_eq!(n.unwrap(), len as u64);
        assert!(back == plain, "round trip of {len} bytes");
        // The streaming reader of the format crate agrees block for block.
        let mut reader = content::DecryptReader::new(cipher(), &sealed[..]).unwrap();
        let mut again = Vec::new();
        reader.read_to_end(&mut again).unwrap();
        assert!(again == plain);
    }

    #[test]
    fn round_trips_at_the_edges() {
        let b = BLOCK_DATA_SIZE;
        for len in [
            0,
            1,
            b - 1,
            b,
            b + 1,
            3 * b + 5,
            BATCH_BLOCKS * b,
            BATCH_BLOCKS * b + 1,
            40 * b + 17,
        ] {
            round_trip(len, len as u64);
            round_trip(len, 0); // a wrong size hint only changes buffer sizes
        }
    }

    fn sealed(len: usize) -> Vec<u8> {
        let plain = vec![5u8; len];
        let mut sealed = Vec::new();
        seal(
            &cipher(),
            &FileNonce([1; 24]),
            &mut &plain[..],
            &mut sealed,
            0,
            &|_| {},
        )
        .unwrap();
        sealed
    }

    /// `open_file` over a real file: the sealed bytes in a temp file, the
    /// plaintext into another (or nowhere).
    fn open_via_files(sealed: &[u8]) -> (Result<u64, StreamError>, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let (src, dst) = (dir.path().join("sealed"), dir.path().join("plain"));
        std::fs::write(&src, sealed).unwrap();
        let input = File::open(&src).unwrap();
        let output = File::create(&dst).unwrap();
        let done = std::sync::atomic::AtomicU64::new(0);
        let progress = |n| {
            done.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        };
        let result = open_file(&cipher(), &input, Some(&output), &progress, &|| None);
        if let Ok(n) = result {
            assert_eq!(done.into_inner(), n, "progress adds up to the plaintext");
        }
        (result, std::fs::read(&dst).unwrap())
    }

    #[test]
    fn a_flipped_bit_is_refused_and_its_batch_never_written() {
        // Three batches, the last one short.
        let sealed = sealed(2 * BATCH_BLOCKS * BLOCK_DATA_SIZE + 100);
        let batch = BATCH_BLOCKS * BLOCK_DATA_SIZE;
        let second_batch = BATCH_BLOCKS as u64;
        for (block, at) in [
            (0u64, HEADER_SIZE + 20),
            (
                second_batch + 3,
                HEADER_SIZE + (BATCH_BLOCKS + 3) * BLOCK_SIZE + 40,
            ),
            (2 * second_batch, sealed.len() - 1),
        ] {
            let mut bad = sealed.clone();
            bad[at] ^= 1;
            let (result, written) = open_via_files(&bad);
            assert!(
                matches!(result, Err(StreamError::Content(ContentError::BadBlock { index })) if index == block),
                "{result:?}"
            );
            // Nothing of the refused batch reached the output (other
            // batches may have: the caller discards the file).
            let start = (block / second_batch) as usize * batch;
            let refused = written
                .get(start..(start + batch).min(written.len()))
                .unwrap_or(&[]);
            assert!(
                refused.iter().all(|&byte| byte == 0),
                "plaintext of a refused batch was written (block {block})"
            );
        }
    }

    #[test]
    fn truncation_is_refused() {
        let sealed = sealed(BLOCK_DATA_SIZE + 100);
        for cut in [0, 10, HEADER_SIZE + 5, sealed.len() - 100, sealed.len() - 1] {
            let (result, _) = open_via_files(&sealed[..cut]);
            assert!(result.is_err(), "a file cut to {cut} bytes must not open");
        }
    }

    #[test]
    fn the_same_file_opens_twice() {
        let sealed = sealed(BLOCK_DATA_SIZE + 7);
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("sealed");
        std::fs::write(&src, &sealed).unwrap();
        let input = File::open(&src).unwrap();
        for _ in 0..2 {
            let n = open_file(&cipher(), &input, None, &|_| {}, &|| None).unwrap();
            assert_eq!(n, BLOCK_DATA_SIZE as u64 + 7);
        }
    }

    #[test]
    fn open_file_stops_when_asked() {
        let sealed = sealed(3 * BATCH_BLOCKS * BLOCK_DATA_SIZE);
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("sealed");
        std::fs::write(&src, &sealed).unwrap();
        let input = File::open(&src).unwrap();
        let stop = || Some(io::Error::other("stop"));
        let err = open_file(&cipher(), &input, None, &|_| {}, &stop).unwrap_err();
        assert!(matches!(err, StreamError::Io(e) if e.to_string() == "stop"));
    }
}
