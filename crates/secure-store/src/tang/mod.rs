//! Tang on the server and the clevis tang pin on the client (STUB: the
//! jose/tang work fills this in; the signatures are the contract).

use std::path::Path;

/// A Tang failure, with the HTTP status tangd 11 answers for it.
#[derive(Debug, thiserror::Error)]
pub enum TangError {
    #[error("not implemented yet")]
    Unimplemented,
}

impl TangError {
    /// The HTTP status tangd answers for this error (400, 403, 404, 500).
    pub fn status(&self) -> u16 {
        500
    }
}

/// The server's Tang keys, loaded from a key directory in tangd's format.
#[derive(Debug)]
pub struct KeySet {}

impl KeySet {
    /// Creates `dir` (0700) with one ES512 signing and one ECMR exchange key (files 0600).
    pub fn generate(_dir: &Path) -> Result<(), TangError> {
        Err(TangError::Unimplemented)
    }
    /// Hides the current keys (`.<thp>.jwk`) and generates a new pair.
    pub fn rotate(_dir: &Path) -> Result<(), TangError> {
        Err(TangError::Unimplemented)
    }
    /// Loads every key (hidden ones too) from `dir`.
    pub fn load(_dir: &Path) -> Result<KeySet, TangError> {
        Err(TangError::Unimplemented)
    }
    /// The body of `GET /adv` (`thp: None`) or `GET /adv/{thp}`.
    pub fn adv(&self, _thp: Option<&str>) -> Result<Vec<u8>, TangError> {
        Err(TangError::Unimplemented)
    }
    /// The body of `POST /rec/{kid}`; `kid` may be any tangd-accepted thumbprint.
    pub fn rec(&self, _kid: &str, _body: &[u8]) -> Result<Vec<u8>, TangError> {
        Err(TangError::Unimplemented)
    }
    /// The S256 thumbprint of the exchange key `kid` refers to (its store name), if any.
    pub fn exchange_key_id(&self, _kid: &str) -> Option<String> {
        None
    }
}
