//! `iotmp`: one binary for both IOTMP roles.
//!
//! A device (`iotmp device`), a server with the HTTP / WebSocket / SSE API of spec chapter 8
//! (`iotmp server`) and its registry (`user`, `device`, `recorder`), a demo of both, load
//! generators (`iotmp bench`), and tools for frames and traces (`decode`, `encode`, `replay`),
//! each a subcommand. This file only wires the parts together:
//!
//! * [`cli`]: the clap types; [`values`]: option values shared with the config file;
//! * [`config`]: the TOML config file; [`logging`]: tracing on stderr;
//! * [`commands`]: one module per subcommand;
//! * [`exit`]: the exit statuses; [`error`]: the top-level error and how it is printed.

mod cli;
mod commands;
mod config;
mod error;
mod exit;
mod help;
mod hex;
mod input;
mod logging;
mod output;
mod store;
mod values;

use std::process::ExitCode;

use clap::Parser as _;

use crate::cli::Cli;
use crate::config::Config;
use crate::error::CliError;
use crate::exit::Exit;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version come through here too: printed on stdout, they succeed.
            let exit = if e.use_stderr() {
                Exit::Usage
            } else {
                Exit::Success
            };
            let _ = e.print();
            return exit.into();
        }
    };
    match run(cli) {
        Ok(()) => Exit::Success.into(),
        Err(e) => {
            e.report(&mut std::io::stderr().lock());
            e.exit().into()
        }
    }
}

fn run(cli: Cli) -> Result<(), CliError> {
    // The config file comes first: it may set the verbosity. Its errors are printed by `main`,
    // which needs no logger.
    let config = Config::load(cli.global.config.as_deref())?;
    let verbose = match cli.global.verbose {
        0 => config
            .verbose
            .unwrap_or_else(|| commands::default_verbosity(&cli.command)),
        n => n,
    };
    logging::init(verbose)?;
    if let Some(path) = &cli.global.config {
        tracing::debug!("config read from {}", path.display());
    }
    commands::run(cli.command, &config)
}
