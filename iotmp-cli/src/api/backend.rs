//! What the HTTP API needs from the rest of the server, as one trait.
//!
//! The API layer knows nothing of registries, brokers or drivers: it authenticates, routes,
//! converts JSON and runs sockets, and asks a [`Backend`] for everything else. The server command
//! implements it over the user/device registry and an `iotmp-smol` server; the tests implement it
//! with a fake. Devices are named per user here (`user`, `device`); the drivers know them by the
//! key `"user/device"`, and building that key is the backend's business.
//!
//! Answers that take a device round trip are boxed futures: an `iotmp-smol` `Pending` maps onto
//! them directly (`Box::pin(handle.run(key, resource, input).recv())`, and
//! [`Subscription::from_driver`] for `handle.subscribe`), and the `Option` keeps its meaning:
//! `None` = the driver stopped before answering (the API answers 503).
//!
//! Wiring a driver: the backend allocates sink ids, keeps `sink id → SinkSender`, and forwards
//! each `BrokerEvent::Delivery` with `SinkSender::send(SinkValue::now(value))` (the `ts` of the
//! multi-resource WebSocket is the server's receive time, §6.9). `send` never blocks.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use iotmp_proto::Dialect;
use iotmp_proto::Value;
use iotmp_proto::control::{RequestResult, SubscribeResult};
use iotmp_proto::fanout::SinkId;
use iotmp_proto::session::StreamEnd;

use super::sink::SinkSender;

/// A `Send` future owned by the API while it waits for a device.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// The rest of the server, as the HTTP API sees it. Every method is called from the API's tasks
/// and must not block: the synchronous ones answer from memory, the others return at once with a
/// future.
pub trait Backend: Send + Sync + 'static {
    /// The user an API token belongs to, `None` for an unknown token (→ 401). Compare tokens in
    /// constant time if you can: this is reachable without any credential.
    fn user_for_token(&self, token: &str) -> Option<String>;

    /// The devices registered for `user`, with their connection state (the list of §8.2). The
    /// API sorts them by id and nulls `dialect` / `connected_at` of offline devices itself.
    fn devices(&self, user: &str) -> Vec<DeviceInfo>;

    /// Whether `device` of `user` is registered, and if so whether it is connected.
    fn device_status(&self, user: &str, device: &str) -> DeviceStatus;

    /// RUN `resource` on the device with an optional input; resolves with the device's answer
    /// (or the failure: offline, timeout, limits), `None` if the server stopped first.
    fn run(
        &self,
        user: &str,
        device: &str,
        resource: &str,
        input: Option<Value>,
    ) -> BoxFuture<Option<RequestResult>>;

    /// DESCRIBE the device (`resource` = `None`) or one of its resources; same outcomes as
    /// [`Backend::run`].
    fn describe(
        &self,
        user: &str,
        device: &str,
        resource: Option<&str>,
    ) -> BoxFuture<Option<RequestResult>>;

    /// Registers a sink for `resource` of the device, every `interval_s` seconds (0 = events
    /// only), and delivers its values into `values` (never blocks; see [`SinkSender`]) until
    /// [`Backend::unsubscribe`] — also across device disconnects (spec §6.9). The returned
    /// [`Subscription::ready`] resolves once the sink is established: at once when nothing had
    /// to be asked of the device, else with the device's answer to the START_STREAM (§8.4).
    fn subscribe(
        &self,
        user: &str,
        device: &str,
        resource: &str,
        interval_s: u32,
        values: SinkSender,
    ) -> Subscription;

    /// Removes a sink registered by [`Backend::subscribe`]; unknown sinks are a no-op. The API
    /// calls it exactly once per subscription, also when the subscription failed.
    fn unsubscribe(&self, user: &str, device: &str, resource: &str, sink: SinkId);

    /// The records of `user`'s bucket `bucket` in the query's range, oldest first
    /// (`GET /v3/users/{user}/buckets/{bucket}/data`). An unknown bucket is
    /// [`DataFailure::NotFound`]. The default keeps no data ([`DataFailure::Unsupported`]).
    fn records(
        &self,
        user: &str,
        bucket: &str,
        query: RecordQuery,
    ) -> BoxFuture<Result<Vec<BucketRecord>, DataFailure>> {
        let _ = (user, bucket, query);
        unsupported()
    }

    /// The recorders of `user` (`GET /v3/users/{user}/recorders`).
    fn recorders(&self, user: &str) -> BoxFuture<Result<Vec<RecorderInfo>, DataFailure>> {
        let _ = user;
        unsupported()
    }

    /// Adds a recorder for one of `user`'s devices into one of their buckets (created if
    /// needed); `POST /v3/users/{user}/recorders`.
    fn add_recorder(
        &self,
        user: &str,
        recorder: NewRecorder,
    ) -> BoxFuture<Result<RecorderInfo, DataFailure>> {
        let _ = (user, recorder);
        unsupported()
    }

    /// Removes recorder `id` if it is one of `user`'s (else [`DataFailure::NotFound`]);
    /// `DELETE /v3/users/{user}/recorders/{id}`.
    fn remove_recorder(&self, user: &str, id: i64) -> BoxFuture<Result<(), DataFailure>> {
        let _ = (user, id);
        unsupported()
    }
}

/// The answer of the data methods a backend does not implement.
fn unsupported<T: Send + 'static>() -> BoxFuture<Result<T, DataFailure>> {
    Box::pin(std::future::ready(Err(DataFailure::Unsupported)))
}

/// Which records a data query wants: `from <= ts < to` (unix ms; an absent bound is open), at
/// most `limit`, oldest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordQuery {
    /// First timestamp included.
    pub from: Option<i64>,
    /// First timestamp excluded.
    pub to: Option<i64>,
    /// Largest number of records.
    pub limit: u32,
}

