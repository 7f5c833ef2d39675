//! `secure-store mount` against the real kernel: every POSIX operation the
//! mount supports, through std::fs, then stock rclone reading what was
//! written; kill -9 during a write; wrong key; daemon mode; read-only.
//! Every mount is taken down by a guard, even when an assertion fails, and
//! every wait has a deadline. Needs /dev/fuse and fusermount3: missing
//! ones fail the tests under SECURE_STORE_REQUIRE_INTEROP=1 (CI) and skip
//! them otherwise.

use std::fs::{self, File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::harness::*;

/// Whether FUSE can be used here; panics when it must be (CI).
pub(super) fn fuse_ready() -> bool {
    let fusermount = std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|p| p.join("fusermount3").is_file())
    });
    let dev = Path::new("/dev/fuse").exists();
    let required = std::env::var("SECURE_STORE_REQUIRE_INTEROP").is_ok_and(|v| v == "1")
        || std::env::var("CI").is_ok_and(|v| v == "true");
    match (fusermount, dev) {
        (true, true) => true,
        _ if required => panic!(
            "FUSE is required for these tests (CI): fusermount3 present: {fusermount}, /dev/fuse present: {dev}; apt-get install fuse3 and run with /dev/fuse"
        ),
        _ => {
            eprintln!("SKIPPED: no FUSE here (fusermount3: {fusermount}, /dev/fuse: {dev})");
            false
        }
    }
}

fn is_mountpoint(dir: &Path) -> bool {
    match (fs::metadata(dir), fs::metadata(dir.parent().unwrap())) {
        (Ok(a), Ok(b)) => a.dev() != b.dev(),
        // ENOTCONN: a dead mount is still a mount point.
        (Err(_), _) => true,
        _ => false,
    }
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A foreground `secure-store mount` child. Dropping it kills the child
/// and clears the mount point, so a failing test leaves nothing mounted.
pub(super) struct MountProc {
    child: Option<Child>,
    dir: PathBuf,
}

impl MountProc {
    pub(super) fn start(store: &Path, dir: &Path, extra: &[&str]) -> MountProc {
        let mut cmd = ss(["mount"]);
        cmd.arg(store)
            .arg(dir)
            .args(extra)
            .env("STORE_PASSWORD", KEY)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        let child = cmd.spawn().expect("the binary runs");
        let mut proc = MountProc {
            child: Some(child),
            dir: dir.to_owned(),
        };
        wait_until("the mount to appear", || {
            if let Some(Ok(Some(status))) = proc.child.as_mut().map(|c| c.try_wait()) {
                panic!("mount exited early: {status}");
            }
            is_mountpoint(dir) && fs::read_dir(dir).is_ok()
        });
        proc
    }

    /// SIGTERM, then the exit code once it has unmounted.
    pub(super) fn stop(mut self) -> Option<i32> {
        let mut child = self.child.take().unwrap();
        signal(child.id(), "TERM");
        let mut status = None;
        wait_until("the mount process to exit", || {
            status = child.try_wait().unwrap();
            status.is_some()
        });
        assert!(!is_mountpoint(&self.dir), "still mounted after exit");
        status.unwrap().code()
    }

    /// SIGKILL: the mount is left behind, stale (the caller clears it).
    fn kill9(mut self) {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        self.dir = PathBuf::new();
    }
}

impl Drop for MountProc {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if !self.dir.as_os_str().is_empty() {
            clear_mount(&self.dir);
        }
    }
}

/// Clears the mount at its path when dropped.
struct Clear<'a>(&'a Path);

impl Drop for Clear<'_> {
    fn drop(&mut self) {
        clear_mount(self.0);
    }
}

fn clear_mount(dir: &Path) {
    let _ = Command::new("fusermount3")
        .arg("-uz")
        .arg(dir)
        .stderr(Stdio::null())
        .status();
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig} {pid}");
}

