//! What operator and device say to each other during a model transfer.
//!
//! Topics, under `{prefix}/{device}/ota/{transfer}/`:
//! - `manifest` (in): a signed command named `ota` (the same envelope, signature, expiry and
//!   replay checks as every command) whose `args` are a [`Manifest`]. Sending it again with a
//!   fresh signature resumes a transfer: the device answers with what it is missing.
//! - `chunk/{n}` (in): bytes `n * chunk_size ..` of the model file, raw. Chunks are not signed:
//!   the file they make is checked against the manifest's size and sha256.
//! - `end` (in, any payload): the sender has sent every chunk; the device answers with what is
//!   still missing, if anything.
//! - `progress` (out): a [`Progress`] after the manifest, every [`PROGRESS_EVERY`] chunks, on
//!   `end`, on reconnection while a transfer is pending, and at every later step.

use serde::{Deserialize, Serialize};

/// Name under which a manifest is signed (the `command` field of its payload).
pub const MANIFEST_COMMAND: &str = "ota";

/// A progress message is sent at least every this many chunks received.
pub const PROGRESS_EVERY: u32 = 64;

/// Most missing ranges listed in one progress message.
pub const MISSING_RANGES: usize = 64;

/// Smallest and largest chunk sizes accepted.
pub const CHUNK_SIZES: std::ops::RangeInclusive<u32> = 1024..=1024 * 1024;

/// What happens once the model is verified and installed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// Swap it in on trial; committed after it has served well, rolled back otherwise.
    #[default]
    Active,
    /// Run it beside the active model on the same frames and report their agreement.
    Shadow,
    /// Keep it installed; `activate-model` switches to it later.
    None,
}

/// A model the operator sends, signed as the `args` of an `ota` command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Transfer id: 1 to 64 of `[A-Za-z0-9_.-]`; also the topic level.
    pub transfer: String,
    /// The configured model it replaces.
    pub model: String,
    /// The operator's name for this version (shown in status and list-models).
    #[serde(default)]
    pub label: Option<String>,
    /// File size in bytes.
    pub size: u64,
    /// sha256 of the file, hex.
    pub sha256: String,
    /// Bytes per chunk (the last one may be shorter).
    pub chunk_size: u32,
    /// What to do once installed.
    #[serde(default)]
    pub activate: Activation,
    /// Expected outputs on a known input, checked before the model serves.
    #[serde(default)]
    pub golden: Option<Golden>,
}

/// A known input and the outputs the model must give on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Golden {
    /// The frame input as an .npy file, base64.
    pub input: String,
    /// Expected outputs in graph order as .npy files, base64 (a prefix of the outputs may be
    /// given).
    pub outputs: Vec<String>,
    /// Largest accepted `|got - expected| / max(|expected|, 1)`.
    #[serde(default = "default_tolerance")]
    pub tolerance: f32,
}

fn default_tolerance() -> f32 {
    1e-4
}

impl Manifest {
    /// Number of chunks.
    pub fn chunks(&self) -> u32 {
        if self.chunk_size == 0 {
            return 0;
        }
        self.size.div_ceil(self.chunk_size as u64) as u32
    }

    /// Length chunk `n` must have.
    pub fn chunk_len(&self, n: u32) -> usize {
        let start = n as u64 * self.chunk_size as u64;
        (self.size.saturating_sub(start)).min(self.chunk_size as u64) as usize
    }

    /// Every problem of the manifest itself (not of the device's state).
    pub fn problems(&self, max_size: u64) -> Vec<String> {
        let mut problems = Vec::new();
        if !valid_transfer_id(&self.transfer) {
            problems.push(format!(
                "transfer id \"{}\" must be 1 to 64 of A-Z a-z 0-9 _ . -",
                self.transfer
            ));
        }
        if self.size == 0 {
            problems.push("size is 0".into());
        } else if self.size > max_size {
            problems.push(format!(
                "size {} is above this device's limit of {max_size} bytes",
                self.size
            ));
        }
        if self.sha256.len() != 64 || !self.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            problems.push("sha256 must be 64 hex digits".into());
        }
        if !CHUNK_SIZES.contains(&self.chunk_size) {
            problems.push(format!(
                "chunk_size {} is outside {}..={}",
                self.chunk_size,
                CHUNK_SIZES.start(),
                CHUNK_SIZES.end()
            ));
        }
        if let Some(g) = &self.golden {
            if !(g.tolerance.is_finite() && g.tolerance >= 0.0) {
                problems.push("golden.tolerance must be a finite number ≥ 0".into());
            }
        }
        problems
    }
}

