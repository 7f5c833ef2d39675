//! Bad input gets a one-line error naming the thing, exit 1, and loses
//! nothing: no partial plaintext, nothing outside the destination.

use std::fs;
use std::path::{Path, PathBuf};

use ssformat::rclone::config;
use ssformat::rclone::name::NameCipher;

use super::harness::*;

/// A store with a few files; returns (tmp, store, src).
fn store_with_files() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let src = tmp.path().join("src");
    write(&src.join("a.txt"), &noise(200_000, 1));
    write(&src.join("b.txt"), b"small");
    ok(store_cmd(&["init"]).arg(&store));
    ok(store_cmd(&["encrypt"]).arg(&src).arg(&store));
    (tmp, store, src)
}

/// The store's name cipher, read the way a test may: through the format crate.
fn names_of(store: &Path) -> NameCipher {
    let text = fs::read_to_string(store.join("encrypt.conf")).unwrap();
    let plain = config::decrypt_config(&text, KEY).unwrap();
    let conf = config::ConfigFile::parse(&plain).unwrap();
    let settings =
        config::CryptSettings::from_section(conf.section("encrypted_storage").unwrap()).unwrap();
    settings.name_cipher(&settings.keys().unwrap())
}

fn encrypted_path(store: &Path, plain: &str) -> PathBuf {
    store
        .join("storage")
        .join(names_of(store).encrypt_path(plain, false))
}

/// Decrypting must fail naming `needle` and leave nothing beside `dst`.
fn decrypt_fails_cleanly(store: &Path, needle: &str) {
    let parent = store.parent().unwrap().join("out-parent");
    fs::create_dir_all(&parent).unwrap();
    let dst = parent.join("dst");
    fails(store_cmd(&["decrypt"]).arg(store).arg(&dst), needle);
    let left: Vec<_> = fs::read_dir(&parent).unwrap().collect();
    assert!(left.is_empty(), "something was left behind: {left:?}");
}

