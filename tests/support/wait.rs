//! Small things every test needs: paths in the repository, free ports, polling, signals.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

pub fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// A port nothing listens on right now, below the kernel's ephemeral range so that no client
/// socket can take it as its own port before the server binds it, and no connection probe can
/// connect to itself on it; each call in a process gets another port.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20_000;
    const COUNT: u32 = 12_000;
    static CALLS: AtomicU32 = AtomicU32::new(0);
    // Each test process starts from its own place in the range, should two run at once.
    let start = std::process::id().wrapping_mul(2_654_435_761) % COUNT;
    for _ in 0..COUNT {
        let n = start + CALLS.fetch_add(1, Ordering::SeqCst) % COUNT;
        let port = (FIRST + n % COUNT) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {FIRST}..{}", FIRST + COUNT)
}

/// Waits until the server `child` accepts connections on loopback `port`; panics if it exits
/// first or takes more than 10 s.
pub fn wait_for_listener(child: &mut Child, port: u16) {
    let up = wait_until(Duration::from_secs(10), || {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the server meant for port {port} exited: {status}");
        }
        TcpStream::connect(("127.0.0.1", port))
            .is_ok_and(|s| s.local_addr().map(|a| a.port()).ok() != Some(port))
    });
    assert!(up, "nothing listens on port {port} after 10 s");
}

/// Polls `f` until it returns true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    f()
}

/// Like [`wait_until`] for async tests: polls `f` every 20 ms for up to `timeout` without
/// blocking the runtime.
pub async fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    f()
}

/// Sends `sig` (a name such as "TERM") to process `pid`, ignoring a process that is gone.
pub fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}
