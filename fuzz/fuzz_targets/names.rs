//! Encrypted names from hostile strings, in every mode and encoding: errors
//! only, and anything that decrypts is one safe path segment.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ssformat::rclone::keys::CryptKeys;
use ssformat::rclone::name::{NameCipher, NameEncoding, NameMode};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let keys = CryptKeys::from_bytes(&[2u8; 80]);
    for mode in [NameMode::Standard, NameMode::Obfuscate, NameMode::Off] {
        for encoding in [NameEncoding::Base32, NameEncoding::Base64, NameEncoding::Base32768] {
            let names = NameCipher::new(&keys, mode, encoding, true);
            for plain in [names.decrypt_file_name(text), names.decrypt_dir_name(text)].into_iter().flatten() {
                assert!(!plain.is_empty() && plain != "." && plain != "..");
                assert!(!plain.contains('/') && !plain.contains('\0'));
            }
            let _ = names.decrypt_path(text, false);
        }
    }
});
