//! base32768: binary to text in 15 bits a character, one of rclone's three
//! file name encodings (`filename_encoding = base32768`).
//!
//! The encoding is qntm's base32768 as implemented by the Go package
//! `github.com/Max-Sum/base32768` (`SafeEncoding`), which rclone uses. The
//! facts it rests on:
//!
//! - The input is read as one big-endian bit string and cut into 15-bit
//!   groups. Group value `v` becomes the character `R[v >> 5] + (v & 31)`,
//!   where `R` is the *repertoire*: 1024 blocks of 32 consecutive BMP code
//!   points, in ascending order (listed below as ranges of whole blocks).
//! - When 1 to 7 bits are left at the end, they are padded on the right with
//!   1 bits to 7 bits and written with a second, 4-block repertoire (`ƀ`,
//!   `ɀ`, `ɠ`, `ʀ` blocks). When 8 to 14 bits are left, they are padded with
//!   1 bits to 15 and written as a normal character.
//! - Every character of the 7-bit repertoire sorts below every character of
//!   the 15-bit one, so a decoder tells them apart by comparing with the
//!   first 15-bit block (U+04A0).
//!
//! Decoding follows the Go decoder exactly, because rclone accepts whatever
//! it accepts: `\r` and `\n` are skipped; pad bits are not checked; a 7-bit
//! character ends the data and anything after it is ignored; any other
//! character (including one outside the BMP) is an error.

use std::fmt;

/// The four 32-character blocks that encode a final group of 1 to 7 bits.
const SEVEN_BIT_BLOCKS: [u16; 4] = [0x0180, 0x0240, 0x0260, 0x0280];

/// The 15-bit repertoire as inclusive code point ranges, each a whole number
/// of 32-character blocks; 1024 blocks in all.
const FIFTEEN_BIT_RANGES: [(u16, u16); 52] = [
    (0x04A0, 0x04BF),
    (0x0500, 0x051F),
    (0x0680, 0x06BF),
    (0x0760, 0x079F),
    (0x07C0, 0x07DF),
    (0x1000, 0x101F),
    (0x10A0, 0x10BF),
    (0x1100, 0x115F),
    (0x1180, 0x119F),
    (0x11E0, 0x123F),
    (0x1260, 0x127F),
    (0x12E0, 0x12FF),
    (0x1320, 0x133F),
    (0x13A0, 0x13DF),
    (0x1420, 0x165F),
    (0x16A0, 0x16DF),
    (0x1780, 0x179F),
    (0x1820, 0x185F),
    (0x18C0, 0x18DF),
    (0x1980, 0x199F),
    (0x19E0, 0x19FF),
    (0x1A20, 0x1A3F),
    (0x1BC0, 0x1BDF),
    (0x1C00, 0x1C1F),
    (0x1D00, 0x1D1F),
    (0x21E0, 0x21FF),
    (0x22C0, 0x22DF),
    (0x2340, 0x23DF),
    (0x2400, 0x241F),
    (0x2500, 0x275F),
    (0x2780, 0x27BF),
    (0x2800, 0x297F),
    (0x29A0, 0x29BF),
    (0x2A20, 0x2A5F),
    (0x2A80, 0x2ABF),
    (0x2AE0, 0x2B5F),
    (0x2C00, 0x2C1F),
    (0x2C80, 0x2CDF),
    (0x2D00, 0x2D1F),
    (0x2D40, 0x2D5F),
    (0x2EA0, 0x2EDF),
    (0x31C0, 0x31DF),
    (0x3400, 0x4D9F),
    (0x4DC0, 0x9FBF),
    (0xA000, 0xA47F),
    (0xA4A0, 0xA4BF),
    (0xA500, 0xA5FF),
    (0xA640, 0xA65F),
    (0xA6A0, 0xA6DF),
    (0xA700, 0xA75F),
    (0xA780, 0xA79F),
    (0xA840, 0xA85F),
];

/// First code point of each of the 1024 blocks of the 15-bit repertoire.
const FIFTEEN_BIT_BLOCKS: [u16; 1024] = expand_ranges();

/// The lowest code point of the 15-bit repertoire: anything below it that
/// decodes at all is a final 7-bit character.
const SPLITTER: u16 = FIFTEEN_BIT_RANGES[0].0;

/// Marks a block that is in neither repertoire.
const NOT_IN_ALPHABET: u16 = u16::MAX;

/// For every block of 32 BMP code points (`code point >> 5`), the block's
/// index in its repertoire, or [`NOT_IN_ALPHABET`].
const DECODE_TABLE: [u16; 2048] = decode_table();

