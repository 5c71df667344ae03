//! The service manager's side of `sd_notify`: a datagram socket that records every notification.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A notification socket that records every datagram with its arrival time.
pub struct ServiceManager {
    pub socket_path: std::path::PathBuf,
    received: Arc<Mutex<Vec<(Instant, String)>>>,
}

impl ServiceManager {
    pub fn start(dir: &Path) -> ServiceManager {
        let socket_path = dir.join("notify.sock");
        let socket = UnixDatagram::bind(&socket_path).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let sink = received.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                if let Ok(n) = socket.recv(&mut buf) {
                    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                    sink.lock().unwrap().push((Instant::now(), text));
                }
                if Arc::strong_count(&sink) == 1 {
                    return;
                }
            }
        });
        ServiceManager {
            socket_path,
            received,
        }
    }

    pub fn messages(&self) -> Vec<(Instant, String)> {
        self.received.lock().unwrap().clone()
    }

    pub fn count(&self, needle: &str) -> usize {
        self.messages()
            .iter()
            .filter(|(_, m)| m.lines().any(|l| l == needle))
            .count()
    }
}
