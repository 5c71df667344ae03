//! The network fault injection harness does what the fault tests rely on: each control has the
//! effect it promises on a real broker and a real MQTT client, faults leave the consumer's bypass
//! alone, and nothing outlives a link.

use crate::support::netns::{find_tool, FaultyLink, PORT};
use crate::support::*;
use rumqttc::{Client, ConnectionError, Event, MqttOptions, Packet, QoS};
use std::collections::BTreeSet;
use std::io::ErrorKind;
use std::net::TcpStream;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static CLIENTS: AtomicU32 = AtomicU32::new(0);

fn client_id(what: &str) -> String {
    format!(
        "{what}-{}-{}",
        std::process::id(),
        CLIENTS.fetch_add(1, Ordering::Relaxed)
    )
}

/// One MQTT connect to `host` with rumqttc, given up after `limit`: the outcome and how long it
/// took.
fn mqtt_connect(host: &str, limit: Duration) -> (Result<(), ConnectionError>, Duration) {
    let opts = MqttOptions::new(client_id("probe"), host, PORT);
    let (_client, mut connection) = Client::new(opts, 10);
    let mut network = connection.eventloop.network_options();
    network.set_connection_timeout(limit.as_secs());
    connection.eventloop.set_network_options(network);
    let started = Instant::now();
    let outcome = match connection.recv_timeout(limit + Duration::from_secs(5)) {
        Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => Ok(()),
        Ok(Ok(event)) => panic!("first event of a connect was {event:?}"),
        Ok(Err(e)) => Err(e),
        Err(e) => panic!("rumqttc ignored its connection timeout: {e:?}"),
    };
    (outcome, started.elapsed())
}

fn connects(host: &str) -> bool {
    mqtt_connect(host, Duration::from_secs(5)).0.is_ok()
}

/// A plain TCP connect to the broker port of `host`.
fn tcp_connect(host: &str, limit: Duration) -> std::io::Result<TcpStream> {
    TcpStream::connect_timeout(
        &(host.parse::<std::net::IpAddr>().unwrap(), PORT).into(),
        limit,
    )
}

