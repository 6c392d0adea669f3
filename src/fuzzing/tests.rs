//! The bounded, seeded random-input run of every fuzz target (CI): the seeds, then mutations of
//! them. `PGSLUICE_FUZZ_ITERS` (per target) and `PGSLUICE_FUZZ_SEED` make longer or other runs;
//! a failing input is printed as a byte string to paste into a regression test.

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};

use super::mutate::{Rng, mutate};
use super::seeds::{dictionary, scram_exchange, seeds};
use super::{TARGETS, Target};

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[allow(clippy::print_stderr)] // The failing input is the finding.
fn run_one(target: &Target, input: &[u8]) {
    if let Err(panic) = catch_unwind(AssertUnwindSafe(|| (target.run)(input))) {
        eprintln!(
            "fuzz target {} failed on input {:?}",
            target.name,
            String::from_utf8_lossy(&input.escape_ascii().collect::<Vec<u8>>())
        );
        resume_unwind(panic);
    }
}

fn run_target(name: &str, default_iters: u64) {
    let target = TARGETS
        .iter()
        .find(|t| t.name == name)
        .expect("target exists");
    let corpus = seeds(name);
    assert!(!corpus.is_empty(), "{name} has seeds");
    for seed in &corpus {
        run_one(target, seed);
    }
    let iters = env_number("PGSLUICE_FUZZ_ITERS", default_iters);
    let mut rng = Rng::new(env_number("PGSLUICE_FUZZ_SEED", 0x5eed) ^ name.len() as u64);
    for _ in 0..iters {
        let input = mutate(&mut rng, &corpus, dictionary(name));
        run_one(target, &input);
    }
}

#[test]
fn every_target_is_tested_here() {
    let tested = [
        "startup",
        "scan",
        "backend",
        "rewrite",
        "scram_server",
        "scram_client",
        "console",
        "ini",
        "connstr",
        "userlist",
        "hba",
        "ident",
    ];
    let names: Vec<&str> = TARGETS.iter().map(|t| t.name).collect();
    assert_eq!(names, tested);
}

#[test]
fn the_scram_seeds_are_a_valid_exchange() {
    let [first, server_first, client_final, server_final] = scram_exchange();
    assert!(first.starts_with(b"n,,n=,r="));
    assert!(server_first.ends_with(b",i=4096"));
    assert!(client_final.starts_with(b"c=biws,r="));
    assert!(server_final.starts_with(b"v="));
}

#[test]
fn fuzz_startup() {
    run_target("startup", 20000);
}

#[test]
fn fuzz_scan() {
    run_target("scan", 20000);
}

#[test]
fn fuzz_backend() {
    run_target("backend", 10000);
}

#[test]
fn fuzz_rewrite() {
    run_target("rewrite", 20000);
}

#[test]
fn fuzz_scram_server() {
    run_target("scram_server", 10000);
}

#[test]
fn fuzz_scram_client() {
    run_target("scram_client", 10000);
}

#[test]
fn fuzz_console() {
    run_target("console", 20000);
}

#[test]
fn fuzz_ini() {
    run_target("ini", 5000);
}

#[test]
fn fuzz_connstr() {
    run_target("connstr", 20000);
}

#[test]
fn fuzz_userlist() {
    run_target("userlist", 20000);
}

#[test]
fn fuzz_hba() {
    run_target("hba", 10000);
}

#[test]
fn fuzz_ident() {
    run_target("ident", 10000);
}

/// Writes the seeds as corpus files: `FUZZ_SEEDS_DIR=fuzz/seeds cargo test --lib
/// fuzzing::tests::write_seed_corpus -- --ignored`.
#[test]
#[ignore = "writes files; run by hand to refresh fuzz/seeds"]
fn write_seed_corpus() {
    let dir = std::env::var("FUZZ_SEEDS_DIR").expect("FUZZ_SEEDS_DIR");
    for target in TARGETS {
        let path = std::path::Path::new(&dir).join(target.name);
        std::fs::create_dir_all(&path).expect("mkdir");
        for (i, seed) in seeds(target.name).iter().enumerate() {
            std::fs::write(path.join(format!("seed-{i}")), seed).expect("write");
        }
    }
}

