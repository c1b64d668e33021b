//! The recorders' writer: records go from the event loop to one thread that appends them to
//! the database in batches.
//!
//! # Durability policy
//!
//! A record is **stored once its transaction has committed**; the database runs WAL with
//! `synchronous = FULL`, so a commit is on disk when it returns. The writer takes the first
//! record waiting, plus every other record already queued (at most [`MAX_BATCH`]), and appends
//! them in one transaction: one fsync per batch, so that a burst of values costs one disk
//! flush, not one each. Records still queued (not yet committed) are lost if the process or
//! the machine dies; on a clean stop (Ctrl-C) the event loop ends first, and the writer
//! commits everything queued before it exits.
//!
//! The event loop never waits for the disk: the queue holds at most [`QUEUE`] records, and
//! values arriving while it is full are dropped and counted (a warning at most every
//! [`DROP_LOG_INTERVAL`]). A batch that the database refuses as a whole because one of its
//! rows is invalid (its bucket was removed with its user a moment ago) is written again row by
//! row, so that only that row is lost; any other failure (disk full, I/O error) loses the batch,
//! with a warning.
//!
//! The writer shares the registry's connection (behind its mutex): its commits are then
//! this connection's own and do not make the registry look changed, which would reload the
//! whole index at every refresh while anything is being recorded.

use std::io;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_channel::{Receiver, Sender, TrySendError};
use serde_json::Value as Json;

use super::state::lock;
use crate::store::{BucketId, Registry, StoreError};

/// Records queued for the writer at most.
pub(crate) const QUEUE: usize = 10_000;

/// Records per transaction at most.
pub(crate) const MAX_BATCH: usize = 1_000;

/// How often dropped records are reported again.
const DROP_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// One record on its way to the database.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Row {
    /// The bucket.
    pub(crate) bucket: BucketId,
    /// Server reception time, unix ms.
    pub(crate) ts: i64,
    /// The value, as JSON (spec §8.3 mapping).
    pub(crate) value: Json,
}

/// The event loop's end of the queue. Dropping it lets the writer finish.
#[derive(Debug)]
pub(crate) struct RowSender {
    tx: Sender<Row>,
    dropped: u64,
    last_warning: Option<Instant>,
}

impl RowSender {
    /// Queues a record without waiting; drops it (counted) when the queue is full.
    pub(crate) fn push(&mut self, row: Row) {
        match self.tx.try_send(row) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.dropped += 1;
                let now = Instant::now();
                if self
                    .last_warning
                    .is_none_or(|at| now.duration_since(at) >= DROP_LOG_INTERVAL)
                {
                    self.last_warning = Some(now);
                    tracing::warn!(
                        "recorders: the database is not keeping up; {} records dropped so far",
                        self.dropped
                    );
                }
            }
            // The writer is gone (only after a failure to start it): nothing can be stored.
            Err(TrySendError::Closed(_)) => self.dropped += 1,
        }
    }
}

/// Starts the writer thread over `registry`'s connection.
pub(crate) fn start(registry: Arc<Mutex<Registry>>) -> io::Result<(RowSender, JoinHandle<()>)> {
    let (tx, rx) = async_channel::bounded(QUEUE);
    let thread = std::thread::Builder::new()
        .name("iotmp-recorders".to_owned())
        .spawn(move || write_all(&rx, &registry))?;
    let sender = RowSender {
        tx,
        dropped: 0,
        last_warning: None,
    };
    Ok((sender, thread))
}

/// Writes batches until the queue is closed and empty.
fn write_all(rx: &Receiver<Row>, registry: &Mutex<Registry>) {
    let mut written = 0usize;
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Ok(first) = rx.recv_blocking() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(row) => batch.push(row),
                Err(_) => break,
            }
        }
        written += write_batch(registry, &batch);
        batch.clear();
    }
    tracing::debug!("recorders: writer done, {written} records written");
}

/// Appends `batch`; returns how many records were stored.
fn write_batch(registry: &Mutex<Registry>, batch: &[Row]) -> usize {
    let mut registry = lock(registry);
    let store = registry.store_mut();
    let rows = || batch.iter().map(|r| (r.bucket, r.ts, &r.value));
    let error = match store.append_records(rows()) {
        Ok(()) => return batch.len(),
        Err(e) => e,
    };
    if !is_constraint(&error) {
        tracing::warn!(
            "recorders: {} records lost, the database failed: {error}",
            batch.len()
        );
        return 0;
    }
    let mut stored = 0;
    for row in batch {
        match store.append_record(row.bucket, row.ts, &row.value) {
            Ok(()) => stored += 1,
            Err(e) => tracing::debug!("recorders: record for bucket {} lost: {e}", row.bucket.0),
        }
    }
    if stored < batch.len() {
        tracing::info!(
            "recorders: {} records lost: their bucket no longer exists",
            batch.len() - stored
        );
    }
    stored
}

/// A row the schema refuses (a foreign key to a removed bucket), as opposed to a failing disk.
fn is_constraint(e: &StoreError) -> bool {
    matches!(e, StoreError::Sqlite(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::store::{Secret, Store};

    fn registry_with_bucket() -> (Registry, BucketId) {
        let mut registry = Registry::new(Store::open_in_memory().unwrap()).unwrap();
        registry.add_user("alice").unwrap();
        let credential = Secret::from_user("c".repeat(32));
        registry
            .add_device("alice", "dev01", &credential, None)
            .unwrap();
        let recorder = registry
            .store_mut()
            .add_recorder("alice", "dev01", "temp", 1, "b1")
            .unwrap();
        (registry, recorder.bucket_id)
    }

    #[test]
    fn queued_rows_are_written_in_batches_and_flushed_at_the_end() {
        let (registry, bucket) = registry_with_bucket();
        let registry = Arc::new(Mutex::new(registry));
        let (mut sender, thread) = start(Arc::clone(&registry)).unwrap();
        for i in 0..2500 {
            sender.push(Row {
                bucket,
                ts: i,
                value: json!(i),
            });
        }
        drop(sender);
        thread.join().unwrap();
        let registry = lock(&registry);
        let records = registry.store().records(bucket, None, None, 5000).unwrap();
        assert_eq!(records.len(), 2500);
        assert_eq!(records.last().map(|r| r.value.clone()), Some(json!(2499)));
    }

    #[test]
    fn a_row_for_a_removed_bucket_costs_only_itself() {
        let (registry, bucket) = registry_with_bucket();
        let registry = Mutex::new(registry);
        let gone = BucketId(bucket.0 + 100);
        let batch = [
            Row {
                bucket,
                ts: 1,
                value: json!(1),
            },
            Row {
                bucket: gone,
                ts: 2,
                value: json!(2),
            },
            Row {
                bucket,
                ts: 3,
                value: json!(3),
            },
        ];
        assert_eq!(write_batch(&registry, &batch), 2);
        let registry = lock(&registry);
        let records = registry.store().records(bucket, None, None, 10).unwrap();
        assert_eq!(records.iter().map(|r| r.ts).collect::<Vec<_>>(), [1, 3]);
    }
}
