//! `secure-store fleet` (STUB: filled in by the fleet work).

use std::process::ExitCode;

#[allow(missing_debug_implementations)]
#[derive(clap::Subcommand)]
pub enum FleetCommand {
    /// Not built yet.
    Placeholder,
}

pub fn run(_args: FleetCommand) -> anyhow::Result<ExitCode> {
    anyhow::bail!("secure-store fleet is not built yet")
}
