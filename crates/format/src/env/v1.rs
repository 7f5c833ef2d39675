//! Env value format v1: ours. Spec: `docs/formats/env-values.md` §2.
//!
//! ```text
//! value = "v1." kid "." base64url_nopad(nonce(12) ‖ ciphertext ‖ tag(16))
//! PRK   = HKDF-Extract(salt = "secure-store/env/v1", IKM = store key)
//! key   = HKDF-Expand(PRK, "secure-store/env/v1/aes-256-gcm-key", 32)
//! kid   = hex(HKDF-Expand(PRK, "secure-store/env/v1/key-id", 8))
//! aad   = "secure-store/env" 0x00 "v1" 0x00 kid 0x00 NAME
//! ```
//!
//! The kid is checked before decryption, so a wrong store key gives
//! [`EnvError::WrongKey`] with both ids. Everything else that goes wrong after
//! parsing (a value moved to another NAME, any modification) gives the opaque
//! [`EnvError::Authentication`]. Vectors: `tests/vectors/env-v1/`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hkdf::Hkdf;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::{open, seal, EnvError, MIN_SEALED_LEN};

/// What every v1 value starts with (and what [`super::detect`] looks for).
pub const PREFIX: &str = "v1.";
/// Length of a key id: 8 bytes as lowercase hex.
pub const KEY_ID_LEN: usize = 16;
/// `"v1." kid "."`: the part of a value before the payload.
pub(crate) const HEADER_LEN: usize = PREFIX.len() + KEY_ID_LEN + 1;

/// HKDF salt: separates v1 keys from every other key made from the store key.
const HKDF_SALT: &[u8] = b"secure-store/env/v1";
/// HKDF info of the AES-256-GCM key.
const INFO_KEY: &[u8] = b"secure-store/env/v1/aes-256-gcm-key";
/// HKDF info of the key id: a separate label, so the kid says nothing about
/// the AES key.
const INFO_KEY_ID: &[u8] = b"secure-store/env/v1/key-id";
/// The AAD's fixed start: a label and the version, NUL-separated. The kid,
/// another NUL and NAME follow.
const AAD_LABEL: &[u8] = b"secure-store/env\0v1\0";

/// The two things derived from a store key. The AES key is zeroized on drop;
/// the key id is public.
struct DerivedKeys {
    key: Zeroizing<[u8; 32]>,
    key_id: String,
}

impl DerivedKeys {
    fn derive(store_key: &str) -> Self {
        let hkdf = Hkdf::<Sha256>::new(Some(HKDF_SALT), store_key.as_bytes());
        let mut key = Zeroizing::new([0u8; 32]);
        hkdf.expand(INFO_KEY, &mut key[..])
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        let mut key_id = [0u8; KEY_ID_LEN / 2];
        hkdf.expand(INFO_KEY_ID, &mut key_id)
            .expect("8 bytes is a valid HKDF-SHA256 output length");
        DerivedKeys {
            key,
            key_id: hex::encode(key_id),
        }
    }
}

/// The key id of `store_key`: 16 lowercase hex digits. Safe to show and log
/// (spec §2.3).
pub fn key_id(store_key: &str) -> String {
    DerivedKeys::derive(store_key).key_id
}

/// The key id written in a v1 value, without needing the store key, so an
/// operator can see which key a value needs. Checks only the header.
pub fn value_key_id(value: &str) -> Result<&str, EnvError> {
    split(value).map(|(kid, _)| kid)
}

/// Encrypts `plaintext` for variable `name` (without the `ENCRYPTED_`
/// prefix, bound as given; see [`super::validate_name`]). `nonce` must be
/// 12 fresh bytes from a CSPRNG.
pub fn encrypt(store_key: &str, name: &str, plaintext: &[u8], nonce: [u8; 12]) -> String {
    let keys = DerivedKeys::derive(store_key);
    let sealed = seal(&keys.key, nonce, &aad(&keys.key_id, name), plaintext);
    let mut value = String::with_capacity(super::encrypted_len(super::Format::V1, plaintext.len()));
    value.push_str(PREFIX);
    value.push_str(&keys.key_id);
    value.push('.');
    URL_SAFE_NO_PAD.encode_string(&sealed, &mut value);
    value
}

