use super::*;

fn setup(dir: &Path) -> (SigningKey, Authenticator) {
    let key = generate_key().unwrap();
    let policy = Policy {
        device: "d1".into(),
        keys: vec![key.verifying_key()],
        max_bytes: 4096,
        max_lifetime_secs: 600,
        clock_skew_secs: 60,
    };
    let auth = Authenticator::open(policy, dir.join("replay.json")).unwrap();
    (key, auth)
}

fn command(name: &str, seq: u64, now: u64) -> Command {
    Command {
        id: format!("c{seq}"),
        device: "d1".into(),
        command: name.into(),
        issued_at: now,
        expires_at: now + 60,
        seq,
        args: serde_json::Value::Null,
    }
}

fn bytes(e: &Envelope) -> Vec<u8> {
    serde_json::to_vec(e).unwrap()
}

#[test]
fn a_signed_fresh_command_is_accepted_once_even_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (key, mut auth) = setup(dir.path());
    let now = 1_700_000_000;
    let signed = bytes(&Envelope::sign(&command("ping", 5, now), &key));
    assert_eq!(auth.check("ping", &signed, now).unwrap().seq, 5);
    assert_eq!(
        auth.check("ping", &signed, now).unwrap_err().code(),
        "replayed"
    );
    let (_, mut reopened) = setup(dir.path());
    reopened.policy.keys = vec![key.verifying_key()];
    assert_eq!(
        reopened.check("ping", &signed, now).unwrap_err(),
        Rejection::Replayed {
            seq: 5,
            high_water: 5
        }
    );
    let next = bytes(&Envelope::sign(&command("ping", 6, now), &key));
    assert!(reopened.check("ping", &next, now).is_ok());
}

#[test]
fn every_kind_of_bad_command_is_refused_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let (key, mut auth) = setup(dir.path());
    let now = 1_700_000_000;
    let other = generate_key().unwrap();
    let code = |auth: &mut Authenticator, name: &str, b: &[u8]| {
        auth.check(name, b, now).unwrap_err().code()
    };
    assert_eq!(code(&mut auth, "ping", b"{not json"), "malformed");
    assert_eq!(code(&mut auth, "ping", b"[1,2]"), "malformed");
    let unsigned = serde_json::to_vec(&command("ping", 1, now)).unwrap();
    assert_eq!(code(&mut auth, "ping", &unsigned), "unsigned");
    let forged = bytes(&Envelope::sign(&command("ping", 1, now), &other));
    assert_eq!(code(&mut auth, "ping", &forged), "bad_signature");
    let mut tampered = Envelope::sign(&command("ping", 1, now), &key);
    tampered.payload = tampered.payload.replace("\"seq\":1", "\"seq\":2");
    assert_eq!(code(&mut auth, "ping", &bytes(&tampered)), "bad_signature");
    let mut elsewhere = command("ping", 1, now);
    elsewhere.device = "d2".into();
    assert_eq!(
        code(&mut auth, "ping", &bytes(&Envelope::sign(&elsewhere, &key))),
        "wrong_device"
    );
    let moved = bytes(&Envelope::sign(&command("ping", 1, now), &key));
    assert_eq!(code(&mut auth, "set-config", &moved), "wrong_command");
    let mut old = command("ping", 1, now - 1000);
    old.expires_at = now - 1;
    assert_eq!(
        code(&mut auth, "ping", &bytes(&Envelope::sign(&old, &key))),
        "expired"
    );
    let early = command("ping", 1, now + 3600);
    assert_eq!(
        code(&mut auth, "ping", &bytes(&Envelope::sign(&early, &key))),
        "not_yet_valid"
    );
    let mut forever = command("ping", 1, now);
    forever.expires_at = u64::MAX;
    assert_eq!(
        code(&mut auth, "ping", &bytes(&Envelope::sign(&forever, &key))),
        "lifetime_too_long"
    );
    let big = vec![b' '; 5000];
    assert_eq!(code(&mut auth, "ping", &big), "too_large");
    // None of these moved the high-water mark.
    assert!(auth.check("ping", &moved, now).is_ok());
}

proptest::proptest! {
    #[test]
    fn arbitrary_payloads_are_refused_without_panicking(payload in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
        let dir = tempfile::tempdir().unwrap();
        let (_, mut auth) = setup(dir.path());
        proptest::prop_assert!(auth.check("ping", &payload, 1_700_000_000).is_err());
        let _ = Authenticator::correlation_id(&payload);
    }
}
