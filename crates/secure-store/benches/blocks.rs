//! Block-level throughput: our rclone block functions (`ours`, on our
//! multi-block secretbox `ssformat::rclone::secretbox`) against RustCrypto's
//! `crypto_secretbox` (`primitive`, the one-block-at-a-time XSalsa20-Poly1305
//! they used to wrap) and our secretbox alone (`secretbox`), one core; and
//! the parallel streaming path over an in-memory file (all cores).
//!
//! `cargo bench -p secure-store --bench blocks`; numbers go in
//! docs/BENCHMARKS.md (scripts/bench runs this).

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use crypto_secretbox::aead::{AeadInPlace, KeyInit};
use crypto_secretbox::XSalsa20Poly1305;
use std::path::Path;

use secure_store::crypt::stream;
use ssformat::rclone::content::{BlockCipher, FileNonce, BLOCK_DATA_SIZE, BLOCK_SIZE};
use ssformat::rclone::keys::CryptKeys;
use ssformat::rclone::secretbox;

fn primitives(c: &mut Criterion) {
    let keys = CryptKeys::from_bytes(&[7u8; 80]);
    let ours = BlockCipher::new(&keys);
    let raw = XSalsa20Poly1305::new(keys.data_key().into());
    let bare = secretbox::XSalsa20Poly1305::new(keys.data_key());
    let nonce = FileNonce([1u8; 24]);
    let plain = vec![0x5au8; BLOCK_DATA_SIZE];
    let mut sealed = vec![0u8; BLOCK_SIZE];
    let mut opened = vec![0u8; BLOCK_DATA_SIZE];

    let mut group = c.benchmark_group("block-64KiB-one-core");
    group.throughput(Throughput::Bytes(BLOCK_DATA_SIZE as u64));
    group.bench_function("primitive-seal", |b| {
        let mut buf = plain.clone();
        b.iter(|| {
            let tag = raw
                .encrypt_in_place_detached(&nonce.for_block(3).into(), b"", &mut buf)
                .unwrap();
            black_box(tag);
        })
    });
    group.bench_function("ours-seal", |b| {
        b.iter(|| ours.seal_into(&nonce, 3, black_box(&plain), &mut sealed))
    });
    ours.seal_into(&nonce, 3, &plain, &mut sealed);
    group.bench_function("primitive-open", |b| {
        let mut buf = sealed[16..].to_vec();
        let tag = *crypto_secretbox::Tag::from_slice(&sealed[..16]);
        let mut ct = buf.clone();
        raw.encrypt_in_place_detached(&nonce.for_block(3).into(), b"", &mut ct)
            .ok();
        b.iter(|| {
            buf.copy_from_slice(&sealed[16..]);
            black_box(
                raw.decrypt_in_place_detached(&nonce.for_block(3).into(), b"", &mut buf, &tag)
                    .is_ok(),
            );
        })
    });
    group.bench_function("ours-open", |b| {
        b.iter(|| {
            ours.open_into(&nonce, 3, black_box(&sealed), &mut opened)
                .unwrap()
        })
    });
    // Our secretbox in place, the same work as `primitive-*` above.
    group.bench_function("secretbox-seal-in-place", |b| {
        let mut buf = sealed.clone();
        b.iter(|| bare.seal_in_place(&nonce.for_block(3), black_box(&mut buf)))
    });
    group.bench_function("secretbox-open-in-place", |b| {
        let mut buf = sealed.clone();
        b.iter(|| {
            buf.copy_from_slice(&sealed);
            bare.open_in_place(&nonce.for_block(3), black_box(&mut buf))
                .unwrap()
        })
    });
    group.finish();
}

fn streams(c: &mut Criterion) {
    let keys = CryptKeys::from_bytes(&[7u8; 80]);
    let cipher = BlockCipher::new(&keys);
    let nonce = FileNonce([1u8; 24]);
    let size = 64 * 1024 * 1024;
    let plain = vec![0x5au8; size];
    let mut sealed = Vec::with_capacity(size + size / 4000 + 64);
    stream::seal(
        &cipher,
        &nonce,
        &mut &plain[..],
        &mut sealed,
        size as u64,
        &|_| {},
    )
    .unwrap();

    let mut group = c.benchmark_group("stream-64MiB-all-cores");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(size as u64));
    group.bench_with_input(BenchmarkId::new("seal", size), &plain, |b, plain| {
        let mut out = Vec::with_capacity(sealed.len());
        b.iter(|| {
            out.clear();
            stream::seal(
                &cipher,
                &nonce,
                &mut &plain[..],
                &mut out,
                size as u64,
                &|_| {},
            )
            .unwrap()
        })
    });
    // Decryption goes through `open_file` (what `store decrypt` and
    // `store verify` use): the sealed file on tmpfs, authenticated and
    // opened on all cores, the plaintext not written.
    let dir = tempfile::Builder::new()
        .tempdir_in(if Path::new("/dev/shm").is_dir() {
            "/dev/shm"
        } else {
            "/tmp"
        })
        .unwrap();
    let path = dir.path().join("sealed");
    std::fs::write(&path, &sealed).unwrap();
    let file = std::fs::File::open(&path).unwrap();
    group.bench_function(BenchmarkId::new("open_file", size), |b| {
        b.iter(|| stream::open_file(&cipher, &file, None, &|_| {}, &|| None).unwrap())
    });
    group.finish();
}

criterion_group!(benches, primitives, streams);
criterion_main!(benches);
