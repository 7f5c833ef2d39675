//! `secure-store admin` (STUB: filled in by the admin work).

use std::process::ExitCode;

#[allow(missing_debug_implementations)]
#[derive(clap::Args)]
pub struct AdminArgs {}

pub fn run(_args: AdminArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("secure-store admin is not built yet")
}
