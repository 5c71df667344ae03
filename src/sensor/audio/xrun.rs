//! Capture overruns (xruns) that the stream recovers from in place.
//!
//! When the capture thread falls behind, ALSA's buffer overflows and the samples that did not fit
//! are gone. cpal reports that as `ErrorKind::Xrun` and restarts the stream itself (prepare,
//! start), so the device is not lost: the sensor goes on, and what was lost is counted. How much
//! was lost is read from the capture timestamps: the first callback after the xrun starts later
//! than the last one ended by the length of the gap.

use cpal::StreamInstant;

/// Where the captured signal is up to, in the stream's own clock.
#[derive(Debug)]
pub struct CaptureClock {
    rate: f64,
    /// The capture instant just after the last frame delivered.
    end: Option<StreamInstant>,
}

impl CaptureClock {
    /// A clock for a stream of `rate` frames per second.
    pub fn new(rate: u32) -> CaptureClock {
        CaptureClock {
            rate: f64::from(rate.max(1)),
            end: None,
        }
    }

    /// Records a callback of `frames` frames captured at `capture`, and returns the frames lost
    /// before it: the gap since the last callback when an xrun came in between (at least one
    /// frame: an overrun always loses some), nothing otherwise (callbacks may jitter).
    pub fn advance(&mut self, capture: StreamInstant, frames: usize, after_xrun: bool) -> u64 {
        let lost = match (after_xrun, self.end) {
            (false, _) => 0,
            (true, None) => 1,
            (true, Some(end)) => {
                let gap = capture.duration_since(end).as_secs_f64() * self.rate;
                (gap.round() as u64).max(1)
            }
        };
        let length = std::time::Duration::from_secs_f64(frames as f64 / self.rate);
        self.end = capture.checked_add(length).or(self.end);
        lost
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(ms: u64) -> StreamInstant {
        StreamInstant::ZERO
            .checked_add(Duration::from_millis(ms))
            .unwrap()
    }

    #[test]
    fn only_a_gap_after_an_xrun_counts_as_lost() {
        let mut clock = CaptureClock::new(16_000);
        // 160 frames = 10 ms per callback, back to back.
        assert_eq!(clock.advance(at(0), 160, false), 0);
        assert_eq!(clock.advance(at(10), 160, false), 0);
        // Late without an xrun: jitter, nothing lost.
        assert_eq!(clock.advance(at(25), 160, false), 0);
        // 250 ms missing between the end of the last callback (35 ms) and this one.
        assert_eq!(clock.advance(at(285), 160, true), 4000);
        assert_eq!(clock.advance(at(295), 160, false), 0);
    }

    #[test]
    fn an_xrun_without_a_measurable_gap_still_counts() {
        let mut clock = CaptureClock::new(48_000);
        assert_eq!(clock.advance(at(0), 480, true), 1);
        assert_eq!(clock.advance(at(10), 480, true), 1);
    }
}
