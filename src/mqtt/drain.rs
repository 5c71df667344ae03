//! What the uplink publishes next: live predictions interleaved with the backlog, grouped into
//! batches, and the bookkeeping of publishes in flight.
//!
//! When a connection starts, everything already in the outbox is the backlog: it is sent highest
//! priority first and oldest first, each prediction marked `"historical": true`. Predictions stored
//! after that are live. Each round of publishes gives `live_share` of the free window to live
//! predictions first, the rest to the backlog, and whatever one lane leaves unused to the other, so
//! a long backlog never holds live data back by more than a few round trips.

use crate::outbox::{Cursor, Outbox, OutboxError, RecordKey};
use std::collections::{HashMap, VecDeque};

/// One MQTT message to publish.
pub(super) struct Message {
    pub sensor: String,
    pub payload: Vec<u8>,
    pub keys: Vec<RecordKey>,
}

/// A record too large for any message.
pub(super) struct Oversized {
    pub key: RecordKey,
    pub sensor: String,
    pub bytes: usize,
}

/// Limits of a message.
#[derive(Clone, Copy)]
pub(super) struct Batching {
    /// Records per message at most.
    pub records: usize,
    /// Payload bytes per message at most, for a given topic length.
    pub max_packet: usize,
}

impl Batching {
    /// Payload bytes that fit beside a topic of `topic_len` bytes: fixed header (≤ 5), topic length
    /// (2) and packet id (2) besides topic and payload.
    fn room(&self, topic_len: usize) -> usize {
        self.max_packet.saturating_sub(9 + topic_len)
    }
}

/// The two lanes of one connection and the publishes in flight on it.
pub(super) struct Flight {
    live: Cursor,
    backlog: Cursor,
    /// Queued to rumqttc, packet id not known yet, in queue order.
    queued: VecDeque<Vec<RecordKey>>,
    /// Written, awaiting PUBACK: packet id → records.
    written: HashMap<u16, Vec<RecordKey>>,
}

impl Flight {
    /// A connection starting when `last` is the newest stored record.
    pub fn new(last: Option<u64>) -> Self {
        Self {
            live: Cursor::after(last),
            backlog: Cursor::up_to(last),
            queued: VecDeque::new(),
            written: HashMap::new(),
        }
    }

    /// Messages queued or written and not yet acknowledged.
    pub fn in_flight(&self) -> usize {
        self.queued.len() + self.written.len()
    }

    pub fn queued(&mut self, keys: Vec<RecordKey>) {
        self.queued.push_back(keys);
    }

    pub fn written(&mut self, pkid: u16) {
        if let Some(keys) = self.queued.pop_front() {
            self.written.insert(pkid, keys);
        }
    }

    pub fn acked(&mut self, pkid: u16) -> Option<Vec<RecordKey>> {
        self.written.remove(&pkid)
    }

    /// Up to `room` messages: live first up to their share, then backlog, then live again.
    pub fn next_messages(
        &mut self,
        outbox: &Outbox,
        room: usize,
        live_share: f64,
        batching: Batching,
        topic_len: &dyn Fn(&str) -> usize,
        oversized: &mut Vec<Oversized>,
    ) -> Result<Vec<Message>, OutboxError> {
        let live_room = ((room as f64 * live_share).ceil() as usize).min(room);
        let mut out = take(
            outbox,
            &mut self.live,
            live_room,
            false,
            batching,
            topic_len,
            oversized,
        )?;
        let backlog_room = room - out.len();
        out.extend(take(
            outbox,
            &mut self.backlog,
            backlog_room,
            true,
            batching,
            topic_len,
            oversized,
        )?);
        let rest = room - out.len();
        out.extend(take(
            outbox,
            &mut self.live,
            rest,
            false,
            batching,
            topic_len,
            oversized,
        )?);
        Ok(out)
    }
}

