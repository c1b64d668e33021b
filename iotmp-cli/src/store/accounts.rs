//! Users, API tokens and devices in the database: the writes behind `iotmp user …` and
//! `iotmp device …`, and the lookups of the server as plain queries.
//!
//! Each write is one IMMEDIATE transaction that first checks what it is about to violate (a
//! taken name, a taken certificate) and reports it by name, rather than letting a UNIQUE
//! constraint fail with SQLite's generic message. Taking the write lock first makes the check and
//! the insert atomic against another process writing the same file.

use std::sync::Arc;

use rusqlite::{OptionalExtension as _, Row, Transaction, TransactionBehavior, params};

use super::names::{self, NameKind};
use super::secret::{self, Fingerprint, NewToken, Salted, Secret};
use super::{
    DeviceId, DeviceInfo, DeviceRef, Store, StoreError, UserId, UserInfo, UserRef, now_ms,
};

/// Columns of a device listing (see [`device_info`]), from [`DEVICE_FROM`].
pub(super) const DEVICE_COLUMNS: &str = "d.id, u.id, u.name, d.name, d.cert_sha256, d.created_at";

/// Devices joined with their owner.
pub(super) const DEVICE_FROM: &str = "FROM devices d JOIN users u ON u.id = d.user_id";

/// Reads the columns of [`DEVICE_COLUMNS`].
pub(super) fn device_info(row: &Row<'_>) -> rusqlite::Result<DeviceInfo> {
    let fingerprint: Option<Vec<u8>> = row.get(4)?;
    Ok(DeviceInfo {
        device: DeviceRef {
            id: DeviceId(row.get(0)?),
            user: UserRef {
                id: UserId(row.get(1)?),
                name: Arc::from(row.get::<_, String>(2)?),
            },
            name: Arc::from(row.get::<_, String>(3)?),
        },
        fingerprint: fingerprint.as_deref().and_then(Fingerprint::from_column),
        created_at: row.get(5)?,
    })
}

impl Store {
    /// Adds user `name` with a first API token, which is returned: it exists nowhere else.
    pub(crate) fn add_user(&mut self, name: &str) -> Result<(UserRef, Secret), StoreError> {
        names::check(NameKind::User, name)?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        if find_user(&tx, name)?.is_some() {
            return Err(StoreError::UserExists(name.to_owned()));
        }
        tx.execute(
            "INSERT INTO users (name, created_at) VALUES (?1, ?2)",
            params![name, now_ms()],
        )?;
        let user = UserRef {
            id: UserId(tx.last_insert_rowid()),
            name: Arc::from(name),
        };
        let token = insert_token(&tx, user.id)?;
        tx.commit()?;
        Ok((user, token))
    }

