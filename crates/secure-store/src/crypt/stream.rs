//! One file's content through the rclone crypt block format, fast.
//!
//! Blocks are independent (each has its own nonce: file nonce + index), so
//! a batch of blocks is sealed or opened on all cores at once. A batch is
//! [`BATCH_BLOCKS`] blocks (1 MiB of plaintext): memory stays the same for
//! a 1 KiB and a 1 TiB file, and a small file gets a small buffer. Plaintext
//! buffers are zeroized when dropped.

use std::io::{self, Read, Write};

use rayon::prelude::*;
use ssformat::rclone::content::{
    self, BlockCipher, ContentError, FileNonce, BLOCK_DATA_SIZE, BLOCK_OVERHEAD, BLOCK_SIZE,
    HEADER_SIZE,
};
use zeroize::Zeroizing;

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

/// Blocks in the first batch for a file of `size_hint` plaintext bytes:
/// small files get a small buffer, large ones a full batch.
fn batch_for(size_hint: u64) -> usize {
    let blocks = size_hint / BLOCK_DATA_SIZE as u64 + 1;
    blocks.min(BATCH_BLOCKS as u64) as usize
}

/// Encrypts `input` into `output` (header, then blocks). `size_hint` is
/// the expected plaintext size (0 when unknown); `progress` is called with
/// plaintext bytes done. Returns the plaintext length.
pub fn seal(
    cipher: &BlockCipher,
    nonce: &FileNonce,
    input: &mut impl Read,
    output: &mut impl Write,
    size_hint: u64,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<u64, StreamError> {
    let blocks = batch_for(size_hint);
    let mut plain = Zeroizing::new(vec![0u8; blocks * BLOCK_DATA_SIZE]);
    let mut sealed = vec![0u8; blocks * BLOCK_SIZE];
    output.write_all(&content::header(nonce))?;
    let mut index = 0u64;
    let mut total = 0u64;
    loop {
        let n = read_full(input, &mut plain)?;
        if n == 0 {
            break;
        }
        let count = n.div_ceil(BLOCK_DATA_SIZE);
        let out_len = n + count * BLOCK_OVERHEAD;
        sealed[..out_len]
            .par_chunks_mut(BLOCK_SIZE)
            .zip(plain[..n].par_chunks(BLOCK_DATA_SIZE))
            .enumerate()
            .for_each(|(i, (out, p))| {
                let out = &mut out[..p.len() + BLOCK_OVERHEAD];
                cipher.seal_into(nonce, index + i as u64, p, out);
            });
        output.write_all(&sealed[..out_len])?;
        index += count as u64;
        total += n as u64;
        progress(n as u64);
        if n < plain.len() {
            break;
        }
    }
    Ok(total)
}

/// Decrypts `input` (header, then blocks) into `output`, authenticating
/// every block before its plaintext is written. Returns the plaintext
/// length. `progress` is called with plaintext bytes done.
pub fn open(
    cipher: &BlockCipher,
    input: &mut impl Read,
    output: &mut impl Write,
    size_hint: u64,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<u64, StreamError> {
    let mut head = [0u8; HEADER_SIZE];
    let got = read_full(input, &mut head)?;
    let nonce = content::parse_header(&head[..got])?;
    let blocks = batch_for(size_hint);
    let mut sealed = vec![0u8; blocks * BLOCK_SIZE];
    let mut plain = Zeroizing::new(vec![0u8; blocks * BLOCK_DATA_SIZE]);
    let mut index = 0u64;
    let mut total = 0u64;
    loop {
        let n = read_full(input, &mut sealed)?;
        if n == 0 {
            break;
        }
        if n % BLOCK_SIZE != 0 && n % BLOCK_SIZE <= BLOCK_OVERHEAD {
            return Err(ContentError::TruncatedBlock.into());
        }
        let count = n.div_ceil(BLOCK_SIZE);
        let out_len = n - count * BLOCK_OVERHEAD;
        plain[..out_len]
            .par_chunks_mut(BLOCK_DATA_SIZE)
            .zip(sealed[..n].par_chunks(BLOCK_SIZE))
            .enumerate()
            .try_for_each(|(i, (out, block))| {
                cipher
                    .open_into(&nonce, index + i as u64, block, out)
                    .map(|_| ())
            })?;
        output.write_all(&plain[..out_len])?;
        index += count as u64;
        total += out_len as u64;
        progress(out_len as u64);
        if n < sealed.len() {
            break;
        }
    }
    Ok(total)
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
        let mut back = Vec::new();
        let n = open(&cipher(), &mut &sealed[..], &mut back, hint, &|_| {}).unwrap();
        assert_eq!(n, len as u64);
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

    #[test]
    fn a_flipped_bit_in_any_block_is_refused() {
        let plain = vec![5u8; 3 * BLOCK_DATA_SIZE + 10];
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
        for (block, at) in [
            (0u64, HEADER_SIZE + 20),
            (2, HEADER_SIZE + 2 * BLOCK_SIZE + 1),
            (3, sealed.len() - 1),
        ] {
            let mut bad = sealed.clone();
            bad[at] ^= 1;
            let err = open(&cipher(), &mut &bad[..], &mut io::sink(), 0, &|_| {}).unwrap_err();
            assert!(
                matches!(err, StreamError::Content(ContentError::BadBlock { index }) if index == block),
                "{err:?}"
            );
        }
    }

    #[test]
    fn truncation_is_refused() {
        let plain = vec![5u8; BLOCK_DATA_SIZE + 100];
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
        for cut in [0, 10, HEADER_SIZE + 5, sealed.len() - 100, sealed.len() - 1] {
            let err = open(&cipher(), &mut &sealed[..cut], &mut io::sink(), 0, &|_| {});
            assert!(err.is_err(), "a file cut to {cut} bytes must not open");
        }
    }
}
