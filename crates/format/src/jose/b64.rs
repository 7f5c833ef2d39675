//! Base64url without padding (RFC 7515 §2, RFC 4648 §5), the only base64
//! JOSE uses. Decoding is strict: no padding, no whitespace, no standard
//! alphabet, canonical trailing bits.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use super::JoseError;

/// Encodes `bytes` as base64url without padding.
pub fn encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes base64url without padding; `what` names the field in the error.
pub fn decode(text: &str, what: &'static str) -> Result<Vec<u8>, JoseError> {
    URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| JoseError::Base64(what))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_strictness() {
        for len in 0..10 {
            let data: Vec<u8> = (0..len as u8).map(|i| i.wrapping_mul(37) ^ 0xfb).collect();
            let text = encode(&data);
            assert!(!text.contains('=') && !text.contains('+') && !text.contains('/'));
            assert_eq!(decode(&text, "x").unwrap(), data);
        }
        assert_eq!(encode(b"\xfb\xff"), "-_8");
        assert!(decode("-_8=", "x").is_err());
        assert!(decode("+/8", "x").is_err());
        assert!(decode("a", "x").is_err());
        assert!(decode("-_9", "x").is_err(), "non-canonical trailing bits");
        assert_eq!(decode("", "x").unwrap(), b"");
    }
}
