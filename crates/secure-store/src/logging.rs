//! `tracing` set-up: human-readable lines on stderr by default, one JSON
//! object per line with `--log-format json`. Verbosity from `-v`/`-q` or
//! the `SECURE_STORE_LOG` filter (`RUST_LOG` syntax). Nothing logged
//! anywhere in this crate may contain a key or plaintext.

use tracing_subscriber::EnvFilter;

/// Output shape of log lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Short human-readable lines.
    Human,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Installs the global subscriber. `verbosity`: 0 = info, 1 = debug,
/// 2+ = trace, negative = warnings only.
pub fn init(format: LogFormat, verbosity: i8) {
    let default = match verbosity {
        i8::MIN..=-1 => "warn",
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_env("SECURE_STORE_LOG")
        .unwrap_or_else(|_| EnvFilter::new(format!("secure_store={default},ssformat={default}")));
    // Colours only for a person at a terminal: a pipe, a file or a log
    // collector gets plain text (and NO_COLOR turns colours off anyway).
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(false);
    // A second init (tests) is harmless: keep the first subscriber.
    let _ = match format {
        LogFormat::Human => builder.without_time().try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
