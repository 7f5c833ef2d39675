//! The audit log's hash chain, shared by every [`super::Store`] backend.
//!
//! Each entry's hash covers the previous entry's hash and a canonical JSON
//! encoding of the entry itself, so editing, reordering or deleting an entry
//! in the middle breaks every later link. The format is specified in
//! `docs/AUDIT.md` precisely enough for an outside script (Python's
//! `json.dumps(…, sort_keys=True, separators=(",", ":"),
//! ensure_ascii=False)` produces the same bytes) to verify a log.
//!
//! The verifier works on the stored text of each column (not on values
//! parsed back), so a row whose address was rewritten into another
//! spelling of the same address is still reported as tampered.

use serde::Serialize;
use sha2::{Digest, Sha256};

/// The `prev_hash` of the first entry: 64 zeros.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One entry as hashed: the stored columns except the two hashes. The
/// fields are declared in lexicographic order of their names, which is the
/// order serde_json writes them in: that order is part of the format.
#[derive(Debug, Serialize)]
pub struct ChainEntry<'a> {
    pub address: Option<&'a str>,
    pub decision: &'a str,
    pub device: Option<&'a str>,
    pub endpoint: &'a str,
    pub key_id: Option<&'a str>,
    pub reason: &'a str,
    pub seq: i64,
    pub time: i64,
}

impl ChainEntry<'_> {
    /// Compact JSON, keys sorted, no whitespace, non-ASCII as UTF-8,
    /// only `"`, `\` and control characters escaped.
    pub fn canonical_json(&self) -> Vec<u8> {
        // Serialising a struct of strings and integers cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// `hex(SHA-256(prev_hash ‖ canonical_json))`, lower case; `prev_hash`
    /// is taken as its 64 ASCII hex characters.
    pub fn hash(&self, prev_hash: &str) -> String {
        let mut h = Sha256::new();
        h.update(prev_hash.as_bytes());
        h.update(self.canonical_json());
        hex::encode(h.finalize())
    }
}

/// Walks a chain in `seq` order: feed every stored row to [`Verifier::push`],
/// then read the result from [`Verifier::finish`].
#[derive(Debug)]
pub struct Verifier {
    entries: u64,
    last_seq: i64,
    last_hash: String,
    first_bad_seq: Option<i64>,
}

impl Default for Verifier {
    fn default() -> Self {
        Verifier {
            entries: 0,
            last_seq: 0,
            last_hash: GENESIS_HASH.to_owned(),
            first_bad_seq: None,
        }
    }
}

impl Verifier {
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks one stored row: its seq follows the previous one (the first
    /// is 1), its `prev_hash` is the previous row's `hash` and its `hash`
    /// is right. After the first bad row only the count goes on.
    pub fn push(&mut self, entry: &ChainEntry<'_>, prev_hash: &str, hash: &str) {
        self.entries += 1;
        if self.first_bad_seq.is_some() {
            return;
        }
        let ok = entry.seq == self.last_seq + 1
            && prev_hash == self.last_hash
            && entry.hash(prev_hash) == hash;
        if ok {
            self.last_seq = entry.seq;
            self.last_hash = hash.to_owned();
        } else {
            self.first_bad_seq = Some(entry.seq);
        }
    }

    pub fn finish(self) -> super::AuditVerification {
        super::AuditVerification {
            entries: self.entries,
            first_bad_seq: self.first_bad_seq,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> ChainEntry<'static> {
        ChainEntry {
            address: Some("192.0.2.7"),
            decision: "refused",
            device: Some("dev-\"1\"\n\u{e9}"),
            endpoint: "POST /rec",
            key_id: None,
            reason: "revoked",
            seq: 1,
            time: 1_700_000_000,
        }
    }

    #[test]
    fn canonical_json_is_sorted_compact_and_minimally_escaped() {
        let json = String::from_utf8(entry().canonical_json()).unwrap();
        assert_eq!(
            json,
            "{\"address\":\"192.0.2.7\",\"decision\":\"refused\",\"device\":\"dev-\\\"1\\\"\\n\u{e9}\",\
             \"endpoint\":\"POST /rec\",\"key_id\":null,\"reason\":\"revoked\",\"seq\":1,\"time\":1700000000}"
        );
    }

    #[test]
    fn hash_covers_prev_hash_and_entry() {
        let e = entry();
        let h = e.hash(GENESIS_HASH);
        assert_eq!(h.len(), 64);
        let mut expect = Sha256::new();
        expect.update(GENESIS_HASH.as_bytes());
        expect.update(e.canonical_json());
        assert_eq!(h, hex::encode(expect.finalize()));
        assert_ne!(h, e.hash(&h));
    }

    #[test]
    fn verifier_reports_first_bad_seq() {
        let e1 = entry();
        let h1 = e1.hash(GENESIS_HASH);
        let mut e2 = entry();
        e2.seq = 2;
        let h2 = e2.hash(&h1);
        let mut v = Verifier::new();
        v.push(&e1, GENESIS_HASH, &h1);
        v.push(&e2, &h1, &h2);
        assert_eq!(v.finish().first_bad_seq, None);

        let mut v = Verifier::new();
        v.push(&e1, GENESIS_HASH, &h1);
        e2.reason = "ok";
        v.push(&e2, &h1, &h2);
        let r = v.finish();
        assert_eq!((r.entries, r.first_bad_seq), (2, Some(2)));
    }
}
