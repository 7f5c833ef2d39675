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

// On-disk names. rclone's crypt encrypts names in rclone's internal
// "Standard" encoding, and its local backend turns those into disk names
// and back (`ssformat::rclone::local`, docs/formats/rclone-names.md, "On-disk
// names"). base32768 text holds control pictures (U+2401..=U+241F), which
// rclone stores as raw control bytes; plaintext names with control
// characters, control pictures, `‛`, `／` or `．` are encrypted in their
// Standard form.

/// `rclone lsf -R` of `remote` (a local folder or `encrypted_storage:`),
/// sorted. Names are printed in rclone's Standard encoding, one a line.
fn lsf(store: &Path, rclone: &Path, home: &Path, remote: &std::ffi::OsStr) -> Vec<String> {
    let out = rclone_in(store, rclone, home)
        .args(["lsf", "-R"])
        .arg(remote)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "rclone lsf failed: {stderr}");
    assert!(stderr.trim().is_empty(), "rclone lsf complained: {stderr}");
    let mut lines: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    lines.sort();
    lines
}

fn init_store(store: &Path, args: &[&str]) {
    ok(ss(["store", "init"])
        .arg(store)
        .args(args)
        .env("STORE_PASSWORD", KEY));
}

fn encrypt_into(src: &Path, store: &Path) {
    ok(ss(["store", "encrypt"])
        .arg(src)
        .arg(store)
        .env("STORE_PASSWORD", KEY));
}

fn decrypt_from(store: &Path, dest: &Path) {
    ok(ss(["store", "decrypt"])
        .arg(store)
        .arg(dest)
        .env("STORE_PASSWORD", KEY));
}

/// 700 files and 100 folders with plain ASCII names, 300 short and 500
/// long (16 and 48 bytes encrypted: 9 and 26 base32768 characters, each a
/// control picture with probability 31/32768). About 15 of the 800
/// encrypted names hold one, so the chance that none does is below one in
/// a million.
fn many_names(src: &Path) {
    for i in 0..300 {
        write(&src.join(format!("n{i}")), &noise(i % 37, i as u64));
    }
    for i in 0..300 {
        write(
            &src.join(format!("n{i:04}-a-name-long-enough-for-three-eme-blocks")),
            &noise(i % 41, 1000 + i as u64),
        );
    }
    for i in 0..100 {
        write(
            &src.join(format!("folder {i:03} with a name of three EME blocks"))
                .join(format!(
                    "file {i:03} in a folder, three EME blocks long.txt"
                )),
            &noise(i, 2000 + i as u64),
        );
    }
}

/// Every entry under `root`, deepest first.
fn entries_deepest_first(root: &Path) -> Vec<std::path::PathBuf> {
    let mut all = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path.clone());
            }
            all.push(path);
        }
    }
    all.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    all
}

fn has_control(name: &str) -> bool {
    name.chars().any(|c| ('\u{01}'..='\u{1F}').contains(&c))
}

fn has_control_picture(name: &str) -> bool {
    name.chars().any(|c| ('\u{2401}'..='\u{241F}').contains(&c))
}

