//! Env value format v0: the original Go secure-store's, byte-exact.
//!
//! `value = hex(nonce(12) ‖ AES-256-GCM ciphertext ‖ tag(16))`, no AAD, with
//! `key = SHA-256(UTF-8 store key)`. Before upstream commit `3ca563c` the
//! key was `hex_decode(store key)` (store keys were 64 hex digits then), so
//! [`decrypt`] falls back to that. We never write it. Spec:
//! `docs/formats/env-values.md` §1; vectors:
//! `shared/vectors/original-secure-store/env_vars.tsv`.

use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

use super::{open, seal, EnvError};

/// The AES-256 key of the current original code: `SHA-256(store key)`.
pub fn derive_key(store_key: &str) -> Zeroizing<[u8; 32]> {
    let mut digest = Sha256::digest(store_key.as_bytes());
    let mut key = Zeroizing::new([0u8; 32]);
    key.copy_from_slice(&digest);
    digest.as_mut_slice().zeroize();
    key
}

/// The AES-256 key of the pre-`3ca563c` original code: the store key
/// hex-decoded, if it is exactly 64 hex digits (either case); else `None`.
pub fn legacy_key(store_key: &str) -> Option<Zeroizing<[u8; 32]>> {
    if store_key.len() != 64 {
        return None;
    }
    let mut key = Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(store_key, &mut key[..]).ok()?;
    Some(key)
}

/// Encrypts `plaintext` the way the original project does (SHA-256 key).
/// `nonce` must be 12 fresh bytes from a CSPRNG. Returns lowercase hex.
pub fn encrypt(store_key: &str, plaintext: &[u8], nonce: [u8; 12]) -> String {
    encrypt_with_key(&derive_key(store_key), plaintext, nonce)
}

/// Encrypts with an explicit AES-256 key (from [`derive_key`] or
/// [`legacy_key`]). Low level: the CLI only ever writes [`encrypt`]'s
/// variant; this exists to reproduce the legacy vectors.
pub fn encrypt_with_key(key: &[u8; 32], plaintext: &[u8], nonce: [u8; 12]) -> String {
    hex::encode(seal(key, nonce, &[], plaintext))
}

/// Decrypts a v0 value: with `SHA-256(store key)` first, then, if that fails
/// to authenticate and the store key is 64 hex digits, with the hex-decoded
/// store key. Accepts upper- and lower-case hex.
///
/// Errors: [`EnvError::BadEncoding`] (odd length or a non-hex character),
/// [`EnvError::TooShort`] (under 28 bytes), [`EnvError::Authentication`].
pub fn decrypt(store_key: &str, value: &str) -> Result<Zeroizing<Vec<u8>>, EnvError> {
    let sealed = decode(value)?;
    match open(&derive_key(store_key), &[], &sealed) {
        Err(EnvError::Authentication) => {}
        done => return done,
    }
    match legacy_key(store_key) {
        Some(key) => open(&key, &[], &sealed),
        None => Err(EnvError::Authentication),
    }
}

/// Decrypts a v0 value with an explicit AES-256 key, without the fallback.
pub fn decrypt_with_key(key: &[u8; 32], value: &str) -> Result<Zeroizing<Vec<u8>>, EnvError> {
    open(key, &[], &decode(value)?)
}

