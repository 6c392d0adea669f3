//! The `auth_hba_file` (pg_hba.conf syntax, PgBouncer's subset) and choosing a rule for a login.
//!
//! Owns: parsing lines `TYPE DATABASE USER [ADDRESS [MASK]] METHOD [OPTIONS]` with record types
//! `local`, `host`, `hostssl`, `hostnossl`; database lists (`all`, `sameuser`, `replication`,
//! names, `@file`), user lists (`all`, names, `@file`), addresses (`all`, IPv4/IPv6 with a
//! CIDR suffix or a separate mask); methods `trust`, `reject`, `md5`, `scram-sha-256`,
//! `password`, `cert`, `peer`; `map=` kept for `cert`/`peer` and checked against the
//! `auth_ident_file` maps ([`Hba::check_maps`]). Evaluation: the first rule that
//! matches the connection wins; no match means the login is refused.
//!
//! Does not: read files itself (`@file` lists come through the caller's `include` function), or
//! run the chosen method.
//!
//! Invariants: pure; errors carry `file:line`; quoted words are names, never keywords;
//! unsupported pg_hba.conf features (`samerole`, `+group`, `samehost`, `samenet`, host names,
//! `ldap`, `pam`...) are errors, not silently ignored rules.

use std::net::IpAddr;

use super::ident::IdentMaps;

/// The connection kinds a rule applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnType {
    /// Unix socket.
    Local,
    /// TCP, with or without TLS.
    Host,
    /// TCP with TLS.
    HostSsl,
    /// TCP without TLS.
    HostNoSsl,
}

/// How a matching rule authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HbaMethod {
    /// No password.
    Trust,
    /// Refuse.
    Reject,
    /// md5, or SCRAM when the stored secret is SCRAM (as `auth_type = md5`).
    Md5,
    /// SCRAM-SHA-256.
    ScramSha256,
    /// Cleartext password.
    Password,
    /// TLS client certificate naming the user.
    Cert,
    /// Unix socket peer credentials naming the user.
    Peer,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Name {
    All,
    SameUser,
    Replication,
    Literal(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Address {
    Any,
    Net(IpAddr, u8),
}

/// One parsed line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// 1-based line in the file.
    pub line: usize,
    conn: ConnType,
    databases: Vec<Name>,
    users: Vec<Name>,
    address: Address,
    /// The method.
    pub method: HbaMethod,
    /// `map=` option (ident map name), if any.
    pub map: Option<String>,
}

/// The rules of one file, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hba {
    rules: Vec<Rule>,
}

/// A parse error at `file:line`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {reason}")]
pub struct HbaError {
    /// File name.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

/// What a login looks like to the rules.
#[derive(Debug, Clone, Copy)]
pub struct Connection<'a> {
    /// Peer address; `None` for a unix socket.
    pub addr: Option<IpAddr>,
    /// Whether TLS is in use.
    pub tls: bool,
    /// Requested database.
    pub database: &'a str,
    /// Requested user.
    pub user: &'a str,
    /// A physical replication login: only rules whose database list has `replication` apply to
    /// it (as in PostgreSQL and PgBouncer); a logical one matches database names as usual.
    pub physical_replication: bool,
}

/// A word of a line and whether it was quoted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Token {
    pub(super) text: String,
    pub(super) quoted: bool,
}

/// Splits a line into words: blanks separate, `"..."` quotes (with `""` as a quote), `#` starts
/// a comment outside quotes. Commas stay inside words (lists are split later). The ident map
/// file has the same lexical rules.
pub(super) fn tokenize(line: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        match chars.peek() {
            None | Some('#') => return Ok(out),
            Some(_) => {}
        }
        let mut text = String::new();
        let mut quoted = false;
        let mut in_quotes = false;
        while let Some(&c) = chars.peek() {
            if in_quotes {
                chars.next();
                if c == '"' {
                    if chars.next_if_eq(&'"').is_some() {
                        text.push('"');
                    } else {
                        in_quotes = false;
                    }
                } else {
                    text.push(c);
                }
            } else if c.is_whitespace() || c == '#' {
                break;
            } else {
                chars.next();
                if c == '"' {
                    in_quotes = true;
                    quoted = true;
                } else {
                    text.push(c);
                }
            }
        }
        if in_quotes {
            return Err("unterminated quoted string".to_owned());
        }
        out.push(Token { text, quoted });
    }
}

