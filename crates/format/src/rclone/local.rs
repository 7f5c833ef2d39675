//! How rclone names files on a local disk (Linux and other Unix systems
//! except macOS), so that a store we write is read by rclone under the
//! names we meant, and the other way round. Spec:
//! `docs/formats/rclone-names.md`, section "On-disk names".
//!
//! rclone never hands a name from a backend straight to the crypt layer.
//! Inside rclone every name is in its *Standard* encoding; each backend
//! converts between Standard and what its storage can hold. The local
//! backend on Linux stores names in the *Base* encoding:
//!
//! - reading a directory, a name found on disk becomes
//!   `Standard.encode(Base.decode(disk))`: [`to_standard`];
//! - writing, a Standard name becomes `Base.encode(Standard.decode(name))`
//!   on disk: [`from_standard`].
//!
//! Crypt encrypts and decrypts Standard names. The difference between the
//! two encodings is that Standard also replaces control characters: a raw
//! control character `0x01..=0x1F` stands for itself on disk but is a
//! "control picture" `U+2401..=U+241F` in a Standard name, and DEL `0x7F`
//! is `U+2421`. So a base32768 name that contains `␌` (U+240C) is written
//! by rclone as a name with the byte `0x0C` in it, and a literal `␌` on disk
//! is read by rclone as the quoted `‛␌`, which is no base32768.
//!
//! Both encodings are instances of rclone's `MultiEncoder`; this module
//! implements exactly the flags they use, in our own code:
//!
//! | flag | reserved character | stands in for it |
//! | --- | --- | --- |
//! | zero (always on) | NUL | `␀` U+2400 |
//! | slash | `/` | `／` U+FF0F |
//! | ctl (Standard only) | `0x01..=0x1F` | `U+2401..=U+241F` (code point + 0x2400) |
//! | del (Standard only) | DEL `0x7F` | `␡` U+2421 |
//! | dot | the whole names `.` and `..` | `．` and `．．` (U+FF0E) |
//!
//! Encoding replaces each reserved character by its stand-in. A stand-in
//! that is already in the input, and the quote character `‛` (U+201B)
//! itself, is written with a `‛` before it. For the dot flag the whole
//! names `．` and `．．` are written `‛．` and `‛．‛．`; a `.` or `．`
//! inside a longer name is left alone. Decoding undoes this: a stand-in
//! gives back its reserved character, a quoted one stays as it is, `‛‛`
//! gives `‛`. A `‛` that quotes nothing (before a character that is not a
//! stand-in or `‛`, or at the end) is kept, and so is the character after
//! it. That last rule makes decoding lossy: `‛a` and `‛‛a` both decode to
//! `‛a`, which encodes back to `‛‛a`.
//!
//! **Invalid UTF-8.** rclone's `MultiEncoder` works on Go strings, which
//! may hold any bytes. Neither Standard nor Base has the `InvalidUtf8`
//! flag, so rclone copies bytes that are not UTF-8 through unchanged in
//! both directions (and a literal U+FFFD too). Our names are `&str`, always
//! valid UTF-8, so a per-character implementation is exact; callers refuse
//! disk names that are not UTF-8 before they get here (crypt names must be
//! UTF-8 anyway).
//!
//! **Round trips**, for both encodings `E`, every `&str` `x` (unit and
//! property tests below):
//!
//! 1. `E.decode(E.encode(x)) == x`, always (NUL, `/`, `.`, `..` and the
//!    empty name included).
//! 2. `E.encode(E.decode(y)) == y` exactly when `y` is *canonical*: an
//!    output of `E.encode`. Not always: `‛a` → `‛a` → `‛‛a`.
//! 3. `from_standard(to_standard(d)) == d` exactly when `d` is canonical
//!    for Base ([`is_canonical_disk_name`]). That holds for every name that
//!    has no NUL, no `/`, no `‛` and is not `.` or `..`, and for every name
//!    rclone's local backend writes. A disk name such as `a‛b` is not:
//!    rclone reads it as `a‛‛b` and cannot open it again under that name.
//! 4. `to_standard(from_standard(s)) == s` exactly when `s` is canonical for
//!    Standard ([`is_canonical_standard_name`]). That holds for every output
//!    of `to_standard`, and for every name crypt makes in mode `standard`
//!    (base32, base64 and base32768 text has no `‛`, no raw control
//!    character, no NUL and no `/`).
//! 5. `to_standard` never returns a name with NUL, `/`, a raw control
//!    character or DEL, and `from_standard` never one with NUL or `/`;
//!    neither returns `.` or `..`.