/// A store filled with the sample tree; returns (tmp, source, store, mount dir).
fn setup() -> (tempfile::TempDir, PathBuf, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    sample_tree(&src);
    let store = tmp.path().join("store");
    ok(ss(["store", "init"]).arg(&store).env("STORE_PASSWORD", KEY));
    ok(ss(["store", "encrypt"])
        .arg(&src)
        .arg(&store)
        .env("STORE_PASSWORD", KEY));
    let mnt = tmp.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    (tmp, src, store, mnt)
}

fn rclone_copy_out(store: &Path, out: &Path, home: &Path) {
    let rclone = rclone().expect("rclone (checked by the caller)");
    fs::create_dir_all(home).unwrap();
    let status = Command::new(rclone)
        .current_dir(store)
        .env_clear()
        .env("HOME", home)
        .env("RCLONE_CONFIG_PASS", KEY)
        .args([
            "--config",
            "encrypt.conf",
            "--ask-password=false",
            "-q",
            "copy",
            "--create-empty-src-dirs",
            "encrypted_storage:",
        ])
        .arg(out)
        .status()
        .unwrap();
    assert!(status.success(), "rclone copy failed");
}

#[test]
fn mount_posix_operations_then_stock_rclone_reads_everything() {
    if !fuse_ready() || rclone().is_none() {
        return;
    }
    let (tmp, src, store, mnt) = setup();
    let m = MountProc::start(&store, &mnt, &[]);

    // Read: everything encrypted before the mount reads back the same.
    assert_same_tree(&src, &mnt);
    let meta = fs::metadata(mnt.join("big.bin")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(
        fs::metadata(mnt.join("sub")).unwrap().permissions().mode() & 0o777,
        0o700
    );

    // Random-offset reads.
    let big = fs::read(src.join("big.bin")).unwrap();
    let f = File::open(mnt.join("big.bin")).unwrap();
    for (off, len) in [
        (0usize, 10usize),
        (65535, 2),
        (65536, 65536),
        (123_457, 300_000),
        (big.len() - 3, 3),
        (big.len() / 2, 1),
    ] {
        let mut buf = vec![0u8; len];
        f.read_exact_at(&mut buf, off as u64).unwrap();
        assert!(buf == big[off..off + len], "read at {off}");
    }
    drop(f);
    // Several readers of one file at once (large reads run on workers).
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let path = mnt.join("big.bin");
            std::thread::spawn(move || fs::read(path).unwrap())
        })
        .collect();
    for r in readers {
        assert!(r.join().unwrap() == big, "concurrent read differs");
    }

    // Write a new multi-block file; overwrite an old one.
    let new = noise(5 * 65536 + 77, 42);
    fs::write(mnt.join("new.bin"), &new).unwrap();
    assert_eq!(fs::read(mnt.join("new.bin")).unwrap(), new);
    fs::write(mnt.join("one.bin"), b"replaced").unwrap();

    // Append.
    let mut f = OpenOptions::new()
        .append(true)
        .open(mnt.join("block.bin"))
        .unwrap();
    f.write_all(b"appended tail").unwrap();
    drop(f);
    let mut expect_block = fs::read(src.join("block.bin")).unwrap();
    expect_block.extend_from_slice(b"appended tail");
    assert_eq!(fs::read(mnt.join("block.bin")).unwrap(), expect_block);

    // Overwrite in the middle, then seek back (a write behind the window).
    let mut f = OpenOptions::new()
        .write(true)
        .open(mnt.join("new.bin"))
        .unwrap();
    f.seek(SeekFrom::Start(200_000)).unwrap();
    f.write_all(b"MIDDLE").unwrap();
    f.seek(SeekFrom::Start(3)).unwrap();
    f.write_all(b"START").unwrap();
    drop(f);
    let mut expect_new = new.clone();
    expect_new[200_000..200_006].copy_from_slice(b"MIDDLE");
    expect_new[3..8].copy_from_slice(b"START");
    assert_eq!(fs::read(mnt.join("new.bin")).unwrap(), expect_new);

    // Truncate: shrink, and grow with zeros.
    let f = OpenOptions::new()
        .write(true)
        .open(mnt.join("block+1.bin"))
        .unwrap();
    f.set_len(1000).unwrap();
    drop(f);
    assert_eq!(fs::metadata(mnt.join("block+1.bin")).unwrap().len(), 1000);
    let mut expect_trunc = fs::read(src.join("block+1.bin")).unwrap();
    expect_trunc.truncate(1000);
    assert_eq!(fs::read(mnt.join("block+1.bin")).unwrap(), expect_trunc);
    OpenOptions::new()
        .write(true)
        .open(mnt.join("one.bin"))
        .unwrap()
        .set_len(70_000)
        .unwrap();
    let mut expect_one = b"replaced".to_vec();
    expect_one.resize(70_000, 0);
    assert_eq!(fs::read(mnt.join("one.bin")).unwrap(), expect_one);

    // Rename a file (replacing another) and a folder; unlink; mkdir; rmdir.
    fs::rename(mnt.join("block-1.bin"), mnt.join("sub/moved.bin")).unwrap();
    fs::rename(mnt.join("sub/moved.bin"), mnt.join(".hidden")).unwrap();
    fs::rename(mnt.join("sub"), mnt.join("sub renamed")).unwrap();
    assert!(!mnt.join("sub").exists());
    assert!(mnt.join("sub renamed/dir/deep.txt").is_file());
    fs::remove_file(mnt.join("empty.txt")).unwrap();
    assert!(!mnt.join("empty.txt").exists());
    fs::create_dir(mnt.join("made/")).unwrap();
    fs::create_dir(mnt.join("made/inner")).unwrap();
    fs::write(mnt.join("made/inner/f.txt"), b"inner").unwrap();
    fs::create_dir(mnt.join("gone")).unwrap();
    fs::remove_dir(mnt.join("gone")).unwrap();
    fs::remove_dir(mnt.join("empty dir")).unwrap();
    let err = fs::remove_dir(mnt.join("made")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOTEMPTY), "{err}");

    // Two writers on different files at once.
    let writers: Vec<_> = (0..2u64)
        .map(|i| {
            let path = mnt.join(format!("parallel-{i}.bin"));
            std::thread::spawn(move || {
                let data = noise(3 * 1024 * 1024 + 5, 100 + i);
                let mut f = File::create(&path).unwrap();
                for chunk in data.chunks(100_000) {
                    f.write_all(chunk).unwrap();
                }
                f.sync_all().unwrap();
                drop(f);
                data
            })
        })
        .collect();
    let parallel: Vec<Vec<u8>> = writers.into_iter().map(|t| t.join().unwrap()).collect();
    for (i, data) in parallel.iter().enumerate() {
        assert!(fs::read(mnt.join(format!("parallel-{i}.bin"))).unwrap() == *data);
    }

    // What the mount shows now is what rclone must read after unmount.
    let seen = snapshot(&mnt);
    assert_eq!(m.stop(), Some(0));
    let storage = store.join("storage");
    for entry in fs::read_dir(&storage).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(
            !name.starts_with(".secure-store-tmp"),
            "temp file left: {name}"
        );
    }
    let out = tmp.path().join("rclone-out");
    rclone_copy_out(&store, &out, &tmp.path().join("home"));
    let theirs = snapshot(&out);
    assert_eq!(seen.0, theirs.0, "folders");
    assert_eq!(seen.1.len(), theirs.1.len(), "file count");
    for ((a, da), (b, db)) in seen.1.iter().zip(&theirs.1) {
        assert_eq!(a, b);
        assert!(
            da == db,
            "{a}: rclone reads other bytes than the mount showed"
        );
    }
    assert_eq!(fs::read(out.join("new.bin")).unwrap(), expect_new);
    assert_eq!(
        fs::read(out.join(".hidden")).unwrap(),
        fs::read(src.join("block-1.bin")).unwrap()
    );
    assert_eq!(fs::read(out.join("made/inner/f.txt")).unwrap(), b"inner");
    ok(ss(["store", "verify"])
        .arg(&store)
        .env("STORE_PASSWORD", KEY));
}

