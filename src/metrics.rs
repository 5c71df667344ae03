//! The optional Prometheus endpoint: `GET /metrics` on a loopback address, in the text exposition
//! format. It serves the counters the daemon logs at shutdown, live.

use crate::outbox::Outbox;
use crate::pipeline::SensorStats;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

/// What the endpoint reports.
pub struct Sources {
    /// Device id, a label on every series.
    pub device: String,
    /// Counters of every sensor, by id.
    pub sensors: Vec<(Arc<str>, Arc<SensorStats>)>,
    /// The outbox.
    pub outbox: Arc<Outbox>,
    /// When the daemon started.
    pub started: Instant,
}

/// Longest a client may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Binds `addr`; the error is for start-up to report.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves until `shutdown`, one request per connection.
pub async fn serve(listener: TcpListener, sources: Arc<Sources>, shutdown: CancellationToken) {
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, "Serving Prometheus metrics on /metrics");
    }
    loop {
        let (mut stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(e) => {
                    debug!(error = %e, "Metrics connection not accepted");
                    continue;
                }
            },
            _ = shutdown.cancelled() => return,
        };
        let sources = Arc::clone(&sources);
        tokio::spawn(async move {
            let mut request = Vec::with_capacity(512);
            let mut buf = [0u8; 512];
            let head = tokio::time::timeout(REQUEST_TIMEOUT, async {
                // The request line is all that matters; stop at the end of the headers.
                while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 8192 {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
            })
            .await;
            if head.is_err() {
                return;
            }
            let line = String::from_utf8_lossy(&request);
            let line = line.lines().next().unwrap_or_default();
            let response = match line.split_whitespace().collect::<Vec<_>>().as_slice() {
                ["GET", "/metrics", ..] => response(
                    "200 OK",
                    "text/plain; version=0.0.4; charset=utf-8",
                    &render(&sources),
                ),
                ["GET", ..] => response("404 Not Found", "text/plain", "only /metrics is served\n"),
                _ => response("405 Method Not Allowed", "text/plain", "GET only\n"),
            };
            if let Err(e) = stream.write_all(response.as_bytes()).await {
                debug!(%peer, error = %e, "Metrics response not sent");
            }
            let _ = stream.shutdown().await;
        });
    }
}

fn response(status: &str, content_type: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// The exposition text.
pub fn render(s: &Sources) -> String {
    let mut e = Exposition {
        out: String::new(),
        device: &s.device,
    };
    e.family(
        "uptime_seconds",
        "gauge",
        "Seconds since the daemon started.",
        &[(String::new(), s.started.elapsed().as_secs())],
    );
    sensor_families(&mut e, s);
    outbox_families(&mut e, s);
    e.out
}

/// Text being written, one metric family at a time.
struct Exposition<'a> {
    out: String,
    device: &'a str,
}

impl Exposition<'_> {
    /// One family: its help and type lines, then a series per label set (`,key="value"`...).
    fn family(&mut self, name: &str, kind: &str, help: &str, series: &[(String, u64)]) {
        let device = self.device;
        let _ = writeln!(self.out, "# HELP edgeinfer_{name} {help}");
        let _ = writeln!(self.out, "# TYPE edgeinfer_{name} {kind}");
        for (labels, value) in series {
            let _ = writeln!(
                self.out,
                "edgeinfer_{name}{{device=\"{device}\"{labels}}} {value}"
            );
        }
    }
}

/// Per-sensor counters.
fn sensor_families(e: &mut Exposition, s: &Sources) {
    let totals: Vec<(String, crate::pipeline::SensorTotals)> = s
        .sensors
        .iter()
        .map(|(id, stats)| (format!(",sensor=\"{id}\""), stats.snapshot()))
        .collect();
    type Field = fn(&crate::pipeline::SensorTotals) -> u64;
    let per_sensor: [(&str, &str, Field); 6] = [
        ("captured", "Frames the sensor produced.", |t| t.captured),
        (
            "dropped",
            "Frames dropped by the sensor's queue policy.",
            |t| t.dropped,
        ),
        ("inferred", "Frames that became a stored prediction.", |t| {
            t.inferred
        }),
        ("errors", "Bad inputs and failed frames skipped.", |t| {
            t.errors
        }),
        (
            "reconnects",
            "Reopen cycles after a loss, and failed attempts to open or reopen the device.",
            |t| t.reconnects,
        ),
        (
            "overruns",
            "Audio samples or serial bytes lost before they became a frame.",
            |t| t.overruns,
        ),
    ];
    for (counter, help, field) in per_sensor {
        let series: Vec<(String, u64)> =
            totals.iter().map(|(l, t)| (l.clone(), field(t))).collect();
        e.family(&format!("sensor_{counter}_total"), "counter", help, &series);
    }
}

/// The outbox's size, age, health and lifetime counters.
fn outbox_families(e: &mut Exposition, s: &Sources) {
    let o = s.outbox.stats();
    e.family(
        "outbox_records",
        "gauge",
        "Predictions waiting for delivery.",
        &[(String::new(), o.records)],
    );
    e.family(
        "outbox_bytes",
        "gauge",
        "Bytes of the waiting predictions.",
        &[(String::new(), o.bytes)],
    );
    e.family(
        "outbox_max_bytes",
        "gauge",
        "The outbox cap.",
        &[(String::new(), o.max_bytes)],
    );
    e.family(
        "outbox_disk_bytes",
        "gauge",
        "Bytes of the outbox's files on disk.",
        &[(String::new(), o.disk_bytes)],
    );
    e.family(
        "outbox_oldest_age_seconds",
        "gauge",
        "Age of the oldest waiting prediction (0 when empty).",
        &[(String::new(), o.oldest_age_secs.unwrap_or(0))],
    );
    e.family(
        "outbox_write_failing",
        "gauge",
        "1 while the outbox cannot store predictions (disk full, I/O error).",
        &[(String::new(), u64::from(o.write_failing))],
    );
    let c = o.counters;
    e.family(
        "outbox_records_total",
        "counter",
        "Outbox records by what happened to them (lifetime of the store).",
        &[
            (",event=\"appended\"".into(), c.appended),
            (",event=\"acked\"".into(), c.acked),
            (",event=\"dropped_oldest\"".into(), c.dropped_oldest),
            (",event=\"dropped_newest\"".into(), c.dropped_newest),
            (",event=\"thinned\"".into(), c.thinned),
            (",event=\"expired\"".into(), c.expired),
            (",event=\"corrupt\"".into(), c.corrupt),
            (",event=\"undeliverable\"".into(), c.undeliverable),
            (",event=\"purged\"".into(), c.purged),
            (",event=\"write_error\"".into(), c.write_errors),
            (",event=\"quarantined\"".into(), c.quarantined),
        ],
    );
}
