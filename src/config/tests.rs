use super::*;

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

fn errors_of(text: &str) -> Vec<String> {
    match Config::from_toml(text, &repo("config")) {
        Ok(_) => Vec::new(),
        Err(LoadError::Invalid { errors, .. }) => errors.iter().map(|e| e.to_string()).collect(),
        Err(other) => vec![other.to_string()],
    }
}

#[test]
fn the_demo_config_is_valid() {
    let config = Config::load(&repo("config/demo.toml")).unwrap();
    assert_eq!(config.sensors.len(), 4);
    assert!(config.models[0].path.is_absolute());
}

#[test]
fn the_default_config_parses_and_only_lacks_its_example_files() {
    let errors = errors_of(DEFAULT_CONFIG);
    assert!(!errors.is_empty());
    for e in &errors {
        assert!(
            e.contains("not found"),
            "unexpected problem in default config: {e}"
        );
    }
}

const VALID: &str = r#"
[device]
id = "d1"
data_dir = "/tmp/x"

[[models]]
id = "colour"
path = "../models/colour.onnx"
preprocess = { type = "image" }
postprocess = { type = "classify" }

[[sensors]]
id = "cam"
model = "colour"
type = "image_replay"
path = "demo-data/images"
"#;

#[test]
fn a_minimal_config_is_valid_and_gets_defaults() {
    let c = Config::from_toml(VALID, &repo("config")).unwrap();
    assert_eq!(c.outbox.max_bytes, 64 * 1024 * 1024);
    assert_eq!(c.sensors[0].queue.overflow, Overflow::Block);
    assert!(c.mqtt.is_none());
}

#[test]
fn every_mistake_is_reported_with_its_key_path() {
    let text = VALID.replace(
        "preprocess = { type = \"image\" }",
        "preprocess = { type = \"image\", colour = 1 }",
    ) + r#"
[[sensors]]
id = "mic"
model = "kws"
type = "wav_replay"
path = "no-such.wav"
window = 0
hop = 10

[[sensors]]
id = "serial"
model = "colour"
type = "line_replay"
path = "demo-data/readings.csv"
rate = "fast"

[outbox]
when_full = "explode"
"#;
    let errors = errors_of(&text);
    let expect = [
        "models[0].preprocess.colour: unknown field `colour`",
        "sensors[1].model: no model with id \"kws\"",
        "sensors[1].path: file not found",
        "sensors[1].window: must be 1-10000000 samples",
        "sensors[2].rate: invalid type: string \"fast\"",
        "outbox.when_full: unknown variant `explode`",
    ];
    for want in expect {
        assert!(
            errors.iter().any(|e| e.starts_with(want)),
            "missing {want:?} in {errors:#?}"
        );
    }
    // The broken model is not reported again as a dangling reference from sensors[0].
    assert!(
        !errors.iter().any(|e| e.starts_with("sensors[0].model")),
        "{errors:#?}"
    );
}

#[test]
fn syntax_errors_keep_line_and_column() {
    let err = Config::from_toml("[device]\nid = \"a\"\ndata_dir = \n", Path::new(".")).unwrap_err();
    match err {
        LoadError::Syntax { line, column, .. } => assert_eq!((line, column), (3, 12)),
        other => panic!("{other}"),
    }
}

#[test]
fn sensor_type_problems_are_reported() {
    let text = VALID.replace("type = \"image_replay\"", "type = \"teleport\"");
    let errors = errors_of(&text);
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("sensors[0].type: unknown sensor type \"teleport\"")),
        "{errors:#?}"
    );
    let text = VALID.replace(
        "type = \"image_replay\"",
        "type = \"wav_replay\"\nwindow = 4\nhop = 4",
    );
    let errors = errors_of(&text);
    assert!(
        errors
            .iter()
            .any(|e| e.contains("pre-processes image frames but this sensor produces audio")),
        "{errors:#?}"
    );
}

#[test]
fn broker_urls_are_parsed_strictly() {
    assert_eq!(
        BrokerAddress::parse("mqtt://127.0.0.1:1884").unwrap(),
        BrokerAddress {
            host: "127.0.0.1".into(),
            port: 1884,
            tls: false,
        }
    );
    let secure = BrokerAddress::parse("mqtts://broker.local").unwrap();
    assert_eq!((secure.port, secure.tls), (8883, true));
    assert_eq!(
        BrokerAddress::parse("mqtt://broker.local").unwrap().port,
        1883
    );
    assert_eq!(
        BrokerAddress::parse("mqtt://[::1]:1885").unwrap().host,
        "::1"
    );
    assert!(BrokerAddress::parse("http://x").is_err());
    assert!(BrokerAddress::parse("mqtt://x:99999").is_err());
    assert!(BrokerAddress::parse("mqtt://user:pw@x").is_err());
}

