use super::recovery::generation_dirs;
use super::*;
use std::time::{Duration, Instant};

fn config(max_bytes: u64, when_full: WhenFull) -> OutboxConfig {
    OutboxConfig {
        max_bytes,
        when_full,
        ..OutboxConfig::default()
    }
}

fn payload(seq: u64) -> Vec<u8> {
    format!("{{\"seq\":{seq},\"pad\":\"{}\"}}", "x".repeat(80)).into_bytes()
}

fn pending_all(ob: &Outbox) -> Vec<StoredRecord> {
    ob.pending(&mut Cursor::all(), 1_000_000).unwrap()
}

fn pending_seqs(ob: &Outbox) -> Vec<u64> {
    pending_all(ob).iter().map(StoredRecord::seq).collect()
}

fn stored_seq(a: Appended) -> u64 {
    match a {
        Appended::Stored { seq, .. } => seq,
        Appended::Rejected => panic!("rejected"),
    }
}

fn key(seq: u64) -> RecordKey {
    RecordKey { priority: 1, seq }
}

#[test]
fn records_survive_reopen_in_order_until_acked() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(1 << 20, WhenFull::DropOldest);
    let seqs: Vec<u64> = {
        let ob = Outbox::open(dir.path(), &cfg).unwrap();
        (0..5)
            .map(|_| stored_seq(ob.append("s", payload).unwrap()))
            .collect()
    };
    let ob = Outbox::open(dir.path(), &cfg).unwrap();
    let pending = pending_all(&ob);
    assert_eq!(
        pending.iter().map(StoredRecord::seq).collect::<Vec<_>>(),
        seqs
    );
    assert_eq!(pending[0].payload, payload(seqs[0]));
    ob.ack(&[key(seqs[0])]).unwrap();
    ob.ack(&[key(seqs[0])]).unwrap(); // a duplicate PUBACK is harmless
    assert_eq!(pending_all(&ob).len(), 4);
    assert_eq!(
        ob.pending(&mut Cursor::after(Some(seqs[2])), 100)
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        ob.pending(&mut Cursor::up_to(Some(seqs[2])), 100)
            .unwrap()
            .len(),
        2
    );
    assert_eq!(ob.pending(&mut Cursor::up_to(None), 100).unwrap().len(), 0);
    let stats = ob.stats();
    assert_eq!(
        (stats.records, stats.counters.appended, stats.counters.acked),
        (4, 5, 1)
    );
    // A new sequence after reopen is above every earlier one.
    let next = stored_seq(ob.append("s", payload).unwrap());
    assert!(next > *seqs.last().unwrap());
}

#[test]
fn a_cursor_reads_each_record_once_and_can_unread() {
    let dir = tempfile::tempdir().unwrap();
    let ob = Outbox::open(dir.path(), &config(1 << 20, WhenFull::DropOldest)).unwrap();
    let seqs: Vec<u64> = (0..10)
        .map(|_| stored_seq(ob.append("s", payload).unwrap()))
        .collect();
    let mut c = Cursor::all();
    let first: Vec<u64> = ob
        .pending(&mut c, 4)
        .unwrap()
        .iter()
        .map(StoredRecord::seq)
        .collect();
    assert_eq!(first, seqs[..4]);
    c.unread(key(seqs[2]));
    let next: Vec<u64> = ob
        .pending(&mut c, 100)
        .unwrap()
        .iter()
        .map(StoredRecord::seq)
        .collect();
    assert_eq!(next, seqs[2..]);
    assert!(ob.pending(&mut c, 100).unwrap().is_empty());
    let later = stored_seq(ob.append("s", payload).unwrap());
    assert_eq!(ob.pending(&mut c, 100).unwrap()[0].seq(), later);
}

#[test]
fn sequence_numbers_are_never_reused_even_without_a_clean_close() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(1 << 20, WhenFull::DropOldest);
    let ob = Outbox::open(dir.path(), &cfg).unwrap();
    let first = stored_seq(ob.append("s", payload).unwrap());
    // No flush, no drop: as if the process had been killed.
    std::mem::forget(ob);
    let dir2 = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let e = entry.unwrap();
        if e.file_name() == "state.json" {
            std::fs::copy(e.path(), dir2.path().join("state.json")).unwrap();
        }
    }
    let ob = Outbox::open(dir2.path(), &cfg).unwrap();
    let next = stored_seq(ob.append("s", payload).unwrap());
    assert!(next >= first + state_file::SEQ_BLOCK, "{first} then {next}");
}

