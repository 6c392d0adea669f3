//! Certificate checks for what WebPKI refuses but OpenSSL (and so PgBouncer and libpq) accepts:
//! X.509 v1/v2 certificates, as `openssl ca` writes them when no extension section is
//! configured, and the host-name rule PgBouncer applies (subjectAltName first, the common name
//! when there is no DNS or IP subjectAltName).
//!
//! Owns: [`verify_chain`], the path building and checks of RFC 5280 §6 that OpenSSL's default
//! verification performs (signatures with the provider's algorithms, validity of every
//! certificate, issuers must be CAs, path length, key usage and extended key usage); the
//! handshake-signature checks over a raw SubjectPublicKeyInfo ([`verify_tls12`],
//! [`verify_tls13`]); [`check_host_name`].
//!
//! Does not: replace WebPKI for v3 chains (the verifiers in [`super::verify`] use it whenever
//! every presented certificate is v3); check revocation (no CRL settings exist); enforce
//! nameConstraints (a legacy chain through a CA that has them is refused, not half-checked).
//!
//! Invariants: fail closed: anything not understood is a rejection with a reason; the number of
//! chains tried is bounded.

use std::net::IpAddr;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls13_signature_with_raw_key};
use rustls::pki_types::{SubjectPublicKeyInfoDer, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, Error, PeerMisbehaved};

use super::x509::{self, AltName, Cert, key_usage};

/// Longest chain tried: leaf, up to six intermediates, anchor.
const MAX_DEPTH: usize = 8;
/// Signature checks allowed for one verification (bounds path building over hostile bundles).
const MAX_SIGNATURE_CHECKS: usize = 64;

/// What the leaf is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A PostgreSQL server's certificate, checked by the pooler.
    ServerAuth,
    /// A client's certificate, checked by the pooler.
    ClientAuth,
}

impl Purpose {
    fn eku(self) -> &'static [u8] {
        match self {
            Purpose::ServerAuth => x509::EKU_SERVER_AUTH,
            Purpose::ClientAuth => x509::EKU_CLIENT_AUTH,
        }
    }
}

fn invalid(reason: &str) -> Error {
    Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(
        std::sync::Arc::new(LegacyError(reason.to_owned())),
    )))
}

/// A reason the legacy path refused a certificate.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct LegacyError(pub String);

fn parse(der: &[u8]) -> Result<Cert<'_>, Error> {
    Cert::parse(der).map_err(|e| invalid(&format!("unreadable certificate: {e}")))
}

/// Whether `der` is a certificate WebPKI refuses for its version (v1 or v2).
pub fn is_legacy(der: &[u8]) -> bool {
    Cert::parse(der).is_ok_and(|c| c.version < 3)
}

/// Verifies `signed`'s signature with `issuer`'s key, using one of `algs`.
pub fn check_signature(
    signed: &Cert<'_>,
    issuer: &Cert<'_>,
    algs: &WebPkiSupportedAlgorithms,
) -> Result<(), Error> {
    if signed.inner_sig_alg != signed.sig_alg {
        return Err(invalid(
            "signature algorithm differs inside and outside the certificate",
        ));
    }
    let alg = algs
        .all
        .iter()
        .find(|a| {
            a.signature_alg_id().as_ref() == signed.sig_alg
                && a.public_key_alg_id().as_ref() == issuer.spki_alg
        })
        .ok_or_else(|| {
            invalid(&format!(
                "certificate signed with an algorithm rustls does not support ({})",
                x509::dotted(first_oid(signed.sig_alg))
            ))
        })?;
    alg.verify_signature(issuer.public_key, signed.tbs, signed.signature)
        .map_err(|_| Error::InvalidCertificate(CertificateError::BadSignature))
}

/// The OID content of an AlgorithmIdentifier's content.
fn first_oid(alg: &[u8]) -> &[u8] {
    match alg {
        [0x06, len, rest @ ..] if usize::from(*len) <= rest.len() => &rest[..usize::from(*len)],
        _ => &[],
    }
}

