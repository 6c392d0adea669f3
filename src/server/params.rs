//! The reported parameters a client can observe (PgBouncer's varcache): what each server has and
//! what each client was told, and the SET statements that make a server match a client.
//!
//! The tracked names are PgBouncer 1.26's defaults (every writable parameter PostgreSQL reports)
//! plus `track_extra_parameters`, registered once at start with [`configure`] (the setting needs
//! a restart, as in PgBouncer). A tracked parameter the server does not report (`search_path`
//! before PostgreSQL 18) is still carried: the pooler remembers what it SET on each server.
//!
//! Memory: values are shared strings from the process-wide table (`stats::intern`), and a
//! client's whole set is shared with every client that has the same values
//! ([`ParamSet::shared`], called once a client has logged in): an idle client holds one pointer,
//! not a vector of strings. A set is copied on its first change (SET, ParameterStatus), so a
//! change never shows in another client's set.

use std::sync::{Arc, LazyLock, OnceLock};

use parking_lot::Mutex;

use crate::stats::intern::{Interner, intern_str};

/// Parameters tracked by default, in the spelling the server reports them.
pub const DEFAULTS: [&str; 10] = [
    "client_encoding",
    "DateStyle",
    "TimeZone",
    "standard_conforming_strings",
    "application_name",
    "IntervalStyle",
    "default_transaction_read_only",
    "scram_iterations",
    "search_path",
    "session_authorization",
];

/// How many parameters can be tracked in all (defaults plus `track_extra_parameters`).
pub const MAX_TRACKED: usize = 32;

/// `track_extra_parameters` names not among the defaults, set once at start.
static EXTRA: OnceLock<Vec<&'static str>> = OnceLock::new();

/// Registers `track_extra_parameters`. Only the first call counts (the setting needs a restart);
/// names already tracked are skipped and names past [`MAX_TRACKED`] are dropped (returned).
pub fn configure(extra: &[String]) -> Vec<String> {
    let mut names: Vec<&'static str> = Vec::new();
    let mut dropped = Vec::new();
    for name in extra {
        let name = name.trim();
        let known = DEFAULTS
            .iter()
            .chain(&names)
            .any(|t| t.eq_ignore_ascii_case(name));
        // `options` is a container, not a parameter: PgBouncer cannot track it either.
        if name.is_empty() || known || name.eq_ignore_ascii_case("options") {
            continue;
        }
        if DEFAULTS.len() + names.len() >= MAX_TRACKED {
            dropped.push(name.to_owned());
            continue;
        }
        // Leaked once per name at start: the names live as long as the process.
        names.push(Box::leak(name.to_owned().into_boxed_str()));
    }
    let _ = EXTRA.set(names);
    dropped
}

/// Every tracked name, defaults first; a name's position is its slot in a [`ParamSet`].
fn names() -> impl Iterator<Item = &'static str> {
    let extra: &'static [&'static str] = EXTRA.get().map_or(&[], Vec::as_slice);
    DEFAULTS.iter().chain(extra).copied()
}

/// The canonical spelling of a tracked parameter name (startup names are case-insensitive).
pub fn canonical(name: &str) -> Option<&'static str> {
    names().find(|t| t.eq_ignore_ascii_case(name))
}

/// Slot values: shared strings, `None` for unknown; grown only up to the highest slot set.
type Values = Vec<Option<Arc<str>>>;

/// Parameter sets shared by the clients that have the same values ([`ParamSet::shared`]).
static SETS: LazyLock<Mutex<Interner<Values>>> = LazyLock::new(Mutex::default);

/// Values of the tracked parameters, by slot; `None` (or a slot past the end) means unknown.
/// A vector grown only up to the highest slot set, not an array of every possible slot, behind
/// one `Arc`: clients with the same values share one ([`shared`](Self::shared)), and a change
/// copies it first.
#[derive(Debug, Clone, Default)]
pub struct ParamSet {
    values: Option<Arc<Values>>,
}

impl PartialEq for ParamSet {
    fn eq(&self, other: &ParamSet) -> bool {
        if let (Some(a), Some(b)) = (&self.values, &other.values)
            && Arc::ptr_eq(a, b)
        {
            return true;
        }
        (0..self.span(other)).all(|i| same(self.slot_arc(i), other.slot_arc(i)))
    }
}

impl Eq for ParamSet {}

/// Two slot values are equal; shared strings compare by pointer first.
fn same(a: Option<&Arc<str>>, b: Option<&Arc<str>>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => Arc::ptr_eq(a, b) || **a == **b,
        (None, None) => true,
        _ => false,
    }
}

