//! Configs for the daemon under test: the `[device]` table every test uses, TOML tables for the
//! bundled vibration model and a line-replay sensor, and [`LineConfig`], a typed description of
//! the config most tests run, so that a test changes a field rather than editing TOML text.

use super::wait::repo;
use std::path::{Path, PathBuf};

/// Writes `rows` lines of "seconds,temperature,humidity,vibration" numbers.
pub fn write_readings(path: &Path, rows: usize) {
    let mut text = String::from("seconds,temperature,humidity,vibration\n");
    for i in 0..rows {
        let t = 40.0 + (i % 30) as f64;
        let v = 0.5 + (i % 7) as f64 * 0.4;
        text.push_str(&format!("{i},{t},{},{v}\n", 50 + i % 10));
    }
    std::fs::write(path, text).unwrap();
}

/// Writes `dir/name` as a config: the `[device]` table of every test (id "t1", state under
/// `dir/state`) followed by `body`.
pub fn write_config(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    let text = format!("{}{body}", device_toml("t1", &dir.join("state"), ""));
    std::fs::write(&path, text).unwrap();
    path
}

/// A `[device]` table; `extra` lines go inside it.
fn device_toml(id: &str, data_dir: &Path, extra: &str) -> String {
    format!(
        "[device]\nid = \"{id}\"\ndata_dir = \"{}\"\n{extra}",
        data_dir.display()
    )
}

/// A `[[models]]` table for the bundled vibration model with the given labels file.
pub fn vibration_model_toml(id: &str, labels: &Path) -> String {
    vibration_model_on(id, labels, None)
}

/// Like [`vibration_model_toml`], on `backend` where one is given.
fn vibration_model_on(id: &str, labels: &Path, backend: Option<&str>) -> String {
    let backend = backend
        .map(|b| format!("backend = \"{b}\"\n"))
        .unwrap_or_default();
    format!(
        r#"
[[models]]
id = "{id}"
{backend}path = "{}"
preprocess = {{ type = "record", fields = [1, 2, 3] }}
postprocess = {{ type = "classify", top_k = 2, labels = "{}" }}
"#,
        repo("models/vibration.onnx").display(),
        labels.display()
    )
}

/// A `[[sensors]]` table replaying a readings file (as written by `write_readings`) into `model`.
pub fn line_sensor_toml(id: &str, model: &str, readings: &Path, rate: Option<f64>) -> String {
    let rate = rate.map(|r| format!("rate = {r}")).unwrap_or_default();
    format!(
        r#"
[[sensors]]
id = "{id}"
model = "{model}"
type = "line_replay"
path = "{}"
header = true
{rate}
"#,
        readings.display()
    )
}

/// The config most tests run: device `t1` with the vibration model (id `vibration`) fed by one
/// line-replay sensor, and optionally a broker and remote management.
#[derive(Clone)]
pub struct LineConfig {
    pub device: String,
    /// Lines inside `[device]`.
    pub device_extra: String,
    pub data_dir: PathBuf,
    /// The model's backend (the daemon's default when `None`).
    pub backend: Option<String>,
    pub sensor: String,
    pub readings: PathBuf,
    /// Readings per second (as fast as possible when `None`).
    pub rate: Option<f64>,
    pub looping: bool,
    /// TOML between the sensor and `[mqtt]` (an `[outbox]` table, say).
    pub outbox: String,
    /// `[mqtt]` with this broker URL, reconnecting within 100 ms to 1 s.
    pub broker: Option<String>,
    /// Lines inside `[mqtt]`.
    pub mqtt_extra: String,
    /// `[remote]` trusting this operator key.
    pub remote: Option<Remote>,
    /// TOML after everything else.
    pub extra: String,
}

/// The `[remote]` table of a [`LineConfig`].
#[derive(Clone)]
pub struct Remote {
    pub operator_key: ed25519_dalek::VerifyingKey,
    /// The daemon's default when `None`.
    pub telemetry_interval_secs: Option<u64>,
    /// Lines inside `[remote]` (and tables below it, such as `[remote.ota]`).
    pub extra: String,
}

impl LineConfig {
    /// State under `dir/state`, replaying `readings` as fast as possible into sensor `serial0`,
    /// no broker.
    pub fn new(dir: &Path, readings: &Path) -> LineConfig {
        LineConfig {
            device: "t1".into(),
            device_extra: String::new(),
            data_dir: dir.join("state"),
            backend: None,
            sensor: "serial0".into(),
            readings: readings.to_path_buf(),
            rate: None,
            looping: false,
            outbox: String::new(),
            broker: None,
            mqtt_extra: String::new(),
            remote: None,
            extra: String::new(),
        }
    }

    /// A managed device (see [`remote_config`]) before it is written.
    pub fn remote(dir: &Path, broker: &str, key: &ed25519_dalek::SigningKey, rate: f64) -> Self {
        let readings = dir.join("readings.csv");
        write_readings(&readings, 50);
        LineConfig {
            rate: Some(rate),
            looping: true,
            broker: Some(broker.into()),
            remote: Some(Remote {
                operator_key: key.verifying_key(),
                telemetry_interval_secs: Some(1),
                extra: String::new(),
            }),
            ..LineConfig::new(dir, &readings)
        }
    }

