//! The progress bar on stderr: hidden with `--quiet` or when stderr is not a terminal, so that
//! scripts and logs get the summary alone.

use std::io::IsTerminal as _;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// One bar whose length and message change with the phase.
#[derive(Debug)]
pub(crate) struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// A bar, drawn only when wanted and stderr is a terminal.
    pub(crate) fn new(quiet: bool) -> Progress {
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
        if quiet || !std::io::stderr().is_terminal() {
            bar.set_draw_target(ProgressDrawTarget::hidden());
        }
        if let Ok(style) = ProgressStyle::with_template("{prefix:>12} [{bar:30}] {pos}/{len} {msg}")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        Progress { bar }
    }

    /// Starts a phase of `len` steps.
    pub(crate) fn phase(&self, name: &'static str, len: u64) {
        self.bar.set_prefix(name);
        self.bar.set_length(len);
        self.bar.set_position(0);
        self.bar.set_message("");
    }

    /// Where the phase is, and a note.
    pub(crate) fn update(&self, pos: u64, message: String) {
        self.bar.set_position(pos);
        self.bar.set_message(message);
    }

    /// Removes the bar before the summary is printed.
    pub(crate) fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
