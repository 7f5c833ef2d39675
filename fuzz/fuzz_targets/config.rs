//! rclone config text from hostile bytes: the INI parser, the encrypted
//! config envelope, obscured passwords and the crypt settings reader.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ssformat::rclone::{config, obscure};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = obscure::reveal(text);
    let _ = config::decrypt_config(text, "fuzz");
    if let Ok(conf) = config::ConfigFile::parse(text) {
        // What we write must parse back to the same thing.
        let again = config::ConfigFile::parse(&conf.to_string()).expect("our own output parses");
        assert_eq!(again, conf);
        for section in conf.sections() {
            let _ = config::CryptSettings::from_section(section);
        }
    }
});
