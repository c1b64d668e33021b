//! One module per subcommand. Each exposes `run(args, config section) -> Result<(), ItsError>`
//! and an error type whose `exit()` says which status it ends with; [`run`] only dispatches.

pub(crate) mod bench;
pub(crate) mod decode;
pub(crate) mod demo;
pub(crate) mod device;
pub(crate) mod encode;
pub(crate) mod registry;
pub(crate) mod replay;
pub(crate) mod server;
pub(crate) mod stop;

use crate::cli::{Command, DeviceArgs, DeviceVerb};
use crate::config::Config;
use crate::error::CliError;

/// Runs one subcommand with its section of the config file.
pub(crate) fn run(command: Command, config: &Config) -> Result<(), CliError> {
    match command {
        Command::Bench(args) => bench::run(args, &config.server)?,
        Command::Decode(args) => decode::run(args, &config.decode)?,
        Command::Encode(args) => encode::run(args, &config.encode)?,
        Command::Replay(args) => replay::run(args)?,
        Command::User(args) => registry::users::run(args, &config.server)?,
        Command::Recorder(args) => registry::recorders::run(args.command, &config.server)?,
        Command::Server(args) => server::run(&args, &config.server)?,
        // The demo runs on its own defaults: the config file configures real roles.
        Command::Demo(args) => demo::run(&args)?,
        // `iotmp device add|list|remove` manage the registry; the device role's arm follows.
        Command::Device(DeviceArgs {
            verb: Some(DeviceVerb::Registry(command)),
            ..
        }) => registry::devices::run(command, &config.server)?,
        Command::Device(DeviceArgs {
            verb: Some(DeviceVerb::Connect(args)),
            ..
        }) => device::run(&args, &config.device)?,
        Command::Device(DeviceArgs {
            verb: None,
            connect,
        }) => device::run(&connect, &config.device)?,
    }
    Ok(())
}

/// The log level when neither -v nor the config file sets one: the long-running roles report
/// their connections at info level (a silent device gives no sign that it is online); the
/// other commands only warn. RUST_LOG still wins.
pub(crate) fn default_verbosity(command: &Command) -> u8 {
    match command {
        Command::Device(DeviceArgs {
            verb: None | Some(DeviceVerb::Connect(_)),
            ..
        })
        | Command::Server(_) => 1,
        _ => 0,
    }
}