fn namespaces() -> String {
    String::from_utf8(
        Command::new(find_tool("ip", "iproute2"))
            .args(["netns", "list"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
}

fn has_namespace(name: &str) -> bool {
    namespaces()
        .lines()
        .any(|l| l.split_whitespace().next() == Some(name))
}

fn interface_exists(name: &str) -> bool {
    Command::new(find_tool("ip", "iproute2"))
        .args(["link", "show", name])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap()
        .success()
}

/// Publishes `count` QoS 1 messages of `size` bytes to `topic` at `host`, returning once the broker
/// acknowledged them all (or after two minutes). The session is persistent, so a reconnect under
/// heavy loss resends what was not acknowledged. Should the broker answer a reconnect without the
/// session, rumqttc drops what it had not got acknowledged (as MQTT 3.1.1 lets it), so every
/// message is published again with a new session: at least once, like the daemon's outbox.
fn publish_all(host: &str, topic: &str, count: usize, size: usize) {
    for round in 1..=3 {
        if !publish_round(host, topic, count, size) {
            return;
        }
        eprintln!("publisher: round {round} lost its session, publishing everything again");
    }
}

/// One round of [`publish_all`]; true if a reconnect found the session gone.
fn publish_round(host: &str, topic: &str, count: usize, size: usize) -> bool {
    let mut opts = MqttOptions::new(client_id("publisher"), host, PORT);
    opts.set_clean_session(false);
    opts.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut connection) = Client::new(opts, 16);
    let mut network = connection.eventloop.network_options();
    // A write stalled behind a rate cap and retransmissions is not a dead broker.
    network.set_connection_timeout(30);
    connection.eventloop.set_network_options(network);
    let acks = std::thread::spawn(move || {
        let (mut acked, mut connected, mut session_lost) = (0, false, false);
        // Generous: a reconnect under 20% loss can wait on retransmitted SYNs for a while.
        let end = Instant::now() + Duration::from_secs(120);
        while acked < count && !session_lost && Instant::now() < end {
            match connection.recv_timeout(Duration::from_millis(200)) {
                Ok(Ok(Event::Incoming(Packet::PubAck(_)))) => acked += 1,
                Ok(Ok(Event::Incoming(Packet::ConnAck(c)))) => {
                    session_lost = connected && !c.session_present;
                    connected = true;
                }
                Ok(Err(e)) => {
                    eprintln!("publisher: {e}, reconnecting");
                    std::thread::sleep(Duration::from_millis(100));
                }
                _ => {}
            }
        }
        (acked, session_lost)
    });
    for i in 0..count {
        let mut payload = format!("{i:06}").into_bytes();
        payload.resize(size, b'.');
        // After a lost session the event loop may be gone; the next round publishes anew.
        if client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .is_err()
        {
            break;
        }
    }
    let (acked, session_lost) = acks.join().unwrap();
    // A PUBACK lost with a dropped connection is not counted although the message arrived; the
    // callers check arrivals at the consumer, which is what matters.
    if acked < count {
        eprintln!("publisher: {acked} of {count} acknowledged on the connections it saw");
    }
    let _ = client.try_disconnect();
    session_lost
}

/// Distinct messages received, by topic and the number `publish_all` put in front.
fn distinct(consumer: &Recorder) -> usize {
    consumer
        .messages
        .lock()
        .unwrap()
        .iter()
        .map(|(t, p)| (t.clone(), p[..6].to_vec()))
        .collect::<BTreeSet<_>>()
        .len()
}

#[test]
fn a_host_client_reaches_the_broker_over_the_link_and_the_bypass() {
    let link = FaultyLink::start();
    assert!(link.url().starts_with("mqtt://10.213."), "{}", link.url());
    assert_ne!(link.broker_host(), link.bypass_host());
    let consumer = link.consumer("t/#");
    let (outcome, took) = mqtt_connect(&link.broker_host(), Duration::from_secs(5));
    outcome.unwrap();
    eprintln!("connect over the healthy link: {took:?}");
    publish_all(&link.broker_host(), "t/plain", 10, 100);
    assert!(wait_until(Duration::from_secs(5), || distinct(&consumer) == 10));
}

#[test]
fn drop_broker_makes_connects_time_out_without_a_reset_until_heal() {
    let mut link = FaultyLink::start();
    let host = link.broker_host();
    link.drop_broker();
    link.drop_broker();

    let err = tcp_connect(&host, Duration::from_millis(1500)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
    let (outcome, took) = mqtt_connect(&host, Duration::from_secs(2));
    eprintln!("MQTT connect through drop_broker: {outcome:?} after {took:?}");
    assert!(
        matches!(outcome, Err(ConnectionError::NetworkTimeout)),
        "{outcome:?}"
    );
    assert!(took >= Duration::from_secs(2), "{took:?}");
    // The consumer's path is not the daemon's.
    assert!(connects(&link.bypass_host()));

    link.heal();
    let (outcome, took) = mqtt_connect(&host, Duration::from_secs(5));
    outcome.unwrap();
    eprintln!("connect after heal: {took:?}");
}

#[test]
fn reject_broker_refuses_connects_at_once_until_heal() {
    let mut link = FaultyLink::start();
    let host = link.broker_host();
    link.reject_broker();
    link.reject_broker();

    let (outcome, took) = mqtt_connect(&host, Duration::from_secs(5));
    eprintln!("MQTT connect through reject_broker: {outcome:?} after {took:?}");
    match outcome {
        Err(ConnectionError::Io(e)) => assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{e}"),
        other => panic!("expected a refused connect, got {other:?}"),
    }
    assert!(took < Duration::from_secs(1), "{took:?}");
    assert!(connects(&link.bypass_host()));

    // One block replaces the other.
    link.drop_broker();
    let err = tcp_connect(&host, Duration::from_millis(1000)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
    link.reject_broker();
    let err = tcp_connect(&host, Duration::from_millis(1000)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err}");

    link.heal();
    link.heal();
    assert!(connects(&host));
}

#[test]
fn qos1_messages_all_arrive_through_loss_and_a_rate_cap_which_holds() {
    const COUNT: usize = 200;
    const SIZE: usize = 1024;
    const KBIT: u32 = 256;
    let mut link = FaultyLink::start();
    let consumer = link.consumer("t/#");
    link.loss(20);
    link.rate_limit(KBIT);
    link.rate_limit(KBIT);

    let started = Instant::now();
    publish_all(&link.broker_host(), "t/lossy", COUNT, SIZE);
    assert!(
        wait_until(Duration::from_secs(60), || distinct(&consumer) == COUNT),
        "{} of {COUNT} arrived",
        distinct(&consumer)
    );
    let took = started.elapsed();
    let bits = (COUNT * SIZE * 8) as f64;
    let kbit_s = bits / took.as_secs_f64() / 1000.0;
    eprintln!(
        "{COUNT} x {SIZE} B at QoS 1 through 20% loss and a {KBIT} kbit/s cap: {took:?}, {kbit_s:.0} kbit/s of payload"
    );
    // Only a sanity check that the cap is in force: even at twice the cap it takes this long.
    let floor = Duration::from_secs_f64(bits / (2.0 * f64::from(KBIT) * 1000.0));
    assert!(took >= floor, "{took:?} is faster than twice the cap");

    link.heal();
    let started = Instant::now();
    publish_all(&link.broker_host(), "t/healed", COUNT, SIZE);
    assert!(wait_until(Duration::from_secs(10), || distinct(&consumer) == 2 * COUNT));
    eprintln!("the same after heal: {:?}", started.elapsed());
    assert!(started.elapsed() < floor, "heal left the cap in place");
}

#[test]
fn the_bypass_is_untouched_by_every_fault() {
    const COUNT: usize = 200;
    const SIZE: usize = 1024;
    const KBIT: u32 = 64;
    let mut link = FaultyLink::start();
    let consumer = link.consumer("t/#");
    link.drop_broker();
    link.loss(50);
    link.rate_limit(KBIT);

    let started = Instant::now();
    publish_all(&link.bypass_host(), "t/bypass", COUNT, SIZE);
    assert!(wait_until(Duration::from_secs(10), || distinct(&consumer) == COUNT));
    let took = started.elapsed();
    eprintln!("{COUNT} x {SIZE} B over the bypass while the link is down: {took:?}");
    // The capped link would need (COUNT * SIZE * 8 / KBIT) ms, about 26 s.
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(tcp_connect(&link.broker_host(), Duration::from_millis(500)).is_err());
}

#[test]
fn stop_and_start_broker_keep_the_address_and_the_persisted_state() {
    let mut link = FaultyLink::start();
    let host = link.broker_host();
    // A retained message: what the broker keeps in its persistence file across the restart.
    let (client, mut connection) =
        Client::new(MqttOptions::new(client_id("keeper"), &*host, PORT), 10);
    client
        .publish("t/retained", QoS::AtLeastOnce, true, "kept")
        .unwrap();
    let acked = wait_until(Duration::from_secs(5), || {
        matches!(
            connection.recv_timeout(Duration::from_millis(100)),
            Ok(Ok(Event::Incoming(Packet::PubAck(_))))
        )
    });
    assert!(acked, "the retained message was not acknowledged");
    drop((client, connection));

    let first = link.broker_pid().unwrap();
    link.stop_broker();
    link.stop_broker();
    assert!(link.broker_pid().is_none());
    let err = tcp_connect(&host, Duration::from_millis(1000)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err}");

    link.start_broker();
    link.start_broker();
    assert_ne!(link.broker_pid(), Some(first));
    assert!(connects(&host));
    let consumer = link.consumer("t/retained");
    assert!(wait_until(Duration::from_secs(5), || consumer.count() == 1));
    assert_eq!(consumer.messages.lock().unwrap()[0].1, b"kept");
}

#[test]
fn dropping_a_link_removes_its_namespace_interfaces_and_broker_even_on_panic() {
    let link = FaultyLink::start();
    let (ns, interfaces, pid) = (
        link.namespace().to_string(),
        link.host_interfaces(),
        link.broker_pid().unwrap(),
    );
    assert!(has_namespace(&ns));
    assert!(interfaces.iter().all(|i| interface_exists(i)));
    drop(link);
    assert!(!has_namespace(&ns), "{}", namespaces());
    assert!(!interfaces.iter().any(|i| interface_exists(i)));
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());

    let ns = std::panic::catch_unwind(|| {
        let mut link = FaultyLink::start();
        link.drop_broker();
        link.rate_limit(128);
        let ns = link.namespace().to_string();
        std::panic::panic_any(ns);
    })
    .unwrap_err()
    .downcast::<String>()
    .unwrap();
    assert!(!has_namespace(&ns), "{}", namespaces());
}

#[test]
fn a_namespace_left_by_a_dead_test_process_is_removed() {
    let mut child = Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let stale = format!("edgeinfer-test-{dead}-0");
    let ip = find_tool("ip", "iproute2");
    assert!(Command::new(&ip)
        .args(["netns", "add", &stale])
        .status()
        .unwrap()
        .success());
    let _link = FaultyLink::start();
    assert!(!has_namespace(&stale), "{}", namespaces());
}

#[test]
fn a_missing_tool_is_named_with_its_package() {
    let message = std::panic::catch_unwind(|| find_tool("edgeinfer-no-such-tool", "no-such-pkg"))
        .unwrap_err()
        .downcast::<String>()
        .unwrap();
    assert!(
        message.contains("`edgeinfer-no-such-tool`")
            && message.contains("apt-get install -y no-such-pkg"),
        "{message}"
    );
}
