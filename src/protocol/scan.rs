//! The relay's streaming scanner: walks a byte stream message by message, looking at headers only,
//! so whole batches of messages can be forwarded with one write.
//!
//! Owns: where the current message ends, across reads of any size. A body is only shown to the
//! visitor for the few tags it asks for: whole (bounded by [`WHOLE_MAX`]: those are small), or
//! only its first bytes ([`Want::Head`]), so a large message (a 100 MB Query, a Bind carrying a
//! big value) streams through without being buffered; every other body is skipped without being
//! looked at, even when it spans many reads.
//!
//! Invariant: `scan` never consumes a partial header, and never consumes part of a message before
//! the part of its body the visitor wants is there, so a caller that keeps the unconsumed tail and
//! appends the next read sees every message exactly once. The bytes a caller must buffer to make
//! progress are at most `HEADER_LEN + WHOLE_MAX`.

use super::ProtocolError;
use super::frame::{HEADER_LEN, tagged_len};

/// The largest body the scanner waits for whole (a named Parse under prepared-statement
/// tracking, a server's ParameterStatus or CommandComplete). Anything longer that must be read
/// whole is refused rather than buffered.
pub const WHOLE_MAX: usize = 16 << 20;

/// The largest frame a client may send, as PostgreSQL refuses longer ones (`PQ_LARGE_MESSAGE_LIMIT`:
/// a length word over 1 GiB - 2 is "invalid message length"), in whole-frame bytes.
pub const MAX_FRONTEND_FRAME: usize = 0x3FFF_FFFE + 1;

/// How much of a message's body the visitor needs to see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// None: the body streams through unseen.
    Skip,
    /// All of it (refused beyond [`WHOLE_MAX`]).
    Whole,
    /// Its first `n` bytes (or all of it if shorter); the rest streams through.
    Head(usize),
}

/// What the visitor wants after seeing a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Keep scanning.
    Continue,
    /// Stop after this message (it is included in the consumed bytes).
    StopAfter,
    /// Stop before this message (it is not consumed).
    StopBefore,
}

/// The result of one [`Scanner::scan`] call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scanned {
    /// Bytes that may be forwarded (and dropped from the buffer).
    pub consumed: usize,
    /// Whether the visitor asked to stop.
    pub stopped: bool,
}

/// One message as the visitor sees it.
#[derive(Debug, Clone, Copy)]
pub struct Msg<'a> {
    /// The tag byte.
    pub tag: u8,
    /// The body, or the part of it asked for (empty for [`Want::Skip`]).
    pub body: &'a [u8],
    /// The declared body length (without the header).
    pub len: usize,
    /// Offset of the message in the scanned buffer.
    pub at: usize,
}

impl Msg<'_> {
    /// Whether `body` is the whole body.
    pub fn is_whole(&self) -> bool {
        self.body.len() == self.len
    }
}

/// Scanner state for one direction of one connection.
#[derive(Debug, Clone)]
pub struct Scanner {
    /// Body bytes of the current message not yet seen.
    remaining: usize,
    max_len: usize,
}

impl Scanner {
    /// A scanner that refuses messages longer than `max_len` bytes.
    pub fn new(max_len: usize) -> Self {
        Self {
            remaining: 0,
            max_len,
        }
    }

    /// Whether the stream is at a message boundary.
    pub fn at_boundary(&self) -> bool {
        self.remaining == 0
    }

    /// Refuses a bad header at the start of `buf` (when at a boundary), before anything waits
    /// for the body or for a server.
    pub fn check_header(&self, buf: &[u8]) -> Result<(), ProtocolError> {
        if self.remaining == 0 {
            tagged_len(buf, self.max_len)?;
        }
        Ok(())
    }

    /// Bytes a caller must hold at the start of its unconsumed tail before the next `scan` can
    /// make progress: the whole frame when the visitor waits for more of it than is buffered,
    /// else 0. `None` when the header there is invalid (the next `scan` reports it).
    pub fn needed(&self, buf: &[u8], want: impl Fn(u8, usize, &[u8]) -> Want) -> Option<usize> {
        if self.remaining > 0 {
            return Some(0);
        }
        let (tag, total) = tagged_len(buf, self.max_len).ok()??;
        let len = total - HEADER_LEN;
        let head = buf
            .get(HEADER_LEN..total.min(buf.len()))
            .unwrap_or_default();
        Some(match want(tag, len, head) {
            Want::Skip => 0,
            Want::Whole => total,
            Want::Head(n) => HEADER_LEN + n.min(len),
        })
    }