/// The dotted OID of a certificate's key algorithm, for log lines.
pub fn key_algorithm(cert: &Cert<'_>) -> String {
    x509::dotted(first_oid(cert.spki_alg))
}

/// Whether a signature algorithm of `algs` can use this key (so the certificate can sign).
pub fn key_usable(cert: &Cert<'_>, algs: &WebPkiSupportedAlgorithms) -> bool {
    algs.all
        .iter()
        .any(|a| a.public_key_alg_id().as_ref() == cert.spki_alg)
}

fn check_time(cert: &Cert<'_>, now: UnixTime) -> Result<(), Error> {
    let now = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    if now < cert.not_before {
        return Err(Error::InvalidCertificate(CertificateError::NotValidYet));
    }
    if now > cert.not_after {
        return Err(Error::InvalidCertificate(CertificateError::Expired));
    }
    Ok(())
}

fn check_extensions(cert: &Cert<'_>, purpose: Purpose) -> Result<(), Error> {
    if let Some(oid) = cert.unknown_critical() {
        return Err(invalid(&format!("unsupported critical extension {oid}")));
    }
    let eku = cert
        .extended_key_usage()
        .map_err(|e| invalid(&e.to_string()))?;
    if let Some(eku) = eku {
        if !eku
            .iter()
            .any(|o| *o == purpose.eku() || *o == x509::EKU_ANY)
        {
            return Err(Error::InvalidCertificate(CertificateError::InvalidPurpose));
        }
    }
    Ok(())
}

/// OpenSSL's test for a certificate that may issue others: basicConstraints says so; or, for a
/// trust anchor without basicConstraints, a self-signed v1 root or a key usage that allows
/// certificate signing. An intermediate must say `CA:TRUE` (OpenSSL applies its strict rule to
/// intermediates).
fn check_issuer(cert: &Cert<'_>, anchor: bool) -> Result<(), Error> {
    let ku = cert.key_usage().map_err(|e| invalid(&e.to_string()))?;
    if ku.is_some_and(|ku| ku & key_usage::KEY_CERT_SIGN == 0) {
        return Err(invalid(
            "issuer's key usage does not allow certificate signing",
        ));
    }
    if cert.has_name_constraints() {
        return Err(invalid(
            "issuer has nameConstraints, which pgsluice cannot enforce for a v1 certificate chain",
        ));
    }
    match cert
        .basic_constraints()
        .map_err(|e| invalid(&e.to_string()))?
    {
        Some(bc) if bc.ca => Ok(()),
        Some(_) => Err(Error::InvalidCertificate(CertificateError::Other(
            rustls::OtherError(std::sync::Arc::new(LegacyError(
                "issuer is not a CA (basicConstraints CA:FALSE)".to_owned(),
            ))),
        ))),
        None if anchor && cert.version == 1 && cert.self_issued() => Ok(()),
        None if anchor && ku.is_some() => Ok(()),
        None => Err(invalid("issuer is not a CA (no basicConstraints)")),
    }
}

fn check_leaf(cert: &Cert<'_>, purpose: Purpose) -> Result<(), Error> {
    check_extensions(cert, purpose)?;
    let ku = cert.key_usage().map_err(|e| invalid(&e.to_string()))?;
    let allowed = match purpose {
        Purpose::ServerAuth => {
            key_usage::DIGITAL_SIGNATURE | key_usage::KEY_ENCIPHERMENT | key_usage::KEY_AGREEMENT
        }
        Purpose::ClientAuth => key_usage::DIGITAL_SIGNATURE | key_usage::KEY_AGREEMENT,
    };
    if ku.is_some_and(|ku| ku & allowed == 0) {
        return Err(Error::InvalidCertificate(CertificateError::InvalidPurpose));
    }
    Ok(())
}

