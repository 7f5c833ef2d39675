//! Env value conformance, driven by data (spec: `docs/formats/env-values.md`).
//!
//! - v0: the upstream vectors in `shared/vectors/original-secure-store/env_vars.tsv`
//!   (both key variants), decrypted and re-encrypted byte for byte.
//! - v1: one file per case in `tests/vectors/env-v1/`, computed by an
//!   independent Python reference (the spec's §4), in age's testkit style.
//!
//! Missing data files fail the tests; they never skip.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use ssformat::env::{self, v0, v1, EnvError, Format};

const ORIGINAL_TSV: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/vectors/original-secure-store/env_vars.tsv"
);
const V1_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/env-v1");

fn read(path: &str) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| {
        panic!(
            "cannot read test vectors at {path}: {e}. They are required test data \
             (the shared vectors live next to the workspace, in /work/shared); \
             this test fails rather than skips without them"
        )
    })
}

struct OriginalVector {
    password: String,
    value: String,
    plaintext: String,
    scheme: String,
}

fn original_vectors() -> Vec<OriginalVector> {
    let text = read(ORIGINAL_TSV);
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("password\tencrypted_hex\tplaintext\tscheme"),
        "unexpected header in {ORIGINAL_TSV}"
    );
    let vectors: Vec<_> = lines
        .filter(|l| !l.is_empty())
        .map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            assert_eq!(fields.len(), 4, "bad row in {ORIGINAL_TSV}: {line:?}");
            OriginalVector {
                password: fields[0].to_owned(),
                value: fields[1].to_owned(),
                plaintext: fields[2].to_owned(),
                scheme: fields[3].to_owned(),
            }
        })
        .collect();
    assert_eq!(vectors.len(), 2, "expected the two upstream env vectors");
    vectors
}

fn nonce_of_v0(value: &str) -> [u8; 12] {
    let mut nonce = [0u8; 12];
    hex::decode_to_slice(&value[..24], &mut nonce).expect("hex nonce");
    nonce
}

#[test]
fn original_v0_vectors_decrypt() {
    for v in original_vectors() {
        assert_eq!(env::detect(&v.value), Some(Format::V0));
        // v0 ignores the name: any name works.
        for name in ["API_KEY", "ANYTHING", ""] {
            let plaintext = env::decrypt(&v.password, name, &v.value)
                .unwrap_or_else(|e| panic!("{}: {e}", v.scheme));
            assert_eq!(&plaintext[..], v.plaintext.as_bytes(), "{}", v.scheme);
        }
        let upper = v.value.to_uppercase();
        assert_eq!(
            &env::decrypt(&v.password, "X", &upper).unwrap()[..],
            v.plaintext.as_bytes(),
            "upper-case hex, {}",
            v.scheme
        );
        assert_eq!(
            env::decrypt("not the key", "X", &v.value),
            Err(EnvError::Authentication)
        );
    }
}

#[test]
fn original_v0_vectors_reencrypt_byte_for_byte() {
    let mut seen = (false, false);
    for v in original_vectors() {
        let nonce = nonce_of_v0(&v.value);
        let pt = v.plaintext.as_bytes();
        if v.scheme.starts_with("key=SHA256(password)") {
            seen.0 = true;
            assert_eq!(v0::encrypt(&v.password, pt, nonce), v.value);
            assert_eq!(
                env::encrypt(Format::V0, &v.password, "IGNORED", pt, nonce),
                v.value
            );
        } else if v.scheme.starts_with("key=hex_decode(password)") {
            seen.1 = true;
            let key = v0::legacy_key(&v.password).expect("a 64-hex legacy key");
            assert_eq!(v0::encrypt_with_key(&key, pt, nonce), v.value);
            // This vector really needs the fallback.
            assert_eq!(
                v0::decrypt_with_key(&v0::derive_key(&v.password), &v.value),
                Err(EnvError::Authentication)
            );
        } else {
            panic!("unknown scheme in {ORIGINAL_TSV}: {}", v.scheme);
        }
    }
    assert_eq!(seen, (true, true), "both key variants must be covered");
}

/// One `tests/vectors/env-v1/*.txt` file: `field: value` lines, `value:` last.
#[derive(Debug)]
struct V1Case {
    fields: BTreeMap<String, String>,
    value: String,
}

