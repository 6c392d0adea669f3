//! The console's command syntax, as PgBouncer's three regular expressions accept it:
//! `WORD [WORD] [;]`, `SET key = value` / `SET key TO value` with a word or a `'quoted'`
//! value; words are `[0-9A-Za-z_]+` or `"double quoted"`. Matching is case-insensitive.
//!
//! Owns: splitting a query string into commands on `;` outside quotes (pgsluice runs several
//! commands per query; PgBouncer only one), unquoting (`""` and `''` escape a quote), and
//! PgBouncer's length limits (command word < 16 bytes, argument < 64, SET value < 256; longer is
//! "bad arguments").
//! Does not: know which commands exist (see `commands.rs`).
//! Invariants: never panics on any input; the command word is lower-cased, arguments keep their
//! case.

/// One parsed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `WORD [ARG]`: the word lower-cased, the argument unquoted (empty when absent).
    Word {
        /// Command word, lower case.
        cmd: String,
        /// Argument, empty if none.
        arg: String,
    },
    /// `SET key = value`.
    Set {
        /// Setting name as written (unquoted).
        key: String,
        /// Value, unquoted.
        value: String,
    },
}

/// Why a command did not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// Not a command: PgBouncer's "invalid command '<text>', use SHOW HELP;".
    Syntax(String),
    /// A word or value too long: "bad arguments".
    BadArguments,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParseError::Syntax(text) => write!(f, "invalid command '{text}', use SHOW HELP;"),
            ParseError::BadArguments => f.write_str("bad arguments"),
        }
    }
}

const MAX_CMD: usize = 16;
const MAX_ARG: usize = 64;
const MAX_VAL: usize = 256;

/// A lexical token.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// Bare word, as written.
    Word(String),
    /// `"..."`, unquoted.
    Quoted(String),
    /// `'...'`, unquoted.
    Str(String),
    /// `=`.
    Equals,
}

