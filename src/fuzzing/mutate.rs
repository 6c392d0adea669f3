//! A small seeded mutator for the bounded CI run: libFuzzer-style byte mutations of valid seeds
//! (bit flips, interesting bytes, insertions, deletions, duplications, dictionary words, splices
//! of two seeds, truncation), plus a share of purely random inputs. Deterministic for a seed.

/// xorshift64*: small, fast, and the same on every machine.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed` (0 is replaced, xorshift cannot leave it).
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        usize::try_from(self.next_u64() % u64::try_from(n).unwrap_or(u64::MAX)).unwrap_or(0)
    }

    /// A random byte.
    pub fn byte(&mut self) -> u8 {
        self.next_u64().to_le_bytes()[0]
    }
}

/// Bytes that often sit on a parser's edges.
const INTERESTING: &[u8] = &[
    0, 1, 0x7f, 0x80, 0xff, b'\n', b'\r', b'\t', b' ', b'"', b'\'', b'=', b',', b';', b'#', b'\\',
    b'[', b']', b'%', b'@', b'/', b'$', b':',
];

/// The longest input made.
pub const MAX_LEN: usize = 8192;

/// One to eight mutations of a random seed from `seeds`, using `dict` words.
pub fn mutate(rng: &mut Rng, seeds: &[Vec<u8>], dict: &[&[u8]]) -> Vec<u8> {
    if seeds.is_empty() || rng.below(16) == 0 {
        let len = rng.below(256);
        return (0..len).map(|_| rng.byte()).collect();
    }
    let mut data = seeds[rng.below(seeds.len())].clone();
    for _ in 0..=rng.below(8) {
        mutate_once(rng, &mut data, seeds, dict);
    }
    data.truncate(MAX_LEN);
    data
}

fn mutate_once(rng: &mut Rng, data: &mut Vec<u8>, seeds: &[Vec<u8>], dict: &[&[u8]]) {
    let len = data.len();
    let at = rng.below(len + 1);
    match rng.below(9) {
        0 if len > 0 => {
            let i = rng.below(len);
            data[i] ^= 1 << rng.below(8);
        }
        1 if len > 0 => {
            let i = rng.below(len);
            data[i] = INTERESTING[rng.below(INTERESTING.len())];
        }
        2 => {
            let n = rng.below(8) + 1;
            let bytes: Vec<u8> = (0..n).map(|_| rng.byte()).collect();
            data.splice(at..at, bytes);
        }
        3 if len > 0 => {
            let start = rng.below(len);
            let n = rng.below(len - start) + 1;
            data.drain(start..start + n);
        }
        4 if len > 0 => {
            // Duplicate a range (repeated attributes, parameters, lines, messages).
            let start = rng.below(len);
            let end = (start + rng.below(64) + 1).min(len);
            let copy = data[start..end].to_vec();
            for _ in 0..=rng.below(3) {
                data.splice(at..at, copy.iter().copied());
            }
        }
        5 if !dict.is_empty() => {
            let word = dict[rng.below(dict.len())];
            data.splice(at..at, word.iter().copied());
        }
        6 => {
            // Splice: this input up to `at`, another seed from somewhere on.
            let other = &seeds[rng.below(seeds.len())];
            let from = rng.below(other.len() + 1);
            data.truncate(at);
            data.extend_from_slice(&other[from..]);
        }
        7 if len > 0 => data.truncate(rng.below(len)),
        _ if len >= 4 => {
            // A 32-bit field set to an edge value (lengths, counts, codes).
            let i = rng.below(len - 3);
            let value: u32 =
                [0, 3, 4, 5, 8, 0x7fff_ffff, 0xffff_ffff, 0x8000_0000, 10_000][rng.below(9)];
            data[i..i + 4].copy_from_slice(&value.to_be_bytes());
        }
        _ => data.push(rng.byte()),
    }
}
