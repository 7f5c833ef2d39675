//! JOSE and Tang decoders from hostile bytes: JWS parse and verify (and
//! the clevis advertisement check), compact JWE and tang pin parse and
//! decrypt, JWK parse, and the server's `/rec` validation and exchange.
//! Errors only, never a panic.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use ssformat::jose::clevis::{verify_advertisement, TangPin};
use ssformat::jose::ecmr::{self, RecRequest};
use ssformat::jose::jwe::CompactJwe;
use ssformat::jose::jws::Jws;
use ssformat::jose::{PrivateKey, PublicKey};

static SERVER: OnceLock<PrivateKey> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let server = SERVER.get_or_init(|| PrivateKey::from_random(&[0x42; 66]).expect("fixed key"));

    if let Ok(jws) = Jws::parse(data) {
        let _ = jws.verified_by(server.public());
        let _ = jws.payload();
    }
    let _ = verify_advertisement(data, None);
    let _ = verify_advertisement(data, Some("AAAA"));

    if let Ok(req) = RecRequest::parse(data) {
        if let Ok(y) = req.exchange(server) {
            let _ = ecmr::reply_json(&y);
        }
    }
    let _ = ecmr::parse_reply(data);

    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = PublicKey::from_jwk(&value);
        let _ = PublicKey::from_jwk_lenient(&value);
        let _ = PrivateKey::from_jwk(&value);
    }

    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(jwe) = CompactJwe::parse(text) {
            let _ = jwe.decrypt_a256gcm(&[7; 32]);
        }
        if let Ok(pin) = TangPin::parse(text) {
            let _ = pin.decrypt(&pin.epk);
        }
    }
});
