//! The examples in `docs/admin-console.md` come from a real run: with `UPDATE_DOCS=1` this test
//! runs each documented command through `psql` against a pooler under a small load and rewrites
//! the example blocks; without it, it checks that every documented column list is still the one
//! pgsluice sends, so the docs cannot drift.

use std::path::PathBuf;
use std::process::Command;

use crate::harness::files::userlist;
use crate::harness::pooler::{Pooler, db_line};
use crate::harness::postgres::{PgCluster, bin, password};
use crate::harness::tools::{PSQL_TIMEOUT, clear_libpq_env, run_with_timeout};

const START: &str = "<!-- example: ";
const END: &str = "<!-- /example -->";

fn doc_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/admin-console.md")
}

/// Runs `sql` with plain `psql` (aligned, or expanded), as a person would; returns what it
/// printed (stderr for the NOTICE of SHOW HELP).
async fn psql_show(port: u16, sql: &str, mode: &str) -> String {
    let (sql, mode) = (sql.to_owned(), mode.to_owned());
    tokio::task::spawn_blocking(move || {
        let mut cmd = Command::new(bin("psql"));
        clear_libpq_env(&mut cmd);
        cmd.env("PGPASSWORD", "admin_pw").args([
            "-X",
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            "admin",
            "-d",
            "pgbouncer",
        ]);
        if mode == "expanded" {
            cmd.arg("-x");
        }
        cmd.args(["-c", &sql]);
        let out = run_with_timeout(cmd, PSQL_TIMEOUT).unwrap_or_else(|t| panic!("{t}"));
        assert!(out.status.success(), "{sql}: {out:?}");
        let text = if mode == "notice" {
            out.stderr
        } else {
            out.stdout
        };
        let text = String::from_utf8_lossy(&text).trim_end().to_owned();
        if mode == "head" {
            let mut lines: Vec<&str> = text.lines().take(12).collect();
            lines.push("(…)");
            lines.join("\n")
        } else {
            text
        }
    })
    .await
    .unwrap()
}

/// The temporary config directory would put a machine path into the docs: it becomes
/// `/etc/pgbouncer`, padded so psql's alignment survives.
fn without_temp_dir(text: &str, dir: &str) -> String {
    const SHOWN: &str = "/etc/pgbouncer";
    let pad = " ".repeat(dir.len().saturating_sub(SHOWN.len()));
    text.lines()
        .map(|line| match line.find(dir) {
            None => line.to_owned(),
            Some(at) => {
                let mut fixed = line.replacen(dir, SHOWN, 1);
                let cell_end = fixed[at..].find(" |").map_or(fixed.len(), |i| at + i);
                fixed.insert_str(cell_end, &pad);
                fixed
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Column names of an aligned table (its first line) or of an expanded record.
fn columns(block: &str, mode: &str) -> Vec<String> {
    match mode {
        "expanded" => block
            .lines()
            .skip(1)
            .take_while(|l| !l.starts_with("-[ RECORD"))
            .filter_map(|l| l.split('|').next())
            .map(|c| c.trim().to_owned())
            .collect(),
        "notice" => Vec::new(),
        _ => block
            .lines()
            .next()
            .unwrap_or_default()
            .split('|')
            .map(|c| c.trim().to_owned())
            .collect(),
    }
}

/// (command, mode) of each example marker, in document order.
fn markers(doc: &str) -> Vec<(String, String)> {
    doc.lines()
        .filter_map(|l| l.strip_prefix(START)?.strip_suffix(" -->"))
        .map(|spec| match spec.split_once(" (") {
            Some((cmd, mode)) => (cmd.to_owned(), mode.trim_end_matches(')').to_owned()),
            None => (spec.to_owned(), String::new()),
        })
        .collect()
}

fn replace_block(doc: &str, marker: &str, body: &str) -> String {
    let start = doc.find(marker).unwrap() + marker.len();
    let end = start + doc[start..].find(END).unwrap();
    format!("{}\n```text\n{body}\n```\n{}", &doc[..start], &doc[end..])
}

fn block(doc: &str, marker: &str) -> String {
    let start = doc.find(marker).unwrap() + marker.len();
    let end = start + doc[start..].find(END).unwrap();
    doc[start..end]
        .trim()
        .trim_start_matches("```text")
        .trim_end_matches("```")
        .trim()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_docs_examples_match_a_real_run() {
    let db = PgCluster::shared().create_database("admdocs");
    let users = userlist(&[("md5_user", &password("md5_user")), ("admin", "admin_pw")]);
    let pooler = Pooler::start(
        &db_line("app", &db, "pool_size=2"),
        // A low utilisation threshold with a short hold, so SHOW ALERTS has a firing row.
        "pool_mode = transaction\nauth_type = md5\nadmin_users = admin\nstats_period = 1\n\
         [pgsluice]\nalert_pool_utilization = 0.4\nalert_pool_utilization_for = 1",
        &users,
    );
    let pw = password("md5_user");
    let busy = pooler.connect("md5_user", &pw, "app").await.unwrap();
    let idle = pooler.connect("md5_user", &pw, "app").await.unwrap();
    for _ in 0..5 {
        idle.simple_query("select 1").await.unwrap();
    }
    busy.batch_execute("begin; select 1").await.unwrap();
    let fired = crate::harness::pooler::eventually(30, || {
        let firing = pooler
            .app()
            .alerts()
            .snapshot()
            .iter()
            .any(|r| r.alert == "pool_utilization" && r.state.as_str() == "firing");
        async move { firing }
    })
    .await;
    assert!(
        fired,
        "the pool_utilization alert fires (1 of 2 servers busy, over 0.4)"
    );
    let doc = std::fs::read_to_string(doc_path()).unwrap();
    let update = std::env::var_os("UPDATE_DOCS").is_some();
    let mut new_doc = doc.clone();
    for (cmd, mode) in markers(&doc) {
        let marker = if mode.is_empty() {
            format!("{START}{cmd} -->")
        } else {
            format!("{START}{cmd} ({mode}) -->")
        };
        let output = without_temp_dir(
            &psql_show(pooler.port, &cmd, &mode).await,
            &pooler.dir.path().display().to_string(),
        );
        if update {
            new_doc = replace_block(&new_doc, &marker, &output);
        } else {
            let documented = block(&doc, &marker);
            assert!(
                !documented.is_empty(),
                "{cmd}: no example; run with UPDATE_DOCS=1"
            );
            assert_eq!(
                columns(&documented, &mode),
                columns(&output, &mode),
                "{cmd}: documented columns differ; run with UPDATE_DOCS=1"
            );
        }
    }
    if update && new_doc != doc {
        std::fs::write(doc_path(), new_doc).unwrap();
    }
    busy.batch_execute("commit").await.unwrap();
    pooler.stop().await;
}