#[test]
fn drop_oldest_keeps_the_outbox_under_its_cap_and_counts() {
    let dir = tempfile::tempdir().unwrap();
    let ob = Outbox::open(dir.path(), &config(4096, WhenFull::DropOldest)).unwrap();
    let seqs: Vec<u64> = (0..100)
        .map(|_| stored_seq(ob.append("s", payload).unwrap()))
        .collect();
    let stats = ob.stats();
    assert!(stats.bytes <= 4096, "{stats:?}");
    assert_eq!(stats.counters.dropped_oldest + stats.records, 100);
    let kept = pending_seqs(&ob);
    assert_eq!(kept, seqs[seqs.len() - kept.len()..]);
}

#[test]
fn drop_newest_keeps_the_first_records_and_counts() {
    let dir = tempfile::tempdir().unwrap();
    let ob = Outbox::open(dir.path(), &config(4096, WhenFull::DropNewest)).unwrap();
    let results: Vec<Appended> = (0..100).map(|_| ob.append("s", payload).unwrap()).collect();
    let stored: Vec<u64> = results
        .iter()
        .filter_map(|a| match a {
            Appended::Stored { seq, .. } => Some(*seq),
            Appended::Rejected => None,
        })
        .collect();
    let stats = ob.stats();
    assert!(stats.bytes <= 4096);
    assert_eq!(stats.counters.dropped_newest as usize, 100 - stored.len());
    // Everything stored came first; once full, nothing else got in.
    assert!(matches!(results[stored.len()], Appended::Rejected));
    assert_eq!(pending_seqs(&ob), stored);
}

#[test]
fn higher_priorities_are_read_first_and_dropped_last() {
    let dir = tempfile::tempdir().unwrap();
    let priorities = HashMap::from([
        ("alarm".to_string(), Priority::High),
        ("chatter".to_string(), Priority::Low),
    ]);
    let ob =
        Outbox::open_with_priorities(dir.path(), &config(8192, WhenFull::DropOldest), &priorities)
            .unwrap();
    for i in 0..200 {
        let sensor = ["chatter", "plain", "alarm", "chatter"][i % 4];
        ob.append(sensor, payload).unwrap();
    }
    let sensors: Vec<String> = pending_all(&ob).into_iter().map(|r| r.sensor).collect();
    let first_plain = sensors.iter().position(|s| s == "plain").unwrap();
    assert!(
        sensors[..first_plain].iter().all(|s| s == "alarm"),
        "{sensors:?}"
    );
    assert!(
        sensors[first_plain..].iter().all(|s| s != "alarm"),
        "{sensors:?}"
    );
    // The cap was met by dropping low priority first: every alarm record (the newest 50 fit) is kept
    // while chatter, the most frequent, lost the most.
    let alarms = sensors.iter().filter(|s| *s == "alarm").count();
    let chatter = sensors.iter().filter(|s| *s == "chatter").count();
    assert!(alarms > 0 && chatter < alarms, "{sensors:?}");
}

#[test]
fn thinning_leaves_an_even_sample_of_the_whole_outage() {
    let dir = tempfile::tempdir().unwrap();
    let ob = Outbox::open(dir.path(), &config(16 * 1024, WhenFull::Thin)).unwrap();
    let n = 2000u64;
    for i in 0..n {
        ob.append("s", |_| payload(i)).unwrap();
    }
    let stats = ob.stats();
    assert!(stats.bytes <= 16 * 1024, "{stats:?}");
    assert!(stats.thin_stride >= 16, "{stats:?}");
    assert_eq!(stats.counters.thinned + stats.records, n, "{stats:?}");
    let kept: Vec<u64> = pending_all(&ob)
        .iter()
        .map(|r| {
            serde_json::from_slice::<serde_json::Value>(&r.payload).unwrap()["seq"]
                .as_u64()
                .unwrap()
        })
        .collect();
    // Spread over the whole period: the first record and ones near the end survive, and no gap is
    // much wider than the stride.
    assert_eq!(kept[0], 0);
    assert!(
        *kept.last().unwrap() >= n - 2 * stats.thin_stride,
        "{kept:?}"
    );
    let widest = kept.windows(2).map(|w| w[1] - w[0]).max().unwrap();
    assert!(widest <= 2 * stats.thin_stride, "{widest} {kept:?}");
    // Once drained, thinning stops.
    let keys: Vec<RecordKey> = pending_all(&ob).iter().map(|r| r.key).collect();
    ob.ack(&keys).unwrap();
    assert_eq!(ob.stats().thin_stride, 1);
}