#[test]
fn mount_kill_9_during_a_write_leaves_every_old_file_intact() {
    if !fuse_ready() {
        return;
    }
    let (_tmp, src, store, mnt) = setup();
    let _guard = Clear(&mnt);
    let m = MountProc::start(&store, &mnt, &[]);
    // Overwrite an existing file and write a new one, both left unfinished.
    let mut over = OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(mnt.join("big.bin"))
        .unwrap();
    let mut fresh = File::create(mnt.join("fresh.bin")).unwrap();
    let chunk = noise(1 << 20, 5);
    for _ in 0..8 {
        over.write_all(&chunk).unwrap();
        fresh.write_all(&chunk).unwrap();
    }
    m.kill9();
    // The writer sees the dead mount; nothing it does reaches the store.
    assert!(over.write_all(&chunk).is_err() || over.sync_all().is_err());
    drop(over);
    drop(fresh);
    assert!(is_mountpoint(&mnt), "a killed mount stays behind, stale");

    // Without --force-unmount: a clear error; with it, a clean mount.
    let r = run(ss(["mount"])
        .arg(&store)
        .arg(&mnt)
        .env("STORE_PASSWORD", KEY)
        .stdout(Stdio::null()));
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(r.stderr.contains("--force-unmount"), "{}", r.stderr);

    let m = MountProc::start(&store, &mnt, &["--force-unmount"]);
    // Every file that existed before is intact (big.bin too: the old one).
    let mine = snapshot(&mnt);
    let before = snapshot(&src);
    assert_eq!(mine.0, before.0);
    for (path, data) in &before.1 {
        let now = mine.1.iter().find(|(p, _)| p == path);
        assert!(
            now.is_some_and(|(_, d)| d == data),
            "{path} changed after kill -9"
        );
    }
    // The new file appeared empty at create(2) and never got its content.
    assert_eq!(fs::metadata(mnt.join("fresh.bin")).unwrap().len(), 0);
    // The next mount removed the temporary files.
    for entry in fs::read_dir(store.join("storage")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(!name.starts_with(".secure-store-tmp"), "left: {name}");
    }
    assert_eq!(m.stop(), Some(0));
    ok(ss(["store", "verify"])
        .arg(&store)
        .env("STORE_PASSWORD", KEY));
}

