//! Errors from loading and validating a config file.

use std::fmt;
use std::path::{Path, PathBuf};

/// One problem in a config, located by its key path (`sensors[1].model`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Key path from the root of the document, e.g. `models[0].preprocess.mean`.
    pub path: String,
    /// What is wrong, in words an operator can act on.
    pub message: String,
}

impl ConfigError {
    /// A problem at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Why a config file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read at all.
    #[error("{}: cannot read: {source}", file.display())]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The text is not valid TOML.
    #[error("{}:{line}:{column}: TOML syntax error: {message}", file.display())]
    Syntax {
        file: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    /// The TOML is valid but the config is not; every problem is listed.
    #[error("{}: {} problem(s) in config", file.display(), errors.len())]
    Invalid {
        file: PathBuf,
        errors: Vec<ConfigError>,
    },
}

impl LoadError {
    /// Every problem as one line each, prefixed by the file name.
    pub fn lines(&self) -> Vec<String> {
        match self {
            LoadError::Invalid { file, errors } => errors
                .iter()
                .map(|e| format!("{}: {e}", file.display()))
                .collect(),
            other => vec![other.to_string()],
        }
    }

    /// Sets the file name on errors made from text alone.
    pub(crate) fn in_file(self, path: &Path) -> Self {
        match self {
            LoadError::Syntax {
                line,
                column,
                message,
                ..
            } => LoadError::Syntax {
                file: path.to_path_buf(),
                line,
                column,
                message,
            },
            LoadError::Invalid { errors, .. } => LoadError::Invalid {
                file: path.to_path_buf(),
                errors,
            },
            other => other,
        }
    }
}
