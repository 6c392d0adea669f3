//! Frame boundaries: a tagged message is `tag:u8, len:i32 (includes itself), body`; the startup
//! packet is `len:i32, body` with no tag.
//!
//! Invariant: a declared length is checked against `max` before any caller reserves memory for it.

use super::ProtocolError;

/// Bytes of a tagged message header (tag + length).
pub const HEADER_LEN: usize = 5;

/// The body length declared by a tagged header, validated against `max` (the whole frame size).
/// Returns `Ok(None)` when fewer than [`HEADER_LEN`] bytes are available.
pub fn tagged_len(buf: &[u8], max: usize) -> Result<Option<(u8, usize)>, ProtocolError> {
    let Some(header) = buf.get(..HEADER_LEN) else {
        return Ok(None);
    };
    let tag = header[0];
    let declared = i32::from_be_bytes([header[1], header[2], header[3], header[4]]);
    let Ok(len) = usize::try_from(declared) else {
        return Err(ProtocolError::BadLength(i64::from(declared)));
    };
    if len < 4 || len.saturating_add(1) > max {
        return Err(ProtocolError::BadLength(i64::from(declared)));
    }
    Ok(Some((tag, len + 1)))
}

/// If `buf` starts with a whole tagged frame, its tag and total length.
pub fn complete_frame(buf: &[u8], max: usize) -> Result<Option<(u8, usize)>, ProtocolError> {
    match tagged_len(buf, max)? {
        Some((tag, total)) if buf.len() >= total => Ok(Some((tag, total))),
        _ => Ok(None),
    }
}

/// Largest startup packet accepted (PgBouncer and PostgreSQL use 10000).
pub const MAX_STARTUP_LEN: usize = 10_000;

/// The total length of an untagged startup packet once its 4-byte length is available.
pub fn startup_len(buf: &[u8]) -> Result<Option<usize>, ProtocolError> {
    let Some(header) = buf.get(..4) else {
        return Ok(None);
    };
    let declared = i32::from_be_bytes([header[0], header[1], header[2], header[3]]);
    match usize::try_from(declared) {
        Ok(len) if (8..=MAX_STARTUP_LEN).contains(&len) => Ok(Some(len)),
        _ => Err(ProtocolError::BadLength(i64::from(declared))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn header_needs_five_bytes() {
        assert_eq!(tagged_len(b"Q\0\0", 100), Ok(None));
        assert_eq!(tagged_len(b"Q\0\0\0\x05", 100), Ok(Some((b'Q', 6))));
    }

    #[test]
    fn rejects_short_negative_and_huge_lengths() {
        assert!(tagged_len(b"Q\0\0\0\x03", 100).is_err());
        assert!(tagged_len(b"Q\xff\xff\xff\xff", 100).is_err());
        assert!(tagged_len(b"Q\0\0\x10\0", 100).is_err());
    }

    #[test]
    fn complete_frame_waits_for_body() {
        assert_eq!(complete_frame(b"Z\0\0\0\x05", 100), Ok(None));
        assert_eq!(complete_frame(b"Z\0\0\0\x05I", 100), Ok(Some((b'Z', 6))));
    }

    #[test]
    fn startup_len_bounds() {
        assert_eq!(startup_len(&[0, 0, 0, 8]), Ok(Some(8)));
        assert!(startup_len(&[0, 0, 0, 7]).is_err());
        assert!(startup_len(&[0, 1, 0, 0]).is_err());
    }

    proptest! {
        #[test]
        fn never_panics(buf in proptest::collection::vec(any::<u8>(), 0..64), max in 0usize..1000) {
            let _ = tagged_len(&buf, max);
            let _ = complete_frame(&buf, max);
            let _ = startup_len(&buf);
        }
    }
}
