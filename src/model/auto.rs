//! `backend = "auto"`: the first backend, in [`backend::candidates`] order, that is present and
//! loads the model. The daemon and `edgeinfer infer --backend auto` both choose this way.

use super::ModelError;
use crate::backend::{self, PrepareOptions, PreparedModel};
use crate::config::OrtOptions;
use std::path::Path;
use std::time::Instant;
use tracing::{debug, warn};

/// The backend `auto` chose, with the model prepared on it.
pub struct Chosen {
    /// Its name.
    pub backend: &'static str,
    /// The model, ready to run.
    pub prepared: Box<dyn PreparedModel>,
    /// Why each earlier candidate was passed over (`name: reason`); empty when the first one
    /// served.
    pub passed_over: Vec<String>,
}

/// Prepares model `id` (for logs and errors) from `path` on the first candidate that is
/// present and loads it. A configuration error (a bad option, not a backend's limit) stops the
/// search, since every backend would be given the same.
pub fn prepare_first(
    id: &str,
    path: &Path,
    ort: &OrtOptions,
    options: &PrepareOptions,
) -> Result<Chosen, ModelError> {
    let mut tried = Vec::new();
    // Backends not available, with the reason: consecutive ones with the same reason (every
    // onnxruntime provider when the library is missing) are reported together.
    let mut unavailable: Vec<(Vec<&'static str>, String)> = Vec::new();
    let report = |unavailable: &mut Vec<(Vec<&'static str>, String)>, tried: &mut Vec<String>| {
        tried.extend(
            unavailable
                .drain(..)
                .map(|(names, reason)| format!("{}: not available ({reason})", names.join(", "))),
        );
    };
    for backend in backend::candidates(ort) {
        if let Err(reason) = backend.check() {
            debug!(model = %id, backend = backend.name(), reason, "Backend not available");
            match unavailable.last_mut() {
                Some((names, last)) if *last == reason => names.push(backend.name()),
                _ => unavailable.push((vec![backend.name()], reason)),
            }
            continue;
        }
        report(&mut unavailable, &mut tried);
        let started = Instant::now();
        match backend.prepare(path, options) {
            Ok(prepared) => {
                debug!(model = %id, backend = backend.name(), ms = started.elapsed().as_millis() as u64, "Backend prepared the model");
                return Ok(Chosen {
                    backend: backend.name(),
                    prepared,
                    passed_over: tried,
                });
            }
            Err(e) if e.is_config_error() => {
                return Err(ModelError::Backend {
                    id: id.to_string(),
                    source: e,
                })
            }
            Err(e) => {
                warn!(model = %id, backend = backend.name(), reason = %e, "Backend cannot load the model; trying the next one");
                tried.push(format!("{}: {e}", backend.name()));
            }
        }
    }
    report(&mut unavailable, &mut tried);
    Err(ModelError::NoBackend {
        id: id.to_string(),
        tried: tried.join("; "),
    })
}
