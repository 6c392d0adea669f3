//! Fuzz target `connstr`: see `pgsluice::fuzzing::connstr` for the harness and its invariants.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pgsluice::fuzzing::connstr(data));