/// Decrypts a v1 value for variable `name` (without the `ENCRYPTED_` prefix).
///
/// Errors, in the order checked: [`EnvError::UnknownFormat`] (no `v1.`),
/// [`EnvError::BadEncoding`], [`EnvError::TooShort`], [`EnvError::WrongKey`],
/// [`EnvError::Authentication`].
pub fn decrypt(store_key: &str, name: &str, value: &str) -> Result<Zeroizing<Vec<u8>>, EnvError> {
    let (found, payload) = split(value)?;
    let sealed = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| EnvError::BadEncoding)?;
    if sealed.len() < MIN_SEALED_LEN {
        return Err(EnvError::TooShort);
    }
    let keys = DerivedKeys::derive(store_key);
    // Key ids are public; constant time costs nothing and ends the question.
    if !bool::from(keys.key_id.as_bytes().ct_eq(found.as_bytes())) {
        return Err(EnvError::WrongKey {
            expected: keys.key_id.clone(),
            found: found.to_owned(),
        });
    }
    open(&keys.key, &aad(found, name), &sealed)
}

/// Splits `v1.<kid>.<payload>` and checks the kid's shape. The payload is
/// checked by the base64 decoder (`.` is not in its alphabet, so a fourth
/// field is rejected there).
fn split(value: &str) -> Result<(&str, &str), EnvError> {
    let rest = value.strip_prefix(PREFIX).ok_or(EnvError::UnknownFormat)?;
    let (kid, payload) = rest.split_once('.').ok_or(EnvError::BadEncoding)?;
    let well_formed =
        kid.len() == KEY_ID_LEN && kid.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if !well_formed {
        return Err(EnvError::BadEncoding);
    }
    Ok((kid, payload))
}

