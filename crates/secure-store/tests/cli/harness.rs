//! A tiny test harness: a temp folder and a way to run the binary with a
//! clean environment and look at what it did.

use std::ffi::OsStr;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub const KEY: &str = "0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9";

/// The conformance data beside the project root. Its absence is a failure.
pub fn vectors() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vectors");
    assert!(
        dir.is_dir(),
        "conformance vectors missing at {}: clone the project with shared/ beside it",
        dir.display()
    );
    dir
}

/// A command running the binary under test with an empty environment
/// (PATH and HOME only), so nothing from the developer's shell leaks in.
pub fn ss<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_secure-store"));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", std::env::temp_dir())
        .stdin(Stdio::null())
        .args(args);
    cmd
}

/// What a finished command did.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

pub fn run(cmd: &mut Command) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("the binary runs");
    Run {
        code: status.code(),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// Runs and asserts success; returns stdout.
pub fn ok(cmd: &mut Command) -> String {
    let r = run(cmd);
    assert_eq!(
        r.code,
        Some(0),
        "expected success: {cmd:?}\nstdout: {}\nstderr: {}",
        r.stdout,
        r.stderr
    );
    r.stdout
}

/// Runs and asserts failure with exit code 1 and one `error:` line naming
/// `needle`; returns stderr.
pub fn fails(cmd: &mut Command, needle: &str) -> String {
    let r = run(cmd);
    assert_eq!(
        r.code,
        Some(1),
        "expected exit 1: {cmd:?}\nstdout: {}\nstderr: {}",
        r.stdout,
        r.stderr
    );
    let errors: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert!(!errors.is_empty(), "no error line: {}", r.stderr);
    assert!(
        r.stderr.contains(needle),
        "stderr lacks {needle:?}: {}",
        r.stderr
    );
    assert!(!r.stderr.contains("panicked"), "panic: {}", r.stderr);
    r.stderr
}

/// `secure-store store ARGS` with the test key in `STORE_PASSWORD`.
pub fn store_cmd(args: &[&str]) -> Command {
    let mut cmd = ss(["store"]);
    cmd.args(args).env("STORE_PASSWORD", KEY);
    cmd
}

/// Runs `cmd` with `input` on its stdin; its stdout and stderr are captured.
pub fn run_stdin(cmd: &mut Command, input: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

/// Writes a file, creating parent folders.
pub fn write(path: &Path, bytes: &[u8]) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, bytes).unwrap();
}

/// Deterministic pseudo-random bytes (no RNG dependency, incompressible enough).
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A source tree with the edge cases: sizes around the 64 KiB block,
/// nested and Unicode folders, odd names, an empty folder.
pub fn sample_tree(root: &Path) {
    let b = 65536;
    for (name, len) in [
        ("empty.txt", 0),
        ("one.bin", 1),
        ("block-1.bin", b - 1),
        ("block.bin", b),
        ("block+1.bin", b + 1),
        ("big.bin", 3 * b * 16 + 12345),
        ("sub/dir/deep.txt", 100),
        ("Ünïcödé dir/日本語.txt", 33),
        ("spaces & symbols !#$%'()+,;=@[]^_`{}~.txt", 7),
        (".hidden", 5),
        ("report-v2021-01-02-150405-000.txt", 9),
    ] {
        write(
            &root.join(name),
            &noise(len, len as u64 + name.len() as u64),
        );
    }
    fs::create_dir_all(root.join("empty dir")).unwrap();
}

/// Every file under `root`, relative path → content, and every folder.
pub fn snapshot(root: &Path) -> (Vec<String>, Vec<(String, Vec<u8>)>) {
    let mut dirs = Vec::new();
    let mut files = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if path.is_dir() {
                dirs.push(rel);
                stack.push(path);
            } else {
                files.push((rel, fs::read(&path).unwrap()));
            }
        }
    }
    dirs.sort();
    files.sort();
    (dirs, files)
}

/// Asserts two trees hold the same folders and files with the same bytes.
pub fn assert_same_tree(a: &Path, b: &Path) {
    let (da, fa) = snapshot(a);
    let (db, fb) = snapshot(b);
    assert_eq!(
        da,
        db,
        "folders differ between {} and {}",
        a.display(),
        b.display()
    );
    let names_a: Vec<_> = fa.iter().map(|f| &f.0).collect();
    let names_b: Vec<_> = fb.iter().map(|f| &f.0).collect();
    assert_eq!(names_a, names_b, "files differ");
    for ((name, x), (_, y)) in fa.iter().zip(&fb) {
        assert!(x == y, "content of {name} differs");
    }
}

/// Unix permission bits of a path.
pub fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// The real rclone, or `None` (with a message) when it is missing and
/// interop is not required. In CI a missing rclone fails the test.
pub fn rclone() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("rclone"))
            .find(|p| p.is_file())
    });
    let required = std::env::var("SECURE_STORE_REQUIRE_INTEROP").is_ok_and(|v| v == "1")
        || std::env::var("CI").is_ok_and(|v| v == "true");
    match found {
        Some(p) => Some(p),
        None if required => panic!(
            "rclone is not installed and interop tests are required (CI): apt-get install rclone"
        ),
        None => {
            eprintln!("SKIPPED: rclone is not installed (scripts/test installs it)");
            None
        }
    }
}

/// A tool on PATH, or `None` (skip) unless interop is required.
pub fn tool(name: &str) -> Option<PathBuf> {
    tool_in(name, name)
}

/// [`tool`] for a command that Debian ships in `package`.
pub fn tool_in(name: &str, package: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    });
    let required = std::env::var("SECURE_STORE_REQUIRE_INTEROP").is_ok_and(|v| v == "1")
        || std::env::var("CI").is_ok_and(|v| v == "true");
    match found {
        Some(p) => Some(p),
        None if required => {
            panic!(
                "{name} is not installed and interop tests are required: apt-get install {package}"
            )
        }
        None => {
            eprintln!("SKIPPED: {name} is not installed (apt-get install {package})");
            None
        }
    }
}