    /// Scans `buf`; `want(tag, len, head)` says how much of each message's body must be seen
    /// (`head` is what is buffered of it so far; it is asked again as more arrives), and `visit`
    /// is called once per message with what was asked for.
    pub fn scan(
        &mut self,
        buf: &[u8],
        want: impl Fn(u8, usize, &[u8]) -> Want,
        mut visit: impl FnMut(Msg<'_>) -> Flow,
    ) -> Result<Scanned, ProtocolError> {
        let mut pos = 0;
        let waiting = |consumed| {
            Ok(Scanned {
                consumed,
                stopped: false,
            })
        };
        loop {
            if self.remaining > 0 {
                let take = self.remaining.min(buf.len() - pos);
                self.remaining -= take;
                pos += take;
                if self.remaining > 0 {
                    return waiting(pos);
                }
            }
            let rest = buf.get(pos..).unwrap_or_default();
            let Some((tag, total)) = tagged_len(rest, self.max_len)? else {
                return waiting(pos);
            };
            let len = total - HEADER_LEN;
            let head = rest
                .get(HEADER_LEN..total.min(rest.len()))
                .unwrap_or_default();
            let shown = match want(tag, len, head) {
                Want::Skip => 0,
                Want::Whole if len > WHOLE_MAX => {
                    return Err(ProtocolError::TooLongToRead(len));
                }
                Want::Whole => len,
                Want::Head(n) => n.min(len),
            };
            let Some(body) = head.get(..shown) else {
                return waiting(pos);
            };
            match visit(Msg {
                tag,
                body,
                len,
                at: pos,
            }) {
                Flow::StopBefore => {
                    return Ok(Scanned {
                        consumed: pos,
                        stopped: true,
                    });
                }
                flow => {
                    let available = total.min(rest.len());
                    pos += available;
                    self.remaining = total - available;
                    if flow == Flow::StopAfter {
                        return Ok(Scanned {
                            consumed: pos,
                            stopped: true,
                        });
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use proptest::prelude::*;

    fn stream() -> Vec<u8> {
        let mut buf = BytesMut::new();
        crate::protocol::backend::command_complete(&mut buf, "SELECT 1");
        crate::protocol::backend::data_row(&mut buf, [Some("hello world"), None]);
        crate::protocol::backend::parameter_status(&mut buf, "TimeZone", "UTC");
        crate::protocol::backend::ready_for_query(&mut buf, crate::protocol::TxStatus::Idle);
        buf.to_vec()
    }

    fn whole_sz(tag: u8, _: usize, _: &[u8]) -> Want {
        if tag == b'S' || tag == b'Z' {
            Want::Whole
        } else {
            Want::Skip
        }
    }

    /// Feeds `data` in the given chunk sizes; returns the (tag, body) pairs seen.
    fn feed(data: &[u8], chunks: &[usize]) -> Vec<(u8, Vec<u8>)> {
        let mut scanner = Scanner::new(1 << 20);
        let mut pending = Vec::new();
        let mut seen = Vec::new();
        let mut offset = 0;
        let mut sizes = chunks.iter().copied().cycle();
        while offset < data.len() {
            let n = sizes.next().unwrap_or(1).max(1).min(data.len() - offset);
            pending.extend_from_slice(&data[offset..offset + n]);
            offset += n;
            let scanned = scanner
                .scan(&pending, whole_sz, |m| {
                    seen.push((m.tag, m.body.to_vec()));
                    Flow::Continue
                })
                .unwrap();
            pending.drain(..scanned.consumed);
        }
        assert!(pending.is_empty());
        assert!(scanner.at_boundary());
        seen
    }

    #[test]
    fn whole_buffer() {
        let seen = feed(&stream(), &[1000]);
        let tags: Vec<u8> = seen.iter().map(|(t, _)| *t).collect();
        assert_eq!(tags, b"CDSZ");
        assert_eq!(seen[2].1, b"TimeZone\0UTC\0");
        assert_eq!(seen[3].1, b"I");
    }

    #[test]
    fn stop_after_and_before() {
        let data = stream();
        let mut scanner = Scanner::new(1 << 20);
        let r = scanner.scan(
            &data,
            |_, _, _| Want::Skip,
            |m| {
                if m.tag == b'D' {
                    Flow::StopBefore
                } else {
                    Flow::Continue
                }
            },
        );
        assert_eq!(
            r,
            Ok(Scanned {
                consumed: 14,
                stopped: true
            })
        );
        let r = scanner.scan(
            &data,
            |_, _, _| Want::Skip,
            |m| {
                if m.tag == b'C' {
                    Flow::StopAfter
                } else {
                    Flow::Continue
                }
            },
        );
        assert_eq!(
            r,
            Ok(Scanned {
                consumed: 14,
                stopped: true
            })
        );
    }

    fn header(tag: u8, len: usize) -> Vec<u8> {
        let mut h = vec![tag];
        h.extend_from_slice(&u32::try_from(len + 4).unwrap().to_be_bytes());
        h
    }

    #[test]
    fn a_head_is_shown_and_the_rest_streams() {
        let mut data = header(b'B', 10_000);
        data.extend_from_slice(b"\0stmt\0");
        data.resize(5 + 10_000, b'x');
        let mut scanner = Scanner::new(1 << 20);
        // Not enough of the head yet: nothing is consumed.
        let r = scanner.scan(&data[..7], |_, _, _| Want::Head(6), |_| Flow::Continue);
        assert_eq!(r.unwrap().consumed, 0);
        let mut seen = Vec::new();
        let r = scanner.scan(
            &data[..100],
            |_, _, _| Want::Head(6),
            |m| {
                seen.push((m.tag, m.body.to_vec(), m.len, m.is_whole()));
                Flow::Continue
            },
        );
        assert_eq!(r.unwrap().consumed, 100);
        assert_eq!(seen, [(b'B', b"\0stmt\0".to_vec(), 10_000, false)]);
        assert!(!scanner.at_boundary());
        let r = scanner.scan(&data[100..], |_, _, _| Want::Head(6), |_| Flow::Continue);
        assert_eq!(r.unwrap().consumed, data.len() - 100);
        assert!(scanner.at_boundary());
    }

    #[test]
    fn whole_bodies_are_bounded_and_needed_says_how_much() {
        let big = header(b'P', WHOLE_MAX + 1);
        let mut scanner = Scanner::new(usize::MAX);
        let r = scanner.scan(&big, |_, _, _| Want::Whole, |_| Flow::Continue);
        assert_eq!(r, Err(ProtocolError::TooLongToRead(WHOLE_MAX + 1)));
        let msg = header(b'P', 100_000);
        assert_eq!(scanner.needed(&msg, |_, _, _| Want::Whole), Some(100_005));
        assert_eq!(scanner.needed(&msg, |_, _, _| Want::Skip), Some(0));
        assert_eq!(scanner.needed(&msg, |_, _, _| Want::Head(10)), Some(15));
        // Skipped bodies are never waited for, whatever their length.
        let huge = header(b'Q', 0x3FFF_0000);
        let r = scanner.scan(&huge, |_, _, _| Want::Skip, |_| Flow::Continue);
        assert_eq!(r.unwrap().consumed, 5);
    }

    #[test]
    fn a_frontend_length_over_1_gib_is_refused_from_the_header() {
        let scanner = Scanner::new(MAX_FRONTEND_FRAME);
        assert!(scanner.check_header(&header(b'Q', 0x3FFF_FFFA)).is_ok());
        assert!(
            scanner
                .check_header(&[b'Q', 0x7F, 0xFF, 0xFF, 0xF0])
                .is_err()
        );
        assert!(scanner.check_header(&[b'Q', 0x40, 0, 0, 0]).is_err());
        assert!(scanner.check_header(&[b'Q', 0, 0, 0, 3]).is_err());
    }

    proptest! {
        #[test]
        fn chunking_invariant(chunks in proptest::collection::vec(1usize..20, 1..10)) {
            let data = stream();
            prop_assert_eq!(feed(&data, &chunks), feed(&data, &[data.len()]));
        }

        #[test]
        fn arbitrary_bytes_never_panic(buf in proptest::collection::vec(any::<u8>(), 0..256)) {
            let mut scanner = Scanner::new(1024);
            let _ = scanner.scan(&buf, |t, _, _| if t == b'Z' { Want::Whole } else { Want::Head(3) }, |_| Flow::Continue);
        }
    }
}