/// One recorded value: the server's reception time and the value as JSON (§8.3 mapping).
#[derive(Debug, Clone, PartialEq)]
pub struct BucketRecord {
    /// When the server received the value, unix milliseconds.
    pub ts_unix_ms: i64,
    /// The value.
    pub value: serde_json::Value,
}

/// A recorder: every `interval_s` seconds (0 = every value) it stores `resource` of `device`
/// into `bucket`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecorderInfo {
    /// Its id (unique on the server).
    pub id: i64,
    /// The device id (of the recorder's user).
    pub device: String,
    /// The resource recorded.
    pub resource: String,
    /// Seconds between records; 0 = every value the device sends.
    pub interval_s: u32,
    /// The bucket written to.
    pub bucket: String,
}

/// A recorder to add (the body of `POST .../recorders`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRecorder {
    /// The device id.
    pub device: String,
    /// The resource to record.
    pub resource: String,
    /// The bucket to write to.
    pub bucket: String,
    /// Seconds between records; 0 = every value.
    pub interval_s: u32,
}

/// Why a data request failed (each maps to one status).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DataFailure {
    /// 404 with this text: unknown bucket, device or recorder.
    NotFound(String),
    /// 400 with this text: a name or value the store refuses.
    Invalid(String),
    /// 409 with this text: it exists already.
    Conflict(String),
    /// 500 with this text: the store failed (keep details for the logs).
    Failed(String),
    /// 501: this backend keeps no recorded data.
    Unsupported,
}

impl fmt::Debug for dyn Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("dyn Backend")
    }
}

/// One device of the list body (spec §8.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// The device id (unique per user).
    pub device: String,
    /// Whether it is connected now.
    pub connected: bool,
    /// The dialect of its connection (ignored while offline).
    pub dialect: Option<Dialect>,
    /// When its connection was accepted, unix milliseconds (ignored while offline).
    pub connected_at_unix_ms: Option<u64>,
}

/// What a device path names (spec §8.1: unknown device and device offline are both 404, with
/// different texts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceStatus {
    /// No such device is registered for the user.
    Unknown,
    /// Registered, not connected.
    Offline,
    /// Registered and connected.
    Online,
}

/// A sink being registered: its id, for [`Backend::unsubscribe`], and when it is established.
pub struct Subscription {
    /// The sink's id, chosen by the backend.
    pub sink: SinkId,
    /// Resolves once the sink is established, or with why it is not.
    pub ready: BoxFuture<SubscribeOutcome>,
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("sink", &self.sink)
            .finish_non_exhaustive()
    }
}

impl Subscription {
    /// A subscription established at once.
    pub fn ready(sink: SinkId) -> Self {
        Subscription {
            sink,
            ready: Box::pin(std::future::ready(Ok(()))),
        }
    }

    /// A subscription that failed at once (limits, say).
    pub fn failed(sink: SinkId, why: SubscribeFailure) -> Self {
        Subscription {
            sink,
            ready: Box::pin(std::future::ready(Err(why))),
        }
    }

    /// A subscription whose outcome is a driver's answer (an `iotmp-smol`
    /// `Pending<SubscribeResult>`'s `recv()`).
    pub fn from_driver(
        sink: SinkId,
        answer: impl Future<Output = Option<SubscribeResult>> + Send + 'static,
    ) -> Self {
        Subscription {
            sink,
            ready: Box::pin(async move { SubscribeFailure::from_driver(answer.await) }),
        }
    }
}

/// How a subscription ended up: `Ok` = established, values flow.
pub type SubscribeOutcome = Result<(), SubscribeFailure>;

/// Why a sink could not be established (each maps to one HTTP status, spec §8.4).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum SubscribeFailure {
    /// The device answered the START_STREAM with ERROR, did not answer in time, or went away:
    /// §8.5 status, 504, or 404 "device offline".
    Device(StreamEnd),
    /// The device is not connected (404 "device offline").
    Offline,
    /// A server limit was reached, e.g. 64 streams per connection (503).
    Limit(String),
    /// The server is stopping (503).
    Unavailable,
}

impl SubscribeFailure {
    /// A driver's subscription answer as an outcome; `None` (the driver stopped) is
    /// [`SubscribeFailure::Unavailable`].
    pub fn from_driver(answer: Option<SubscribeResult>) -> SubscribeOutcome {
        match answer {
            Some(Ok(())) => Ok(()),
            Some(Err(end)) => Err(SubscribeFailure::Device(end)),
            None => Err(SubscribeFailure::Unavailable),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `iotmp-smol` server handle maps onto the trait's types without glue: this only has
    /// to compile.
    #[allow(dead_code, reason = "a compile-time check")]
    fn driver_answers_fit(
        handle: &iotmp_smol::ServerHandle,
    ) -> (BoxFuture<Option<RequestResult>>, Subscription) {
        let run: BoxFuture<Option<RequestResult>> =
            Box::pin(handle.run("alice/dev01", "temp", None).recv());
        let subscription =
            Subscription::from_driver(7, handle.subscribe("alice/dev01", "temp", 7, 0).recv());
        (run, subscription)
    }

    #[test]
    fn driver_outcomes_map_to_failures() {
        assert_eq!(SubscribeFailure::from_driver(Some(Ok(()))), Ok(()));
        assert_eq!(
            SubscribeFailure::from_driver(Some(Err(StreamEnd::TimedOut))),
            Err(SubscribeFailure::Device(StreamEnd::TimedOut))
        );
        assert_eq!(
            SubscribeFailure::from_driver(None),
            Err(SubscribeFailure::Unavailable)
        );
    }
}
