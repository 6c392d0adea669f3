//! Certificate verifiers, one per meaning PgBouncer gives its modes.
//!
//! Towards servers: no check at all ([`NoCertCheck`]: `allow`, `prefer`, `require` without a
//! CA), chain only ([`ServerChain`] without a name: `verify-ca`, and `require` with a CA file),
//! chain and host name ([`ServerChain`] with the name: `verify-full`). Towards clients:
//! [`ClientChain`] (a certificate checked when offered, demanded from `verify-ca` up).
//!
//! Chains whose certificates are all X.509 v3 are verified by rustls's WebPKI verifiers; a
//! chain with a v1/v2 certificate (which WebPKI refuses, OpenSSL accepts) goes through
//! [`super::legacy`], which performs the same checks with the same signature algorithms. The host
//! name is always checked with PgBouncer's rule ([`legacy::check_host_name`]): subjectAltName,
//! else the common name when there is no DNS/IP subjectAltName.
//!
//! Does not: weaken handshake signatures: even when the certificate is not checked, the peer's
//! signature over the handshake is, with the provider's algorithms.

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{
    CryptoProvider, WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature,
};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};

use super::legacy::{self, Purpose};

fn tls12(
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
    algs: &WebPkiSupportedAlgorithms,
) -> Result<HandshakeSignatureValid, Error> {
    if legacy::is_legacy(cert) {
        legacy::verify_tls12(message, cert, dss, algs)
    } else {
        verify_tls12_signature(message, cert, dss, algs)
    }
}

fn tls13(
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
    algs: &WebPkiSupportedAlgorithms,
) -> Result<HandshakeSignatureValid, Error> {
    if legacy::is_legacy(cert) {
        legacy::verify_tls13(message, cert, dss, algs)
    } else {
        verify_tls13_signature(message, cert, dss, algs)
    }
}

fn any_legacy(end_entity: &CertificateDer<'_>, intermediates: &[CertificateDer<'_>]) -> bool {
    legacy::is_legacy(end_entity) || intermediates.iter().any(|c| legacy::is_legacy(c))
}

/// The name `verify-full` compares, as the host was written (an IP address in its usual form).
fn host_text(name: &ServerName<'_>) -> Option<String> {
    match name {
        ServerName::DnsName(d) => Some(d.as_ref().to_owned()),
        ServerName::IpAddress(ip) => Some(std::net::IpAddr::from(*ip).to_string()),
        _ => None,
    }
}

/// Accepts any certificate (libpq's `require` without a root certificate).
#[derive(Debug)]
pub struct NoCertCheck {
    provider: Arc<CryptoProvider>,
}

impl NoCertCheck {
    /// A verifier that checks handshake signatures with `provider` only.
    pub fn new(provider: Arc<CryptoProvider>) -> Self {
        Self { provider }
    }
}

impl ServerCertVerifier for NoCertCheck {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        tls12(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        tls13(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Checks a server's chain against the CA file, and under `verify-full` its name.
#[derive(Debug)]
pub struct ServerChain {
    webpki: Arc<WebPkiServerVerifier>,
    anchors: Vec<CertificateDer<'static>>,
    algs: WebPkiSupportedAlgorithms,
    check_name: bool,
}

impl ServerChain {
    /// `webpki` is built for the same `anchors`; `check_name` for `verify-full`.
    pub fn new(
        webpki: Arc<WebPkiServerVerifier>,
        anchors: Vec<CertificateDer<'static>>,
        provider: &CryptoProvider,
        check_name: bool,
    ) -> Self {
        Self {
            webpki,
            anchors,
            algs: provider.signature_verification_algorithms,
            check_name,
        }
    }
}

impl ServerCertVerifier for ServerChain {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        if any_legacy(end_entity, intermediates) {
            let inter: Vec<&[u8]> = intermediates.iter().map(AsRef::as_ref).collect();
            let anchors: Vec<&[u8]> = self.anchors.iter().map(AsRef::as_ref).collect();
            legacy::verify_chain(
                end_entity,
                &inter,
                &anchors,
                &self.algs,
                now,
                Purpose::ServerAuth,
            )?;
        } else {
            // WebPKI checks the name last, after the chain, validity and usage; a name mismatch
            // therefore means everything else passed. The name is checked below, PgBouncer's way.
            match self.webpki.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            ) {
                Ok(_)
                | Err(Error::InvalidCertificate(
                    CertificateError::NotValidForName
                    | CertificateError::NotValidForNameContext { .. },
                )) => {}
                Err(e) => return Err(e),
            }
        }
        if self.check_name {
            let host = host_text(server_name)
                .ok_or(Error::InvalidCertificate(CertificateError::NotValidForName))?;
            legacy::check_host_name(end_entity, &host)?;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        tls12(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        tls13(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// Checks a client's certificate against `client_tls_ca_file`.
#[derive(Debug)]
pub struct ClientChain {
    webpki: Arc<dyn ClientCertVerifier>,
    anchors: Vec<CertificateDer<'static>>,
    algs: WebPkiSupportedAlgorithms,
}

impl ClientChain {
    /// `webpki` is built for the same `anchors` (and decides whether a certificate is demanded).
    pub fn new(
        webpki: Arc<dyn ClientCertVerifier>,
        anchors: Vec<CertificateDer<'static>>,
        provider: &CryptoProvider,
    ) -> Self {
        Self {
            webpki,
            anchors,
            algs: provider.signature_verification_algorithms,
        }
    }
}

impl ClientCertVerifier for ClientChain {
    fn offer_client_auth(&self) -> bool {
        self.webpki.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.webpki.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.webpki.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        if !any_legacy(end_entity, intermediates) {
            return self
                .webpki
                .verify_client_cert(end_entity, intermediates, now);
        }
        let inter: Vec<&[u8]> = intermediates.iter().map(AsRef::as_ref).collect();
        let anchors: Vec<&[u8]> = self.anchors.iter().map(AsRef::as_ref).collect();
        legacy::verify_chain(
            end_entity,
            &inter,
            &anchors,
            &self.algs,
            now,
            Purpose::ClientAuth,
        )?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        tls12(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        tls13(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}
