//! The sensors of a running daemon, each on its thread with its own stop token, so that one can
//! be restarted (closed, reopened, started again) while the others and the pipeline carry on.

use super::{open, run_capture, FrameSource, SensorError};
use crate::config::SourceConfig;
use crate::pipeline::SensorPort;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use tokio_util::sync::CancellationToken;

/// One running sensor.
struct Running {
    source: SourceConfig,
    port: SensorPort,
    stop: CancellationToken,
    thread: Option<JoinHandle<()>>,
}

/// Why a sensor could not be restarted.
#[derive(Debug, thiserror::Error)]
pub enum RestartError {
    /// No sensor has that id.
    #[error("no sensor \"{0}\"")]
    Unknown(String),
    /// The daemon is stopping.
    #[error("the daemon is stopping")]
    Stopping,
    /// The source could not be opened again.
    #[error("sensor \"{sensor}\": {source}")]
    Open {
        sensor: String,
        #[source]
        source: SensorError,
    },
    /// Its thread could not be started.
    #[error("sensor \"{sensor}\": cannot start thread: {source}")]
    Thread {
        sensor: String,
        #[source]
        source: std::io::Error,
    },
}

/// Every sensor of the daemon, by id.
pub struct Sensors {
    shutdown: CancellationToken,
    running: Mutex<BTreeMap<Arc<str>, Running>>,
}

impl Sensors {
    /// No sensors yet; each one's token is a child of `shutdown`.
    pub fn new(shutdown: CancellationToken) -> Self {
        Self {
            shutdown,
            running: Mutex::new(BTreeMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<Arc<str>, Running>> {
        // Entries are replaced whole: consistent even after a panic elsewhere.
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts an opened source on its own thread.
    pub fn start(
        &self,
        id: Arc<str>,
        config: SourceConfig,
        opened: Box<dyn FrameSource>,
        settings: super::CaptureSettings,
        port: SensorPort,
    ) -> std::io::Result<()> {
        let stop = self.shutdown.child_token();
        let thread = spawn(
            Arc::clone(&id),
            opened,
            settings,
            port.clone(),
            stop.clone(),
        )?;
        self.lock().insert(
            id,
            Running {
                source: config,
                port,
                stop,
                thread: Some(thread),
            },
        );
        Ok(())
    }

    /// Ids of the sensors.
    pub fn ids(&self) -> Vec<Arc<str>> {
        self.lock().keys().cloned().collect()
    }

    /// Stops the sensor, waits for its thread, opens its source again and starts it. Blocks:
    /// call it off the async reactor. Frame numbers start again from 0.
    pub fn restart(&self, id: &str) -> Result<(), RestartError> {
        let (stop, thread) = {
            let mut running = self.lock();
            let entry = running
                .get_mut(id)
                .ok_or_else(|| RestartError::Unknown(id.to_string()))?;
            (entry.stop.clone(), entry.thread.take())
        };
        stop.cancel();
        if let Some(t) = thread {
            let _ = t.join();
        }
        if self.shutdown.is_cancelled() {
            return Err(RestartError::Stopping);
        }
        let mut running = self.lock();
        let (key, entry) = running
            .get_key_value(id)
            .ok_or_else(|| RestartError::Unknown(id.to_string()))?;
        let key = Arc::clone(key);
        let (opened, settings) = open(&entry.source).map_err(|source| RestartError::Open {
            sensor: id.to_string(),
            source,
        })?;
        let stop = self.shutdown.child_token();
        let thread = spawn(
            Arc::clone(&key),
            opened,
            settings,
            entry.port.clone(),
            stop.clone(),
        )
        .map_err(|source| RestartError::Thread {
            sensor: id.to_string(),
            source,
        })?;
        if let Some(entry) = running.get_mut(&key) {
            entry.stop = stop;
            entry.thread = Some(thread);
        }
        Ok(())
    }

    /// Takes every sensor thread, for joining at shutdown.
    pub fn take_threads(&self) -> Vec<JoinHandle<()>> {
        self.lock()
            .values_mut()
            .filter_map(|r| r.thread.take())
            .collect()
    }
}

fn spawn(
    id: Arc<str>,
    source: Box<dyn FrameSource>,
    settings: super::CaptureSettings,
    port: SensorPort,
    stop: CancellationToken,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("sensor-{id}"))
        .spawn(move || run_capture(id, source, settings, port, stop))
}
