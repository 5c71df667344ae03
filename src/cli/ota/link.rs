//! The MQTT side of a push: one connection, reconnected with backoff; the manifest signed afresh
//! on every (re)send; chunks published by a task of their own while progress is read.

use super::transfer::{Outcome, Step, Transfer};
use super::Prepared;
use crate::cli::operator;
use crate::manage::ota::protocol::{
    topic, Manifest, Progress, State, MANIFEST_COMMAND, PROGRESS_EVERY,
};
use crate::mqtt::options;
use crate::mqtt::session::{all_events, Connection, OnError};
use rumqttc::{AsyncClient, Event, Packet, QoS};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tracing::{info, warn, Instrument};

/// First wait before reconnecting; doubled after each failure up to [`BACKOFF_MAX`].
const BACKOFF_FIRST: Duration = Duration::from_millis(500);
/// Longest wait before reconnecting.
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Silence (no progress, nothing being sent) after which the manifest is sent again: the device
/// may have restarted and lost what it was answering.
const SILENCE: Duration = Duration::from_secs(15);
/// Most chunks sent ahead of what the device says it has: beyond that a broker queues them for
/// a slow device and may drop them (mosquitto keeps 1000 messages per client by default). Several
/// progress intervals, so that sending never waits for a progress message that is not due yet.
const WINDOW: usize = 4 * PROGRESS_EVERY as usize;
/// Room for the topic and headers of a chunk's packet.
const PACKET_OVERHEAD: usize = 4096;
/// Requests queued for the event loop before publishing waits.
const REQUEST_QUEUE: usize = 16;
/// Events waiting for the driver; the event loop waits when it is full.
const EVENT_QUEUE: usize = 64;

/// Sends the manifest and chunks of `p` and follows the device's progress until a final state.
/// Connection errors are retried; only a broken client (its event loop gone) is an error.
pub(in crate::cli) async fn push(p: &Prepared) -> Result<Outcome, String> {
    let mut opts = options::build(
        &p.mqtt,
        &p.address,
        format!("edgeinfer-ota-{}-{}", std::process::id(), p.device),
    );
    opts.set_clean_session(true);
    let max_packet = p
        .mqtt
        .max_packet_bytes
        .max(p.manifest.chunk_size as usize + PACKET_OVERHEAD);
    opts.set_max_packet_size(max_packet, max_packet);
    // Connection errors are passed on and polling goes on after a wait: rumqttc reconnects with
    // the same client, so the chunk sender's clone of it keeps working.
    let mut conn = Connection::open(
        opts,
        REQUEST_QUEUE,
        EVENT_QUEUE,
        all_events,
        OnError::Retry {
            first: BACKOFF_FIRST,
            max: BACKOFF_MAX,
        },
    );
    let client = conn.client().clone();
    // One job at a time: the transfer asks for the next only once the last was sent.
    let (jobs_tx, jobs) = mpsc::channel(1);
    let (sent_tx, sent) = mpsc::channel(1);
    let (received_tx, received) = watch::channel(0);
    let bar = crate::cli::progress::bar(
        p.manifest.size,
        "{prefix} {msg} [{wide_bar}] {bytes}/{total_bytes} acknowledged, {bytes_per_sec}, ETA {eta}",
    );
    bar.set_prefix(p.device.clone());
    let chunks = Chunks {
        bar: bar.clone(),
        client: client.clone(),
        prefix: p.mqtt.topic_prefix.clone(),
        device: p.device.clone(),
        manifest: p.manifest.clone(),
        data: p.data.clone(),
    };
    let sender = tokio::spawn(chunks.serve(jobs, received, sent_tx).in_current_span());
    let result = Driver {
        p,
        client,
        jobs: jobs_tx,
        transfer: Transfer::new(p.manifest.chunks(), p.wait_for_commit),
        received: received_tx,
        rate: None,
        bar: bar.clone(),
    }
    .run(&mut conn, sent)
    .await;
    sender.abort();
    bar.finish_and_clear();
    // Let the disconnect go out before the event loop is dropped.
    conn.close(Duration::from_millis(200)).await;
    result
}

/// Reacts to connection events and progress messages.
struct Driver<'p> {
    p: &'p Prepared,
    client: AsyncClient,
    jobs: mpsc::Sender<Vec<u32>>,
    transfer: Transfer,
    /// Chunks the device has, for the sender's window.
    received: watch::Sender<u32>,
    /// Chunks the device had and when, at its first progress message: the rate's origin.
    rate: Option<(Instant, u32)>,
    /// Bytes the device acknowledged, on a terminal.
    bar: indicatif::ProgressBar,
}

