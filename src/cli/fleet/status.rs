//! `edgeinfer fleet status`: every device under the prefix as its retained messages show it, as
//! a table or as JSON.

use super::directory::DeviceView;
use super::observer::Observer;
use super::SelectArgs;
use crate::cli::operator::BrokerArgs;
use crate::cli::EXIT_CONFIG;
use clap::Args;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};
use tracing::error;

/// Arguments of `edgeinfer fleet status`.
#[derive(Args)]
pub(super) struct StatusArgs {
    #[command(flatten)]
    broker: BrokerArgs,
    #[command(flatten)]
    select: SelectArgs,
    /// Print JSON (an array of devices) instead of a table.
    #[arg(long)]
    json: bool,
    /// How long to wait for the broker and the retained messages.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Quiet time after which the retained messages count as all in.
    #[arg(long, default_value = "300ms", value_parser = humantime::parse_duration)]
    settle: Duration,
}

pub(super) fn run(args: &StatusArgs) -> ExitCode {
    let (mqtt, address) = match args.broker.mqtt_config() {
        Ok(c) => c,
        Err(e) => {
            error!("--broker {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let selector = match args.select.selector() {
        Ok(s) => s,
        Err(e) => {
            error!("{e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let runtime = match crate::cli::build_runtime(&mut tokio::runtime::Builder::new_current_thread())
    {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let devices = runtime.block_on(async {
        let observer = Observer::start(&mqtt, &address, args.settle);
        let ready = tokio::time::timeout(args.timeout, observer.ready()).await;
        let devices: Vec<DeviceView> = observer
            .directory()
            .borrow()
            .devices()
            .values()
            .cloned()
            .collect();
        observer.close().await;
        ready.map(|_| devices)
    });
    let Ok(devices) = devices else {
        error!(broker = %mqtt.broker, timeout = ?args.timeout, "No answer from the broker");
        return ExitCode::FAILURE;
    };
    let unknown = selector.unknown_keys(devices.iter());
    if !unknown.is_empty() {
        error!("--select: no device has the label {}", unknown.join(", "));
        return ExitCode::from(EXIT_CONFIG);
    }
    let chosen: Vec<&DeviceView> = devices.iter().filter(|d| selector.matches(d)).collect();
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&chosen).unwrap_or_default()
        );
    } else {
        print!("{}", table(&chosen, SystemTime::now()));
    }
    ExitCode::SUCCESS
}

/// The devices as a table, ages counted to `now`.
pub(super) fn table(devices: &[&DeviceView], now: SystemTime) -> String {
    let mut rows = vec![[
        "DEVICE",
        "STATE",
        "SINCE",
        "VERSION",
        "MODELS",
        "BACKLOG",
        "OLDEST",
        "TELEMETRY",
        "LABELS",
    ]
    .map(String::from)];
    for d in devices {
        let (state, since) = if d.online {
            ("online".to_string(), ago(d.connected_at.as_deref(), now))
        } else if let Some(at) = &d.stopped_at {
            ("offline".to_string(), ago(Some(at), now))
        } else {
            // A last will is sent later than it is written: the device was last heard of at its
            // last telemetry, or when it connected.
            let seen = newest(d.telemetry_at.as_deref(), d.connected_at.as_deref());
            ("offline".to_string(), format!("seen {}", ago(seen, now)))
        };
        let models = d
            .models
            .iter()
            .map(|m| {
                let mut s = format!("{}={}/{}", m.id, m.version, m.backend);
                if m.trial {
                    s.push_str(" (trial)");
                }
                if let Some(shadow) = &m.shadow {
                    s.push_str(&format!(" (shadow {shadow})"));
                }
                s
            })
            .collect::<Vec<_>>()
            .join(" ");
        let labels = d
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        rows.push([
            d.device.clone(),
            state,
            since,
            d.version.clone().unwrap_or_else(|| "-".into()),
            if models.is_empty() {
                "-".into()
            } else {
                models
            },
            d.backlog.map_or("-".into(), |b| b.to_string()),
            d.oldest_age_secs.map_or("-".into(), secs),
            ago(d.telemetry_at.as_deref(), now),
            if labels.is_empty() {
                "-".into()
            } else {
                labels
            },
        ]);
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in &rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// The later of two RFC 3339 times.
fn newest<'a>(a: Option<&'a str>, b: Option<&'a str>) -> Option<&'a str> {
    match (a.and_then(parse), b.and_then(parse)) {
        (Some(x), Some(y)) if y > x => b,
        (Some(_), _) => a,
        _ => b,
    }
}

fn parse(t: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(t).ok()
}

/// `3m ago` for an RFC 3339 time; `-` when there is none.
fn ago(at: Option<&str>, now: SystemTime) -> String {
    match at.and_then(parse) {
        Some(t) => format!(
            "{} ago",
            secs(now.duration_since(t).unwrap_or_default().as_secs())
        ),
        None => "-".into(),
    }
}

/// Seconds, shortly: `45s`, `12m`, `3h`, `2d`.
fn secs(s: u64) -> String {
    match s {
        s if s < 120 => format!("{s}s"),
        s if s < 2 * 3600 => format!("{}m", s / 60),
        s if s < 2 * 86400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_shows_state_age_models_and_labels() {
        let now = humantime::parse_rfc3339("2026-12-04T12:00:00Z").unwrap();
        let online = DeviceView {
            device: "d1".into(),
            online: true,
            connected_at: Some("2026-12-04T11:57:00Z".into()),
            version: Some("0.9.0".into()),
            backlog: Some(4),
            oldest_age_secs: Some(30),
            telemetry_at: Some("2026-12-04T11:59:50Z".into()),
            labels: [("site".to_string(), "a".to_string())].into(),
            models: vec![super::super::directory::ModelView {
                id: "m".into(),
                version: "abc".into(),
                backend: "tract".into(),
                ..Default::default()
            }],
            ..DeviceView::default()
        };
        let lost = DeviceView {
            device: "d2".into(),
            connected_at: Some("2026-12-04T09:00:00Z".into()),
            telemetry_at: Some("2026-12-04T11:00:00Z".into()),
            ..DeviceView::default()
        };
        let t = table(&[&online, &lost], now);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("DEVICE"), "{t}");
        assert!(lines[1].contains("online"), "{t}");
        assert!(lines[1].contains("3m ago"), "{t}");
        assert!(
            lines[1].contains("m=abc/tract") && lines[1].contains("site=a"),
            "{t}"
        );
        assert!(
            lines[2].contains("offline") && lines[2].contains("seen 60m ago"),
            "{t}"
        );
    }
}