#[test]
fn records_past_their_ttl_are_expired_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = OutboxConfig {
        ttl_secs: 1,
        ..config(1 << 20, WhenFull::DropOldest)
    };
    let ob = Outbox::open(dir.path(), &cfg).unwrap();
    for _ in 0..5 {
        ob.append("s", payload).unwrap();
    }
    std::thread::sleep(Duration::from_millis(2100));
    let fresh = stored_seq(ob.append("s", payload).unwrap());
    assert_eq!(pending_seqs(&ob), vec![fresh]);
    let stats = ob.stats();
    assert_eq!((stats.counters.expired, stats.records), (5, 1));
}

#[test]
fn generations_rotate_and_drained_ones_are_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = OutboxConfig {
        rotate_bytes: Some(256 * 1024),
        ..config(64 << 20, WhenFull::DropOldest)
    };
    let ob = Outbox::open(dir.path(), &cfg).unwrap();
    let mut keys = Vec::new();
    for _ in 0..20_000 {
        let seq = stored_seq(ob.append("s", payload).unwrap());
        keys.push(key(seq));
    }
    ob.flush().unwrap();
    let before = ob.stats();
    assert!(before.generations >= 3, "{before:?}");
    ob.ack(&keys).unwrap();
    // The flusher deletes drained generations within a second or two.
    let deadline = Instant::now() + Duration::from_secs(10);
    while ob.stats().generations > 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let after = ob.stats();
    assert_eq!((after.generations, after.records), (1, 0), "{after:?}");
    assert!(
        after.disk_bytes < before.disk_bytes / 2,
        "{before:?} {after:?}"
    );
}

#[test]
fn a_damaged_record_is_removed_and_counted_not_published() {
    let dir = tempfile::tempdir().unwrap();
    let ob = Outbox::open(dir.path(), &config(1 << 20, WhenFull::DropOldest)).unwrap();
    let a = stored_seq(ob.append("s", payload).unwrap());
    let b = stored_seq(ob.append("s", payload).unwrap());
    {
        let mut inner = ob.shared.lock();
        let first = inner.gens.newest().unwrap();
        let tree = inner.gens.tree(first).unwrap();
        let k = generation::key(1, a);
        let mut raw = tree.get(k).unwrap().unwrap().to_vec();
        let last = raw.len() - 1;
        raw[last] ^= 1;
        tree.insert(k, raw).unwrap();
    }
    assert_eq!(pending_seqs(&ob), vec![b]);
    assert_eq!(ob.stats().counters.corrupt, 1);
    assert_eq!(ob.stats().records, 1);
}

#[test]
fn a_store_that_cannot_be_opened_is_moved_aside_and_a_fresh_one_started() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(1 << 20, WhenFull::DropOldest);
    {
        let ob = Outbox::open(dir.path(), &cfg).unwrap();
        for _ in 0..100 {
            ob.append("s", payload).unwrap();
        }
    }
    let (_, gen_dir) = generation_dirs(dir.path()).remove(0);
    // Scribble over the whole database file.
    let db = gen_dir.join("db");
    let len = std::fs::metadata(&db).unwrap().len() as usize;
    std::fs::write(&db, vec![0xA5u8; len]).unwrap();
    std::fs::write(dir.path().join("state.json"), b"{ not json").unwrap();

    let ob = Outbox::open(dir.path(), &cfg).unwrap();
    let stats = ob.stats();
    assert_eq!(stats.records, 0);
    assert_eq!(stats.counters.quarantined, 2, "{stats:?}");
    let kept: Vec<String> = std::fs::read_dir(dir.path().join("quarantine"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(kept.len(), 2, "{kept:?}");
    // The fresh store works.
    stored_seq(ob.append("s", payload).unwrap());
    assert_eq!(pending_all(&ob).len(), 1);
}

#[test]
fn a_second_opener_is_refused_while_the_first_holds_it() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(1 << 20, WhenFull::DropOldest);
    let ob = Outbox::open(dir.path(), &cfg).unwrap();
    let err = Outbox::open(dir.path(), &cfg).err().unwrap().to_string();
    assert!(
        err.contains(&format!("pid {}", std::process::id())),
        "{err}"
    );
    drop(ob);
    Outbox::open(dir.path(), &cfg).unwrap();
}

