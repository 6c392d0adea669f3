//! Fuzz target `hba`: see `pgsluice::fuzzing::hba` for the harness and its invariants.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pgsluice::fuzzing::hba(data));
