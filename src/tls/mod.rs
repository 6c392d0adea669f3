//! TLS on both legs: the rustls configs built from the `client_tls_*` and `server_tls_*`
//! settings, and the sslmode policy that goes with them.
//!
//! Owns: [`TlsContext`] (an acceptor for clients, a connector for servers, each with its mode),
//! built from a [`Config`] by [`TlsContext::from_config`]; the translation of PgBouncer's
//! protocol and cipher settings ([`policy`]); the certificate checks libpq's modes mean
//! (`verify`), with the checks for X.509 v1/v2 certificates WebPKI refuses and PgBouncer's
//! host-name rule (`legacy`, over the minimal certificate reader `x509`); the names in a client
//! certificate ([`peer`]); the connection summary SHOW CLIENTS prints ([`summary`]).
//!
//! Does not: touch sockets beyond handing out `tokio-rustls` acceptors/connectors, or keep a
//! context alive: the app swaps a whole `Arc<TlsContext>` on RELOAD, so connections already up
//! keep the session they negotiated and new ones get the new certificates.
//!
//! Invariants: one crypto provider (ring); key material never appears in errors or `Debug`;
//! a context is either fully built or not at all (a failed reload keeps the old one).

mod files;
mod legacy;
pub mod peer;
pub mod policy;
mod verify;
mod x509;

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{ClientConfig, CommonState, InconsistentKeys, ServerConfig, SupportedProtocolVersion};
use sha2::{Digest as _, Sha256};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::config::{AuthType, Config, settings};
pub use policy::SslMode;

/// Why a TLS context could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate or key file could not be used.
    #[error("invalid {setting}: {path}: {reason}")]
    File {
        /// The setting naming the file.
        setting: &'static str,
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// A setting has a value TLS cannot work with.
    #[error("{0}")]
    Setting(String),
    /// rustls refused the combination.
    #[error("TLS setup failed for {side}: {source}")]
    Rustls {
        /// `client_tls` or `server_tls`.
        side: &'static str,
        /// Why.
        #[source]
        source: rustls::Error,
    },
}

/// The value of a `[pgbouncer]` setting as written, else its default.
fn value<'a>(config: &'a Config, name: &str) -> &'a str {
    config
        .general
        .raw
        .get(name)
        .map(String::as_str)
        .or_else(|| settings::find(name).map(|s| s.default))
        .unwrap_or_default()
}

fn path<'a>(config: &'a Config, name: &str) -> Option<&'a Path> {
    Some(value(config, name).trim())
        .filter(|v| !v.is_empty())
        .map(Path::new)
}

fn mode(config: &Config, name: &str) -> Result<SslMode, TlsError> {
    SslMode::parse(value(config, name))
        .ok_or_else(|| TlsError::Setting(format!("invalid {name}: {}", value(config, name))))
}

/// The acceptor side: how the pooler answers a client's SSLRequest.
#[derive(Clone, Default)]
pub struct ClientTls {
    mode: SslMode,
    acceptor: Option<TlsAcceptor>,
}

impl ClientTls {
    /// `client_tls_sslmode`.
    pub fn mode(&self) -> SslMode {
        self.mode
    }

    /// The acceptor, unless TLS towards clients is disabled.
    pub fn acceptor(&self) -> Option<&TlsAcceptor> {
        self.acceptor.as_ref()
    }
}

/// The connector side: how the pooler reaches PostgreSQL servers.
#[derive(Clone, Default)]
pub struct ServerTls {
    mode: SslMode,
    connector: Option<TlsConnector>,
    /// Digest of the settings and file contents, so a reload can tell whether servers must be
    /// reconnected with the new settings.
    fingerprint: Arc<str>,
}

impl ServerTls {
    /// `server_tls_sslmode`.
    pub fn mode(&self) -> SslMode {
        self.mode
    }

    /// The connector, unless TLS towards servers is disabled.
    pub fn connector(&self) -> Option<&TlsConnector> {
        self.connector.as_ref()
    }
}

