//! `secure-store env encrypt|decrypt`.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use ssformat::env::{self as envfmt, Format, ENCRYPTED_PREFIX};
use zeroize::Zeroizing;

use super::key::KeyArgs;
use crate::envfile;

// No `Debug`: the parsed arguments can hold a key or a secret value.
#[allow(missing_debug_implementations)]
#[derive(clap::Subcommand)]
pub enum EnvCommand {
    /// Encrypt one value; prints ENCRYPTED_NAME=… for a dashboard or .env file.
    ///
    /// The default format v1 binds the value to NAME: pasted under another
    /// variable name it will not decrypt. v0 is the original project's
    /// format, for devices still running the original client.
    #[command(after_help = "\
Examples:
  printf %s \"$API_KEY\" | secure-store env encrypt API_KEY     # value from stdin
  secure-store env encrypt --format v0 API_KEY < api_key.txt
  secure-store env encrypt DB_URL 'postgres://…'               # works, but stays in shell history")]
    Encrypt {
        /// Variable name (letters, digits, _); an ENCRYPTED_ prefix is dropped.
        name: String,
        /// The value; read from stdin when omitted (one trailing newline dropped).
        value: Option<String>,
        /// Output format: v1 (name-bound, with key id) or v0 (original project).
        #[arg(long, default_value = "v1", env = "SECURE_STORE_ENV_FORMAT", value_parser = parse_format)]
        format: Format,
        /// Keep a trailing newline of a value read from stdin.
        #[arg(long, env = "SECURE_STORE_KEEP_NEWLINE")]
        keep_newline: bool,
        #[command(flatten)]
        key: KeyArgs,
    },
    /// Decrypt every ENCRYPTED_* variable; prints NAME=value lines.
    ///
    /// Reads the process environment, or a dotenv file with --env-file.
    /// Both formats (v0, v1) are accepted. If any value fails, no plaintext
    /// is printed at all and each failing variable is named.
    #[command(after_help = "\
Examples:
  secure-store env decrypt --env-file .env.encrypted
  ENCRYPTED_API_KEY=v1.… secure-store env decrypt")]
    Decrypt {
        /// A dotenv file to read instead of the environment.
        #[arg(long, value_name = "FILE", env = "SECURE_STORE_ENV_FILE")]
        env_file: Option<PathBuf>,
        #[command(flatten)]
        key: KeyArgs,
    },
}

fn parse_format(s: &str) -> Result<Format, String> {
    s.parse::<Format>()
        .map_err(|_| "expected v0 or v1".to_owned())
}

pub fn run(cmd: EnvCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        EnvCommand::Encrypt {
            name,
            value,
            format,
            keep_newline,
            key,
        } => {
            let name = name
                .strip_prefix(ENCRYPTED_PREFIX)
                .unwrap_or(&name)
                .to_owned();
            envfmt::validate_name(&name).with_context(|| format!("variable name {name:?}"))?;
            let plaintext = match value {
                Some(v) => {
                    tracing::warn!("the value was given on the command line, where other users can see it; prefer stdin");
                    Zeroizing::new(v.into_bytes())
                }
                None => read_stdin(keep_newline)?,
            };
            let key = key.load()?;
            let value =
                envfmt::encrypt(format, key.expose(), &name, &plaintext, crate::rng::bytes());
            println!("{ENCRYPTED_PREFIX}{name}={value}");
            Ok(ExitCode::SUCCESS)
        }
        EnvCommand::Decrypt { env_file, key } => {
            let vars = match &env_file {
                Some(path) => {
                    let text = Zeroizing::new(
                        std::fs::read_to_string(path)
                            .with_context(|| format!("cannot read {}", path.display()))?,
                    );
                    let pairs =
                        envfile::parse_dotenv(&text).with_context(|| path.display().to_string())?;
                    envfile::encrypted_vars(pairs.into_iter().map(|(k, v)| (k.into(), v.into())))
                }
                None => envfile::encrypted_vars(std::env::vars_os()),
            };
            let key = key.load()?;
            decrypt_all(&vars, key.expose())
        }
    }
}

fn read_stdin(keep_newline: bool) -> anyhow::Result<Zeroizing<Vec<u8>>> {
    let mut buf = Zeroizing::new(Vec::new());
    std::io::stdin()
        .read_to_end(&mut buf)
        .context("cannot read the value from stdin")?;
    if !keep_newline {
        let len = buf.len();
        if buf.ends_with(b"\r\n") {
            buf.truncate(len - 2);
        } else if buf.ends_with(b"\n") {
            buf.truncate(len - 1);
        }
    }
    Ok(buf)
}

fn decrypt_all(vars: &[(String, String)], key: &str) -> anyhow::Result<ExitCode> {
    if vars.is_empty() {
        bail!("no {ENCRYPTED_PREFIX}* variables found");
    }
    let mut lines = Vec::with_capacity(vars.len());
    let mut failures = Vec::new();
    for (name, value) in vars {
        match envfmt::decrypt(key, name, value) {
            Ok(plain) => match std::str::from_utf8(&plain) {
                Ok(text) => lines.push(Zeroizing::new(envfile::render_line(name, text))),
                Err(_) => failures.push(format!(
                    "{ENCRYPTED_PREFIX}{name}: the decrypted value is not UTF-8 text"
                )),
            },
            Err(e) => failures.push(format!("{ENCRYPTED_PREFIX}{name}: {e}")),
        }
    }
    if !failures.is_empty() {
        for failure in &failures {
            eprintln!("error: {failure}");
        }
        eprintln!(
            "error: {} of {} values did not decrypt; printed none",
            failures.len(),
            vars.len()
        );
        return Ok(ExitCode::FAILURE);
    }
    let mut out = std::io::stdout().lock();
    for line in &lines {
        writeln!(out, "{}", line.as_str())?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