#[test]
fn tls_settings_are_checked_with_their_key_paths() {
    let text = format!(
        "{VALID}\n[mqtt]\nbroker = \"mqtt://127.0.0.1\"\n[mqtt.tls]\nca_file = \"nope/ca.pem\"\ncert_file = \"demo.toml\"\n"
    );
    let errors = errors_of(&text);
    let has = |needle: &str| errors.iter().any(|e| e.contains(needle));
    assert!(
        has("mqtt.tls: TLS settings need an mqtts:// broker URL"),
        "{errors:#?}"
    );
    assert!(has("mqtt.tls.ca_file: cannot read"), "{errors:#?}");
    assert!(
        has("mqtt.tls.key_file: cert_file needs key_file"),
        "{errors:#?}"
    );

    let text = format!(
        "{VALID}\n[mqtt]\nbroker = \"mqtts://127.0.0.1\"\n[mqtt.tls]\ncert_file = \"demo.toml\"\nkey_file = \"demo.toml\"\n"
    );
    let errors = errors_of(&text);
    assert!(
        errors
            .iter()
            .any(|e| e.contains("mqtt.tls.cert_file") && e.contains("no PEM certificate")),
        "{errors:#?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("mqtt.tls.key_file") && e.contains("no PEM private key")),
        "{errors:#?}"
    );
}

#[test]
fn device_labels_are_checked_with_their_key_paths() {
    let good = VALID.replace(
        "data_dir = \"/tmp/x\"",
        "data_dir = \"/tmp/x\"\nlabels = { site = \"barn-3\", board = \"pi4\", \"rack.slot\" = \"a/2:7\" }",
    );
    assert!(errors_of(&good).is_empty(), "{:?}", errors_of(&good));
    let bad = VALID.replace(
        "data_dir = \"/tmp/x\"",
        "data_dir = \"/tmp/x\"\nlabels = { \"9lives\" = \"x\", site = \"barn 3\", empty = \"\" }",
    );
    let errors = errors_of(&bad);
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(
        errors[0].starts_with("device.labels.9lives: label name"),
        "{errors:?}"
    );
    assert!(
        errors[1].starts_with("device.labels.empty: label value"),
        "{errors:?}"
    );
    assert!(
        errors[2].starts_with("device.labels.site: label value \"barn 3\""),
        "{errors:?}"
    );
    let many: Vec<String> = (0..33).map(|i| format!("k{i} = \"v\"")).collect();
    let too_many = VALID.replace(
        "data_dir = \"/tmp/x\"",
        &format!("data_dir = \"/tmp/x\"\nlabels = {{ {} }}", many.join(", ")),
    );
    assert!(errors_of(&too_many)[0].contains("33 labels; at most 32"));
}

#[test]
fn home_assistant_discovery_is_checked_with_what_it_relies_on() {
    // Off: nothing else is needed.
    assert!(errors_of(&format!("{VALID}\n[homeassistant]\n")).is_empty());
    let errors = errors_of(&format!(
        "{VALID}\n[homeassistant]\nenabled = true\ndiscovery_prefix = \"ha/\"\nstate_interval_ms = 5\ncolour = 1\n"
    ));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("homeassistant.colour: unknown field"),
        "{errors:?}"
    );
    let errors = errors_of(&format!(
        "{VALID}\n[homeassistant]\nenabled = true\ndiscovery_prefix = \"ha/\"\nstate_interval_ms = 5\n"
    ));
    for wanted in [
        "homeassistant.discovery_prefix: \"ha/\" is not a topic prefix",
        "homeassistant.state_interval_ms: must be 100 to 3600000",
        "homeassistant: Home Assistant discovery needs an [mqtt] section",
        "homeassistant: Home Assistant reads the entities' availability",
    ] {
        assert!(
            errors.iter().any(|e| e.starts_with(wanted)),
            "{wanted}: {errors:?}"
        );
    }
    // Two sensor ids that read the same once dots become underscores.
    let mut text = VALID.replace("id = \"cam\"", "id = \"cam.0\"");
    text.push_str(
        &VALID[VALID.find("[[sensors]]").unwrap()..].replace("id = \"cam\"", "id = \"cam_0\""),
    );
    text.push_str(
        "\n[mqtt]\nbroker = \"mqtt://127.0.0.1\"\n[remote]\n[homeassistant]\nenabled = true\n",
    );
    let errors = errors_of(&text);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0]
            .starts_with("sensors[1].id: \"cam_0\" and \"cam.0\" are the same Home Assistant id"),
        "{errors:?}"
    );
}
