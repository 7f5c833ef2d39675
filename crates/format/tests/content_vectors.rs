//! rclone crypt file content against data written by real rclone 1.60.1
//! (`shared/vectors/rclone/case-*`) and by the original Go secure-store
//! (`shared/vectors/original-secure-store`, rclone 1.59 inside).
//!
//! For every encrypted file: decrypt and compare with the plaintext, check
//! the size formulas against the real sizes, and re-encrypt the plaintext
//! with the file's own nonce to get the same bytes back.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use ssformat::rclone::content::{
    self, BlockCipher, DecryptReader, EncryptWriter, FileNonce, HEADER_SIZE,
};
use ssformat::rclone::keys::CryptKeys;

mod common;

fn vectors() -> PathBuf {
    common::shared_vectors()
}

fn read(path: &Path) -> Vec<u8> {
    fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Keys whose data key is `data_key` (name keys do not matter here).
fn keys_with_data_key(data_key: &[u8]) -> CryptKeys {
    let mut bytes = [0u8; 80];
    bytes[..32].copy_from_slice(data_key);
    CryptKeys::from_bytes(&bytes)
}

fn keys_from_json(case: &Path) -> CryptKeys {
    let text = String::from_utf8(read(&case.join("keys.json"))).expect("keys.json is UTF-8");
    let json: serde_json::Value = serde_json::from_str(&text).expect("keys.json parses");
    let field = |name: &str| {
        let hex_text = json[name]
            .as_str()
            .unwrap_or_else(|| panic!("{}: no {name}", case.display()));
        hex::decode(hex_text).unwrap_or_else(|e| panic!("{}: {name}: {e}", case.display()))
    };
    let data_key = field("data_key_hex");
    let derived = field("derived_80_bytes_hex");
    assert_eq!(
        &derived[..32],
        &data_key[..],
        "{}: data key is the first 32 derived bytes",
        case.display()
    );
    keys_with_data_key(&data_key)
}

/// Checks one encrypted file against its plaintext; `what` names it in
/// failure messages.
fn check_file(keys: &CryptKeys, crypt: &[u8], plain: &[u8], what: &str) {
    let cipher = BlockCipher::new(keys);

    // Sizes, both ways.
    assert_eq!(
        content::encrypted_size(plain.len() as u64),
        crypt.len() as u64,
        "{what}: encrypted_size"
    );
    assert_eq!(
        content::decrypted_size(crypt.len() as u64),
        Ok(plain.len() as u64),
        "{what}: decrypted_size"
    );

    // Decrypt.
    let mut reader =
        DecryptReader::new(cipher.clone(), crypt).unwrap_or_else(|e| panic!("{what}: header: {e}"));
    let mut got = Vec::new();
    reader
        .read_to_end(&mut got)
        .unwrap_or_else(|e| panic!("{what}: decrypt: {e}"));
    assert!(
        got == plain,
        "{what}: decrypted content differs from the plaintext"
    );

    // Re-encrypt with the file's own nonce: byte for byte the same.
    let nonce = FileNonce(crypt[8..HEADER_SIZE].try_into().expect("24 bytes"));
    assert_eq!(reader.nonce(), nonce, "{what}: nonce");
    let mut writer = EncryptWriter::new(cipher, nonce, Vec::new()).expect("header");
    writer.write_all(plain).expect("write");
    let again = writer.finish().expect("finish");
    assert!(
        again == crypt,
        "{what}: re-encryption differs from rclone's bytes"
    );
}

#[test]
fn rclone_cases() {
    let root = vectors().join("rclone");
    let mut cases: Vec<PathBuf> = fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("listing {}: {e}", root.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("case-"))
        })
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 5,
        "expected 5 rclone cases in {}",
        root.display()
    );

    for case in &cases {
        let keys = keys_from_json(case);
        let names = String::from_utf8(read(&case.join("names.tsv"))).expect("names.tsv is UTF-8");
        let mut files = 0;
        for line in names.lines().filter(|l| !l.is_empty()) {
            let (plain_rel, crypt_rel) = line
                .split_once('\t')
                .unwrap_or_else(|| panic!("{}: bad names.tsv line {line:?}", case.display()));
            let plain_path = case.join("plain").join(plain_rel);
            if plain_path.is_dir() {
                continue;
            }
            let what = format!(
                "{}: {plain_rel}",
                case.file_name().unwrap().to_string_lossy()
            );
            check_file(
                &keys,
                &read(&case.join("crypt").join(crypt_rel)),
                &read(&plain_path),
                &what,
            );
            files += 1;
        }
        assert_eq!(
            files,
            21,
            "{}: the plaintext tree has 21 files",
            case.display()
        );
    }
}