/// Up to `messages` messages from one lane; records read but not sent are unread again.
fn take(
    outbox: &Outbox,
    cursor: &mut Cursor,
    messages: usize,
    historical: bool,
    batching: Batching,
    topic_len: &dyn Fn(&str) -> usize,
    oversized: &mut Vec<Oversized>,
) -> Result<Vec<Message>, OutboxError> {
    if messages == 0 {
        return Ok(Vec::new());
    }
    let records = outbox.pending(cursor, messages * batching.records)?;
    let mut out: Vec<Message> = Vec::new();
    // Once one record is left for the next round, so is everything after it: the cursor goes back
    // to the first of them, and nothing may be sent twice.
    let mut unsent = Vec::new();
    for record in records {
        if !unsent.is_empty() {
            unsent.push(record.key);
            continue;
        }
        let payload = if historical {
            mark_historical(&record.payload)
        } else {
            record.payload
        };
        let room = batching.room(topic_len(&record.sensor));
        if payload.len() > room {
            oversized.push(Oversized {
                key: record.key,
                sensor: record.sensor,
                bytes: payload.len(),
            });
            continue;
        }
        let joins_last = out.last().is_some_and(|m| {
            m.sensor == record.sensor
                && m.keys.len() < batching.records
                && batched_len(m, &payload) <= room
        });
        if let (true, Some(m)) = (joins_last, out.last_mut()) {
            append(m, payload);
            m.keys.push(record.key);
        } else if out.len() < messages {
            out.push(Message {
                sensor: record.sensor,
                payload,
                keys: vec![record.key],
            });
        } else {
            unsent.push(record.key);
        }
    }
    for key in unsent {
        cursor.unread(key);
    }
    Ok(out)
}

/// Length of `m` with `payload` added: one record is an object, several a JSON array.
fn batched_len(m: &Message, payload: &[u8]) -> usize {
    if m.keys.len() == 1 {
        m.payload.len() + payload.len() + 3
    } else {
        m.payload.len() + payload.len() + 1
    }
}

fn append(m: &mut Message, payload: Vec<u8>) {
    if m.keys.len() == 1 {
        let mut array = Vec::with_capacity(m.payload.len() + payload.len() + 3);
        array.push(b'[');
        array.extend_from_slice(&m.payload);
        m.payload = array;
    } else {
        m.payload.pop(); // the closing bracket
    }
    m.payload.push(b',');
    m.payload.extend_from_slice(&payload);
    m.payload.push(b']');
}

/// Sets `"historical": true` in a stored prediction; anything that is not a JSON object is sent as
/// it is.
fn mark_historical(payload: &[u8]) -> Vec<u8> {
    match serde_json::from_slice::<serde_json::Value>(payload) {
        Ok(serde_json::Value::Object(mut o)) => {
            o.insert("historical".into(), serde_json::Value::Bool(true));
            serde_json::to_vec(&o).unwrap_or_else(|_| payload.to_vec())
        }
        _ => payload.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_become_json_arrays_and_history_is_marked() {
        let key = |seq| RecordKey { priority: 1, seq };
        let mut m = Message {
            sensor: "s".into(),
            payload: br#"{"a":1}"#.to_vec(),
            keys: vec![key(1)],
        };
        let p2 = br#"{"a":2}"#.to_vec();
        let expect = batched_len(&m, &p2);
        append(&mut m, p2);
        m.keys.push(key(2));
        assert_eq!(m.payload.len(), expect);
        let p3 = br#"{"a":3}"#.to_vec();
        let expect = batched_len(&m, &p3);
        append(&mut m, p3);
        assert_eq!(m.payload.len(), expect);
        let v: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
        assert_eq!(v, serde_json::json!([{"a":1},{"a":2},{"a":3}]));

        let h =
            mark_historical(br#"{"id":"d-1","historical":false,"result":{"historical":false}}"#);
        let v: serde_json::Value = serde_json::from_slice(&h).unwrap();
        assert_eq!(v["historical"], true);
        assert_eq!(v["result"]["historical"], false);
        assert_eq!(mark_historical(b"not json"), b"not json");
    }
}
