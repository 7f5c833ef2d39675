//! rclone crypt file and directory names against real rclone.
//!
//! - `shared/vectors/rclone/case-*`: every line of `names.tsv` (made by
//!   rclone 1.60.1's `--crypt-show-mapping`) must encrypt and decrypt both
//!   ways, with the settings of the case's `rclone.conf`; the encrypted paths
//!   must be exactly the files and directories in `crypt/`.
//! - `shared/vectors/original-secure-store`: the names of the original Go
//!   project's example stores (table in its README).
//! - `tests/vectors/rclone-names/case-*`: our own rclone 1.60.1 vectors for
//!   what the shared set lacks (base32768, `directory_name_encryption =
//!   false`, long names, version edge cases), plus `decode.tsv`: what
//!   `rclone cryptdecode` answered for hand-made encrypted names, which we
//!   must answer the same, except that we refuse unsafe names.
//! - `live_rclone_interop`: when `rclone` is on `PATH`, it reads a config
//!   we wrote and encrypts names we then decrypt.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use ssformat::rclone::config::{encrypt_config, ConfigFile, CryptSettings};
use ssformat::rclone::keys::CryptKeys;
use ssformat::rclone::name::{NameCipher, NameEncoding, NameError, NameMode};

const SHARED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/vectors");
const OURS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/rclone-names");

/// A vector directory; a missing one is a failure, not a skip.
fn dir(base: &str, sub: &str) -> PathBuf {
    let dir = Path::new(base).join(sub);
    assert!(
        dir.is_dir(),
        "conformance vectors not found at {}: these tests need the shared \
         vectors directory next to the workspace (…/shared/vectors) and \
         crates/format/tests/vectors",
        dir.display()
    );
    dir
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// The data lines of a TSV file (lines starting with `#` are headers).
fn tsv(path: &Path) -> Vec<Vec<String>> {
    read(path)
        .split('\n')
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| line.split('\t').map(str::to_owned).collect())
        .collect()
}

