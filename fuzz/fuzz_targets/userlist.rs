//! Fuzz target `userlist`: see `pgsluice::fuzzing::userlist` for the harness and its invariants.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pgsluice::fuzzing::userlist(data));