/// The quote character, SINGLE HIGH-REVERSED-9 QUOTATION MARK.
pub const QUOTE: char = '\u{201B}';

/// Stand-in for NUL, SYMBOL FOR NULL; `U+2400 + c` for control character `c`.
const SYMBOL_NUL: char = '\u{2400}';
/// Stand-in for DEL, SYMBOL FOR DELETE.
const SYMBOL_DEL: char = '\u{2421}';
/// Stand-in for `/`, FULLWIDTH SOLIDUS.
const FULLWIDTH_SLASH: char = '\u{FF0F}';
/// Stand-in for `.` in the names `.` and `..`, FULLWIDTH FULL STOP.
const FULLWIDTH_DOT: char = '\u{FF0E}';

/// One of rclone's name encodings, as a set of `MultiEncoder` flags (NUL is
/// always encoded). Only [`Encoding::STANDARD`] and [`Encoding::BASE`] are
/// public.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Encoding {
    slash: bool,
    ctl: bool,
    del: bool,
    dot: bool,
}

impl Encoding {
    /// rclone's internal encoding (`encoder.Standard`): zero, slash, ctl,
    /// del, dot. Crypt encrypts and decrypts names in this encoding.
    pub const STANDARD: Encoding = Encoding {
        slash: true,
        ctl: true,
        del: true,
        dot: true,
    };

    /// The local backend's encoding on Linux (`encoder.Base`, which is
    /// `encoder.OS` there): zero, slash, dot.
    pub const BASE: Encoding = Encoding {
        slash: true,
        ctl: false,
        del: false,
        dot: true,
    };

    /// The stand-in of a character this encoding reserves.
    fn stand_in(self, c: char) -> Option<char> {
        match c {
            '\0' => Some(SYMBOL_NUL),
            '/' if self.slash => Some(FULLWIDTH_SLASH),
            '\u{01}'..='\u{1F}' if self.ctl => char::from_u32(u32::from(SYMBOL_NUL) + u32::from(c)),
            '\u{7F}' if self.del => Some(SYMBOL_DEL),
            _ => None,
        }
    }

    /// The reserved character that `c` stands in for, if `c` is a stand-in.
    fn reserved(self, c: char) -> Option<char> {
        match c {
            SYMBOL_NUL => Some('\0'),
            FULLWIDTH_SLASH if self.slash => Some('/'),
            '\u{2401}'..='\u{241F}' if self.ctl => {
                char::from_u32(u32::from(c) - u32::from(SYMBOL_NUL))
            }
            SYMBOL_DEL if self.del => Some('\u{7F}'),
            _ => None,
        }
    }

    /// rclone's `MultiEncoder.Encode`: replaces reserved characters by
    /// their stand-ins and quotes stand-ins already present.
    pub fn encode(self, name: &str) -> String {
        if self.dot {
            match name {
                "." => return FULLWIDTH_DOT.to_string(),
                ".." => return [FULLWIDTH_DOT; 2].iter().collect(),
                "\u{FF0E}" => return [QUOTE, FULLWIDTH_DOT].iter().collect(),
                "\u{FF0E}\u{FF0E}" => {
                    return [QUOTE, FULLWIDTH_DOT, QUOTE, FULLWIDTH_DOT]
                        .iter()
                        .collect()
                }
                _ => {}
            }
        }
        let mut out = String::with_capacity(name.len() + 8);
        for c in name.chars() {
            if let Some(stand_in) = self.stand_in(c) {
                out.push(stand_in);
            } else if c == QUOTE || self.reserved(c).is_some() {
                out.push(QUOTE);
                out.push(c);
            } else {
                out.push(c);
            }
        }
        out
    }