struct Search<'a, 'b> {
    anchors: &'b [Cert<'a>],
    intermediates: &'b [Cert<'a>],
    algs: &'b WebPkiSupportedAlgorithms,
    now: UnixTime,
    purpose: Purpose,
    budget: usize,
    /// The most telling error seen so far (an issuer that matched by name but failed a check
    /// beats "unknown issuer").
    best: Option<Error>,
}

impl<'a> Search<'a, '_> {
    fn note(&mut self, e: Error) {
        self.best.get_or_insert(e);
    }

    /// Whether `issuer` may sign the certificate at `depth` (leaf = 0) with `below`
    /// non-self-issued intermediates between them.
    fn issuer_ok(&mut self, issuer: &Cert<'_>, below: u32, anchor: bool) -> Result<(), Error> {
        check_issuer(issuer, anchor)?;
        check_time(issuer, self.now)?;
        check_extensions(issuer, self.purpose)?;
        if let Some(limit) = issuer
            .basic_constraints()
            .ok()
            .flatten()
            .and_then(|b| b.path_len)
        {
            if below > limit {
                return Err(invalid("path length constraint exceeded"));
            }
        }
        Ok(())
    }

    fn signed_by(&mut self, cert: &Cert<'_>, issuer: &Cert<'_>) -> Result<(), Error> {
        if self.budget == 0 {
            return Err(invalid("too many candidate issuers"));
        }
        self.budget -= 1;
        check_signature(cert, issuer, self.algs)
    }

    /// Finds a path from `cert` (at `depth`, with `below` non-self-issued intermediates under
    /// it) to an anchor; `path` holds the intermediates used, to refuse loops.
    fn extend(&mut self, cert: &Cert<'a>, depth: usize, below: u32, path: &mut Vec<usize>) -> bool {
        for anchor in self.anchors {
            if anchor.subject != cert.issuer {
                continue;
            }
            // A certificate that is itself in the CA file is trusted as it is (OpenSSL
            // accepts a self-signed server certificate listed as a root).
            let is_itself = anchor.tbs == cert.tbs && anchor.signature == cert.signature;
            let checked = if is_itself {
                Ok(())
            } else {
                self.issuer_ok(anchor, below, true)
                    .and_then(|()| self.signed_by(cert, anchor))
            };
            match checked {
                Ok(()) => return true,
                Err(e) => self.note(e),
            }
        }
        if depth + 1 >= MAX_DEPTH {
            return false;
        }
        for (i, inter) in self.intermediates.iter().enumerate() {
            if inter.subject != cert.issuer || path.contains(&i) {
                continue;
            }
            let next_below = if inter.self_issued() {
                below
            } else {
                below + 1
            };
            let checked = self
                .issuer_ok(inter, below, false)
                .and_then(|()| self.signed_by(cert, inter));
            if let Err(e) = checked {
                self.note(e);
                continue;
            }
            path.push(i);
            if self.extend(inter, depth + 1, next_below, path) {
                return true;
            }
            path.pop();
        }
        false
    }
}

/// Verifies `end_entity` (with the peer's `intermediates`) up to one of `anchors` (the CA file's
/// certificates, DER), as OpenSSL's default verification would for `purpose`.
pub fn verify_chain(
    end_entity: &[u8],
    intermediates: &[&[u8]],
    anchors: &[&[u8]],
    algs: &WebPkiSupportedAlgorithms,
    now: UnixTime,
    purpose: Purpose,
) -> Result<(), Error> {
    let leaf = parse(end_entity)?;
    check_time(&leaf, now)?;
    check_leaf(&leaf, purpose)?;
    let intermediates: Vec<Cert<'_>> = intermediates
        .iter()
        .filter_map(|d| Cert::parse(d).ok())
        .collect();
    let anchors: Vec<Cert<'_>> = anchors.iter().filter_map(|d| Cert::parse(d).ok()).collect();
    let mut search = Search {
        anchors: &anchors,
        intermediates: &intermediates,
        algs,
        now,
        purpose,
        budget: MAX_SIGNATURE_CHECKS,
        best: None,
    };
    if search.extend(&leaf, 0, 0, &mut Vec::new()) {
        return Ok(());
    }
    Err(search
        .best
        .unwrap_or(Error::InvalidCertificate(CertificateError::UnknownIssuer)))
}

