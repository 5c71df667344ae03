//! One MQTT connection's plumbing, under every client edgeinfer has: the uplink, the management
//! connection, and the operator's `cmd` and `ota push`.
//!
//! A [`Connection`] owns a rumqttc client and a task that polls its event loop into a bounded
//! queue (the event loop waits while the queue is full). Requests that must wait for room in
//! rumqttc's own queue go through [`Connection::request`], which keeps taking events meanwhile,
//! so the event loop — which must run for that queue to drain — never waits on its reader.
//! [`Connection::close`] sends DISCONNECT and waits for it to leave. [`Backoff`] spaces
//! reconnection attempts, exponentially and with jitter, and [`SessionEnd`] says how a connection
//! ended.

use rumqttc::{AsyncClient, ClientError, ConnectionError, Event, EventLoop, MqttOptions, Outgoing};
use std::collections::VecDeque;
use std::future::Future;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// An event from the event loop, or the error that ended (or interrupted) the connection.
pub type EventResult = Result<Event, ConnectionError>;

/// Events taken while [`Connection::request`] waits, kept for [`Connection::next`]. Past this
/// many the reader is not keeping up at all, and the request fails: its owner treats that like a
/// lost connection, which loses nothing the protocols above cannot recover.
const PENDING_MAX: usize = 1024;

/// What the polling task does after an error.
#[derive(Debug, Clone, Copy)]
pub enum OnError {
    /// Stops: the owner builds a new connection (a clean session, fresh state).
    Stop,
    /// Polls again after a wait growing from `first` to `max` (rumqttc then reconnects with the
    /// same client), until the connection is closed: for operator tools that keep one client.
    Retry { first: Duration, max: Duration },
}

/// Which events the polling task passes on; the others are dropped there, so they cannot fill
/// the queue (errors, connection acknowledgements and DISCONNECT always pass).
pub type Forward = fn(&Event) -> bool;

/// Every event.
pub fn all_events(_: &Event) -> bool {
    true
}

/// A client with its event loop polled by a task of its own.
pub struct Connection {
    client: AsyncClient,
    events: mpsc::Receiver<EventResult>,
    pending: VecDeque<EventResult>,
    poller: JoinHandle<()>,
}

impl Connection {
    /// A client for `options` with room for `requests` queued requests, and a polling task that
    /// passes events on through a queue of `events`. rumqttc connects on the first poll.
    pub fn open(
        options: MqttOptions,
        requests: usize,
        events: usize,
        forward: Forward,
        on_error: OnError,
    ) -> Connection {
        let (client, eventloop) = AsyncClient::new(options, requests);
        let (tx, rx) = mpsc::channel(events);
        let poller = tokio::spawn(poll(eventloop, tx, forward, on_error));
        Connection {
            client,
            events: rx,
            pending: VecDeque::new(),
            poller,
        }
    }

    /// The client, to queue requests with.
    pub fn client(&self) -> &AsyncClient {
        &self.client
    }

    /// The next event; `None` once the polling task has stopped. Cancel-safe.
    pub async fn next(&mut self) -> Option<EventResult> {
        if let Some(event) = self.pending.pop_front() {
            return Some(event);
        }
        self.events.recv().await
    }

    /// Waits for `request` (a publish, subscribe or acknowledgement waiting for room in rumqttc's
    /// queue) while still taking events: each goes to `on_event` if given, else is kept for
    /// [`Connection::next`]; errors are always kept for `next`. Fails when the request cannot be
    /// queued (the event loop is gone), with the connection's error as the reason when there was
    /// one.
    pub async fn request(
        &mut self,
        request: impl Future<Output = Result<(), ClientError>>,
        mut on_event: Option<&mut (dyn FnMut(Event) + Send)>,
    ) -> Result<(), String> {
        tokio::pin!(request);
        let mut error: Option<String> = None;
        loop {
            tokio::select! {
                sent = &mut request => {
                    return sent.map_err(|e| error.unwrap_or_else(|| e.to_string()));
                }
                event = self.events.recv() => match event {
                    None => {
                        return Err(error.unwrap_or_else(|| "the MQTT event loop stopped".into()));
                    }
                    Some(Ok(event)) => match on_event.as_mut() {
                        Some(f) => f(event),
                        None => self.keep(Ok(event))?,
                    },
                    Some(Err(e)) => {
                        error = Some(e.to_string());
                        self.keep(Err(e))?;
                    }
                },
            }
        }
    }

    /// Keeps an event for [`Connection::next`], up to [`PENDING_MAX`] of them.
    fn keep(&mut self, event: EventResult) -> Result<(), String> {
        if self.pending.len() >= PENDING_MAX {
            return Err("events are not being read; reconnecting".into());
        }
        self.pending.push_back(event);
        Ok(())
    }

