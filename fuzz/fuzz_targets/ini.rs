//! Fuzz target `ini`: see `pgsluice::fuzzing::ini` for the harness and its invariants.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pgsluice::fuzzing::ini(data));