impl V1Case {
    fn parse(path: &Path) -> Result<Self, String> {
        let text = fs::read_to_string(path).map_err(|e| e.to_string())?;
        let mut fields = BTreeMap::new();
        let mut value = None;
        for line in text.lines() {
            if value.is_some() {
                return Err("`value:` must be the last line".into());
            }
            let (field, rest) = line
                .split_once(':')
                .ok_or_else(|| format!("not a `field: value` line: {line:?}"))?;
            // One space after the colon; the rest is verbatim (keys may hold anything).
            let rest = rest.strip_prefix(' ').unwrap_or(rest).to_owned();
            match field {
                "value" => value = Some(rest),
                "comment" => {}
                "key" | "key-id" | "name" | "nonce" | "plaintext-hex" | "expect" => {
                    if fields.insert(field.to_owned(), rest).is_some() {
                        return Err(format!("duplicate field {field}"));
                    }
                }
                other => return Err(format!("unknown field {other:?}")),
            }
        }
        let value = value.ok_or("no `value:` line")?;
        for required in ["key", "key-id", "name", "expect"] {
            if !fields.contains_key(required) {
                return Err(format!("missing field {required}"));
            }
        }
        Ok(V1Case { fields, value })
    }

    fn get(&self, field: &str) -> Result<&str, String> {
        self.fields
            .get(field)
            .map(String::as_str)
            .ok_or_else(|| format!("missing field {field}"))
    }

    fn run(&self) -> Result<(), String> {
        let key = self.get("key")?;
        let name = self.get("name")?;
        let expected_kid = self.get("key-id")?;
        if v1::key_id(key) != expected_kid {
            return Err(format!(
                "key_id(key) = {}, file says {expected_kid}",
                v1::key_id(key)
            ));
        }
        let got = env::decrypt(key, name, &self.value);
        match self.get("expect")? {
            "success" => {
                let plaintext = hex::decode(self.get("plaintext-hex")?)
                    .map_err(|e| format!("plaintext-hex: {e}"))?;
                let mut nonce = [0u8; 12];
                hex::decode_to_slice(self.get("nonce")?, &mut nonce)
                    .map_err(|e| format!("nonce: {e}"))?;
                match &got {
                    Ok(pt) if pt[..] == plaintext[..] => {}
                    Ok(_) => return Err("decrypted to the wrong plaintext".into()),
                    Err(e) => return Err(format!("decrypt failed: {e:?}")),
                }
                if env::detect(&self.value) != Some(Format::V1) {
                    return Err("detect() does not say v1".into());
                }
                let again = env::encrypt(Format::V1, key, name, &plaintext, nonce);
                if again != self.value {
                    return Err(format!("re-encryption differs: {again}"));
                }
                if env::validate_name(name).is_err() {
                    return Err("success vectors must use valid names".into());
                }
                Ok(())
            }
            "wrong-key" => {
                let found = v1::value_key_id(&self.value)
                    .map_err(|e| format!("value_key_id: {e:?}"))?
                    .to_owned();
                expect_err(
                    got,
                    EnvError::WrongKey {
                        expected: expected_kid.to_owned(),
                        found,
                    },
                )
            }
            "authentication" => expect_err(got, EnvError::Authentication),
            "bad-encoding" => expect_err(got, EnvError::BadEncoding),
            "too-short" => expect_err(got, EnvError::TooShort),
            "unknown-format" => expect_err(got, EnvError::UnknownFormat),
            other => Err(format!("unknown expect: {other:?}")),
        }
    }
}

fn expect_err(
    got: Result<zeroize::Zeroizing<Vec<u8>>, EnvError>,
    want: EnvError,
) -> Result<(), String> {
    match got {
        Err(e) if e == want => Ok(()),
        Err(e) => Err(format!("expected {want:?}, got {e:?}")),
        Ok(_) => Err(format!("expected {want:?}, but it decrypted")),
    }
}

#[test]
fn v1_vector_files() {
    let mut paths: Vec<PathBuf> = fs::read_dir(V1_DIR)
        .unwrap_or_else(|e| panic!("cannot read {V1_DIR}: {e}"))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    paths.sort();
    assert!(
        paths.len() >= 30,
        "expected the v1 vector files in {V1_DIR}, found {}",
        paths.len()
    );

    let mut expects = BTreeMap::<String, usize>::new();
    let mut failures = Vec::new();
    for path in &paths {
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        match V1Case::parse(path).and_then(|case| {
            let expect = case.get("expect")?.to_owned();
            // The file name starts with what it expects, so a reader can trust it.
            if !file.starts_with(&expect) {
                return Err(format!("file name does not start with `{expect}`"));
            }
            case.run()?;
            *expects.entry(expect).or_default() += 1;
            Ok(())
        }) {
            Ok(()) => {}
            Err(e) => failures.push(format!("{file}: {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} v1 vectors failed:\n{}",
        failures.len(),
        paths.len(),
        failures.join("\n")
    );
    for kind in [
        "success",
        "wrong-key",
        "authentication",
        "bad-encoding",
        "too-short",
        "unknown-format",
    ] {
        assert!(expects.contains_key(kind), "no `{kind}` vector");
    }
}
