//! Process and board figures for telemetry: CPU share and resident memory of this process (from
//! /proc/self), free disk space under the data folder (statvfs), and SoC temperatures where the
//! board exposes thermal zones.

use serde::Serialize;
use std::path::Path;
use std::time::Instant;

/// CPU time of this process at one moment, to compute a share over a period.
pub struct CpuSample {
    ticks: u64,
    at: Instant,
}

impl CpuSample {
    /// The process's CPU time now; `None` where /proc is not readable.
    pub fn now() -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // The command name (field 2) may hold spaces; fields are counted after its ')'.
        let rest = stat.rsplit_once(')')?.1;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after ')'.
        let utime: u64 = fields.get(11)?.parse().ok()?;
        let stime: u64 = fields.get(12)?.parse().ok()?;
        Some(Self {
            ticks: utime + stime,
            at: Instant::now(),
        })
    }

    /// Percent of one core used since `earlier` (over 100 on several cores).
    pub fn percent_since(&self, earlier: &CpuSample) -> Option<f64> {
        // SAFETY: sysconf only reads a system constant.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        let secs = self.at.duration_since(earlier.at).as_secs_f64();
        if hz <= 0 || secs <= 0.0 {
            return None;
        }
        let used = self.ticks.saturating_sub(earlier.ticks) as f64 / hz as f64;
        Some((used / secs * 1000.0).round() / 10.0)
    }
}

/// Resident memory of this process, in bytes.
pub fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf only reads a system constant.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    (page > 0).then(|| pages * page as u64)
}

/// Space on the file system that holds a folder.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Disk {
    /// Bytes available to this process.
    pub free_bytes: u64,
    /// Size of the file system.
    pub total_bytes: u64,
}

/// Space on the file system of `path`.
// statvfs field widths differ by target (32 bits on armv7), so the casts are needed there.
#[allow(clippy::unnecessary_cast)]
pub fn disk(path: &Path) -> Option<Disk> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is a valid C string and `st` is written by statvfs before it is read.
    let rc = unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: statvfs succeeded, so it filled `st`.
    let st = unsafe { st.assume_init() };
    let unit = st.f_frsize as u64;
    Some(Disk {
        free_bytes: st.f_bavail as u64 * unit,
        total_bytes: st.f_blocks as u64 * unit,
    })
}

/// One thermal zone's temperature.
#[derive(Debug, Clone, Serialize)]
pub struct Temperature {
    /// Zone name (`/sys/class/thermal/thermal_zoneN`).
    pub zone: String,
    /// What the zone measures, as the kernel names it (`cpu-thermal`, `soc_thermal`, ...).
    pub kind: String,
    /// Degrees Celsius.
    pub celsius: f64,
}

/// Temperatures of the board's thermal zones; empty where there are none (most VMs).
pub fn temperatures() -> Vec<Temperature> {
    let Ok(entries) = std::fs::read_dir("/sys/class/thermal") else {
        return Vec::new();
    };
    let mut zones: Vec<Temperature> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("thermal_zone"))
        .filter_map(|e| {
            let milli: f64 = std::fs::read_to_string(e.path().join("temp"))
                .ok()?
                .trim()
                .parse()
                .ok()?;
            let kind = std::fs::read_to_string(e.path().join("type"))
                .map(|t| t.trim().to_string())
                .unwrap_or_default();
            Some(Temperature {
                zone: e.file_name().to_string_lossy().into_owned(),
                kind,
                celsius: milli / 1000.0,
            })
        })
        .collect();
    zones.sort_by(|a, b| a.zone.cmp(&b.zone));
    zones
}
