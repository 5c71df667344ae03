//! The sender's side of a transfer as a state machine, without I/O: which chunks to send when a
//! progress message arrives, and when the transfer is over.
//!
//! Missing lists are acted on only when they answer something the sender sent: a manifest (any
//! `receiving` or `incomplete`) or an `end` marker (`incomplete`). Progress the device sends on
//! its own while chunks are arriving lists chunks that are still on their way, so acting on it
//! would send them twice.

use crate::manage::ota::protocol::{Progress, State};

/// What the sender is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// A manifest was sent; its answer says what to send.
    AwaitManifestAnswer,
    /// Chunks are being sent; `end` follows them.
    Sending,
    /// `end` was sent; an `incomplete` answer lists what is still missing.
    AwaitEndAnswer,
    /// The device has every chunk and is verifying, installing or on trial.
    DeviceWorking,
}

/// How a transfer ended.
#[derive(Debug, Clone, PartialEq)]
pub(in crate::cli) enum Outcome {
    /// Installed, shadowing, committed, or (when not waiting for the commit) activated.
    Succeeded(Progress),
    /// Rejected or rolled back.
    Failed(Progress),
}

/// What to do after a progress message.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Step {
    /// Nothing to send.
    Wait,
    /// Send these chunks, in order, then `end`; call [`Transfer::sent`] when done.
    Send(Vec<u32>),
    /// The transfer is over.
    Done(Outcome),
}

/// Where the sender stands in one transfer.
#[derive(Debug)]
pub(super) struct Transfer {
    chunks: u32,
    wait_for_commit: bool,
    phase: Phase,
}

impl Transfer {
    /// A transfer of `chunks` chunks whose manifest is about to be sent. With `wait_for_commit`
    /// false an `activated` model ends it successfully.
    pub(super) fn new(chunks: u32, wait_for_commit: bool) -> Self {
        Self {
            chunks,
            wait_for_commit,
            phase: Phase::AwaitManifestAnswer,
        }
    }

    /// Whether chunks are being sent.
    pub(super) fn sending(&self) -> bool {
        self.phase == Phase::Sending
    }

    /// A (fresh) manifest was published: its answer will say what is missing. Chunks being sent
    /// go on; their `end` will be answered.
    pub(super) fn manifest_sent(&mut self) {
        if self.phase != Phase::Sending {
            self.phase = Phase::AwaitManifestAnswer;
        }
    }

    /// Every chunk of the last [`Step::Send`] and the `end` marker were published.
    pub(super) fn sent(&mut self) {
        if self.phase == Phase::Sending {
            self.phase = Phase::AwaitEndAnswer;
        }
    }

    /// A progress message of this transfer arrived.
    pub(super) fn progress(&mut self, p: &Progress) -> Step {
        match p.state {
            State::Receiving | State::Incomplete => {
                let answers = match self.phase {
                    Phase::AwaitManifestAnswer => true,
                    Phase::AwaitEndAnswer => p.state == State::Incomplete,
                    Phase::Sending | Phase::DeviceWorking => false,
                };
                if !answers {
                    return Step::Wait;
                }
                let chunks = chunks_in(&p.missing, self.chunks);
                if chunks.is_empty() {
                    return Step::Wait;
                }
                self.phase = Phase::Sending;
                Step::Send(chunks)
            }
            State::ChunkRefused => Step::Wait,
            State::Verifying => {
                self.phase = Phase::DeviceWorking;
                Step::Wait
            }
            State::Activated => {
                self.phase = Phase::DeviceWorking;
                if self.wait_for_commit {
                    Step::Wait
                } else {
                    Step::Done(Outcome::Succeeded(p.clone()))
                }
            }
            State::Installed | State::Shadow | State::Committed => {
                Step::Done(Outcome::Succeeded(p.clone()))
            }
            // Every manifest is signed afresh, so a replay refusal can only be about a stale
            // duplicate of one of them (a broker resending it): the transfer itself goes on.
            State::Rejected if p.code.as_deref() == Some("replayed") => Step::Wait,
            State::Rejected | State::RolledBack => Step::Done(Outcome::Failed(p.clone())),
        }
    }
}

