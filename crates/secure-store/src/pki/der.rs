//! Just enough DER (ITU-T X.690) to write a subject name with several OU
//! attributes and to swap names inside a certificate rcgen made.
//!
//! Why: rcgen 0.13 keeps one value per attribute type in a distinguished
//! name, and our device certificates carry one `OU` per group. So the CA
//! issues with rcgen (extensions, serial, validity, key identifiers), then
//! [`replace_names`] puts our own subject and the CA certificate's exact
//! issuer bytes into the TBSCertificate (RFC 5280 §4.1), and the caller
//! signs the new TBS. Only definite lengths and one-byte tags occur in
//! what rcgen writes and what we read back here (our own output).

/// Tag bytes used here.
pub const SEQUENCE: u8 = 0x30;
pub const SET: u8 = 0x31;
pub const OID: u8 = 0x06;
pub const UTF8_STRING: u8 = 0x0c;
pub const BIT_STRING: u8 = 0x03;

/// OIDs of the name attributes we write (RFC 5280 Appendix A, X.520).
pub const OID_COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];
pub const OID_ORGANIZATION: &[u8] = &[0x55, 0x04, 0x0a];
pub const OID_ORG_UNIT: &[u8] = &[0x55, 0x04, 0x0b];

/// Encodes one TLV with a definite length.
pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

/// Splits one TLV off the front of `input`: (tag, content, rest).
pub fn split(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    if tag & 0x1f == 0x1f {
        return None; // multi-byte tags never occur in certificates we write
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | *b as usize);
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// The whole TLVs inside a constructed value's content, in order.
pub fn children(mut content: &[u8]) -> Option<Vec<&[u8]>> {
    let mut out = Vec::new();
    while !content.is_empty() {
        let (_, inner, rest) = split(content)?;
        let whole_len = content.len() - rest.len();
        debug_assert!(whole_len >= inner.len());
        out.push(&content[..whole_len]);
        content = rest;
    }
    Some(out)
}

/// A distinguished name: one RDN per attribute, UTF8String values, in
/// the order given (RFC 5280 §4.1.2.4).
pub fn name(attributes: &[(&[u8], &str)]) -> Vec<u8> {
    let mut rdns = Vec::new();
    for (oid, value) in attributes {
        let mut atv = tlv(OID, oid);
        atv.extend(tlv(UTF8_STRING, value.as_bytes()));
        rdns.extend(tlv(SET, &tlv(SEQUENCE, &atv)));
    }
    tlv(SEQUENCE, &rdns)
}

/// The parts of a certificate: (TBSCertificate TLV, signatureAlgorithm TLV).
pub fn certificate_parts(cert: &[u8]) -> Option<(&[u8], &[u8])> {
    let (tag, content, rest) = split(cert)?;
    if tag != SEQUENCE || !rest.is_empty() {
        return None;
    }
    let parts = children(content)?;
    match parts.as_slice() {
        [tbs, alg, _sig] => Some((tbs, alg)),
        _ => None,
    }
}

/// Returns `tbs` with its issuer and subject replaced (fields 3 and 5 of
/// a v3 TBSCertificate: version, serial, signature, issuer, validity,
/// subject, …).
pub fn replace_names(tbs: &[u8], issuer: &[u8], subject: &[u8]) -> Option<Vec<u8>> {
    let (tag, content, rest) = split(tbs)?;
    if tag != SEQUENCE || !rest.is_empty() {
        return None;
    }
    let mut fields = children(content)?;
    if fields.len() < 7 || fields[0].first() != Some(&0xa0) {
        return None;
    }
    fields[3] = issuer;
    fields[5] = subject;
    Some(tlv(SEQUENCE, &fields.concat()))
}

/// A certificate from a TBS, its algorithm identifier and a signature.
pub fn assemble(tbs: &[u8], alg: &[u8], signature: &[u8]) -> Vec<u8> {
    let mut bits = Vec::with_capacity(signature.len() + 1);
    bits.push(0); // no unused bits
    bits.extend_from_slice(signature);
    let mut body = tbs.to_vec();
    body.extend_from_slice(alg);
    body.extend(tlv(BIT_STRING, &bits));
    tlv(SEQUENCE, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_round_trip_at_the_edges() {
        for len in [0usize, 1, 127, 128, 255, 256, 65535, 65536, 65537] {
            let content = vec![7u8; len];
            let enc = tlv(SEQUENCE, &content);
            let (tag, got, rest) = split(&enc).unwrap();
            assert_eq!((tag, got.len(), rest.len()), (SEQUENCE, len, 0));
        }
    }

    #[test]
    fn truncated_input_is_refused() {
        let enc = tlv(SEQUENCE, &[1, 2, 3]);
        assert!(split(&enc[..enc.len() - 1]).is_none());
        assert!(split(&[]).is_none());
        assert!(split(&[0x30, 0x85, 1, 1, 1, 1, 1]).is_none());
    }

    #[test]
    fn a_name_parses_with_x509_parser() {
        let der = name(&[
            (OID_ORGANIZATION, "Secure Store"),
            (OID_ORG_UNIT, "a"),
            (OID_ORG_UNIT, "b"),
            (OID_COMMON_NAME, "dev-1"),
        ]);
        let (rest, parsed) = x509_parser::x509::X509Name::from_der(&der).unwrap();
        assert!(rest.is_empty());
        assert_eq!(parsed.to_string(), "O=Secure Store, OU=a, OU=b, CN=dev-1");
    }

    use x509_parser::prelude::FromDer;
}
