//! `store init|encrypt|ls|decrypt|verify|rekey` end to end.

use std::fs;

use super::harness::*;

#[test]
fn init_encrypt_ls_decrypt_verify_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    sample_tree(&src);
    let store = tmp.path().join("store");

    let out = ok(ss(["store", "init"]).arg(&store).env("STORE_PASSWORD", KEY));
    assert!(out.contains("created store"), "{out}");
    assert_eq!(mode(&store.join("encrypt.conf")), 0o600);
    assert!(fs::read_to_string(store.join("encrypt.conf"))
        .unwrap()
        .contains("\nRCLONE_ENCRYPT_V0:\n"));

    let out = ok(ss(["store", "encrypt"])
        .arg(&src)
        .arg(&store)
        .env("STORE_PASSWORD", KEY));
    assert!(out.contains("encrypted 11 files"), "{out}");
    // Nothing readable in storage: no plaintext name as a path component.
    // (Encrypted names are random-looking base32 and may contain "sub" by
    // chance, so compare whole components.)
    let (src_dirs, src_files) = snapshot(&src);
    let plain: std::collections::HashSet<&str> = src_dirs
        .iter()
        .chain(src_files.iter().map(|f| &f.0))
        .flat_map(|p| p.split('/'))
        .collect();
    let (dirs, files) = snapshot(&store.join("storage"));
    for name in dirs.iter().chain(files.iter().map(|f| &f.0)) {
        assert!(
            !name.split('/').any(|part| plain.contains(part)),
            "clear name in storage: {name}"
        );
    }

    let listing = ok(ss(["store", "ls"]).arg(&store).env("STORE_PASSWORD", KEY));
    assert!(listing.contains("    65537 block+1.bin"), "{listing}");
    assert!(listing.contains("      100 sub/dir/deep.txt"), "{listing}");
    assert!(
        listing.contains("       33 Ünïcödé dir/日本語.txt"),
        "{listing}"
    );
    assert_eq!(listing.lines().count(), 11);

    let out = ok(ss(["store", "verify"])
        .arg(&store)
        .env("STORE_PASSWORD", KEY));
    assert!(out.starts_with("ok: 11 files"), "{out}");

    let dst = tmp.path().join("dst");
    ok(ss(["store", "decrypt"])
        .arg(&store)
        .arg(&dst)
        .env("STORE_PASSWORD", KEY));
    assert_same_tree(&src, &dst);
    assert_eq!(mode(&dst), 0o700);
    assert_eq!(mode(&dst.join("sub/dir")), 0o700);
    assert_eq!(mode(&dst.join("big.bin")), 0o600);
}

#[test]
fn key_file_and_key_flag_work_and_the_flag_is_warned_about() {
    let tmp = tempfile::tempdir().unwrap();
    let key_file = tmp.path().join("store.key");
    let out = run(ss(["keygen", "--out"]).arg(&key_file));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(mode(&key_file), 0o600);
    let key = fs::read_to_string(&key_file).unwrap();
    assert_eq!(key.trim().len(), 64);
    assert!(
        !out.stdout.contains(key.trim()),
        "keygen --out must not print the key"
    );

    let store = tmp.path().join("store");
    ok(ss(["store", "init"])
        .arg(&store)
        .arg("--key-file")
        .arg(&key_file));
    let r = run(ss(["store", "ls"]).arg(&store).args(["--key", key.trim()]));
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(
        r.stderr.contains("command line"),
        "expected a warning: {}",
        r.stderr
    );
    let r = run(ss(["store", "ls"])
        .arg(&store)
        .env("STORE_PASSWORD", key.trim()));
    assert_eq!(r.code, Some(0));
    assert!(
        !r.stderr.contains("command line"),
        "no warning for the env var: {}",
        r.stderr
    );
    fails(ss(["store", "ls"]).arg(&store), "no store key");
}

#[test]
fn keygen_prints_fresh_keys() {
    let a = ok(&mut ss(["keygen"]));
    let b = ok(&mut ss(["keygen"]));
    assert_eq!(a.trim().len(), 64);
    assert!(a.trim().bytes().all(|c| c.is_ascii_hexdigit()));
    assert_ne!(a, b);
}