fn decode(value: &str) -> Result<Vec<u8>, EnvError> {
    hex::decode(value).map_err(|_| EnvError::BadEncoding)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    // The two upstream vectors of shared/vectors/original-secure-store/env_vars.tsv
    // (the integration test reads the file itself).
    const KEY: &str = "my-password-eQ4al9jgPxlWDwxL6uiGdznhhVJzaVQPnkNRjwvwoTvqWpeBJJJZ";
    const VALUE: &str = "b2c8955bad9bc7520e09f42e7a24b34860745b6fad240368dcc201d2d175938f55b5a404265c09f848c758aeb4248b7b32d63d1baad66a";
    const PLAINTEXT: &[u8] = b"this-is-my-new-test-api-key";
    const LEGACY_KEY: &str = "62bca5ca7308305035f3f3a3ee270c026474ba430f79b17128021944d548807b";
    const LEGACY_VALUE: &str = "d72afca84fb28581a2d9d533835a41cacb4beef534797825da7d8b80889593540077b2a4d9abb6db260108541903b6ce44a1a9";
    const LEGACY_PLAINTEXT: &[u8] = b"this-is-my-test-api-key";

    fn nonce_of(value: &str) -> [u8; 12] {
        let mut nonce = [0; 12];
        hex::decode_to_slice(&value[..24], &mut nonce).unwrap();
        nonce
    }

    #[test]
    fn upstream_vector() {
        assert_eq!(&decrypt(KEY, VALUE).unwrap()[..], PLAINTEXT);
        assert_eq!(encrypt(KEY, PLAINTEXT, nonce_of(VALUE)), VALUE);
    }

    #[test]
    fn legacy_vector_needs_the_fallback() {
        assert_eq!(
            &decrypt(LEGACY_KEY, LEGACY_VALUE).unwrap()[..],
            LEGACY_PLAINTEXT
        );
        assert_eq!(
            decrypt_with_key(&derive_key(LEGACY_KEY), LEGACY_VALUE),
            Err(EnvError::Authentication)
        );
        let key = legacy_key(LEGACY_KEY).unwrap();
        assert_eq!(
            encrypt_with_key(&key, LEGACY_PLAINTEXT, nonce_of(LEGACY_VALUE)),
            LEGACY_VALUE
        );
        // Go's hex decoder takes upper case, and so do we.
        assert_eq!(
            &decrypt(&LEGACY_KEY.to_uppercase(), LEGACY_VALUE).unwrap()[..],
            LEGACY_PLAINTEXT
        );
    }

    #[test]
    fn legacy_key_only_for_64_hex_digits() {
        assert!(legacy_key(LEGACY_KEY).is_some());
        assert!(legacy_key(&LEGACY_KEY[..62]).is_none());
        assert!(legacy_key(&format!("{LEGACY_KEY}00")).is_none());
        assert!(legacy_key(&LEGACY_KEY.replace('b', "g")).is_none());
        assert!(legacy_key(KEY).is_none());
        assert!(legacy_key("").is_none());
        // 64 bytes but not 64 ASCII characters: no panic, no key.
        assert!(legacy_key(&"é".repeat(32)).is_none());
    }

    #[test]
    fn upper_case_values_decrypt() {
        assert_eq!(&decrypt(KEY, &VALUE.to_uppercase()).unwrap()[..], PLAINTEXT);
        let mixed: String = VALUE
            .chars()
            .enumerate()
            .map(|(i, c)| {
                if i % 2 == 0 {
                    c.to_ascii_uppercase()
                } else {
                    c
                }
            })
            .collect();
        assert_eq!(&decrypt(KEY, &mixed).unwrap()[..], PLAINTEXT);
    }

    #[test]
    fn round_trips() {
        let sizes = [0usize, 1, 2, 15, 16, 17, 65_535, 65_536, 65_537];
        for (i, n) in sizes.into_iter().enumerate() {
            let pt: Vec<u8> = (0..n).map(|j| (j * 7 + i) as u8).collect();
            let value = encrypt(KEY, &pt, [i as u8; 12]);
            assert_eq!(value.len(), 2 * (28 + n));
            assert!(value
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
            assert_eq!(&decrypt(KEY, &value).unwrap()[..], &pt[..], "{n} bytes");
        }
        let unicode = "pässwörd 🔑 ключ\n".as_bytes();
        let value = encrypt(KEY, unicode, [9; 12]);
        assert_eq!(&decrypt(KEY, &value).unwrap()[..], unicode);
    }

    #[test]
    fn layout_is_nonce_ciphertext_tag() {
        let nonce = *b"0123456789ab";
        let value = encrypt(KEY, b"abc", nonce);
        let bytes = hex::decode(&value).unwrap();
        assert_eq!(&bytes[..12], &nonce);
        assert_eq!(bytes.len(), 12 + 3 + 16);
    }

    #[test]
    fn wrong_key_fails_opaquely() {
        assert_eq!(decrypt("other", VALUE), Err(EnvError::Authentication));
        assert_eq!(decrypt("", VALUE), Err(EnvError::Authentication));
        // A 64-hex store key that is wrong both ways.
        assert_eq!(
            decrypt(&"ab".repeat(32), LEGACY_VALUE),
            Err(EnvError::Authentication)
        );
        // The hex-decoded legacy key is only a fallback for 64-hex store keys:
        // a value sealed with SHA-256(LEGACY_KEY) does not open with KEY.
        let value = encrypt(LEGACY_KEY, b"x", [0; 12]);
        assert_eq!(&decrypt(LEGACY_KEY, &value).unwrap()[..], b"x");
        assert_eq!(decrypt(KEY, &value), Err(EnvError::Authentication));
    }

    #[test]
    fn every_bit_flip_of_the_bytes_fails() {
        let sealed = hex::decode(encrypt(KEY, b"hello", [5; 12])).unwrap();
        for i in 0..sealed.len() * 8 {
            let mut bad = sealed.clone();
            bad[i / 8] ^= 1 << (i % 8);
            assert_eq!(
                decrypt(KEY, &hex::encode(&bad)),
                Err(EnvError::Authentication),
                "bit {i}"
            );
        }
    }

    #[test]
    fn truncated_values_fail() {
        for len in 0..VALUE.len() {
            let err = decrypt(KEY, &VALUE[..len]).unwrap_err();
            let expected = if len % 2 == 1 {
                EnvError::BadEncoding
            } else if len < 56 {
                EnvError::TooShort
            } else {
                EnvError::Authentication
            };
            assert_eq!(err, expected, "length {len}");
        }
    }

    #[test]
    fn garbage_fails() {
        for value in ["abc", "zz", "0x00", "v1.00", " 00", "00\n", "é0", "--"] {
            assert_eq!(decrypt(KEY, value), Err(EnvError::BadEncoding), "{value:?}");
        }
        for value in ["", "00", &"00".repeat(27)] {
            assert_eq!(decrypt(KEY, value), Err(EnvError::TooShort), "{value:?}");
        }
        // Exactly nonce + tag: well formed, empty plaintext, tag wrong.
        assert_eq!(
            decrypt(KEY, &"00".repeat(28)),
            Err(EnvError::Authentication)
        );
    }

    #[test]
    fn derived_key_is_sha256() {
        assert_eq!(
            hex::encode(*derive_key("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    proptest! {
        #[test]
        fn prop_round_trip(
            key in ".{0,80}",
            pt in proptest::collection::vec(any::<u8>(), 0..512),
            nonce in any::<[u8; 12]>(),
        ) {
            let value = encrypt(&key, &pt, nonce);
            prop_assert_eq!(&decrypt(&key, &value).unwrap()[..], &pt[..]);
        }

        #[test]
        fn prop_decrypt_never_panics(key in ".{0,70}", value in "[0-9a-fA-Fv.xz ]{0,120}") {
            let _ = decrypt(&key, &value);
        }
    }
}