const fn expand_ranges() -> [u16; 1024] {
    let mut blocks = [0u16; 1024];
    let mut n = 0;
    let mut r = 0;
    while r < FIFTEEN_BIT_RANGES.len() {
        let (first, last) = FIFTEEN_BIT_RANGES[r];
        let mut start = first as u32;
        while start < last as u32 {
            blocks[n] = start as u16;
            n += 1;
            start += 32;
        }
        r += 1;
    }
    assert!(n == 1024, "the 15-bit repertoire must have 1024 blocks");
    blocks
}

const fn decode_table() -> [u16; 2048] {
    let mut table = [NOT_IN_ALPHABET; 2048];
    let mut i = 0;
    while i < FIFTEEN_BIT_BLOCKS.len() {
        table[(FIFTEEN_BIT_BLOCKS[i] >> 5) as usize] = i as u16;
        i += 1;
    }
    let mut i = 0;
    while i < SEVEN_BIT_BLOCKS.len() {
        table[(SEVEN_BIT_BLOCKS[i] >> 5) as usize] = i as u16;
        i += 1;
    }
    table
}

/// Why a string is not base32768.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeError {
    /// Index (in characters) of the first character outside the alphabet.
    pub position: usize,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "character {} is not in the base32768 alphabet",
            self.position
        )
    }
}

impl std::error::Error for DecodeError {}

fn char_from(block_start: u16, low_bits: u32) -> char {
    char::from_u32(u32::from(block_start) + low_bits)
        .expect("repertoire blocks hold only BMP scalar values")
}

/// Encodes `data` as base32768 text.
pub fn encode(data: &[u8]) -> String {
    let mut out = String::with_capacity((data.len() * 8).div_ceil(15) * 3);
    // At most 14 pending bits plus 8 new ones: fits a u32.
    let mut acc: u32 = 0;
    let mut bits: u32 = 0;
    for &byte in data {
        acc = (acc << 8) | u32::from(byte);
        bits += 8;
        if bits >= 15 {
            bits -= 15;
            let v = (acc >> bits) & 0x7FFF;
            acc &= (1 << bits) - 1;
            out.push(char_from(FIFTEEN_BIT_BLOCKS[(v >> 5) as usize], v & 31));
        }
    }
    if bits > 0 {
        // Pad the tail with 1 bits to 7 bits, or to 15 when it has 8 or more.
        let width = if bits <= 7 { 7 } else { 15 };
        let pad = width - bits;
        let v = (acc << pad) | ((1 << pad) - 1);
        let blocks: &[u16] = if width == 7 {
            &SEVEN_BIT_BLOCKS
        } else {
            &FIFTEEN_BIT_BLOCKS
        };
        out.push(char_from(blocks[(v >> 5) as usize], v & 31));
    }
    out
}

