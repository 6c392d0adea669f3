//! Fuzz target `startup`: see `pgsluice::fuzzing::startup` for the harness and its invariants.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pgsluice::fuzzing::startup(data));
