//! `iotmp user …` and `iotmp device add|list|remove`: the server's registry (see
//! [`crate::store`]) from the command line.
//!
//! Secrets (API tokens, device credentials) are printed once, alone on stdout, so that
//! `TOKEN=$(iotmp user add alice)` works; what they are and what to do with them goes to stderr.
//! `--json` prints one JSON document on stdout instead. The database is `--db`, else `IOTMP_DB`,
//! else `db` in the config file's `[server]` table, else `./iotmp.db`. Only `user add` creates
//! it: the other commands on a missing file would otherwise hide a wrong path behind an empty
//! registry.

pub(crate) mod devices;
pub(crate) mod recorders;
mod render;
pub(crate) mod users;

use std::io::Write as _;
use std::path::PathBuf;

use serde_json::Value as Json;
use thiserror::Error;

use crate::cli::RegistryArgs;
use crate::config::ServerConfig;
use crate::exit::Exit;
use crate::output::{self, OutputError};
use crate::store::{DEFAULT_DB, OpenMode, Registry, StoreError};

/// Why a registry command failed.
#[derive(Debug, Error)]
pub(crate) enum RegistryCmdError {
    /// The database refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// `--cert` cannot be read.
    #[error("cannot read the certificate {}: check the --cert path", path.display())]
    CertRead {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `--cert` holds no PEM certificate.
    #[error(
        "{} holds no PEM certificate: give the device's certificate file, the one with a \
         '-----BEGIN CERTIFICATE-----' block",
        path.display()
    )]
    NotPem {
        /// The file.
        path: PathBuf,
    },
    /// `--credential -` could not read stdin.
    #[error("cannot read the credential from stdin")]
    CredentialInput(#[source] std::io::Error),
    /// `user remove` without `--yes` where nobody can answer the question.
    #[error(
        "not removing user {0} without confirmation: stdin is not a terminal, so pass --yes \
         to remove them, their tokens, devices and recorded data"
    )]
    NeedsYes(String),
    /// The answer to the question was not yes.
    #[error("user {0} was not removed: the removal was not confirmed")]
    Cancelled(String),
    /// The question could not be asked or answered.
    #[error("cannot ask for confirmation on the terminal; pass --yes instead")]
    Prompt(#[source] std::io::Error),
    /// stdout failed.
    #[error(transparent)]
    Output(#[from] OutputError),
}

impl RegistryCmdError {
    /// The exit status for this failure.
    pub(crate) const fn exit(&self) -> Exit {
        match self {
            RegistryCmdError::Store(e) => e.exit(),
            RegistryCmdError::CertRead { .. }
            | RegistryCmdError::NotPem { .. }
            | RegistryCmdError::NeedsYes(_) => Exit::Usage,
            RegistryCmdError::CredentialInput(_)
            | RegistryCmdError::Cancelled(_)
            | RegistryCmdError::Prompt(_) => Exit::Failure,
            RegistryCmdError::Output(e) => e.exit(),
        }
    }
}

/// The database path: `--db` / `IOTMP_DB`, then `[server] db`, then `./iotmp.db`.
fn db_path(args: &RegistryArgs, config: &ServerConfig) -> PathBuf {
    args.db
        .clone()
        .or_else(|| config.db.clone())
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DB))
}

/// Opens the registry named by `args` and the config.
fn open(
    args: &RegistryArgs,
    config: &ServerConfig,
    mode: OpenMode,
) -> Result<Registry, RegistryCmdError> {
    let path = db_path(args, config);
    tracing::debug!("registry database {}", path.display());
    Ok(Registry::open(&path, mode)?)
}

/// Writes `text` to stdout. A reader that went away (`| head`) is not a failure.
fn print(text: &str) -> Result<(), RegistryCmdError> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    output::check(out.write_all(text.as_bytes()).and_then(|()| out.flush()))?;
    Ok(())
}

/// Writes a JSON document and a newline to stdout.
fn print_json(value: &Json) -> Result<(), RegistryCmdError> {
    print(&format!("{value}\n"))
}

/// A note for the person at the terminal (stderr; stdout carries only results).
fn note(text: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}
