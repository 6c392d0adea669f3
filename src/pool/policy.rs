//! What RELOAD rebuilds from files besides the [`Config`] itself: the TLS contexts (certificate
//! files) and the HBA rules (`auth_hba_file`). Built whole, swapped whole.
//!
//! Does not: apply anything: the registry holds the current policy and hands it to new server
//! specs and to client logins; connections already up keep what they negotiated.
//!
//! Invariants: a policy is either fully loaded or not at all, so a failed reload keeps the
//! previous one (PgBouncer keeps its old TLS context when the new files are broken).

use std::path::Path;
use std::sync::Arc;

use crate::auth::hba::{Hba, HbaError};
use crate::config::{AuthType, Config};
use crate::tls::{TlsContext, TlsError};

/// The file-backed parts of the login path.
#[derive(Debug, Clone, Default)]
pub struct LoginPolicy {
    /// Both TLS legs.
    pub tls: Arc<TlsContext>,
    /// The rules of `auth_hba_file`, loaded when `auth_type = hba`.
    pub hba: Option<Arc<Hba>>,
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

/// Reads and parses `auth_hba_file`; `@file` lists are relative to its directory, as in
/// PostgreSQL.
fn load_hba(path: &Path) -> Result<Hba, PolicyError> {
    let io = |path: &Path, source| PolicyError::Io {
        path: path.display().to_string(),
        source,
    };
    let text = std::fs::read_to_string(path).map_err(|e| io(path, e))?;
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let mut include = |name: &str| {
        std::fs::read_to_string(dir.join(name)).map_err(|e| format!("could not read {name}: {e}"))
    };
    Ok(Hba::parse(
        &text,
        &path.display().to_string(),
        &mut include,
    )?)
}

impl LoginPolicy {
    /// Reads every file the config names for TLS and HBA.
    pub fn load(config: &Config) -> Result<LoginPolicy, PolicyError> {
        let hba = match (&config.general.auth_type, &config.general.auth_hba_file) {
            (AuthType::Hba, Some(path)) => Some(Arc::new(load_hba(path)?)),
            _ => None,
        };
        Ok(LoginPolicy {
            tls: Arc::new(TlsContext::from_config(config)?),
            hba,
        })
    }
}