/// The case's keys from `keys.json` (no scrypt) and settings from
/// `rclone.conf`; checks that the config's password reveals to the one the
/// keys were derived from, and that the settings match `keys.json`.
fn case_cipher(case: &Path) -> NameCipher {
    let json: serde_json::Value = serde_json::from_str(&read(&case.join("keys.json"))).unwrap();
    let derived: [u8; 80] = hex::decode(json["derived_80_bytes_hex"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let config = ConfigFile::parse(&read(&case.join("rclone.conf"))).unwrap();
    let settings = CryptSettings::from_section(config.section("vector").unwrap()).unwrap();
    assert_eq!(*settings.password, json["password"].as_str().unwrap());
    assert_eq!(*settings.password2, json["password2"].as_str().unwrap());
    let expected = |key: &str| {
        json.get(key)
            .or_else(|| json["options"].get(key))
            .and_then(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .or_else(|| Some(v.to_string()))
            })
    };
    if let Some(mode) = expected("filename_encryption") {
        assert_eq!(settings.filename_encryption.to_string(), mode);
    }
    if let Some(encoding) = expected("filename_encoding") {
        assert_eq!(settings.filename_encoding.to_string(), encoding);
    }
    if let Some(dirs) = expected("directory_name_encryption") {
        assert_eq!(settings.directory_name_encryption.to_string(), dirs);
    }
    settings.name_cipher(&CryptKeys::from_bytes(&derived))
}

/// Checks one `plain → crypt` mapping both ways.
fn check_mapping(cipher: &NameCipher, plain: &str, crypt: &str, is_dir: bool, case: &str) {
    assert_eq!(
        cipher.try_encrypt_path(plain, is_dir).as_deref(),
        Ok(crypt),
        "{case}: encrypting {plain:?} (dir: {is_dir})"
    );
    assert_eq!(
        cipher.decrypt_path(crypt, is_dir).as_deref(),
        Ok(plain),
        "{case}: decrypting {crypt:?} (dir: {is_dir})"
    );
}

/// Every path under `root`, relative, with whether it is a directory.
fn tree(root: &Path) -> BTreeMap<String, bool> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, bool>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_str()
                .unwrap()
                .to_owned();
            let is_dir = path.is_dir();
            out.insert(rel, is_dir);
            if is_dir {
                walk(root, &path, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn shared_case(name: &str) {
    let case = dir(SHARED, &format!("rclone/{name}"));
    let cipher = case_cipher(&case);
    let mut mapped = BTreeMap::new();
    let rows = tsv(&case.join("names.tsv"));
    assert!(rows.len() >= 25, "{name}: names.tsv is too short");
    for row in rows {
        let [plain, crypt] = &row[..] else {
            panic!("{name}: bad names.tsv line {row:?}")
        };
        let is_dir = case.join("plain").join(plain).is_dir();
        check_mapping(&cipher, plain, crypt, is_dir, name);
        mapped.insert(crypt.clone(), is_dir);
    }
    assert_eq!(
        mapped,
        tree(&case.join("crypt")),
        "{name}: names.tsv and crypt/ differ"
    );
}

#[test]
fn shared_case_a_standard() {
    shared_case("case-a-standard");
}

#[test]
fn shared_case_b_password2() {
    shared_case("case-b-password2");
}

#[test]
fn shared_case_c_base64() {
    shared_case("case-c-base64");
}

#[test]
fn shared_case_d_names_off() {
    shared_case("case-d-names-off");
}

#[test]
fn shared_case_e_obfuscate() {
    shared_case("case-e-obfuscate");
}

/// The original project's stores: standard names, base32, built-in salt.
fn original_store(folder: &str, name_key: &str, tweak: &str, names: [(&str, &str); 3]) {
    let store = dir(SHARED, &format!("original-secure-store/{folder}"));
    let mut derived = [0u8; 80];
    derived[32..64].copy_from_slice(&hex::decode(name_key).unwrap());
    derived[64..].copy_from_slice(&hex::decode(tweak).unwrap());
    let keys = CryptKeys::from_bytes(&derived);
    let cipher = NameCipher::new(&keys, NameMode::Standard, NameEncoding::Base32, true);
    for (encrypted, plain) in names {
        check_mapping(&cipher, plain, encrypted, false, folder);
    }
    let on_disk: Vec<String> = tree(&store).into_keys().collect();
    let mut listed: Vec<String> = names.iter().map(|(e, _)| e.to_string()).collect();
    listed.sort();
    assert_eq!(on_disk, listed, "{folder}");
}

#[test]
fn original_secure_store_head_example() {
    original_store(
        "encrypted_example",
        "6d3de373430964d000b5b59f9696415f647109e21cab12deebbcb222d4a996e3",
        "920c1514dd2ef7100fbde88a87055b6c",
        [
            ("s83kggulgsehth4r5ncqkbh37g", "test1"),
            ("pia0t01io2ohd71c1pe3r9od7g", "test2"),
            ("chlrce65ijdo0q0gmrg9dhvpmg", "test3"),
        ],
    );
}

#[test]
fn original_secure_store_legacy_af8bbb9() {
    original_store(
        "legacy-af8bbb9/encrypted",
        "0e54318a1aa4698c03cae1315bafff0f86a326566e396dd17bbb3e43992abd18",
        "38d90cb009431fb06c8bb70a266de038",
        [
            ("pcsob3lmi3daqronlfhakkd5rk", "test1"),
            ("pkrb1uhnhqn3gga2adamr019as", "test2"),
            ("77ec643vgbqt7qj0mie80m4410", "test3"),
        ],
    );
}

/// Whether rclone's answer (a path) has a segment we must refuse.
fn is_unsafe(path: &str) -> bool {
    path.split('/')
        .any(|name| name.is_empty() || name == "." || name == ".." || name.contains('\0'))
}

/// Checks that we decrypt `input` to what rclone answered (`!`: it failed),
/// except that we refuse unsafe names.
fn check_answer(ours: Result<String, NameError>, answer: &str, what: &str) {
    if answer == "!" {
        assert!(ours.is_err(), "{what}: rclone fails, we gave {ours:?}");
    } else if is_unsafe(answer) {
        assert!(
            matches!(ours, Err(NameError::Unsafe(_))),
            "{what}: decrypts to an unsafe name, we gave {ours:?}"
        );
    } else {
        assert_eq!(ours.as_deref(), Ok(answer), "{what}");
    }
}

fn our_case(name: &str) {
    let case = dir(OURS, name);
    let cipher = case_cipher(&case);
    let rows = tsv(&case.join("names.tsv"));
    assert!(rows.len() >= 50, "{name}: names.tsv is too short");
    for row in rows {
        let [kind, plain, crypt, back] = &row[..] else {
            panic!("{name}: bad names.tsv line {row:?}")
        };
        let is_dir = kind == "d";
        assert_eq!(
            cipher.try_encrypt_path(plain, is_dir).as_deref(),
            Ok(crypt.as_str()),
            "{name}: encrypting {plain:?} (dir: {is_dir})"
        );
        let what = format!("{name}: decrypting {crypt:?} (dir: {is_dir})");
        check_answer(cipher.decrypt_path(crypt, is_dir), back, &what);
    }
    let decoded = tsv(&case.join("decode.tsv"));
    assert!(decoded.len() >= 15, "{name}: decode.tsv is too short");
    for row in decoded {
        let [input, answer] = &row[..] else {
            panic!("{name}: bad decode.tsv line {row:?}")
        };
        let what = format!("{name}: decrypting {input:?}");
        check_answer(cipher.decrypt_file_name(input), answer, &what);
    }
}

#[test]
fn ours_case_f_base32768() {
    our_case("case-f-base32768");
}

#[test]
fn ours_case_g_plain_dirs() {
    our_case("case-g-plain-dirs");
}

#[test]
fn ours_case_h_base32768_plain_dirs() {
    our_case("case-h-base32768-plain-dirs");
}

#[test]
fn ours_case_i_base64_plain_dirs() {
    our_case("case-i-base64-plain-dirs");
}

#[test]
fn ours_case_j_obfuscate_plain_dirs() {
    our_case("case-j-obfuscate-plain-dirs");
}

#[test]
fn ours_case_k_names_off() {
    our_case("case-k-names-off");
}

/// Runs the real `rclone` when it is installed: it must read a config we
/// wrote (encrypted, obscured passwords, non-default options) and encrypt
/// names exactly as we do. Without rclone this is skipped with a message,
/// except under `CI=true`, where it fails.
#[test]
fn live_rclone_interop() {
    let version = Command::new("rclone").arg("version").output().ok();
    let Some(version) = version.filter(|o| o.status.success()) else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "rclone is not installed, and CI=true requires the live interop test"
        );
        eprintln!("SKIPPED live_rclone_interop: no `rclone` on PATH (install rclone to run it)");
        return;
    };
    let version = String::from_utf8_lossy(&version.stdout);
    eprintln!(
        "live_rclone_interop: {}",
        version.lines().next().unwrap_or("")
    );

    let work = std::env::temp_dir().join(format!("ssformat-names-{}", std::process::id()));
    fs::create_dir_all(&work).unwrap();
    let names = [
        "a",
        "sixteen_bytes_xx",
        "Ünïcödé ✓ 日本語 😀",
        "report-v2021-01-02-150405-000.txt",
        "dir/sub dir/file.txt",
    ];
    let settings_list = [
        (NameMode::Standard, NameEncoding::Base32768, false),
        (NameMode::Standard, NameEncoding::Base64, true),
        (NameMode::Obfuscate, NameEncoding::Base32, true),
    ];
    for (i, (mode, encoding, dirs)) in settings_list.into_iter().enumerate() {
        let mut settings = CryptSettings::new("crypt", "live test password", "live salt");
        settings.filename_encryption = mode;
        settings.filename_encoding = encoding;
        settings.directory_name_encryption = dirs;
        let mut config = ConfigFile::default();
        settings.write_to(
            config.add_section("vector"),
            [i as u8; 16],
            [0x40 + i as u8; 16],
        );
        let conf = work.join(format!("rclone-{i}.conf"));
        let config_password = "live config password";
        fs::write(
            &conf,
            encrypt_config(&config.to_string(), config_password, [i as u8; 24]),
        )
        .unwrap();

        let output = Command::new("rclone")
            .args(["--config", conf.to_str().unwrap(), "--ask-password=false"])
            .args(["cryptdecode", "--reverse", "--", "vector:"])
            .args(names)
            .env("RCLONE_CONFIG_PASS", config_password)
            .output()
            .unwrap();
        let stdout = String::from_utf8(output.stdout).unwrap();
        assert!(
            output.status.success(),
            "rclone failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let keys = settings.keys().unwrap();
        let cipher = settings.name_cipher(&keys);
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(lines.len(), names.len(), "{stdout}");
        for (line, name) in lines.iter().zip(names) {
            let (plain, encrypted) = line.split_once(" \t ").unwrap();
            assert_eq!(plain, name);
            assert_eq!(
                cipher.encrypt_path(name, false),
                encrypted,
                "{mode} {encoding}"
            );
            assert_eq!(cipher.decrypt_path(encrypted, false).unwrap(), name);
        }
    }
    fs::remove_dir_all(&work).unwrap();
}
