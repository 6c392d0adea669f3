//! The `pgsluice` binary.
fn main() {}
