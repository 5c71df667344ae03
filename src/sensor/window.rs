//! Sliding windows over a stream of samples: `window` samples, a new one every `hop` samples.

use std::collections::VecDeque;

/// Cuts a sample stream into windows. The first window needs `window` samples, each later one
/// `hop` more; with `hop > window` the samples between windows are skipped.
#[derive(Debug, Clone)]
pub struct Windower {
    window: usize,
    hop: usize,
    buffer: VecDeque<f32>,
    /// Samples still to take before the next window is complete.
    until_next: usize,
}

impl Windower {
    /// Windows of `window` samples every `hop` samples (both at least 1).
    pub fn new(window: usize, hop: usize) -> Self {
        Self {
            window,
            hop,
            buffer: VecDeque::with_capacity(window),
            until_next: window,
        }
    }

    /// Takes one sample; returns a window when this sample completes one.
    pub fn push(&mut self, sample: f32) -> Option<Vec<f32>> {
        if self.buffer.len() == self.window {
            self.buffer.pop_front();
        }
        self.buffer.push_back(sample);
        self.until_next -= 1;
        if self.until_next > 0 {
            return None;
        }
        self.until_next = self.hop;
        Some(self.buffer.iter().copied().collect())
    }

    /// Forgets everything, as if new (after a rewind or a reconnect: no window spans a gap).
    pub fn reset(&mut self) {
        self.buffer.clear();
        self.until_next = self.window;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn windows(window: usize, hop: usize, n: usize) -> Vec<Vec<f32>> {
        let mut w = Windower::new(window, hop);
        (0..n).filter_map(|i| w.push(i as f32)).collect()
    }

    #[test]
    fn overlapping_disjoint_and_gapped_windows() {
        assert_eq!(
            windows(4, 2, 8),
            vec![
                vec![0., 1., 2., 3.],
                vec![2., 3., 4., 5.],
                vec![4., 5., 6., 7.]
            ]
        );
        assert_eq!(windows(2, 2, 5), vec![vec![0., 1.], vec![2., 3.]]);
        assert_eq!(
            windows(2, 4, 10),
            vec![vec![0., 1.], vec![4., 5.], vec![8., 9.]]
        );
    }

    #[test]
    fn reset_starts_a_fresh_first_window() {
        let mut w = Windower::new(3, 1);
        assert_eq!(w.push(1.0), None);
        w.reset();
        assert_eq!(w.push(2.0), None);
        assert_eq!(w.push(3.0), None);
        assert_eq!(w.push(4.0), Some(vec![2.0, 3.0, 4.0]));
        assert_eq!(w.push(5.0), Some(vec![3.0, 4.0, 5.0]));
    }
}
