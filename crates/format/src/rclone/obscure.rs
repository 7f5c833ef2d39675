//! rclone's "obscured" config values (`rclone obscure` / `rclone reveal`).
//!
//! Obscuring is *not* encryption: the key is a constant compiled into every
//! rclone, so anybody holding an obscured value can reveal it. It only keeps
//! passwords from being read over a shoulder. The format (rclone
//! `fs/config/obscure/obscure.go`):
//!
//! ```text
//! base64url_nopad( iv[16] ‖ AES-256-CTR(key = fixed, counter = iv)(clear) )
//! ```
//!
//! The CTR counter is the whole 16-byte IV as one big-endian integer, as Go's
//! `cipher.NewCTR` does. Revealing uses Go's lenient base64 decoder: `\r`
//! and `\n` are skipped and unused bits of the last character are ignored.
//! Vectors: `shared/vectors/rclone/obscure/obscure.tsv`.

use aes::cipher::{generic_array::GenericArray, BlockEncrypt, KeyInit};
use aes::Aes256;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::{alphabet, Engine as _};
use zeroize::{Zeroize, Zeroizing};

/// The AES-256 key every rclone uses to obscure config values.
const OBSCURE_KEY: [u8; 32] = [
    0x9c, 0x93, 0x5b, 0x48, 0x73, 0x0a, 0x55, 0x4d, 0x6b, 0xfd, 0x7c, 0x63, 0xc8, 0x86, 0xa9, 0x2b,
    0xd3, 0x90, 0x19, 0x8e, 0xb8, 0x12, 0x8a, 0xfb, 0xf4, 0xde, 0x16, 0x2b, 0x8b, 0x95, 0xf6, 0x38,
];

/// Go's `base64.RawURLEncoding`: URL-safe alphabet, no padding, and (being
/// non-strict) unused trailing bits are accepted.
pub(crate) const RAW_URL_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(true),
);

/// Go's base64 decoders skip carriage returns and line feeds anywhere.
pub(crate) fn without_newlines(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains(['\r', '\n']) {
        text.chars().filter(|&c| c != '\r' && c != '\n').collect()
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

/// Why a value could not be revealed. Says nothing about the value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ObscureError {
    /// Not URL-safe base64 without padding.
    #[error("not an obscured value (bad base64)")]
    BadBase64,
    /// Shorter than the 16-byte IV.
    #[error("not an obscured value (too short)")]
    TooShort,
    /// The revealed bytes are not UTF-8 text.
    #[error("the revealed value is not UTF-8 text")]
    NotUtf8,
}

/// XORs `data` with AES-256-CTR keystream under rclone's fixed key.
fn apply_keystream(data: &mut [u8], iv: [u8; 16]) {
    let cipher = Aes256::new(GenericArray::from_slice(&OBSCURE_KEY));
    let mut counter = u128::from_be_bytes(iv);
    for chunk in data.chunks_mut(16) {
        let mut block = GenericArray::from(counter.to_be_bytes());
        cipher.encrypt_block(&mut block);
        for (byte, key) in chunk.iter_mut().zip(block.iter()) {
            *byte ^= key;
        }
        counter = counter.wrapping_add(1);
    }
}

/// Obscures `clear` the way `rclone obscure` does, with the caller's random
/// `iv` (rclone draws it from the OS random source).
pub fn obscure(clear: &str, iv: [u8; 16]) -> String {
    let mut buf = Zeroizing::new(Vec::with_capacity(16 + clear.len()));
    buf.extend_from_slice(&iv);
    buf.extend_from_slice(clear.as_bytes());
    apply_keystream(&mut buf[16..], iv);
    RAW_URL_LENIENT.encode(&buf[..])
}

/// Reveals an obscured value, as `rclone reveal` does.
pub fn reveal(obscured: &str) -> Result<String, ObscureError> {
    let mut buf = RAW_URL_LENIENT
        .decode(without_newlines(obscured).as_bytes())
        .map_err(|_| ObscureError::BadBase64)?;
    if buf.len() < 16 {
        return Err(ObscureError::TooShort);
    }
    let mut iv = [0u8; 16];
    iv.copy_from_slice(&buf[..16]);
    let mut clear = buf.split_off(16);
    apply_keystream(&mut clear, iv);
    String::from_utf8(clear).map_err(|e| {
        e.into_bytes().zeroize();
        ObscureError::NotUtf8
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// From `rclone obscure` (shared/vectors/rclone/obscure/obscure.tsv).
    const VECTORS: &[(&str, &str)] = &[
        ("x", "Ocj8PZR7b0Ker4iRM-Dc6iA"),
        ("", "vAsXvmgnw2jRGjuCVS-_fg"),
        (
            "secure-store test password A",
            "61BxXfCt9QrZxgEZAXLx953clOhttDvQMKI-vBKawlbs6bJjL3oWXxEJ5FU",
        ),
    ];

    fn iv_of(obscured: &str) -> [u8; 16] {
        let raw = RAW_URL_LENIENT.decode(obscured).unwrap();
        raw[..16].try_into().unwrap()
    }

    #[test]
    fn vectors_both_ways() {
        for &(clear, obscured) in VECTORS {
            assert_eq!(reveal(obscured).unwrap(), clear);
            assert_eq!(obscure(clear, iv_of(obscured)), obscured);
        }
    }

    #[test]
    fn counter_carries_across_all_16_bytes() {
        // An IV of all 0xFF wraps to zero after the first block; a clear text
        // of three blocks exercises the carry and still round-trips.
        let clear = "0123456789abcdef".repeat(3);
        let obscured = obscure(&clear, [0xFF; 16]);
        assert_eq!(reveal(&obscured).unwrap(), clear);
        let mut a = [0u8; 32];
        apply_keystream(&mut a, [0xFF; 16]);
        let mut b = [0u8; 16];
        apply_keystream(&mut b, [0; 16]);
        assert_eq!(a[16..], b);
    }

    #[test]
    fn reveal_errors() {
        assert_eq!(reveal("!!!!"), Err(ObscureError::BadBase64));
        assert_eq!(reveal("abc="), Err(ObscureError::BadBase64));
        assert_eq!(reveal("a"), Err(ObscureError::BadBase64));
        assert_eq!(reveal(""), Err(ObscureError::TooShort));
        assert_eq!(reveal("AAAAAAAAAAAAAAAAAAAA"), Err(ObscureError::TooShort));
        // 16-byte IV then 0xFF ^ keystream: find a value that is not UTF-8.
        let mut raw = vec![0u8; 17];
        let mut ks = [0u8; 1];
        apply_keystream(&mut ks, [0; 16]);
        raw[16] = 0xFF ^ ks[0];
        assert_eq!(
            reveal(&RAW_URL_LENIENT.encode(&raw)),
            Err(ObscureError::NotUtf8)
        );
    }

    #[test]
    fn reveal_is_lenient_like_go() {
        let (clear, obscured) = VECTORS[0];
        let mut wrapped = obscured.to_string();
        wrapped.insert_str(10, "\r\n");
        assert_eq!(reveal(&wrapped).unwrap(), clear);
    }

    proptest! {
        #[test]
        fn round_trip(clear in ".*", iv in any::<[u8; 16]>()) {
            prop_assert_eq!(reveal(&obscure(&clear, iv)).unwrap(), clear);
        }
    }
}
