//! Recorders and buckets: the tables and the minimal functions the server's recorders need.
//!
//! A recorder samples one resource of one device every `interval` seconds (0: every value the
//! device pushes) into a bucket. Buckets belong to a user (names are unique per user), so that
//! removing a device keeps its history and removing the user removes both. A record is the
//! server's reception time in unix milliseconds and the value as JSON (spec §8.3 mapping).
//!
//! Time ranges are half-open, `from <= ts < to`, so that consecutive pages or windows neither
//! overlap nor leave gaps.

use rusqlite::{OptionalExtension as _, TransactionBehavior, params};
use serde_json::Value as Json;

use super::accounts::{find_device, find_user};
use super::names::{self, NameKind};
use super::{DeviceId, Store, StoreError, now_ms};

/// Longest interval of a recorder: one day, as for stream subscriptions (spec §8.4).
pub(crate) const MAX_INTERVAL_SECS: u32 = 86_400;

/// Row id of a recorder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct RecorderId(pub(crate) i64);

/// Row id of a bucket (unique across users): what records are appended to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct BucketId(pub(crate) i64);

/// A recorder as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Recorder {
    /// Row id.
    pub(crate) id: RecorderId,
    /// The owner of the device and the bucket.
    pub(crate) user: String,
    /// The device's id.
    pub(crate) device: String,
    /// The device's row id.
    pub(crate) device_id: DeviceId,
    /// The resource sampled.
    pub(crate) resource: String,
    /// Seconds between samples; 0 = every value.
    pub(crate) interval_secs: u32,
    /// The bucket's name.
    pub(crate) bucket: String,
    /// The bucket's row id, for [`Store::append_record`].
    pub(crate) bucket_id: BucketId,
}

/// One recorded value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Record {
    /// Server reception time, unix ms.
    pub(crate) ts: i64,
    /// The value.
    pub(crate) value: Json,
}

#[allow(
    dead_code,
    reason = "used by the server's recorders (next work) and the tests"
)]
impl Store {
    /// Adds a recorder of `resource` on `user/device` every `interval_secs` into the user's
    /// bucket `bucket`, which is created when it does not exist.
    pub(crate) fn add_recorder(
        &mut self,
        user: &str,
        device: &str,
        resource: &str,
        interval_secs: u32,
        bucket: &str,
    ) -> Result<Recorder, StoreError> {
        names::check(NameKind::Resource, resource)?;
        names::check(NameKind::Bucket, bucket)?;
        if interval_secs > MAX_INTERVAL_SECS {
            return Err(StoreError::BadInterval(interval_secs));
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let owner =
            find_user(&tx, user)?.ok_or_else(|| StoreError::UnknownUser(user.to_owned()))?;
        let device_id =
            find_device(&tx, owner.id, device)?.ok_or_else(|| StoreError::UnknownDevice {
                user: user.to_owned(),
                device: device.to_owned(),
            })?;
        tx.execute(
            "INSERT INTO buckets (user_id, name, created_at) VALUES (?1, ?2, ?3) \
             ON CONFLICT (user_id, name) DO NOTHING",
            params![owner.id.0, bucket, now_ms()],
        )?;
        let bucket_id: i64 = tx.query_row(
            "SELECT id FROM buckets WHERE user_id = ?1 AND name = ?2",
            params![owner.id.0, bucket],
            |row| row.get(0),
        )?;
        tx.execute(
            "INSERT INTO recorders (device_id, resource, interval_secs, bucket_id, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![device_id.0, resource, interval_secs, bucket_id, now_ms()],
        )?;
        let id = RecorderId(tx.last_insert_rowid());
        tx.commit()?;
        Ok(Recorder {
            id,
            user: user.to_owned(),
            device: device.to_owned(),
            device_id,
            resource: resource.to_owned(),
            interval_secs,
            bucket: bucket.to_owned(),
            bucket_id: BucketId(bucket_id),
        })
    }

    /// Every recorder, or those of `user`, by user, device, resource.
    pub(crate) fn list_recorders(&self, user: Option<&str>) -> Result<Vec<Recorder>, StoreError> {
        let mut statement = self.conn.prepare_cached(
            "SELECT r.id, u.name, d.name, d.id, r.resource, r.interval_secs, b.name, b.id \
             FROM recorders r JOIN devices d ON d.id = r.device_id \
             JOIN users u ON u.id = d.user_id JOIN buckets b ON b.id = r.bucket_id \
             WHERE ?1 IS NULL OR u.name = ?1 \
             ORDER BY u.name, d.name, r.resource, b.name",
        )?;
        let rows = statement.query_map([user], |row| {
            Ok(Recorder {
                id: RecorderId(row.get(0)?),
                user: row.get(1)?,
                device: row.get(2)?,
                device_id: DeviceId(row.get(3)?),
                resource: row.get(4)?,
                interval_secs: row.get(5)?,
                bucket: row.get(6)?,
                bucket_id: BucketId(row.get(7)?),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Removes a recorder; its bucket and records stay.
    pub(crate) fn remove_recorder(&mut self, id: RecorderId) -> Result<(), StoreError> {
        match self
            .conn
            .execute("DELETE FROM recorders WHERE id = ?1", [id.0])?
        {
            0 => Err(StoreError::UnknownRecorder(id.0)),
            _ => Ok(()),
        }
    }

    /// The bucket `name` of `user`.
    pub(crate) fn bucket(&self, user: &str, name: &str) -> Result<Option<BucketId>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT b.id FROM buckets b JOIN users u ON u.id = b.user_id \
                 WHERE u.name = ?1 AND b.name = ?2",
            )?
            .query_row([user, name], |row| Ok(BucketId(row.get(0)?)))
            .optional()?)
    }

    /// Appends one record (one transaction, so one fsync: prefer [`Store::append_records`] for
    /// more than a few values per second).
    pub(crate) fn append_record(
        &mut self,
        bucket: BucketId,
        ts: i64,
        value: &Json,
    ) -> Result<(), StoreError> {
        self.append_records([(bucket, ts, value)])
    }

    /// Appends records in one transaction: all or none.
    pub(crate) fn append_records<'a>(
        &mut self,
        records: impl IntoIterator<Item = (BucketId, i64, &'a Json)>,
    ) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        {
            let mut insert = tx
                .prepare_cached("INSERT INTO records (bucket_id, ts, value) VALUES (?1, ?2, ?3)")?;
            for (bucket, ts, value) in records {
                insert.execute(params![bucket.0, ts, value.to_string()])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The records of `bucket` with `from <= ts < to` (an absent bound is open), oldest first,
    /// at most `limit` of them.
    pub(crate) fn records(
        &self,
        bucket: BucketId,
        from: Option<i64>,
        to: Option<i64>,
        limit: u32,
    ) -> Result<Vec<Record>, StoreError> {
        let mut statement = self.conn.prepare_cached(
            "SELECT ts, value FROM records WHERE bucket_id = ?1 AND ts >= ?2 AND ts < ?3 \
             ORDER BY ts, id LIMIT ?4",
        )?;
        let rows = statement.query_map(
            params![
                bucket.0,
                from.unwrap_or(i64::MIN),
                to.unwrap_or(i64::MAX),
                limit
            ],
            |row| {
                let text: String = row.get(1)?;
                let value = serde_json::from_str(&text).map_err(|e| {
                    rusqlite::Error::FromSqlConversionFailure(
                        1,
                        rusqlite::types::Type::Text,
                        e.into(),
                    )
                })?;
                Ok(Record {
                    ts: row.get(0)?,
                    value,
                })
            },
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
