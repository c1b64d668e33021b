//! What the event loop and the HTTP API share, and the API's [`Backend`] over it.
//!
//! * The registry [`Index`] (users, tokens, devices), as an `Arc` snapshot: the event loop
//!   swaps in a new one after each reload, readers clone the pointer and look up without
//!   holding any lock.
//! * Which devices are connected, with their dialect and since when (from `DeviceOnline` /
//!   `DeviceOffline`).
//! * The API's sinks: the event loop hands each `Delivery` to its [`SinkSender`].
//!
//! Devices are named per user in the API and `user/device` in the driver ([`device_key`]): the
//! API checks that a token's user is the user of the path before calling the backend, so a
//! user can only ever build keys of their own devices (names cannot hold `/`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use async_channel::Sender;
use iotmp_cli::api::{
    self, Backend, BoxFuture, BucketRecord, DataFailure, DeviceStatus, NewRecorder, RecordQuery,
    RecorderInfo, SinkSender, Subscription,
};
use iotmp_proto::control::RequestResult;
use iotmp_proto::fanout::SinkId;
use iotmp_proto::{Dialect, Text, Value};

use super::driver::Handle;
use crate::store::{Index, Recorder, RecorderId, Store, StoreError};

/// The driver's name of a device: `user/device`.
pub(crate) fn device_key(user: &str, device: &str) -> String {
    format!("{user}/{device}")
}

/// Locks a mutex; a panic elsewhere while it was held leaves data that is still usable here
/// (maps and a database connection, each change of which is complete or absent).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A connected device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Online {
    /// The dialect of its connection.
    pub(crate) dialect: Dialect,
    /// When its connection was accepted, unix ms.
    pub(crate) since_unix_ms: u64,
}

/// State shared by the event loop (writer) and the HTTP API (reader).
#[derive(Debug)]
pub(crate) struct Shared {
    index: RwLock<Arc<Index>>,
    /// By device key: the broker's own name of the device, moved from its `DeviceOnline`
    /// event. Keys up to 24 bytes are inline, so a connected device costs one map slot here and
    /// no heap allocation of its own (a `String` key was one more allocation per device).
    online: Mutex<HashMap<Text, Online>>,
    /// The API's sinks by id (recorders are the event loop's own).
    sinks: Mutex<HashMap<SinkId, SinkSender>>,
    next_sink: AtomicU64,
    /// Asks the event loop to look at the registry now. Capacity one: a request already
    /// pending covers every later one.
    refresh: Sender<()>,
}

impl Shared {
    /// State with `index` and nothing connected.
    pub(crate) fn new(index: Arc<Index>, refresh: Sender<()>) -> Self {
        Shared {
            index: RwLock::new(index),
            online: Mutex::new(HashMap::new()),
            sinks: Mutex::new(HashMap::new()),
            next_sink: AtomicU64::new(0),
            refresh,
        }
    }

