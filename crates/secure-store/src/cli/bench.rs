//! `secure-store bench` (STUB: filled in by the bench work).

use std::process::ExitCode;

#[allow(missing_debug_implementations)]
#[derive(clap::Subcommand)]
pub enum BenchCommand {
    /// Not built yet.
    Placeholder,
}

pub fn run(_args: BenchCommand) -> anyhow::Result<ExitCode> {
    anyhow::bail!("secure-store bench is not built yet")
}