impl std::fmt::Debug for ServerTls {
    // Pools compare specs by their Debug text: the fingerprint makes a changed CA or key count.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("mode", &self.mode)
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

/// Both legs, built together from one config and swapped together on reload.
#[derive(Clone, Debug, Default)]
pub struct TlsContext {
    /// Towards clients.
    pub client: ClientTls,
    /// Towards servers.
    pub server: ServerTls,
}

impl TlsContext {
    /// Reads the certificate files and builds both legs. Called at start and on every RELOAD.
    pub fn from_config(config: &Config) -> Result<TlsContext, TlsError> {
        Ok(TlsContext {
            client: client_side(config)?,
            server: server_side(config)?,
        })
    }
}

/// The provider restricted to the suites the `*_ciphers` settings select.
fn provider(config: &Config, side: &'static str) -> Result<Arc<CryptoProvider>, TlsError> {
    let mut provider = rustls::crypto::ring::default_provider();
    let mut tls12: Vec<_> = provider
        .cipher_suites
        .iter()
        .copied()
        .filter(|s| s.tls13().is_none())
        .collect();
    let mut tls13: Vec<_> = provider
        .cipher_suites
        .iter()
        .copied()
        .filter(|s| s.tls13().is_some())
        .collect();
    for name in [format!("{side}_ciphers"), format!("{side}13_ciphers")] {
        // PgBouncer's (libtls's) words first, which log alerts match, then which setting.
        let failed = if name.ends_with("13_ciphers") {
            "failed to set the TLSv1.3 cipher suites"
        } else {
            "failed to set ciphers"
        };
        let choice = policy::parse_ciphers(value(config, &name))
            .map_err(|e| TlsError::Setting(format!("{failed}: invalid {name}: {e}")))?;
        if !choice.unknown.is_empty() {
            tracing::warn!(
                setting = %name,
                "ciphers not available in rustls, ignored: {}",
                choice.unknown.join(":")
            );
        }
        if let Some(suites) = choice.suites {
            let (v13, v12): (Vec<_>, Vec<_>) =
                suites.into_iter().partition(|s| s.tls13().is_some());
            if !v13.is_empty() {
                tls13 = v13;
            }
            if !v12.is_empty() {
                tls12 = v12;
            }
        }
    }
    provider.cipher_suites = tls13.into_iter().chain(tls12).collect();
    Ok(Arc::new(provider))
}

fn versions(
    config: &Config,
    side: &'static str,
) -> Result<Vec<&'static SupportedProtocolVersion>, TlsError> {
    let name = format!("{side}_protocols");
    let protocols = policy::parse_protocols(value(config, &name))
        .map_err(|e| TlsError::Setting(format!("invalid {name}: {e}")))?;
    if protocols.dropped_legacy {
        tracing::warn!(setting = %name, "TLS 1.0 and 1.1 are not available (rustls); using TLS 1.2+ only");
    }
    let mut out = Vec::new();
    if protocols.tls13 {
        out.push(&rustls::version::TLS13);
    }
    if protocols.tls12 {
        out.push(&rustls::version::TLS12);
    }
    Ok(out)
}

