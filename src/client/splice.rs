//! Rewriting a batch of relayed bytes without copying it when nothing changes: a list of edits
//! (drop a message, insert bytes) against the read buffer, applied into a reusable output buffer.

use bytes::{BufMut, BytesMut};

#[derive(Debug, Clone, Copy)]
enum Edit {
    Drop { start: usize, len: usize },
    Insert { at: usize, from: usize, to: usize },
}

/// Edits for one batch, plus the bytes they insert.
#[derive(Debug, Default)]
pub struct Splice {
    edits: Vec<Edit>,
    scratch: BytesMut,
}

impl Splice {
    /// Forgets the previous batch (keeps the allocations).
    pub fn clear(&mut self) {
        self.edits.clear();
        self.scratch.clear();
    }

    /// Whether the batch can be forwarded as it is.
    pub fn is_empty(&self) -> bool {
        self.edits.is_empty()
    }

    /// Drops `len` bytes at `start`.
    pub fn drop_range(&mut self, start: usize, len: usize) {
        self.edits.push(Edit::Drop { start, len });
    }

    /// Inserts what `write` appends, at position `at` of the batch.
    pub fn insert_with(&mut self, at: usize, write: impl FnOnce(&mut BytesMut)) {
        let from = self.scratch.len();
        write(&mut self.scratch);
        let to = self.scratch.len();
        self.edits.push(Edit::Insert { at, from, to });
    }

    /// Writes `src[..end]` with the edits applied into `out`. Edits must have been added in
    /// increasing position order; inserts at a position go before a drop starting there.
    pub fn apply(&self, src: &[u8], end: usize, out: &mut BytesMut) {
        let mut pos = 0;
        for edit in &self.edits {
            match *edit {
                Edit::Drop { start, len } => {
                    out.put_slice(src.get(pos..start).unwrap_or_default());
                    pos = start + len;
                }
                Edit::Insert { at, from, to } => {
                    if at > pos {
                        out.put_slice(src.get(pos..at).unwrap_or_default());
                        pos = at;
                    }
                    out.put_slice(self.scratch.get(from..to).unwrap_or_default());
                }
            }
        }
        out.put_slice(src.get(pos..end).unwrap_or_default());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_and_inserts_in_order() {
        let mut s = Splice::default();
        s.insert_with(0, |b| b.put_slice(b"<"));
        s.drop_range(2, 3);
        s.insert_with(6, |b| b.put_slice(b"!"));
        let mut out = BytesMut::new();
        s.apply(b"abcdefgh", 8, &mut out);
        assert_eq!(&out[..], b"<abf!gh");
    }
}