#[test]
fn mount_with_a_wrong_key_fails_and_mounts_nothing() {
    if !fuse_ready() {
        return;
    }
    let (_tmp, _src, store, mnt) = setup();
    let r = run(ss(["mount"])
        .arg(&store)
        .arg(&mnt)
        .env("STORE_PASSWORD", "not the right key at all")
        .stdout(Stdio::null()));
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(
        r.stderr.contains("the store key does not open"),
        "{}",
        r.stderr
    );
    assert!(!is_mountpoint(&mnt));
    // The daemon form reports the same error and exits 1, mounting nothing.
    let r = run(ss(["mount", "--daemon"])
        .arg(&store)
        .arg(&mnt)
        .env("STORE_PASSWORD", "not the right key at all"));
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(
        r.stderr.contains("the store key does not open"),
        "{}",
        r.stderr
    );
    assert!(!is_mountpoint(&mnt));
}

#[test]
fn mount_daemon_returns_once_live_and_read_only_refuses_writes() {
    if !fuse_ready() {
        return;
    }
    let (_tmp, src, store, mnt) = setup();
    let _guard = Clear(&mnt);
    let r = run(ss(["mount", "--daemon", "--read-only"])
        .arg(&store)
        .arg(&mnt)
        .env("STORE_PASSWORD", KEY));
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    // Live as soon as the command returned.
    assert!(is_mountpoint(&mnt));
    assert_eq!(
        fs::read(mnt.join("sub/dir/deep.txt")).unwrap(),
        fs::read(src.join("sub/dir/deep.txt")).unwrap()
    );
    let err = fs::write(mnt.join("x"), b"x").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EROFS), "{err}");
    let pid: u32 = r
        .stderr
        .split("pid ")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .and_then(|s| s.parse().ok())
        .expect("the daemon's pid on stderr");
    signal(pid, "TERM");
    wait_until("the daemon to unmount", || !is_mountpoint(&mnt));
}
