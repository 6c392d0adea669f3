//! Fuzz target `backend`: see `pgsluice::fuzzing::backend` for the harness and its invariants.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pgsluice::fuzzing::backend(data));
