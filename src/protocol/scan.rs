//! The relay's streaming scanner: walks a byte stream message by message, looking at headers only,
//! so whole batches of messages can be forwarded with one write.
//!
//! Owns: where the current message ends, across reads of any size. A body is only shown to the
//! visitor for the few tags it asks for (and those must arrive whole; they are small); every other
//! body is skipped without being looked at, even when it spans many reads.
//!
//! Invariant: `scan` never consumes a partial header, and never consumes part of a message whose
//! body the visitor wants, so a caller that keeps the unconsumed tail and appends the next read sees
//! every message exactly once.

use super::ProtocolError;
use super::frame::{HEADER_LEN, tagged_len};

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

    /// Scans `buf`; `wants_body(tag)` says which messages must be seen whole, and `visit` is called
    /// with each new message's tag, its body (for those; else empty) and its offset in `buf`.
    pub fn scan(
        &mut self,
        buf: &[u8],
        wants_body: impl Fn(u8) -> bool,
        mut visit: impl FnMut(u8, &[u8], usize) -> Flow,
    ) -> Result<Scanned, ProtocolError> {
        let mut pos = 0;
        loop {
            if self.remaining > 0 {
                let take = self.remaining.min(buf.len() - pos);
                self.remaining -= take;
                pos += take;
                if self.remaining > 0 {
                    return Ok(Scanned {
                        consumed: pos,
                        stopped: false,
                    });
                }
            }
            let rest = buf.get(pos..).unwrap_or_default();
            let Some((tag, total)) = tagged_len(rest, self.max_len)? else {
                return Ok(Scanned {
                    consumed: pos,
                    stopped: false,
                });
            };
            let body: &[u8] = if wants_body(tag) {
                match rest.get(HEADER_LEN..total) {
                    Some(body) => body,
                    None => {
                        return Ok(Scanned {
                            consumed: pos,
                            stopped: false,
                        });
                    }
                }
            } else {
                &[]
            };
            match visit(tag, body, pos) {
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
        crate::protocol::backend::ready_for_query(&mut buf, b'I');
        buf.to_vec()
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
                .scan(
                    &pending,
                    |t| t == b'S' || t == b'Z',
                    |t, b, _| {
                        seen.push((t, b.to_vec()));
                        Flow::Continue
                    },
                )
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
            |_| false,
            |t, _, _| {
                if t == b'D' {
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
            |_| false,
            |t, _, _| {
                if t == b'C' {
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

    proptest! {
        #[test]
        fn chunking_invariant(chunks in proptest::collection::vec(1usize..20, 1..10)) {
            let data = stream();
            prop_assert_eq!(feed(&data, &chunks), feed(&data, &[data.len()]));
        }

        #[test]
        fn arbitrary_bytes_never_panic(buf in proptest::collection::vec(any::<u8>(), 0..256)) {
            let mut scanner = Scanner::new(1024);
            let _ = scanner.scan(&buf, |t| t == b'Z', |_, _, _| Flow::Continue);
        }
    }
}
