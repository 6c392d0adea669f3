//! Fuzz target `console`: see `pgsluice::fuzzing::console` for the harness and its invariants.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pgsluice::fuzzing::console(data));
