//! Reading PEM files named by the `*_tls_*_file` settings: certificate chains, private keys and
//! CA bundles.
//!
//! Does not: decide which files a mode needs (`mod.rs` does) or cache anything: every call reads
//! the disk, which is what makes RELOAD pick up renewed certificates.
//!
//! Invariants: errors name the setting and the file; key material never appears in an error.

use std::path::Path;

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::TlsError;

fn bad(setting: &'static str, path: &Path, reason: impl std::fmt::Display) -> TlsError {
    TlsError::File {
        setting,
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

/// Every certificate in a PEM file (a chain: leaf first).
pub fn certs(setting: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(setting, path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(setting, path, e))?;
    if certs.is_empty() {
        return Err(bad(setting, path, "no certificate found"));
    }
    Ok(certs)
}

/// The first private key (PKCS#8, PKCS#1 or SEC1) in a PEM file.
pub fn key(setting: &'static str, path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    // The pem error names the section kind, never the key bytes.
    PrivateKeyDer::from_pem_file(path).map_err(|e| bad(setting, path, e))
}

/// A root store from a CA bundle.
pub fn roots(setting: &'static str, path: &Path) -> Result<RootCertStore, TlsError> {
    let mut store = RootCertStore::empty();
    let (added, _ignored) = store.add_parsable_certificates(certs(setting, path)?);
    if added == 0 {
        return Err(bad(setting, path, "no usable CA certificate"));
    }
    Ok(store)
}
