//! Certificate identity parsing from hostile bytes: the server reads the
//! device or admin identity out of every verified client certificate with
//! `Identity::from_der` (and the legacy one with `legacy_from_der`).
//! Errors only, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use secure_store::pki::identity::Identity;

fuzz_target!(|data: &[u8]| {
    if let Ok(id) = Identity::from_der(data) {
        let _ = id.serial();
        let _ = id.device_id();
        let _ = id.is_admin();
    }
    let _ = Identity::legacy_from_der(data);
});
