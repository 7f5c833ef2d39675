//! `secure-store seal` (STUB: filled in by the seal work).

use std::process::ExitCode;

#[allow(missing_debug_implementations)]
#[derive(clap::Args)]
pub struct SealArgs {}

pub fn run(_args: SealArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("secure-store seal is not built yet")
}

#[allow(missing_debug_implementations)]
#[derive(clap::Args)]
pub struct UnsealArgs {}

pub fn run_unseal(_args: UnsealArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("secure-store unseal is not built yet")
}
