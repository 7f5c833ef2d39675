//! `secure-store completions SHELL` and `secure-store man [--out DIR]`:
//! shell completion scripts and manual pages, generated from the same clap
//! definitions that parse the command line (ripgrep's approach), so they
//! cannot drift from the real options.
//!
//! Completions come from `clap_complete` (bash, zsh, fish, elvish,
//! PowerShell); man pages from `clap_mangen` in roff, section 1: one page for
//! `secure-store` and one per visible subcommand at every depth
//! (`secure-store-fleet-enroll.1`), the names `man` looks up for
//! `man secure-store-fleet-enroll`. Hidden commands (`bench`) get none.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::CommandFactory;
use clap_complete::Shell;

/// The documentation commands, flattened into the top-level command list.
#[derive(clap::Subcommand, Debug)]
pub enum ManualCommand {
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(after_help = "Examples:
  secure-store completions bash > /etc/bash_completion.d/secure-store
  secure-store completions zsh > \"${fpath[1]}/_secure-store\"
  secure-store completions fish > ~/.config/fish/completions/secure-store.fish")]
    Completions {
        /// The shell to write the script for.
        #[arg(value_enum, env = "SECURE_STORE_COMPLETIONS_SHELL")]
        shell: Shell,
    },
    /// Print the manual page (roff), or write one page per command into a folder.
    #[command(after_help = "Examples:
  secure-store man | man -l -
  secure-store man --out /usr/local/share/man/man1 && mandb")]
    Man {
        /// Write secure-store.1 and one secure-store-COMMAND.1 per subcommand here
        /// (created if missing) instead of printing the main page.
        #[arg(long, value_name = "DIR", env = "SECURE_STORE_MAN_OUT")]
        out: Option<PathBuf>,
    },
}

/// Runs one documentation command.
pub fn run(cmd: ManualCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ManualCommand::Completions { shell } => completions(shell),
        ManualCommand::Man { out: None } => {
            let mut page = Vec::new();
            clap_mangen::Man::new(super::Cli::command()).render(&mut page)?;
            std::io::stdout().lock().write_all(&page)?;
            Ok(ExitCode::SUCCESS)
        }
        ManualCommand::Man { out: Some(dir) } => {
            let pages = man_pages(&dir)?;
            for page in pages {
                println!("{}", page.display());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn completions(shell: Shell) -> anyhow::Result<ExitCode> {
    let mut cmd = super::Cli::command();
    let name = cmd.get_name().to_owned();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, name.clone(), &mut script);
    if shell == Shell::Bash {
        script = fix_bash_hyphenated_name(&script, &name);
    }
    std::io::stdout().lock().write_all(&script)?;
    Ok(ExitCode::SUCCESS)
}

/// clap_complete's bash script spells the state of a subcommand two ways
/// when the program name has a hyphen (clap-rs/clap#6421): the loop builds
/// `secure__store__subcmd__fleet`, the case arms match
/// `secure__subcmd__store__subcmd__fleet`, so options after a subcommand
/// never complete. Rewrites the arms to the loop's spelling (a no-op once
/// the generator is fixed).
fn fix_bash_hyphenated_name(script: &[u8], name: &str) -> Vec<u8> {
    let text = String::from_utf8_lossy(script);
    let wrong = format!("{}__subcmd__", name.replace('-', "__subcmd__"));
    let right = format!("{}__subcmd__", name.replace('-', "__"));
    text.replace(&wrong, &right).into_bytes()
}

/// Writes every page into `dir`; returns their paths, sorted.
fn man_pages(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    clap_mangen::generate_to(super::Cli::command(), dir)
        .with_context(|| format!("cannot write the manual pages into {}", dir.display()))?;
    let mut pages = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let path = entry?.path();
        let is_ours = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("secure-store") && n.ends_with(".1"));
        if is_ours {
            pages.push(path);
        }
    }
    pages.sort();
    Ok(pages)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bash_case_arms_use_the_loop_spelling() {
        let broken = b"cmd=\"secure__store__subcmd__fleet\"\n        secure__subcmd__store__subcmd__fleet)\n";
        let fixed = fix_bash_hyphenated_name(broken, "secure-store");
        assert_eq!(
            String::from_utf8(fixed).unwrap(),
            "cmd=\"secure__store__subcmd__fleet\"\n        secure__store__subcmd__fleet)\n"
        );
    }

    #[test]
    fn one_page_per_visible_command_and_none_for_hidden_ones() {
        let dir = tempfile::tempdir().unwrap();
        let pages = man_pages(dir.path()).unwrap();
        let names: Vec<String> = pages
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert!(names.contains(&"secure-store.1".to_owned()), "{names:?}");
        for sub in super::super::Cli::command().get_subcommands() {
            let page = format!("secure-store-{}.1", sub.get_name());
            assert_eq!(
                names.contains(&page),
                !sub.is_hide_set(),
                "{page} in {names:?}"
            );
        }
    }
}
