//! `[onnxruntime]`: which onnxruntime library the `ort-*` backends load.

use super::ConfigError;
use serde::Deserialize;
use std::path::PathBuf;

/// The section is optional; without it the library is searched for (see the README's
/// "onnxruntime library" section).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnnxRuntimeConfig {
    /// The `libonnxruntime.so` to load, relative to the config file's folder if not absolute.
    /// `ORT_DYLIB_PATH` overrides it. When the file cannot be used (missing, another
    /// architecture, too old), the `ort-*` backends are off and `auto` goes on without them.
    pub library: Option<PathBuf>,
}

impl OnnxRuntimeConfig {
    pub(super) fn validate(&self, path: &str, errors: &mut Vec<ConfigError>) {
        if self
            .library
            .as_ref()
            .is_some_and(|l| l.as_os_str().is_empty())
        {
            errors.push(ConfigError::new(
                format!("{path}.library"),
                "must name a file (leave the key out to search for the library)",
            ));
        }
    }
}
