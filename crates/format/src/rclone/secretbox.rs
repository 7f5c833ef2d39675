//! NaCl `crypto_secretbox` (XSalsa20-Poly1305), byte-compatible with NaCl,
//! libsodium, Go's `golang.org/x/crypto/nacl/secretbox` (which rclone uses)
//! and RustCrypto's `crypto_secretbox`, with a Salsa20 that computes several
//! blocks at once so the compiler can vectorise it.
//!
//! **Why.** rclone seals file content in 64 KiB secretbox blocks
//! ([`super::content`]). RustCrypto's `salsa20` 0.10 computes one 64-byte
//! block at a time, so its SIMD backend can only work within a block, and
//! `crypto_secretbox` reached ≈ 0.6–0.8 GB/s per core on our machines, about
//! what rclone's Go assembly does. We want a clear margin over rclone
//! without `unsafe` in this crate (it forbids it), C, or `-C target-cpu`.
//!
//! **How.** Up to `LANES` (32) Salsa20 blocks with consecutive block
//! counters are computed together in a structure-of-arrays layout: the
//! state is `[[u32; LANES]; 16]`, word `w` of block `l` at `[w][l]`, one
//! lane per block. A quarter round is then a loop over the lanes doing the
//! same adds, rotations and xors on each, which LLVM's loop vectoriser turns
//! into SIMD code (four lanes per SSE2 or NEON register, eight per AVX2
//! one, sixteen per AVX-512 one; a rotation is two shifts and an or, or
//! one `vprold` with AVX-512). The loop bound is the number of blocks
//! still needed (a run-time value), which is what keeps the loop a loop
//! until the vectoriser sees it; see
//! `quarter_round` for the forms that stayed scalar. The lanes are then
//! moved into byte order (plain loads and stores, leaving the vector units
//! to the rounds) and xored into the data, or xored while copying for the
//! `_into` variants, which saves a `memcpy`. 32 lanes (2 KiB of keystream
//! per round trip) measured a little faster than 16 or 64.
//!
//! Where one vector register holds sixteen `u32` (AVX-512), the rounds run
//! instead in `salsa20_blocks_wide`: sixteen blocks at a time as sixteen
//! `[u32; 16]` values that LLVM keeps in sixteen registers for all twenty
//! rounds, where the lane loop loads and stores the state at every quarter
//! round. `store verify` of 1 GiB (all cipher) went from 0.62–0.65 to
//! 0.42–0.46 s of user time; keystream and xor alone run at ≈ 4.9 GB/s per
//! core with it, against ≈ 2.2 GB/s for the AVX2 lane loop in the same
//! run. The same form with eight lanes (AVX2, whose sixteen registers
//! cannot hold the state and its temporaries) measured 3x slower than the
//! lane loop, so the other instruction sets keep the loop.
//!
//! **Run-time dispatch.** Which SIMD instructions LLVM may use is fixed
//! per function at compile time; the default x86_64 target allows only
//! SSE2. So the keystream code is compiled more than once and the CPU
//! picks: `Stream::for_each_piece` (the whole per-message loop: Salsa20
//! groups, byte order, xor) and `Stream::next_group` hand their work to
//! the `pulp` crate's `Arch::dispatch`, which detects the CPU's features
//! once (`std` caches them) and calls our code inside a function compiled
//! with `#[target_feature]`. On x86_64 that is AVX-512 (pulp's x86-v4
//! level: AVX-512 F, VL, BW, DQ, CD, on top of x86-v3) when the CPU has
//! it, else AVX2 (x86-v3, with FMA, BMI and friends), else the baseline
//! (SSE2); NEON on aarch64, which has it always; the baseline elsewhere.
//! Everything below the dispatch is `#[inline(always)]` (and the xor
//! closures inline into it), so each copy of the loops is vectorised for
//! its instruction set. The `unsafe` this takes (calling target-feature
//! code after the check) is pulp's; this crate stays
//! `forbid(unsafe_code)`. We only use pulp's dispatch, none of its SIMD
//! types: the code stays plain loops.
//! The tests run on what the CPU has and compare the fallback with it, and
//! on x86_64 the AVX2 copy too (which an AVX-512 CPU would otherwise never
//! run).
//!
//! **Speed** (criterion, `benches/blocks.rs`, 64 KiB blocks, one core of
//! the 2-core Xeon, which has AVX-512, default x86_64 target): with the
//! AVX-512 copy, seal ≈ 2.44 GiB/s and open ≈ 2.38 GiB/s against
//! ≈ 0.61 GiB/s for `crypto_secretbox` in the same run (1.70 and
//! 1.76–1.84 GiB/s with the lane loop, before `salsa20_blocks_wide`); the
//! AVX2 copy
//! alone gave seal ≈ 1.44–1.45 and open ≈ 1.47–1.59 GiB/s (so AVX-512 is
//! +16–20% on open, +17–18% on seal), and the SSE2 code alone (before the
//! dispatch) ≈ 1.04–1.08 GiB/s. With AVX2 the keystream (Salsa20, byte
//! order, xor) was ≈ 2/3 of the time and Poly1305 ≈ 1/4.
//!
//! The construction, from NaCl (`crypto_secretbox_xsalsa20poly1305`):
//!
//! ```text
//! subkey   = HSalsa20(key, nonce[0..16])
//! stream   = Salsa20(subkey, nonce[16..24]), block counter from 0
//! poly key = stream[0..32]
//! ct       = plaintext xor stream[32..32 + len]
//! sealed   = Poly1305(poly key, ct) (16 bytes) ‖ ct
//! ```
//!
//! Poly1305 is RustCrypto's `poly1305` crate (it picks its AVX2 backend at
//! run time, inside its own audited `unsafe`).
//!
//! **Constant time.** Salsa20 is only additions, rotations by constants and
//! xors; no branch or memory index depends on the key, the nonce or the
//! data, only on lengths (public). Opening computes the tag over the
//! ciphertext first and compares it with `subtle`'s constant-time equality;
//! only then is anything decrypted, so a failed open writes nothing: the
//! buffer keeps its ciphertext (the `_into` variant leaves `out` as it was).
//!
//! **Secrets.** The key is zeroized when an [`XSalsa20Poly1305`] is dropped
//! (every clone separately). The per-message subkey state, the keystream
//! buffer and the Poly1305 key are zeroized before each call returns, and
//! `poly1305` zeroizes its own state (its `zeroize` feature). Copies the
//! compiler makes in registers or stack spills during the rounds are out of
//! reach of safe Rust, as with every Rust cipher.
//!
//! **Checked against** (tests at the bottom): NaCl's secretbox known answer
//! (libsodium `test/default/secretbox.c`: "firstkey", nonce, 131-byte
//! message), NaCl's HSalsa20 answers (`core1`, `core2`), the eSTREAM Salsa20
//! vectors (as in RustCrypto's `salsa20` tests), the SHA-256 of NaCl's
//! 4 MiB Salsa20 stream (`stream2`/`stream6`), RustCrypto's `salsa20` at
//! block counters across the 2^32 carry, and RustCrypto's `crypto_secretbox`
//! for every length 0..=600, the lane-group boundaries, 65535..=65537 and
//! random keys, nonces and lengths; plus tampering with every byte class.
//! The rclone vectors (`tests/content_vectors.rs`) re-encrypt real rclone
//! files with it byte for byte.

