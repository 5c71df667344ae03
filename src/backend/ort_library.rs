//! Which `libonnxruntime.so` the onnxruntime backends load, and why a candidate is refused.
//!
//! The search order (documented in the README and logged when the library is first needed):
//!
//! 1. `ORT_DYLIB_PATH`, if set: that file and nothing else;
//! 2. else `[onnxruntime] library` from the config, if set: that file and nothing else;
//! 3. else a system onnxruntime: `libonnxruntime.so` (or `.so.1`) in `/usr/local/lib`, the
//!    architecture's `/usr/lib/<triple>` and `/usr/lib`, then the library of an `onnxruntime`
//!    (or `onnxruntime-gpu`, as the Jetson wheels are called) Python package installed for the
//!    system's Python — where a JetPack board's build with CUDA and TensorRT lives;
//! 4. else the one the package bundles: `../lib/edgeinfer/` next to the executable (so that an
//!    unpacked package works wherever it lies), then `/usr/lib/edgeinfer/`.
//!
//! A file named explicitly (1, 2) that cannot be used ends the search: the operator asked for it,
//! so nothing else is loaded behind their back. A system library that cannot be used (too old, say)
//! is passed over for the next candidate. Each candidate is checked before it is loaded: an ELF
//! shared object of this process's architecture and word size, that loads, that exports
//! `OrtGetApiBase`, and whose version is at least the API version this build is written against.

use std::fmt;
use std::path::{Path, PathBuf};

/// The oldest onnxruntime minor version this build can use (`ort`'s API version).
pub const MIN_MINOR_VERSION: u32 = ort::MINOR_VERSION;

/// Where a candidate came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The `ORT_DYLIB_PATH` environment variable.
    Env,
    /// `[onnxruntime] library` in the config.
    Config,
    /// A system-wide or Python-packaged onnxruntime.
    System,
    /// The library installed with edgeinfer's package.
    Bundled,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Source::Env => "ORT_DYLIB_PATH",
            Source::Config => "[onnxruntime] library",
            Source::System => "system",
            Source::Bundled => "bundled",
        })
    }
}

/// Why a file cannot serve as the onnxruntime library.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LibraryError {
    #[error("{}: no such file", .0.display())]
    Missing(PathBuf),
    #[error("{}: cannot be read: {reason}", path.display())]
    Unreadable { path: PathBuf, reason: String },
    #[error("{}: not an ELF shared library", .0.display())]
    NotElf(PathBuf),
    #[error("{}: built for {found}, but this edgeinfer runs on {expected}", path.display())]
    WrongArchitecture {
        path: PathBuf,
        found: String,
        expected: String,
    },
    #[error("{}: cannot be loaded: {reason}", path.display())]
    Unloadable { path: PathBuf, reason: String },
    #[error("{}: has no OrtGetApiBase, so it is not onnxruntime", .0.display())]
    NotOnnxRuntime(PathBuf),
    #[error("{}: is onnxruntime {version}, but this edgeinfer needs 1.{MIN_MINOR_VERSION} or newer", path.display())]
    TooOld { path: PathBuf, version: String },
}

/// One file to try, and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub source: Source,
    pub path: PathBuf,
}

/// The candidates in search order, with a description of each place searched. `env` is
/// `ORT_DYLIB_PATH`, `config` the config key; only files that exist are listed for the system
/// and bundled places (which are searched only when neither is set).
pub fn candidates(env: Option<&Path>, config: Option<&Path>) -> Vec<Candidate> {
    if let Some(path) = env {
        return vec![Candidate {
            source: Source::Env,
            path: path.to_path_buf(),
        }];
    }
    if let Some(path) = config {
        return vec![Candidate {
            source: Source::Config,
            path: path.to_path_buf(),
        }];
    }
    let mut list: Vec<Candidate> = Vec::new();
    let mut push = |source, path: PathBuf| {
        let canonical = path.canonicalize().unwrap_or_else(|_| path.clone());
        let seen = list
            .iter()
            .any(|c| c.path.canonicalize().unwrap_or_else(|_| c.path.clone()) == canonical);
        if path.is_file() && !seen {
            list.push(Candidate { source, path });
        }
    };
    for dir in SYSTEM_DIRS {
        for name in ["libonnxruntime.so", "libonnxruntime.so.1"] {
            push(Source::System, Path::new(dir).join(name));
        }
    }
    for capi in python_packages() {
        if let Some(lib) = newest_versioned(&capi) {
            push(Source::System, lib);
        }
    }
    for dir in bundled_dirs() {
        push(Source::Bundled, dir.join("libonnxruntime.so"));
        if let Some(lib) = newest_versioned(&dir) {
            push(Source::Bundled, lib);
        }
    }
    list
}