/// Splits a list word on commas outside quotes.
fn list_items(token: &Token) -> Vec<Token> {
    if token.quoted && !token.text.contains(',') {
        return vec![token.clone()];
    }
    token
        .text
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| Token {
            text: s.to_owned(),
            quoted: token.quoted,
        })
        .collect()
}

fn names(
    token: &Token,
    is_db: bool,
    include: &mut dyn FnMut(&str) -> Result<String, String>,
) -> Result<Vec<Name>, String> {
    let mut out = Vec::new();
    for item in list_items(token) {
        if !item.quoted {
            if let Some(file) = item.text.strip_prefix('@') {
                let text = include(file)?;
                for line in text.lines() {
                    for t in tokenize(line)? {
                        out.extend(list_items(&t).into_iter().map(|t| Name::Literal(t.text)));
                    }
                }
                continue;
            }
            match item.text.as_str() {
                "all" => {
                    out.push(Name::All);
                    continue;
                }
                "sameuser" if is_db => {
                    out.push(Name::SameUser);
                    continue;
                }
                "replication" if is_db => {
                    out.push(Name::Replication);
                    continue;
                }
                "samerole" | "samegroup" if is_db => {
                    return Err(format!("unsupported keyword: {}", item.text));
                }
                t if t.starts_with('+') && !is_db => {
                    return Err(format!("group membership is not supported: {t}"));
                }
                _ => {}
            }
        }
        out.push(Name::Literal(item.text));
    }
    if out.is_empty() {
        return Err("empty list".to_owned());
    }
    Ok(out)
}

fn prefix_of_mask(mask: IpAddr) -> Option<u8> {
    let bits: u128 = match mask {
        IpAddr::V4(m) => u128::from(u32::from(m)) << 96,
        IpAddr::V6(m) => u128::from(m),
    };
    let ones = bits.leading_ones();
    // A mask is contiguous ones followed by zeros.
    (bits.checked_shl(ones).unwrap_or(0) == 0).then(|| u8::try_from(ones).ok())?
}

