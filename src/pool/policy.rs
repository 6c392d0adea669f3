//! What RELOAD rebuilds from files besides the [`Config`] itself: the TLS contexts (certificate
//! files), the HBA rules (`auth_hba_file`) and their user-name maps (`auth_ident_file`). Built
//! whole, swapped whole.
//!
//! Does not: apply anything: the registry holds the current policy and hands it to new server
//! specs and to client logins; connections already up keep what they negotiated.
//!
//! Invariants: a policy is either fully loaded or not at all, so a failed reload keeps the
//! previous one (PgBouncer keeps its old TLS context when the new files are broken).

use std::path::Path;
use std::sync::Arc;

use crate::auth::hba::{Hba, HbaError};
use crate::auth::ident::IdentMaps;
use crate::config::{AuthType, Config};
use crate::tls::{TlsContext, TlsError};

/// The file-backed parts of the login path.
#[derive(Debug, Clone, Default)]
pub struct LoginPolicy {
    /// Both TLS legs.
    pub tls: Arc<TlsContext>,
    /// The rules of `auth_hba_file`, loaded when `auth_type = hba`.
    pub hba: Option<Arc<Hba>>,
    /// The maps of `auth_ident_file` that HBA `map=` options name (empty when none is set).
    pub ident: Arc<IdentMaps>,
}

/// Why a policy could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// TLS settings or files.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The HBA file has an error.
    #[error(transparent)]
    Hba(#[from] HbaError),
    /// The HBA file (or a file it includes) could not be read.
    #[error("could not load file \"{path}\": {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

fn read(path: &Path) -> Result<String, PolicyError> {
    std::fs::read_to_string(path).map_err(|source| PolicyError::Io {
        path: path.display().to_string(),
        source,
    })
}

/// Reads and parses `auth_hba_file`; `@file` lists are relative to its directory, as in
/// PostgreSQL. Every `map=` must name a map of `ident`.
fn load_hba(path: &Path, ident: &IdentMaps) -> Result<Hba, PolicyError> {
    let text = read(path)?;
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let mut include = |name: &str| {
        std::fs::read_to_string(dir.join(name)).map_err(|e| format!("could not read {name}: {e}"))
    };
    let file = path.display().to_string();
    let hba = Hba::parse(&text, &file, &mut include)?;
    hba.check_maps(ident, &file)?;
    Ok(hba)
}

/// Reads and parses `auth_ident_file`; lines PgBouncer cannot use are logged and skipped.
fn load_ident(path: &Path) -> Result<IdentMaps, PolicyError> {
    let text = read(path)?;
    let (maps, warnings) = IdentMaps::parse(&text, &path.display().to_string());
    for warning in warnings {
        tracing::warn!("auth_ident_file: {warning}");
    }
    Ok(maps)
}

impl LoginPolicy {
    /// Reads every file the config names for TLS and HBA.
    pub fn load(config: &Config) -> Result<LoginPolicy, PolicyError> {
        let g = &config.general;
        // As in PgBouncer, the ident file is only read when `auth_type = hba`.
        let ident = match (&g.auth_type, &g.auth_ident_file) {
            (AuthType::Hba, Some(path)) => load_ident(path)?,
            _ => IdentMaps::default(),
        };
        let hba = match (&g.auth_type, &g.auth_hba_file) {
            (AuthType::Hba, Some(path)) => Some(Arc::new(load_hba(path, &ident)?)),
            _ => None,
        };
        Ok(LoginPolicy {
            tls: Arc::new(TlsContext::from_config(config)?),
            hba,
            ident: Arc::new(ident),
        })
    }
}