    /// Issues another API token for `user`; the user's other tokens stay valid.
    pub(crate) fn issue_token(&mut self, user: &str) -> Result<Secret, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let found =
            find_user(&tx, user)?.ok_or_else(|| StoreError::UnknownUser(user.to_owned()))?;
        let token = insert_token(&tx, found.id)?;
        tx.commit()?;
        Ok(token)
    }

    /// Every user, by name, with how many tokens and devices each has.
    pub(crate) fn users(&self) -> Result<Vec<UserInfo>, StoreError> {
        let mut statement = self.conn.prepare_cached(
            "SELECT u.id, u.name, u.created_at, \
                    (SELECT count(*) FROM api_tokens t WHERE t.user_id = u.id), \
                    (SELECT count(*) FROM devices d WHERE d.user_id = u.id) \
             FROM users u ORDER BY u.name",
        )?;
        let rows = statement.query_map([], |row| {
            Ok(UserInfo {
                user: UserRef {
                    id: UserId(row.get(0)?),
                    name: Arc::from(row.get::<_, String>(1)?),
                },
                created_at: row.get(2)?,
                tokens: count(row.get(3)?),
                devices: count(row.get(4)?),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Removes `user` with their tokens, devices, buckets and records; returns how many devices
    /// went with them.
    pub(crate) fn remove_user(&mut self, user: &str) -> Result<u64, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let found =
            find_user(&tx, user)?.ok_or_else(|| StoreError::UnknownUser(user.to_owned()))?;
        let devices = count(tx.query_row(
            "SELECT count(*) FROM devices WHERE user_id = ?1",
            [found.id.0],
            |row| row.get(0),
        )?);
        // foreign_keys is on: the cascade removes the rest in this same transaction.
        tx.execute("DELETE FROM users WHERE id = ?1", [found.id.0])?;
        tx.commit()?;
        Ok(devices)
    }

    /// Registers `user/device` with `credential` (hashed with a fresh salt) and, when given, the
    /// SHA-256 fingerprint of the certificate it may also authenticate with.
    pub(crate) fn add_device(
        &mut self,
        user: &str,
        device: &str,
        credential: &Secret,
        fingerprint: Option<Fingerprint>,
    ) -> Result<DeviceRef, StoreError> {
        names::check(NameKind::User, user)?;
        names::check(NameKind::Device, device)?;
        if credential.expose().is_empty() {
            return Err(StoreError::EmptyCredential);
        }
        let hashed = Salted::new(credential.expose())?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let owner =
            find_user(&tx, user)?.ok_or_else(|| StoreError::UnknownUser(user.to_owned()))?;
        if find_device(&tx, owner.id, device)?.is_some() {
            return Err(StoreError::DeviceExists {
                user: user.to_owned(),
                device: device.to_owned(),
            });
        }
        if let Some(fingerprint) = fingerprint
            && let Some(holder) = find_by_fingerprint(&tx, &fingerprint)?
        {
            return Err(StoreError::FingerprintTaken {
                fingerprint,
                user: holder.user.name.to_string(),
                device: holder.name.to_string(),
            });
        }
        tx.execute(
            "INSERT INTO devices (user_id, name, salt, credential_hash, cert_sha256, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                owner.id.0,
                device,
                hashed.salt.as_slice(),
                hashed.hash.as_slice(),
                fingerprint.as_ref().map(|f| f.0.as_slice()),
                now_ms()
            ],
        )?;
        let added = DeviceRef {
            id: DeviceId(tx.last_insert_rowid()),
            user: owner,
            name: Arc::from(device),
        };
        tx.commit()?;
        Ok(added)
    }

    /// Every device, or those of `user` (who must exist), by user then device id.
    pub(crate) fn devices(&self, user: Option<&str>) -> Result<Vec<DeviceInfo>, StoreError> {
        match user {
            None => {
                let mut statement = self.conn.prepare_cached(&format!(
                    "SELECT {DEVICE_COLUMNS} {DEVICE_FROM} ORDER BY u.name, d.name"
                ))?;
                let rows = statement.query_map([], device_info)?;
                Ok(rows.collect::<Result<_, _>>()?)
            }
            Some(user) => {
                if find_user(&self.conn, user)?.is_none() {
                    return Err(StoreError::UnknownUser(user.to_owned()));
                }
                self.devices_of(user)
            }
        }
    }

    /// Removes `user/device` (and its recorders; the buckets they filled stay with the user).
    pub(crate) fn remove_device(&mut self, user: &str, device: &str) -> Result<(), StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let owner =
            find_user(&tx, user)?.ok_or_else(|| StoreError::UnknownUser(user.to_owned()))?;
        let removed = tx.execute(
            "DELETE FROM devices WHERE user_id = ?1 AND name = ?2",
            params![owner.id.0, device],
        )?;
        if removed == 0 {
            return Err(StoreError::UnknownDevice {
                user: user.to_owned(),
                device: device.to_owned(),
            });
        }
        tx.commit()?;
        Ok(())
    }
}

/// The server's lookups, straight from SQLite; the [`super::Index`] answers the same from memory
/// and is what CONNECT handling should use.
#[allow(
    dead_code,
    reason = "the server's lookup API (next work); the tests use all of it"
)]
impl Store {
    /// The user called `name`, if registered.
    pub(crate) fn user(&self, name: &str) -> Result<Option<UserRef>, StoreError> {
        Ok(find_user(&self.conn, name)?)
    }

    /// The device `user/device` if `credential` is its credential (spec §6.2, credentials).
    /// Unknown names cost the same hash as a wrong credential, so timing tells nothing.
    pub(crate) fn authenticate_device(
        &self,
        user: &str,
        device: &str,
        credential: &str,
    ) -> Result<Option<DeviceRef>, StoreError> {
        let mut statement = self.conn.prepare_cached(
            "SELECT d.id, u.id, d.salt, d.credential_hash FROM devices d \
             JOIN users u ON u.id = d.user_id WHERE u.name = ?1 AND d.name = ?2",
        )?;
        let row = statement
            .query_row(params![user, device], |row| {
                let salt: Vec<u8> = row.get(2)?;
                let hash: Vec<u8> = row.get(3)?;
                Ok((
                    DeviceId(row.get(0)?),
                    UserId(row.get(1)?),
                    Salted::from_columns(&salt, &hash),
                ))
            })
            .optional()?;
        match row {
            Some((id, user_id, Some(stored))) if stored.verify(credential) => Ok(Some(DeviceRef {
                id,
                user: UserRef {
                    id: user_id,
                    name: Arc::from(user),
                },
                name: Arc::from(device),
            })),
            Some(_) => Ok(None),
            None => {
                Salted::verify_nothing(credential);
                Ok(None)
            }
        }
    }

