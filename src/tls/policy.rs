//! Pure translations of PgBouncer's TLS settings into what rustls understands: `*_sslmode`,
//! `*_tls_protocols` (libtls syntax) and `*_tls_ciphers` / `*_tls13_ciphers` (OpenSSL names).
//!
//! Does not: read files or build rustls configs (`mod.rs` does).
//!
//! Invariants: rustls speaks TLS 1.2 and 1.3 only, so TLS 1.0/1.1 requests are dropped with a
//! warning and a protocol set left empty is an error; a cipher list that names no suite rustls
//! implements is an error rather than a silent fallback, while OpenSSL's keywords (`HIGH`,
//! `default`, `secure`...) and exclusions (`!aNULL`) keep rustls's own secure set.

use rustls::SupportedCipherSuite;
use rustls::crypto::ring::cipher_suite as cs;

/// `client_tls_sslmode` / `server_tls_sslmode`, in increasing strictness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum SslMode {
    /// No TLS.
    #[default]
    Disable,
    /// TLS if the peer wants it (towards servers PgBouncer treats it as `prefer`).
    Allow,
    /// TLS when the peer supports it, plain otherwise.
    Prefer,
    /// TLS mandatory, certificates not checked (unless a CA file is given towards servers).
    Require,
    /// TLS mandatory, the peer's certificate chain checked against the CA.
    VerifyCa,
    /// As `VerifyCa`, and towards servers the host name must match the certificate.
    VerifyFull,
}

impl SslMode {
    /// Parses a mode name (case-insensitive, as the settings table accepts it).
    pub fn parse(text: &str) -> Option<SslMode> {
        let mode = match text.trim().to_ascii_lowercase().as_str() {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        };
        Some(mode)
    }

    /// The setting's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// Which TLS versions a `*_tls_protocols` value allows, after dropping what rustls lacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Protocols {
    /// TLS 1.2 allowed.
    pub tls12: bool,
    /// TLS 1.3 allowed.
    pub tls13: bool,
    /// TLS 1.0 or 1.1 was asked for by name and is not available.
    pub dropped_legacy: bool,
}

const V10: u8 = 1;
const V11: u8 = 2;
const V12: u8 = 4;
const V13: u8 = 8;
const ALL: u8 = V10 | V11 | V12 | V13;
const SECURE: u8 = V12 | V13;

/// Parses libtls protocol syntax: words separated by `,` or `:`, each optionally negated with
/// `!`; `all`, `secure`/`default`/`legacy` (1.2 and 1.3 here), `tlsv1` (1.0-1.3), `tlsv1.0` ...
/// `tlsv1.3`. A list that starts with a negation starts from `all`.
pub fn parse_protocols(text: &str) -> Result<Protocols, String> {
    if text.trim().is_empty() {
        return parse_protocols("secure");
    }
    let mut set = 0u8;
    let mut legacy_named = false;
    for word in text.split([',', ':']) {
        let word = word.trim_start_matches([' ', '\t']).trim_end();
        let (negate, name) = match word.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, word),
        };
        if negate && set == 0 {
            set = ALL;
        }
        let bits = match name.to_ascii_lowercase().as_str() {
            "all" | "tlsv1" => ALL,
            "secure" | "default" | "legacy" => SECURE,
            "tlsv1.0" => V10,
            "tlsv1.1" => V11,
            "tlsv1.2" => V12,
            "tlsv1.3" => V13,
            _ => return Err(format!("invalid TLS protocol: {name}")),
        };
        if negate {
            set &= !bits;
        } else {
            if matches!(name.to_ascii_lowercase().as_str(), "tlsv1.0" | "tlsv1.1") {
                legacy_named = true;
            }
            set |= bits;
        }
    }
    let protocols = Protocols {
        tls12: set & V12 != 0,
        tls13: set & V13 != 0,
        dropped_legacy: legacy_named && set & (V10 | V11) != 0,
    };
    if !protocols.tls12 && !protocols.tls13 {
        return Err(format!(
            "{text}: only TLS 1.2 and 1.3 are available (rustls has no TLS 1.0/1.1)"
        ));
    }
    Ok(protocols)
}