impl Driver<'_> {
    async fn run(
        mut self,
        conn: &mut Connection,
        mut sent: mpsc::Receiver<()>,
    ) -> Result<Outcome, String> {
        let m = &self.p.manifest;
        let progress_topic =
            topic::progress(&self.p.mqtt.topic_prefix, &self.p.device, &m.transfer);
        info!(
            transfer = %m.transfer,
            model = %m.model,
            bytes = m.size,
            chunks = m.chunks(),
            sha256 = %m.sha256,
            "Pushing"
        );
        let mut subscribed = false;
        // Last progress message, manifest sent or send finished: what the silence is counted from.
        let mut last_activity = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                event = conn.next() => match event.ok_or("the MQTT event loop stopped")? {
                    Err(e) => {
                        warn!(error = %e, "No broker connection; retrying");
                        subscribed = false;
                    }
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        info!(broker = %self.p.mqtt.broker, "Connected");
                        let client = self.client.clone();
                        conn.request(client.subscribe(&progress_topic, QoS::AtLeastOnce), None)
                            .await?;
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        subscribed = true;
                        self.send_manifest(conn).await?;
                        last_activity = Instant::now();
                    }
                    Ok(Event::Incoming(Packet::Publish(msg))) if msg.topic == progress_topic => {
                        let progress = match serde_json::from_slice::<Progress>(&msg.payload) {
                            Ok(p) if p.transfer == m.transfer => p,
                            Ok(_) => continue,
                            Err(e) => {
                                warn!(error = %e, "Unreadable progress message");
                                continue;
                            }
                        };
                        last_activity = Instant::now();
                        self.report(&progress);
                        self.received.send_replace(progress.received);
                        match self.transfer.progress(&progress) {
                            Step::Wait => {}
                            Step::Send(chunks) => {
                                info!(
                                    chunks = chunks.len(),
                                    "Sending the chunks the device is missing"
                                );
                                self.jobs
                                    .send(chunks)
                                    .await
                                    .map_err(|_| "the chunk sender stopped")?;
                            }
                            Step::Done(outcome) => return Ok(outcome),
                        }
                    }
                    Ok(_) => {}
                },
                done = sent.recv() => {
                    done.ok_or("the chunk sender stopped")?;
                    self.transfer.sent();
                    last_activity = Instant::now();
                }
                _ = tick.tick() => {
                    let silent = last_activity.elapsed() >= SILENCE;
                    if subscribed && !self.transfer.sending() && silent {
                        info!(
                            silent_s = SILENCE.as_secs(),
                            "No progress from the device; sending the manifest again"
                        );
                        self.send_manifest(conn).await?;
                        last_activity = Instant::now();
                    }
                }
            }
        }
    }

    /// Signs the manifest afresh (new seq and expiry) and publishes it.
    async fn send_manifest(&mut self, conn: &mut Connection) -> Result<(), String> {
        let p = self.p;
        let args = serde_json::to_value(&p.manifest).map_err(|e| e.to_string())?;
        let (_, envelope) = operator::sign(&p.key, &p.device, MANIFEST_COMMAND, "ota", p.ttl, args);
        let payload = serde_json::to_vec(&envelope).map_err(|e| e.to_string())?;
        let topic = topic::manifest(&p.mqtt.topic_prefix, &p.device, &p.manifest.transfer);
        let client = self.client.clone();
        conn.request(
            client.publish(topic, QoS::AtLeastOnce, false, payload),
            None,
        )
        .await?;
        self.transfer.manifest_sent();
        Ok(())
    }

    /// Logs a progress message for the operator.
    fn report(&mut self, progress: &Progress) {
        let m = &self.p.manifest;
        let state = state_name(progress.state);
        match progress.state {
            State::Receiving | State::Incomplete => {
                let (since, first) = *self.rate.get_or_insert((Instant::now(), progress.received));
                let bytes = received_bytes(m, progress.received);
                self.bar.set_position(bytes);
                let new_bytes = bytes.saturating_sub(received_bytes(m, first));
                let secs = since.elapsed().as_secs_f64();
                let rate = if secs > 0.0 {
                    new_bytes as f64 / secs / 1024.0
                } else {
                    0.0
                };
                info!(
                    state,
                    missing_ranges = progress.missing.len(),
                    "Device has {}/{} chunks, {bytes}/{} bytes, {rate:.0} KiB/s",
                    progress.received,
                    progress.chunks,
                    m.size
                );
            }
            State::ChunkRefused => warn!(
                code = progress.code.as_deref().unwrap_or("-"),
                reason = progress.reason.as_deref().unwrap_or("-"),
                "Device refused a chunk"
            ),
            _ => {
                let mut line = format!("Device: {state}");
                if let Some(version) = &progress.version {
                    line.push_str(&format!(", version {version}"));
                }
                if let Some(code) = &progress.code {
                    line.push_str(&format!(" ({code}"));
                    if let Some(reason) = &progress.reason {
                        line.push_str(&format!(": {reason}"));
                    }
                    line.push(')');
                }
                if matches!(progress.state, State::Rejected | State::RolledBack) {
                    warn!("{line}");
                } else {
                    info!("{line}");
                }
            }
        }
    }
}

