//! `secure-store server` (STUB: filled in by the server work).

use std::process::ExitCode;

#[allow(missing_debug_implementations)]
#[derive(clap::Args)]
pub struct ServerArgs {}

pub fn run(_args: ServerArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("secure-store server is not built yet")
}
