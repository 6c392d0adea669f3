//! Result sets as data: a column list where each column carries the PgBouncer versions that sent
//! it, and a renderer that filters columns (and optional per-row versions) for the emulated
//! version.
//!
//! Owns: [`Version`] (the `admin_compat_version` value), [`Col`], [`Cell`], [`ResultSet`] and
//! the PgBouncer text formats of values (timestamps in local time with the zone name).
//! Does not: know any command; each `show_*` module declares its columns and builds rows.
//! Invariants: a row has exactly one cell per declared column (all versions), so one row builder
//! serves every version; a column list of an older version is a subsequence of the newest, which
//! is how PgBouncer grew them.

use bytes::BytesMut;

use crate::protocol::backend::{self, Column};

/// A PgBouncer release, as `major.minor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    /// Major (1).
    pub major: u16,
    /// Minor.
    pub minor: u16,
}

/// Shorthand constructor.
pub const fn v(major: u16, minor: u16) -> Version {
    Version { major, minor }
}

/// The oldest version the console can emulate (the columns Debian's old
/// `prometheus-pgbouncer-exporter` still expects, such as `total_requests`).
pub const OLDEST: Version = v(1, 7);
/// The version emulated by default.
pub const LATEST: Version = v(1, 26);

impl Version {
    /// Parses `1.18`, `1.18.0` or `1.22.1` (the patch level is ignored).
    pub fn parse(text: &str) -> Result<Version, String> {
        let mut parts = text.trim().split('.');
        let number = |p: Option<&str>| -> Result<u16, String> {
            p.and_then(|p| p.parse().ok())
                .ok_or_else(|| format!("invalid admin_compat_version: {text}"))
        };
        let major = number(parts.next())?;
        let minor = number(parts.next())?;
        if let Some(patch) = parts.next() {
            number(Some(patch))?;
        }
        if parts.next().is_some() {
            return Err(format!("invalid admin_compat_version: {text}"));
        }
        let version = v(major, minor);
        if version < OLDEST {
            return Err(format!(
                "admin_compat_version {text} is older than the oldest supported, {OLDEST}"
            ));
        }
        Ok(version.min(LATEST))
    }

    /// `1.26.0`.
    pub fn full(self) -> String {
        format!("{}.{}.0", self.major, self.minor)
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// Column types, by PgBouncer's RowDescription letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    /// `s`/`T`: text (25).
    Text,
    /// `i`: int4 (23).
    Int4,
    /// `q`: int8 (20).
    Int8,
    /// `N`: numeric (1700).
    Numeric,
}

impl Type {
    /// The type OID.
    pub fn oid(self) -> u32 {
        match self {
            Type::Text => 25,
            Type::Int4 => 23,
            Type::Int8 => 20,
            Type::Numeric => 1700,
        }
    }
}

/// One column and the versions that send it: `since <= version < until`.
#[derive(Debug, Clone, Copy)]
pub struct Col {
    /// Name.
    pub name: &'static str,
    /// Type.
    pub ty: Type,
    /// First version with this column.
    pub since: Version,
    /// First version without it, if it was dropped or renamed.
    pub until: Option<Version>,
    /// The type it had before a version, if its type changed (int8 counters became numeric in
    /// 1.12).
    pub legacy: Option<(Version, Type)>,
}

impl Col {
    /// The type `version` sends.
    pub fn type_in(&self, version: Version) -> Type {
        match self.legacy {
            Some((before, ty)) if version < before => ty,
            _ => self.ty,
        }
    }

    /// Had type `ty` before `version`.
    #[must_use]
    pub const fn typed_before(mut self, version: Version, ty: Type) -> Col {
        self.legacy = Some((version, ty));
        self
    }

    /// Whether `version` sends this column.
    pub fn in_version(&self, version: Version) -> bool {
        self.since <= version && self.until.is_none_or(|u| version < u)
    }

