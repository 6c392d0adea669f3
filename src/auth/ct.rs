//! Constant-time comparison.
//!
//! Owns: comparing secret-derived bytes without an early exit.
//!
//! Does not: hide lengths; every caller compares values whose length is public (fixed-size keys,
//! 35-byte md5 responses).
//!
//! Invariants: the time taken depends only on the lengths of the inputs, never on where they
//! differ.

// Written here rather than pulling `subtle`: one loop, and `black_box` is enough to keep the
// optimiser from turning the fold back into an early-exit comparison.

/// `true` when `a` and `b` are equal, examining every byte whatever the first difference.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a
        .iter()
        .zip(b)
        .fold(0u8, |acc, (x, y)| std::hint::black_box(acc | (x ^ y)));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::ct_eq;

    #[test]
    fn equal_and_unequal() {
        assert!(ct_eq(b"", b""));
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
        assert!(!ct_eq(b"xbc", b"abc"));
    }
}
