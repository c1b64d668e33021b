//! The schema, its versions, and the settings every connection gets.
//!
//! The version lives in `PRAGMA user_version`; migration `i` (0-based) in [`MIGRATIONS`] takes a
//! database from version `i` to `i + 1`. Opening applies the missing ones in one write
//! transaction, so that a crash mid-way leaves the old version intact, and two processes opening
//! the same new file do not both migrate it. A database newer than [`MIGRATIONS`] is refused: an
//! old binary cannot know what a newer schema requires of its writers.
//!
//! `PRAGMA application_id` marks the file as ours, so that `--db` pointed at another program's
//! SQLite database is refused instead of getting our tables added to it.
//!
//! To change the schema, append a migration; never edit one that has shipped.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, TransactionBehavior};

use super::error::StoreError;

/// `PRAGMA application_id` of an iotmp registry: "IOTM" in ASCII.
pub(crate) const APPLICATION_ID: i32 = 0x494F_544D;

/// How long a writer waits for another one (the server while `iotmp user add` runs, or the
/// reverse) before giving up with "database is locked".
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Version 1: users, API tokens, devices; recorders, buckets and their records.
///
/// * Times are unix milliseconds (the unit of the HTTP API, spec §8.2).
/// * Secrets are `salt` + `SHA-256(salt ‖ secret)` (see `secret.rs`); nothing in clear text.
/// * Removing a user removes their tokens, devices, buckets and records (`ON DELETE CASCADE`);
///   removing a device removes its recorders but keeps the buckets they filled, which belong to
///   the user.
/// * Every foreign key has an index whose first column is that key, so that cascades and
///   "everything of user X" do not scan.
/// * `STRICT` tables: SQLite refuses a value of the wrong type instead of storing it.
const V1: &str = "
CREATE TABLE users (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE api_tokens (
    id          INTEGER PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    selector    TEXT NOT NULL UNIQUE,
    salt        BLOB NOT NULL,
    hash        BLOB NOT NULL,
    created_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX api_tokens_by_user ON api_tokens(user_id);

CREATE TABLE devices (
    id               INTEGER PRIMARY KEY,
    user_id          INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name             TEXT NOT NULL,
    salt             BLOB NOT NULL,
    credential_hash  BLOB NOT NULL,
    cert_sha256      BLOB UNIQUE,
    created_at       INTEGER NOT NULL,
    UNIQUE (user_id, name)
) STRICT;

CREATE TABLE buckets (
    id          INTEGER PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    UNIQUE (user_id, name)
) STRICT;

CREATE TABLE recorders (
    id             INTEGER PRIMARY KEY,
    device_id      INTEGER NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    resource       TEXT NOT NULL,
    interval_secs  INTEGER NOT NULL CHECK (interval_secs BETWEEN 0 AND 86400),
    bucket_id      INTEGER NOT NULL REFERENCES buckets(id) ON DELETE CASCADE,
    created_at     INTEGER NOT NULL,
    UNIQUE (device_id, resource, bucket_id)
) STRICT;
CREATE INDEX recorders_by_bucket ON recorders(bucket_id);

CREATE TABLE records (
    id         INTEGER PRIMARY KEY,
    bucket_id  INTEGER NOT NULL REFERENCES buckets(id) ON DELETE CASCADE,
    ts         INTEGER NOT NULL,
    value      TEXT NOT NULL
) STRICT;
CREATE INDEX records_by_time ON records(bucket_id, ts);
";

/// Every migration, oldest first.
pub(crate) const MIGRATIONS: &[&str] = &[V1];

/// The schema version this binary writes.
#[cfg(test)]
pub(crate) fn latest() -> i64 {
    i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX)
}

/// Connection settings, then the checks and migrations. `path` is for messages only.
pub(crate) fn prepare(
    conn: &mut Connection,
    path: &Path,
    migrations: &[&str],
) -> Result<(), StoreError> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    check_ours(conn, path)?;
    // WAL: readers (the server's lookups) never block the writer (the CLI) and the reverse; one
    // fsync per commit instead of two. Persistent: set once, it stays with the file. An
    // in-memory database answers "memory", which is fine for tests.
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") && !mode.eq_ignore_ascii_case("memory") {
        tracing::warn!("the registry database stays in journal mode {mode}: WAL is unavailable");
    }
    // FULL: a commit is on disk (the WAL is fsynced) before the call returns. Registry writes
    // print a secret that is shown only once; with NORMAL, a power cut right after could lose
    // the row while the user holds the secret. Recorders should batch records
    // (`append_records`) so that the fsync is paid per batch, not per value.
    conn.pragma_update(None, "synchronous", "FULL")?;
    // Off by default in SQLite, per connection: the cascades above depend on it.
    conn.pragma_update(None, "foreign_keys", true)?;
    migrate(conn, path, migrations)
}

/// Refuses a file that is not SQLite, or that some other program owns.
fn check_ours(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let foreign = |e: rusqlite::Error| match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) => StoreError::Foreign {
            path: path.to_owned(),
        },
        _ => StoreError::Sqlite(e),
    };
    let app: i32 = conn
        .query_row("PRAGMA application_id", [], |row| row.get(0))
        .map_err(foreign)?;
    if app == APPLICATION_ID {
        return Ok(());
    }
    let objects: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_schema", [], |row| row.get(0))
        .map_err(foreign)?;
    if app == 0 && objects == 0 {
        return Ok(()); // a new, empty file: ours to initialise
    }
    Err(StoreError::Foreign {
        path: path.to_owned(),
    })
}

/// Applies the migrations the file lacks.
fn migrate(conn: &mut Connection, path: &Path, migrations: &[&str]) -> Result<(), StoreError> {
    let supported = i64::try_from(migrations.len()).unwrap_or(i64::MAX);
    let found = user_version(conn)?;
    if found > supported {
        return Err(StoreError::NewerSchema {
            path: path.to_owned(),
            found,
            supported,
        });
    }
    if found == supported {
        return Ok(());
    }
    // IMMEDIATE takes the write lock now: another process migrating the same file waits, then
    // sees the new version below and does nothing.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let found = user_version(&tx)?;
    if found > supported {
        return Err(StoreError::NewerSchema {
            path: path.to_owned(),
            found,
            supported,
        });
    }
    let first = usize::try_from(found).unwrap_or(usize::MAX);
    for (index, sql) in migrations.iter().enumerate().skip(first) {
        tx.execute_batch(sql)?;
        let version = index.saturating_add(1);
        tracing::info!(
            "registry database {}: schema version {version}",
            path.display()
        );
        // PRAGMAs take no parameters; both values are integers we produce.
        tx.execute_batch(&format!("PRAGMA user_version = {version}"))?;
    }
    tx.execute_batch(&format!("PRAGMA application_id = {APPLICATION_ID}"))?;
    tx.commit()?;
    Ok(())
}

/// `PRAGMA user_version`.
pub(crate) fn user_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA user_version", [], |row| row.get(0))
}