/// `bytes` over the time since `since`, in KiB/s.
fn rate_kib_s(bytes: u64, since: Instant) -> f64 {
    bytes as f64 / since.elapsed().as_secs_f64().max(1e-3) / 1024.0
}

/// Bytes in the first `chunks` chunks.
fn received_bytes(m: &Manifest, chunks: u32) -> u64 {
    (chunks as u64 * m.chunk_size as u64).min(m.size)
}

/// A state as it is written on the wire.
pub(in crate::cli) fn state_name(state: State) -> String {
    serde_json::to_value(state)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{state:?}"))
}

/// Publishes chunks, in jobs of chunk numbers each followed by `end`.
struct Chunks {
    /// Says how many chunks went out (resent ones counted again), on a terminal.
    bar: indicatif::ProgressBar,
    client: AsyncClient,
    prefix: String,
    device: String,
    manifest: Manifest,
    data: Arc<[u8]>,
}

impl Chunks {
    /// Publishes each job it is given and says when one is done, until either side is dropped.
    /// Keeps at most [`WINDOW`] chunks ahead of the device's count of `received` chunks; if that
    /// count stays still for [`SILENCE`], ends the job early, so that the device's answer to
    /// `end` says what it lacks. Logs a line each time another ~5% of the file's chunks has gone
    /// out.
    async fn serve(
        self,
        mut jobs: mpsc::Receiver<Vec<u32>>,
        mut received: watch::Receiver<u32>,
        sent: mpsc::Sender<()>,
    ) {
        let m = &self.manifest;
        // A line per ~5% of the file's chunks; for files of fewer than 20, only the job's last.
        let step = match m.chunks() {
            n if n < 20 => usize::MAX,
            n => n.div_ceil(20) as usize,
        };
        let mut published = 0u64;
        while let Some(job) = jobs.recv().await {
            let started = Instant::now();
            let base = *received.borrow_and_update();
            let mut bytes = 0u64;
            let mut count = 0;
            for (i, &n) in job.iter().enumerate() {
                match self.window_open(i, base, &mut received).await {
                    Some(true) => {}
                    Some(false) => {
                        info!(
                            sent = i,
                            of = job.len(),
                            "The device reports no new chunks; asking it what it lacks"
                        );
                        break;
                    }
                    None => return,
                }
                let start = n as usize * m.chunk_size as usize;
                let chunk = &self.data[start..start + m.chunk_len(n)];
                bytes += chunk.len() as u64;
                let topic = topic::chunk(&self.prefix, &self.device, &m.transfer, n);
                if self
                    .client
                    .publish(topic, QoS::AtLeastOnce, false, chunk.to_vec())
                    .await
                    .is_err()
                {
                    return;
                }
                count += 1;
                published += 1;
                self.bar
                    .set_message(format!("{published}/{} chunks sent", m.chunks()));
                if (i + 1) % step == 0 && i + 1 < job.len() {
                    info!(
                        "Sent {}/{} chunks, {bytes} bytes, {:.0} KiB/s",
                        i + 1,
                        job.len(),
                        rate_kib_s(bytes, started)
                    );
                }
            }
            let end = topic::end(&self.prefix, &self.device, &m.transfer);
            if self
                .client
                .publish(end, QoS::AtLeastOnce, false, Vec::new())
                .await
                .is_err()
                || sent.send(()).await.is_err()
            {
                return;
            }
            info!(
                "Sent {count} chunks ({bytes} bytes) and the end marker, {:.0} KiB/s",
                rate_kib_s(bytes, started)
            );
        }
    }

    /// Waits until the `i`th chunk of a job started when the device had `base` chunks is within
    /// the window: `Some(true)` then, `Some(false)` if the device's count stayed still for
    /// [`SILENCE`], `None` if the driver is gone.
    async fn window_open(
        &self,
        i: usize,
        base: u32,
        received: &mut watch::Receiver<u32>,
    ) -> Option<bool> {
        loop {
            let acknowledged = received.borrow_and_update().saturating_sub(base) as usize;
            if i < acknowledged + WINDOW {
                return Some(true);
            }
            match tokio::time::timeout(SILENCE, received.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return None,
                Err(_) => return Some(false),
            }
        }
    }
}