    /// The current index.
    pub(crate) fn index(&self) -> Arc<Index> {
        Arc::clone(&self.index.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Publishes a reloaded index.
    pub(crate) fn set_index(&self, index: Arc<Index>) {
        *self.index.write().unwrap_or_else(PoisonError::into_inner) = index;
    }

    /// Notes `key` connected.
    pub(crate) fn set_online(&self, key: Text, online: Online) {
        lock(&self.online).insert(key, online);
    }

    /// Notes `key` disconnected.
    pub(crate) fn set_offline(&self, key: &str) {
        lock(&self.online).remove(key);
    }

    fn online(&self, key: &str) -> Option<Online> {
        lock(&self.online).get(key).copied()
    }

    /// A fresh sink id (API sinks and recorders draw from the same counter: ids are unique
    /// per driver).
    pub(crate) fn next_sink(&self) -> SinkId {
        self.next_sink.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The API sink `sink`, if it is one.
    pub(crate) fn sink(&self, sink: SinkId) -> Option<SinkSender> {
        lock(&self.sinks).get(&sink).cloned()
    }

    /// Asks the event loop for a registry refresh, without waiting.
    pub(crate) fn request_refresh(&self) {
        let _ = self.refresh.try_send(());
    }
}

/// The HTTP API's view of the server.
#[derive(Debug)]
pub(crate) struct ServerBackend {
    shared: Arc<Shared>,
    handle: Handle,
    /// The API's own connection to the registry database, for bucket reads and recorder
    /// changes (run on smol's blocking pool, never on the API's tasks). Its commits are
    /// another connection's for the event loop's registry, which therefore sees recorder
    /// changes at its next refresh (requested at once after each change).
    store: Arc<Mutex<Store>>,
}

impl ServerBackend {
    /// A backend over `shared` and the driver `handle`, with its own database connection.
    pub(crate) fn new(shared: Arc<Shared>, handle: Handle, store: Store) -> Self {
        ServerBackend {
            shared,
            handle,
            store: Arc::new(Mutex::new(store)),
        }
    }

    /// Runs `work` on the database connection, off the API's tasks.
    fn with_store<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Store) -> Result<T, DataFailure> + Send + 'static,
    ) -> BoxFuture<Result<T, DataFailure>> {
        let store = Arc::clone(&self.store);
        Box::pin(smol::unblock(move || work(&mut lock(&store))))
    }
}

/// A store failure as the API reports it: details go to the log, not to the client.
fn failed(e: &StoreError) -> DataFailure {
    tracing::warn!("HTTP API: the registry database failed: {e}");
    DataFailure::Failed("storage error".to_owned())
}

fn recorder_info(r: Recorder) -> RecorderInfo {
    RecorderInfo {
        id: r.id.0,
        device: r.device,
        resource: r.resource,
        interval_s: r.interval_secs,
        bucket: r.bucket,
    }
}

impl Backend for ServerBackend {
    fn user_for_token(&self, token: &str) -> Option<String> {
        let user = self.shared.index().user_for_token(token);
        if user.is_none() {
            // A token issued a moment ago (`iotmp user token`) works on the next try.
            self.shared.request_refresh();
        }
        user.map(|u| u.name.to_string())
    }

    fn devices(&self, user: &str) -> Vec<api::DeviceInfo> {
        self.shared
            .index()
            .devices_of(user)
            .into_iter()
            .map(|d| {
                let online = self.shared.online(&device_key(user, &d.device.name));
                api::DeviceInfo {
                    device: d.device.name.to_string(),
                    connected: online.is_some(),
                    dialect: online.map(|o| o.dialect),
                    connected_at_unix_ms: online.map(|o| o.since_unix_ms),
                }
            })
            .collect()
    }

    fn device_status(&self, user: &str, device: &str) -> DeviceStatus {
        if !self.shared.index().has_device(user, device) {
            DeviceStatus::Unknown
        } else if self.shared.online(&device_key(user, device)).is_some() {
            DeviceStatus::Online
        } else {
            DeviceStatus::Offline
        }
    }

    fn run(
        &self,
        user: &str,
        device: &str,
        resource: &str,
        input: Option<Value>,
    ) -> BoxFuture<Option<RequestResult>> {
        self.handle.run(&device_key(user, device), resource, input)
    }

    fn describe(
        &self,
        user: &str,
        device: &str,
        resource: Option<&str>,
    ) -> BoxFuture<Option<RequestResult>> {
        self.handle.describe(&device_key(user, device), resource)
    }

    fn subscribe(
        &self,
        user: &str,
        device: &str,
        resource: &str,
        interval_s: u32,
        values: SinkSender,
    ) -> Subscription {
        let sink = self.shared.next_sink();
        // Registered before the driver hears of it: a cached value is delivered at once.
        lock(&self.shared.sinks).insert(sink, values);
        let answer = self
            .handle
            .subscribe(&device_key(user, device), resource, sink, interval_s);
        Subscription::from_driver(sink, answer)
    }