/// `"secure-store/env" 0x00 "v1" 0x00 kid 0x00 NAME`. Everything before NAME
/// has a fixed length, so the encoding is unambiguous.
fn aad(kid: &str, name: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(AAD_LABEL.len() + kid.len() + 1 + name.len());
    aad.extend_from_slice(AAD_LABEL);
    aad.extend_from_slice(kid.as_bytes());
    aad.push(0);
    aad.extend_from_slice(name.as_bytes());
    aad
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const KEY: &str = "mR7_5insPJ67KCUcmP24eRA14L_ksYe4aTfy9B9UKfI=";
    const OTHER_KEY: &str = "L5EItFTvB7YGDwrhYluX991eGxDGLlM9gu5F6g5o5kQ=";
    const NAME: &str = "API_KEY";

    fn payload(value: &str) -> Vec<u8> {
        URL_SAFE_NO_PAD.decode(&value[HEADER_LEN..]).unwrap()
    }

    fn with_payload(value: &str, sealed: &[u8]) -> String {
        format!("{}{}", &value[..HEADER_LEN], URL_SAFE_NO_PAD.encode(sealed))
    }

    #[test]
    fn round_trips() {
        let sizes = [0usize, 1, 2, 3, 15, 16, 17, 65_535, 65_536, 65_537];
        for (i, n) in sizes.into_iter().enumerate() {
            let pt: Vec<u8> = (0..n).map(|j| (j * 13 + i) as u8).collect();
            let value = encrypt(KEY, NAME, &pt, [i as u8; 12]);
            assert_eq!(
                &decrypt(KEY, NAME, &value).unwrap()[..],
                &pt[..],
                "{n} bytes"
            );
        }
        let unicode = "pässwörd 🔑 ключ\n".as_bytes();
        let value = encrypt(KEY, "lower_name", unicode, [9; 12]);
        assert_eq!(&decrypt(KEY, "lower_name", &value).unwrap()[..], unicode);
    }

    #[test]
    fn shape() {
        let value = encrypt(KEY, NAME, b"abc", *b"0123456789ab");
        let kid = key_id(KEY);
        assert!(value.starts_with(&format!("v1.{kid}.")));
        assert_eq!(value_key_id(&value), Ok(kid.as_str()));
        assert!(value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')));
        assert_eq!(value.matches('.').count(), 2);
        let sealed = payload(&value);
        assert_eq!(&sealed[..12], b"0123456789ab");
        assert_eq!(sealed.len(), 12 + 3 + 16);
        // The nonce is the caller's: the same inputs give the same value.
        assert_eq!(value, encrypt(KEY, NAME, b"abc", *b"0123456789ab"));
        assert_ne!(value, encrypt(KEY, NAME, b"abc", *b"0123456789ac"));
    }

    #[test]
    fn key_ids() {
        let kid = key_id(KEY);
        assert_eq!(kid.len(), KEY_ID_LEN);
        assert!(kid.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
        assert_eq!(kid, key_id(KEY));
        assert_ne!(kid, key_id(OTHER_KEY));
        assert_ne!(key_id(""), key_id(" "));
        // Not a prefix of the v0 key or of the store key itself.
        assert!(!hex::encode(*super::super::v0::derive_key(KEY)).starts_with(&kid));
        assert!(!hex::encode(KEY).starts_with(&kid));
    }

    #[test]
    fn wrong_key_names_both_ids() {
        let value = encrypt(KEY, NAME, b"secret", [1; 12]);
        assert_eq!(
            decrypt(OTHER_KEY, NAME, &value),
            Err(EnvError::WrongKey {
                expected: key_id(OTHER_KEY),
                found: key_id(KEY),
            })
        );
        // The kid is checked before the name: a wrong key with a wrong name is
        // still reported as the wrong key.
        assert!(matches!(
            decrypt(OTHER_KEY, "OTHER", &value),
            Err(EnvError::WrongKey { .. })
        ));
    }

    #[test]
    fn wrong_name_fails_opaquely() {
        let value = encrypt(KEY, NAME, b"secret", [1; 12]);
        for name in [
            "OTHER",
            "api_key",
            "API_KEY_",
            "API_KE",
            "",
            "ENCRYPTED_API_KEY",
            "API_KEY\0",
        ] {
            assert_eq!(
                decrypt(KEY, name, &value),
                Err(EnvError::Authentication),
                "{name:?}"
            );
        }
        let empty_name = encrypt(KEY, "", b"secret", [1; 12]);
        assert_eq!(&decrypt(KEY, "", &empty_name).unwrap()[..], b"secret");
        assert_eq!(
            decrypt(KEY, "A", &empty_name),
            Err(EnvError::Authentication)
        );
    }

    #[test]
    fn swapped_kid_fails_even_with_matching_key() {
        // Re-label KEY's value with OTHER_KEY's kid and decrypt with OTHER_KEY:
        // the kid passes, the tag does not.
        let value = encrypt(KEY, NAME, b"secret", [1; 12]);
        let relabeled = value.replacen(&key_id(KEY), &key_id(OTHER_KEY), 1);
        assert_eq!(
            decrypt(OTHER_KEY, NAME, &relabeled),
            Err(EnvError::Authentication)
        );
    }

    #[test]
    fn every_bit_flip_of_the_value_fails() {
        for pt in [&b""[..], b"x", b"hello", b"sixteen bytes!!!"] {
            let value = encrypt(KEY, NAME, pt, [0xa5; 12]);
            let bytes = value.as_bytes();
            for i in 0..bytes.len() * 8 {
                let mut bad = bytes.to_vec();
                bad[i / 8] ^= 1 << (i % 8);
                // A flip into the high bit is not even UTF-8: it can't be an
                // env value we are given as &str, so it fails a step earlier.
                let Ok(bad) = String::from_utf8(bad) else {
                    continue;
                };
                assert!(decrypt(KEY, NAME, &bad).is_err(), "bit {i} of {value}");
            }
        }
    }

    #[test]
    fn every_bit_flip_of_the_payload_bytes_is_authentication() {
        let value = encrypt(KEY, NAME, b"hello", [0xa5; 12]);
        let sealed = payload(&value);
        for i in 0..sealed.len() * 8 {
            let mut bad = sealed.clone();
            bad[i / 8] ^= 1 << (i % 8);
            assert_eq!(
                decrypt(KEY, NAME, &with_payload(&value, &bad)),
                Err(EnvError::Authentication),
                "bit {i}"
            );
        }
    }

    #[test]
    fn truncated_values_fail() {
        let value = encrypt(KEY, NAME, b"a secret value", [3; 12]);
        for len in 0..value.len() {
            assert!(decrypt(KEY, NAME, &value[..len]).is_err(), "length {len}");
        }
        assert_eq!(
            decrypt(KEY, NAME, &value[..2]),
            Err(EnvError::UnknownFormat)
        );
        assert_eq!(decrypt(KEY, NAME, &value[..3]), Err(EnvError::BadEncoding));
        assert_eq!(decrypt(KEY, NAME, &value[..19]), Err(EnvError::BadEncoding));
        assert_eq!(decrypt(KEY, NAME, &value[..20]), Err(EnvError::TooShort));
        // Dropping whole bytes keeps the encoding valid and breaks the tag,
        // until fewer than nonce + tag remain.
        let sealed = payload(&value);
        for len in 0..sealed.len() {
            let expected = if len < MIN_SEALED_LEN {
                EnvError::TooShort
            } else {
                EnvError::Authentication
            };
            assert_eq!(
                decrypt(KEY, NAME, &with_payload(&value, &sealed[..len])),
                Err(expected),
                "{len} bytes"
            );
        }
    }

    #[test]
    fn garbage_fails() {
        let value = encrypt(KEY, NAME, b"secret", [1; 12]);
        let kid = key_id(KEY);
        let payload_str = &value[HEADER_LEN..];
        let bad_encoding = [
            "v1.".to_owned(),
            "v1..".to_owned(),
            format!("v1.{kid}"),
            format!("v1..{payload_str}"),
            format!("v1.{}.{payload_str}", kid.to_uppercase()),
            format!("v1.{}.{payload_str}", &kid[1..]),
            format!("v1.{kid}0.{payload_str}"),
            format!("v1.{}g.{payload_str}", &kid[1..]),
            format!("{value}="),
            format!("{value}.x"),
            format!("{value}."),
            format!("{value} "),
            format!("{value}\n"),
            format!("v1.{kid}.{}", payload_str.replace(['-', '_'], "+")),
            format!("v1.{kid}. {payload_str}"),
            value.replacen('.', ":", 2).replacen(':', ".", 1),
        ];
        for bad in &bad_encoding {
            if bad == &value {
                continue;
            }
            assert_eq!(
                decrypt(KEY, NAME, bad),
                Err(EnvError::BadEncoding),
                "{bad:?}"
            );
        }
        for bad in [
            "",
            "v1",
            "V1.00",
            "v2.x.y",
            "1.x.y",
            " v1.x.y",
            "\"v1.x.y\"",
        ] {
            assert_eq!(
                decrypt(KEY, NAME, bad),
                Err(EnvError::UnknownFormat),
                "{bad:?}"
            );
        }
        // Standard base64's alphabet is rejected when it appears.
        let sealed = payload(&value);
        let standard = base64::engine::general_purpose::STANDARD_NO_PAD.encode(&sealed);
        if standard.contains(['+', '/']) {
            assert_eq!(
                decrypt(KEY, NAME, &format!("v1.{kid}.{standard}")),
                Err(EnvError::BadEncoding)
            );
        }
    }

    #[test]
    fn non_canonical_base64_is_rejected() {
        // 31 bytes → 42 characters; the last one carries 2 bits and 4 unused
        // bits that must be zero.
        let value = encrypt(KEY, NAME, b"abc", [1; 12]);
        assert_eq!((value.len() - HEADER_LEN) % 4, 2);
        let last = value.as_bytes()[value.len() - 1];
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let index = alphabet.iter().position(|&c| c == last).unwrap();
        for low in 1..16 {
            let mut bad = value.clone().into_bytes();
            *bad.last_mut().unwrap() = alphabet[(index & !15) | low];
            let bad = String::from_utf8(bad).unwrap();
            assert_eq!(decrypt(KEY, NAME, &bad), Err(EnvError::BadEncoding));
        }
    }

    #[test]
    fn value_key_id_checks_header_only() {
        let kid = key_id(KEY);
        assert_eq!(value_key_id(&format!("v1.{kid}.")), Ok(kid.as_str()));
        assert_eq!(value_key_id("v1.xyz.abc"), Err(EnvError::BadEncoding));
        assert_eq!(value_key_id("00ff"), Err(EnvError::UnknownFormat));
    }

    #[test]
    fn aad_layout() {
        assert_eq!(
            aad("0123456789abcdef", "API_KEY"),
            b"secure-store/env\0v1\x000123456789abcdef\0API_KEY".to_vec()
        );
    }

    proptest! {
        #[test]
        fn prop_round_trip(
            key in ".{0,80}",
            name in "[A-Za-z_][A-Za-z0-9_]{0,40}",
            pt in proptest::collection::vec(any::<u8>(), 0..512),
            nonce in any::<[u8; 12]>(),
        ) {
            let value = encrypt(&key, &name, &pt, nonce);
            prop_assert_eq!(super::super::detect(&value), Some(super::super::Format::V1));
            prop_assert_eq!(&decrypt(&key, &name, &value).unwrap()[..], &pt[..]);
        }

        #[test]
        fn prop_other_name_fails(
            name in "[A-Za-z_][A-Za-z0-9_]{0,20}",
            other in "[A-Za-z_][A-Za-z0-9_]{0,20}",
            pt in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            prop_assume!(name != other);
            let value = encrypt(KEY, &name, &pt, [0; 12]);
            prop_assert_eq!(decrypt(KEY, &other, &value), Err(EnvError::Authentication));
        }

        #[test]
        fn prop_decrypt_never_panics(value in "v1\\.[0-9a-f]{0,17}\\.?[A-Za-z0-9_=+/.-]{0,80}") {
            let _ = decrypt(KEY, NAME, &value);
        }
    }
}