/// The TLS 1.3 handshake signature, checked with the certificate's public key.
pub fn verify_tls13(
    message: &[u8],
    cert_der: &[u8],
    dss: &DigitallySignedStruct,
    algs: &WebPkiSupportedAlgorithms,
) -> Result<HandshakeSignatureValid, Error> {
    let cert = parse(cert_der)?;
    verify_tls13_signature_with_raw_key(
        message,
        &SubjectPublicKeyInfoDer::from(cert.spki),
        dss,
        algs,
    )
}

/// The TLS 1.2 handshake signature, checked with the certificate's public key: the scheme maps
/// to one or more algorithms; the one for this key type decides.
pub fn verify_tls12(
    message: &[u8],
    cert_der: &[u8],
    dss: &DigitallySignedStruct,
    algs: &WebPkiSupportedAlgorithms,
) -> Result<HandshakeSignatureValid, Error> {
    let cert = parse(cert_der)?;
    let candidates = algs
        .mapping
        .iter()
        .find(|(scheme, _)| *scheme == dss.scheme)
        .map(|(_, a)| *a)
        .ok_or(PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme)?;
    let alg = candidates
        .iter()
        .find(|a| a.public_key_alg_id().as_ref() == cert.spki_alg)
        .ok_or(Error::InvalidCertificate(CertificateError::BadSignature))?;
    alg.verify_signature(cert.public_key, message, dss.signature())
        .map(|()| HandshakeSignatureValid::assertion())
        .map_err(|_| Error::InvalidCertificate(CertificateError::BadSignature))
}

/// PgBouncer's certificate name rule for `verify-full` (libtls's `tls_check_name`): the
/// subjectAltName entries of the host's kind (DNS or IP) are compared; when the certificate has
/// no DNS or IP subjectAltName at all, its common name is compared instead.
pub fn check_host_name(cert_der: &[u8], host: &str) -> Result<(), Error> {
    let cert = parse(cert_der)?;
    let ip: Option<IpAddr> = host.parse().ok();
    let alt = cert.alt_names().map_err(|e| invalid(&e.to_string()))?;
    let mut alt_exists = false;
    for name in alt.iter().flatten() {
        match (name, ip) {
            (AltName::Dns(dns), None) => {
                alt_exists = true;
                if std::str::from_utf8(dns).is_ok_and(|d| name_matches(d, host)) {
                    return Ok(());
                }
            }
            (AltName::Ip(bytes), Some(ip)) => {
                alt_exists = true;
                let matches = match ip {
                    IpAddr::V4(v4) => *bytes == v4.octets(),
                    IpAddr::V6(v6) => *bytes == v6.octets(),
                };
                if matches {
                    return Ok(());
                }
            }
            (AltName::Dns(_) | AltName::Ip(_), _) => alt_exists = true,
            (AltName::Other, _) => {}
        }
    }
    if !alt_exists
        && cert
            .common_name()
            .is_some_and(|cn| !cn.contains('\0') && name_matches(&cn, host))
    {
        return Ok(());
    }
    Err(Error::InvalidCertificate(CertificateError::NotValidForName))
}

