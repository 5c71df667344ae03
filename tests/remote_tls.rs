//! The broker link over TLS: a custom CA, client certificates (mutual TLS) under an ACL, and
//! user name and password; a client without a valid certificate is not let in.

use crate::support::*;
use std::time::Duration;

/// Devices may use their own topic tree only; the operator may use every device's.
const ACL: &str =
    "user t1\ntopic readwrite edgeinfer/t1/#\n\nuser operator\ntopic readwrite edgeinfer/#\n";

#[test]
fn predictions_flow_over_mutual_tls_under_an_acl() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(&dir.path().join("pki"));
    let device = pki.client("t1");
    let operator = pki.client("operator");
    let broker = TlsBroker::start(&pki, ACL);
    let peer = Recorder::connect(
        tls_options(broker.port, "operator", &pki.ca(), Some(&operator)),
        &["edgeinfer/t1/predictions/#", "edgeinfer/t1/status"],
    )
    .expect("the operator's certificate is accepted");

    let readings = dir.path().join("readings.csv");
    write_readings(&readings, 20);
    let config = LineConfig {
        broker: Some(broker.url()),
        mqtt_extra: pki.tls_toml(Some(&device)),
        extra: "\n[remote]\n".into(),
        ..LineConfig::new(dir.path(), &readings)
    }
    .write(&dir.path().join("edgeinfer.toml"));

    let daemon = Daemon::start(&config);
    // The management connection works under the same certificate and ACL.
    let online = peer.wait_json("edgeinfer/t1/status", Duration::from_secs(30), |v| {
        v["online"] == true
    });
    assert!(online.is_some(), "no status over TLS:\n{}", daemon.log());
    assert!(
        wait_until(Duration::from_secs(30), || peer
            .on("edgeinfer/t1/predictions/serial0")
            .len()
            >= 20),
        "got {} of 20 predictions over TLS; log:\n{}",
        peer.on("edgeinfer/t1/predictions/serial0").len(),
        daemon.log()
    );
    assert!(daemon.terminate(Duration::from_secs(10)).success());
    let stats = outbox_stats(dir.path());
    assert_eq!((stats.records, stats.counters.acked), (0, 20), "{stats:?}");
}

#[test]
fn clients_without_a_certificate_of_the_ca_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(&dir.path().join("pki"));
    let broker = TlsBroker::start(&pki, ACL);

    let no_cert = Recorder::connect(tls_options(broker.port, "anon", &pki.ca(), None), &[]);
    assert!(no_cert.is_err(), "a client without a certificate got in");
    let rogue = pki.untrusted_client("t1");
    let forged = Recorder::connect(
        tls_options(broker.port, "rogue", &pki.ca(), Some(&rogue)),
        &[],
    );
    assert!(forged.is_err(), "a certificate of another CA was accepted");
    let plain = Recorder::connect(plain_options(broker.port, "plain"), &[]);
    assert!(plain.is_err(), "a plain-text client got in");

    // The daemon with the rogue certificate cannot connect, says so, and keeps its predictions.
    let readings = dir.path().join("readings.csv");
    write_readings(&readings, 5);
    let config = LineConfig {
        broker: Some(broker.url()),
        mqtt_extra: pki.tls_toml(Some(&rogue)),
        ..LineConfig::new(dir.path(), &readings)
    }
    .write(&dir.path().join("edgeinfer.toml"));
    let daemon = Daemon::start(&config);
    assert!(
        wait_until(Duration::from_secs(30), || daemon
            .log_contains("Cannot connect to broker")
            && daemon.log_contains("reached the end of its input")),
        "{}",
        daemon.log()
    );
    assert!(daemon.terminate(Duration::from_secs(10)).success());
    assert_eq!(outbox_stats(dir.path()).records, 5);
}

#[test]
fn user_name_and_password_are_sent_and_a_wrong_password_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let passwords = dir.path().join("passwd");
    std::fs::write(&passwords, "").unwrap();
    let made = std::process::Command::new("mosquitto_passwd")
        .arg("-b")
        .arg(&passwords)
        .arg("device")
        .arg("s3cret")
        .status()
        .expect("mosquitto_passwd is installed with mosquitto");
    assert!(made.success());
    let port = free_port();
    let conf = dir.path().join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {}\nlog_dest none\n",
            passwords.display()
        ),
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        for p in [dir.path(), &passwords, &conf] {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
    let mut mosquitto =
        std::process::Command::new(if std::path::Path::new("/usr/sbin/mosquitto").exists() {
            "/usr/sbin/mosquitto"
        } else {
            "mosquitto"
        })
        .arg("-c")
        .arg(&conf)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for_listener(&mut mosquitto, port);
    let mut opts = plain_options(port, "watcher");
    opts.set_credentials("device", "s3cret");
    let peer = Recorder::connect(opts, &["edgeinfer/t1/predictions/#"]).expect("right password");
    let mut wrong = plain_options(port, "intruder");
    wrong.set_credentials("device", "guess");
    assert!(
        Recorder::connect(wrong, &[]).is_err(),
        "a wrong password got in"
    );

    let readings = dir.path().join("readings.csv");
    write_readings(&readings, 5);
    let broker = format!("mqtt://127.0.0.1:{port}");
    let config = LineConfig {
        broker: Some(broker),
        mqtt_extra: "username = \"device\"\npassword = \"s3cret\"\n".into(),
        ..LineConfig::new(dir.path(), &readings)
    }
    .write(&dir.path().join("edgeinfer.toml"));
    let daemon = Daemon::start(&config);
    assert!(
        wait_until(Duration::from_secs(30), || peer
            .on("edgeinfer/t1/predictions/serial0")
            .len()
            >= 5),
        "{}",
        daemon.log()
    );
    assert!(daemon.terminate(Duration::from_secs(10)).success());
    let _ = mosquitto.kill();
    let _ = mosquitto.wait();
}
