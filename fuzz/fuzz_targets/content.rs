//! Crypt file content from hostile bytes: the header parser, the block
//! opener and the seekable reader must return errors, never panic, and a
//! reader must never yield more bytes than the size formula allows.
#![no_main]

use std::io::{Cursor, Read, Seek, SeekFrom};

use libfuzzer_sys::fuzz_target;
use ssformat::rclone::content::{self, BlockCipher, FileNonce, BLOCK_DATA_SIZE};
use ssformat::rclone::keys::CryptKeys;

fuzz_target!(|data: &[u8]| {
    let cipher = BlockCipher::new(&CryptKeys::from_bytes(&[1u8; 80]));
    let _ = content::parse_header(data);
    let _ = content::decrypted_size(data.len() as u64);

    let mut out = vec![0u8; BLOCK_DATA_SIZE];
    if data.len() >= 17 && data.len() <= 65536 + 16 {
        let _ = cipher.open_into(&FileNonce([0; 24]), 0, data, &mut out);
    }

    if let Ok(mut reader) = content::DecryptReader::new(cipher.clone(), Cursor::new(data)) {
        let mut sink = Vec::new();
        if reader.read_to_end(&mut sink).is_ok() {
            assert_eq!(Ok(sink.len() as u64), content::decrypted_size(data.len() as u64));
        }
        let at = data.first().copied().unwrap_or(0) as u64 * 1000;
        let _ = reader.seek(SeekFrom::Start(at));
        let _ = reader.read(&mut out[..100]);
        let _ = reader.seek(SeekFrom::End(-1));
    }
});