    /// Present since `version`.
    #[must_use]
    pub const fn since(mut self, version: Version) -> Col {
        self.since = version;
        self
    }

    /// Absent from `version` on.
    #[must_use]
    pub const fn until(mut self, version: Version) -> Col {
        self.until = Some(version);
        self
    }
}

/// A column present in every emulated version.
pub const fn col(name: &'static str, ty: Type) -> Col {
    Col {
        name,
        ty,
        since: OLDEST,
        until: None,
        legacy: None,
    }
}

/// A text column.
pub const fn text(name: &'static str) -> Col {
    col(name, Type::Text)
}

/// An int4 column.
pub const fn int(name: &'static str) -> Col {
    col(name, Type::Int4)
}

/// A numeric column.
pub const fn num(name: &'static str) -> Col {
    col(name, Type::Numeric)
}

/// A stats counter: numeric since 1.12, int8 before.
pub const fn counter(name: &'static str) -> Col {
    col(name, Type::Numeric).typed_before(v(1, 12), Type::Int8)
}

/// One value; `None` is SQL NULL.
pub type Cell = Option<String>;

/// A text cell.
pub fn s(value: impl Into<String>) -> Cell {
    Some(value.into())
}

/// A number cell.
pub fn n(value: impl std::fmt::Display) -> Cell {
    Some(value.to_string())
}

/// A count as int4 (saturating).
pub fn count(value: usize) -> Cell {
    n(i32::try_from(value).unwrap_or(i32::MAX))
}

/// One result set: the full column list and rows with one cell per column.
#[derive(Debug)]
pub struct ResultSet<'a> {
    columns: &'a [Col],
    rows: Vec<(Option<Version>, Option<Version>, Vec<Cell>)>,
}

impl<'a> ResultSet<'a> {
    /// An empty result set over `columns`.
    pub fn new(columns: &'a [Col]) -> Self {
        ResultSet {
            columns,
            rows: Vec::new(),
        }
    }

    /// Adds a row (one cell per declared column).
    pub fn row(&mut self, cells: Vec<Cell>) {
        debug_assert_eq!(cells.len(), self.columns.len(), "row width");
        self.rows.push((None, None, cells));
    }

    /// Adds a row that only `since` and later versions send.
    pub fn row_since(&mut self, since: Version, cells: Vec<Cell>) {
        self.row_between(since, None, cells);
    }

    /// Adds a row that versions from `since` up to (not including) `until` send.
    pub fn row_between(&mut self, since: Version, until: Option<Version>, cells: Vec<Cell>) {
        debug_assert_eq!(cells.len(), self.columns.len(), "row width");
        self.rows.push((Some(since), until, cells));
    }

    /// Number of rows (all versions).
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Column names `version` sends.
    pub fn column_names(&self, version: Version) -> Vec<&'static str> {
        self.columns
            .iter()
            .filter(|c| c.in_version(version))
            .map(|c| c.name)
            .collect()
    }

    /// Appends RowDescription, the DataRows and `CommandComplete SHOW`, as `version` sends them.
    pub fn write(&self, out: &mut BytesMut, version: Version) {
        let keep: Vec<bool> = self.columns.iter().map(|c| c.in_version(version)).collect();
        let described: Vec<Column> = self
            .columns
            .iter()
            .filter(|c| c.in_version(version))
            .map(|c| Column {
                name: c.name,
                type_oid: c.type_in(version).oid(),
            })
            .collect();
        backend::row_description(out, &described);
        for (since, until, cells) in &self.rows {
            if since.is_some_and(|s| version < s) || until.is_some_and(|u| version >= u) {
                continue;
            }
            let values = cells
                .iter()
                .zip(&keep)
                .filter(|(_, k)| **k)
                .map(|(cell, _)| cell.as_deref());
            backend::data_row(out, values);
        }
        backend::command_complete(out, "SHOW");
    }
}

