//! Running under systemd: readiness and status notifications, and a watchdog that pings only while
//! the pipeline makes progress.

mod notify;
mod watchdog;

pub use notify::Notifier;
pub use watchdog::supervise;
