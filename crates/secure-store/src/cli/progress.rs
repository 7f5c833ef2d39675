//! A progress bar on stderr for long operations, shown only when stdout is
//! a terminal (so scripts and pipes get clean output) and not `--quiet`.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

/// User-interface choices from the global flags.
#[derive(Clone, Copy, Debug)]
pub struct Ui {
    pub quiet: bool,
}

impl Ui {
    /// A byte-counting bar for `total` bytes, hidden when not wanted.
    pub fn bytes(&self, total: u64, what: &str) -> ProgressBar {
        if self.quiet || !std::io::stdout().is_terminal() {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new(total);
        bar.set_style(
            ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        bar.set_message(what.to_owned());
        bar
    }
}