/// OpenSSL names of the suites rustls implements.
const SUITES: &[(&str, SupportedCipherSuite)] = &[
    ("TLS_AES_256_GCM_SHA384", cs::TLS13_AES_256_GCM_SHA384),
    ("TLS_AES_128_GCM_SHA256", cs::TLS13_AES_128_GCM_SHA256),
    (
        "TLS_CHACHA20_POLY1305_SHA256",
        cs::TLS13_CHACHA20_POLY1305_SHA256,
    ),
    (
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "ECDHE-RSA-AES256-GCM-SHA384",
        cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "ECDHE-RSA-AES128-GCM-SHA256",
        cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "ECDHE-RSA-CHACHA20-POLY1305",
        cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
];

/// libtls and OpenSSL keywords that select a broad, secure-by-intent set: rustls's defaults.
const KEYWORDS: &[&str] = &[
    "default", "secure", "fast", "normal", "compat", "legacy", "insecure", "all", "high", "medium",
    "aead", "ecdhe", "eecdh", "aesgcm", "chacha20", "tlsv1.2", "tlsv1.3",
];

/// Which suites a cipher setting selects: `None` means rustls's default set.
#[derive(Debug, Clone, PartialEq)]
pub struct CipherChoice {
    /// Explicitly named suites, in the given order (`None`: keep the defaults).
    pub suites: Option<Vec<SupportedCipherSuite>>,
    /// Named ciphers rustls does not implement (ignored; the caller warns).
    pub unknown: Vec<String>,
}

/// Reads an OpenSSL cipher string (`client_tls_ciphers`) or TLS 1.3 suite list
/// (`client_tls13_ciphers`), separated by `:`, `,` or blanks.
pub fn parse_ciphers(text: &str) -> Result<CipherChoice, String> {
    let mut suites = Vec::new();
    let mut unknown = Vec::new();
    let mut keyword = text.trim().is_empty();
    for word in text.split([':', ',', ' ']).filter(|w| !w.is_empty()) {
        if word.starts_with(['!', '-', '+', '@']) {
            // Exclusions and ordering directives only narrow a set; rustls's set holds no
            // weak ciphers for them to remove.
            continue;
        }
        if let Some((_, suite)) = SUITES.iter().find(|(n, _)| n.eq_ignore_ascii_case(word)) {
            if !suites.contains(suite) {
                suites.push(*suite);
            }
        } else if KEYWORDS.iter().any(|k| k.eq_ignore_ascii_case(word)) {
            keyword = true;
        } else {
            unknown.push(word.to_owned());
        }
    }
    if suites.is_empty() {
        if keyword || unknown.is_empty() {
            return Ok(CipherChoice {
                suites: None,
                unknown,
            });
        }
        return Err(format!(
            "{text}: none of these ciphers is available (rustls implements only AEAD suites with ECDHE)"
        ));
    }
    Ok(CipherChoice {
        suites: Some(suites),
        unknown,
    })
}

/// The OpenSSL-style name of a suite, for the connection summary.
pub fn suite_name(suite: SupportedCipherSuite) -> String {
    SUITES
        .iter()
        .find(|(_, s)| *s == suite)
        .map_or_else(|| format!("{:?}", suite.suite()), |(n, _)| (*n).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_are_ordered() {
        assert!(SslMode::Require > SslMode::Prefer);
        assert!(SslMode::VerifyFull > SslMode::VerifyCa);
        assert_eq!(SslMode::parse("Verify-Full"), Some(SslMode::VerifyFull));
        assert_eq!(SslMode::parse("nope"), None);
        for m in [
            "disable",
            "allow",
            "prefer",
            "require",
            "verify-ca",
            "verify-full",
        ] {
            assert_eq!(SslMode::parse(m).map(SslMode::as_str), Some(m));
        }
    }

    #[test]
    fn protocols_map_to_rustls() {
        let p = parse_protocols("secure").unwrap();
        assert!(p.tls12 && p.tls13 && !p.dropped_legacy);
        let p = parse_protocols("all").unwrap();
        assert!(p.tls12 && p.tls13 && !p.dropped_legacy);
        let p = parse_protocols("tlsv1.3").unwrap();
        assert!(!p.tls12 && p.tls13);
        let p = parse_protocols("tlsv1.1,tlsv1.2").unwrap();
        assert!(p.tls12 && !p.tls13 && p.dropped_legacy);
        let p = parse_protocols("!tlsv1.3").unwrap();
        assert!(p.tls12 && !p.tls13);
        let p = parse_protocols("tlsv1.2:tlsv1.3").unwrap();
        assert!(p.tls12 && p.tls13);
        assert!(parse_protocols("").unwrap().tls13);
        assert!(parse_protocols("tlsv1.0").is_err());
        assert!(parse_protocols("tlsv1.0,tlsv1.1").is_err());
        assert!(parse_protocols("sslv3").is_err());
    }

    #[test]
    fn ciphers_map_to_rustls() {
        assert_eq!(parse_ciphers("default").unwrap().suites, None);
        assert_eq!(parse_ciphers("HIGH:!aNULL:!MD5").unwrap().suites, None);
        assert_eq!(parse_ciphers("").unwrap().suites, None);
        let c = parse_ciphers("ECDHE-RSA-AES256-GCM-SHA384:DHE-RSA-AES256-SHA").unwrap();
        assert_eq!(
            c.suites,
            Some(vec![cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384])
        );
        assert_eq!(c.unknown, vec!["DHE-RSA-AES256-SHA".to_owned()]);
        let c = parse_ciphers("TLS_AES_128_GCM_SHA256").unwrap();
        assert_eq!(c.suites, Some(vec![cs::TLS13_AES_128_GCM_SHA256]));
        assert!(parse_ciphers("RC4-MD5:DES-CBC3-SHA").is_err());
        assert_eq!(
            suite_name(cs::TLS13_AES_256_GCM_SHA384),
            "TLS_AES_256_GCM_SHA384"
        );
    }
}