use std::fmt;

use poly1305::universal_hash::{KeyInit, UniversalHash};
use poly1305::Poly1305;
use pulp::{Arch, Simd, WithSimd};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Key length in bytes.
pub const KEY_SIZE: usize = 32;
/// Nonce length in bytes (XSalsa20's extended nonce).
pub const NONCE_SIZE: usize = 24;
/// Poly1305 tag length in bytes; sealed = tag ‖ ciphertext.
pub const TAG_SIZE: usize = 16;

/// Salsa20 blocks computed at once, at most (one per lane).
const LANES: usize = 32;

/// Bytes of keystream per group of [`LANES`] blocks.
const GROUP_SIZE: usize = 64 * LANES;

/// The first 32 keystream bytes of block 0 are the Poly1305 key; the data
/// keystream starts after them.
const POLY_KEY_SIZE: usize = 32;

/// "expand 32-byte k", the Salsa20 constants for 256-bit keys.
const SIGMA: [u32; 4] = [0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574];

/// The tag did not verify: wrong key, wrong nonce, or altered bytes. It
/// deliberately says nothing more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("secretbox authentication failed")]
pub struct AuthError;

/// NaCl secretbox with one 32-byte key. Cloning copies the key; every copy
/// is zeroized when dropped. `Debug` is redacted.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct XSalsa20Poly1305 {
    /// The key as eight little-endian words.
    key: [u32; 8],
}

impl fmt::Debug for XSalsa20Poly1305 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("XSalsa20Poly1305(<redacted>)")
    }
}

impl XSalsa20Poly1305 {
    /// A secretbox keyed with `key`.
    pub fn new(key: &[u8; KEY_SIZE]) -> Self {
        let mut words = [0u32; 8];
        for (word, bytes) in words.iter_mut().zip(key.chunks_exact(4)) {
            *word = le_u32(bytes);
        }
        XSalsa20Poly1305 { key: words }
    }

    /// Seals in place: on entry `buf[16..]` is the plaintext (the first 16
    /// bytes are ignored); on return `buf` is tag ‖ ciphertext.
    ///
    /// # Panics
    /// If `buf` is shorter than 16 bytes.
    pub fn seal_in_place(&self, nonce: &[u8; NONCE_SIZE], buf: &mut [u8]) {
        assert!(
            buf.len() >= TAG_SIZE,
            "a sealed box starts with a 16-byte tag"
        );
        let (tag, data) = buf.split_at_mut(TAG_SIZE);
        let mut stream = Stream::new(&self.key, nonce, data.len());
        let mac = stream.poly1305();
        stream.for_each_piece(data.len(), |range, keystream| {
            xor_in_place(&mut data[range], keystream);
        });
        tag.copy_from_slice(&poly1305_unpadded(mac, data));
    }

    /// Seals `plain` into `out` (tag ‖ ciphertext), xoring the keystream
    /// while copying.
    ///
    /// # Panics
    /// If `out.len()` is not `plain.len() + 16`.
    pub fn seal_into(&self, nonce: &[u8; NONCE_SIZE], plain: &[u8], out: &mut [u8]) {
        assert_eq!(
            out.len(),
            plain.len() + TAG_SIZE,
            "output must be the plaintext length plus 16"
        );
        let (tag, data) = out.split_at_mut(TAG_SIZE);
        let mut stream = Stream::new(&self.key, nonce, plain.len());
        let mac = stream.poly1305();
        stream.for_each_piece(plain.len(), |range, keystream| {
            xor_copy(&mut data[range.clone()], &plain[range], keystream);
        });
        tag.copy_from_slice(&poly1305_unpadded(mac, data));
    }

    /// Opens in place: on entry `buf` is tag ‖ ciphertext; on success
    /// `buf[16..]` is the plaintext. On failure nothing has been decrypted
    /// and `buf` is unchanged. A `buf` shorter than 16 bytes is an
    /// [`AuthError`] too.
    pub fn open_in_place(&self, nonce: &[u8; NONCE_SIZE], buf: &mut [u8]) -> Result<(), AuthError> {
        if buf.len() < TAG_SIZE {
            return Err(AuthError);
        }
        let (tag, data) = buf.split_at_mut(TAG_SIZE);
        let mut stream = Stream::new(&self.key, nonce, data.len());
        stream.verify(tag, data)?;
        stream.for_each_piece(data.len(), |range, keystream| {
            xor_in_place(&mut data[range], keystream);
        });
        Ok(())
    }

    /// Opens `sealed` (tag ‖ ciphertext) into `out`, xoring the keystream
    /// while copying. On failure `out` is not written to. A `sealed`
    /// shorter than 16 bytes is an [`AuthError`].
    ///
    /// # Panics
    /// If `sealed` is at least 16 bytes and `out.len()` is not
    /// `sealed.len() - 16`.
    pub fn open_into(
        &self,
        nonce: &[u8; NONCE_SIZE],
        sealed: &[u8],
        out: &mut [u8],
    ) -> Result<(), AuthError> {
        if sealed.len() < TAG_SIZE {
            return Err(AuthError);
        }
        let (tag, data) = sealed.split_at(TAG_SIZE);
        assert_eq!(
            out.len(),
            data.len(),
            "output must be the sealed length minus 16"
        );
        let mut stream = Stream::new(&self.key, nonce, data.len());
        stream.verify(tag, data)?;
        stream.for_each_piece(data.len(), |range, keystream| {
            xor_copy(&mut out[range.clone()], &data[range], keystream);
        });
        Ok(())
    }
}