impl ParamSet {
    fn len(&self) -> usize {
        self.values.as_ref().map_or(0, |v| v.len())
    }

    fn slot_arc(&self, i: usize) -> Option<&Arc<str>> {
        self.values.as_ref()?.get(i)?.as_ref()
    }

    fn slot(&self, i: usize) -> Option<&str> {
        self.slot_arc(i).map(|v| &**v)
    }

    /// A slot to write, copying a shared set first.
    fn slot_mut(&mut self, i: usize) -> Option<&mut Option<Arc<str>>> {
        if i >= MAX_TRACKED {
            return None;
        }
        let values = Arc::make_mut(self.values.get_or_insert_with(Arc::default));
        if values.len() <= i {
            values.resize(i + 1, None);
        }
        values.get_mut(i)
    }

    /// The slots either set has values for.
    fn span(&self, other: &ParamSet) -> usize {
        self.len().max(other.len())
    }

    /// This set, sharing its storage with every other set that has the same values (one copy for
    /// all the clients of an application instead of one each). Call it once a set is complete,
    /// e.g. at the end of a login; a later change copies the set first.
    #[must_use]
    pub fn shared(self) -> ParamSet {
        match self.values {
            Some(values) => ParamSet {
                values: Some(SETS.lock().share(values)),
            },
            None => self,
        }
    }

    /// Whether two sets use the same storage (after [`shared`](Self::shared)).
    pub fn shares_storage_with(&self, other: &ParamSet) -> bool {
        match (&self.values, &other.values) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }

    fn index(name: &str) -> Option<usize> {
        names().position(|t| t.eq_ignore_ascii_case(name))
    }

    /// Records a value if `name` is tracked; returns whether it was.
    pub fn set(&mut self, name: &str, value: &str) -> bool {
        let Some(i) = Self::index(name) else {
            return false;
        };
        if self.slot(i) == Some(value) {
            // Unchanged: a shared set stays shared.
            return true;
        }
        match self.slot_mut(i) {
            Some(slot) => {
                if slot.as_deref() != Some(value) {
                    *slot = Some(intern_str(value));
                }
                true
            }
            None => false,
        }
    }

    /// The value of a tracked parameter.
    pub fn get(&self, name: &str) -> Option<&str> {
        Self::index(name).and_then(|i| self.slot(i))
    }

    /// Known (name, value) pairs.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &str)> {
        names()
            .enumerate()
            .filter_map(|(i, n)| self.slot(i).map(|v| (n, v)))
    }

    /// SET statements that make a server with `self` look like `wanted`, or `None` if it already
    /// does. Values are quoted as SQL literals, except `search_path`, which the server reports
    /// already quoted as a list (PgBouncer sends it as is).
    pub fn alignment_sql(&self, wanted: &ParamSet) -> Option<String> {
        // Slot by slot: both sets index the same names, so no name lookups are needed.
        if self == wanted {
            return None;
        }
        let mut sql = String::new();
        for (i, name) in names().enumerate().take(self.span(wanted)) {
            let Some(value) = wanted.slot(i) else {
                continue;
            };
            // As PgBouncer: a difference in case only is no difference.
            if !self.slot(i).is_some_and(|h| h.eq_ignore_ascii_case(value)) {
                sql.push_str("SET ");
                sql.push_str(name);
                sql.push_str(" = ");
                push_value(&mut sql, name, value);
                sql.push(';');
            }
        }
        (!sql.is_empty()).then_some(sql)
    }

    /// After [`alignment_sql`](Self::alignment_sql) ran: the server now has what `wanted` has,
    /// also for the parameters it does not report (what it reported meanwhile is kept).
    pub fn adopt(&mut self, wanted: &ParamSet, reported_before: &ParamSet) {
        for i in 0..wanted.len() {
            let (have, want, before) = (
                self.slot_arc(i),
                wanted.slot_arc(i),
                reported_before.slot_arc(i),
            );
            if want.is_some()
                && same(have, before)
                && !same(have, want)
                && let Some(want) = want.cloned()
                && let Some(slot) = self.slot_mut(i)
            {
                *slot = Some(want);
            }
        }
    }
}

/// Appends `value` as the right-hand side of `SET name = ...`.
fn push_value(sql: &mut String, name: &str, value: &str) {
    if name.eq_ignore_ascii_case("search_path") && is_list_value(value) {
        if value == "\"\"" {
            sql.push_str("''");
        } else {
            sql.push_str(value);
        }
        return;
    }
    sql.push('\'');
    sql.push_str(&value.replace('\'', "''"));
    sql.push('\'');
}

