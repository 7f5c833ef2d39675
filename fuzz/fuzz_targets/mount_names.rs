//! FUSE path handling without a kernel: hostile names (any bytes, `/`,
//! `.`, `..`, NUL-free but otherwise arbitrary, very long) through the
//! mount's `View` (lookup, create + write, mkdir, rename, unlink, rmdir,
//! readdir) on real stores of every name mode: standard (base32, base64,
//! base32768), obfuscate and off.
//!
//! Input: byte 0 picks the store, then operations separated by NUL bytes
//! (a name never holds NUL): each is an op byte followed by the name.
//!
//! Besides "never a panic", it checks: nothing is ever written beside the
//! store's folder (path traversal through a name), a name `create` or
//! `mkdir` accepted is found again by `lookup` and listed by `readdir`
//! with the same name (the name encryption round-trips).
#![no_main]

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use libfuzzer_sys::fuzz_target;
use secure_store::crypt::store::{InitOptions, Store, StorePaths};
use secure_store::mount::view::{Kind, View, ROOT};
use secure_store::secret::StoreKey;
use ssformat::rclone::name::{NameEncoding, NameMode};

const MODES: [(NameMode, NameEncoding); 5] = [
    (NameMode::Standard, NameEncoding::Base32),
    (NameMode::Standard, NameEncoding::Base64),
    (NameMode::Standard, NameEncoding::Base32768),
    (NameMode::Obfuscate, NameEncoding::Base32),
    (NameMode::Off, NameEncoding::Base32),
];

struct Mounted {
    /// The store folder (config + storage); the parent of every write.
    root: PathBuf,
    view: View,
    runs: u32,
}

struct Fixture {
    dir: tempfile::TempDir,
    stores: Vec<Mutex<Option<Mounted>>>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| Fixture {
        dir: tempfile::tempdir().expect("tempdir"),
        stores: MODES.iter().map(|_| Mutex::new(None)).collect(),
    })
}

fn mount(base: &Path, which: usize) -> Mounted {
    let root = base.join(format!("store{which}"));
    let _ = std::fs::remove_dir_all(&root);
    let (mode, encoding) = MODES[which];
    let options = InitOptions {
        filename_encryption: mode,
        filename_encoding: encoding,
        directory_name_encryption: which % 2 == 0,
        password2: None,
    };
    let key = StoreKey::new("fuzz-store-key").expect("key");
    let store = Store::init(&StorePaths::new(&root, None, None), &key, &options).expect("store");
    let view = View::new(store, false).expect("view");
    Mounted {
        root,
        view,
        runs: 0,
    }
}

/// The entries of the fuzzer's temporary folder must stay the stores.
fn check_no_escape(base: &Path) {
    for entry in std::fs::read_dir(base).expect("base").flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        assert!(
            name.starts_with("store"),
            "written beside the stores: {name}"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let [which, ops @ ..] = data else {
        return;
    };
    let which = *which as usize % MODES.len();
    let f = fixture();
    let mut slot = f.stores[which].lock().unwrap_or_else(|p| p.into_inner());
    let fresh = match slot.as_ref() {
        Some(m) => m.runs > 500,
        None => true,
    };
    if fresh {
        if let Some(mut old) = slot.take() {
            old.view.shutdown();
        }
        *slot = Some(mount(f.dir.path(), which));
    }
    let Some(m) = slot.as_mut() else {
        return;
    };
    m.runs += 1;
    let view = &mut m.view;
    let mut dir = ROOT;
    let mut last: Option<Vec<u8>> = None;
    for op in ops.split(|&b| b == 0).take(16) {
        let [code, name @ ..] = op else {
            continue;
        };
        let os = OsStr::from_bytes(name);
        match code % 8 {
            0 => {
                if let Ok(attr) = view.lookup(dir, os) {
                    view.forget(attr.ino, 1);
                }
            }
            1 => {
                if let Ok((attr, fh)) = view.create(dir, os) {
                    let _ = view.write(fh, 0, name);
                    let _ = view.release(fh);
                    let found = view.lookup(dir, os).expect("a created file is found");
                    assert_eq!(found.kind, Kind::File);
                    assert_eq!(found.ino, attr.ino);
                    let listed = view.readdir(dir).expect("readdir");
                    assert!(
                        listed.iter().any(|e| e.name.as_bytes() == name),
                        "a created file is listed: {os:?} not in {:?}",
                        listed.iter().map(|e| &e.name).collect::<Vec<_>>()
                    );
                    view.forget(attr.ino, 2);
                }
            }
            2 => {
                if let Ok(attr) = view.mkdir(dir, os) {
                    let found = view.lookup(dir, os).expect("a new folder is found");
                    assert_eq!(found.kind, Kind::Dir);
                    view.forget(found.ino, 1);
                    dir = attr.ino;
                }
            }
            3 => {
                let _ = view.unlink(dir, os);
            }
            4 => {
                let _ = view.rmdir(dir, os);
            }
            5 => {
                if let Some(prev) = &last {
                    let _ = view.rename(dir, OsStr::from_bytes(prev), ROOT, os, code & 0x80 != 0);
                }
            }
            6 => {
                let _ = view.readdir(dir);
            }
            _ => dir = ROOT,
        }
        last = Some(name.to_vec());
    }
    check_no_escape(f.dir.path());
    let _ = &m.root;
});