/// Where a system onnxruntime is looked for, in order.
const SYSTEM_DIRS: &[&str] = &["/usr/local/lib", MULTIARCH_LIB_DIR, "/usr/lib"];

/// Debian's library folder for this architecture.
const MULTIARCH_LIB_DIR: &str = if cfg!(target_arch = "aarch64") {
    "/usr/lib/aarch64-linux-gnu"
} else if cfg!(target_arch = "arm") {
    "/usr/lib/arm-linux-gnueabihf"
} else {
    "/usr/lib/x86_64-linux-gnu"
};

/// A short description of the places searched when neither explicit setting is given.
pub fn searched_places() -> String {
    let bundled: Vec<String> = bundled_dirs()
        .iter()
        .map(|d| d.display().to_string())
        .collect();
    format!(
        "{}, Python onnxruntime packages, then the bundled {}",
        SYSTEM_DIRS.join(", "),
        bundled.join(" or ")
    )
}

/// `onnxruntime/capi` folders of onnxruntime Python packages installed for the system's Python
/// (`onnxruntime-gpu` installs under the same name).
fn python_packages() -> Vec<PathBuf> {
    let mut found = Vec::new();
    for root in ["/usr/local/lib", "/usr/lib"] {
        let Ok(entries) = std::fs::read_dir(root) else {
            continue;
        };
        let mut pythons: Vec<PathBuf> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with("python3"))
            .map(|e| e.path())
            .collect();
        pythons.sort();
        for python in pythons {
            for packages in ["dist-packages", "site-packages"] {
                let capi = python.join(packages).join("onnxruntime/capi");
                if capi.is_dir() {
                    found.push(capi);
                }
            }
        }
    }
    if Path::new("/usr/lib/python3/dist-packages/onnxruntime/capi").is_dir() {
        found.push(PathBuf::from(
            "/usr/lib/python3/dist-packages/onnxruntime/capi",
        ));
    }
    found
}

/// Where the package puts the bundled library: next to the executable first, so that an unpacked
/// package (`dpkg -x`) finds its own copy.
fn bundled_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    let exe = std::env::current_exe().and_then(|e| e.canonicalize());
    if let Some(prefix) = exe
        .ok()
        .and_then(|e| e.parent()?.parent().map(Path::to_path_buf))
    {
        dirs.push(prefix.join("lib/edgeinfer"));
    }
    let installed = PathBuf::from("/usr/lib/edgeinfer");
    if !dirs
        .iter()
        .any(|d| d.canonicalize().ok() == installed.canonicalize().ok() && d.exists())
    {
        dirs.push(installed);
    }
    dirs
}

/// The `libonnxruntime.so.<version>` in `dir` with the highest version, if any.
fn newest_versioned(dir: &Path) -> Option<PathBuf> {
    let mut best: Option<(Vec<u32>, PathBuf)> = None;
    for entry in std::fs::read_dir(dir).ok()?.filter_map(|e| e.ok()) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(version) = name.strip_prefix("libonnxruntime.so.") else {
            continue;
        };
        let parts: Option<Vec<u32>> = version.split('.').map(|p| p.parse().ok()).collect();
        if let Some(parts) = parts {
            if best.as_ref().is_none_or(|(b, _)| parts > *b) {
                best = Some((parts, entry.path()));
            }
        }
    }
    best.map(|(_, path)| path)
}

/// The architecture this process runs on, as ELF names it.
const HOST: Machine = if cfg!(target_arch = "aarch64") {
    Machine::new(183, 64)
} else if cfg!(target_arch = "arm") {
    Machine::new(40, 32)
} else if cfg!(target_arch = "x86") {
    Machine::new(3, 32)
} else {
    Machine::new(62, 64)
};

/// An ELF `e_machine` and word size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Machine {
    id: u16,
    bits: u8,
}

