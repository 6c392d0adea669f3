//! Fuzz target `scram_client`: see `pgsluice::fuzzing::scram_client` for the harness and its invariants.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pgsluice::fuzzing::scram_client(data));
