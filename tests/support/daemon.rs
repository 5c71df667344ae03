//! The daemon under test as a child process (`edgeinfer run`), with its log lines readable while
//! it runs. (Tests that run it in-process use the library's `Daemon` directly.)

use super::wait::{signal, wait_until};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Ids logged as durably stored ("Prediction stored id=...") in a daemon's log lines.
pub fn stored_ids_in(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .filter(|l| l.contains("Prediction stored"))
        .filter_map(|l| {
            let at = l.find("id=\"")? + 4;
            let end = l[at..].find('"')? + at;
            Some(l[at..end].to_string())
        })
        .collect()
}

/// The daemon as a child process.
pub struct Daemon {
    child: Child,
    pub lines: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Daemon {
    pub fn start(config: &Path) -> Daemon {
        Daemon::start_with_env(config, &[])
    }

    /// Like `start`, with extra environment variables for the daemon.
    pub fn start_with_env(config: &Path, env: &[(&str, &std::ffi::OsStr)]) -> Daemon {
        let mut child = Command::new(env!("CARGO_BIN_EXE_edgeinfer"))
            .arg("run")
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", "edgeinfer=debug")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let reader = {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if std::env::var_os("EDGEINFER_TEST_ECHO").is_some() {
                        eprintln!("daemon: {line}");
                    }
                    lines.lock().unwrap().push(line);
                }
            })
        };
        Daemon {
            child,
            lines,
            reader: Some(reader),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_contains(&self, needle: &str) -> bool {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains(needle))
    }

    pub fn count_lines(&self, needle: &str) -> usize {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }

    /// Ids the daemon logged as durably stored ("Prediction stored id=...").
    pub fn stored_ids(&self) -> Vec<String> {
        stored_ids_in(&self.lines.lock().unwrap())
    }

    pub fn log(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// SIGTERM, then the exit status (panics if it does not exit within `timeout`).
    pub fn terminate(mut self, timeout: Duration) -> ExitStatus {
        // Signal handlers are installed during start-up; a SIGTERM before that kills by default.
        let started = wait_until(timeout, || self.log_contains("Running"));
        assert!(started, "daemon never reported Running:\n{}", self.log());
        signal(self.child.id(), "TERM");
        let end = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // The log is complete once the reader has seen the pipe close.
                if let Some(reader) = self.reader.take() {
                    let _ = reader.join();
                }
                return status;
            }
            if Instant::now() > end {
                let _ = self.child.kill();
                panic!(
                    "daemon did not exit within {timeout:?} of SIGTERM:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: no chance to flush or say goodbye. The log stays readable.
    pub fn kill(&mut self) {
        signal(self.child.id(), "KILL");
        let _ = self.child.wait();
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the daemon until its sensors reach the end of their input, stops it with SIGTERM and
/// returns its whole log (shutdown totals included); panics if it does not get there or exits
/// badly.
pub fn run_to_end(config: &Path) -> String {
    let daemon = Daemon::start(config);
    assert!(
        wait_until(Duration::from_secs(60), || daemon
            .log_contains("reached the end of its input")),
        "{}",
        daemon.log()
    );
    let lines = daemon.lines.clone();
    let status = daemon.terminate(Duration::from_secs(10));
    let log = lines.lock().unwrap().join("\n");
    assert!(status.success(), "{log}");
    log
}