    /// Sends DISCONNECT and waits up to `wait` for it to be written, then stops polling. What
    /// was queued before it goes out first; anything unacknowledged is the owner's to resend.
    pub async fn close(mut self, wait: Duration) {
        let _ = self.client.try_disconnect();
        let _ = tokio::time::timeout(wait, async {
            while let Some(Ok(event)) = self.next().await {
                if matches!(event, Event::Outgoing(Outgoing::Disconnect)) {
                    break;
                }
            }
        })
        .await;
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.poller.abort();
    }
}

/// Drives the event loop, passing on the events `forward` picks, until the receiver is gone, a
/// DISCONNECT has been written, or (with [`OnError::Stop`]) the first error.
async fn poll(
    mut eventloop: EventLoop,
    tx: mpsc::Sender<EventResult>,
    forward: Forward,
    on_error: OnError,
) {
    let mut retry = match on_error {
        OnError::Stop => None,
        OnError::Retry { first, max } => Some(Backoff::new(first, max)),
    };
    loop {
        match eventloop.poll().await {
            Ok(event) => {
                let disconnected = matches!(event, Event::Outgoing(Outgoing::Disconnect));
                if let (Some(b), Event::Incoming(rumqttc::Packet::ConnAck(_))) =
                    (&mut retry, &event)
                {
                    b.reset();
                }
                let passes = disconnected
                    || matches!(event, Event::Incoming(rumqttc::Packet::ConnAck(_)))
                    || forward(&event);
                if passes && tx.send(Ok(event)).await.is_err() {
                    return;
                }
                if disconnected {
                    return;
                }
            }
            Err(e) => {
                if tx.send(Err(e)).await.is_err() {
                    return;
                }
                match &mut retry {
                    None => return,
                    Some(b) => tokio::time::sleep(b.next_delay()).await,
                }
            }
        }
    }
}

/// How one connection ended.
#[derive(Debug)]
pub enum SessionEnd {
    /// Shutdown was asked for.
    Shutdown,
    /// The connection failed; `connected` says whether it had been up.
    Lost { connected: bool, reason: String },
}

/// Waits between connection attempts: from `min`, doubling up to `max`, each ±20 % so that a
/// fleet does not reconnect in lock-step after a broker restart.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// Starting at `min`.
    pub fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            min,
            max: max.max(min),
            next: min,
        }
    }

    /// Back to the shortest wait (after a connection that worked).
    pub fn reset(&mut self) {
        self.next = self.min;
    }

    /// The wait before the next attempt (jittered), doubling the one after it.
    pub fn next_delay(&mut self) -> Duration {
        let delay = jitter(self.next);
        self.next = (self.next * 2).min(self.max);
        delay
    }

    /// The un-jittered wait the next attempt will get, for logs.
    pub fn current(&self) -> Duration {
        self.next
    }

    /// After a connection of `what` (for logs) to `broker` ended: logs how (a loss at WARN, a
    /// failed attempt at DEBUG), restarts the waits after one that had been up, and waits before
    /// the next attempt. False when it ended with shutdown, or shutdown came during the wait.
    pub async fn after(
        &mut self,
        end: SessionEnd,
        what: &str,
        broker: &str,
        shutdown: &CancellationToken,
    ) -> bool {
        match end {
            SessionEnd::Shutdown => return false,
            SessionEnd::Lost {
                connected: true,
                reason,
            } => {
                self.reset();
                tracing::warn!(connection = what, broker, reason, "MQTT connection lost");
            }
            SessionEnd::Lost { reason, .. } => {
                tracing::debug!(connection = what, broker, reason, "MQTT connection failed");
            }
        }
        self.wait(shutdown).await
    }

    /// Waits before the next attempt; false if `shutdown` came first.
    pub async fn wait(&mut self, shutdown: &CancellationToken) -> bool {
        let delay = self.next_delay();
        tokio::select! {
            _ = shutdown.cancelled() => false,
            _ = tokio::time::sleep(delay) => true,
        }
    }
}

/// `d` × a factor in [0.8, 1.2).
fn jitter(d: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|t| t.subsec_nanos())
        .unwrap_or(0);
    let factor = 0.8 + 0.4 * (nanos % 1000) as f64 / 1000.0;
    d.mul_f64(factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_cap_with_jitter_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(350));
        let mut waits = Vec::new();
        for _ in 0..4 {
            waits.push(b.next_delay());
        }
        let bounds = [100, 200, 350, 350];
        for (w, nominal) in waits.iter().zip(bounds) {
            let ms = w.as_secs_f64() * 1000.0;
            assert!(
                ms >= nominal as f64 * 0.8 - 1e-6 && ms < nominal as f64 * 1.2,
                "{waits:?}"
            );
        }
        b.reset();
        assert_eq!(b.current(), Duration::from_millis(100));
    }

    #[tokio::test]
    async fn a_connection_that_cannot_connect_reports_its_error_and_stops_polling() {
        // A port nothing listens on: the first poll fails, and with OnError::Stop that is all.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let options = MqttOptions::new("t", "127.0.0.1", port);
        let mut c = Connection::open(options, 4, 4, all_events, OnError::Stop);
        assert!(matches!(c.next().await, Some(Err(_))));
        assert!(c.next().await.is_none());
    }
}
