//! Credentials a pool learns from its clients' logins, for servers the config holds no usable
//! password for: the secret `auth_query` returned, and the ClientKey of a SCRAM login against a
//! SCRAM secret (PgBouncer's "SCRAM pass-through").
//!
//! Does not: persist anything: keys live in memory only, per pool, and are replaced by each
//! successful login; they are never logged (`Debug` prints nothing of them).

use parking_lot::Mutex;

use crate::config::Secret;

/// What the last successful client login of a pool proved.
#[derive(Clone, PartialEq, Eq)]
pub struct Learned {
    /// The user's secret as the pooler checked it (from auth_file or auth_query).
    pub secret: Secret,
    /// The SCRAM ClientKey the client proved, when it logged in with SCRAM against a SCRAM
    /// secret.
    pub client_key: Option<[u8; 32]>,
}

/// A pool's slot for [`Learned`] credentials, shared by every server login of the pool.
#[derive(Default)]
pub struct LearnedCredentials(Mutex<Option<Learned>>);

impl LearnedCredentials {
    /// Records a login's credentials.
    pub fn set(&self, learned: Learned) {
        *self.0.lock() = Some(learned);
    }

    /// The credentials last recorded.
    pub fn get(&self) -> Option<Learned> {
        self.0.lock().clone()
    }
}

impl std::fmt::Debug for LearnedCredentials {
    // Constant text: secrets stay out of logs, and pool specs compared by their Debug text on
    // reload must not differ because a client logged in.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LearnedCredentials(..)")
    }
}