/// Case-insensitive equality, or a leading `*.` wildcard standing for exactly one label, never
/// for a top-level domain alone (`*.tld`).
fn name_matches(pattern: &str, host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    let pattern = pattern.strip_suffix('.').unwrap_or(pattern);
    if pattern.eq_ignore_ascii_case(host) {
        return true;
    }
    let Some(domain) = pattern.strip_prefix("*.") else {
        return false;
    };
    if domain.is_empty()
        || domain.starts_with('.')
        || !domain.contains('.')
        || domain.contains("..")
    {
        return false;
    }
    let Some((label, rest)) = host.split_once('.') else {
        return false;
    };
    !label.is_empty() && !rest.is_empty() && rest.eq_ignore_ascii_case(domain)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn algs() -> WebPkiSupportedAlgorithms {
        rustls::crypto::ring::default_provider().signature_verification_algorithms
    }

    fn now() -> UnixTime {
        UnixTime::now()
    }

    struct Issuer {
        cert: rcgen::Certificate,
        key: rcgen::KeyPair,
    }

    fn ca(is_ca: bool) -> Issuer {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        if is_ca {
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        }
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "unit CA");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Issuer { cert, key }
    }

    fn leaf(
        issuer: &Issuer,
        cn: &str,
        sans: &[&str],
        eku: &[rcgen::ExtendedKeyUsagePurpose],
    ) -> Vec<u8> {
        let mut params =
            rcgen::CertificateParams::new(sans.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params.extended_key_usages = eku.to_vec();
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2090, 1, 1);
        let key = rcgen::KeyPair::generate().unwrap();
        params
            .signed_by(&key, &issuer.cert, &issuer.key)
            .unwrap()
            .der()
            .to_vec()
    }

    fn verify(leaf: &[u8], anchor: &Issuer, at: UnixTime, purpose: Purpose) -> Result<(), Error> {
        verify_chain(
            leaf,
            &[],
            &[anchor.cert.der().as_ref()],
            &algs(),
            at,
            purpose,
        )
    }

    #[test]
    fn chain_to_the_ca_passes_and_anything_else_fails() {
        let good = ca(true);
        let other = ca(true);
        let cert = leaf(&good, "db", &[], &[]);
        verify(&cert, &good, now(), Purpose::ServerAuth).unwrap();
        verify(&cert, &good, now(), Purpose::ClientAuth).unwrap();
        // Same subject name, different key: the signature decides.
        assert!(matches!(
            verify(&cert, &other, now(), Purpose::ServerAuth),
            Err(Error::InvalidCertificate(CertificateError::BadSignature))
        ));
        // A tampered certificate body.
        let mut tampered = cert.clone();
        let at = tampered.len() / 2;
        tampered[at] ^= 0x01;
        assert!(verify(&tampered, &good, now(), Purpose::ServerAuth).is_err());
        // Outside its validity the leaf is refused (2100, 2010).
        let at = |secs| UnixTime::since_unix_epoch(std::time::Duration::from_secs(secs));
        assert!(matches!(
            verify(&cert, &good, at(4_102_444_800), Purpose::ServerAuth),
            Err(Error::InvalidCertificate(CertificateError::Expired))
        ));
        assert!(matches!(
            verify(&cert, &good, at(1_262_304_000), Purpose::ServerAuth),
            Err(Error::InvalidCertificate(CertificateError::NotValidYet))
        ));
        // No anchor at all.
        assert!(matches!(
            verify_chain(&cert, &[], &[], &algs(), now(), Purpose::ServerAuth),
            Err(Error::InvalidCertificate(CertificateError::UnknownIssuer))
        ));
    }

    #[test]
    fn issuers_must_be_cas_and_usage_must_fit() {
        let not_ca = ca(false);
        let cert = leaf(&not_ca, "db", &[], &[]);
        let err = verify(&cert, &not_ca, now(), Purpose::ServerAuth).unwrap_err();
        assert!(err.to_string().contains("not a CA"), "{err}");
        let good = ca(true);
        let client_only = leaf(
            &good,
            "alice",
            &[],
            &[rcgen::ExtendedKeyUsagePurpose::ClientAuth],
        );
        verify(&client_only, &good, now(), Purpose::ClientAuth).unwrap();
        assert!(matches!(
            verify(&client_only, &good, now(), Purpose::ServerAuth),
            Err(Error::InvalidCertificate(CertificateError::InvalidPurpose))
        ));
    }

    fn issued_ca(parent: &Issuer, cn: &str, is_ca: rcgen::IsCa) -> Issuer {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = is_ca;
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &parent.cert, &parent.key).unwrap();
        Issuer { cert, key }
    }

    #[test]
    fn intermediates_must_say_ca_and_respect_path_length() {
        let root = ca(true);
        let inter = issued_ca(
            &root,
            "unit intermediate",
            rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained),
        );
        let cert = leaf(&inter, "db", &[], &[]);
        let chain = |inter: &Issuer, root: &Issuer, cert: &[u8]| {
            verify_chain(
                cert,
                &[inter.cert.der().as_ref()],
                &[root.cert.der().as_ref()],
                &algs(),
                now(),
                Purpose::ServerAuth,
            )
        };
        chain(&inter, &root, &cert).unwrap();
        // Without the intermediate the leaf's issuer is unknown.
        assert!(verify(&cert, &root, now(), Purpose::ServerAuth).is_err());
        // An intermediate without basicConstraints CA:TRUE may not issue.
        let plain = issued_ca(&root, "unit not a CA", rcgen::IsCa::NoCa);
        let under_plain = leaf(&plain, "db", &[], &[]);
        let err = chain(&plain, &root, &under_plain).unwrap_err();
        assert!(err.to_string().contains("not a CA"), "{err}");
        // A root limited to pathlen 0 may not have an intermediate below it.
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "unit short CA");
        let key = rcgen::KeyPair::generate().unwrap();
        let short = Issuer {
            cert: params.self_signed(&key).unwrap(),
            key,
        };
        let inter = issued_ca(
            &short,
            "unit intermediate 2",
            rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained),
        );
        let cert = leaf(&inter, "db", &[], &[]);
        let err = chain(&inter, &short, &cert).unwrap_err();
        assert!(err.to_string().contains("path length"), "{err}");
    }

    #[test]
    fn host_name_uses_san_first_and_cn_only_without_san() {
        let issuer = ca(true);
        let cn_only = leaf(&issuer, "db.example.com", &[], &[]);
        check_host_name(&cn_only, "db.example.com").unwrap();
        check_host_name(&cn_only, "DB.Example.com").unwrap();
        assert!(check_host_name(&cn_only, "other.example.com").is_err());
        assert!(check_host_name(&cn_only, "127.0.0.1").is_err());
        // With a DNS subjectAltName the CN no longer counts.
        let with_san = leaf(&issuer, "db.example.com", &["alias.example.com"], &[]);
        check_host_name(&with_san, "alias.example.com").unwrap();
        assert!(check_host_name(&with_san, "db.example.com").is_err());
        // IP hosts match iPAddress entries, and a DNS entry rules the CN out for them too.
        let with_ip = leaf(&issuer, "127.0.0.1", &["10.1.2.3"], &[]);
        check_host_name(&with_ip, "10.1.2.3").unwrap();
        assert!(check_host_name(&with_ip, "127.0.0.1").is_err());
        let ip_cn = leaf(&issuer, "127.0.0.1", &[], &[]);
        check_host_name(&ip_cn, "127.0.0.1").unwrap();
        let wildcard = leaf(&issuer, "x", &["*.example.com"], &[]);
        check_host_name(&wildcard, "db.example.com").unwrap();
        assert!(check_host_name(&wildcard, "a.db.example.com").is_err());
    }

    #[test]
    fn wildcards_cover_one_label() {
        assert!(name_matches("db.example.com", "DB.example.com"));
        assert!(name_matches("*.example.com", "db.example.com"));
        assert!(!name_matches("*.example.com", "a.db.example.com"));
        assert!(!name_matches("*.example.com", "example.com"));
        assert!(!name_matches("*.com", "example.com"));
        assert!(!name_matches("*", "example"));
        assert!(!name_matches("db*.example.com", "db1.example.com"));
        assert!(!name_matches("other.example.com", "db.example.com"));
    }
}
