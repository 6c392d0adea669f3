//! The `auth_ident_file`: user-name maps for HBA `cert` and `peer` rules with `map=NAME`, in
//! PgBouncer's subset of PostgreSQL's `pg_ident.conf`.
//!
//! Owns: parsing lines `MAP-NAME SYSTEM-USERNAME DATABASE-USERNAME` (the database user may be
//! `all`; names may be quoted as in the HBA file; `#` starts a comment), and deciding whether a
//! map lets an identity (OS user of a unix-socket peer, or a name in a client certificate) log
//! in as a database user. Mappings of a map are tried in file order; the first that fits wins.
//!
//! Does not: read files or log. Lines PgBouncer cannot use are skipped and reported back as
//! warnings, as PgBouncer skips them: regular expressions (`/...`) in either name, `+group`
//! database users, include directives, and lines with too few or too many fields. A skipped
//! line can only ever refuse a login that it would otherwise have allowed, never allow one.
//!
//! Invariants: pure; a map named by no line does not exist (an HBA rule naming it is a load
//! error, see `Hba::check_maps`); matching is exact and case-sensitive, as PgBouncer's
//! `strcmp`.

use super::hba::{Token, tokenize};

/// Which database users a mapping allows.
#[derive(Debug, Clone, PartialEq, Eq)]
enum DbUser {
    /// `all`: any database user.
    All,
    /// Exactly this user.
    Name(String),
}

/// One line: this system identity may log in as these database users.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Mapping {
    system_user: String,
    db_user: DbUser,
}

/// A named map and its mappings in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
struct IdentMap {
    name: String,
    mappings: Vec<Mapping>,
}

/// Every map of one file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdentMaps {
    maps: Vec<IdentMap>,
}

/// A line that was skipped, at `file:line`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {reason}; line ignored")]
pub struct IdentWarning {
    /// File name.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// Why it was skipped.
    pub reason: String,
}

fn mapping(tokens: &[Token]) -> Result<(String, Mapping), String> {
    let [map, system, db] = tokens else {
        return Err(format!(
            "expected MAP-NAME SYSTEM-USERNAME DATABASE-USERNAME, found {} field(s)",
            tokens.len()
        ));
    };
    if !map.quoted
        && matches!(
            map.text.as_str(),
            "include" | "include_if_exists" | "include_dir"
        )
    {
        return Err("include directives are not supported".to_owned());
    }
    if system.text.starts_with('/') || db.text.starts_with('/') {
        return Err("regular expressions are not supported".to_owned());
    }
    if !db.quoted && db.text.starts_with('+') {
        return Err("group membership (+group) is not supported".to_owned());
    }
    let db_user = if !db.quoted && db.text == "all" {
        DbUser::All
    } else {
        DbUser::Name(db.text.clone())
    };
    Ok((
        map.text.clone(),
        Mapping {
            system_user: system.text.clone(),
            db_user,
        },
    ))
}

impl IdentMaps {
    /// Parses the text of `file`; unusable lines are skipped and returned as warnings.
    pub fn parse(text: &str, file: &str) -> (IdentMaps, Vec<IdentWarning>) {
        let mut maps = IdentMaps::default();
        let mut warnings = Vec::new();
        for (idx, line) in text.lines().enumerate() {
            let parsed = tokenize(line).and_then(|tokens| {
                if tokens.is_empty() {
                    Ok(None)
                } else {
                    mapping(&tokens).map(Some)
                }
            });
            match parsed {
                Ok(Some((name, m))) => maps.push(name, m),
                Ok(None) => {}
                Err(reason) => warnings.push(IdentWarning {
                    file: file.to_owned(),
                    line: idx + 1,
                    reason,
                }),
            }
        }
        (maps, warnings)
    }

    fn push(&mut self, name: String, m: Mapping) {
        if let Some(map) = self.maps.iter_mut().find(|map| map.name == name) {
            map.mappings.push(m);
        } else {
            self.maps.push(IdentMap {
                name,
                mappings: vec![m],
            });
        }
    }

    /// Whether a map of this name exists.
    pub fn contains(&self, map: &str) -> bool {
        self.maps.iter().any(|m| m.name == map)
    }

    /// Whether `map` has a mapping whose system user satisfies `is_identity` (the OS user of
    /// the peer, or a name in the client's certificate) and which allows `db_user`.
    pub fn allows(&self, map: &str, is_identity: impl Fn(&str) -> bool, db_user: &str) -> bool {
        self.maps
            .iter()
            .filter(|m| m.name == map)
            .flat_map(|m| &m.mappings)
            .any(|m| {
                is_identity(&m.system_user)
                    && match &m.db_user {
                        DbUser::All => true,
                        DbUser::Name(name) => name == db_user,
                    }
            })
    }

    /// How many maps the file defines.
    pub fn len(&self) -> usize {
        self.maps.len()
    }

    /// Whether the file defines no map.
    pub fn is_empty(&self) -> bool {
        self.maps.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "# MAP  SYSTEM  DB\n\
        mymap  alice   postgres\n\
        mymap  alice   app   # trailing comment\n\
        \n\
        other  bob     all\n\
        other  carol   \"all\"\n\
        quoted \"dan smith\" dan\n\
        mymap  /^(.*)$  \\1\n\
        mymap  erin    +admins\n\
        mymap  frank\n\
        include extra.conf x\n";

    #[test]
    fn maps_allow_listed_pairs_and_all() {
        let (maps, warnings) = IdentMaps::parse(FILE, "ident.conf");
        assert_eq!(maps.len(), 3);
        assert!(maps.contains("mymap") && maps.contains("other") && !maps.contains("nope"));
        let is = |who: &'static str| move |sys: &str| sys == who;
        assert!(maps.allows("mymap", is("alice"), "postgres"));
        assert!(maps.allows("mymap", is("alice"), "app"));
        assert!(!maps.allows("mymap", is("alice"), "someone"));
        assert!(!maps.allows("mymap", is("bob"), "postgres"));
        // Maps do not leak into each other.
        assert!(!maps.allows("other", is("alice"), "postgres"));
        assert!(maps.allows("other", is("bob"), "anyone"));
        // A quoted "all" is a user called all.
        assert!(maps.allows("other", is("carol"), "all"));
        assert!(!maps.allows("other", is("carol"), "someone"));
        assert!(maps.allows("quoted", is("dan smith"), "dan"));
        assert!(!maps.allows("nope", |_| true, "postgres"));
        let lines: Vec<usize> = warnings.iter().map(|w| w.line).collect();
        assert_eq!(lines, vec![8, 9, 10, 11]);
        assert!(warnings[0].to_string().contains("regular expressions"));
        assert!(warnings[0].to_string().starts_with("ident.conf:8: "));
        assert!(warnings[1].reason.contains("+group"));
        assert!(warnings[2].reason.contains("found 2 field(s)"));
        assert!(warnings[3].reason.contains("include"));
    }

    #[test]
    fn unterminated_quotes_and_garbage_are_skipped_not_fatal() {
        let (maps, warnings) = IdentMaps::parse("m \"open x\nm a b\n\u{0}\u{1}\n", "f");
        assert!(maps.allows("m", |s| s == "a", "b"));
        assert_eq!(warnings.len(), 2);
        assert!(IdentMaps::parse("", "f").0.is_empty());
    }
}
