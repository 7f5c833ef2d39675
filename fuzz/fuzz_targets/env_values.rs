//! Encrypted env values from hostile strings, both formats: errors only.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ssformat::env;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = env::detect(text);
    let _ = env::decrypt("fuzz key", "NAME", text);
    let _ = env::v0::decrypt("62bca5ca7308305035f3f3a3ee270c026474ba430f79b17128021944d548807b", text);
});