/// Whether `id` can be a transfer id (and so a topic level and a folder name).
pub fn valid_transfer_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Where a transfer stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Manifest accepted; chunks are being received (`missing` lists what is still needed).
    Receiving,
    /// The sender said it was done but chunks are missing (listed).
    Incomplete,
    /// One chunk was refused (`code`, `reason`); the transfer goes on.
    ChunkRefused,
    /// Every chunk is in; checking size, sha256, loading and the golden input.
    Verifying,
    /// Verified and stored beside the running version; nothing switched (`activate = "none"`).
    Installed,
    /// Serving on trial.
    Activated,
    /// Running beside the active model (`activate = "shadow"`).
    Shadow,
    /// It served well and is now the version kept across restarts.
    Committed,
    /// It failed on trial; the previous version serves again (`code`, `reason`).
    RolledBack,
    /// The transfer was refused and its data deleted (`code`, `reason`); nothing changed.
    Rejected,
}

/// A progress message on `.../ota/{transfer}/progress`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// Transfer id.
    pub transfer: String,
    /// Model id, when known.
    #[serde(default)]
    pub model: Option<String>,
    /// Where it stands.
    pub state: State,
    /// Chunks received so far.
    #[serde(default)]
    pub received: u32,
    /// Chunks in all.
    #[serde(default)]
    pub chunks: u32,
    /// Missing chunks as inclusive `[first, last]` ranges (at most [`MISSING_RANGES`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<[u32; 2]>,
    /// The new model's version (first 12 hex digits of its sha256).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Short, stable name of a refusal or rollback reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// The reason in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Progress {
    /// A message with only a state.
    pub fn new(transfer: &str, model: Option<&str>, state: State) -> Self {
        Self {
            transfer: transfer.to_string(),
            model: model.map(str::to_string),
            state,
            received: 0,
            chunks: 0,
            missing: Vec::new(),
            version: None,
            code: None,
            reason: None,
        }
    }

    /// The same with a reason.
    pub fn because(mut self, code: &str, reason: impl Into<String>) -> Self {
        self.code = Some(code.to_string());
        self.reason = Some(reason.into());
        self
    }

    /// Whether the transfer is over (nothing more will be sent about it).
    pub fn is_final(&self) -> bool {
        matches!(
            self.state,
            State::Installed
                | State::Shadow
                | State::Committed
                | State::RolledBack
                | State::Rejected
        )
    }
}

/// Topics of a transfer.
pub mod topic {
    /// `.../ota/{transfer}/manifest`.
    pub fn manifest(prefix: &str, device: &str, transfer: &str) -> String {
        format!("{prefix}/{device}/ota/{transfer}/manifest")
    }
    /// `.../ota/{transfer}/chunk/{n}`.
    pub fn chunk(prefix: &str, device: &str, transfer: &str, n: u32) -> String {
        format!("{prefix}/{device}/ota/{transfer}/chunk/{n}")
    }
    /// `.../ota/{transfer}/end`.
    pub fn end(prefix: &str, device: &str, transfer: &str) -> String {
        format!("{prefix}/{device}/ota/{transfer}/end")
    }
    /// `.../ota/{transfer}/progress`.
    pub fn progress(prefix: &str, device: &str, transfer: &str) -> String {
        format!("{prefix}/{device}/ota/{transfer}/progress")
    }
    /// The filters a device subscribes to (its own tree only; not its own progress).
    pub fn device_filters(prefix: &str, device: &str) -> [String; 3] {
        [
            format!("{prefix}/{device}/ota/+/manifest"),
            format!("{prefix}/{device}/ota/+/chunk/+"),
            format!("{prefix}/{device}/ota/+/end"),
        ]
    }