    fn unsubscribe(&self, user: &str, device: &str, resource: &str, sink: SinkId) {
        lock(&self.shared.sinks).remove(&sink);
        self.handle
            .unsubscribe(&device_key(user, device), resource, sink);
    }

    fn records(
        &self,
        user: &str,
        bucket: &str,
        query: RecordQuery,
    ) -> BoxFuture<Result<Vec<BucketRecord>, DataFailure>> {
        let (user, bucket) = (user.to_owned(), bucket.to_owned());
        self.with_store(move |store| {
            let id = store
                .bucket(&user, &bucket)
                .map_err(|e| failed(&e))?
                .ok_or_else(|| DataFailure::NotFound(api::UNKNOWN_BUCKET.to_owned()))?;
            let records = store
                .records(id, query.from, query.to, query.limit)
                .map_err(|e| failed(&e))?;
            Ok(records
                .into_iter()
                .map(|r| BucketRecord {
                    ts_unix_ms: r.ts,
                    value: r.value,
                })
                .collect())
        })
    }

    fn recorders(&self, user: &str) -> BoxFuture<Result<Vec<RecorderInfo>, DataFailure>> {
        let user = user.to_owned();
        self.with_store(move |store| {
            let list = store.list_recorders(Some(&user)).map_err(|e| failed(&e))?;
            Ok(list.into_iter().map(recorder_info).collect())
        })
    }

    fn add_recorder(
        &self,
        user: &str,
        recorder: NewRecorder,
    ) -> BoxFuture<Result<RecorderInfo, DataFailure>> {
        let user = user.to_owned();
        let shared = Arc::clone(&self.shared);
        self.with_store(move |store| {
            let existing = store.list_recorders(Some(&user)).map_err(|e| failed(&e))?;
            if existing.iter().any(|r| {
                r.device == recorder.device
                    && r.resource == recorder.resource
                    && r.bucket == recorder.bucket
            }) {
                return Err(DataFailure::Conflict(
                    "this device's resource is already recorded into this bucket".to_owned(),
                ));
            }
            let added = store
                .add_recorder(
                    &user,
                    &recorder.device,
                    &recorder.resource,
                    recorder.interval_s,
                    &recorder.bucket,
                )
                .map_err(|e| match e {
                    StoreError::UnknownDevice { .. } | StoreError::UnknownUser(_) => {
                        DataFailure::NotFound("unknown device".to_owned())
                    }
                    StoreError::InvalidName(_) | StoreError::BadInterval(_) => {
                        DataFailure::Invalid(e.to_string())
                    }
                    other => failed(&other),
                })?;
            tracing::info!(
                "HTTP API: recorder {} added for {user}/{}",
                added.id.0,
                added.device
            );
            shared.request_refresh();
            Ok(recorder_info(added))
        })
    }

    fn remove_recorder(&self, user: &str, id: i64) -> BoxFuture<Result<(), DataFailure>> {
        let user = user.to_owned();
        let shared = Arc::clone(&self.shared);
        self.with_store(move |store| {
            let owned = store
                .list_recorders(Some(&user))
                .map_err(|e| failed(&e))?
                .iter()
                .any(|r| r.id.0 == id);
            // Another user's recorder is as unknown as one that does not exist.
            if !owned {
                return Err(DataFailure::NotFound(api::UNKNOWN_RECORDER.to_owned()));
            }
            match store.remove_recorder(RecorderId(id)) {
                Ok(()) => {}
                Err(StoreError::UnknownRecorder(_)) => {
                    return Err(DataFailure::NotFound(api::UNKNOWN_RECORDER.to_owned()));
                }
                Err(e) => return Err(failed(&e)),
            }
            tracing::info!("HTTP API: recorder {id} of {user} removed");
            shared.request_refresh();
            Ok(())
        })
    }
}
