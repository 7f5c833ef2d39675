//! The command line: parsing (clap derive, every option also from an
//! environment variable), dispatch, and the one place that prints results
//! and picks exit codes. Errors print as one `error: …` line (with their
//! causes joined by `: `), exit code 1; usage errors exit 2 (clap).

mod admin;
mod bench;
mod demo;
mod env;
mod fleet;
mod key;
mod manual;
mod mount;
mod progress;
mod run;
mod seal;
mod server;
mod store;

use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::logging::{self, LogFormat};

const AFTER_HELP: &str = "\
Quick start (operator side, no server needed):
  secure-store keygen --out store.key           # mode 0600
  export STORE_KEY_FILE=store.key               # or STORE_PASSWORD=<the key>
  secure-store store init ./store
  secure-store store encrypt ./config ./store
  printf %s \"$API_KEY\" | secure-store env encrypt API_KEY   # ENCRYPTED_API_KEY=v1....
  secure-store store ls ./store

Every store opens with a stock rclone too:
  cd store && RCLONE_CONFIG_PASS=\"$(cat ../store.key)\" rclone --config encrypt.conf ls encrypted_storage:";

/// Secure Store: network-bound encryption for IoT fleets.
///
/// Encrypts folders into rclone-compatible stores and environment values
/// into ENCRYPTED_NAME=… values, all unlocked by one store key.
// No `Debug`: the parsed arguments can hold a key or a secret value.
#[allow(missing_debug_implementations)]
#[derive(Parser)]
#[command(name = "secure-store", version, after_help = AFTER_HELP, max_term_width = 100)]
pub struct Cli {
    /// Log line format on stderr.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "human",
        env = "SECURE_STORE_LOG_FORMAT"
    )]
    log_format: LogFormat,

    /// More log output (-v debug, -vv trace). SECURE_STORE_LOG=FILTER overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    verbose: u8,

    /// Only warnings and errors; no progress bar.
    #[arg(short, long, global = true, env = "SECURE_STORE_QUIET")]
    quiet: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print a new random store key (64 hex characters).
    ///
    /// The store key unlocks a store's encrypt.conf and every ENCRYPTED_*
    /// value made with it. Keep it off the devices: later it is what the
    /// Store Server hands out, or what a sealed envelope wraps.
    #[command(
        after_help = "Examples:\n  secure-store keygen --out store.key\n  export STORE_PASSWORD=$(secure-store keygen)"
    )]
    Keygen {
        /// Write the key to this new file (mode 0600) instead of stdout.
        #[arg(long, value_name = "FILE", env = "SECURE_STORE_KEYGEN_OUT")]
        out: Option<std::path::PathBuf>,
    },
    /// Encrypt and decrypt environment values (ENCRYPTED_NAME=…).
    #[command(subcommand)]
    Env(env::EnvCommand),
    /// Create, fill, read, check and re-key encrypted stores (rclone crypt folders).
    #[command(subcommand)]
    Store(store::StoreCommand),
    /// Create a fleet (CA, server and admin certificates, Tang keys) and enroll devices.
    #[command(subcommand)]
    Fleet(fleet::FleetCommand),
    /// Run the Store Server (mutual TLS, policy, Tang, audit).
    Server(Box<server::ServerArgs>),
    /// Manage a running Store Server: devices, revocations, rules, audit.
    Admin(admin::AdminArgs),
    /// Wrap a store key into a clevis-compatible envelope (tang pin).
    Seal(seal::SealArgs),
    /// Recover a store key from an envelope through the server.
    Unseal(seal::UnsealArgs),
    /// On a device: unlock, decrypt env values, mount, then run the app.
    Run(Box<run::RunArgs>),
    /// Mount the decrypted view of a store (FUSE).
    Mount(mount::MountArgs),
    /// A complete end-to-end demo on loopback (no arguments needed).
    Demo(demo::DemoArgs),
    /// Load generators for benchmarks (scripts/bench).
    #[command(subcommand, hide = true)]
    Bench(bench::BenchCommand),
    #[command(flatten)]
    Manual(manual::ManualCommand),
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let verbosity = if cli.quiet {
        -1
    } else {
        cli.verbose.min(2) as i8
    };
    logging::init(cli.log_format, verbosity);
    if !matches!(cli.command, Command::Run(_)) {
        crate::crypt::output::catch_interrupts(); // `run` forwards signals itself
    }
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            // A closed stdout (`| head`) is not an error worth a message.
            if err
                .downcast_ref::<std::io::Error>()
                .map(std::io::Error::kind)
                == Some(std::io::ErrorKind::BrokenPipe)
            {
                return ExitCode::SUCCESS;
            }
            let _ = writeln!(std::io::stderr(), "error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let ui = progress::Ui { quiet: cli.quiet };
    match cli.command {
        Command::Keygen { out } => key::keygen(out.as_deref()),
        Command::Env(cmd) => env::run(cmd),
        Command::Store(cmd) => store::run(cmd, ui),
        Command::Fleet(cmd) => fleet::run(cmd),
        Command::Server(args) => server::run(*args),
        Command::Admin(args) => admin::run(args),
        Command::Seal(args) => seal::run(args),
        Command::Unseal(args) => seal::run_unseal(args),
        Command::Run(args) => run::run(*args),
        Command::Mount(args) => mount::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Bench(cmd) => bench::run(cmd),
        Command::Manual(cmd) => manual::run(cmd),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
