//! `iotmp bench conn|stream|rpc`: load generators for a running `iotmp server` on loopback.
//!
//! Every subcommand provisions its devices in the server's registry ([`provision`]), waits for
//! the server to serve them, runs its roles on one thread and one mio loop each ([`fleet`]:
//! devices, [`sinks`]: WebSocket sinks, [`callers`]: HTTP RUN clients), shows a progress bar
//! ([`progress`]) and ends with a summary, text or JSON ([`summary`]). Ctrl-C ends the run early
//! with a partial summary (marked `"interrupted": true`).
//!
//! Files: `conn.rs`, `stream.rs`, `rpc.rs` (one per subcommand) · `setup.rs` (checks and limits
//! shared by all) · `clock.rs` (the one time origin and the measured window) · `system.rs`
//! (rlimits, source addresses, `/proc`) · `stats.rs` (histograms) · `summary.rs`.

mod callers;
mod clock;
mod conn;
mod fleet;
mod progress;
mod provision;
mod rpc;
mod setup;
mod sinks;
mod stats;
mod stream;
mod summary;
mod system;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;

use crate::cli::{BenchArgs, BenchCommand};
use crate::config::ServerConfig;
use crate::exit::Exit;
use crate::output::OutputError;
use crate::store::StoreError;

/// Why a bench could not run.
#[derive(Debug, Error)]
#[non_exhaustive]
pub(crate) enum BenchError {
    /// The bench only measures a server on this machine.
    #[error(
        "{what} {addr} is not a loopback address: iotmp bench only runs against a server on this \
         machine (127.0.0.0/8 or ::1)"
    )]
    NotLoopback {
        /// Which option.
        what: &'static str,
        /// Its value.
        addr: SocketAddr,
    },
    /// More sockets than the open-file limit allows.
    #[error(
        "{devices} devices need {needed} open files but the limit is {limit}: use --devices \
         {max} or fewer"
    )]
    TooManyDevices {
        /// Asked for.
        devices: u32,
        /// Sockets and reserve that needs.
        needed: u64,
        /// The (raised) soft limit.
        limit: u64,
        /// The largest count that fits.
        max: u64,
    },
    /// A count that makes no sense.
    #[error("{0}")]
    BadCount(&'static str),
    /// The registry database.
    #[error("cannot provision the bench devices in {}", path.display())]
    Registry {
        /// Its path.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: StoreError,
    },
    /// The OS random source.
    #[error("cannot generate the bench credentials: {0}")]
    Random(String),
    /// The server never accepted the provisioned devices.
    #[error(
        "the server at {server} did not accept the bench devices within {} s (last: {last}); is \
         it running with the same --db?",
        waited.as_secs()
    )]
    NotServed {
        /// The device listener.
        server: SocketAddr,
        /// How long we tried.
        waited: Duration,
        /// The last failure.
        last: String,
    },
    /// A role's event loop failed.
    #[error("the {role} loop failed")]
    Loop {
        /// Which role.
        role: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A role's thread panicked (a bug).
    #[error("the {0} thread panicked")]
    Panicked(&'static str),
    /// Ctrl-C handlers.
    #[error("cannot install the Ctrl-C handler")]
    Signal(#[source] std::io::Error),
    /// The server's /proc entry.
    #[error("cannot read /proc/{pid} of --server-pid")]
    Proc {
        /// The pid.
        pid: u32,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Writing the summary.
    #[error(transparent)]
    Output(#[from] OutputError),
}

impl BenchError {
    /// Usage errors exit 2, the rest 1.
    pub(crate) const fn exit(&self) -> Exit {
        match self {
            BenchError::NotLoopback { .. }
            | BenchError::TooManyDevices { .. }
            | BenchError::BadCount(_)
            | BenchError::Proc { .. } => Exit::Usage,
            BenchError::Output(e) => e.exit(),
            _ => Exit::Failure,
        }
    }
}

/// Runs one bench subcommand; `config` gives the default `--db` (`[server] db`).
pub(crate) fn run(args: BenchArgs, config: &ServerConfig) -> Result<(), BenchError> {
    match args.command {
        BenchCommand::Conn(args) => conn::run(&args, config),
        BenchCommand::Stream(args) => stream::run(&args, config),
        BenchCommand::Rpc(args) => rpc::run(&args, config),
    }
}
