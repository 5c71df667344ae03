//! Reads the daemon's counters the way an operator does: from its Prometheus endpoint.

use std::io::{Read, Write};
use std::net::TcpStream;

/// The TOML that makes a daemon serve `/metrics` on loopback `port`.
pub fn metrics_toml(port: u16) -> String {
    format!("\n[metrics]\nlisten = \"127.0.0.1:{port}\"\n")
}

/// The whole HTTP response to `GET path` from loopback `port`.
pub fn http_get(port: u16, path: &str) -> String {
    try_http_get(port, path).unwrap_or_else(|e| panic!("GET {path} on port {port}: {e}"))
}

fn try_http_get(port: u16, path: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response)
}

/// The value of the series whose line starts with `series` in a `/metrics` body.
pub fn series_value(body: &str, series: &str) -> Option<u64> {
    body.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

/// The value of `series` as served now on `port`; `None` while the endpoint is not up or the
/// series is absent.
pub fn metric(port: u16, series: &str) -> Option<u64> {
    series_value(&try_http_get(port, "/metrics").ok()?, series)
}

/// One sensor's counters (`edgeinfer_sensor_*_total`), read with [`Scrape`].
pub use edgeinfer::pipeline::SensorTotals as SensorCounters;

/// Reads a sensor's counters as served now by the daemon of device `t1` on a port.
pub trait Scrape: Sized {
    /// The counters; panics if the endpoint does not answer or lacks the sensor.
    fn scrape(port: u16, sensor: &str) -> Self;
    /// The counters, or `None` while the endpoint is not up yet.
    fn read(port: u16, sensor: &str) -> Option<Self>;
}

impl Scrape for SensorCounters {
    fn scrape(port: u16, sensor: &str) -> SensorCounters {
        let body = http_get(port, "/metrics");
        parse(&body, sensor).unwrap_or_else(|| panic!("no {sensor} in:\n{body}"))
    }

    fn read(port: u16, sensor: &str) -> Option<SensorCounters> {
        parse(&try_http_get(port, "/metrics").ok()?, sensor)
    }
}

/// A sensor's counters in a `/metrics` body.
fn parse(body: &str, sensor: &str) -> Option<SensorCounters> {
    let get = |counter: &str| {
        let series =
            format!("edgeinfer_sensor_{counter}_total{{device=\"t1\",sensor=\"{sensor}\"}}");
        series_value(body, &series)
    };
    Some(SensorCounters {
        captured: get("captured")?,
        dropped: get("dropped")?,
        inferred: get("inferred")?,
        errors: get("errors")?,
        reconnects: get("reconnects")?,
        overruns: get("overruns")?,
    })
}