/// What the `rewrite` target found: a ParseComplete the pooler owed was inserted inside a
/// server message cut by the end of a read (fixed in `client/rewrite.rs`).
#[test]
fn finding_rewrite_reply_inside_a_cut_message() {
    super::rewrite(b"\x01\x00\x3a\x50\x00\x00\x00\x12\x73\x30\x00\x73\x65\x6c\x65\x63\x74\x20\x31\x00\x00\x00\x42\x00\x00\x00\x0e\x9f\x73\x30\x00\x00\x00\x00\xff\xff\xff\x43\x00\x00\x00\x08\x53\x73\x30\x00\x45\x00\x00\x00\x09\x00\x00\x00\x00\x00\x53\x00\x00\x00\x04\x01\x23\x31\x00\x00\x00\x04\x32\x00\x00\x00\x2a\x04\x6e\x00\x00\x00\x04\x43\x00\x00\x00\x0d\x53\x45\x4c\x45\x43\x54\x20\x31\x00\x5a\x00\x00\x00\x05\x49\x00\x30\x50\x00\x00\x00\x12\x73\x31\x00\x73\x65\x63\x01\x20\x65\x32\x74\x6c\x00\x3a\x50\x00\x00\x00\x12\x45\x43\x32\x00\x00\x00\x2a\x04\x6e\x00\x00\x00\x04\x43\x00\x00\x00\x0d\x53\x45\x4c\x45\x43\x54\x20\x31\x00\x5a\x00\x00\x00\x05\x49\x00\x30\x50\x00\x00\x00\x12\x73\x31\x00\x73\x65\x63\x01\x20\x65\x32\x74\x6c\x00\x3a\x50\x00\x00\x00\x12\x45\x31\x00\x00\x00\x42\x00\x00\x00\x0e\x00\x00\x2f\xcf\x00\x00\x00\x06\x53\x00\x50\x00\x00\x00\x11\x78\x00\x73\x65\x6c\x65\x63\x74\x00\x09\x00\x00\x00\x00\x00\x00\x00\x04\x01\x23\x31\x00\x00\x00\x00");
}

/// What the `scram_client` target found: a server-final with extensions after the right
/// verifier is accepted, as RFC 5802 allows (the harness's invariant was too strict).
#[test]
fn finding_scram_client_extensions_after_the_verifier() {
    super::scram_client(b"\x72\x3d\x66\x75\x7a\x7a\x63\x6c\x69\x65\x6e\x74\x6e\x6f\x6e\x63\x65\x30\x31\x32\x33\x34\x35\x36\x37\x38\x39\x66\x75\x7a\x7a\x73\x65\x72\x76\x65\x72\x6e\x6f\x6e\x63\x65\x39\x38\x37\x36\x35\x34\x33\x32\x31\x30\x2c\x73\x3d\x5a\x6e\x56\x36\x65\x69\x42\x7a\x59\x57\x78\x30\x49\x44\x45\x32\x49\x47\x4a\x35\x64\x41\x3d\x3d\x2c\x69\x3d\x34\x30\x39\x36\x00\x76\x3d\x74\x41\x58\x76\x75\x6b\x2f\x70\x4c\x78\x57\x61\x34\x43\x4e\x4c\x6f\x63\x49\x44\x73\x77\x7a\x43\x69\x71\x4b\x2b\x68\x47\x62\x31\x78\x4a\x6b\x45\x6c\x72\x32\x49\x6d\x6a\x77\x3d\x2c\x41\x3d\xff\x2c\x41\x3d\x2c\x41\x3d\x2c\x41\x3d\x2c\x41\x3d\x2c\x41\x3d\x35\x2c\x41\x3d\xff\xfd\xff\x3d");
}
