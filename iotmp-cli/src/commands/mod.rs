//! One module per subcommand. Each exposes `run(args, config section) -> Result<(), ItsError>`
//! and an error type whose `exit()` says which status it ends with; [`run`] only dispatches.

pub(crate) mod decode;
pub(crate) mod encode;
pub(crate) mod replay;

use crate::cli::Command;
use crate::config::Config;
use crate::error::CliError;

/// Runs one subcommand with its section of the config file.
pub(crate) fn run(command: Command, config: &Config) -> Result<(), CliError> {
    match command {
        Command::Decode(args) => decode::run(args, &config.decode)?,
        Command::Encode(args) => encode::run(args, &config.encode)?,
        Command::Replay(args) => replay::run(args)?,
    }
    Ok(())
}