/// PgBouncer's timestamp text: `YYYY-MM-DD HH:MM:SS ZONE` in local time; `micros` is µs since
/// the Unix epoch. The zone is `UTC` at offset zero, else `+HH` / `+HHMM` (tzdata's form for
/// zones without a letter abbreviation).
pub fn timestamp(micros: u64) -> String {
    let secs = i64::try_from(micros / 1_000_000).unwrap_or(i64::MAX);
    let Ok(utc) = time::OffsetDateTime::from_unix_timestamp(secs) else {
        return String::new();
    };
    let offset = time::UtcOffset::local_offset_at(utc).unwrap_or(time::UtcOffset::UTC);
    let local = utc.to_offset(offset);
    let zone = zone_name(offset.whole_seconds());
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} {zone}",
        local.year(),
        u8::from(local.month()),
        local.day(),
        local.hour(),
        local.minute(),
        local.second()
    )
}

fn zone_name(offset_secs: i32) -> String {
    if offset_secs == 0 {
        return "UTC".to_owned();
    }
    let sign = if offset_secs < 0 { '-' } else { '+' };
    let abs = offset_secs.unsigned_abs();
    let (hours, minutes) = (abs / 3600, (abs % 3600) / 60);
    if minutes == 0 {
        format!("{sign}{hours:02}")
    } else {
        format!("{sign}{hours:02}{minutes:02}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COLS: &[Col] = &[
        text("name"),
        int("reserve_pool").until(v(1, 24)),
        int("reserve_pool_size").since(v(1, 24)),
        num("extra").since(v(1, 26)),
    ];

    #[test]
    fn versions_parse_and_clamp() {
        assert_eq!(Version::parse("1.18"), Ok(v(1, 18)));
        assert_eq!(Version::parse(" 1.22.1 "), Ok(v(1, 22)));
        assert_eq!(Version::parse("1.30"), Ok(LATEST));
        assert_eq!(Version::parse("1.7"), Ok(v(1, 7)));
        assert!(Version::parse("1.6").is_err());
        assert!(Version::parse("abc").is_err());
        assert!(Version::parse("1.2.3.4").is_err());
        assert_eq!(v(1, 26).full(), "1.26.0");
    }

    #[test]
    fn columns_filter_by_version() {
        let mut rs = ResultSet::new(COLS);
        rs.row(vec![s("a"), n(1), n(1), n(5)]);
        rs.row_since(v(1, 25), vec![s("b"), n(2), n(2), None]);
        assert_eq!(rs.column_names(v(1, 18)), ["name", "reserve_pool"]);
        let legacy = counter("x");
        assert_eq!(legacy.type_in(v(1, 11)), Type::Int8);
        assert_eq!(legacy.type_in(v(1, 12)), Type::Numeric);
        assert_eq!(rs.column_names(v(1, 24)), ["name", "reserve_pool_size"]);
        assert_eq!(
            rs.column_names(v(1, 26)),
            ["name", "reserve_pool_size", "extra"]
        );
        let mut old = BytesMut::new();
        rs.write(&mut old, v(1, 18));
        assert_eq!(
            crate::admin::testing::rows(&old),
            vec![vec![Some("a".to_owned()), Some("1".to_owned())]]
        );
        let mut new = BytesMut::new();
        rs.write(&mut new, v(1, 26));
        assert_eq!(
            crate::admin::testing::column_names(&new),
            ["name", "reserve_pool_size", "extra"]
        );
        assert_eq!(crate::admin::testing::rows(&new).len(), 2);
        assert_eq!(crate::admin::testing::rows(&new)[1][2], None);
    }

    #[test]
    fn zone_names() {
        assert_eq!(zone_name(0), "UTC");
        assert_eq!(zone_name(7200), "+02");
        assert_eq!(zone_name(-16200), "-0430");
        let ts = timestamp(86_400 * 1_000_000);
        assert_eq!(
            ts.len(),
            "1970-01-02 00:00:00".len() + 1 + ts.split(' ').nth(2).map_or(0, str::len)
        );
    }
}
