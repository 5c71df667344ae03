use super::*;

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

fn pending_seqs(ob: &Outbox) -> Vec<u64> {
    ob.pending(None, 1000)
        .unwrap()
        .iter()
        .map(|r| r.seq)
        .collect()
}

fn stored_seq(a: Appended) -> u64 {
    match a {
        Appended::Stored { seq, .. } => seq,
        Appended::Rejected => panic!("rejected"),
    }
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
    let pending = ob.pending(None, 100).unwrap();
    assert_eq!(pending.iter().map(|r| r.seq).collect::<Vec<_>>(), seqs);
    assert_eq!(pending[0].payload, payload(seqs[0]));
    ob.ack(seqs[0]).unwrap();
    ob.ack(seqs[0]).unwrap(); // a duplicate PUBACK is harmless
    assert_eq!(ob.pending(None, 100).unwrap().len(), 4);
    assert_eq!(ob.pending(Some(seqs[2]), 100).unwrap().len(), 2);
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
    let kept = pending_seqs(&ob);
    assert_eq!(kept, stored);
}

#[test]
fn a_damaged_record_is_removed_and_counted_not_published() {
    let dir = tempfile::tempdir().unwrap();
    let ob = Outbox::open(dir.path(), &config(1 << 20, WhenFull::DropOldest)).unwrap();
    let a = stored_seq(ob.append("s", payload).unwrap());
    let b = stored_seq(ob.append("s", payload).unwrap());
    let mut raw = ob.records.get(a.to_be_bytes()).unwrap().unwrap().to_vec();
    let last = raw.len() - 1;
    raw[last] ^= 1;
    ob.records.insert(a.to_be_bytes(), raw).unwrap();
    let pending = ob.pending(None, 10).unwrap();
    assert_eq!(pending.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![b]);
    assert_eq!(ob.stats().counters.corrupt, 1);
    assert_eq!(ob.stats().records, 1);
}
