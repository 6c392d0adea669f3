//! Configuration errors.
//!
//! Owns: the one error type of `config/`, whose `Display` is `FILE:LINE: REASON` for everything
//! found while parsing, so an operator can jump to the line.
//! Does not: log; callers decide whether an error is fatal (start) or keeps the old config
//! (reload).
//! Invariants: every parse error carries a 1-based line number; I/O errors keep the path and the
//! `io::Error` as their source, never a stringified copy.

use std::path::PathBuf;

/// An error while loading or validating the configuration.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A problem at a known place in a file.
    #[error("{file}:{line}: {reason}")]
    Parse {
        /// The file name as given (or the name passed to `from_ini_str`).
        file: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong, in PgBouncer's words where it has some.
        reason: String,
    },
    /// A file could not be read.
    #[error("could not load file \"{}\": {source}", path.display())]
    Io {
        /// The path as it was opened (relative paths are relative to the working directory).
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// A parse error at `file:line`.
    pub fn at(file: &str, line: usize, reason: impl Into<String>) -> Self {
        Error::Parse {
            file: file.to_owned(),
            line,
            reason: reason.into(),
        }
    }

    /// The line number, for parse errors.
    pub fn line(&self) -> Option<usize> {
        match self {
            Error::Parse { line, .. } => Some(*line),
            Error::Io { .. } => None,
        }
    }

    /// The reason text without the location, for parse errors.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Error::Parse { reason, .. } => Some(reason),
            Error::Io { .. } => None,
        }
    }
}

/// Where a value came from: file name and 1-based line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Loc {
    /// File name as given.
    pub file: String,
    /// 1-based line number.
    pub line: usize,
}

impl Loc {
    /// A location.
    pub fn new(file: &str, line: usize) -> Self {
        Loc {
            file: file.to_owned(),
            line,
        }
    }

    /// An error at this location.
    pub fn err(&self, reason: impl Into<String>) -> Error {
        Error::at(&self.file, self.line, reason)
    }
}
