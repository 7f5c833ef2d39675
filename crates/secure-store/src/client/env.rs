//! The app's environment: every `ENCRYPTED_NAME` variable of ours is
//! decrypted (format v0 or v1, `ssformat::env`) and handed to the app as
//! `NAME`; the ciphertext variables and our own secrets (the client key,
//! the envelope, a store key) are left out. Our own process environment is
//! never modified: the result is only given to the child's `execve`.
//!
//! Fail closed: if a value does not decrypt, the app is not started and the
//! error names every failing variable, unless that variable was allowed to
//! be missing (`--allow-missing NAME`), in which case it is left out of the
//! app's environment with a warning.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStringExt;

use ssformat::env::ENCRYPTED_PREFIX;
use zeroize::Zeroizing;

/// Variables never passed on to the app: secrets of the client itself.
pub const WITHHELD: &[&str] = &[
    "MTLS_KEY",
    "SECURE_STORE_ENVELOPE",
    "STORE_PASSWORD",
    "RCLONE_CONFIG_PASS",
];

/// One or more `ENCRYPTED_*` values did not decrypt.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{} did not decrypt, so the app was not started ({}); fix the value or pass --allow-missing NAME", names.join(", "), reasons.join("; "))]
pub struct EnvError {
    /// The failing variables, with their `ENCRYPTED_` prefix.
    pub names: Vec<String>,
    reasons: Vec<String>,
}

/// The environment for the app. `Debug` shows names only.
pub struct ChildEnv {
    vars: Vec<(OsString, OsString)>,
    decrypted: Vec<String>,
    skipped: Vec<String>,
}

impl std::fmt::Debug for ChildEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChildEnv")
            .field(
                "names",
                &self.vars.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .field("decrypted", &self.decrypted)
            .field("skipped", &self.skipped)
            .finish()
    }
}

impl ChildEnv {
    /// The variables, in order, for `Command::envs` after `env_clear`.
    pub fn vars(&self) -> impl Iterator<Item = (&OsStr, &OsStr)> {
        self.vars
            .iter()
            .map(|(k, v)| (k.as_os_str(), v.as_os_str()))
    }
    /// Names (without prefix) that were decrypted.
    pub fn decrypted(&self) -> &[String] {
        &self.decrypted
    }
    /// Names (with prefix) left out under `--allow-missing`.
    pub fn skipped(&self) -> &[String] {
        &self.skipped
    }
    /// Drops the values (they are copied into the child at spawn).
    pub fn clear(&mut self) {
        for (_, v) in self.vars.drain(..) {
            drop(Zeroizing::new(v.into_vec()));
        }
    }
}

impl Drop for ChildEnv {
    fn drop(&mut self) {
        self.clear();
    }
}

/// Whether `name` (as given to `--allow-missing`, with or without the
/// prefix) matches the variable `var` (without prefix).
fn allowed(allow_missing: &[String], var: &str) -> bool {
    allow_missing
        .iter()
        .any(|a| a.strip_prefix(ENCRYPTED_PREFIX).unwrap_or(a) == var)
}

