//! Under systemd, with stderr connected to the journal (`JOURNAL_STREAM` names it), log records go
//! to journald's socket in its native protocol, with their priority and fields; elsewhere they
//! stay text on stderr. The test is journald: in a mount namespace of the daemon's own, a socket
//! of the test's is bound at `/run/systemd/journal/socket` (so it takes root), and the daemon's
//! stderr is the stream `JOURNAL_STREAM` names, as systemd would set it.

use crate::support::*;
use std::collections::HashMap;
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One record of journald's native protocol: `KEY=value` lines, or `KEY`, a little-endian u64
/// length, the value's bytes and a newline for values that hold newlines.
fn parse_record(mut bytes: &[u8]) -> HashMap<String, String> {
    let mut fields = HashMap::new();
    while !bytes.is_empty() {
        let end = bytes
            .iter()
            .position(|&b| b == b'\n')
            .unwrap_or(bytes.len());
        let line = &bytes[..end];
        if let Some(eq) = line.iter().position(|&b| b == b'=') {
            let key = String::from_utf8_lossy(&line[..eq]).into_owned();
            fields.insert(key, String::from_utf8_lossy(&line[eq + 1..]).into_owned());
            bytes = &bytes[(end + 1).min(bytes.len())..];
        } else {
            let key = String::from_utf8_lossy(line).into_owned();
            let rest = &bytes[end + 1..];
            let len = u64::from_le_bytes(rest[..8].try_into().unwrap()) as usize;
            let value = String::from_utf8_lossy(&rest[8..8 + len]).into_owned();
            fields.insert(key, value);
            bytes = &rest[(8 + len + 1).min(rest.len())..];
        }
    }
    fields
}

#[test]
fn under_systemd_records_go_to_the_journal_with_priority_and_fields() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal");
    std::fs::create_dir(&journal).unwrap();
    let socket = UnixDatagram::bind(journal.join("socket")).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    // No [mqtt]: the daemon warns that predictions stay in the outbox.
    let config = looping_line_config(dir.path(), "serial0", "");
    let script = format!(
        "mount -t tmpfs none /run && mkdir -p /run/systemd/journal && \
         mount --bind '{journal}' /run/systemd/journal && \
         JOURNAL_STREAM=$(stat -L -c %d:%i /proc/self/fd/2) exec '{bin}' run --config '{config}'",
        journal = journal.display(),
        bin = env!("CARGO_BIN_EXE_edgeinfer"),
        config = config.display(),
    );
    let child = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .env("RUST_LOG", "edgeinfer=debug")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut records = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let deadline = Instant::now() + Duration::from_secs(30);
    let seen = |records: &[HashMap<String, String>], message: &str| {
        records
            .iter()
            .find(|r| r.get("MESSAGE").is_some_and(|m| m == message))
            .cloned()
    };
    while Instant::now() < deadline && seen(&records, "Prediction stored").is_none() {
        if let Ok(n) = socket.recv(&mut buf) {
            records.push(parse_record(&buf[..n]));
        }
    }
    signal(child.id(), "TERM");
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !records.is_empty(),
        "nothing reached the journal socket (unshare and mount need root); stderr:\n{stderr}"
    );
    let messages: Vec<&str> = records
        .iter()
        .filter_map(|r| r.get("MESSAGE").map(String::as_str))
        .collect();
    let warning = seen(
        &records,
        "No [mqtt] section: predictions are kept in the outbox only",
    )
    .unwrap_or_else(|| panic!("no warning among {messages:?}"));
    assert_eq!(warning["PRIORITY"], "4");
    assert_eq!(warning["SYSLOG_IDENTIFIER"], "edgeinfer");
    assert_eq!(warning["DEVICE"], "t1");
    let loaded = seen(&records, "Model loaded").unwrap_or_else(|| panic!("{messages:?}"));
    assert_eq!(loaded["PRIORITY"], "6");
    assert!(loaded.contains_key("MODEL"), "{loaded:?}");
    let stored = seen(&records, "Prediction stored").unwrap_or_else(|| panic!("{messages:?}"));
    assert_eq!(stored["PRIORITY"], "7");
    assert_eq!(stored["SENSOR"], "serial0");
    // Nothing of it as text on stderr.
    assert!(!stderr.contains("Model loaded"), "{stderr}");
}

#[test]
fn with_stderr_elsewhere_records_stay_text_on_stderr() {
    // JOURNAL_STREAM inherited from a service, but naming another stream (stderr redirected).
    let dir = tempfile::tempdir().unwrap();
    let config = looping_line_config(dir.path(), "serial0", "");
    let daemon =
        Daemon::start_with_env(&config, &[("JOURNAL_STREAM", std::ffi::OsStr::new("1:1"))]);
    assert!(
        wait_until(Duration::from_secs(30), || daemon
            .log_contains("Prediction stored")),
        "{}",
        daemon.log()
    );
    assert!(daemon.terminate(Duration::from_secs(10)).success());
}
