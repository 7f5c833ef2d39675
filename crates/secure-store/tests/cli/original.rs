//! The original Go secure-store's stores open with ours, both generations,
//! through `--config`/`--storage` (its files are laid out differently).

use std::path::Path;
use std::process::Command;

use super::harness::*;

const HEAD_KEY: &str = "my-password-eQ4al9jgPxlWDwxL6uiGdznhhVJzaVQPnkNRjwvwoTvqWpeBJJJZ";
const LEGACY_KEY: &str = "62bca5ca7308305035f3f3a3ee270c026474ba430f79b17128021944d548807b";

fn with_location(cmd: &mut Command, root: &Path, config: &str, storage: &str, key: &str) {
    let base = vectors().join("original-secure-store");
    cmd.arg(root)
        .arg("--config")
        .arg(base.join(config))
        .arg("--storage")
        .arg(base.join(storage))
        .env("STORE_PASSWORD", key);
}

fn open_original(config: &str, storage: &str, key: &str, expected: &str, listing: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("unused");

    let mut ls = ss(["store", "ls"]);
    with_location(&mut ls, &root, config, storage, key);
    assert_eq!(ok(&mut ls), listing);

    let mut verify = ss(["store", "verify"]);
    with_location(&mut verify, &root, config, storage, key);
    assert!(ok(&mut verify).starts_with("ok: 3 files"));

    let dst = tmp.path().join("out");
    let mut decrypt = ss(["store", "decrypt"]);
    with_location(&mut decrypt, &root, config, storage, key);
    decrypt.arg(&dst);
    ok(&mut decrypt);
    assert_same_tree(
        &vectors().join("original-secure-store").join(expected),
        &dst,
    );
}

#[test]
fn head_generation_store_opens() {
    open_original(
        "keys/encrypt_example.conf",
        "encrypted_example",
        HEAD_KEY,
        "source",
        "       31 test1\n       37 test2\n       40 test3\n",
    );
}

#[test]
fn legacy_generation_store_opens() {
    open_original(
        "legacy-af8bbb9/keys/encrypt.conf",
        "legacy-af8bbb9/encrypted",
        LEGACY_KEY,
        "legacy-af8bbb9/expected_decrypted",
        "       31 test1\n       37 test2\n       39 test3\n",
    );
}

#[test]
fn each_generation_refuses_the_other_key() {
    let tmp = tempfile::tempdir().unwrap();
    let mut ls = ss(["store", "ls"]);
    with_location(
        &mut ls,
        tmp.path(),
        "keys/encrypt_example.conf",
        "encrypted_example",
        LEGACY_KEY,
    );
    fails(&mut ls, "encrypt_example.conf: the store key does not open");
    let mut ls = ss(["store", "ls"]);
    with_location(
        &mut ls,
        tmp.path(),
        "legacy-af8bbb9/keys/encrypt.conf",
        "legacy-af8bbb9/encrypted",
        HEAD_KEY,
    );
    fails(&mut ls, "encrypt.conf: the store key does not open");
}
