//! One TOML value → one typed section, with every error reported at its full key path. Shared by
//! the top-level parser and the per-kind sensor parsers.

use super::ConfigError;
use serde::de::DeserializeOwned;

/// Deserializes one value, recording an error with its full key path on failure.
pub(super) fn section<T: DeserializeOwned>(
    value: &toml::Value,
    path: &str,
    errors: &mut Vec<ConfigError>,
) -> Option<T> {
    match serde_path_to_error::deserialize::<_, T>(value.clone()) {
        Ok(v) => Some(v),
        Err(err) => {
            let inner = err.path().to_string();
            let mut full = if inner == "." || inner.is_empty() {
                path.to_string()
            } else {
                format!("{path}.{inner}")
            };
            // toml appends "in `key`" lines; the key path already says where.
            let message = err.into_inner().to_string();
            let message = message.lines().next().unwrap_or_default().to_string();
            // Inside tagged enums serde reports unknown keys at the table; name the key itself.
            if let Some(key) = message
                .strip_prefix("unknown field `")
                .and_then(|rest| rest.split('`').next())
            {
                if !full.ends_with(&format!(".{key}")) {
                    full = format!("{full}.{key}");
                }
            }
            errors.push(ConfigError::new(full, message));
            None
        }
    }
}
