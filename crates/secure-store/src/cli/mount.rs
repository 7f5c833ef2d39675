//! `secure-store mount` (STUB: filled in by the mount work).

use std::process::ExitCode;

#[allow(missing_debug_implementations)]
#[derive(clap::Args)]
pub struct MountArgs {}

pub fn run(_args: MountArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("secure-store mount is not built yet")
}