/// The XSalsa20 keystream of one message: the Salsa20 input words for the
/// subkey and nonce, the current group of blocks (lane by lane as
/// computed, and as bytes). All are zeroized on drop.
struct Stream {
    /// The instruction set to run on: the best this CPU has, detected once
    /// per message (`std` caches the detection, so this is cheap).
    arch: Arch,
    input: Zeroizing<[u32; 16]>,
    /// `words[w][l]` is word `w` of block `next_block - blocks + l`.
    words: Zeroizing<[[u32; LANES]; 16]>,
    /// The same blocks as keystream bytes.
    bytes: Zeroizing<[u8; GROUP_SIZE]>,
    /// Blocks in the current group.
    blocks: usize,
    next_block: u64,
}

impl Stream {
    /// Derives the subkey (HSalsa20 over `nonce[..16]`) and computes the
    /// first group of blocks for a message of `len` bytes; its first 32
    /// bytes are the Poly1305 key.
    fn new(key: &[u32; 8], nonce: &[u8; NONCE_SIZE], len: usize) -> Self {
        Stream::new_on(Arch::new(), key, nonce, len)
    }

    /// [`Stream::new`] on a given instruction set (the tests compare the
    /// fallback with what the CPU has).
    fn new_on(arch: Arch, key: &[u32; 8], nonce: &[u8; NONCE_SIZE], len: usize) -> Self {
        let mut prefix = [0u32; 4];
        for (word, bytes) in prefix.iter_mut().zip(nonce[..16].chunks_exact(4)) {
            *word = le_u32(bytes);
        }
        let subkey = Zeroizing::new(hsalsa20(key, &prefix));
        let suffix = [le_u32(&nonce[16..20]), le_u32(&nonce[20..24])];
        let mut stream = Stream::with_input(arch, salsa20_input(&subkey, suffix), 0);
        stream.next_group(POLY_KEY_SIZE.saturating_add(len));
        stream
    }

    /// A raw Salsa20 stream positioned at block `block` (for the keystream
    /// tests; the secretbox always starts at 0).
    #[cfg(test)]
    fn salsa20(arch: Arch, key: &[u8; 32], nonce: &[u8; 8], block: u64) -> Self {
        let mut words = [0u32; 8];
        for (word, bytes) in words.iter_mut().zip(key.chunks_exact(4)) {
            *word = le_u32(bytes);
        }
        let suffix = [le_u32(&nonce[..4]), le_u32(&nonce[4..])];
        Stream::with_input(arch, salsa20_input(&words, suffix), block)
    }

    fn with_input(arch: Arch, input: [u32; 16], next_block: u64) -> Self {
        Stream {
            arch,
            input: Zeroizing::new(input),
            words: Zeroizing::new([[0u32; LANES]; 16]),
            bytes: Zeroizing::new([0u8; GROUP_SIZE]),
            blocks: 0,
            next_block,
        }
    }

    /// Computes the next group: enough blocks for `needed` more keystream
    /// bytes, at most [`LANES`], with the best instruction set the CPU has.
    fn next_group(&mut self, needed: usize) {
        /// [`Stream::next_group_inline`] as a `pulp` operation.
        struct NextGroup<'a>(&'a mut Stream, usize);
        impl WithSimd for NextGroup<'_> {
            type Output = ();
            #[inline(always)]
            fn with_simd<S: Simd>(self, _: S) {
                self.0.next_group_inline::<S>(self.1);
            }
        }
        let arch = self.arch;
        arch.dispatch(NextGroup(self, needed));
    }

    /// [`Stream::next_group`], compiled into its caller: called within
    /// `pulp`'s dispatch, its loops are vectorised for the instruction set
    /// chosen there.
    #[inline(always)]
    fn next_group_inline<S: Simd>(&mut self, needed: usize) {
        let blocks = needed.div_ceil(64).clamp(1, LANES);
        if S::U32_LANES >= 16 {
            salsa20_blocks_wide::<16>(&self.input, self.next_block, blocks, &mut self.words);
        } else {
            salsa20_blocks(&self.input, self.next_block, blocks, &mut self.words);
        }
        transpose(&self.words, blocks, &mut self.bytes);
        self.blocks = blocks;
        self.next_block = self.next_block.wrapping_add(blocks as u64);
    }

    /// The keystream bytes of the current group.
    fn keystream(&self) -> &[u8] {
        &self.bytes[..64 * self.blocks]
    }

    /// A Poly1305 keyed with the first 32 bytes of block 0. Must be called
    /// before [`Stream::for_each_piece`] moves past the first group.
    fn poly1305(&self) -> Poly1305 {
        debug_assert_eq!(self.next_block, self.blocks as u64);
        Poly1305::new(poly1305::Key::from_slice(&self.bytes[..POLY_KEY_SIZE]))
    }

    /// Checks `tag` against the Poly1305 of `data` in constant time.
    fn verify(&self, tag: &[u8], data: &[u8]) -> Result<(), AuthError> {
        let expected = poly1305_unpadded(self.poly1305(), data);
        if bool::from(expected.ct_eq(tag)) {
            Ok(())
        } else {
            Err(AuthError)
        }
    }

    /// Calls `f(range, keystream)` for consecutive ranges covering data
    /// bytes `0..len`, with the keystream for each (data byte `j` takes
    /// keystream byte `32 + j`). Starts from the first group, which must
    /// still be loaded.
    ///
    /// The whole loop, the Salsa20 groups and `f` (the xor) included, runs
    /// inside one `pulp` dispatch, so it is compiled once per instruction
    /// set (AVX-512, AVX2 or the baseline on x86_64) and the best the CPU
    /// has is used.
    fn for_each_piece<F>(&mut self, len: usize, f: F)
    where
        F: FnMut(std::ops::Range<usize>, &[u8]),
    {
        /// [`Stream::for_each_piece_inline`] as a `pulp` operation.
        struct Pieces<'a, F> {
            stream: &'a mut Stream,
            len: usize,
            f: F,
        }
        impl<F: FnMut(std::ops::Range<usize>, &[u8])> WithSimd for Pieces<'_, F> {
            type Output = ();
            #[inline(always)]
            fn with_simd<S: Simd>(self, _: S) {
                self.stream.for_each_piece_inline::<S, F>(self.len, self.f);
            }
        }
        let arch = self.arch;
        arch.dispatch(Pieces {
            stream: self,
            len,
            f,
        });
    }

    /// [`Stream::for_each_piece`], compiled into its caller (see
    /// [`Stream::next_group_inline`]).
    #[inline(always)]
    fn for_each_piece_inline<S: Simd, F>(&mut self, len: usize, mut f: F)
    where
        F: FnMut(std::ops::Range<usize>, &[u8]),
    {
        debug_assert_eq!(self.next_block, self.blocks as u64);
        let mut skip = POLY_KEY_SIZE;
        let mut pos = 0;
        loop {
            let keystream = &self.keystream()[skip..];
            let n = keystream.len().min(len - pos);
            f(pos..pos + n, &keystream[..n]);
            pos += n;
            if pos == len {
                return;
            }
            skip = 0;
            self.next_group_inline::<S>(len - pos);
        }
    }
}

