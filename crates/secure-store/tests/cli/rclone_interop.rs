//! Interop with the real rclone, both ways, in every name mode and
//! encoding, both directory-name settings, with and without password2:
//! rclone reads every store we write (`rclone copy` out of our store), and
//! we read every store rclone writes (`rclone copy` into a store we made).
//! In CI a missing rclone fails these tests (see `harness::rclone`).

use std::path::Path;
use std::process::Command;

use super::harness::*;

fn rclone_in(store: &Path, rclone: &Path, home: &Path) -> Command {
    let mut cmd = Command::new(rclone);
    cmd.current_dir(store)
        .env_clear()
        .env("HOME", home)
        .env("RCLONE_CONFIG_PASS", KEY)
        .args(["--config", "encrypt.conf", "--ask-password=false", "-q"]);
    cmd
}

fn check_combo(rclone: &Path, args: &[&str], password2: bool) {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let src = tmp.path().join("src");
    sample_tree(&src);
    let salt = tmp.path().join("password2");
    std::fs::write(&salt, "salt · pepper 🧂\n").unwrap();
    let init = |store: &Path| {
        let mut cmd = ss(["store", "init"]);
        cmd.arg(store).args(args).env("STORE_PASSWORD", KEY);
        if password2 {
            cmd.arg("--password2-file").arg(&salt);
        }
        ok(&mut cmd);
    };

    // We write, rclone reads.
    let ours = tmp.path().join("ours");
    init(&ours);
    ok(ss(["store", "encrypt"])
        .arg(&src)
        .arg(&ours)
        .env("STORE_PASSWORD", KEY));
    let out = tmp.path().join("rclone-out");
    ok(rclone_in(&ours, rclone, &home)
        .args(["copy", "--create-empty-src-dirs", "encrypted_storage:"])
        .arg(&out));
    assert_same_tree(&src, &out);
    let cat = rclone_in(&ours, rclone, &home)
        .args(["cat", "encrypted_storage:sub/dir/deep.txt"])
        .output()
        .unwrap();
    assert!(cat.status.success());
    assert_eq!(
        cat.stdout,
        std::fs::read(src.join("sub/dir/deep.txt")).unwrap()
    );

    // rclone writes, we read.
    let theirs = tmp.path().join("theirs");
    init(&theirs);
    ok(rclone_in(&theirs, rclone, &home)
        .args(["copy", "--create-empty-src-dirs"])
        .arg(&src)
        .arg("encrypted_storage:"));
    let back = tmp.path().join("back");
    ok(ss(["store", "decrypt"])
        .arg(&theirs)
        .arg(&back)
        .env("STORE_PASSWORD", KEY));
    assert_same_tree(&src, &back);
    ok(ss(["store", "verify"])
        .arg(&theirs)
        .env("STORE_PASSWORD", KEY));
}

macro_rules! combo {
    ($name:ident, [$($arg:expr),*], $password2:expr) => {
        #[test]
        fn $name() {
            if let Some(rclone) = rclone() {
                check_combo(&rclone, &[$($arg),*], $password2);
            }
        }
    };
}

combo!(standard_base32, [], false);
combo!(standard_base32_password2, [], true);
combo!(standard_base64, ["--filename-encoding", "base64"], false);
combo!(
    standard_base32768,
    ["--filename-encoding", "base32768"],
    false
);
combo!(
    standard_base32_clear_dirs,
    ["--no-directory-name-encryption"],
    false
);
combo!(
    standard_base64_clear_dirs_password2,
    [
        "--filename-encoding",
        "base64",
        "--no-directory-name-encryption"
    ],
    true
);
combo!(obfuscate, ["--filename-encryption", "obfuscate"], false);
combo!(
    obfuscate_password2,
    ["--filename-encryption", "obfuscate"],
    true
);
combo!(names_off, ["--filename-encryption", "off"], false);
combo!(
    names_off_clear_dirs,
    [
        "--filename-encryption",
        "off",
        "--no-directory-name-encryption"
    ],
    false
);
