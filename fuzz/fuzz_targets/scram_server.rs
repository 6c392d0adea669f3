//! Fuzz target `scram_server`: see `pgsluice::fuzzing::scram_server` for the harness and its invariants.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pgsluice::fuzzing::scram_server(data));