/// Whether a `search_path` value can go into SET unquoted: a comma list of identifiers,
/// `$user` or double-quoted names, nothing that could end the statement.
fn is_list_value(value: &str) -> bool {
    let mut quoted = false;
    for c in value.chars() {
        match c {
            '"' => quoted = !quoted,
            _ if quoted => {}
            c if c.is_alphanumeric() || matches!(c, '_' | '$' | ',' | ' ') => {}
            _ => return false,
        }
    }
    !quoted && !value.trim().is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alignment_only_for_differences() {
        let mut server = ParamSet::default();
        server.set("TimeZone", "UTC");
        server.set("client_encoding", "UTF8");
        let mut client = server.clone();
        assert_eq!(server.alignment_sql(&client), None);
        client.set("timezone", "Europe/Berlin");
        client.set("application_name", "it's");
        assert_eq!(
            server.alignment_sql(&client).as_deref(),
            Some("SET TimeZone = 'Europe/Berlin';SET application_name = 'it''s';")
        );
    }

    #[test]
    fn untracked_names_are_ignored() {
        let mut p = ParamSet::default();
        assert!(!p.set("work_mem", "x"));
        assert!(p.set("search_path", "x"));
        assert!(p.set("DATESTYLE", "ISO, MDY"));
        assert_eq!(p.get("DateStyle"), Some("ISO, MDY"));
        assert_eq!(canonical("timezone"), Some("TimeZone"));
    }

    #[test]
    fn search_path_is_sent_as_a_list() {
        let server = ParamSet::default();
        let mut client = ParamSet::default();
        client.set("search_path", "\"$user\", public");
        assert_eq!(
            server.alignment_sql(&client).as_deref(),
            Some("SET search_path = \"$user\", public;")
        );
        client.set("search_path", "a'; DROP TABLE t; --");
        assert_eq!(
            server.alignment_sql(&client).as_deref(),
            Some("SET search_path = 'a''; DROP TABLE t; --';")
        );
    }

    #[test]
    fn equal_sets_share_storage_and_a_change_copies_first() {
        let make = |app: &str| {
            let mut p = ParamSet::default();
            p.set("client_encoding", "UTF8");
            p.set("application_name", app);
            p.shared()
        };
        let a = make("shared-set-test");
        let mut b = make("shared-set-test");
        assert!(a.shares_storage_with(&b));
        assert_eq!(a, b);
        // Setting what it already has keeps the set shared.
        b.set("client_encoding", "UTF8");
        assert!(a.shares_storage_with(&b));
        // A change is the changing client's own.
        b.set("application_name", "other");
        assert!(!a.shares_storage_with(&b));
        assert_eq!(a.get("application_name"), Some("shared-set-test"));
        assert_eq!(b.get("application_name"), Some("other"));
        assert_eq!(
            a.alignment_sql(&b).as_deref(),
            Some("SET application_name = 'other';")
        );
        assert!(ParamSet::default().shared() == ParamSet::default());
    }

    #[test]
    fn unreported_values_are_adopted() {
        let mut server = ParamSet::default();
        server.set("TimeZone", "UTC");
        let mut client = ParamSet::default();
        client.set("search_path", "s1");
        client.set("TimeZone", "europe/berlin");
        let before = server.clone();
        // The server reported its own spelling of TimeZone but nothing for search_path.
        server.set("TimeZone", "Europe/Berlin");
        server.adopt(&client, &before);
        assert_eq!(server.get("search_path"), Some("s1"));
        assert_eq!(server.get("TimeZone"), Some("Europe/Berlin"));
    }
}

#[cfg(test)]
mod search_path_quoting_tests {
    use super::ParamSet;

    /// A search_path from a client's startup packet goes into a SET unquoted only when it is a
    /// plain list; anything that could end the statement is sent as one quoted literal.
    #[test]
    fn only_plain_lists_go_unquoted() {
        let server = ParamSet::default();
        let mut client = ParamSet::default();
        client.set("search_path", "app, \"My Schema\", public");
        assert_eq!(
            server.alignment_sql(&client).as_deref(),
            Some("SET search_path = app, \"My Schema\", public;")
        );
        client.set("search_path", "x; DROP TABLE t; --");
        let sql = server.alignment_sql(&client).unwrap();
        assert_eq!(sql, "SET search_path = 'x; DROP TABLE t; --';");
        client.set("search_path", "\"a\"; select 1 --");
        let sql = server.alignment_sql(&client).unwrap();
        assert!(sql.starts_with("SET search_path = '"), "{sql}");
    }
}
