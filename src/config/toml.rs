//! The native TOML form (`pgsluice.toml`), read into the same [`Config`].
//!
//! Owns: mapping TOML tables onto the ini sections: `[pgbouncer]` (same keys; numbers, strings,
//! booleans, arrays for lists; times as seconds or strings with units such as `"500ms"`),
//! `[databases.<name>]` and `[users.<name>]` tables with the connection-string keys,
//! `[peers.<id>]`, and `[pgsluice]` (kept as raw text). `auth_file` still points at a
//! userlist.txt.
//! Does not: hold defaults or checks of its own: every value is turned into the text the ini
//! form would carry and handed to the shared [`Builder`], so both forms behave the same.
//! Invariants: every error names the file and the line of the offending value.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;
use toml::Value;

use super::builder::Builder;
use super::duration::{format_secs, parse_with_unit};
use super::error::{Error, Loc};
use super::settings::{self, Kind};
use super::{connstr, users};

type Table = BTreeMap<String, Spanned<Value>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Doc {
    pgbouncer: Option<Spanned<Table>>,
    #[serde(default)]
    databases: BTreeMap<String, Spanned<Table>>,
    #[serde(default)]
    users: BTreeMap<String, Spanned<Table>>,
    #[serde(default)]
    peers: BTreeMap<String, Spanned<Table>>,
    pgsluice: Option<Spanned<Table>>,
}

/// 1-based line of byte offset `pos` in `text`.
fn line_of(text: &str, pos: usize) -> usize {
    text.as_bytes()
        .iter()
        .take(pos)
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Reads TOML `text` (named `name`) into `b`.
pub(crate) fn read(text: &str, name: &str, b: &mut Builder) -> Result<(), Error> {
    let doc: Doc = toml::from_str(text).map_err(|e| {
        let line = e.span().map_or(1, |s| line_of(text, s.start));
        Error::at(name, line, e.message().to_owned())
    })?;
    let loc = |pos: usize| Loc::new(name, line_of(text, pos));
    if let Some(main) = doc.pgbouncer {
        b.section("pgbouncer", &loc(main.span().start))?;
        for (key, val) in main.into_inner() {
            let at = loc(val.span().start);
            let kind = settings::find(&key).map(|s| s.kind);
            let text =
                scalar_text(val.get_ref(), kind).map_err(|e| at.err(format!("{key}: {e}")))?;
            b.general(&key, &text, &at)?;
        }
    }
    for (db, table) in doc.databases {
        let at = loc(table.span().start);
        let pairs = located_pairs(table.into_inner(), &loc, |k, v| {
            connstr::build(&db, vec![(k.to_owned(), v.to_owned())]).map(drop)
        })?;
        b.database(&db, pairs, &at)?;
    }
    for (user, table) in doc.users {
        let at = loc(table.span().start);
        let pairs = located_pairs(table.into_inner(), &loc, |k, v| {
            users::build(&user, vec![(k.to_owned(), v.to_owned())]).map(drop)
        })?;
        b.user(&user, pairs, &at)?;
    }
    for (id, table) in doc.peers {
        let at = loc(table.span().start);
        let pairs = located_pairs(table.into_inner(), &loc, |_, _| Ok(()))?;
        let joined: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        b.peer(&id, &joined.join(" "), &at)?;
    }
    if let Some(ps) = doc.pgsluice {
        for (key, val) in ps.into_inner() {
            let at = loc(val.span().start);
            let text =
                scalar_text(val.get_ref(), None).map_err(|e| at.err(format!("{key}: {e}")))?;
            b.pgsluice(&key, text);
        }
    }
    Ok(())
}

/// The table as text pairs. Each pair is checked alone by `check` first, so an error names the
/// line of its own key rather than the table header.
fn located_pairs(
    table: Table,
    loc: &dyn Fn(usize) -> Loc,
    check: impl Fn(&str, &str) -> Result<(), String>,
) -> Result<Vec<(String, String)>, Error> {
    table
        .into_iter()
        .map(|(k, v)| {
            let at = loc(v.span().start);
            let text = scalar_text(v.get_ref(), None).map_err(|e| at.err(format!("{k}: {e}")))?;
            check(&k, &text).map_err(|e| at.err(e))?;
            Ok((k, text))
        })
        .collect()
}

/// The ini text for a TOML value. Booleans become `1`/`0` for `[pgbouncer]` (PgBouncer's
/// booleans are integers) and `true`/`false` elsewhere; times may carry units.
fn scalar_text(v: &Value, kind: Option<Kind>) -> Result<String, String> {
    Ok(match v {
        Value::String(s) if kind == Some(Kind::Time) => format_secs(parse_with_unit(s)?),
        Value::String(s) => s.clone(),
        Value::Integer(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Boolean(x) if kind.is_some() => if *x { "1" } else { "0" }.to_owned(),
        Value::Boolean(x) => x.to_string(),
        Value::Array(items) if matches!(kind, Some(Kind::List) | None) => {
            let parts: Result<Vec<String>, String> =
                items.iter().map(|i| scalar_text(i, None)).collect();
            parts?.join(",")
        }
        _ => return Err("unsupported value type".to_owned()),
    })
}