fn client_side(config: &Config) -> Result<ClientTls, TlsError> {
    let mode = mode(config, "client_tls_sslmode")?;
    let ca = path(config, "client_tls_ca_file");
    if config.general.auth_type == AuthType::Cert {
        if mode != SslMode::VerifyFull {
            return Err(TlsError::Setting(
                "auth_type=cert requires client_tls_sslmode=verify-full".to_owned(),
            ));
        }
        if ca.is_none() {
            return Err(TlsError::Setting(
                "auth_type=cert requires client_tls_ca_file".to_owned(),
            ));
        }
    }
    if mode == SslMode::Disable {
        return Ok(ClientTls::default());
    }
    let (Some(key), Some(cert)) = (
        path(config, "client_tls_key_file"),
        path(config, "client_tls_cert_file"),
    ) else {
        return Err(TlsError::Setting(
            "To allow TLS connections from clients, client_tls_key_file and client_tls_cert_file must be set."
                .to_owned(),
        ));
    };
    if mode >= SslMode::VerifyCa && ca.is_none() {
        return Err(TlsError::Setting(
            "client_tls_sslmode requires client_tls_ca_file".to_owned(),
        ));
    }
    let rustls_err = |source| TlsError::Rustls {
        side: "client_tls",
        source,
    };
    let provider = provider(config, "client_tls")?;
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&versions(config, "client_tls")?)
        .map_err(rustls_err)?;
    let builder = match ca {
        Some(ca) => {
            let bundle = files::ca_bundle(
                "client_tls_ca_file",
                ca,
                &provider.signature_verification_algorithms,
            )?;
            let verifier = WebPkiClientVerifier::builder_with_provider(
                Arc::new(bundle.store),
                Arc::clone(&provider),
            );
            // Below verify-ca a client certificate is checked when offered, never demanded.
            let verifier = if mode >= SslMode::VerifyCa {
                verifier
            } else {
                verifier.allow_unauthenticated()
            };
            let verifier = verifier
                .build()
                .map_err(|e| TlsError::Setting(format!("invalid client_tls_ca_file: {e}")))?;
            builder.with_client_cert_verifier(Arc::new(verify::ClientChain::new(
                verifier,
                bundle.certs,
                &provider,
            )))
        }
        None => builder.with_no_client_auth(),
    };
    let server_config =
        builder.with_cert_resolver(Arc::new(SingleCertAndKey::from(certified_key(
            ("client_tls_cert_file", cert),
            ("client_tls_key_file", key),
            &provider,
        )?)));
    Ok(ClientTls {
        mode,
        acceptor: Some(TlsAcceptor::from(Arc::new(server_config))),
    })
}

fn server_side(config: &Config) -> Result<ServerTls, TlsError> {
    let mode = mode(config, "server_tls_sslmode")?;
    if mode == SslMode::Disable {
        return Ok(ServerTls::default());
    }
    let ca = path(config, "server_tls_ca_file");
    if mode >= SslMode::VerifyCa && ca.is_none() {
        return Err(TlsError::Setting(format!(
            "server_tls_sslmode = {} requires server_tls_ca_file",
            mode.as_str()
        )));
    }
    let rustls_err = |source| TlsError::Rustls {
        side: "server_tls",
        source,
    };
    let provider = provider(config, "server_tls")?;
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&versions(config, "server_tls")?)
        .map_err(rustls_err)?;
    let verifier: Arc<dyn rustls::client::danger::ServerCertVerifier> = match (mode, ca) {
        (SslMode::VerifyCa | SslMode::VerifyFull | SslMode::Require, Some(ca)) => {
            let bundle = files::ca_bundle(
                "server_tls_ca_file",
                ca,
                &provider.signature_verification_algorithms,
            )?;
            let webpki = WebPkiServerVerifier::builder_with_provider(
                Arc::new(bundle.store),
                Arc::clone(&provider),
            )
            .build()
            .map_err(|e| TlsError::Setting(format!("invalid server_tls_ca_file: {e}")))?;
            // libpq: with a root certificate, `require` behaves like `verify-ca`; only
            // `verify-full` compares the host name.
            Arc::new(verify::ServerChain::new(
                webpki,
                bundle.certs,
                &provider,
                mode == SslMode::VerifyFull,
            ))
        }
        _ => Arc::new(verify::NoCertCheck::new(Arc::clone(&provider))),
    };
    let builder = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let client_config = match (
        path(config, "server_tls_key_file"),
        path(config, "server_tls_cert_file"),
    ) {
        (Some(key), Some(cert)) => {
            builder.with_client_cert_resolver(Arc::new(SingleCertAndKey::from(certified_key(
                ("server_tls_cert_file", cert),
                ("server_tls_key_file", key),
                &provider,
            )?)))
        }
        (None, None) => builder.with_no_client_auth(),
        _ => {
            return Err(TlsError::Setting(
                "server_tls_key_file and server_tls_cert_file must be set together".to_owned(),
            ));
        }
    };
    Ok(ServerTls {
        mode,
        connector: Some(TlsConnector::from(Arc::new(client_config))),
        fingerprint: fingerprint(config).into(),
    })
}