    /// rclone's `MultiEncoder.Decode`: gives back the reserved characters.
    /// Never fails; text that [`Encoding::encode`] cannot produce (a `‛`
    /// that quotes nothing) is kept as it is.
    pub fn decode(self, name: &str) -> String {
        if self.dot {
            match name {
                "\u{FF0E}" => return ".".to_owned(),
                "\u{FF0E}\u{FF0E}" => return "..".to_owned(),
                "\u{201B}\u{FF0E}" => return FULLWIDTH_DOT.to_string(),
                "\u{201B}\u{FF0E}\u{201B}\u{FF0E}" => return [FULLWIDTH_DOT; 2].iter().collect(),
                _ => {}
            }
        }
        let mut out = String::with_capacity(name.len());
        let mut quoted = false;
        for c in name.chars() {
            if std::mem::take(&mut quoted) {
                // The character after a quote is taken literally when it
                // is one that needs quoting; otherwise the quote was not
                // one and both are kept.
                if c != QUOTE && self.reserved(c).is_none() {
                    out.push(QUOTE);
                }
                out.push(c);
            } else if c == QUOTE {
                quoted = true;
            } else {
                out.push(self.reserved(c).unwrap_or(c));
            }
        }
        if quoted {
            out.push(QUOTE);
        }
        out
    }
}

/// The Standard name rclone's local backend (Linux) gives the file called
/// `disk_name`, one path segment: `Standard.encode(Base.decode(disk_name))`
/// (rclone's `ToStandardName`). This is the name crypt decrypts, or, for a
/// source file, encrypts.
pub fn to_standard(disk_name: &str) -> String {
    Encoding::STANDARD.encode(&Encoding::BASE.decode(disk_name))
}

/// The name rclone's local backend (Linux) writes on disk for the Standard
/// name `name`, one path segment: `Base.encode(Standard.decode(name))`
/// (rclone's `FromStandardName`).
pub fn from_standard(name: &str) -> String {
    Encoding::BASE.encode(&Encoding::STANDARD.decode(name))
}

/// Whether rclone's local backend reads the file called `disk_name` under a
/// name that it would write back as `disk_name`:
/// `from_standard(to_standard(disk_name)) == disk_name`. False for `a‛b`
/// (read as `a‛‛b`), for `.`, `..`, and names with NUL or `/`.
pub fn is_canonical_disk_name(disk_name: &str) -> bool {
    from_standard(&to_standard(disk_name)) == disk_name
}

