//! Random bytes from the operating system (`getrandom`), for nonces, salts
//! and new keys. A failure of the OS generator is not recoverable: we abort
//! rather than continue with weak randomness.

/// Returns `N` random bytes.
pub fn bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    fill(&mut out);
    out
}

/// Fills `buf` with random bytes.
pub fn fill(buf: &mut [u8]) {
    getrandom::getrandom(buf).expect("the operating system's random number generator failed");
}

#[cfg(test)]
mod tests {
    #[test]
    fn two_draws_differ() {
        assert_ne!(super::bytes::<32>(), super::bytes::<32>());
    }
}