    /// The config's text.
    pub fn toml(&self) -> String {
        let mut text = device_toml(&self.device, &self.data_dir, &self.device_extra);
        let labels = repo("models/vibration.labels");
        text += &vibration_model_on("vibration", &labels, self.backend.as_deref());
        text += &line_sensor_toml(&self.sensor, "vibration", &self.readings, self.rate);
        if self.looping {
            text += "loop = true\n";
        }
        text += &format!("\n{}\n", self.outbox);
        if let Some(broker) = &self.broker {
            text += &format!(
                "\n[mqtt]\nbroker = \"{broker}\"\nreconnect_min_ms = 100\nreconnect_max_ms = 1000\n{}",
                self.mqtt_extra
            );
        }
        text += &self.extra;
        if let Some(remote) = &self.remote {
            let key = edgeinfer::manage::auth::public_key_text(&remote.operator_key);
            text += &format!("\n[remote]\noperator_keys = [\"{key}\"]\n");
            if let Some(secs) = remote.telemetry_interval_secs {
                text += &format!("telemetry_interval_secs = {secs}\n");
            }
            text += &format!("{}\n", remote.extra);
        }
        text
    }

    /// Writes the config to `path` and returns it.
    pub fn write(&self, path: &Path) -> PathBuf {
        std::fs::write(path, self.toml()).unwrap();
        path.to_path_buf()
    }
}

/// The vibration model fed by line-replay sensor `serial0` at 20 readings/s, looping over 50
/// readings (written into `dir`), no broker.
pub fn looping_line(dir: &Path) -> LineConfig {
    let readings = dir.join("readings.csv");
    write_readings(&readings, 50);
    LineConfig {
        rate: Some(20.0),
        looping: true,
        ..LineConfig::new(dir, &readings)
    }
}

/// [`looping_line`] with sensor `sensor` and `extra` TOML at the end, written as
/// `dir/edgeinfer.toml`.
pub fn looping_line_config(dir: &Path, sensor: &str, extra: &str) -> PathBuf {
    LineConfig {
        sensor: sensor.into(),
        extra: extra.into(),
        ..looping_line(dir)
    }
    .write(&dir.join("edgeinfer.toml"))
}

/// A config with the vibration model fed by one line-replay sensor (`serial0`), `outbox` TOML and
/// `[mqtt]` on `broker`; written as `dir/edgeinfer.toml`.
pub fn line_config(
    dir: &Path,
    readings: &Path,
    rate: Option<f64>,
    broker: &str,
    outbox: &str,
) -> PathBuf {
    LineConfig {
        rate,
        broker: Some(broker.into()),
        outbox: outbox.into(),
        ..LineConfig::new(dir, readings)
    }
    .write(&dir.join("edgeinfer.toml"))
}

/// A managed device's config, written as `dir/edgeinfer.toml`: the vibration model fed by a
/// looping line replay (`serial0`, 50 readings) at `rate` frames per second, `[mqtt]` on
/// `broker`, and `[remote]` trusting `key` with telemetry every second. `extra` is appended
/// inside `[remote]`.
pub fn remote_config(
    dir: &Path,
    broker: &str,
    key: &ed25519_dalek::SigningKey,
    rate: f64,
    extra: &str,
) -> PathBuf {
    let mut config = LineConfig::remote(dir, broker, key, rate);
    config.remote.as_mut().unwrap().extra = extra.into();
    config.write(&dir.join("edgeinfer.toml"))
}

/// Outbox size and counters of a stopped daemon whose config was written into `dir`.
pub fn outbox_stats(dir: &Path) -> edgeinfer::outbox::OutboxStats {
    edgeinfer::outbox::Outbox::open(
        &dir.join("state/outbox"),
        &edgeinfer::config::OutboxConfig::default(),
    )
    .unwrap()
    .stats()
}

/// A `[[models]]` table for the bundled colour model (id `colour`, a 64×64 RGB image in) with
/// `lines` (pre- and post-processing, tuning), and a `[[sensors]]` table `sensor` replaying
/// `images` (a folder or an MJPEG file) into it.
pub fn colour_replay_toml(sensor: &str, lines: &str, images: &Path) -> String {
    format!(
        r#"
[[models]]
id = "colour"
path = "{}"
input_shapes = {{ image = [1, 3, 64, 64] }}
{lines}

[[sensors]]
id = "{sensor}"
model = "colour"
type = "image_replay"
path = "{}"
"#,
        repo("models/colour.onnx").display(),
        images.display()
    )
}

/// A `[[models]]` table for model file `path` (in the repository) as `id`, taking records and
/// giving its first `max_values` raw outputs, with `lines` added.
pub fn raw_model_toml(id: &str, path: &str, max_values: usize, lines: &str) -> String {
    format!(
        r#"
[[models]]
id = "{id}"
path = "{}"
{lines}
preprocess = {{ type = "record" }}
postprocess = {{ type = "raw", max_values = {max_values} }}
"#,
        repo(path).display()
    )
}