#[test]
fn purge_empties_the_store_and_counts() {
    let dir = tempfile::tempdir().unwrap();
    let ob = Outbox::open(dir.path(), &config(1 << 20, WhenFull::DropOldest)).unwrap();
    for _ in 0..10 {
        ob.append("s", payload).unwrap();
    }
    assert_eq!(ob.purge().unwrap(), 10);
    let stats = ob.stats();
    assert_eq!(
        (stats.records, stats.bytes, stats.counters.purged),
        (0, 0, 10)
    );
    ob.append("s", payload).unwrap();
    assert_eq!(pending_all(&ob).len(), 1);
}

#[test]
fn only_generations_in_use_stay_open_and_closed_ones_are_read_and_acked() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = OutboxConfig {
        rotate_bytes: Some(256 * 1024),
        ..config(64 << 20, WhenFull::DropOldest)
    };
    let ob = Outbox::open(dir.path(), &cfg).unwrap();
    let open = |ob: &Outbox| {
        let inner = ob.shared.lock();
        inner.gens.values().filter(|g| g.is_open()).count()
    };
    let seqs: Vec<u64> = (0..20_000)
        .map(|_| stored_seq(ob.append("s", payload).unwrap()))
        .collect();
    let gens = ob.stats().generations;
    assert!(gens >= 5, "{gens} generations");
    // Reading everything oldest first opens each generation in turn, never more than a few.
    let mut cursor = Cursor::all();
    let mut read = Vec::new();
    loop {
        let batch = ob.pending(&mut cursor, 500).unwrap();
        if batch.is_empty() {
            break;
        }
        assert!(open(&ob) <= 1 + generations::MAX_OPEN_OLDER);
        read.extend(batch);
    }
    assert_eq!(read.iter().map(StoredRecord::seq).collect::<Vec<_>>(), seqs);
    // Acknowledging the oldest half reopens the generations that hold it.
    let keys: Vec<RecordKey> = read[..10_000].iter().map(|r| r.key).collect();
    ob.ack(&keys).unwrap();
    assert!(open(&ob) <= 1 + generations::MAX_OPEN_OLDER);
    assert_eq!(ob.stats().records, 10_000);
    assert_eq!(pending_seqs(&ob), seqs[10_000..]);
    // After a restart the counts are right and nothing is read twice or lost.
    drop(ob);
    let ob = Outbox::open(dir.path(), &cfg).unwrap();
    assert_eq!(open(&ob), 1);
    assert_eq!(ob.stats().records, 10_000);
    assert_eq!(pending_seqs(&ob), seqs[10_000..]);
}

/// Pushes 300,000 records through an 8 MiB cap (the second half acknowledged as a connected
/// device would); checks the directory against its bound throughout and after draining.
fn churn_within_bound(compression: bool) {
    let dir = tempfile::tempdir().unwrap();
    let cap = 8u64 << 20;
    let cfg = OutboxConfig {
        compression,
        ..config(cap, WhenFull::DropOldest)
    };
    let ob = Outbox::open(dir.path(), &cfg).unwrap();
    let bound = cap * DISK_BOUND_FACTOR;
    let (mut largest, mut cursor) = (0u64, Cursor::all());
    let n = 300_000u64;
    for i in 0..n {
        ob.append("s", payload).unwrap();
        // The second half is a connected device, acknowledging until 100 records are left.
        if i >= n / 2 {
            let take = if ob.records() > 100 { 2 } else { 1 };
            let keys: Vec<RecordKey> = ob
                .pending(&mut cursor, take)
                .unwrap()
                .iter()
                .map(|r| r.key)
                .collect();
            ob.ack(&keys).unwrap();
        }
        if i % 1_000 == 0 {
            let disk = generation::dir_bytes(dir.path());
            largest = largest.max(disk);
            // Checked every 256 appends: allow what 256 records can add.
            assert!(
                disk <= bound + (256 << 10),
                "record {i}: {disk} bytes on disk, bound {bound}"
            );
        }
    }
    let stats = ob.stats();
    assert!(stats.counters.dropped_oldest > 0, "{stats:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while ob.stats().generations > 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let after = generation::dir_bytes(dir.path());
    eprintln!(
        "compression {compression}: largest {:.2}× cap; drained {:.2}× cap",
        largest as f64 / cap as f64,
        after as f64 / cap as f64
    );
    assert!(after < cap / 2, "{after} bytes left after draining");
}

#[test]
fn under_churn_the_directory_stays_within_its_bound_and_shrinks_when_drained() {
    churn_within_bound(true);
}

#[test]
fn without_compression_the_directory_bound_still_holds() {
    churn_within_bound(false);
}
