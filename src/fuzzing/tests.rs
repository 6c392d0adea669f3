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
