//! SCRAM-SHA-256 primitives (RFC 5802 section 3, with SHA-256 per RFC 7677).
//!
//! Owns: `Hi` (PBKDF2-HMAC-SHA-256), `HMAC`, `H`, and the key schedule.
//!
//! Does not: parse or build messages.
//!
//! Invariants: every function is total (no `Result`, no panic) for any input.

use hmac::{Hmac, Mac as _};
use sha2::{Digest as _, Sha256};

/// SHA-256 output length, the size of every SCRAM key.
pub(super) const KEY_LEN: usize = 32;

/// SHA-256's block size: an HMAC key of this length is used as is.
const BLOCK_LEN: usize = 64;

/// A SCRAM key (SaltedPassword, ClientKey, StoredKey, ServerKey, signatures).
pub(super) type Key = [u8; KEY_LEN];

/// `HMAC(key, parts[0] || parts[1] || ...)`.
pub(super) fn hmac(key: &Key, parts: &[&[u8]]) -> Key {
    // HMAC pads a key shorter than the block with zeros (RFC 2104), so a zero-padded 64-byte
    // key gives the same MAC while using the infallible fixed-size constructor: no error path
    // to handle for a condition that cannot happen.
    let mut block = [0u8; BLOCK_LEN];
    for (dst, src) in block.iter_mut().zip(key) {
        *dst = *src;
    }
    let mut mac = <Hmac<Sha256> as hmac::digest::KeyInit>::new(&block.into());
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// `H(data)`.
pub(super) fn h(data: &[u8]) -> Key {
    Sha256::digest(data).into()
}

/// `Hi(password, salt, iterations)`: the SaltedPassword.
pub(super) fn hi(password: &[u8], salt: &[u8], iterations: u32) -> Key {
    let mut out = [0u8; KEY_LEN];
    pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out);
    out
}

/// ClientKey = HMAC(SaltedPassword, "Client Key").
pub(super) fn client_key(salted_password: &Key) -> Key {
    hmac(salted_password, &[b"Client Key"])
}

/// ServerKey = HMAC(SaltedPassword, "Server Key").
pub(super) fn server_key(salted_password: &Key) -> Key {
    hmac(salted_password, &[b"Server Key"])
}

/// `a XOR b`.
pub(super) fn xor(a: &Key, b: &Key) -> Key {
    let mut out = [0u8; KEY_LEN];
    for ((o, x), y) in out.iter_mut().zip(a).zip(b) {
        *o = x ^ y;
    }
    out
}

/// The AuthMessage both sides sign: client-first-bare "," server-first "," client-final
/// without its proof.
pub(super) fn auth_message<'a>(
    client_first_bare: &'a [u8],
    server_first: &'a [u8],
    client_final_without_proof: &'a [u8],
) -> [&'a [u8]; 5] {
    [
        client_first_bare,
        b",",
        server_first,
        b",",
        client_final_without_proof,
    ]
}