    /// What an incoming topic of this device's OTA tree is.
    #[derive(Debug, PartialEq, Eq)]
    pub enum Incoming<'t> {
        /// A manifest for this transfer.
        Manifest(&'t str),
        /// Chunk `n` (as text; parsed by the receiver, which reports a bad number).
        Chunk(&'t str, &'t str),
        /// The sender's end marker.
        End(&'t str),
    }

    /// Parses a topic under `{prefix}/{device}/ota/`; `None` for anything else.
    pub fn parse<'t>(prefix: &str, device: &str, topic: &'t str) -> Option<Incoming<'t>> {
        let rest = topic
            .strip_prefix(prefix)?
            .strip_prefix('/')?
            .strip_prefix(device)?
            .strip_prefix("/ota/")?;
        let mut parts = rest.split('/');
        let transfer = parts.next().filter(|t| !t.is_empty())?;
        let incoming = match (parts.next()?, parts.next(), parts.next()) {
            ("manifest", None, None) => Incoming::Manifest(transfer),
            ("end", None, None) => Incoming::End(transfer),
            ("chunk", Some(n), None) => Incoming::Chunk(transfer, n),
            _ => return None,
        };
        Some(incoming)
    }
}

/// Missing chunks of a received-map as inclusive ranges, at most `limit` of them.
pub fn missing_ranges(received: &[bool], limit: usize) -> Vec<[u32; 2]> {
    let mut ranges = Vec::new();
    let mut start = None;
    for (i, &got) in received.iter().enumerate() {
        match (got, start) {
            (false, None) => start = Some(i as u32),
            (true, Some(s)) => {
                ranges.push([s, i as u32 - 1]);
                start = None;
            }
            _ => {}
        }
        if ranges.len() == limit {
            return ranges;
        }
    }
    if let Some(s) = start {
        ranges.push([s, received.len() as u32 - 1]);
    }
    ranges
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_of_other_devices_and_other_levels_are_not_ota_messages() {
        use topic::{parse, Incoming};
        assert_eq!(
            parse("p", "d1", "p/d1/ota/t1/manifest"),
            Some(Incoming::Manifest("t1"))
        );
        assert_eq!(
            parse("p", "d1", "p/d1/ota/t1/chunk/7"),
            Some(Incoming::Chunk("t1", "7"))
        );
        assert_eq!(
            parse("p", "d1", "p/d1/ota/t1/end"),
            Some(Incoming::End("t1"))
        );
        assert_eq!(parse("p", "d1", "p/d2/ota/t1/manifest"), None);
        assert_eq!(parse("p", "d1", "p/d11/ota/t1/manifest"), None);
        assert_eq!(parse("p", "d1", "p/d1/ota/t1/progress"), None);
        assert_eq!(parse("p", "d1", "p/d1/ota/t1/chunk/7/x"), None);
        assert_eq!(parse("p", "d1", "p/d1/ota//manifest"), None);
    }

    #[test]
    fn chunk_lengths_cover_the_file_exactly() {
        let m = Manifest {
            transfer: "t".into(),
            model: "m".into(),
            label: None,
            size: 2500,
            sha256: "0".repeat(64),
            chunk_size: 1024,
            activate: Activation::Active,
            golden: None,
        };
        assert_eq!(m.chunks(), 3);
        assert_eq!(
            (0..3).map(|n| m.chunk_len(n)).collect::<Vec<_>>(),
            [1024, 1024, 452]
        );
        assert_eq!(m.chunk_len(3), 0);
        assert!(m.problems(1 << 20).is_empty());
        assert_eq!(m.problems(100).len(), 1);
    }

    #[test]
    fn transfer_ids_cannot_escape_their_folder() {
        assert!(valid_transfer_id("v2-2026.11_a"));
        for bad in ["", ".", "..", "a/b", "a+b", "#", &"x".repeat(65)] {
            assert!(!valid_transfer_id(bad), "{bad}");
        }
    }

    #[test]
    fn missing_ranges_are_inclusive_and_capped() {
        let map = [true, false, false, true, false, true, true, false];
        assert_eq!(missing_ranges(&map, 10), vec![[1, 2], [4, 4], [7, 7]]);
        assert_eq!(missing_ranges(&map, 2), vec![[1, 2], [4, 4]]);
        assert!(missing_ranges(&[true; 4], 10).is_empty());
    }
}
