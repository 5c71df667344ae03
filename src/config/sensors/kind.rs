//! What a sensor kind's settings tell the rest of the daemon. Each kind implements [`SensorKind`]
//! once, in its own file beside this one; `sensor_kinds!` in `mod.rs` lists the kinds.

use super::QueueConfig;
use crate::config::ConfigError;
use crate::frame::FrameKind;
use serde::de::DeserializeOwned;
use std::path::PathBuf;

/// A sensor kind: the settings of one `type` of `[[sensors]]` table.
pub trait SensorKind: SensorFacts + DeserializeOwned {
    /// The `type` as written in the config.
    const TYPE: &'static str;
}

/// The facts about a sensor's settings that do not depend on which kind it is.
pub trait SensorFacts {
    /// Kind of frames it produces; `None` when that cannot be known yet (a recording whose file
    /// cannot be read: `validate` reports that).
    fn frame_kind(&self) -> Option<FrameKind>;

    /// The queue a sensor gets when its config has none. Files wait rather than lose frames (a
    /// file has no deadline); live sources never wait, so latency stays bounded.
    fn default_queue(&self) -> QueueConfig;

    /// Frames per second, or `None` for as fast as the pipeline takes them (or as fast as the
    /// device delivers them).
    fn rate(&self) -> Option<f64> {
        None
    }

    /// Whether the source starts again at its end.
    fn looping(&self) -> bool {
        false
    }

    /// Whether frames are paced by the timestamps they carry (a recording replayed in real time).
    fn paced_by_timestamps(&self) -> bool {
        false
    }

    /// Samples per window, for audio sources, which must match the model's input length.
    fn window(&self) -> Option<usize> {
        None
    }

    /// Paths in the settings, for resolving them against the config file's folder.
    fn paths_mut(&mut self) -> Vec<&mut PathBuf> {
        Vec::new()
    }

    /// Every problem of these settings, each with its key path under `path`.
    fn validate(&self, path: &str, errors: &mut Vec<ConfigError>);
}

/// A queue that waits: for file sources, where every frame counts and none has a deadline.
pub(super) fn file_queue() -> QueueConfig {
    QueueConfig {
        capacity: 4,
        overflow: super::Overflow::Block,
    }
}

/// A queue of `capacity` that drops the oldest frame: for live sources, whose latency must stay
/// bounded.
pub(super) fn live_queue(capacity: usize) -> QueueConfig {
    QueueConfig {
        capacity,
        overflow: super::Overflow::DropOldest,
    }
}

/// The facts every file replay shares, from its `path`, `rate` and `loop` keys, and a queue that
/// waits.
macro_rules! file_replay_facts {
    () => {
        fn default_queue(&self) -> super::QueueConfig {
            super::kind::file_queue()
        }

        fn rate(&self) -> Option<f64> {
            self.rate
        }

        fn looping(&self) -> bool {
            self.looping
        }

        fn paths_mut(&mut self) -> Vec<&mut std::path::PathBuf> {
            vec![&mut self.path]
        }
    };
}
pub(super) use file_replay_facts;
