//! The server's registry: users and their API tokens, devices and their credentials or
//! certificate fingerprints, and (for the recorders) buckets of recorded values, in one SQLite
//! file that survives restarts (`--db`, `IOTMP_DB`, `[server] db`; default `./iotmp.db`).
//!
//! * [`Store`]: the SQLite file. Writes (`add_user`, `add_device`, …) check and change it in one
//!   transaction each; the lookups the server needs exist here too, as queries.
//! * [`Registry`]: the store plus an in-memory [`Index`] of users, tokens and devices, so that
//!   CONNECT and HTTP authentication are hash-map lookups and a SHA-256, without SQLite. Writes
//!   made through it update the index; writes made by another process (`iotmp device add` while
//!   the server runs) are picked up by [`Registry::refresh`].
//!
//! # Durability
//!
//! WAL journal with `synchronous = FULL`: every commit is on disk before the call returns, at
//! one fsync per commit (see [`schema`]). Registry changes are rare and each prints a secret
//! that is shown once, so losing a committed change to a power cut is not acceptable; record
//! appends pay the same price per *batch* with [`Store::append_records`]. `foreign_keys` is on,
//! so removing a user removes everything that belongs to them.
//!
//! # Secrets
//!
//! Device credentials and API tokens are generated from the OS random source (256 bits) and
//! only a salted SHA-256 of them is stored; checks compare in constant time. Why a fast hash and
//! not a password KDF is explained in [`secret`]. A credential the user chose
//! (`--credential`) is stored the same way; its strength is then the user's responsibility.
//!
//! # Files
//!
//! `schema.rs` (tables, migrations, connection settings) · `secret.rs` (generation, hashing,
//! fingerprints) · `names.rs` (what names may be) · `accounts.rs` (users, tokens, devices) ·
//! `records.rs` (recorders, buckets, records) · `registry.rs` (the cached index) · `error.rs`.

mod accounts;
mod bulk;
mod error;
pub(crate) mod names;
mod records;
mod registry;
pub(crate) mod schema;
pub(crate) mod secret;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OpenFlags};

pub(crate) use self::error::StoreError;
#[allow(
    unused_imports,
    reason = "the recorder API is for the server's recorders (next work)"
)]
pub(crate) use self::records::{BucketId, Record, Recorder, RecorderId};
#[allow(
    unused_imports,
    reason = "the index is the server's lookup API (next work)"
)]
pub(crate) use self::registry::{Index, Registry};
pub(crate) use self::secret::{Fingerprint, Secret};

/// Default `--db`.
pub(crate) const DEFAULT_DB: &str = "iotmp.db";

/// Row id of a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct UserId(pub(crate) i64);

/// Row id of a device (unique across users).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct DeviceId(pub(crate) i64);

/// A registered user, as lookups return it. Names are shared (`Arc`), so that handing one out
/// copies a pointer, not a string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UserRef {
    /// Row id.
    pub(crate) id: UserId,
    /// User name.
    pub(crate) name: Arc<str>,
}

/// A registered device, as lookups return it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DeviceRef {
    /// Row id.
    pub(crate) id: DeviceId,
    /// The owner.
    pub(crate) user: UserRef,
    /// Device id (unique per owner).
    pub(crate) name: Arc<str>,
}

/// A device as listings show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DeviceInfo {
    /// Which device.
    pub(crate) device: DeviceRef,
    /// SHA-256 of its certificate, when it may authenticate with one.
    pub(crate) fingerprint: Option<Fingerprint>,
    /// When it was added, unix ms.
    pub(crate) created_at: i64,
}

/// A user as `iotmp user list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UserInfo {
    /// Which user.
    pub(crate) user: UserRef,
    /// When it was added, unix ms.
    pub(crate) created_at: i64,
    /// How many API tokens they hold.
    pub(crate) tokens: u64,
    /// How many devices they own.
    pub(crate) devices: u64,
}

/// Whether opening may create the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpenMode {
    /// Create the file (and the schema) when it does not exist: commands that add.
    Create,
    /// The file must exist: commands that list or remove, for which a new empty database
    /// would only hide a wrong `--db`.
    Existing,
}

/// The registry database.
#[derive(Debug)]
pub(crate) struct Store {
    conn: Connection,
}

impl Store {
    /// Opens (or, with [`OpenMode::Create`], creates) the database at `path`, applying any
    /// missing migrations.
    pub(crate) fn open(path: &Path, mode: OpenMode) -> Result<Store, StoreError> {
        Store::open_with(path, mode, schema::MIGRATIONS)
    }

    /// [`Store::open`] with a given list of migrations (tests migrate with longer lists).
    pub(crate) fn open_with(
        path: &Path,
        mode: OpenMode,
        migrations: &[&str],
    ) -> Result<Store, StoreError> {
        // NO_MUTEX: a `Store` is used by one thread at a time (it is `Send`, not `Sync`).
        let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        match mode {
            OpenMode::Existing if !path.exists() => {
                return Err(StoreError::Missing {
                    path: path.to_owned(),
                });
            }
            OpenMode::Existing => {}
            OpenMode::Create => {
                create_private(path);
                flags |= OpenFlags::SQLITE_OPEN_CREATE;
            }
        }
        let mut conn =
            Connection::open_with_flags(path, flags).map_err(|source| StoreError::Open {
                path: path.to_owned(),
                source,
            })?;
        schema::prepare(&mut conn, path, migrations)?;
        Ok(Store { conn })
    }

    /// A private in-memory database (tests, and a server run without `--db`).
    #[allow(dead_code, reason = "for the server (next work); the tests use it")]
    pub(crate) fn open_in_memory() -> Result<Store, StoreError> {
        let mut conn = Connection::open_in_memory()?;
        schema::prepare(&mut conn, &PathBuf::from(":memory:"), schema::MIGRATIONS)?;
        Ok(Store { conn })
    }

    /// `PRAGMA data_version`: changes when *another* connection commits, so that a cache can
    /// tell cheaply (no disk read) whether it is stale.
    pub(crate) fn data_version(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .query_row("PRAGMA data_version", [], |row| row.get(0))?)
    }

    /// The schema version of the open file.
    #[cfg(test)]
    pub(crate) fn schema_version(&self) -> i64 {
        schema::user_version(&self.conn).unwrap_or(-1)
    }
}

/// Creates `path` readable by its owner only, before SQLite opens it: the file holds no secret
/// in clear, but salted hashes of user-chosen credentials are still worth keeping private.
/// SQLite gives its `-wal` and `-shm` files the database's permissions. Failures are left for
/// SQLite to report (with the path) when it opens the file.
fn create_private(path: &Path) {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let _ = options.open(path);
}

/// Now, in unix milliseconds (0 if the clock is before 1970).
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;