impl Machine {
    const fn new(id: u16, bits: u8) -> Self {
        Self { id, bits }
    }

    fn name(self) -> String {
        let known = match (self.id, self.bits) {
            (62, 64) => "x86-64",
            (3, 32) => "x86 (32-bit)",
            (183, 64) => "aarch64",
            (40, 32) => "32-bit ARM",
            (243, 64) => "64-bit RISC-V",
            (8, _) => "MIPS",
            (20, 32) => "32-bit PowerPC",
            (21, 64) => "64-bit PowerPC",
            _ => "",
        };
        if known.is_empty() {
            format!("ELF machine {} ({}-bit)", self.id, self.bits)
        } else {
            known.to_string()
        }
    }
}

/// Checks that `path` is an ELF shared object for this process's architecture.
pub fn check_elf(path: &Path) -> Result<(), LibraryError> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => LibraryError::Missing(path.to_path_buf()),
        _ => LibraryError::Unreadable {
            path: path.to_path_buf(),
            reason: e.to_string(),
        },
    })?;
    let mut header = [0u8; 20];
    let read = file
        .read(&mut header)
        .map_err(|e| LibraryError::Unreadable {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    if read < header.len() || header[..4] != *b"\x7fELF" {
        return Err(LibraryError::NotElf(path.to_path_buf()));
    }
    let bits = match header[4] {
        1 => 32,
        2 => 64,
        _ => return Err(LibraryError::NotElf(path.to_path_buf())),
    };
    let id = match header[5] {
        1 => u16::from_le_bytes([header[18], header[19]]),
        2 => u16::from_be_bytes([header[18], header[19]]),
        _ => return Err(LibraryError::NotElf(path.to_path_buf())),
    };
    let found = Machine::new(id, bits);
    // Little-endian on every architecture edgeinfer is built for; a big-endian file of the
    // same machine cannot be loaded either.
    if found != HOST || header[5] != 1 {
        let mut found = found.name();
        if header[5] == 2 {
            found.push_str(", big-endian");
        }
        return Err(LibraryError::WrongArchitecture {
            path: path.to_path_buf(),
            found,
            expected: HOST.name(),
        });
    }
    // e_type: ET_DYN (3) for a shared object.
    let kind = u16::from_le_bytes([header[16], header[17]]);
    if kind != 3 {
        return Err(LibraryError::NotElf(path.to_path_buf()));
    }
    Ok(())
}

/// A checked library, loaded and kept loaded, with its version.
pub struct Opened {
    pub version: String,
    _library: libloading::Library,
}

/// Checks and loads `path`: the ELF header, then `dlopen`, then `OrtGetApiBase` and the version.
pub fn open(path: &Path) -> Result<Opened, LibraryError> {
    check_elf(path)?;
    // SAFETY: loading a library runs its initialisers; the file was checked to be a shared
    // object of this architecture, which is what `dlopen` would otherwise refuse.
    let library =
        unsafe { libloading::Library::new(path) }.map_err(|e| LibraryError::Unloadable {
            path: path.to_path_buf(),
            reason: dl_message(&e, path),
        })?;
    type GetApiBase = unsafe extern "C" fn() -> *const ort::sys::OrtApiBase;
    // SAFETY: `OrtGetApiBase` has this signature in every onnxruntime release.
    let get: libloading::Symbol<'_, GetApiBase> = unsafe { library.get(b"OrtGetApiBase\0") }
        .map_err(|_| LibraryError::NotOnnxRuntime(path.to_path_buf()))?;
    // SAFETY: it returns a pointer to a static table, or null.
    let base = unsafe { get() };
    if base.is_null() {
        return Err(LibraryError::NotOnnxRuntime(path.to_path_buf()));
    }
    // SAFETY: the table is valid (non-null above), and its version string is a static C string.
    let version = unsafe { std::ffi::CStr::from_ptr(((*base).GetVersionString)()) }
        .to_string_lossy()
        .into_owned();
    let minor = version
        .split('.')
        .nth(1)
        .and_then(|m| m.parse::<u32>().ok());
    if minor.is_none_or(|m| m < MIN_MINOR_VERSION) || !version.starts_with("1.") {
        return Err(LibraryError::TooOld {
            path: path.to_path_buf(),
            version,
        });
    }
    Ok(Opened {
        version,
        _library: library,
    })
}

/// `dlopen`'s message without the path it repeats.
fn dl_message(e: &libloading::Error, path: &Path) -> String {
    let text = e.to_string();
    let prefix = format!("{}: ", path.display());
    match text.find(&prefix) {
        Some(at) => text[at + prefix.len()..].to_string(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn elf(class: u8, data: u8, kind: u16, machine: u16) -> Vec<u8> {
        let mut h = vec![0u8; 64];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = class;
        h[5] = data;
        h[6] = 1;
        h[16..18].copy_from_slice(&kind.to_le_bytes());
        h[18..20].copy_from_slice(&machine.to_le_bytes());
        h
    }

    fn written(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn a_library_of_another_architecture_is_named_as_such() {
        let dir = tempfile::tempdir().unwrap();
        let others = [
            (2, 183, "aarch64"),
            (1, 40, "32-bit ARM"),
            (2, 62, "x86-64"),
        ];
        for (class, machine, name) in others {
            let path = written(dir.path(), name, &elf(class, 1, 3, machine));
            let result = check_elf(&path);
            if Machine::new(machine, if class == 2 { 64 } else { 32 }) == HOST {
                assert_eq!(result, Ok(()));
                continue;
            }
            let message = result.unwrap_err().to_string();
            assert!(
                message.contains(&format!("built for {name}, but this edgeinfer runs on")),
                "{message}"
            );
            assert!(message.contains(&path.display().to_string()), "{message}");
        }
    }

    #[test]
    fn a_file_that_is_not_a_shared_library_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let text = written(dir.path(), "text.so", b"not a library at all, just text");
        assert_eq!(check_elf(&text), Err(LibraryError::NotElf(text.clone())));
        let short = written(dir.path(), "short.so", b"\x7fELF");
        assert_eq!(check_elf(&short), Err(LibraryError::NotElf(short.clone())));
        // An executable, not a shared object.
        let exec = written(dir.path(), "exec", &elf(HOST.bits / 32, 1, 2, HOST.id));
        assert_eq!(check_elf(&exec), Err(LibraryError::NotElf(exec.clone())));
        let missing = dir.path().join("absent.so");
        assert_eq!(
            check_elf(&missing),
            Err(LibraryError::Missing(missing.clone()))
        );
        let big = written(dir.path(), "big.so", &elf(HOST.bits / 32, 2, 3, HOST.id));
        assert!(matches!(
            check_elf(&big),
            Err(LibraryError::WrongArchitecture { found, .. }) if found.ends_with("big-endian")
        ));
    }

    #[test]
    fn an_explicit_setting_is_the_only_candidate_and_the_variable_wins() {
        let env = Path::new("/opt/a/libonnxruntime.so");
        let config = Path::new("/opt/b/libonnxruntime.so");
        let only = |c: Vec<Candidate>| {
            assert_eq!(c.len(), 1);
            c[0].clone()
        };
        assert_eq!(
            only(candidates(Some(env), Some(config))).source,
            Source::Env
        );
        let from_config = only(candidates(None, Some(config)));
        assert_eq!(
            (from_config.source, from_config.path.as_path()),
            (Source::Config, config)
        );
    }

    #[test]
    fn the_newest_versioned_library_of_a_folder_is_chosen() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "libonnxruntime.so.1.9.0",
            "libonnxruntime.so.1.31.1",
            "libonnxruntime.so.1.4.0",
            "libonnxruntime_providers_shared.so",
            "libonnxruntime.so.1.x",
        ] {
            written(dir.path(), name, b"");
        }
        assert_eq!(
            newest_versioned(dir.path()),
            Some(dir.path().join("libonnxruntime.so.1.31.1"))
        );
    }

    #[test]
    fn a_loadable_library_without_the_entry_point_is_not_onnxruntime() {
        // libm: a shared object of this architecture that every Debian machine has.
        let libm = Path::new(MULTIARCH_LIB_DIR).join("libm.so.6");
        assert_eq!(check_elf(&libm), Ok(()), "{}", libm.display());
        assert_eq!(open(&libm).err(), Some(LibraryError::NotOnnxRuntime(libm)));
    }
}