/// The names (last segments) of every entry under `root`, sorted.
fn names_under(root: &Path) -> Vec<String> {
    let mut names: Vec<String> = entries_deepest_first(root)
        .iter()
        .map(|p| p.file_name().unwrap().to_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn base32768_every_name_reaches_rclone_and_back() {
    let Some(rclone) = rclone() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let src = tmp.path().join("src");
    many_names(&src);
    let base32768 = ["--filename-encoding", "base32768"];

    // We write, rclone lists and reads every name.
    let ours = tmp.path().join("ours");
    init_store(&ours, &base32768);
    encrypt_into(&src, &ours);
    let stored = names_under(&ours.join("storage"));
    assert_eq!(stored.len(), 800);
    assert!(
        stored.iter().any(|n| has_control(n)),
        "no encrypted name with a control character: the test proves nothing"
    );
    assert!(
        !stored.iter().any(|n| has_control_picture(n)),
        "a control picture on disk: rclone cannot read that name"
    );
    let expected = lsf(&ours, &rclone, &home, src.as_os_str());
    assert_eq!(expected.len(), 800);
    assert_eq!(
        lsf(&ours, &rclone, &home, "encrypted_storage:".as_ref()),
        expected
    );
    let out = tmp.path().join("rclone-out");
    ok(rclone_in(&ours, &rclone, &home)
        .args(["copy", "encrypted_storage:"])
        .arg(&out));
    assert_same_tree(&src, &out);

    // rclone writes into a fresh store of ours, we read every name.
    let theirs = tmp.path().join("theirs");
    init_store(&theirs, &base32768);
    ok(rclone_in(&theirs, &rclone, &home)
        .arg("copy")
        .arg(&src)
        .arg("encrypted_storage:"));
    assert!(names_under(&theirs.join("storage"))
        .iter()
        .any(|n| has_control(n)));
    let back = tmp.path().join("back");
    decrypt_from(&theirs, &back);
    assert_same_tree(&src, &back);
    ok(ss(["store", "verify"])
        .arg(&theirs)
        .env("STORE_PASSWORD", KEY));
}

/// Plaintext names that rclone's local backend encodes: each is a file at
/// the top and in a folder with an awkward name of its own.
const AWKWARD: &[&str] = &[
    "a\x0cb",
    "\x01\x1f",
    "tab\there",
    "a␌b",
    "a␁␟b",
    "a‛‛b",
    "a␀b",
    "a‛␀b",
    "a／b",
    "a‛／b",
    "．",
    "．．",
    "‛．",
    "x\x7f",
    "a␡b",
    "plain.txt",
];

fn awkward_tree(src: &Path, off: bool) {
    // In mode off `‛．` becomes `‛．.bin`, where the quote quotes nothing
    // (see the last test).
    let names = AWKWARD.iter().filter(|n| !(off && **n == "‛．"));
    for (i, name) in names.enumerate() {
        write(&src.join(name), &noise(10 + i, i as u64));
        write(
            &src.join("dir\x0c␌‛‛／").join(name),
            &noise(20 + i, 100 + i as u64),
        );
    }
}

fn check_awkward(rclone: &Path, args: &[&str]) {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let src = tmp.path().join("src");
    let off = args.contains(&"off");
    awkward_tree(&src, off);

    // We write, rclone reads: same names as rclone sees in the source.
    let ours = tmp.path().join("ours");
    init_store(&ours, args);
    encrypt_into(&src, &ours);
    let expected = lsf(&ours, rclone, &home, src.as_os_str());
    assert_eq!(expected.len(), 2 * (AWKWARD.len() - usize::from(off)) + 1);
    assert_eq!(
        lsf(&ours, rclone, &home, "encrypted_storage:".as_ref()),
        expected
    );
    let out = tmp.path().join("rclone-out");
    ok(rclone_in(&ours, rclone, &home)
        .args(["copy", "encrypted_storage:"])
        .arg(&out));
    assert_same_tree(&src, &out);
    let back = tmp.path().join("back");
    decrypt_from(&ours, &back);
    assert_same_tree(&src, &back);

    // rclone writes, we read.
    let theirs = tmp.path().join("theirs");
    init_store(&theirs, args);
    ok(rclone_in(&theirs, rclone, &home)
        .arg("copy")
        .arg(&src)
        .arg("encrypted_storage:"));
    let back = tmp.path().join("back-theirs");
    decrypt_from(&theirs, &back);
    assert_same_tree(&src, &back);
    // Both stores hold the same names, in mode off even on disk.
    if off {
        assert_eq!(
            names_under(&ours.join("storage")),
            names_under(&theirs.join("storage"))
        );
    }
}

#[test]
fn awkward_names_standard() {
    if let Some(rclone) = rclone() {
        check_awkward(&rclone, &[]);
    }
}

#[test]
fn awkward_names_standard_base32768() {
    if let Some(rclone) = rclone() {
        check_awkward(&rclone, &["--filename-encoding", "base32768"]);
    }
}

#[test]
fn awkward_names_off() {
    if let Some(rclone) = rclone() {
        check_awkward(&rclone, &["--filename-encryption", "off"]);
    }
}

/// A `‛` (U+201B) that quotes nothing cannot be kept by rclone at all: its
/// local backend reads `a‛b` as `a‛‛b` (and then fails to open it), so no
/// stored name would come back as `a‛b`. Likewise, in mode off, `‛．` is
/// stored as `‛．.bin`, which rclone reads back as `‛‛．`. We refuse such a
/// source name instead of storing it under another name.
#[test]
fn a_stray_quote_is_refused_because_rclone_cannot_keep_it() {
    let Some(rclone) = rclone() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let src = tmp.path().join("src");
    write(&src.join("a‛b"), b"x");
    let store = tmp.path().join("store");
    init_store(&store, &[]);
    assert_eq!(lsf(&store, &rclone, &home, src.as_os_str()), ["a‛‛b"]);
    fails(
        ss(["store", "encrypt"])
            .arg(&src)
            .arg(&store)
            .env("STORE_PASSWORD", KEY),
        "rclone cannot keep this name",
    );
    assert!(names_under(&store.join("storage")).is_empty());

    let src = tmp.path().join("src-off");
    write(&src.join("‛．"), b"x");
    let off = tmp.path().join("off");
    init_store(&off, &["--filename-encryption", "off"]);
    ok(rclone_in(&off, &rclone, &home)
        .arg("copy")
        .arg(&src)
        .arg("encrypted_storage:"));
    assert_eq!(names_under(&off.join("storage")), ["‛‛．.bin"]);
    let out = tmp.path().join("rclone-out");
    ok(rclone_in(&off, &rclone, &home)
        .args(["copy", "encrypted_storage:"])
        .arg(&out));
    assert_eq!(names_under(&out), ["‛‛．"]);
    let off2 = tmp.path().join("off2");
    init_store(&off2, &["--filename-encryption", "off"]);
    fails(
        ss(["store", "encrypt"])
            .arg(&src)
            .arg(&off2)
            .env("STORE_PASSWORD", KEY),
        "rclone cannot keep the stored form of this name",
    );
}