/// Splits a query string into command texts on `;` outside quotes; empty pieces are dropped.
/// Each piece keeps its original text (for error messages).
pub fn split(query: &str) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut quote: Option<char> = None;
    let mut start = 0;
    for (i, c) in query.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (None, '"' | '\'') => quote = Some(c),
            (None, ';') => {
                pieces.push(&query[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    pieces.push(&query[start..]);
    pieces
        .into_iter()
        .filter(|p| !p.trim().is_empty())
        .collect()
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn quoted(chars: &mut std::iter::Peekable<std::str::Chars<'_>>, q: char) -> Option<String> {
    let mut out = String::new();
    loop {
        let c = chars.next()?;
        if c == q {
            if chars.peek() == Some(&q) {
                chars.next();
                out.push(q);
                continue;
            }
            return Some(out);
        }
        out.push(c);
    }
}

fn tokenize(text: &str) -> Option<Vec<Token>> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        if matches!(c, ' ' | '\t' | '\n' | '\r') {
            chars.next();
        } else if c == '=' {
            chars.next();
            tokens.push(Token::Equals);
        } else if c == '"' || c == '\'' {
            chars.next();
            let body = quoted(&mut chars, c)?;
            // PgBouncer's WORD needs at least one character between double quotes.
            if c == '"' && body.is_empty() {
                return None;
            }
            tokens.push(if c == '"' {
                Token::Quoted(body)
            } else {
                Token::Str(body)
            });
        } else if is_word_char(c) {
            let mut word = String::new();
            while let Some(&c) = chars.peek().filter(|c| is_word_char(**c)) {
                word.push(c);
                chars.next();
            }
            tokens.push(Token::Word(word));
        } else {
            return None;
        }
    }
    Some(tokens)
}

fn word(token: &Token) -> Option<&str> {
    match token {
        Token::Word(w) | Token::Quoted(w) => Some(w),
        _ => None,
    }
}

fn limited(text: &str, max: usize) -> Result<String, ParseError> {
    if text.len() >= max {
        Err(ParseError::BadArguments)
    } else {
        Ok(text.to_owned())
    }
}

/// Parses one command text (without its `;`).
pub fn parse(text: &str) -> Result<Command, ParseError> {
    let syntax = || ParseError::Syntax(text.to_owned());
    let tokens = tokenize(text).ok_or_else(syntax)?;
    match tokens.as_slice() {
        [first, rest @ ..]
            if matches!(first, Token::Word(w) if w.eq_ignore_ascii_case("set"))
                && !rest.is_empty() =>
        {
            parse_set(rest).ok_or_else(syntax)?
        }
        [cmd] => Ok(Command::Word {
            cmd: limited(word(cmd).ok_or_else(syntax)?, MAX_CMD)?.to_ascii_lowercase(),
            arg: String::new(),
        }),
        [cmd, arg] => Ok(Command::Word {
            cmd: limited(word(cmd).ok_or_else(syntax)?, MAX_CMD)?.to_ascii_lowercase(),
            arg: limited(word(arg).ok_or_else(syntax)?, MAX_ARG)?,
        }),
        _ => Err(syntax()),
    }
}

fn parse_set(rest: &[Token]) -> Option<Result<Command, ParseError>> {
    let [key, op, value] = rest else {
        return None;
    };
    let key = word(key)?;
    let is_op =
        matches!(op, Token::Equals) || matches!(op, Token::Word(w) if w.eq_ignore_ascii_case("to"));
    if !is_op {
        return None;
    }
    let value = match value {
        Token::Word(w) | Token::Quoted(w) | Token::Str(w) => w,
        Token::Equals => return None,
    };
    Some(limited(key, MAX_ARG).and_then(|key| {
        Ok(Command::Set {
            key,
            value: limited(value, MAX_VAL)?,
        })
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(clippy::unnecessary_wraps)] // compared with parse()'s result
    fn word(cmd: &str, arg: &str) -> Result<Command, ParseError> {
        Ok(Command::Word {
            cmd: cmd.into(),
            arg: arg.into(),
        })
    }

    #[test]
    fn words_and_case() {
        assert_eq!(parse("SHOW POOLS"), word("show", "POOLS"));
        assert_eq!(parse("  show\tpools \n"), word("show", "pools"));
        assert_eq!(parse("reload"), word("reload", ""));
        assert_eq!(parse("pause \"my-db\""), word("pause", "my-db"));
        assert_eq!(parse("kill_client 42"), word("kill_client", "42"));
        assert_eq!(parse("select version"), word("select", "version"));
    }

    #[test]
    fn set_forms() {
        let set = |k: &str, v: &str| {
            Ok(Command::Set {
                key: k.into(),
                value: v.into(),
            })
        };
        assert_eq!(
            parse("SET default_pool_size = 7"),
            set("default_pool_size", "7")
        );
        assert_eq!(
            parse("set default_pool_size=7"),
            set("default_pool_size", "7")
        );
        assert_eq!(
            parse("SET server_reset_query TO 'DISCARD ALL'"),
            set("server_reset_query", "DISCARD ALL")
        );
        assert_eq!(parse("set x = 'it''s'"), set("x", "it's"));
        assert_eq!(
            parse("SET extra_float_digits = 3"),
            set("extra_float_digits", "3")
        );
        assert!(matches!(parse("set x"), Err(ParseError::Syntax(_))));
        assert!(matches!(parse("set x y z"), Err(ParseError::Syntax(_))));
    }

    #[test]
    fn errors() {
        assert_eq!(
            parse("SHOW FOO BAR").unwrap_err().to_string(),
            "invalid command 'SHOW FOO BAR', use SHOW HELP;"
        );
        assert!(matches!(parse("show my-db"), Err(ParseError::Syntax(_))));
        assert!(matches!(parse("show \"\""), Err(ParseError::Syntax(_))));
        assert!(matches!(parse("show 'x"), Err(ParseError::Syntax(_))));
        assert_eq!(parse(&"x".repeat(16)), Err(ParseError::BadArguments));
        assert_eq!(
            parse(&format!("pause {}", "d".repeat(64))),
            Err(ParseError::BadArguments)
        );
        assert!(parse(&format!("pause {}", "d".repeat(63))).is_ok());
    }

    #[test]
    fn splitting() {
        assert_eq!(split("SHOW POOLS;"), ["SHOW POOLS"]);
        assert_eq!(
            split("show pools; show stats;;"),
            ["show pools", " show stats"]
        );
        assert_eq!(split("set a = 'x;y'; reload"), ["set a = 'x;y'", " reload"]);
        assert_eq!(split("pause \"a;b\""), ["pause \"a;b\""]);
        assert!(split(" ; ;").is_empty());
    }

    proptest::proptest! {
        #[test]
        fn never_panics(text in ".{0,200}") {
            for piece in split(&text) {
                let _ = parse(piece);
            }
        }
    }
}
