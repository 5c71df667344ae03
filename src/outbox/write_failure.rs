//! Writes that fail (disk full, I/O error): sled refuses every later operation on a database
//! after one, so the failing generation is closed, appends fail fast and are counted, and the
//! store is tried again at most once a second until it takes records again.

use super::generation::{self, Generation};
use super::{Inner, OutboxError, Shared};
use std::time::{Duration, Instant};
use tracing::{error, info};

/// The failed generation, closed, and when to try again.
pub(super) struct Broken {
    first_seq: u64,
    reason: String,
    retry_at: Instant,
}

/// How often writes are retried after a failure.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);

impl Shared {
    /// Fails fast while writes are failing, retrying at most once a second.
    pub(super) fn check_writable(&self, inner: &mut Inner) -> Result<(), OutboxError> {
        if inner.broken.is_none() && inner.gens.is_empty() {
            if let Err(reason) = self.new_generation(inner) {
                self.count_write_error(inner);
                return Err(OutboxError::Unavailable(reason));
            }
        }
        let Some(broken) = &inner.broken else {
            return Ok(());
        };
        if Instant::now() < broken.retry_at {
            let reason = broken.reason.clone();
            self.count_write_error(inner);
            return Err(OutboxError::Unavailable(reason));
        }
        let first = broken.first_seq;
        let path = self.dir.join(generation::dir_name(first));
        // The failed generation again (its durable records are in it); failing that, a new one (the
        // old one is picked up again at the next start).
        let reopened = Generation::open(&path, inner.gens.newest_settings(), false)
            .map(|(g, _)| {
                inner.gens.insert(first, g);
            })
            .or_else(|_| self.new_generation(inner));
        match reopened {
            Ok(()) => {
                inner.recount();
                inner.broken = None;
                info!(lost = inner.counters.write_errors, "Outbox writable again");
                Ok(())
            }
            Err(reason) => {
                if let Some(b) = inner.broken.as_mut() {
                    b.retry_at = Instant::now() + RETRY_AFTER_FAILURE;
                    b.reason = reason.clone();
                }
                self.count_write_error(inner);
                Err(OutboxError::Unavailable(reason))
            }
        }
    }

    pub(super) fn count_write_error(&self, inner: &mut Inner) {
        inner.counters.write_errors += 1;
        inner.state_dirty = true;
        if inner.counters.write_errors.is_power_of_two() {
            error!(
                lost = inner.counters.write_errors,
                "Outbox still cannot store records; predictions are being lost"
            );
        }
    }

    /// A write to the newest generation failed: sled refuses every later operation on that
    /// database, so it is closed and reopened later (its durable records are kept).
    pub(super) fn write_failed(&self, inner: &mut Inner, reason: String) {
        let Some(first) = inner.gens.newest() else {
            return;
        };
        if let Some(g) = inner.gens.remove(first) {
            inner.records = inner.records.saturating_sub(g.records);
            inner.bytes = inner.bytes.saturating_sub(g.bytes);
        }
        error!(reason, "Outbox write failed (disk full or I/O error); retrying every second, predictions meanwhile are lost and counted");
        inner.broken = Some(Broken {
            first_seq: first,
            reason,
            retry_at: Instant::now() + RETRY_AFTER_FAILURE,
        });
        self.count_write_error(inner);
    }
}
