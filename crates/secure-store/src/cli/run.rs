//! `secure-store run` (STUB: filled in by the run work).

use std::process::ExitCode;

#[allow(missing_debug_implementations)]
#[derive(clap::Args)]
pub struct RunArgs {}

pub fn run(_args: RunArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("secure-store run is not built yet")
}