    /// The device registered with this certificate fingerprint (spec §6.2, certificate).
    pub(crate) fn device_by_fingerprint(
        &self,
        fingerprint: &Fingerprint,
    ) -> Result<Option<DeviceRef>, StoreError> {
        Ok(find_by_fingerprint(&self.conn, fingerprint)?)
    }

    /// The user an API token belongs to (spec §8.1).
    pub(crate) fn user_for_token(&self, token: &str) -> Result<Option<UserRef>, StoreError> {
        let Some((selector, verifier)) = secret::split_token(token) else {
            return Ok(None);
        };
        let mut statement = self.conn.prepare_cached(
            "SELECT u.id, u.name, t.salt, t.hash FROM api_tokens t \
             JOIN users u ON u.id = t.user_id WHERE t.selector = ?1",
        )?;
        let row = statement
            .query_row([selector], |row| {
                let salt: Vec<u8> = row.get(2)?;
                let hash: Vec<u8> = row.get(3)?;
                Ok((
                    UserRef {
                        id: UserId(row.get(0)?),
                        name: Arc::from(row.get::<_, String>(1)?),
                    },
                    Salted::from_columns(&salt, &hash),
                ))
            })
            .optional()?;
        match row {
            Some((user, Some(stored))) if stored.verify(verifier) => Ok(Some(user)),
            Some(_) => Ok(None),
            None => {
                Salted::verify_nothing(verifier);
                Ok(None)
            }
        }
    }

    /// The devices of `user`, by device id; empty for an unknown user.
    pub(crate) fn devices_of(&self, user: &str) -> Result<Vec<DeviceInfo>, StoreError> {
        let mut statement = self.conn.prepare_cached(&format!(
            "SELECT {DEVICE_COLUMNS} {DEVICE_FROM} WHERE u.name = ?1 ORDER BY d.name"
        ))?;
        let rows = statement.query_map([user], device_info)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// A `count(*)`, which SQLite returns as a (never negative) i64.
fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// Inserts a fresh token for `user` and returns it in clear text, once.
pub(super) fn insert_token(tx: &Transaction<'_>, user: UserId) -> Result<Secret, StoreError> {
    let new = NewToken::generate()?;
    tx.execute(
        "INSERT INTO api_tokens (user_id, selector, salt, hash, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            user.0,
            new.selector,
            new.verifier.salt.as_slice(),
            new.verifier.hash.as_slice(),
            now_ms()
        ],
    )?;
    Ok(new.token)
}

/// The user called `name`.
pub(super) fn find_user(
    conn: &rusqlite::Connection,
    name: &str,
) -> rusqlite::Result<Option<UserRef>> {
    conn.prepare_cached("SELECT id FROM users WHERE name = ?1")?
        .query_row([name], |row| {
            Ok(UserRef {
                id: UserId(row.get(0)?),
                name: Arc::from(name),
            })
        })
        .optional()
}

/// The device `device` of user `owner`.
pub(super) fn find_device(
    conn: &rusqlite::Connection,
    owner: UserId,
    device: &str,
) -> rusqlite::Result<Option<DeviceId>> {
    conn.prepare_cached("SELECT id FROM devices WHERE user_id = ?1 AND name = ?2")?
        .query_row(params![owner.0, device], |row| Ok(DeviceId(row.get(0)?)))
        .optional()
}

/// The device holding a certificate fingerprint.
fn find_by_fingerprint(
    conn: &rusqlite::Connection,
    fingerprint: &Fingerprint,
) -> rusqlite::Result<Option<DeviceRef>> {
    conn.prepare_cached(&format!(
        "SELECT {DEVICE_COLUMNS} {DEVICE_FROM} WHERE d.cert_sha256 = ?1"
    ))?
    .query_row([fingerprint.0.as_slice()], device_info)
    .optional()
    .map(|found| found.map(|info| info.device))
}
