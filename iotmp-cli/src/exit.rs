//! The exit statuses of `iotmp`, one meaning each, so that scripts can tell a bad command line
//! from bad data from a failure of the machine.
//!
//! | Code | Meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | runtime failure: an I/O error while reading or writing, … |
//! | 2 | usage or configuration error: bad option, unreadable config file or input file, missing `--dialect`, unknown user or device, … |
//! | 3 | data error: undecodable input, a message that cannot be encoded, a replay that diverged |
//!
//! Clap's own usage errors already exit with 2, which is why usage errors own that number here.

use std::fmt::Write as _;
use std::process::ExitCode;

/// Why `iotmp` stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exit {
    /// Everything worked.
    Success,
    /// The command was right and the data was fine, but something failed at run time.
    Failure,
    /// The command line, the environment or the config file is wrong: fix the invocation.
    Usage,
    /// The input data is wrong: a frame that does not decode, a message that cannot be encoded,
    /// a replay that diverged.
    Data,
}

impl Exit {
    /// Every status, in numeric order (for the help text and the tests of this module).
    pub(crate) const ALL: [Exit; 4] = [Exit::Success, Exit::Failure, Exit::Usage, Exit::Data];

    /// The process exit status.
    pub(crate) const fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Failure => 1,
            Exit::Usage => 2,
            Exit::Data => 3,
        }
    }

    /// One line for `--help`.
    pub(crate) const fn meaning(self) -> &'static str {
        match self {
            Exit::Success => "success",
            Exit::Failure => "runtime failure (an I/O error while reading or writing, ...)",
            Exit::Usage => {
                "usage or configuration error (bad option, unreadable config or input file, missing --dialect, unknown user or device, ...)"
            }
            Exit::Data => {
                "data error (undecodable input, a message that cannot be encoded, a replay that diverged)"
            }
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit.code())
    }
}

/// The "Exit status" section of `--help`.
pub(crate) fn help_section() -> String {
    let mut text = String::from("Exit status:\n");
    for exit in Exit::ALL {
        let _ = writeln!(text, "  {}  {}", exit.code(), exit.meaning());
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_ordered() {
        let codes: Vec<u8> = Exit::ALL.iter().map(|e| e.code()).collect();
        assert_eq!(codes, [0, 1, 2, 3]);
    }

    #[test]
    fn help_lists_every_code() {
        let help = help_section();
        for exit in Exit::ALL {
            assert!(help.contains(&format!("  {}  ", exit.code())), "{help}");
        }
    }
}
