//! `env encrypt` and `env decrypt`, both formats, environment and dotenv.

use std::fs;

use super::harness::*;

fn encrypt(name: &str, value: &str, extra: &[&str]) -> String {
    let out = ok(ss(["env", "encrypt", name, value])
        .args(extra)
        .env("STORE_PASSWORD", KEY));
    let line = out.trim().to_owned();
    assert!(
        line.starts_with(&format!(
            "ENCRYPTED_{}=",
            name.trim_start_matches("ENCRYPTED_")
        )),
        "{line}"
    );
    line
}

fn split(line: &str) -> (String, String) {
    let (k, v) = line.split_once('=').unwrap();
    (k.to_owned(), v.to_owned())
}

#[test]
fn v1_and_v0_round_trip_through_the_environment() {
    let (k1, v1) = split(&encrypt("API_KEY", "s3cr3t value", &[]));
    assert!(v1.starts_with("v1."), "{v1}");
    let (k0, v0) = split(&encrypt("OLD_KEY", "legacy", &["--format", "v0"]));
    assert!(v0.bytes().all(|b| b.is_ascii_hexdigit()), "{v0}");
    let out = ok(ss(["env", "decrypt"])
        .env("STORE_PASSWORD", KEY)
        .env(&k1, &v1)
        .env(&k0, &v0));
    assert_eq!(out, "API_KEY=\"s3cr3t value\"\nOLD_KEY=legacy\n");
}

#[test]
fn a_v1_value_moved_to_another_name_fails_and_prints_no_plaintext() {
    let (_, v1) = split(&encrypt("API_KEY", "top-secret", &[]));
    let (k_ok, v_ok) = split(&encrypt("OTHER", "fine-value", &[]));
    let r = run(ss(["env", "decrypt"])
        .env("STORE_PASSWORD", KEY)
        .env("ENCRYPTED_STOLEN", &v1)
        .env(&k_ok, &v_ok));
    assert_eq!(r.code, Some(1));
    assert!(r.stderr.contains("ENCRYPTED_STOLEN"), "{}", r.stderr);
    assert!(
        !r.stdout.contains("fine-value") && !r.stdout.contains("top-secret"),
        "{}",
        r.stdout
    );
    assert!(!r.stderr.contains("top-secret"));
}

#[test]
fn wrong_key_is_named_and_fails() {
    let (k, v) = split(&encrypt("API_KEY", "x", &[]));
    let r = run(ss(["env", "decrypt"])
        .env("STORE_PASSWORD", "another key")
        .env(&k, &v));
    assert_eq!(r.code, Some(1));
    assert!(r.stderr.contains("ENCRYPTED_API_KEY"), "{}", r.stderr);
    assert!(r.stdout.is_empty());
}

#[test]
fn value_from_stdin_drops_one_trailing_newline() {
    let out = run_stdin(
        ss(["env", "encrypt", "ENCRYPTED_TOKEN"]).env("STORE_PASSWORD", KEY),
        b"line one\nline two\n",
    );
    assert!(out.status.success());
    let line = String::from_utf8(out.stdout).unwrap();
    let (k, v) = split(line.trim());
    assert_eq!(k, "ENCRYPTED_TOKEN", "the ENCRYPTED_ prefix is not doubled");
    let dec = ok(ss(["env", "decrypt"])
        .env("STORE_PASSWORD", KEY)
        .env(&k, &v));
    assert_eq!(dec, "TOKEN=\"line one\\nline two\"\n");
}

#[test]
fn dotenv_file_input() {
    let tmp = tempfile::tempdir().unwrap();
    let (k, v) = split(&encrypt("DB_URL", "postgres://u:p@h/db", &[]));
    let file = tmp.path().join(".env");
    fs::write(&file, format!("# comment\nPLAIN=1\nexport {k}=\"{v}\"\n")).unwrap();
    let out = ok(ss(["env", "decrypt", "--env-file"])
        .arg(&file)
        .env("STORE_PASSWORD", KEY));
    assert_eq!(out, "DB_URL=postgres://u:p@h/db\n");
    fs::write(&file, "garbage line\n").unwrap();
    fails(
        ss(["env", "decrypt", "--env-file"])
            .arg(&file)
            .env("STORE_PASSWORD", KEY),
        "line 1",
    );
}

#[test]
fn bad_names_and_no_values_are_clear_errors() {
    fails(
        ss(["env", "encrypt", "BAD-NAME", "x"]).env("STORE_PASSWORD", KEY),
        "BAD-NAME",
    );
    fails(
        ss(["env", "decrypt"]).env("STORE_PASSWORD", KEY),
        "no ENCRYPTED_",
    );
    fails(
        ss(["env", "decrypt"])
            .env("STORE_PASSWORD", KEY)
            .env("ENCRYPTED_X", "zz-not-a-value"),
        "ENCRYPTED_X",
    );
}

#[test]
fn original_project_env_vectors_decrypt() {
    let tsv = fs::read_to_string(vectors().join("original-secure-store/env_vars.tsv")).unwrap();
    let mut checked = 0;
    for line in tsv.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        let (password, hex, plain) = (cols[0], cols[1], cols[2]);
        let out = ok(ss(["env", "decrypt"])
            .env("STORE_PASSWORD", password)
            .env("ENCRYPTED_API_KEY", hex));
        assert_eq!(out, format!("API_KEY={plain}\n"));
        checked += 1;
    }
    assert_eq!(checked, 2);
}
