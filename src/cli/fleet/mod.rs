//! `edgeinfer fleet`: the operator's side for many devices at once: `status` shows every device
//! under the topic prefix, `rollout` updates a model on a selection of them in waves.

mod directory;
mod observer;
mod rollout;
mod select;
mod status;
mod waves;

use clap::{Args, Subcommand};
use std::process::ExitCode;

/// Arguments of `edgeinfer fleet`.
#[derive(Args)]
pub(super) struct FleetArgs {
    #[command(subcommand)]
    command: FleetCommand,
}

#[derive(Subcommand)]
enum FleetCommand {
    /// Every device's state, versions, backlog and last telemetry, from their retained messages.
    Status(Box<status::StatusArgs>),
    /// Push a model to the selected devices in waves, stopping when too many fail; with a shadow
    /// gate, activate it only where it agrees with the serving model.
    Rollout(Box<rollout::RolloutArgs>),
}

/// Which devices: by id glob and by labels.
#[derive(Args, Clone, Default)]
pub(super) struct SelectArgs {
    /// Device id glob (`barn-*`); repeat for several. Default: every device.
    #[arg(long = "device")]
    devices: Vec<String>,
    /// Labels every selected device has, as `KEY=VALUE[,KEY=VALUE...]` (values may be globs).
    #[arg(long)]
    select: Vec<String>,
}

impl SelectArgs {
    fn selector(&self) -> Result<select::Selector, String> {
        select::Selector::parse(&self.devices, &self.select)
    }
}

pub(super) fn run(args: &FleetArgs) -> ExitCode {
    match &args.command {
        FleetCommand::Status(a) => status::run(a),
        FleetCommand::Rollout(a) => rollout::run(a),
    }
}
