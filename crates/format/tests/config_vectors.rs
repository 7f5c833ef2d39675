//! rclone config files against data written by real rclone 1.60.1
//! (`shared/vectors/rclone/config-encryption`, `obscure`) and by the
//! original Go secure-store (`shared/vectors/original-secure-store`, whose
//! README lists the passwords, config keys and scrypt outputs used here).

use std::fs;
use std::path::PathBuf;

use ssformat::rclone::config::{
    config_key, decrypt_config, encrypt_config, is_encrypted, ConfigError, ConfigFile,
    CryptSettings, ENCRYPTED_PREFIX,
};
use ssformat::rclone::name::{NameEncoding, NameMode};
use ssformat::rclone::obscure::{obscure, reveal};

mod common;

/// A vector file; a missing one is a failure, not a skip.
fn vector(rel: &str) -> PathBuf {
    let base = common::shared_vectors();
    let path = base.join(rel);
    assert!(path.exists(), "missing vector file {}", path.display());
    path
}

fn read(rel: &str) -> String {
    let path = vector(rel);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// The nonce at the start of an encrypted config's blob.
fn nonce_of(encrypted: &str) -> [u8; 24] {
    use base64::Engine as _;
    let b64 = encrypted.split_once(ENCRYPTED_PREFIX).unwrap().1;
    let blob = base64::engine::general_purpose::STANDARD
        .decode(b64.replace(['\r', '\n'], ""))
        .unwrap();
    blob[..24].try_into().unwrap()
}

const RCLONE_CONFIG_PASSWORD: &str = "config password ﬁ Ⅻ";

#[test]
fn rclone_encrypted_config() {
    let encrypted = read("rclone/config-encryption/rclone.conf.encrypted");
    let expected = read("rclone/config-encryption/decrypted.conf");
    assert!(is_encrypted(&encrypted));
    assert!(!is_encrypted(&expected));

    let plain = decrypt_config(&encrypted, RCLONE_CONFIG_PASSWORD).unwrap();
    assert_eq!(*plain, expected);
    // NFKC: the ligature and the Roman numeral are compatibility characters.
    let plain = decrypt_config(&encrypted, "config password fi XII").unwrap();
    assert_eq!(*plain, expected);
    assert_eq!(
        config_key(RCLONE_CONFIG_PASSWORD).unwrap(),
        config_key("config password fi XII").unwrap()
    );
    for wrong in ["config password fi Ⅻ ", "config password", "x"] {
        assert!(
            matches!(
                decrypt_config(&encrypted, wrong),
                Err(ConfigError::WrongPassword)
            ),
            "{wrong:?}"
        );
    }

    // Re-encrypting with the file's nonce gives rclone's bytes back.
    let again = encrypt_config(&expected, RCLONE_CONFIG_PASSWORD, nonce_of(&encrypted));
    assert_eq!(again, encrypted);

    // The plaintext parses, writes back identically and holds case A.
    let config = ConfigFile::parse(&expected).unwrap();
    assert_eq!(config.to_string(), expected);
    let settings = CryptSettings::from_section(config.section("vector").unwrap()).unwrap();
    assert_eq!(*settings.password, "secure-store test password A");
    assert_eq!(settings.remote, "crypt");
    assert_eq!(settings.filename_encryption, NameMode::Standard);
    assert_eq!(settings.filename_encoding, NameEncoding::Base32);
    assert!(settings.directory_name_encryption);
}

#[test]
fn rclone_obscure_vectors() {
    use base64::Engine as _;
    let text = read("rclone/obscure/obscure.tsv");
    let mut count = 0;
    for line in text.split('\n').filter(|l| !l.is_empty()) {
        let (clear, obscured) = line.split_once('\t').expect("clear<TAB>obscured");
        assert_eq!(reveal(obscured).unwrap(), clear, "{obscured}");
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(obscured)
            .unwrap();
        let iv: [u8; 16] = raw[..16].try_into().unwrap();
        assert_eq!(obscure(clear, iv), obscured, "{clear:?}");
        count += 1;
    }
    assert!(count >= 6, "obscure.tsv has {count} lines");
}

/// The original project's configs: the README's values, all of them.
struct Original {
    config: &'static str,
    password: &'static str,
    config_key: &'static str,
    nonce: &'static str,
    crypt_password: &'static str,
    derived: [&'static str; 3],
}

const HEAD: Original = Original {
    config: "original-secure-store/keys/encrypt_example.conf",
    password: "my-password-eQ4al9jgPxlWDwxL6uiGdznhhVJzaVQPnkNRjwvwoTvqWpeBJJJZ",
    config_key: "5af3aa65a15fb8eebc572c2cfca8224af824d5010594e333251cc28ccd2e83b9",
    nonce: "82e35c7e26e2529e703202de180cdc48561ddc49b1c13568",
    crypt_password: "mR7_5insPJ67KCUcmP24eRA14L_ksYe4aTfy9B9UKfI=",
    derived: [
        "ab54081918d1d996c15e42d2a382b1b22e8434e9a452d5141904f95dc1383df1",
        "6d3de373430964d000b5b59f9696415f647109e21cab12deebbcb222d4a996e3",
        "920c1514dd2ef7100fbde88a87055b6c",
    ],
};

const LEGACY: Original = Original {
    config: "original-secure-store/legacy-af8bbb9/keys/encrypt.conf",
    password: "62bca5ca7308305035f3f3a3ee270c026474ba430f79b17128021944d548807b",
    config_key: "e79f6cc0d44941035e0af5358b02136f7dae02e3c440b63c0ed5226c8b5f1e6d",
    nonce: "",
    crypt_password: "L5EItFTvB7YGDwrhYluX991eGxDGLlM9gu5F6g5o5kQ=",
    derived: [
        "3c21c1fe5449216fdbe4c1f365cd779d2c7410efc4007590bddc5186989d197d",
        "0e54318a1aa4698c03cae1315bafff0f86a326566e396dd17bbb3e43992abd18",
        "38d90cb009431fb06c8bb70a266de038",
    ],
};

fn original(o: &Original) {
    let encrypted = read(o.config);
    assert!(is_encrypted(&encrypted));
    assert_eq!(hex::encode(*config_key(o.password).unwrap()), o.config_key);
    if !o.nonce.is_empty() {
        assert_eq!(hex::encode(nonce_of(&encrypted)), o.nonce);
    }

    let plain = decrypt_config(&encrypted, o.password).unwrap();
    // The layout secure-store used: `storage` (local) and `encrypted_storage`
    // (crypt over it), written by rclone's own config code.
    let config = ConfigFile::parse(&plain).unwrap();
    assert_eq!(config.to_string(), *plain);
    let names: Vec<&str> = config.sections().map(|s| s.name()).collect();
    assert_eq!(names, ["storage", "encrypted_storage"]);
    assert_eq!(
        config.section("storage").unwrap().get("type"),
        Some("local")
    );
    assert_eq!(
        encrypt_config(&plain, o.password, nonce_of(&encrypted)),
        encrypted.trim_end_matches('\n')
    );

    let settings =
        CryptSettings::from_section(config.section("encrypted_storage").unwrap()).unwrap();
    assert_eq!(settings.remote, "storage");
    assert_eq!(*settings.password, o.crypt_password);
    assert_eq!(*settings.password2, "");
    assert_eq!(settings.filename_encryption, NameMode::Standard);
    assert_eq!(settings.filename_encoding, NameEncoding::Base32);
    assert!(settings.directory_name_encryption);
    let keys = settings.keys().expect("scrypt");
    assert_eq!(hex::encode(keys.data_key()), o.derived[0]);
    assert_eq!(hex::encode(keys.name_key()), o.derived[1]);
    assert_eq!(hex::encode(keys.name_tweak()), o.derived[2]);
}

#[test]
fn original_secure_store_head_config() {
    original(&HEAD);
}

#[test]
fn original_secure_store_legacy_config() {
    original(&LEGACY);
}

#[test]
fn original_configs_do_not_open_with_each_others_password() {
    let head = read(HEAD.config);
    let legacy = read(LEGACY.config);
    assert!(matches!(
        decrypt_config(&head, LEGACY.password),
        Err(ConfigError::WrongPassword)
    ));
    assert!(matches!(
        decrypt_config(&legacy, HEAD.password),
        Err(ConfigError::WrongPassword)
    ));
}

#[test]
fn store_config_round_trip() {
    // A new store's config, laid out as the original project did.
    let mut config = ConfigFile::default();
    config.add_section("storage").set("type", "local");
    let settings = CryptSettings::new("storage", "a fresh crypt password", "");
    settings.write_to(config.add_section("encrypted_storage"), [1; 16], [2; 16]);
    let text = config.to_string();
    let store_key = "62bca5ca7308305035f3f3a3ee270c026474ba430f79b17128021944d548807b";
    let encrypted = encrypt_config(&text, store_key, [3; 24]);
    assert!(is_encrypted(&encrypted));

    let plain = decrypt_config(&encrypted, store_key).unwrap();
    assert_eq!(*plain, text);
    let read_back = ConfigFile::parse(&plain).unwrap();
    assert_eq!(read_back, config);
    let again =
        CryptSettings::from_section(read_back.section("encrypted_storage").unwrap()).unwrap();
    assert_eq!(*again.password, "a fresh crypt password");
    assert_eq!(again.remote, "storage");
}

#[test]
fn garbage_is_refused() {
    let valid = encrypt_config("[a]\nk = v\n", "pw", [9; 24]);
    let body = valid.split_once(ENCRYPTED_PREFIX).unwrap().1;
    let cases: Vec<(String, &str)> = vec![
        (String::new(), "not encrypted"),
        ("[a]\nk = v\n".into(), "not encrypted"),
        (format!("{ENCRYPTED_PREFIX}\n!!!!"), "malformed"),
        (format!("{ENCRYPTED_PREFIX}\nAAAA"), "malformed"),
        (
            format!("{ENCRYPTED_PREFIX}\n{}", &body[..body.len() - 1]),
            "malformed",
        ),
        (
            format!("{ENCRYPTED_PREFIX}\n{}", body.replace('A', "B")),
            "wrong",
        ),
        ("RCLONE_ENCRYPT_V9:\nAAAA".into(), "unsupported"),
    ];
    for (text, kind) in cases {
        let err = decrypt_config(&text, "pw").unwrap_err();
        let ok = match kind {
            "not encrypted" => matches!(err, ConfigError::NotEncrypted),
            "malformed" => matches!(err, ConfigError::Malformed(_)),
            "wrong" => matches!(err, ConfigError::WrongPassword),
            _ => matches!(err, ConfigError::Unsupported(_)),
        };
        assert!(ok, "{text:?}: expected {kind}, got {err:?}");
    }
    for text in ["[a]\nno separator", "[]\nk = v", "[a]\n= v"] {
        assert!(matches!(
            ConfigFile::parse(text),
            Err(ConfigError::Syntax { line: 2 })
        ));
    }
}