#[test]
fn wrong_key_names_the_config() {
    let (_tmp, store, _) = store_with_files();
    let err = fails(
        ss(["store", "ls"])
            .arg(&store)
            .env("STORE_PASSWORD", "wrong"),
        "encrypt.conf",
    );
    assert!(err.contains("store key does not open"), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
}

#[test]
fn truncated_header_is_refused_and_nothing_is_left() {
    let (_tmp, store, _) = store_with_files();
    let f = encrypted_path(&store, "b.txt");
    fs::write(&f, b"RCLONE\0\0short").unwrap();
    decrypt_fails_cleanly(&store, &f.display().to_string());
    fails(store_cmd(&["verify"]).arg(&store), "1 of 2 files failed");
}

#[test]
fn flipped_and_truncated_blocks_are_refused() {
    let (_tmp, store, _) = store_with_files();
    let f = encrypted_path(&store, "a.txt");
    let good = fs::read(&f).unwrap();

    let mut flipped = good.clone();
    flipped[32 + 65552 + 100] ^= 0x40; // inside block 1
    fs::write(&f, &flipped).unwrap();
    decrypt_fails_cleanly(&store, "block 1");

    fs::write(&f, &good[..good.len() - 10]).unwrap();
    decrypt_fails_cleanly(&store, "a.txt");

    fs::write(&f, &good[..32 + 8]).unwrap();
    decrypt_fails_cleanly(&store, &f.display().to_string());

    let mut bad_magic = good.clone();
    bad_magic[0] = b'X';
    fs::write(&f, &bad_magic).unwrap();
    decrypt_fails_cleanly(&store, &f.display().to_string());
}

#[test]
fn garbage_config_is_refused() {
    let (_tmp, store, _) = store_with_files();
    let conf = store.join("encrypt.conf");
    for garbage in [
        &b"RCLONE_ENCRYPT_V0:\n%%%%"[..],
        b"RCLONE_ENCRYPT_V0:\nAAAA",
        b"[x]\ntype=crypt\n",
        b"\xff\xfe\x00",
    ] {
        fs::write(&conf, garbage).unwrap();
        let err = fails(store_cmd(&["ls"]).arg(&store), "encrypt.conf");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    fs::remove_file(&conf).unwrap();
    fails(store_cmd(&["ls"]).arg(&store), "encrypt.conf");
}

#[test]
fn hostile_names_never_escape_the_destination() {
    for evil in ["..", ".", "a/b", "../../escape", "/etc/passwd", "nul\0byte"] {
        let (tmp, store, _) = store_with_files();
        let names = names_of(&store);
        // Encrypting a bad segment is possible with the raw cipher; the
        // store must refuse to decrypt it back into a path.
        let encrypted = names.encrypt_file_name(evil);
        fs::write(store.join("storage").join(&encrypted), b"RCLONE\0\0").unwrap();
        decrypt_fails_cleanly(&store, &encrypted);
        fails(store_cmd(&["ls"]).arg(&store), &encrypted);
        assert!(!tmp.path().join("escape").exists());
    }
}

#[test]
fn two_names_for_one_path_are_refused() {
    let (_tmp, store, _) = store_with_files();
    // rclone decodes base32 names case-insensitively, so an upper-cased
    // copy of an encrypted name is a second file with the same plain name.
    let names = names_of(&store);
    let enc = names.encrypt_file_name("b.txt");
    let upper = enc.to_uppercase();
    assert_eq!(names.decrypt_file_name(&upper).unwrap(), "b.txt");
    fs::copy(
        store.join("storage").join(&enc),
        store.join("storage").join(&upper),
    )
    .unwrap();
    decrypt_fails_cleanly(&store, "a name another file already has");
}

#[test]
fn an_existing_destination_is_never_overwritten() {
    let (tmp, store, _) = store_with_files();
    let dst = tmp.path().join("dst");
    write(&dst.join("precious"), b"keep me");
    fails(
        store_cmd(&["decrypt"]).arg(&store).arg(&dst),
        "already exists",
    );
    assert_eq!(fs::read(dst.join("precious")).unwrap(), b"keep me");
    fs::remove_dir_all(&dst).unwrap();
    fs::create_dir(&dst).unwrap();
    fails(
        store_cmd(&["decrypt"]).arg(&store).arg(&dst),
        "already exists",
    );
}

#[test]
fn symlinks_in_the_source_are_refused_or_skipped() {
    let (tmp, store, src) = store_with_files();
    std::os::unix::fs::symlink("/etc/passwd", src.join("link")).unwrap();
    fails(
        store_cmd(&["encrypt"]).arg(&src).arg(&store),
        "symbolic link",
    );
    let out = ok(store_cmd(&["encrypt", "--skip-symlinks"])
        .arg(&src)
        .arg(&store));
    assert!(out.contains("skipped 1 symbolic links"), "{out}");
    let listing = ok(store_cmd(&["ls"]).arg(&store));
    assert!(!listing.contains("link"), "{listing}");
    drop(tmp);
}

#[test]
fn init_over_an_existing_store_is_refused() {
    let (_tmp, store, _) = store_with_files();
    let before = fs::read(store.join("encrypt.conf")).unwrap();
    fails(store_cmd(&["init"]).arg(&store), "not empty");
    assert_eq!(fs::read(store.join("encrypt.conf")).unwrap(), before);
}

#[test]
fn interrupting_a_decrypt_leaves_no_plaintext() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let src = tmp.path().join("src");
    // Big enough that the decrypt is still running when the signal comes.
    let chunk = noise(1 << 20, 7);
    let mut file = fs::File::create({
        fs::create_dir_all(&src).unwrap();
        src.join("big.bin")
    })
    .unwrap();
    for _ in 0..128 {
        std::io::Write::write_all(&mut file, &chunk).unwrap();
    }
    drop(file);
    ok(store_cmd(&["init"]).arg(&store));
    ok(store_cmd(&["encrypt"]).arg(&src).arg(&store));

    let parent = tmp.path().join("out");
    fs::create_dir(&parent).unwrap();
    let child = ss(["store", "decrypt"])
        .arg(&store)
        .arg(parent.join("dst"))
        .env("STORE_PASSWORD", KEY)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the private staging folder exists, then interrupt.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while fs::read_dir(&parent).unwrap().next().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "decrypt never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        // The machine was faster than the signal: the result must be whole.
        eprintln!("note: the decrypt finished before the signal arrived");
        assert_eq!(
            fs::metadata(parent.join("dst/big.bin")).unwrap().len(),
            128 << 20
        );
        return;
    }
    assert!(stderr.contains("interrupted"), "{stderr}");
    let left: Vec<_> = fs::read_dir(&parent).unwrap().collect();
    assert!(left.is_empty(), "plaintext left behind: {left:?}");
}
