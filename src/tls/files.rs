//! Reading PEM files named by the `*_tls_*_file` settings: certificate chains, private keys and
//! CA bundles.
//!
//! Does not: decide which files a mode needs (`mod.rs` does) or cache anything: every call reads
//! the disk, which is what makes RELOAD pick up renewed certificates.
//!
//! Invariants: errors name the setting and the file; key material never appears in an error.

use std::path::Path;

use rustls::RootCertStore;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::TlsError;
use super::legacy;
use super::x509::{self, Cert};

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

/// A CA bundle: the WebPKI root store, and the certificates as read (for the legacy path).
pub struct CaBundle {
    /// Trust anchors for rustls's WebPKI verifiers.
    pub store: RootCertStore,
    /// Every certificate of the file that could be read, DER.
    pub certs: Vec<CertificateDer<'static>>,
}

/// Reads a CA bundle, and says in the log which of its certificates cannot serve and why.
pub fn ca_bundle(
    setting: &'static str,
    path: &Path,
    algs: &WebPkiSupportedAlgorithms,
) -> Result<CaBundle, TlsError> {
    let all = certs(setting, path)?;
    let mut store = RootCertStore::empty();
    let mut usable = Vec::with_capacity(all.len());
    for der in all {
        let webpki_ok = store.add(der.clone()).is_ok();
        match Cert::parse(&der) {
            Ok(cert) => {
                let name = x509::describe(&cert);
                if !legacy::key_usable(&cert, algs) {
                    tracing::warn!(
                        setting,
                        path = %path.display(),
                        "CA certificate {name}: its public key type ({}) is not supported by \
                         rustls; no certificate it issued can be verified",
                        legacy::key_algorithm(&cert)
                    );
                }
                if cert.version < 3 {
                    tracing::info!(
                        setting,
                        path = %path.display(),
                        "CA certificate {name} is X.509 v{}; chains to it are verified as \
                         OpenSSL does",
                        cert.version
                    );
                }
                usable.push(der);
            }
            Err(e) if webpki_ok => {
                tracing::warn!(
                    setting,
                    path = %path.display(),
                    "a CA certificate is used by WebPKI only: {e}"
                );
                usable.push(der);
            }
            Err(e) => {
                tracing::warn!(
                    setting,
                    path = %path.display(),
                    "a CA certificate cannot be read and is ignored: {e}"
                );
            }
        }
    }
    if usable.is_empty() {
        return Err(bad(setting, path, "no usable CA certificate"));
    }
    Ok(CaBundle {
        store,
        certs: usable,
    })
}
