//! Fuzz target `scan`: see `pgsluice::fuzzing::scan` for the harness and its invariants.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pgsluice::fuzzing::scan(data));