fn address(tokens: &mut std::slice::Iter<'_, Token>) -> Result<Address, String> {
    let word = tokens.next().ok_or("missing address")?;
    if !word.quoted && word.text == "all" {
        return Ok(Address::Any);
    }
    if matches!(word.text.as_str(), "samehost" | "samenet") {
        return Err(format!("unsupported address keyword: {}", word.text));
    }
    let (ip_text, prefix_text) = match word.text.split_once('/') {
        Some((ip, prefix)) => (ip, Some(prefix)),
        None => (word.text.as_str(), None),
    };
    let ip: IpAddr = ip_text
        .parse()
        .map_err(|_| format!("invalid IP address (host names are not supported): {ip_text}"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let prefix = if let Some(p) = prefix_text {
        p.parse::<u8>()
            .ok()
            .filter(|p| *p <= max)
            .ok_or_else(|| format!("invalid CIDR mask: {p}"))?
    } else {
        let mask_word = tokens.next().ok_or("missing netmask")?;
        let mask: IpAddr = mask_word
            .text
            .parse()
            .map_err(|_| format!("invalid netmask: {}", mask_word.text))?;
        if mask.is_ipv4() != ip.is_ipv4() {
            return Err("IP address and mask do not match".to_owned());
        }
        prefix_of_mask(mask).ok_or_else(|| format!("invalid netmask: {}", mask_word.text))?
    };
    Ok(Address::Net(ip, prefix))
}

fn method(word: &str) -> Result<HbaMethod, String> {
    Ok(match word {
        "trust" => HbaMethod::Trust,
        "reject" => HbaMethod::Reject,
        "md5" => HbaMethod::Md5,
        "scram-sha-256" => HbaMethod::ScramSha256,
        "password" => HbaMethod::Password,
        "cert" => HbaMethod::Cert,
        "peer" => HbaMethod::Peer,
        other => return Err(format!("unsupported authentication method: {other}")),
    })
}

fn rule(
    line: usize,
    tokens: &[Token],
    include: &mut dyn FnMut(&str) -> Result<String, String>,
) -> Result<Rule, String> {
    let mut it = tokens.iter();
    let conn = match it.next().map(|t| t.text.as_str()) {
        Some("local") => ConnType::Local,
        Some("host") => ConnType::Host,
        Some("hostssl") => ConnType::HostSsl,
        Some("hostnossl") => ConnType::HostNoSsl,
        Some(other) => return Err(format!("unsupported connection type: {other}")),
        None => return Err("empty rule".to_owned()),
    };
    let databases = names(it.next().ok_or("missing database")?, true, include)?;
    let users = names(it.next().ok_or("missing user")?, false, include)?;
    let address = if conn == ConnType::Local {
        Address::Any
    } else {
        address(&mut it)?
    };
    let method = method(&it.next().ok_or("missing authentication method")?.text)?;
    let mut map = None;
    for option in it {
        match option.text.split_once('=') {
            Some(("map", name)) if matches!(method, HbaMethod::Cert | HbaMethod::Peer) => {
                map = Some(name.to_owned());
            }
            _ => return Err(format!("unsupported option: {}", option.text)),
        }
    }
    Ok(Rule {
        line,
        conn,
        databases,
        users,
        address,
        method,
        map,
    })
}

fn net_contains(net: IpAddr, prefix: u8, addr: IpAddr) -> bool {
    let (net, addr, width) = match (net, addr) {
        (IpAddr::V4(n), IpAddr::V4(a)) => (u128::from(u32::from(n)), u128::from(u32::from(a)), 32),
        (IpAddr::V6(n), IpAddr::V6(a)) => (u128::from(n), u128::from(a), 128),
        _ => return false,
    };
    let shift = width - u32::from(prefix);
    net.checked_shr(shift).unwrap_or(0) == addr.checked_shr(shift).unwrap_or(0)
}

impl Rule {
    /// Whether this rule applies to `c`.
    pub fn matches(&self, c: &Connection<'_>) -> bool {
        let conn_ok = match (self.conn, c.addr) {
            (ConnType::Local, None) | (ConnType::Host, Some(_)) => true,
            (ConnType::HostSsl, Some(_)) => c.tls,
            (ConnType::HostNoSsl, Some(_)) => !c.tls,
            _ => false,
        };
        let addr_ok = match (&self.address, c.addr) {
            (Address::Any, _) => true,
            (Address::Net(net, prefix), Some(addr)) => net_contains(*net, *prefix, addr),
            (Address::Net(..), None) => false,
        };
        let db_ok = if c.physical_replication {
            self.databases.contains(&Name::Replication)
        } else {
            self.databases.iter().any(|d| match d {
                Name::All => true,
                Name::SameUser => c.database == c.user,
                // The keyword names physical replication logins only.
                Name::Replication => false,
                Name::Literal(name) => name == c.database,
            })
        };
        let user_ok = self.users.iter().any(|u| match u {
            Name::Literal(name) => name == c.user,
            _ => true,
        });
        conn_ok && addr_ok && db_ok && user_ok
    }
}

impl Hba {
    /// Parses the text of `file`; `include` returns the text of an `@file` list (relative names
    /// are the caller's to resolve).
    pub fn parse(
        text: &str,
        file: &str,
        include: &mut dyn FnMut(&str) -> Result<String, String>,
    ) -> Result<Hba, HbaError> {
        let mut rules = Vec::new();
        for (idx, line) in text.lines().enumerate() {
            let err = |reason: String| HbaError {
                file: file.to_owned(),
                line: idx + 1,
                reason,
            };
            let tokens = tokenize(line).map_err(err)?;
            if tokens.is_empty() {
                continue;
            }
            rules.push(rule(idx + 1, &tokens, include).map_err(err)?);
        }
        Ok(Hba { rules })
    }

    /// The first rule that matches, if any.
    pub fn find(&self, c: &Connection<'_>) -> Option<&Rule> {
        self.rules.iter().find(|r| r.matches(c))
    }

    /// Checks that every `map=` names a map of `ident` (the `auth_ident_file`, empty when none
    /// is set); the first rule naming an unknown map is an error at its line.
    pub fn check_maps(&self, ident: &IdentMaps, file: &str) -> Result<(), HbaError> {
        for rule in &self.rules {
            if let Some(map) = rule.map.as_deref().filter(|m| !ident.contains(m)) {
                return Err(HbaError {
                    file: file.to_owned(),
                    line: rule.line,
                    reason: format!("ident map {map} is not found in auth_ident_file"),
                });
            }
        }
        Ok(())
    }

    /// How many rules the file has.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether the file has no rules (every login is then refused).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

#[cfg(test)]
#[path = "hba_tests.rs"]
mod tests;