/// Builds the app's environment from `vars` (normally `std::env::vars_os()`):
/// decrypts every `ENCRYPTED_*` with `store_key`, drops the ciphertexts and
/// the names in [`WITHHELD`] and `extra_withheld`.
pub fn prepare(
    vars: impl IntoIterator<Item = (OsString, OsString)>,
    store_key: &str,
    allow_missing: &[String],
    extra_withheld: &[&str],
) -> Result<ChildEnv, EnvError> {
    let mut plain: Vec<(OsString, OsString)> = Vec::new();
    let mut encrypted: Vec<(String, OsString)> = Vec::new();
    for (k, v) in vars {
        let name = k.to_string_lossy();
        if let Some(rest) = name.strip_prefix(ENCRYPTED_PREFIX) {
            if !rest.is_empty() {
                encrypted.push((rest.to_owned(), v));
            }
            continue;
        }
        if WITHHELD.contains(&name.as_ref()) || extra_withheld.contains(&name.as_ref()) {
            continue;
        }
        plain.push((k, v));
    }
    encrypted.sort_by(|a, b| a.0.cmp(&b.0));

    let mut names = Vec::new();
    let mut reasons = Vec::new();
    let mut skipped = Vec::new();
    let mut decrypted: Vec<(String, OsString)> = Vec::new();
    for (name, value) in encrypted {
        let full = format!("{ENCRYPTED_PREFIX}{name}");
        let result = match value.to_str() {
            None => Err("the value is not text".to_owned()),
            Some(value) => ssformat::env::decrypt(store_key, &name, value)
                .map_err(|e| e.to_string())
                .and_then(|plain| {
                    if plain.contains(&0) {
                        Err("the decrypted value contains a NUL byte".to_owned())
                    } else {
                        Ok(OsString::from_vec(plain.to_vec()))
                    }
                }),
        };
        match result {
            Ok(v) => decrypted.push((name, v)),
            Err(reason) if allowed(allow_missing, &name) => {
                tracing::warn!(variable = %full, "left out of the app's environment (--allow-missing): {reason}");
                skipped.push(full);
            }
            Err(reason) => {
                reasons.push(format!("{full}: {reason}"));
                names.push(full);
            }
        }
    }
    if !names.is_empty() {
        return Err(EnvError { names, reasons });
    }
    let mut vars: Vec<(OsString, OsString)> = plain
        .into_iter()
        .filter(|(k, _)| {
            let shadowed = decrypted.iter().any(|(n, _)| OsStr::new(n) == k);
            if shadowed {
                tracing::warn!(variable = %k.to_string_lossy(), "replaced by the decrypted ENCRYPTED_ value of the same name");
            }
            !shadowed
        })
        .collect();
    let names: Vec<String> = decrypted.iter().map(|(n, _)| n.clone()).collect();
    vars.extend(decrypted.into_iter().map(|(n, v)| (OsString::from(n), v)));
    Ok(ChildEnv {
        vars,
        decrypted: names,
        skipped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ssformat::env::{encrypt, Format};

    const KEY: &str = "k3y";

    fn os(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect()
    }

    fn get<'a>(env: &'a ChildEnv, name: &str) -> Option<&'a OsStr> {
        env.vars().find(|(k, _)| *k == name).map(|(_, v)| v)
    }

    #[test]
    fn decrypts_v0_and_v1_and_withholds_secrets() {
        let v0 = encrypt(Format::V0, KEY, "A", b"alpha", [1; 12]);
        let v1 = encrypt(Format::V1, KEY, "B", b"beta", [2; 12]);
        let env = prepare(
            os(&[
                ("ENCRYPTED_A", &v0),
                ("ENCRYPTED_B", &v1),
                ("B", "old"),
                ("PATH", "/bin"),
                ("MTLS_KEY", "secret"),
                ("MTLS_CERT", "public"),
                ("SECURE_STORE_ENVELOPE", "jwe"),
                ("STORE_PASSWORD", KEY),
            ]),
            KEY,
            &[],
            &[],
        )
        .unwrap();
        assert_eq!(get(&env, "A"), Some(OsStr::new("alpha")));
        assert_eq!(get(&env, "B"), Some(OsStr::new("beta")));
        assert_eq!(get(&env, "PATH"), Some(OsStr::new("/bin")));
        assert_eq!(get(&env, "MTLS_CERT"), Some(OsStr::new("public")));
        for gone in [
            "ENCRYPTED_A",
            "ENCRYPTED_B",
            "MTLS_KEY",
            "SECURE_STORE_ENVELOPE",
            "STORE_PASSWORD",
        ] {
            assert_eq!(get(&env, gone), None, "{gone}");
        }
        assert_eq!(env.vars().filter(|(k, _)| *k == "B").count(), 1);
        assert_eq!(env.decrypted(), ["A", "B"]);
        assert!(!format!("{env:?}").contains("alpha"));
    }

    #[test]
    fn fails_closed_naming_every_bad_variable() {
        let moved = encrypt(Format::V1, KEY, "OTHER", b"x", [3; 12]);
        let err = prepare(
            os(&[("ENCRYPTED_MOVED", &moved), ("ENCRYPTED_JUNK", "zz")]),
            KEY,
            &[],
            &[],
        )
        .unwrap_err();
        assert_eq!(err.names, ["ENCRYPTED_JUNK", "ENCRYPTED_MOVED"]);
        let line = err.to_string();
        assert!(!line.contains('\n'));
        assert!(line.contains("ENCRYPTED_JUNK") && line.contains("--allow-missing"));
    }

    #[test]
    fn allow_missing_skips_with_or_without_prefix() {
        let good = encrypt(Format::V1, KEY, "GOOD", b"g", [4; 12]);
        let env = prepare(
            os(&[
                ("ENCRYPTED_GOOD", &good),
                ("ENCRYPTED_BAD", "zz"),
                ("ENCRYPTED_UGLY", "v1.x"),
            ]),
            KEY,
            &["BAD".into(), "ENCRYPTED_UGLY".into()],
            &["EXTRA"],
        )
        .unwrap();
        assert_eq!(get(&env, "GOOD"), Some(OsStr::new("g")));
        assert_eq!(get(&env, "BAD"), None);
        assert_eq!(env.skipped(), ["ENCRYPTED_BAD", "ENCRYPTED_UGLY"]);
    }
}
