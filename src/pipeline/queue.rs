//! The bounded queue between a model's sensors and its worker thread.
//!
//! One queue per model, fed by all of that model's sensors; each sensor has its own capacity and
//! overflow policy within it, so a fast camera cannot crowd out a slow serial sensor. Frames leave
//! oldest first. Sensors and workers are OS threads, so this is a plain mutex and condition variable.

use super::SensorStats;
use crate::config::{Overflow, QueueConfig};
use crate::frame::Frame;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// Frames waiting for one model's worker.
#[derive(Default)]
pub struct FrameQueue {
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Default)]
struct State {
    frames: VecDeque<Frame>,
    per_sensor: HashMap<Arc<str>, usize>,
    closed: bool,
}

/// The queue was closed (shutdown): the sensor should stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueClosed;

/// A sensor's handle on its model's queue, carrying its capacity, policy and counters.
#[derive(Clone)]
pub struct SensorPort {
    queue: Arc<FrameQueue>,
    sensor: Arc<str>,
    config: QueueConfig,
    /// The sensor's counters.
    pub stats: Arc<SensorStats>,
}

impl FrameQueue {
    /// An empty, open queue.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock leaves only a VecDeque behind: still consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A port for `sensor` with its own capacity and overflow policy.
    pub fn port(self: &Arc<Self>, sensor: Arc<str>, config: QueueConfig) -> SensorPort {
        SensorPort {
            queue: Arc::clone(self),
            sensor,
            config,
            stats: Arc::new(SensorStats::default()),
        }
    }

    /// Next frame, oldest first; blocks while empty. `None` once closed and drained.
    pub fn pop(&self) -> Option<Frame> {
        let mut state = self.lock();
        loop {
            if let Some(frame) = state.frames.pop_front() {
                if let Some(n) = state.per_sensor.get_mut(&frame.sensor) {
                    *n -= 1;
                }
                self.changed.notify_all();
                return Some(frame);
            }
            if state.closed {
                return None;
            }
            state = self.changed.wait(state).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Refuses new frames and wakes everyone; frames already queued are still handed out.
    pub fn close(&self) {
        self.lock().closed = true;
        self.changed.notify_all();
    }

    /// Frames waiting now.
    pub fn len(&self) -> usize {
        self.lock().frames.len()
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl SensorPort {
    /// Queues a frame under this sensor's policy; `Err` once the queue is closed.
    pub fn push(&self, frame: Frame) -> Result<(), QueueClosed> {
        let queue = &self.queue;
        let mut state = queue.lock();
        loop {
            if state.closed {
                return Err(QueueClosed);
            }
            let waiting = state.per_sensor.get(&self.sensor).copied().unwrap_or(0);
            if waiting < self.config.capacity {
                break;
            }
            match self.config.overflow {
                Overflow::Block => {
                    state = queue.changed.wait(state).unwrap_or_else(|p| p.into_inner());
                }
                Overflow::DropNewest => {
                    SensorStats::bump(&self.stats.dropped);
                    return Ok(());
                }
                Overflow::DropOldest => {
                    if let Some(at) = state.frames.iter().position(|f| f.sensor == self.sensor) {
                        state.frames.remove(at);
                        if let Some(n) = state.per_sensor.get_mut(&self.sensor) {
                            *n -= 1;
                        }
                        SensorStats::bump(&self.stats.dropped);
                    }
                }
            }
        }
        *state
            .per_sensor
            .entry(Arc::clone(&self.sensor))
            .or_insert(0) += 1;
        state.frames.push_back(frame);
        queue.changed.notify_all();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Payload;
    use std::time::SystemTime;

    fn frame(sensor: &Arc<str>, seq: u64) -> Frame {
        Frame {
            sensor: Arc::clone(sensor),
            seq,
            captured_at: SystemTime::now(),
            payload: Payload::Record(vec![seq as f64]),
        }
    }

    fn port(q: &Arc<FrameQueue>, name: &str, capacity: usize, overflow: Overflow) -> SensorPort {
        q.port(name.into(), QueueConfig { capacity, overflow })
    }

    #[test]
    fn drop_oldest_keeps_the_latest_frames_and_counts_drops() {
        let q = FrameQueue::new();
        let p = port(&q, "cam", 2, Overflow::DropOldest);
        for seq in 0..5 {
            p.push(frame(&p.sensor, seq)).unwrap();
        }
        assert_eq!(
            p.stats.dropped.load(std::sync::atomic::Ordering::Relaxed),
            3
        );
        q.close();
        let seqs: Vec<u64> = std::iter::from_fn(|| q.pop()).map(|f| f.seq).collect();
        assert_eq!(seqs, vec![3, 4]);
    }

    #[test]
    fn drop_newest_keeps_the_first_frames() {
        let q = FrameQueue::new();
        let p = port(&q, "serial", 2, Overflow::DropNewest);
        for seq in 0..5 {
            p.push(frame(&p.sensor, seq)).unwrap();
        }
        q.close();
        let seqs: Vec<u64> = std::iter::from_fn(|| q.pop()).map(|f| f.seq).collect();
        assert_eq!(seqs, vec![0, 1]);
        assert_eq!(
            p.stats.dropped.load(std::sync::atomic::Ordering::Relaxed),
            3
        );
    }

    #[test]
    fn capacity_is_per_sensor_so_one_sensor_cannot_crowd_out_another() {
        let q = FrameQueue::new();
        let fast = port(&q, "fast", 1, Overflow::DropOldest);
        let slow = port(&q, "slow", 1, Overflow::DropOldest);
        slow.push(frame(&slow.sensor, 0)).unwrap();
        for seq in 0..10 {
            fast.push(frame(&fast.sensor, seq)).unwrap();
        }
        q.close();
        let got: Vec<(String, u64)> = std::iter::from_fn(|| q.pop())
            .map(|f| (f.sensor.to_string(), f.seq))
            .collect();
        assert_eq!(got, vec![("slow".into(), 0), ("fast".into(), 9)]);
    }

    #[test]
    fn block_waits_for_the_worker_and_close_releases_a_blocked_sensor() {
        let q = FrameQueue::new();
        let p = port(&q, "replay", 1, Overflow::Block);
        p.push(frame(&p.sensor, 0)).unwrap();
        let producer = {
            let p = p.clone();
            std::thread::spawn(move || {
                let first = p.push(frame(&p.sensor, 1));
                let second = p.push(frame(&p.sensor, 2));
                (first, second)
            })
        };
        assert_eq!(q.pop().unwrap().seq, 0);
        // The producer's first push now fits; its second blocks until close.
        while q.is_empty() {
            std::thread::yield_now();
        }
        q.close();
        let (first, second) = producer.join().unwrap();
        assert_eq!(first, Ok(()));
        assert_eq!(second, Err(QueueClosed));
        assert_eq!(q.pop().unwrap().seq, 1);
        assert!(q.pop().is_none());
    }
}
