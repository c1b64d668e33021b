//! Why a store operation failed, and whether that is the user's to fix or the machine's.

use std::path::PathBuf;

use thiserror::Error;

use super::names::InvalidName;
use super::secret::{Fingerprint, RandomError};
use crate::exit::Exit;

/// A store operation that failed.
#[derive(Debug, Error)]
pub(crate) enum StoreError {
    /// `--db` names a file that does not exist, for a command that only reads or removes.
    #[error(
        "there is no registry database at {}: `iotmp user add NAME` creates one, or point \
         --db (IOTMP_DB, [server] db) at the existing file",
        path.display()
    )]
    Missing {
        /// The path.
        path: PathBuf,
    },
    /// The file cannot be opened or created.
    #[error("cannot open the registry database {}: check the path and its permissions", path.display())]
    Open {
        /// The path.
        path: PathBuf,
        /// SQLite's reason.
        #[source]
        source: rusqlite::Error,
    },
    /// The file is not SQLite, or is some other program's SQLite database.
    #[error(
        "{} is not an iotmp registry database: point --db (IOTMP_DB, [server] db) at the \
         registry, or at a path that does not exist yet to create one",
        path.display()
    )]
    Foreign {
        /// The path.
        path: PathBuf,
    },
    /// A newer `iotmp` wrote this database.
    #[error(
        "the registry database {} has schema version {found}, newer than the {supported} this \
         iotmp knows: upgrade iotmp (older binaries must not write to it)",
        path.display()
    )]
    NewerSchema {
        /// The path.
        path: PathBuf,
        /// `PRAGMA user_version` of the file.
        found: i64,
        /// The newest version this binary can migrate to.
        supported: i64,
    },
    /// SQLite failed at run time (disk full, I/O error, locked for longer than the busy timeout).
    #[error("the registry database failed")]
    Sqlite(#[from] rusqlite::Error),
    /// A name that cannot be stored.
    #[error(transparent)]
    InvalidName(#[from] InvalidName),
    /// `user add` with a name that exists.
    #[error(
        "user {0} already exists: choose another name, or issue another token with \
         `iotmp user token {0}`"
    )]
    UserExists(String),
    /// A user that is not registered.
    #[error("there is no user {0}: `iotmp user list` shows the registered users")]
    UnknownUser(String),
    /// `device add` with an id the user already has.
    #[error(
        "{user}/{device} already exists: choose another device id, or remove it first with \
         `iotmp device remove {user}/{device}`"
    )]
    DeviceExists {
        /// The owner.
        user: String,
        /// The device id.
        device: String,
    },
    /// A device that is not registered.
    #[error(
        "there is no device {user}/{device}: `iotmp device list {user}` shows that user's devices"
    )]
    UnknownDevice {
        /// The owner.
        user: String,
        /// The device id.
        device: String,
    },
    /// A certificate that another device already authenticates with.
    #[error(
        "the certificate (SHA-256 {fingerprint}) is already registered for {user}/{device}: each \
         device needs its own certificate"
    )]
    FingerprintTaken {
        /// The certificate's fingerprint.
        fingerprint: Fingerprint,
        /// The owner of the device that has it.
        user: String,
        /// That device.
        device: String,
    },
    /// An empty credential.
    #[error("the credential is empty: give a long random one, or omit --credential to get one")]
    EmptyCredential,
    /// A recorder interval out of range.
    #[error("a recorder interval is 0 (every value) to 86400 seconds, not {0}")]
    BadInterval(u32),
    /// A recorder that does not exist.
    #[error("there is no recorder with id {0}")]
    UnknownRecorder(i64),
    /// The OS could not give random bytes.
    #[error(transparent)]
    Random(#[from] RandomError),
}

impl StoreError {
    /// Missing or wrong things named on the command line are the user's to fix (2); SQLite and
    /// the OS failing are runtime failures (1).
    pub(crate) const fn exit(&self) -> Exit {
        match self {
            StoreError::Missing { .. }
            | StoreError::Open { .. }
            | StoreError::Foreign { .. }
            | StoreError::NewerSchema { .. }
            | StoreError::InvalidName(_)
            | StoreError::UserExists(_)
            | StoreError::UnknownUser(_)
            | StoreError::DeviceExists { .. }
            | StoreError::UnknownDevice { .. }
            | StoreError::FingerprintTaken { .. }
            | StoreError::EmptyCredential
            | StoreError::BadInterval(_)
            | StoreError::UnknownRecorder(_) => Exit::Usage,
            StoreError::Sqlite(_) | StoreError::Random(_) => Exit::Failure,
        }
    }
}
