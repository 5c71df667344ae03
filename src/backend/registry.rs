//! Which backends exist in this build, and the order `backend = "auto"` tries them in.

use super::{Backend, TractBackend};
use crate::config::OrtOptions;

/// Names of the backends compiled into this binary, in `auto` order.
pub fn compiled_names() -> Vec<&'static str> {
    candidates(&OrtOptions::default())
        .iter()
        .map(|b| b.name())
        .collect()
}

/// Backends in the order `auto` tries them: accelerators first (only those compiled in; each one's
/// `check()` says whether its device is present), then tract, then onnxruntime on the CPU for
/// models tract cannot load.
pub fn candidates(ort: &OrtOptions) -> Vec<Box<dyn Backend>> {
    #[cfg(feature = "ort")]
    {
        use super::ort::{OrtBackend, Provider, ACCELERATORS};
        let mut list: Vec<Box<dyn Backend>> = ACCELERATORS
            .iter()
            .map(|p| Box::new(OrtBackend::new(*p, ort.clone())) as Box<dyn Backend>)
            .collect();
        list.push(Box::new(TractBackend));
        list.push(Box::new(OrtBackend::new(Provider::Cpu, ort.clone())));
        list
    }
    #[cfg(not(feature = "ort"))]
    {
        let _ = ort;
        vec![Box::new(TractBackend)]
    }
}

/// The backend called `name`, if this build has it.
pub fn by_name(name: &str, ort: &OrtOptions) -> Option<Box<dyn Backend>> {
    candidates(ort).into_iter().find(|b| b.name() == name)
}
