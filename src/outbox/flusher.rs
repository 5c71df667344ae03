//! The outbox's background thread: with `durability = "batch"` it fsyncs what was written at most
//! `flush_interval_ms` ago; in any mode it saves the counters, deletes drained generations, expires
//! records past their TTL, starts a new generation when the newest is full and closes the older
//! generations no longer in use.

use super::{Inner, Shared};
use crate::config::Durability;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tracing::{debug, warn};

/// Housekeeping (state save, drained generations, TTL) runs at most this often.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(1);

pub(super) struct Flusher {
    stop: mpsc::SyncSender<()>,
    thread: JoinHandle<()>,
}

impl Flusher {
    pub fn start(shared: Arc<Shared>) -> Self {
        // Capacity 1: one stop message is all that is ever sent.
        let (stop, stopped) = mpsc::sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("outbox-flush".into())
            .spawn(move || run(&shared, &stopped))
            .expect("cannot start outbox flusher thread");
        Self { stop, thread }
    }

    /// Stops the thread and waits for it.
    pub fn stop(self) {
        let _ = self.stop.try_send(());
        let _ = self.thread.join();
    }
}

fn run(s: &Shared, stopped: &mpsc::Receiver<()>) {
    let interval = match s.config.durability {
        Durability::Batch => Duration::from_millis(s.config.flush_interval_ms),
        Durability::EveryRecord => HOUSEKEEPING_EVERY,
    };
    let mut last_housekeeping = Instant::now();
    loop {
        match stopped.recv_timeout(interval) {
            Ok(()) | Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => {}
        }
        flush_batch(s);
        if last_housekeeping.elapsed() >= HOUSEKEEPING_EVERY {
            last_housekeeping = Instant::now();
            housekeeping(s);
        }
    }
}

/// Fsyncs every generation written to since the last flush, outside the lock so appends go on.
fn flush_batch(s: &Shared) {
    let (dbs, upto) = {
        let mut inner = s.lock();
        if !inner.dirty {
            return;
        }
        inner.dirty = false;
        let dbs = inner.gens.open_dbs();
        (dbs, inner.last_stored)
    };
    // Each handle is dropped before the lock is taken again: a generation closed meanwhile can
    // be opened again only once nothing holds it.
    let failed = dbs.into_iter().find_map(|db| db.flush().err());
    if let Some(e) = failed {
        warn!(error = %e, "Outbox flush failed; retrying");
        s.lock().dirty = true;
        return;
    }
    let mut inner = s.lock();
    if upto > inner.last_durable {
        inner.last_durable = upto;
        if let Some(upto) = upto {
            debug!(target: "edgeinfer::outbox::durable", upto, "Outbox records durable");
        }
    }
}

fn housekeeping(s: &Shared) {
    let mut inner = s.lock();
    let removed = remove_drained(&mut inner);
    match super::reader::sweep_expired(s, &mut inner) {
        Ok(0) => {}
        Ok(n) => debug!(expired = n, "Expired outbox records deleted"),
        Err(e) => warn!(error = %e, "Cannot expire outbox records"),
    }
    s.rotate_if_due(&mut inner);
    let closed = inner.gens.close_idle();
    if inner.state_dirty {
        if let Err(e) = s.save_state(&mut inner) {
            warn!(error = %e, "Cannot save outbox counters");
        }
    }
    drop(inner);
    // A closed or deleted generation frees its caches: hand them back so the daemon's RSS goes
    // down again after a backlog has drained.
    if removed || closed {
        crate::memory::return_freed();
    }
}

/// Deletes every generation but the newest that has no records left; true if any was.
fn remove_drained(inner: &mut Inner) -> bool {
    let newest = inner.gens.newest();
    let drained: Vec<u64> = inner
        .gens
        .iter()
        .filter(|(first, g)| Some(**first) != newest && g.records == 0)
        .map(|(first, _)| *first)
        .collect();
    let any = !drained.is_empty();
    for first in drained {
        if let Some(g) = inner.gens.remove(first) {
            let dir = g.dir.clone();
            drop(g);
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => debug!(generation = %dir.display(), "Drained outbox generation deleted"),
                Err(e) => {
                    warn!(generation = %dir.display(), error = %e, "Cannot delete drained outbox generation")
                }
            }
        }
    }
    any
}