#[test]
fn encrypt_replaces_changed_files_and_keeps_others() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    ok(ss(["store", "init"]).arg(&store).env("STORE_PASSWORD", KEY));
    let a = tmp.path().join("a");
    write(&a.join("keep.txt"), b"keep");
    write(&a.join("change.txt"), b"old");
    ok(ss(["store", "encrypt"])
        .arg(&a)
        .arg(&store)
        .env("STORE_PASSWORD", KEY));
    let b = tmp.path().join("b");
    write(&b.join("change.txt"), b"new content");
    ok(ss(["store", "encrypt"])
        .arg(&b)
        .arg(&store)
        .env("STORE_PASSWORD", KEY));
    let dst = tmp.path().join("dst");
    ok(ss(["store", "decrypt"])
        .arg(&store)
        .arg(&dst)
        .env("STORE_PASSWORD", KEY));
    assert_eq!(fs::read(dst.join("keep.txt")).unwrap(), b"keep");
    assert_eq!(fs::read(dst.join("change.txt")).unwrap(), b"new content");
    // A single file as the source lands at the top of the store.
    write(&tmp.path().join("single.txt"), b"one");
    ok(ss(["store", "encrypt"])
        .arg(tmp.path().join("single.txt"))
        .arg(&store)
        .env("STORE_PASSWORD", KEY));
    let listing = ok(ss(["store", "ls"]).arg(&store).env("STORE_PASSWORD", KEY));
    assert!(listing.contains("single.txt"), "{listing}");
}

#[test]
fn rekey_changes_only_the_config() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let src = tmp.path().join("src");
    write(&src.join("f"), b"data");
    ok(ss(["store", "init"]).arg(&store).env("STORE_PASSWORD", KEY));
    ok(ss(["store", "encrypt"])
        .arg(&src)
        .arg(&store)
        .env("STORE_PASSWORD", KEY));
    let before = snapshot(&store.join("storage"));

    let new_key = ok(ss(["store", "rekey"])
        .arg(&store)
        .env("STORE_PASSWORD", KEY));
    let new_key = new_key.trim();
    assert_eq!(new_key.len(), 64);
    assert_eq!(snapshot(&store.join("storage")), before, "files untouched");
    assert_eq!(mode(&store.join("encrypt.conf")), 0o600);
    fails(
        ss(["store", "ls"]).arg(&store).env("STORE_PASSWORD", KEY),
        "encrypt.conf",
    );
    let listing = ok(ss(["store", "ls"])
        .arg(&store)
        .env("STORE_PASSWORD", new_key));
    assert!(listing.contains(" f"), "{listing}");

    // An explicit new key from a file.
    let f = tmp.path().join("third.key");
    fs::write(&f, "third key\n").unwrap();
    ok(ss(["store", "rekey"])
        .arg(&store)
        .arg("--new-key-file")
        .arg(&f)
        .env("STORE_PASSWORD", new_key));
    ok(ss(["store", "verify"])
        .arg(&store)
        .env("STORE_PASSWORD", "third key"));
}

#[test]
fn init_options_reach_the_config() {
    let tmp = tempfile::tempdir().unwrap();
    for (args, name_check) in [
        (vec!["--filename-encryption", "off"], ".bin"),
        (vec!["--filename-encryption", "obfuscate"], "."),
        (vec!["--filename-encoding", "base64"], ""),
        (vec!["--filename-encoding", "base32768"], ""),
        (vec!["--no-directory-name-encryption"], ""),
    ] {
        let store = tmp.path().join(format!("store{}", args.join("_")));
        ok(ss(["store", "init"])
            .arg(&store)
            .args(&args)
            .env("STORE_PASSWORD", KEY));
        let src = tmp.path().join("src-opts");
        write(&src.join("dir/file.txt"), b"x");
        ok(ss(["store", "encrypt"])
            .arg(&src)
            .arg(&store)
            .env("STORE_PASSWORD", KEY));
        let (_, files) = snapshot(&store.join("storage"));
        assert_eq!(files.len(), 1);
        assert!(files[0].0.contains(name_check), "{args:?}: {}", files[0].0);
        if args.contains(&"--no-directory-name-encryption") {
            assert!(files[0].0.starts_with("dir/"), "{}", files[0].0);
        }
        let listing = ok(ss(["store", "ls"]).arg(&store).env("STORE_PASSWORD", KEY));
        assert_eq!(listing.trim(), "1 dir/file.txt", "{args:?}");
    }
}