#[test]
fn original_secure_store_head_example() {
    let root = vectors().join("original-secure-store");
    let keys = keys_with_data_key(
        &hex::decode("ab54081918d1d996c15e42d2a382b1b22e8434e9a452d5141904f95dc1383df1").unwrap(),
    );
    let files = [
        (
            "s83kggulgsehth4r5ncqkbh37g",
            "test1",
            "6be953d37b316e4eba0e351cfd22fdbf1c6d14a36c0e98c2",
        ),
        (
            "pia0t01io2ohd71c1pe3r9od7g",
            "test2",
            "df1ffd8ac35cc2e31a03940fa8f0d98053956b25643f315f",
        ),
        (
            "chlrce65ijdo0q0gmrg9dhvpmg",
            "test3",
            "5249a6d733b58c35f442f43e914492e95195d6a870f30de0",
        ),
    ];
    for (crypt_name, plain_name, nonce_hex) in files {
        let crypt = read(&root.join("encrypted_example").join(crypt_name));
        let plain = read(&root.join("source").join(plain_name));
        assert_eq!(
            content::parse_header(&crypt).unwrap().0.to_vec(),
            hex::decode(nonce_hex).unwrap(),
            "{plain_name}: nonce"
        );
        check_file(
            &keys,
            &crypt,
            &plain,
            &format!("original HEAD {plain_name}"),
        );
    }
}

#[test]
fn original_secure_store_legacy() {
    let root = vectors()
        .join("original-secure-store")
        .join("legacy-af8bbb9");
    let keys = keys_with_data_key(
        &hex::decode("3c21c1fe5449216fdbe4c1f365cd779d2c7410efc4007590bddc5186989d197d").unwrap(),
    );
    let files = [
        ("pcsob3lmi3daqronlfhakkd5rk", "test1"),
        ("pkrb1uhnhqn3gga2adamr019as", "test2"),
        ("77ec643vgbqt7qj0mie80m4410", "test3"),
    ];
    for (crypt_name, plain_name) in files {
        let crypt = read(&root.join("encrypted").join(crypt_name));
        let plain = read(&root.join("expected_decrypted").join(plain_name));
        check_file(
            &keys,
            &crypt,
            &plain,
            &format!("original legacy {plain_name}"),
        );
    }
    // test3 was encrypted without its trailing newline.
    assert_eq!(
        read(&root.join("expected_decrypted").join("test3")),
        b"And finally another encrypted test file"
    );
}

#[test]
fn wrong_data_key_fails_authentication() {
    let root = vectors().join("original-secure-store");
    let crypt = read(
        &root
            .join("encrypted_example")
            .join("s83kggulgsehth4r5ncqkbh37g"),
    );
    // The legacy set's data key does not open the HEAD set.
    let keys = keys_with_data_key(
        &hex::decode("3c21c1fe5449216fdbe4c1f365cd779d2c7410efc4007590bddc5186989d197d").unwrap(),
    );
    let mut reader = DecryptReader::new(BlockCipher::new(&keys), &crypt[..]).unwrap();
    let err = reader.read_to_end(&mut Vec::new()).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    assert_eq!(err.to_string(), "block 0 failed authentication");
}
