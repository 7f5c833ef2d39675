//! The decrypted view of a store and its FUSE adapter (filled in by the mount work).