/// The chunks that inclusive `ranges` name, in order and once each, below `chunks`.
pub(super) fn chunks_in(ranges: &[[u32; 2]], chunks: u32) -> Vec<u32> {
    let mut list: Vec<u32> = ranges
        .iter()
        .filter(|[first, _]| *first < chunks)
        .flat_map(|&[first, last]| first..=last.min(chunks.saturating_sub(1)))
        .collect();
    list.sort_unstable();
    list.dedup();
    list
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress(state: State, missing: &[[u32; 2]]) -> Progress {
        let mut p = Progress::new("t", Some("m"), state);
        p.missing = missing.to_vec();
        p
    }

    #[test]
    fn ranges_become_chunks_in_order_once_and_within_the_file() {
        assert_eq!(chunks_in(&[[0, 2], [5, 5]], 10), vec![0, 1, 2, 5]);
        assert_eq!(
            chunks_in(&[[5, 6], [0, 1], [1, 2]], 10),
            vec![0, 1, 2, 5, 6]
        );
        assert_eq!(chunks_in(&[[8, 20], [30, 40]], 10), vec![8, 9]);
        assert_eq!(chunks_in(&[[3, 1]], 10), Vec::<u32>::new());
        assert!(chunks_in(&[[0, 0]], 0).is_empty());
    }

    #[test]
    fn a_fresh_transfer_sends_everything_then_what_the_device_still_misses() {
        let mut t = Transfer::new(100, true);
        let step = t.progress(&progress(State::Receiving, &[[0, 99]]));
        assert_eq!(step, Step::Send((0..100).collect()));
        assert!(t.sending());
        // The device's own progress while chunks arrive does not start a second send...
        assert_eq!(
            t.progress(&progress(State::Receiving, &[[64, 99]])),
            Step::Wait
        );
        t.sent();
        // ...nor once `end` is out: it was sent before the device saw the last chunks.
        assert_eq!(
            t.progress(&progress(State::Receiving, &[[64, 99]])),
            Step::Wait
        );
        // The answer to `end` does.
        let step = t.progress(&progress(State::Incomplete, &[[3, 4], [70, 70]]));
        assert_eq!(step, Step::Send(vec![3, 4, 70]));
        t.sent();
        assert_eq!(t.progress(&progress(State::Verifying, &[])), Step::Wait);
        assert_eq!(t.progress(&progress(State::Activated, &[])), Step::Wait);
        let done = progress(State::Committed, &[]);
        assert_eq!(
            t.progress(&done),
            Step::Done(Outcome::Succeeded(done.clone()))
        );
    }

    #[test]
    fn a_resent_manifest_resumes_from_what_the_device_has() {
        let mut t = Transfer::new(100, true);
        assert!(matches!(
            t.progress(&progress(State::Receiving, &[[0, 99]])),
            Step::Send(_)
        ));
        // Reconnected while sending: the manifest's answer waits for the send to finish.
        t.manifest_sent();
        assert_eq!(
            t.progress(&progress(State::Receiving, &[[40, 99]])),
            Step::Wait
        );
        t.sent();
        // The device restarted and lost `end`; silence, so the manifest goes again.
        t.manifest_sent();
        let step = t.progress(&progress(State::Receiving, &[[10, 12]]));
        assert_eq!(step, Step::Send(vec![10, 11, 12]));
    }

    #[test]
    fn final_states_end_the_transfer() {
        for (state, ok) in [
            (State::Installed, true),
            (State::Shadow, true),
            (State::Committed, true),
            (State::Rejected, false),
            (State::RolledBack, false),
        ] {
            let mut t = Transfer::new(3, true);
            let p = progress(state, &[]).because("code", "reason");
            let want = if ok {
                Outcome::Succeeded(p.clone())
            } else {
                Outcome::Failed(p.clone())
            };
            assert_eq!(t.progress(&p), Step::Done(want), "{state:?}");
        }
        let mut t = Transfer::new(3, false);
        let p = progress(State::Activated, &[]);
        assert_eq!(t.progress(&p), Step::Done(Outcome::Succeeded(p.clone())));
        let mut t = Transfer::new(3, true);
        let replay = progress(State::Rejected, &[]).because("replayed", "seq 1 is not above 2");
        assert_eq!(t.progress(&replay), Step::Wait);
        assert_eq!(t.progress(&progress(State::ChunkRefused, &[])), Step::Wait);
    }
}