/// Decodes base32768 text the way rclone's decoder does (see the module
/// documentation for its leniencies).
pub fn decode(text: &str) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::with_capacity(text.len() * 15 / 8 / 2);
    // At most 7 pending bits plus 15 new ones: fits a u32.
    let mut acc: u32 = 0;
    let mut bits: u32 = 0;
    for (position, c) in text.chars().filter(|&c| c != '\r' && c != '\n').enumerate() {
        let cp = u32::from(c);
        let index = if cp > 0xFFFF {
            NOT_IN_ALPHABET
        } else {
            DECODE_TABLE[(cp >> 5) as usize]
        };
        if index == NOT_IN_ALPHABET {
            return Err(DecodeError { position });
        }
        let value = (u32::from(index) << 5) | (cp & 31);
        if cp < u32::from(SPLITTER) {
            // A 7-bit character: completes at most one byte and ends the data.
            if bits > 0 {
                out.push((((acc << 7) | value) >> (bits - 1)) as u8);
            }
            return Ok(out);
        }
        acc = (acc << 15) | value;
        bits += 15;
        while bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
        acc &= (1 << bits) - 1;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn repertoire_is_sound() {
        for pair in FIFTEEN_BIT_BLOCKS.windows(2) {
            assert!(pair[0] < pair[1]);
        }
        for &block in FIFTEEN_BIT_BLOCKS.iter().chain(&SEVEN_BIT_BLOCKS) {
            assert_eq!(block % 32, 0);
            // No surrogates, so every block is made of `char`s.
            assert!(!(0xD800..0xE000).contains(&block));
        }
        assert!(SEVEN_BIT_BLOCKS.iter().all(|&b| b < SPLITTER));
        assert_eq!(FIFTEEN_BIT_BLOCKS[0], 0x04A0);
        assert_eq!(FIFTEEN_BIT_BLOCKS[1023], 0xA840);
        let in_alphabet = DECODE_TABLE.iter().filter(|&&e| e != NOT_IN_ALPHABET);
        assert_eq!(in_alphabet.count(), 1028);
    }

    /// Known answers from rclone's tests (`backend/crypt/cipher_test.go`).
    #[test]
    fn rclone_known_answers() {
        for (plain, text) in [
            ("1", "㼿"),
            ("12", "㻙ɟ"),
            ("123", "㻙ⲿ"),
            ("1234", "㻙ⲍƟ"),
            ("123456", "㻙ⲍ⍆ʏ"),
            ("12345678", "㻙ⲍ⍆觓ɧ"),
            ("123456789012345", "㻙ⲍ⍆觓栩朤諆媕"),
            ("1234567890123456", "㻙ⲍ⍆觓栩朤諆媕䆿"),
        ] {
            assert_eq!(encode(plain.as_bytes()), text, "{plain}");
            assert_eq!(decode(text).unwrap(), plain.as_bytes(), "{plain}");
        }
        assert_eq!(decode("㼿c"), Err(DecodeError { position: 1 }));
        assert_eq!(decode("!"), Err(DecodeError { position: 0 }));
        assert_eq!(decode("㻙ⲿ=㻙ⲿ"), Err(DecodeError { position: 2 }));
    }

    #[test]
    fn empty() {
        assert_eq!(encode(&[]), "");
        assert_eq!(decode("").unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn tails_use_the_right_repertoire() {
        // 1 byte = 8 bits: one 15-bit character, padded with seven 1 bits.
        let one = encode(&[0]);
        assert_eq!(one.chars().count(), 1);
        // 0000_0000 then 111_1111: value 127, block 3, offset 31.
        assert_eq!(one, char_from(FIFTEEN_BIT_BLOCKS[3], 31).to_string());
        // 2 bytes = 16 bits: one 15-bit character and a 7-bit one for 1 bit.
        let two = encode(&[0xFF, 0xFF]);
        let chars: Vec<char> = two.chars().collect();
        assert_eq!(chars.len(), 2);
        assert!(u32::from(chars[1]) < u32::from(SPLITTER));
        assert_eq!(chars[1], '\u{029F}'); // 1 then six 1s of padding = 127
    }

    #[test]
    fn exact_multiple_of_15_bits_has_no_tail() {
        // 15 bytes = 120 bits = 8 characters exactly.
        let text = encode(&[0xA5; 15]);
        assert_eq!(text.chars().count(), 8);
        assert_eq!(decode(&text).unwrap(), vec![0xA5; 15]);
    }

    #[test]
    fn rejects_characters_outside_the_alphabet() {
        assert_eq!(decode("a"), Err(DecodeError { position: 0 }));
        let mut text = encode(b"hello world");
        text.push('😀');
        let len = text.chars().count();
        assert_eq!(decode(&text), Err(DecodeError { position: len - 1 }));
        // U+0180 + 32 is not in the 7-bit repertoire.
        assert!(decode("\u{01A0}").is_err());
    }

    #[test]
    fn lenient_like_rclone() {
        let text = encode(&[1, 2, 3, 4]);
        // Newlines are skipped.
        let mut chars: Vec<char> = text.chars().collect();
        chars.insert(2, '\n');
        chars.insert(1, '\r');
        let split: String = chars.into_iter().collect();
        assert_eq!(decode(&split).unwrap(), [1, 2, 3, 4]);
        // Anything after a 7-bit character is ignored, even junk.
        let two = encode(&[0xFF, 0xFF]);
        assert_eq!(decode(&format!("{two}xyz")).unwrap(), [0xFF, 0xFF]);
        // Pad bits are not checked: U+0260 (1 then six 0s) instead of
        // U+029F (1 then six 1s) gives the same bytes.
        let first = two.chars().next().unwrap();
        assert_eq!(decode(&format!("{first}\u{0260}")).unwrap(), [0xFF, 0xFF]);
        // A lone 7-bit character carries no whole byte.
        assert_eq!(decode("\u{0180}").unwrap(), Vec::<u8>::new());
    }

    proptest! {
        #[test]
        fn round_trip(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            let text = encode(&data);
            prop_assert_eq!(text.chars().count(), (data.len() * 8).div_ceil(15));
            prop_assert_eq!(decode(&text).unwrap(), data);
        }
    }
}
