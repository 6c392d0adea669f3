//! The reported parameters a client can observe (PgBouncer's varcache): what each server has and
//! what each client was told, and the SET statements that make a server match a client.

/// Parameters tracked per connection, in the spelling the server reports them.
pub const TRACKED: [&str; 6] = [
    "client_encoding",
    "DateStyle",
    "TimeZone",
    "standard_conforming_strings",
    "application_name",
    "IntervalStyle",
];

/// The canonical spelling of a tracked parameter name (startup names are case-insensitive).
pub fn canonical(name: &str) -> Option<&'static str> {
    TRACKED
        .iter()
        .copied()
        .find(|t| t.eq_ignore_ascii_case(name))
}

/// Values of the tracked parameters; `None` means unknown.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParamSet {
    values: [Option<String>; TRACKED.len()],
}

impl ParamSet {
    fn index(name: &str) -> Option<usize> {
        TRACKED.iter().position(|t| t.eq_ignore_ascii_case(name))
    }

    /// Records a value if `name` is tracked; returns whether it was.
    pub fn set(&mut self, name: &str, value: &str) -> bool {
        match Self::index(name).and_then(|i| self.values.get_mut(i)) {
            Some(slot) => {
                if slot.as_deref() != Some(value) {
                    *slot = Some(value.to_owned());
                }
                true
            }
            None => false,
        }
    }

    /// The value of a tracked parameter.
    pub fn get(&self, name: &str) -> Option<&str> {
        Self::index(name)
            .and_then(|i| self.values.get(i))
            .and_then(Option::as_deref)
    }

    /// Known (name, value) pairs.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &str)> {
        TRACKED
            .iter()
            .zip(&self.values)
            .filter_map(|(n, v)| v.as_deref().map(|v| (*n, v)))
    }

    /// SET statements that make a server with `self` look like `wanted`, or `None` if it already
    /// does. Values are quoted as SQL literals.
    pub fn alignment_sql(&self, wanted: &ParamSet) -> Option<String> {
        // Slot by slot: both sets index the same TRACKED names, so no name lookups are needed.
        if self.values == wanted.values {
            return None;
        }
        let mut sql = String::new();
        for ((name, have), want) in TRACKED.iter().zip(&self.values).zip(&wanted.values) {
            let Some(value) = want.as_deref() else {
                continue;
            };
            if have.as_deref() != Some(value) {
                sql.push_str("SET ");
                sql.push_str(name);
                sql.push_str(" = '");
                sql.push_str(&value.replace('\'', "''"));
                sql.push_str("';");
            }
        }
        (!sql.is_empty()).then_some(sql)
    }
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
        assert!(!p.set("search_path", "x"));
        assert!(p.set("DATESTYLE", "ISO, MDY"));
        assert_eq!(p.get("DateStyle"), Some("ISO, MDY"));
        assert_eq!(canonical("timezone"), Some("TimeZone"));
    }
}
