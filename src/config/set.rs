//! Changing one `[pgbouncer]` setting at run time (the console's `SET key = value`).
//!
//! Owns: the rule for which settings may change online (those RELOAD may change, SHOW CONFIG's
//! `changeable = yes`) and building the new [`Config`] with the value checked and applied exactly
//! as the file loader would.
//! Does not: apply the config to the running pooler (the app does, like a reload).
//! Invariants: the running `Config` is never mutated; on any error nothing changes. A later
//! RELOAD re-reads the file and so undoes online changes, as in PgBouncer.

use std::collections::BTreeMap;

use super::general;
use super::settings;
use super::types::Config;
use super::validate;

/// A copy of `current` with `key` set to `value`, or why it cannot be done.
pub fn set_online(current: &Config, key: &str, value: &str) -> Result<Config, String> {
    let setting =
        settings::find(key).ok_or_else(|| format!("unknown parameter: pgbouncer/{key}"))?;
    if !setting.reload {
        return Err(format!("parameter {key} cannot be changed at run time"));
    }
    let mut next = current.clone();
    general::apply(&mut next.general, key, value)
        .map_err(|e| format!("invalid value \"{value}\" for parameter {key}: {e}"))?;
    next.general.raw.insert(key.to_owned(), value.to_owned());
    validate::check(&next, &BTreeMap::new()).map_err(|e| e.to_string())?;
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reloadable_settings_change() {
        let c = Config::default();
        let next = set_online(&c, "default_pool_size", "7").unwrap();
        assert_eq!(next.general.default_pool_size, 7);
        assert_eq!(c.general.default_pool_size, 20);
        let shown = crate::config::show_config(&next);
        assert!(
            shown
                .iter()
                .any(|r| r.key == "default_pool_size" && r.value == "7")
        );
    }

    #[test]
    fn refusals() {
        let c = Config::default();
        assert!(set_online(&c, "no_such_thing", "1").is_err());
        assert!(set_online(&c, "listen_port", "7000").is_err());
        assert!(set_online(&c, "default_pool_size", "-1").is_err());
        assert!(set_online(&c, "pool_mode", "sideways").is_err());
    }
}
