//! Fuzz target `ident`: see `pgsluice::fuzzing::ident` for the harness and its invariants.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pgsluice::fuzzing::ident(data));