/// The pooler's own certificate chain and key, checked to belong together. WebPKI cannot read an
/// X.509 v1 certificate, so for one the public keys are compared here; rustls never parses the
/// pooler's own certificate otherwise, so a v1 certificate is served as it is (as OpenSSL does).
fn certified_key(
    (cert_setting, cert): (&'static str, &Path),
    (key_setting, key): (&'static str, &Path),
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let chain: Vec<CertificateDer<'static>> = files::certs(cert_setting, cert)?;
    let key_der: PrivateKeyDer<'static> = files::key(key_setting, key)?;
    let bad = |setting: &'static str, path: &Path, reason: String| TlsError::File {
        setting,
        path: path.display().to_string(),
        reason,
    };
    let signing = provider
        .key_provider
        .load_private_key(key_der)
        .map_err(|e| bad(key_setting, key, e.to_string()))?;
    let certified = CertifiedKey::new(chain, signing);
    let leaf = certified.cert.first().map(|c| x509::Cert::parse(c));
    let mismatch = || {
        bad(
            key_setting,
            key,
            format!(
                "the private key does not match the certificate in {}",
                cert.display()
            ),
        )
    };
    match leaf {
        Some(Ok(parsed)) if parsed.version < 3 => {
            tracing::info!(
                setting = cert_setting,
                path = %cert.display(),
                "{} is an X.509 v{} certificate; served as it is",
                x509::describe(&parsed),
                parsed.version
            );
            match certified.key.public_key() {
                Some(spki) if spki.as_ref() != parsed.spki => return Err(mismatch()),
                _ => {}
            }
        }
        _ => match certified.keys_match() {
            Ok(()) | Err(rustls::Error::InconsistentKeys(InconsistentKeys::Unknown)) => {}
            Err(rustls::Error::InconsistentKeys(InconsistentKeys::KeyMismatch)) => {
                return Err(mismatch());
            }
            Err(e) => return Err(bad(cert_setting, cert, e.to_string())),
        },
    }
    Ok(certified)
}

/// A digest of every `server_tls_*` setting and the bytes of the files they name.
fn fingerprint(config: &Config) -> String {
    let mut hasher = Sha256::new();
    for s in settings::all().filter(|s| s.name.starts_with("server_tls")) {
        let v = value(config, s.name);
        hasher.update(s.name.as_bytes());
        hasher.update([0]);
        hasher.update(v.as_bytes());
        hasher.update([0]);
        if s.name.ends_with("_file") && !v.trim().is_empty() {
            hasher.update(std::fs::read(v.trim()).unwrap_or_default());
        }
    }
    let mut out = String::with_capacity(16);
    for b in hasher.finalize().iter().take(8) {
        // Writing into a String cannot fail.
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// PgBouncer's summary of a TLS connection, as SHOW CLIENTS/SERVERS print it:
/// `TLSv1.3/TLS_AES_256_GCM_SHA384/ECDH=X25519`.
pub fn summary(state: &CommonState) -> String {
    let version = match state.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
        _ => "-",
    };
    let cipher = state
        .negotiated_cipher_suite()
        .map_or_else(|| "-".to_owned(), policy::suite_name);
    let group = state
        .negotiated_key_exchange_group()
        .map(|g| match g.name() {
            rustls::NamedGroup::X25519 => "X25519".to_owned(),
            rustls::NamedGroup::secp256r1 => "prime256v1".to_owned(),
            rustls::NamedGroup::secp384r1 => "secp384r1".to_owned(),
            other => format!("{other:?}"),
        });
    match group {
        Some(g) => format!("{version}/{cipher}/ECDH={g}"),
        None => format!("{version}/{cipher}"),
    }
}

#[cfg(test)]
mod tests;
