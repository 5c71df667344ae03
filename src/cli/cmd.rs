//! `edgeinfer cmd --broker URL --device ID --key K NAME [ARG=VALUE...]`: sends one signed command
//! to a device and prints its result.

use super::operator::{self, BrokerArgs};
use super::EXIT_CONFIG;
use crate::config::{BrokerAddress, MqttConfig};
use crate::manage::auth::{self, Command, Envelope};
use crate::mqtt::session::{all_events, Connection, OnError};
use crate::mqtt::{options, topics};
use clap::Args;
use rumqttc::{Event, Packet, QoS};
use serde_json::Value;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use tracing::error;

/// Arguments of `edgeinfer cmd`.
#[derive(Args)]
pub(super) struct CmdArgs {
    #[command(flatten)]
    broker: BrokerArgs,
    /// Device id.
    #[arg(long)]
    device: String,
    /// Operator private key (from `edgeinfer keygen`).
    #[arg(long)]
    key: PathBuf,
    /// Seconds the command stays valid.
    #[arg(long, default_value_t = 60)]
    ttl: u64,
    /// How long to wait for the result.
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Command: ping, get-config, set-config, restart-sensor, list-models, outbox-stats.
    name: String,
    /// Arguments as KEY=VALUE (VALUE as JSON if it parses, else text; @FILE for a file's text),
    /// e.g. `sensor=cam0` or `toml=@new.toml`.
    args: Vec<String>,
}

pub(super) fn run(args: &CmdArgs) -> ExitCode {
    let key = match auth::read_signing_key(&args.key) {
        Ok(k) => k,
        Err(e) => {
            error!("{e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let (mqtt, address) = match args.broker.mqtt_config() {
        Ok(c) => c,
        Err(e) => {
            error!("--broker {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let command_args = match parse_args(&args.args) {
        Ok(a) => a,
        Err(e) => {
            error!("{e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let (command, envelope) = operator::sign(
        &key,
        &args.device,
        &args.name,
        "cmd",
        args.ttl,
        command_args,
    );
    let runtime = match super::build_runtime(&mut tokio::runtime::Builder::new_current_thread()) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let started = Instant::now();
    let outcome = runtime.block_on(async {
        tokio::time::timeout(
            args.timeout,
            exchange(&mqtt, &address, &args.device, &command, &envelope),
        )
        .await
    });
    match outcome {
        Err(_) => {
            error!(timeout = ?args.timeout, "No result from the device");
            ExitCode::FAILURE
        }
        Ok(Err(e)) => {
            error!(error = %e, "Command not sent");
            ExitCode::FAILURE
        }
        Ok(Ok(result)) => {
            tracing::info!(
                round_trip_ms = started.elapsed().as_millis() as u64,
                "Result received"
            );
            println!(
                "{}",
                serde_json::to_string_pretty(&result).unwrap_or_default()
            );
            if result["ok"] == Value::Bool(true) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// `KEY=VALUE` pairs as a JSON object.
fn parse_args(pairs: &[String]) -> Result<Value, String> {
    let mut map = serde_json::Map::new();
    for pair in pairs {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| format!("argument \"{pair}\": expected KEY=VALUE"))?;
        let value = if let Some(file) = v.strip_prefix('@') {
            Value::String(
                std::fs::read_to_string(file).map_err(|e| format!("argument {k}: {file}: {e}"))?,
            )
        } else {
            serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_string()))
        };
        map.insert(k.to_string(), value);
    }
    Ok(Value::Object(map))
}

/// Subscribes to the result topic, publishes the command and waits for its result.
async fn exchange(
    mqtt: &MqttConfig,
    address: &BrokerAddress,
    device: &str,
    command: &Command,
    envelope: &Envelope,
) -> Result<Value, String> {
    let mut opts = options::build(
        mqtt,
        address,
        format!("edgeinfer-cmd-{}", std::process::id()),
    );
    opts.set_max_packet_size(mqtt.max_packet_bytes, mqtt.max_packet_bytes);
    let mut conn = Connection::open(opts, 16, 16, all_events, OnError::Stop);
    let client = conn.client().clone();
    let prefix = &mqtt.topic_prefix;
    let result_topic = topics::command_result(prefix, device, &command.command);
    let payload = serde_json::to_vec(envelope).map_err(|e| e.to_string())?;
    loop {
        let event = conn
            .next()
            .await
            .ok_or("the MQTT event loop stopped")?
            .map_err(|e| e.to_string())?;
        match event {
            Event::Incoming(Packet::ConnAck(_)) => {
                conn.request(client.subscribe(&result_topic, QoS::AtLeastOnce), None)
                    .await?;
            }
            Event::Incoming(Packet::SubAck(_)) => {
                let topic = topics::command(prefix, device, &command.command);
                let publish = client.publish(topic, QoS::AtLeastOnce, false, payload.clone());
                conn.request(publish, None).await?;
            }
            Event::Incoming(Packet::Publish(p)) if p.topic == result_topic => {
                let Ok(result) = serde_json::from_slice::<Value>(&p.payload) else {
                    continue;
                };
                if result["id"] == Value::String(command.id.clone()) {
                    conn.close(Duration::from_millis(500)).await;
                    return Ok(result);
                }
            }
            _ => {}
        }
    }
}
