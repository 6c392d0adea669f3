//! Fuzz target `rewrite`: see `pgsluice::fuzzing::rewrite` for the harness and its invariants.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pgsluice::fuzzing::rewrite(data));
