//! The primitive field readers of the wire format: big-endian integers at an offset and
//! NUL-terminated strings.
//!
//! Owns: the one copy of each; every message reader in the crate builds on these.
//! Does not: know message shapes (see [`super::reply`], [`super::startup`]) or frames
//! ([`super::frame`]).
//! Invariant: every reader is bounds-checked and returns `None` past the end; none panics.

/// The big-endian `i16` at `at`.
pub fn be_i16(bytes: &[u8], at: usize) -> Option<i16> {
    let b = bytes.get(at..at.checked_add(2)?)?;
    Some(i16::from_be_bytes([b[0], b[1]]))
}

/// The big-endian `i32` at `at`.
pub fn be_i32(bytes: &[u8], at: usize) -> Option<i32> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// Splits a NUL-terminated byte string off `bytes`: (the string without its NUL, the rest).
pub fn split_cstr(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let nul = bytes.iter().position(|&b| b == 0)?;
    Some((bytes.get(..nul)?, bytes.get(nul + 1..)?))
}

/// [`split_cstr`] for a string that must be UTF-8.
pub fn take_cstr(bytes: &[u8]) -> Option<(&str, &[u8])> {
    let (s, rest) = split_cstr(bytes)?;
    Some((std::str::from_utf8(s).ok()?, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_bounds_checked() {
        let bytes = [0, 0, 1, 2, 0xff, 0xfe];
        assert_eq!(be_i32(&bytes, 0), Some(258));
        assert_eq!(be_i32(&bytes, 2), Some(0x0102_fffe));
        assert_eq!(be_i32(&bytes, 3), None);
        assert_eq!(be_i32(&bytes, usize::MAX), None);
        assert_eq!(be_i16(&bytes, 4), Some(-2));
        assert_eq!(be_i16(&bytes, 5), None);
    }

    #[test]
    fn strings_stop_at_the_first_nul() {
        assert_eq!(split_cstr(b"ab\0cd\0"), Some((&b"ab"[..], &b"cd\0"[..])));
        assert_eq!(split_cstr(b"\0"), Some((&b""[..], &b""[..])));
        assert_eq!(split_cstr(b"no nul"), None);
        assert_eq!(take_cstr(b"x\0rest"), Some(("x", &b"rest"[..])));
        assert_eq!(take_cstr(b"\xff\0"), None, "not UTF-8");
    }
}
