//! Integration tests of the `secure-store` binary: one test binary, one
//! module per area (ripgrep's layout). They run the real binary, and real
//! `rclone` for interop.

mod cli;
