-- Secure Store server state, schema version 2: the Tang keys the
-- replicas share (docs/STATE.md "Shared Tang keys").
--
-- Same dialect as 0001 (TEXT and BIGINT only). A row holds one private
-- JWK sealed with AES-256-GCM under the operator's key-encryption key
-- (the KEK never reaches the database): `sealed` is base64url of
-- nonce (12 bytes) || ciphertext || tag (16 bytes); the additional data
-- binds `thumbprint` and `format`, so a row copied under another
-- thumbprint does not open. The database never sees a key in clear.

CREATE TABLE tang_keys (
    thumbprint TEXT PRIMARY KEY,          -- S256 JWK thumbprint, base64url
    hidden     BIGINT NOT NULL CHECK (hidden IN (0, 1)),
    created    BIGINT NOT NULL,           -- Unix seconds
    format     BIGINT NOT NULL,           -- sealing format version (1)
    sealed     TEXT NOT NULL
);