/// Whether the Standard name `name` survives being written to a local disk
/// and read back: `to_standard(from_standard(name)) == name`. True for every
/// name crypt makes in mode `standard`; false for `‛a` (read back as
/// `‛‛a`) and for names with raw control characters, NUL or `/`.
pub fn is_canonical_standard_name(name: &str) -> bool {
    to_standard(&from_standard(name)) == name
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ZERO: Encoding = Encoding {
        slash: false,
        ctl: false,
        del: false,
        dot: false,
    };
    const SLASH: Encoding = Encoding {
        slash: true,
        ..ZERO
    };
    const CTL: Encoding = Encoding { ctl: true, ..ZERO };
    const DEL: Encoding = Encoding { del: true, ..ZERO };
    const DOT: Encoding = Encoding { dot: true, ..ZERO };

    fn check(e: Encoding, input: &str, encoded: &str) {
        assert_eq!(e.encode(input), encoded, "encode({input:?}) with {e:?}");
        assert_eq!(e.decode(encoded), input, "decode({encoded:?}) with {e:?}");
    }

    /// rclone's `lib/encoder/encoder_cases_test.go` (v1.60.1),
    /// `testCasesSingle`, the cases for the flags Standard and Base use.
    /// Each pair must encode one way and decode the other.
    #[test]
    fn rclone_single_flag_cases() {
        check(
            ZERO,
            "；2π\x15ｊ８␆aｗ␑k`\x04β\x00σ`τ７＜;R\x05␀τ？β7７␌",
            "；2π\x15ｊ８␆aｗ␑k`\x04β␀σ`τ７＜;R\x05‛␀τ？β7７␌",
        );
        check(
            SLASH,
            "：＜VＪｇ｜Ｋ;/+\x10／φ␄/π\x0c:ρRα\x1fζ␃＜VLν＜ｑ",
            "：＜VＪｇ｜Ｋ;／+\x10‛／φ␄／π\x0c:ρRα\x1fζ␃＜VLν＜ｑ",
        );
        check(
            DEL,
            "Fｇ！％＞π\x1d\rY␡μ*＊0｜ν\x1eVχI３`␘\x1d␓？δ\u{7f}␉ω",
            "Fｇ！％＞π\x1d\rY‛␡μ*＊0｜ν\x1eVχI３`␘\x1d␓？δ␡␉ω",
        );
        check(
            CTL,
            "␖d\x14\x0b␟\x00␇\x03␜␈␊\x0c␑\x1c␂␕␘␓␃＊\x1d／\n*␔\"\x07␉\x05␞␁\x0e\x19\u{7f}␙v\x1eP␆␋\x17ｎ\x12\x04␛\r\x1b␚\x1a\x17␛\x18\x1f\x0fδ\x13␍␚\x10\x07␕:\x11\x16ς␏␅λ\x08π\x06：␒δ>\x02ｏ␖␌＆６␎Ｖ\x15␄␝\x1e␐␗\x01\tοZ",
            "‛␖d␔␋‛␟␀‛␇␃‛␜‛␈‛␊␌‛␑␜‛␂‛␕‛␘‛␓‛␃＊␝／␊*‛␔\"␇‛␉␅‛␞‛␁␎␙\u{7f}‛␙v␞P‛␆‛␋␗ｎ␒␄‛␛␍␛‛␚␚␗‛␛␘␟␏δ␓‛␍‛␚␐␇‛␕:␑␖ς‛␏‛␅λ␈π␆：‛␒δ>␂ｏ‛␖‛␌＆６‛␎Ｖ␕‛␄‛␝␞‛␐‛␗␁␉οZ",
        );
    }

    /// rclone's `TestEncodeDot` (v1.60.1).
    #[test]
    fn rclone_dot_cases() {
        check(ZERO, ".", ".");
        check(DOT, ".", "．");
        check(ZERO, "..", "..");
        check(DOT, "..", "．．");
        check(DOT, "...", "...");
        check(DOT, ". .", ". .");
    }

    /// rclone's `TestDecodeHalf` (v1.60.1), the cases without the
    /// `InvalidUtf8` flag: a quote that quotes nothing is kept.
    #[test]
    fn rclone_half_quote_cases() {
        assert_eq!(ZERO.decode("‛"), "‛");
        assert_eq!(ZERO.decode("‛‛"), "‛");
        assert_eq!(ZERO.decode("‛a‛"), "‛a‛");
    }

    /// Standard and Base themselves, checked against rclone 1.60.1: the
    /// Standard side is what `rclone lsf` prints for a local file called
    /// `disk`, and `rclone touch DIR/<standard>` creates `disk`.
    #[test]
    fn standard_and_base_names() {
        for (disk, standard) in [
            ("plain name.txt", "plain name.txt"),
            ("a\x0cb", "a␌b"),
            ("a␌b", "a‛␌b"),
            ("\x01\x1f", "␁␟"),
            ("x\x7f", "x␡"),
            ("a␡b", "a‛␡b"),
            ("a␀b", "a␀b"),
            ("a‛␀b", "a‛␀b"),
            ("a／b", "a／b"),
            ("a‛／b", "a‛／b"),
            ("a‛‛b", "a‛‛b"),
            ("．", "．"),
            ("．．", "．．"),
            ("‛．", "‛．"),
            ("‛．‛．", "‛．‛．"),
            ("a．", "a．"),
            ("\u{FFFD}", "\u{FFFD}"),
            ("", ""),
        ] {
            assert_eq!(to_standard(disk), standard, "to_standard({disk:?})");
            assert_eq!(from_standard(standard), disk, "from_standard({standard:?})");
            assert!(is_canonical_disk_name(disk), "{disk:?}");
            assert!(is_canonical_standard_name(standard), "{standard:?}");
        }
        // Names rclone's local backend cannot keep (rclone 1.60.1 lists
        // them under the second name and then fails to open them).
        for (disk, standard, written_back) in [
            ("a‛b", "a‛‛b", "a‛‛b"),
            ("‛a", "‛‛a", "‛‛a"),
            ("a‛", "a‛‛", "a‛‛"),
            ("a‛␌b", "a‛‛‛␌b", "a‛‛␌b"),
        ] {
            assert_eq!(to_standard(disk), standard, "to_standard({disk:?})");
            assert_eq!(from_standard(standard), written_back);
            assert!(!is_canonical_disk_name(disk), "{disk:?}");
        }
        // Standard names from elsewhere (`rclone touch` arguments) that
        // are not canonical: what rclone writes and reads back.
        for (standard, disk, read_back) in [
            ("q‛z", "q‛‛z", "q‛‛z"),
            ("a\x0cb", "a\x0cb", "a␌b"),
            ("a‛␌b", "a␌b", "a‛␌b"),
        ] {
            assert_eq!(from_standard(standard), disk, "from_standard({standard:?})");
            assert_eq!(to_standard(disk), read_back);
            assert_eq!(is_canonical_standard_name(standard), standard == read_back);
        }
        assert_eq!(from_standard("．"), "．");
        assert_eq!(from_standard("x␌y"), "x\x0cy");
        assert_eq!(from_standard("a␡b"), "a\x7fb");
        assert_eq!(from_standard("end‛"), "end‛‛");
    }

    /// The two encodings and their stand-ins, side by side.
    #[test]
    fn every_reserved_character() {
        for b in 0u32..0x80 {
            let c = char::from_u32(b).unwrap();
            let s = c.to_string();
            let standard = Encoding::STANDARD.encode(&s);
            let base = Encoding::BASE.encode(&s);
            match c {
                '\0' => {
                    assert_eq!(standard, "␀");
                    assert_eq!(base, "␀");
                }
                '/' => {
                    assert_eq!(standard, "／");
                    assert_eq!(base, "／");
                }
                '.' => {
                    assert_eq!(standard, "．");
                    assert_eq!(base, "．");
                }
                '\u{01}'..='\u{1F}' => {
                    assert_eq!(standard, char::from_u32(0x2400 + b).unwrap().to_string());
                    assert_eq!(base, s);
                }
                '\u{7F}' => {
                    assert_eq!(standard, "␡");
                    assert_eq!(base, s);
                }
                _ => {
                    assert_eq!(standard, s);
                    assert_eq!(base, s);
                }
            }
        }
        // Stand-ins already present are quoted; the last control picture,
        // U+2420 (SYMBOL FOR SPACE) and its neighbours are not stand-ins.
        assert_eq!(Encoding::STANDARD.encode("␀␁␟␠␡␢／‛"), "‛␀‛␁‛␟␠‛␡␢‛／‛‛");
        assert_eq!(Encoding::BASE.encode("␀␁␟␠␡␢／‛"), "‛␀␁␟␠␡␢‛／‛‛");
        assert_eq!(Encoding::STANDARD.decode("␀␁␟␠␡␢／"), "\0\x01\x1f␠\x7f␢/");
        assert_eq!(Encoding::BASE.decode("␀␁␟␠␡␢／"), "\0␁␟␠␡␢/");
    }

    /// The whole-name dot rules apply to whole names only.
    #[test]
    fn dot_names() {
        for e in [Encoding::STANDARD, Encoding::BASE] {
            check(e, ".", "．");
            check(e, "..", "．．");
            check(e, "．", "‛．");
            check(e, "．．", "‛．‛．");
            check(e, "...", "...");
            check(e, "．．．", "．．．");
            check(e, "a．", "a．");
            check(e, "", "");
            // A quoted full stop inside a name is no dot name: the quote
            // quotes nothing and is kept.
            assert_eq!(e.decode("a‛．"), "a‛．");
            assert_eq!(e.decode("‛．．"), "‛．．");
        }
    }

    /// Characters with a bias to the ones the encodings care about.
    fn awkward_char() -> impl Strategy<Value = char> {
        prop_oneof![
            prop::sample::select(vec![
                '\0',
                '/',
                '.',
                '\u{01}',
                '\x0c',
                '\u{1F}',
                '\u{7F}',
                ' ',
                'a',
                'é',
                QUOTE,
                SYMBOL_NUL,
                '\u{2401}',
                '\u{240C}',
                '\u{241F}',
                '\u{2420}',
                SYMBOL_DEL,
                FULLWIDTH_SLASH,
                FULLWIDTH_DOT,
                '\u{FFFD}',
                '\u{2400}',
            ]),
            any::<char>(),
        ]
    }

    fn awkward_name() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::collection::vec(awkward_char(), 0..12).prop_map(|v| v.into_iter().collect()),
            prop::sample::select(vec![".", "..", "．", "．．", "‛．", "‛．‛．", "‛", "‛‛"])
                .prop_map(str::to_owned),
        ]
    }

    /// What the local file system can hold as one name.
    fn disk_name() -> impl Strategy<Value = String> {
        awkward_name().prop_filter("a file name", |s| {
            !s.is_empty() && s != "." && s != ".." && !s.contains(['\0', '/'])
        })
    }

    /// Whether `y` is an output of `e.encode`, by a rule of its own: no
    /// raw reserved character, every quote quotes a stand-in or a quote,
    /// and the dot names in their encoded forms only.
    fn canonical_by_rule(e: Encoding, y: &str) -> bool {
        if matches!(y, "．" | "．．" | "‛．" | "‛．‛．") {
            return true;
        }
        if matches!(y, "." | "..") {
            return false;
        }
        let mut chars = y.chars();
        while let Some(c) = chars.next() {
            if e.stand_in(c).is_some() {
                return false;
            }
            if c == QUOTE {
                match chars.next() {
                    Some(n) if n == QUOTE || e.reserved(n).is_some() => {}
                    _ => return false,
                }
            }
        }
        true
    }

    proptest! {
        #[test]
        fn decode_inverts_encode(x in awkward_name()) {
            for e in [Encoding::STANDARD, Encoding::BASE, ZERO, SLASH, CTL, DEL, DOT] {
                prop_assert_eq!(e.decode(&e.encode(&x)), x.clone());
            }
        }

        #[test]
        fn encode_inverts_decode_on_canonical_text_only(y in awkward_name()) {
            for e in [Encoding::STANDARD, Encoding::BASE] {
                prop_assert_eq!(
                    e.encode(&e.decode(&y)) == y,
                    canonical_by_rule(e, &y),
                    "{:?} with {:?}", y, e
                );
                let encoded = e.encode(&y);
                prop_assert!(canonical_by_rule(e, &encoded));
            }
        }

        /// Law 3, the one the tool relies on for source names.
        #[test]
        fn disk_names_without_quotes_survive(d in disk_name()) {
            if !d.contains(QUOTE) {
                prop_assert_eq!(from_standard(&to_standard(&d)), d.clone());
            }
            prop_assert_eq!(
                is_canonical_disk_name(&d),
                Encoding::BASE.encode(&Encoding::BASE.decode(&d)) == d
            );
        }

        /// Law 4: every Standard name rclone makes survives the disk.
        #[test]
        fn standard_names_survive(x in awkward_name()) {
            let s = Encoding::STANDARD.encode(&x);
            prop_assert_eq!(to_standard(&from_standard(&s)), s.clone());
            let t = to_standard(&x);
            prop_assert_eq!(to_standard(&from_standard(&t)), t);
        }

        /// base32768 text, whatever characters it uses, survives the disk,
        /// and the disk form of any text never holds NUL or `/`.
        #[test]
        fn base32768_survives(bytes in prop::collection::vec(any::<u8>(), 1..200)) {
            let s = super::super::base32768::encode(&bytes);
            let disk = from_standard(&s);
            prop_assert!(!disk.contains(['\0', '/']));
            prop_assert_eq!(to_standard(&disk), s);
        }

        /// Law 5.
        #[test]
        fn outputs_are_safe(x in awkward_name()) {
            let t = to_standard(&x);
            let raw = |c: char| c == '\0' || c == '/' || c == '\u{7F}' || c < ' ';
            prop_assert!(!t.contains(raw), "{:?}", t);
            let f = from_standard(&x);
            prop_assert!(!f.contains(['\0', '/']));
            for out in [&t, &f] {
                prop_assert!(out.as_str() != "." && out.as_str() != "..");
                prop_assert_eq!(out.is_empty(), x.is_empty());
            }
        }
    }
}