/// Poly1305 of `data` as secretbox uses it: whole 16-byte blocks, then the
/// tail unpadded (`update_padded` on whole blocks pads nothing, and takes
/// the crate's 4-block AVX2 path).
fn poly1305_unpadded(mut mac: Poly1305, data: &[u8]) -> [u8; TAG_SIZE] {
    let whole = data.len() - data.len() % poly1305::BLOCK_SIZE;
    mac.update_padded(&data[..whole]);
    mac.compute_unpadded(&data[whole..]).into()
}

/// `data ^= keystream`, same lengths.
#[inline(always)]
fn xor_in_place(data: &mut [u8], keystream: &[u8]) {
    for (d, k) in data.iter_mut().zip(keystream) {
        *d ^= k;
    }
}

/// `out = data ^ keystream`, same lengths.
#[inline(always)]
fn xor_copy(out: &mut [u8], data: &[u8], keystream: &[u8]) {
    for ((o, d), k) in out.iter_mut().zip(data).zip(keystream) {
        *o = d ^ k;
    }
}

fn le_u32(bytes: &[u8]) -> u32 {
    u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

/// The Salsa20 input matrix for a 256-bit key and 64-bit nonce, with the
/// block counter (words 8 and 9) left at 0.
fn salsa20_input(key: &[u32; 8], nonce: [u32; 2]) -> [u32; 16] {
    [
        SIGMA[0], key[0], key[1], key[2], key[3], SIGMA[1], nonce[0], nonce[1], 0, 0, SIGMA[2],
        key[4], key[5], key[6], key[7], SIGMA[3],
    ]
}

/// HSalsa20: the Salsa20 rounds over key and a 16-byte input (in place of
/// nonce and counter), without the final addition; the subkey is words 0,
/// 5, 10, 15, 6, 7, 8, 9. One lane of the same round code.
fn hsalsa20(key: &[u32; 8], input: &[u32; 4]) -> [u32; 8] {
    let words = [
        SIGMA[0], key[0], key[1], key[2], key[3], SIGMA[1], input[0], input[1], input[2], input[3],
        SIGMA[2], key[4], key[5], key[6], key[7], SIGMA[3],
    ];
    let mut x = words.map(|word| [word]);
    for _ in 0..10 {
        double_round(&mut x, 1);
    }
    let subkey = [0, 5, 10, 15, 6, 7, 8, 9].map(|i| x[i][0]);
    x.zeroize();
    subkey
}

/// Salsa20 blocks `first .. first + blocks` of `input` (at most [`LANES`])
/// into `out`, one block per lane: `out[w][l]` is word `w` of block
/// `first + l`. Inlined so that it is compiled for each instruction set
/// `pulp` dispatches to (see [`Stream::next_group`]).
#[inline(always)]
fn salsa20_blocks(input: &[u32; 16], first: u64, blocks: usize, out: &mut [[u32; LANES]; 16]) {
    let n = blocks.min(LANES);
    for (lanes, &word) in out.iter_mut().zip(input) {
        lanes[..n].fill(word);
    }
    let (low, high) = out.split_at_mut(9);
    for (lane, (low, high)) in low[8][..n].iter_mut().zip(&mut high[0][..n]).enumerate() {
        (*low, *high) = counter_words(first, lane);
    }
    for _ in 0..10 {
        double_round(out, n);
    }
    // The final addition of the input, recomputed rather than kept in a
    // second copy of the state.
    for (w, lanes) in out.iter_mut().enumerate() {
        for (lane, value) in lanes[..n].iter_mut().enumerate() {
            let (low, high) = counter_words(first, lane);
            let start = match w {
                8 => low,
                9 => high,
                _ => input[w],
            };
            *value = value.wrapping_add(start);
        }
    }
}

#[inline(always)]
fn wide_add<const N: usize>(a: &[u32; N], b: &[u32; N]) -> [u32; N] {
    let mut r = [0u32; N];
    for i in 0..N {
        r[i] = a[i].wrapping_add(b[i]);
    }
    r
}

/// `x ^ (s <<< r)`, lane by lane.
#[inline(always)]
fn wide_xor_rotl<const N: usize>(x: &[u32; N], s: &[u32; N], r: u32) -> [u32; N] {
    let mut out = [0u32; N];
    for i in 0..N {
        out[i] = x[i] ^ s[i].rotate_left(r);
    }
    out
}

/// The quarter round of [`quarter_round`] on whole words of `N` lanes,
/// which LLVM keeps in registers when a vector register holds `N` `u32`.
#[inline(always)]
fn wide_quarter_round<const N: usize>(
    x: &mut [[u32; N]; 16],
    a: usize,
    b: usize,
    c: usize,
    d: usize,
) {
    x[b] = wide_xor_rotl(&x[b], &wide_add(&x[a], &x[d]), 7);
    x[c] = wide_xor_rotl(&x[c], &wide_add(&x[b], &x[a]), 9);
    x[d] = wide_xor_rotl(&x[d], &wide_add(&x[c], &x[b]), 13);
    x[a] = wide_xor_rotl(&x[a], &wide_add(&x[d], &x[c]), 18);
}

/// [`salsa20_blocks`] with the state in registers: each run of `N` blocks
/// (`N` = the `u32` lanes of one vector register) goes through all twenty
/// rounds as sixteen `[u32; N]` values, instead of a loop over the lanes
/// per quarter round that loads and stores the state each time. A short
/// last run computes `N` blocks and keeps what was asked for.
#[inline(always)]
fn salsa20_blocks_wide<const N: usize>(
    input: &[u32; 16],
    first: u64,
    blocks: usize,
    out: &mut [[u32; LANES]; 16],
) {
    for base in (0..blocks.min(LANES)).step_by(N) {
        let mut x = [[0u32; N]; 16];
        for (w, lanes) in x.iter_mut().enumerate() {
            for (lane, value) in lanes.iter_mut().enumerate() {
                let (low, high) = counter_words(first, base + lane);
                *value = match w {
                    8 => low,
                    9 => high,
                    _ => input[w],
                };
            }
        }
        let start = x;
        for _ in 0..10 {
            wide_quarter_round(&mut x, 0, 4, 8, 12);
            wide_quarter_round(&mut x, 5, 9, 13, 1);
            wide_quarter_round(&mut x, 10, 14, 2, 6);
            wide_quarter_round(&mut x, 15, 3, 7, 11);
            wide_quarter_round(&mut x, 0, 1, 2, 3);
            wide_quarter_round(&mut x, 5, 6, 7, 4);
            wide_quarter_round(&mut x, 10, 11, 8, 9);
            wide_quarter_round(&mut x, 15, 12, 13, 14);
        }
        let take = N.min(LANES - base);
        for (w, lanes) in out.iter_mut().enumerate() {
            let sum = wide_add(&x[w], &start[w]);
            lanes[base..base + take].copy_from_slice(&sum[..take]);
        }
    }
}

/// Words 8 and 9 of block `first + lane`: its 64-bit counter.
#[inline(always)]
fn counter_words(first: u64, lane: usize) -> (u32, u32) {
    let counter = first.wrapping_add(lane as u64);
    (counter as u32, (counter >> 32) as u32)
}

/// Lanes to bytes: block `l` of the keystream is `words[0][l]`,
/// `words[1][l]`, … little-endian. Plain moves, which leave the vector
/// units to the rounds.
#[inline(always)]
fn transpose(words: &[[u32; LANES]; 16], blocks: usize, out: &mut [u8; GROUP_SIZE]) {
    for (lane, block) in out.chunks_exact_mut(64).take(blocks).enumerate() {
        for (bytes, lanes) in block.chunks_exact_mut(4).zip(words) {
            bytes.copy_from_slice(&lanes[lane].to_le_bytes());
        }
    }
}

/// A column round then a row round, on lanes `0..n`.
#[inline(always)]
fn double_round<const L: usize>(x: &mut [[u32; L]; 16], n: usize) {
    // Columns.
    quarter_round(x, n, 0, 4, 8, 12);
    quarter_round(x, n, 5, 9, 13, 1);
    quarter_round(x, n, 10, 14, 2, 6);
    quarter_round(x, n, 15, 3, 7, 11);
    // Rows.
    quarter_round(x, n, 0, 1, 2, 3);
    quarter_round(x, n, 5, 6, 7, 4);
    quarter_round(x, n, 10, 11, 8, 9);
    quarter_round(x, n, 15, 12, 13, 14);
}

/// Salsa20's quarter round on words `a, b, c, d` of lanes `0..n`:
///
/// ```text
/// b ^= (a + d) <<< 7;  c ^= (b + a) <<< 9;  d ^= (c + b) <<< 13;  a ^= (d + c) <<< 18;
/// ```
///
/// The loop over the lanes is what LLVM vectorises. A loop with a run-time
/// bound goes to the loop vectoriser, which takes it with or without (thin)
/// LTO; a fixed lane count, or whole `[u32; N]` values, are unrolled first
/// and left to the straight-line (SLP) vectoriser, which on SSE2 (no vector
/// rotate) kept every lane scalar in the release build. One loop per
/// quarter round, rather than per line of it, keeps the four words in
/// registers: four loads and four stores per twenty operations, which
/// matters on cores with one load port (Cortex-A72) and with AVX2.
#[inline(always)]
#[allow(clippy::needless_range_loop)] // four rows of `x` at once, by index
fn quarter_round<const L: usize>(
    x: &mut [[u32; L]; 16],
    n: usize,
    a: usize,
    b: usize,
    c: usize,
    d: usize,
) {
    for i in 0..n.min(L) {
        let (mut va, mut vb, mut vc, mut vd) = (x[a][i], x[b][i], x[c][i], x[d][i]);
        vb ^= va.wrapping_add(vd).rotate_left(7);
        vc ^= vb.wrapping_add(va).rotate_left(9);
        vd ^= vc.wrapping_add(vb).rotate_left(13);
        va ^= vd.wrapping_add(vc).rotate_left(18);
        x[a][i] = va;
        x[b][i] = vb;
        x[c][i] = vc;
        x[d][i] = vd;
    }
}

#[cfg(test)]
mod tests {
    /// The register-resident kernel (used on AVX-512 only) gives the same
    /// words as the lane loop for every group size, including a short last
    /// run and a block counter that carries into its high word; tested
    /// here directly, so machines without AVX-512 check it too.
    #[test]
    fn the_wide_kernel_matches_the_lane_loop() {
        let input = salsa20_input(&[0x0102_0304, 5, 6, 7, 8, 9, 10, 0xdead_beef], [11, 12]);
        for first in [0u64, 1, 1000, u32::MAX as u64 - 5, u64::MAX - 3] {
            for blocks in [1, 5, 15, 16, 17, 31, 32] {
                let mut lanes = [[0u32; LANES]; 16];
                let mut wide = [[0u32; LANES]; 16];
                salsa20_blocks(&input, first, blocks, &mut lanes);
                salsa20_blocks_wide::<16>(&input, first, blocks, &mut wide);
                for w in 0..16 {
                    assert_eq!(
                        lanes[w][..blocks],
                        wide[w][..blocks],
                        "first {first}, blocks {blocks}"
                    );
                }
            }
        }
    }

    use super::*;
    use crypto_secretbox::aead::Aead;
    use proptest::prelude::*;
    use sha2::{Digest, Sha256};

    // libsodium test/default/secretbox.c (NaCl tests/secretbox.c).
    const FIRSTKEY: [u8; 32] = [
        0x1b, 0x27, 0x55, 0x64, 0x73, 0xe9, 0x85, 0xd4, 0x62, 0xcd, 0x51, 0x19, 0x7a, 0x9a, 0x46,
        0xc7, 0x60, 0x09, 0x54, 0x9e, 0xac, 0x64, 0x74, 0xf2, 0x06, 0xc4, 0xee, 0x08, 0x44, 0xf6,
        0x83, 0x89,
    ];
    const NONCE: [u8; 24] = [
        0x69, 0x69, 0x6e, 0xe9, 0x55, 0xb6, 0x2b, 0x73, 0xcd, 0x62, 0xbd, 0xa8, 0x75, 0xfc, 0x73,
        0xd6, 0x82, 0x19, 0xe0, 0x03, 0x6b, 0x7a, 0x0b, 0x37,
    ];
    const MESSAGE: &str = "be075fc53c81f2d5cf141316ebeb0c7b5228c52a4c62cbd44b66849b64244ffc\
        e5ecbaaf33bd751a1ac728d45e6c61296cdc3c01233561f41db66cce314adb31\
        0e3be8250c46f06dceea3a7fa1348057e2f6556ad6b1318a024a838f21af1fde\
        048977eb48f59ffd4924ca1c60902e52f0a089bc76897040e082f93776384864\
        5e0705";
    const SEALED: &str = "f3ffc7703f9400e52a7dfb4b3d3305d9\
        8e993b9f48681273c29650ba32fc76ce48332ea7164d96a4476fb8c531a1186a\
        c0dfc17c98dce87b4da7f011ec48c97271d2c20f9b928fe2270d6fb863d51738\
        b48eeee314a7cc8ab932164548e526ae90224368517acfeabd6bb3732bc0e9da\
        99832b61ca01b6de56244a9e88d5f9b37973f622a43d14a6599b1f654cb45a74\
        e355a5";
    // NaCl tests/core2.c: HSalsa20(firstkey, nonce[..16]).
    const SECONDKEY: &str = "dc908dda0b9344a953629b733820778880f3ceb421bb61b91cbd4c3e66256ce4";

    fn hex(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    fn words(key: &[u8; 32]) -> [u32; 8] {
        XSalsa20Poly1305::new(key).key
    }

    fn hsalsa20_bytes(key: &[u8; 32], input: &[u8; 16]) -> Vec<u8> {
        let mut words_in = [0u32; 4];
        for (w, b) in words_in.iter_mut().zip(input.chunks_exact(4)) {
            *w = le_u32(b);
        }
        hsalsa20(&words(key), &words_in)
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .collect()
    }

    /// `len` bytes of raw Salsa20 keystream from block `block`.
    fn salsa20_stream(key: &[u8; 32], nonce: &[u8; 8], block: u64, len: usize) -> Vec<u8> {
        salsa20_stream_on(Arch::new(), key, nonce, block, len)
    }

    fn salsa20_stream_on(
        arch: Arch,
        key: &[u8; 32],
        nonce: &[u8; 8],
        block: u64,
        len: usize,
    ) -> Vec<u8> {
        let mut stream = Stream::salsa20(arch, key, nonce, block);
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            stream.next_group(len - out.len());
            let take = (len - out.len()).min(GROUP_SIZE);
            out.extend_from_slice(&stream.keystream()[..take]);
        }
        out
    }

    fn reference_seal(key: &[u8; 32], nonce: &[u8; 24], plain: &[u8]) -> Vec<u8> {
        crypto_secretbox::XSalsa20Poly1305::new(key.into())
            .encrypt(nonce.into(), plain)
            .unwrap()
    }

    fn plaintext(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(151).wrapping_add(seed) ^ (i >> 8) as u8)
            .collect()
    }

    /// Seals with all four entry points and checks they agree with the
    /// reference and open again.
    fn check_against_reference(key: &[u8; 32], nonce: &[u8; 24], plain: &[u8]) {
        let cipher = XSalsa20Poly1305::new(key);
        let expected = reference_seal(key, nonce, plain);
        let len = plain.len();

        let mut in_place = vec![0xeeu8; TAG_SIZE];
        in_place.extend_from_slice(plain);
        cipher.seal_in_place(nonce, &mut in_place);
        assert!(in_place == expected, "seal_in_place, len {len}");

        let mut copied = vec![0u8; len + TAG_SIZE];
        cipher.seal_into(nonce, plain, &mut copied);
        assert!(copied == expected, "seal_into, len {len}");

        cipher.open_in_place(nonce, &mut in_place).unwrap();
        assert!(&in_place[TAG_SIZE..] == plain, "open_in_place, len {len}");

        let mut opened = vec![0x11u8; len];
        cipher.open_into(nonce, &expected, &mut opened).unwrap();
        assert!(opened == plain, "open_into, len {len}");
    }

    #[test]
    fn nacl_secretbox_known_answer() {
        let message = hex(MESSAGE);
        let sealed = hex(SEALED);
        assert_eq!((message.len(), sealed.len()), (131, 147));
        let cipher = XSalsa20Poly1305::new(&FIRSTKEY);

        let mut buf = [vec![0u8; TAG_SIZE], message.clone()].concat();
        cipher.seal_in_place(&NONCE, &mut buf);
        assert_eq!(hex::encode(&buf), SEALED);
        let mut out = vec![0u8; sealed.len()];
        cipher.seal_into(&NONCE, &message, &mut out);
        assert_eq!(out, sealed);

        cipher.open_in_place(&NONCE, &mut buf).unwrap();
        assert_eq!(&buf[TAG_SIZE..], &message[..]);
        let mut plain = vec![0u8; message.len()];
        cipher.open_into(&NONCE, &sealed, &mut plain).unwrap();
        assert_eq!(plain, message);
    }

    #[test]
    fn hsalsa20_known_answers() {
        // NaCl tests/core1.c: the X25519 shared secret of the box tests,
        // zero input, gives firstkey.
        let shared = hex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
        let shared: [u8; 32] = shared.try_into().unwrap();
        assert_eq!(hsalsa20_bytes(&shared, &[0; 16]), FIRSTKEY);
        // NaCl tests/core2.c.
        let prefix: [u8; 16] = NONCE[..16].try_into().unwrap();
        assert_eq!(hex::encode(hsalsa20_bytes(&FIRSTKEY, &prefix)), SECONDKEY);
    }

    #[test]
    fn salsa20_ecrypt_known_answers() {
        let mut key1 = [0u8; 32];
        key1[0] = 0x80;
        let key_long: [u8; 32] = std::array::from_fn(|i| i as u8 + 1);
        let cases: [(&[u8; 32], [u8; 8], &str); 4] = [
            (
                &key1,
                [0; 8],
                "e3be8fdd8beca2e3ea8ef9475b29a6e7003951e1097a5c38d23b7a5fad9f6844\
                 b22c97559e2723c7cbbd3fe4fc8d9a0744652a83e72a9c461876af4d7ef1a117",
            ),
            (
                &[0; 32],
                [0x80, 0, 0, 0, 0, 0, 0, 0],
                "2aba3dc45b4947007b14c851cd694456b303ad59a465662803006705673d6c3e\
                 29f1d3510dfc0405463c03414e0e07e359f1f1816c68b2434a19d3eee0464873",
            ),
            (
                &[0; 32],
                [0, 0, 0, 0, 0, 0, 0, 1],
                "b47f96aa96786135297a3c4ec56a613d0b80095324ff43239d684c57ffe42e1c\
                 44f3cc011613db6cdc880999a1e65aed1287fcb11c839c37120765afa73e5075",
            ),
            (
                &key_long,
                [0x03, 0x01, 0x04, 0x01, 0x05, 0x09, 0x02, 0x06],
                "6ebcbdbf76fccc64ab05542bee8a67cbc28fa2e141fbefbb3a2f9b221909c8d7\
                 d4295258cb539770dd24d7ac3443769ffa27a50e60644264dc8b6b612683372e\
                 085d0a12bf240b189ce2b78289862b56fdc9fcffc33bef9325a2e81b98fb3fb9\
                 aa04cf434615ceffeb985c1cb08d8440e90b1d56ddeaea16d9e15affff1f698c\
                 483c7a466af1fe062574adfd2b06a62b4d98440719ea776385c470349a7ed696\
                 9583463ed5d26b8fefccb205da0f5bfa98c77812fe756b09eacc282aa42f4baf\
                 a79633189046e2b20f35b3e0e54aa3b929e23c0f47dc7bcd4f928b2a9764be7d\
                 4b8a50f980a50b35ad8087375e0c556ecbe6a7161e8653ce9391e1e6710ed4f1",
            ),
        ];
        for (key, nonce, expected) in cases {
            let expected = hex(expected);
            let stream = salsa20_stream(key, &nonce, 0, expected.len());
            assert_eq!(hex::encode(stream), hex::encode(expected));
        }
    }

    #[test]
    fn salsa20_nacl_4mib_stream_digest() {
        // NaCl tests/stream2.c (and stream6.cpp): SHA-256 of 4 MiB of
        // Salsa20 under secondkey and the last 8 nonce bytes.
        let key: [u8; 32] = hex(SECONDKEY).try_into().unwrap();
        let nonce: [u8; 8] = NONCE[16..].try_into().unwrap();
        let stream = salsa20_stream(&key, &nonce, 0, 4 << 20);
        assert_eq!(
            hex::encode(Sha256::digest(&stream)),
            "662b9d0e3463029156069b12f918691a98f7dfb2ca0393c96bbfc6b1fbd630a2"
        );
    }

    #[test]
    fn salsa20_matches_rustcrypto_across_the_counter_carry() {
        use salsa20::cipher::{KeyIvInit, StreamCipher, StreamCipherSeek};
        let key: [u8; 32] = std::array::from_fn(|i| (i as u8).wrapping_mul(37) ^ 0x5c);
        let nonce = [9u8, 8, 7, 6, 5, 4, 3, 2];
        // Groups that start below, at and straddling 2^32, and one near
        // the top of the counter.
        let starts = [
            0,
            1,
            3,
            (1 << 32) - 3,
            (1 << 32) - 1,
            1 << 32,
            u64::MAX / 64 - 40,
        ];
        for block in starts {
            let ours = salsa20_stream(&key, &nonce, block, 5 * GROUP_SIZE + 64);
            let mut reference = vec![0u8; ours.len()];
            let mut cipher = salsa20::Salsa20::new(&key.into(), &nonce.into());
            cipher.seek(block * 64);
            cipher.apply_keystream(&mut reference);
            assert!(ours == reference, "block {block}");
        }
    }

    /// `arch` gives the same keystream and xored data as what this CPU
    /// has (`Arch::new()`), on which the other tests run.
    fn assert_same_bytes_as_the_best(arch: Arch) {
        let key: [u8; 32] = std::array::from_fn(|i| (i as u8).wrapping_mul(11) ^ 0x3c);
        let nonce: [u8; 24] = std::array::from_fn(|i| (i as u8).wrapping_mul(5));
        for block in [0, 7, (1 << 32) - 5] {
            let len = 3 * GROUP_SIZE + 100;
            let salsa_nonce: [u8; 8] = nonce[..8].try_into().unwrap();
            assert!(
                salsa20_stream_on(arch, &key, &salsa_nonce, block, len)
                    == salsa20_stream(&key, &salsa_nonce, block, len),
                "block {block}"
            );
        }
        let xored = |arch: Arch, len: usize| {
            let mut stream = Stream::new_on(arch, &words(&key), &nonce, len);
            let poly_key = stream.bytes[..POLY_KEY_SIZE].to_vec();
            let mut data = plaintext(len, 5);
            stream.for_each_piece(len, |range, keystream| {
                xor_in_place(&mut data[range], keystream);
            });
            (poly_key, data)
        };
        for len in [0, 1, 31, 32, 33, 63, 64, 65, 1000, GROUP_SIZE, 65536, 65537] {
            assert!(xored(arch, len) == xored(Arch::new(), len), "len {len}");
        }
    }

    /// The other tests run on what this CPU has (AVX-512, AVX2 or NEON,
    /// usually); the fallback, compiled as well, must give the same bytes.
    #[test]
    fn the_fallback_instruction_set_gives_the_same_bytes() {
        assert_same_bytes_as_the_best(Arch::Scalar);
    }

    /// On a CPU with AVX-512 the other tests run on that copy; the AVX2
    /// one (x86-v3), which CPUs without AVX-512 take, must give the same
    /// bytes. (Where AVX2 is the best, this compares it with itself.)
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_avx2_instruction_set_gives_the_same_bytes() {
        match pulp::x86::V3::try_new() {
            Some(v3) => assert_same_bytes_as_the_best(Arch::V3(v3)),
            None => eprintln!("no AVX2 on this CPU: nothing to compare"),
        }
    }

    #[test]
    fn every_length_to_600_matches_crypto_secretbox() {
        let key: [u8; 32] = std::array::from_fn(|i| i as u8 ^ 0xa5);
        let nonce: [u8; 24] = std::array::from_fn(|i| 0xf0 ^ i as u8);
        for len in 0..=600 {
            check_against_reference(&key, &nonce, &plaintext(len, len as u8));
        }
    }

    #[test]
    fn boundary_lengths_match_crypto_secretbox() {
        let key = [0x42u8; 32];
        let nonce = [0x24u8; 24];
        let mut lengths = vec![65535, 65536, 65537, 2 * 65536 + 3];
        // The first group carries 32 bytes less data than the others.
        for groups in 1..=6 {
            let end = groups * GROUP_SIZE - POLY_KEY_SIZE;
            lengths.extend([end - 1, end, end + 1]);
            lengths.extend([groups * 64 - 33, groups * 64 - 32, groups * 64 - 31]);
        }
        lengths.extend([8 * 64 * 128 - 32, 65536 - 32 + 1]);
        for len in lengths {
            check_against_reference(&key, &nonce, &plaintext(len, 7));
        }
    }

    /// Every single-bit flip class, truncation, extension, wrong nonce and
    /// wrong key fail, and leave the input as it was.
    #[test]
    fn tampering_fails_and_leaves_the_buffer_alone() {
        let cipher = XSalsa20Poly1305::new(&FIRSTKEY);
        for len in [0usize, 1, 15, 16, 17, 100, GROUP_SIZE, 1000, 65536] {
            let plain = plaintext(len, 3);
            let mut sealed = vec![0u8; len + TAG_SIZE];
            cipher.seal_into(&NONCE, &plain, &mut sealed);

            let mut positions: Vec<usize> = (0..TAG_SIZE).collect();
            if len > 0 {
                let last = TAG_SIZE + len - 1;
                positions.extend([TAG_SIZE, TAG_SIZE + len / 2, last]);
                positions.extend((TAG_SIZE..=last).step_by(61));
            }
            for pos in positions {
                for bit in [0x01u8, 0x80] {
                    let mut bad = sealed.clone();
                    bad[pos] ^= bit;
                    assert_rejected(&cipher, &NONCE, &bad);
                }
            }
            // Truncated (tag and data) and extended.
            for cut in [1, 2, 17].into_iter().filter(|&c| c <= sealed.len()) {
                assert_rejected(&cipher, &NONCE, &sealed[..sealed.len() - cut]);
            }
            assert_rejected(&cipher, &NONCE, &[&sealed[..], &[0]].concat());
            // Another nonce (each half of it) or another key.
            for pos in [0, 15, 16, 23] {
                let mut nonce = NONCE;
                nonce[pos] ^= 1;
                assert_rejected(&cipher, &nonce, &sealed);
            }
            let mut key = FIRSTKEY;
            key[31] ^= 0x80;
            assert_rejected(&XSalsa20Poly1305::new(&key), &NONCE, &sealed);
        }
    }

    fn assert_rejected(cipher: &XSalsa20Poly1305, nonce: &[u8; 24], sealed: &[u8]) {
        let mut buf = sealed.to_vec();
        assert_eq!(cipher.open_in_place(nonce, &mut buf), Err(AuthError));
        assert!(buf == sealed, "buffer changed after a failed open");
        if sealed.len() >= TAG_SIZE {
            let mut out = vec![0x5au8; sealed.len() - TAG_SIZE];
            assert_eq!(cipher.open_into(nonce, sealed, &mut out), Err(AuthError));
            assert!(
                out.iter().all(|&b| b == 0x5a),
                "output written after a failed open"
            );
        }
    }

    #[test]
    fn shorter_than_a_tag_is_an_auth_error() {
        let cipher = XSalsa20Poly1305::new(&FIRSTKEY);
        for len in 0..TAG_SIZE {
            let mut buf = vec![0u8; len];
            assert_eq!(cipher.open_in_place(&NONCE, &mut buf), Err(AuthError));
            assert_eq!(cipher.open_into(&NONCE, &buf, &mut []), Err(AuthError));
        }
        // The empty message is just a tag, and opens.
        let mut tag = [0u8; TAG_SIZE];
        cipher.seal_in_place(&NONCE, &mut tag);
        assert_eq!(tag.to_vec(), reference_seal(&FIRSTKEY, &NONCE, b""));
        assert_eq!(cipher.open_in_place(&NONCE, &mut tag), Ok(()));
    }

    #[test]
    #[should_panic(expected = "16-byte tag")]
    fn seal_in_place_needs_room_for_the_tag() {
        XSalsa20Poly1305::new(&FIRSTKEY).seal_in_place(&NONCE, &mut [0u8; 15]);
    }

    #[test]
    #[should_panic(expected = "plaintext length plus 16")]
    fn seal_into_checks_the_output_length() {
        XSalsa20Poly1305::new(&FIRSTKEY).seal_into(&NONCE, &[1, 2, 3], &mut [0u8; 18]);
    }

    #[test]
    fn debug_is_redacted() {
        let shown = format!("{:?}", XSalsa20Poly1305::new(&FIRSTKEY));
        assert_eq!(shown, "XSalsa20Poly1305(<redacted>)");
        assert_eq!(AuthError.to_string(), "secretbox authentication failed");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]

        #[test]
        fn random_messages_match_crypto_secretbox(
            key in any::<[u8; 32]>(),
            nonce in any::<[u8; 24]>(),
            len in prop_oneof![0usize..=2048, 0usize..=65552, 65500usize..=65600],
            seed in any::<u8>(),
        ) {
            check_against_reference(&key, &nonce, &plaintext(len, seed));
        }

        #[test]
        fn random_flips_are_rejected(
            key in any::<[u8; 32]>(),
            nonce in any::<[u8; 24]>(),
            len in 0usize..=3000,
            flip in any::<prop::sample::Index>(),
            bit in 0u32..8,
        ) {
            let cipher = XSalsa20Poly1305::new(&key);
            let mut sealed = vec![0u8; len + TAG_SIZE];
            cipher.seal_into(&nonce, &plaintext(len, 1), &mut sealed);
            sealed[flip.index(len + TAG_SIZE)] ^= 1 << bit;
            assert_rejected(&cipher, &nonce, &sealed);
        }
    }
}
