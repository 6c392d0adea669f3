//! The PgBouncer-compatible ini reader.
//!
//! Owns: the lexical layer of `pgbouncer.ini`: `[section]` lines, `key = value` lines, comment
//! lines starting with `;` or `#`, blank lines, and `%include FILE` (anywhere, relative paths
//! resolved against the working directory as PgBouncer does, at most 10 levels deep). It yields
//! a flat list of [`Item`]s, each with the file and line it came from.
//! Does not: know which sections or keys exist, apply values, or read `auth_file`.
//! Invariants (PgBouncer's lexer, `lib/usual/cfparser.c`): names are case-sensitive and kept as
//! written; a `;` or `#` later in a line is part of the value; values are trimmed of surrounding
//! blanks but may be empty; a bare key is made of `[A-Za-z0-9_.*-]`; a key may also be written
//! `'quoted'` or `"quoted"` (`""` inside double quotes is one quote) for database names with
//! other characters; text after a section's `]` is read like a line of its own (a comment or
//! a pair), as PgBouncer's lexer does. Never panics on any input.

use std::path::Path;

use super::error::{Error, Loc};

/// PgBouncer's `MAX_INCLUDE`.
pub const MAX_INCLUDE: usize = 10;

/// One meaningful line of an ini file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// `[name]`.
    Section {
        /// Where it was written.
        loc: Loc,
        /// The section name, as written.
        name: String,
    },
    /// `key = value`.
    Pair {
        /// Where it was written.
        loc: Loc,
        /// The key, unquoted.
        key: String,
        /// The value, trimmed.
        value: String,
    },
}

/// Reads files for `%include`; tests substitute an in-memory map.
pub trait Source {
    /// The text of `path`.
    fn read(&mut self, path: &Path) -> std::io::Result<String>;
}

/// The real file system, relative paths against the working directory.
pub struct Fs;

impl Source for Fs {
    fn read(&mut self, path: &Path) -> std::io::Result<String> {
        std::fs::read_to_string(path)
    }
}

/// Parses `text` (named `name` in errors), following `%include` through `src`.
pub fn parse(text: &str, name: &str, src: &mut dyn Source) -> Result<Vec<Item>, Error> {
    let mut out = Vec::new();
    parse_into(text, name, src, 0, &mut out)?;
    Ok(out)
}

/// Reads and parses the file at `path`.
pub fn parse_file(path: &Path, src: &mut dyn Source) -> Result<Vec<Item>, Error> {
    let text = src.read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text, &path.display().to_string(), src)
}

fn parse_into(
    text: &str,
    name: &str,
    src: &mut dyn Source,
    level: usize,
    out: &mut Vec<Item>,
) -> Result<(), Error> {
    for (idx, raw) in text.lines().enumerate() {
        let loc = Loc::new(name, idx + 1);
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = include_target(line) {
            include(rest, &loc, src, level, out)?;
            continue;
        }
        if line.starts_with(';') || line.starts_with('#') {
            continue;
        }
        if let Some(rest) = line.strip_prefix('[') {
            let Some(end) = rest.find(']') else {
                return Err(loc.err("syntax error in configuration"));
            };
            out.push(Item::Section {
                name: rest[..end].to_owned(),
                loc: loc.clone(),
            });
            // PgBouncer's lexer carries on after `]`: a comment is skipped, anything else is
            // read as a `key = value` on the same line.
            let tail = rest[end + 1..].trim();
            if !(tail.is_empty() || tail.starts_with(';') || tail.starts_with('#')) {
                out.push(pair(tail, loc)?);
            }
            continue;
        }
        out.push(pair(line, loc)?);
    }
    Ok(())
}

fn pair(line: &str, loc: Loc) -> Result<Item, Error> {
    let (key, rest) = read_key(line).ok_or_else(|| loc.err("syntax error in configuration"))?;
    let Some(value) = rest.trim_start_matches([' ', '\t']).strip_prefix('=') else {
        return Err(loc.err("syntax error in configuration"));
    };
    Ok(Item::Pair {
        loc,
        key,
        value: value.trim().to_owned(),
    })
}

/// `%include` must be followed by a blank, as in PgBouncer (`%includefoo` is a syntax error).
fn include_target(line: &str) -> Option<&str> {
    let rest = line.strip_prefix("%include")?;
    rest.starts_with([' ', '\t']).then(|| rest.trim())
}

fn include(
    target: &str,
    loc: &Loc,
    src: &mut dyn Source,
    level: usize,
    out: &mut Vec<Item>,
) -> Result<(), Error> {
    if level >= MAX_INCLUDE {
        return Err(loc.err("include nesting level too deep"));
    }
    let path = Path::new(target);
    let text = src.read(path).map_err(|e| {
        loc.err(format!(
            "error processing include file: could not load file \"{target}\": {e}"
        ))
    })?;
    parse_into(&text, target, src, level + 1, out)
}

/// Reads a key at the start of `line`; returns it and the rest of the line.
fn read_key(line: &str) -> Option<(String, &str)> {
    match line.as_bytes().first()? {
        b'\'' => {
            let rest = &line[1..];
            let end = rest.find('\'')?;
            (end > 0).then(|| (rest[..end].to_owned(), &rest[end + 1..]))
        }
        b'"' => read_double_quoted(line),
        _ => {
            let end = line
                .find(|c: char| !(c.is_ascii_alphanumeric() || "_.-*".contains(c)))
                .unwrap_or(line.len());
            // An empty bare key passes PgBouncer's lexer but can never match; reject early.
            (end > 0).then(|| (line[..end].to_owned(), &line[end..]))
        }
    }
}

/// SQL-style `"name"` with `""` as an escaped quote.
fn read_double_quoted(line: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = line.char_indices().skip(1).peekable();
    while let Some((i, c)) = chars.next() {
        if c == '"' {
            if chars.peek().is_some_and(|&(_, n)| n == '"') {
                chars.next();
                out.push('"');
                continue;
            }
            return (!out.is_empty()).then(|| (out, &line[i + 1..]));
        }
        out.push(c);
    }
    None
}
