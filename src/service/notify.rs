//! The `sd_notify` protocol: datagrams of `KEY=VALUE` lines to the socket in `$NOTIFY_SOCKET`.

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::Duration;
use tracing::{debug, warn};

/// A connection to the service manager's notification socket.
#[derive(Debug)]
pub struct Notifier {
    socket: UnixDatagram,
    target: Target,
    watchdog: Option<Duration>,
}

#[derive(Debug)]
enum Target {
    Path(PathBuf),
    Abstract(Vec<u8>),
}

impl Notifier {
    /// From `$NOTIFY_SOCKET` (and `$WATCHDOG_USEC` / `$WATCHDOG_PID`); `None` when not run by a
    /// service manager that listens.
    pub fn from_env() -> Option<Notifier> {
        let socket = std::env::var_os("NOTIFY_SOCKET")?;
        let bytes = socket.as_encoded_bytes();
        let target = match bytes.first() {
            Some(b'@') => Target::Abstract(bytes[1..].to_vec()),
            Some(b'/') => Target::Path(PathBuf::from(&socket)),
            _ => {
                warn!(socket = ?socket, "NOTIFY_SOCKET is neither a path nor an abstract name; ignored");
                return None;
            }
        };
        let socket = match UnixDatagram::unbound() {
            Ok(s) => s,
            Err(e) => {
                warn!(error = %e, "Cannot create a socket for service notifications");
                return None;
            }
        };
        let for_us = std::env::var("WATCHDOG_PID")
            .ok()
            .and_then(|p| p.parse::<u32>().ok())
            .is_none_or(|pid| pid == std::process::id());
        let watchdog = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|us| *us > 0 && for_us)
            .map(Duration::from_micros);
        Some(Notifier {
            socket,
            target,
            watchdog,
        })
    }

    /// To the datagram socket at `path`, with the watchdog timeout `watchdog`: what `from_env`
    /// finds under a service manager, given directly (an embedding program, a test).
    pub fn to_socket(path: PathBuf, watchdog: Option<Duration>) -> std::io::Result<Notifier> {
        Ok(Notifier {
            socket: UnixDatagram::unbound()?,
            target: Target::Path(path),
            watchdog,
        })
    }

    /// The watchdog timeout the service manager asked for, if any.
    pub fn watchdog(&self) -> Option<Duration> {
        self.watchdog
    }

    /// Sends one notification (e.g. `READY=1`); failures are logged, never fatal.
    pub fn send(&self, message: &str) {
        let sent = match &self.target {
            Target::Path(path) => self.socket.send_to(message.as_bytes(), path),
            Target::Abstract(name) => {
                use std::os::linux::net::SocketAddrExt;
                std::os::unix::net::SocketAddr::from_abstract_name(name)
                    .and_then(|addr| self.socket.send_to_addr(message.as_bytes(), &addr))
            }
        };
        match sent {
            Ok(_) => debug!(message, "Service notification sent"),
            Err(e) => warn!(error = %e, message, "Service notification failed"),
        }
    }
}
