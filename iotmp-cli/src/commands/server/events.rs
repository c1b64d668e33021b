//! The server's event loop: one thread that consumes the driver's events.
//!
//! * `Authenticate`: a lookup in the in-memory registry index (a hash probe and one SHA-256,
//!   no SQLite), then `accept(conn, "user/device")` or `reject(conn)`. A failed lookup refreshes
//!   the registry first (at most every [`FAILED_REFRESH_GAP`]) and looks again, so that a device
//!   registered with `iotmp device add` while the server runs connects at once.
//! * `DeviceOnline` / `DeviceOffline`: the connection state the API lists.
//! * `Delivery`: a recorder's value goes to the writer's queue (the [`pump`](super::pump) hands
//!   API sinks their values before events reach this loop; one that still comes here, for a
//!   sink registered meanwhile, goes to its [`SinkSender`](iotmp_cli::api::SinkSender)); neither
//!   ever waits.
//! * Every [`REFRESH_INTERVAL`], and when the API asks, the registry is refreshed: if another
//!   connection committed (`iotmp user|device|recorder …`, or the API's recorder changes), the
//!   index is reloaded and the recorders are started and stopped to match the database.
//!
//! The loop ends when the pump's channel closes (after its shutdown); dropping the
//! writer's queue then lets the writer commit what is left.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use async_channel::Receiver;
use async_io::Timer;
use futures_lite::future::FutureExt as _;
use iotmp_cli::api::{SinkValue, unix_ms};
use iotmp_proto::broker::{BrokerEvent, ConnId};
use iotmp_proto::fanout::SinkId;
use iotmp_proto::json::value::to_json;
use iotmp_proto::server::{AuthRequest, Credentials};
use tracing::{debug, info, warn};

use super::driver::Handle;
use super::recording::{Row, RowSender};
use super::state::{Online, Shared, device_key, lock};
use crate::store::{DeviceRef, Fingerprint, Recorder, RecorderId, Registry, now_ms};

/// How often the registry is checked for changes made by other processes. Checking is one
/// `PRAGMA data_version` (no disk read); only a change reloads.
pub(crate) const REFRESH_INTERVAL: Duration = Duration::from_secs(2);

/// Least time between two refreshes caused by failed authentications (or asked for by the
/// API), so that a flood of bad CONNECTs or tokens costs at most ten database checks a second;
/// a refresh skipped here happens at the next periodic one.
pub(crate) const FAILED_REFRESH_GAP: Duration = Duration::from_millis(100);

/// Most events handled per wake-up before the loop looks at refresh requests and the timer
/// again, so that a flood of deliveries cannot delay a refresh for long.
const MAX_BATCH: usize = 1024;

/// A recorder the loop runs: its sink in the fan-out.
#[derive(Debug)]
struct Active {
    recorder: Recorder,
    sink: SinkId,
}

/// The event loop's state.
#[derive(Debug)]
pub(crate) struct EventLoop {
    registry: Arc<Mutex<Registry>>,
    shared: Arc<Shared>,
    handle: Handle,
    rows: RowSender,
    recorders: HashMap<RecorderId, Active>,
    /// Recorder by sink, for deliveries.
    recorder_sinks: HashMap<SinkId, RecorderId>,
    next_refresh: Instant,
    last_failed_refresh: Option<Instant>,
    /// Whether the last refresh failed (to warn once, not every interval).
    refresh_failing: bool,
}

enum Step {
    Event(BrokerEvent),
    /// The API asked (an unknown token, a recorder change).
    Requested,
    /// The periodic check.
    Refresh,
    Closed,
}

impl EventLoop {
    /// A loop over the shared state; the recorders start with [`EventLoop::run`].
    pub(crate) fn new(
        registry: Arc<Mutex<Registry>>,
        shared: Arc<Shared>,
        handle: Handle,
        rows: RowSender,
    ) -> Self {
        EventLoop {
            registry,
            shared,
            handle,
            rows,
            recorders: HashMap::new(),
            recorder_sinks: HashMap::new(),
            next_refresh: Instant::now() + REFRESH_INTERVAL,
            last_failed_refresh: None,
            refresh_failing: false,
        }
    }

    /// Runs until the driver's events end.
    ///
    /// One wake-up handles every event already queued (up to [`MAX_BATCH`]): under load the
    /// driver keeps adding while the loop works, so most events cost no wake-up, no future and
    /// no timer of their own. The refresh timer lives across iterations and is only re-armed
    /// when the refresh time moves (arming one registers it with the reactor thread).
    pub(crate) fn run(mut self, events: &Receiver<BrokerEvent>, refresh_requests: &Receiver<()>) {
        self.sync_recorders();
        let mut armed_for = self.next_refresh;
        let mut timer = Timer::at(armed_for);
        loop {
            if armed_for != self.next_refresh {
                armed_for = self.next_refresh;
                timer.set_at(armed_for);
            }
            let step = match events.try_recv() {
                Ok(event) => Step::Event(event),
                Err(_) => async_io::block_on(
                    async { events.recv().await.map_or(Step::Closed, Step::Event) }
                        .or(async {
                            // Closed only if `Shared` is gone, which it is not while we hold it.
                            match refresh_requests.recv().await {
                                Ok(()) => Step::Requested,
                                Err(_) => std::future::pending().await,
                            }
                        })
                        .or(async {
                            (&mut timer).await;
                            Step::Refresh
                        }),
                ),
            };
            match step {
                Step::Event(event) => {
                    // One clock read stamps the whole batch: its values arrived together.
                    let received_ms = unix_ms(SystemTime::now());
                    self.handle_event(event, received_ms);
                    for _ in 1..MAX_BATCH {
                        match events.try_recv() {
                            Ok(event) => self.handle_event(event, received_ms),
                            Err(_) => break,
                        }
                    }
                }
                // Unknown tokens are as cheap to send as bad CONNECTs: the same gate.
                Step::Requested => {
                    if self.may_refresh_after_failure() {
                        self.refresh();
                    }
                }
                Step::Refresh => self.refresh(),
                Step::Closed => break,
            }
            // A steady stream of events must not starve the periodic refresh.
            if Instant::now() >= self.next_refresh {
                self.refresh();
            }
        }
        debug!(
            "event loop done; {} recorders were running",
            self.recorders.len()
        );
    }

    /// Handles one driver event; `received_ms` (unix ms) stamps a delivered value.
    fn handle_event(&mut self, event: BrokerEvent, received_ms: u64) {
        match event {
            BrokerEvent::Authenticate { conn, request } => self.authenticate(conn, &request),
            BrokerEvent::DeviceOnline {
                device,
                conn,
                dialect,
            } => {
                let since_unix_ms = u64::try_from(now_ms()).unwrap_or(0);
                info!(
                    "device {device} online (dialect {}, connection {conn})",
                    dialect.year()
                );
                self.shared.set_online(
                    device,
                    Online {
                        dialect,
                        since_unix_ms,
                    },
                );
            }
            BrokerEvent::DeviceOffline { device, reason } => {
                self.shared.set_offline(&device);
                info!("device {device} offline: {reason}");
            }
            BrokerEvent::ConnectionClosed { conn, reason } => {
                debug!("connection {conn} closed before authenticating: {reason}");
            }
            BrokerEvent::Delivery { sink, value, .. } => self.deliver(sink, value, received_ms),
            BrokerEvent::Subscribed {
                device,
                resource,
                sink,
                result: Err(end),
            } => match self.recorder_sinks.get(&sink) {
                Some(id) => warn!(
                    "recorder {}: {device} refused to stream {resource:?} ({end:?}); asked \
                     again when it reconnects",
                    id.0
                ),
                None => debug!("sink {sink}: {device} refused to stream {resource:?}: {end:?}"),
            },
            BrokerEvent::TraceFailed { conn, error } => warn!("connection {conn}: {error}"),
            // At most one a second (the broker counts the rest into `count`).
            BrokerEvent::Refused {
                peer,
                reason,
                count,
            } => {
                let peer = peer.map_or_else(|| "an unknown address".to_owned(), |p| p.to_string());
                warn!(
                    "refused {count} device connection(s) since the last report; latest from \
                     {peer}: {reason}"
                );
            }
            BrokerEvent::Banned { source, duration } => warn!(
                "banned {source} for {}s after repeated failed authentications",
                duration.as_secs()
            ),
            other => debug!("driver event: {other:?}"),
        }
    }

    /// Decides a CONNECT from the index; refreshes once on a miss.
    fn authenticate(&mut self, conn: ConnId, request: &AuthRequest) {
        let mut found = lookup(&self.shared, &request.credentials);
        if found.is_none() && self.may_refresh_after_failure() {
            self.refresh();
            found = lookup(&self.shared, &request.credentials);
        }
        match found {
            Some(device) => {
                let key = device_key(&device.user.name, &device.name);
                debug!("connection {conn}: authenticated as {key}");
                self.handle.accept(conn, &key);
            }
            None => {
                // Names only: never the credential. `{:?}` escapes what a client sent.
                match &request.credentials {
                    Credentials::Password { user, device, .. } => warn!(
                        "refused CONNECT on connection {conn}: user {user:?} device {device:?}: \
                         unknown device or wrong credential"
                    ),
                    Credentials::Certificate { der } => warn!(
                        "refused CONNECT on connection {conn}: no device has the certificate \
                         with SHA-256 {}",
                        Fingerprint::of_der(der)
                    ),
                }
                self.handle.reject(conn);
            }
        }
    }

    fn may_refresh_after_failure(&mut self) -> bool {
        let now = Instant::now();
        if self
            .last_failed_refresh
            .is_some_and(|at| now.duration_since(at) < FAILED_REFRESH_GAP)
        {
            return false;
        }
        self.last_failed_refresh = Some(now);
        true
    }

    fn deliver(&mut self, sink: SinkId, value: iotmp_proto::Value, received_ms: u64) {
        if let Some(id) = self.recorder_sinks.get(&sink) {
            if let Some(active) = self.recorders.get(id) {
                self.rows.push(Row {
                    bucket: active.recorder.bucket_id,
                    ts: i64::try_from(received_ms).unwrap_or(i64::MAX),
                    value: to_json(&value),
                });
            }
        } else if let Some(values) = self.shared.sink(sink) {
            // False once the socket closed; the API unsubscribes that sink itself.
            let _ = values.send(SinkValue {
                value,
                ts_unix_ms: received_ms,
            });
        }
    }

    /// Reloads the index and the recorders if another connection changed the database.
    fn refresh(&mut self) {
        self.next_refresh = Instant::now() + REFRESH_INTERVAL;
        let mut registry = lock(&self.registry);
        match registry.refresh() {
            Ok(false) => {}
            Ok(true) => {
                self.shared.set_index(registry.index());
                debug!("registry changed: index reloaded");
                drop(registry);
                self.sync_recorders();
            }
            Err(e) => {
                if !self.refresh_failing {
                    warn!("cannot read the registry database ({e}); serving the last index read");
                }
                self.refresh_failing = true;
                return;
            }
        }
        if std::mem::take(&mut self.refresh_failing) {
            info!("the registry database can be read again");
        }
    }

    /// Starts the recorders the database has and the loop does not run, stops the others.
    fn sync_recorders(&mut self) {
        let wanted = match lock(&self.registry).store().list_recorders(None) {
            Ok(list) => list,
            Err(e) => {
                warn!("cannot read the recorders ({e}); keeping the running ones");
                return;
            }
        };
        let ids: HashSet<RecorderId> = wanted.iter().map(|r| r.id).collect();
        let gone: Vec<RecorderId> = self
            .recorders
            .keys()
            .filter(|id| !ids.contains(id))
            .copied()
            .collect();
        for id in gone {
            if let Some(active) = self.recorders.remove(&id) {
                self.recorder_sinks.remove(&active.sink);
                let r = &active.recorder;
                self.handle
                    .unsubscribe(&device_key(&r.user, &r.device), &r.resource, active.sink);
                info!("recorder {} stopped", id.0);
            }
        }
        for recorder in wanted {
            if self.recorders.contains_key(&recorder.id) {
                continue;
            }
            self.start_recorder(recorder);
        }
    }

    fn start_recorder(&mut self, recorder: Recorder) {
        let sink = self.shared.next_sink();
        let key = device_key(&recorder.user, &recorder.device);
        let every = match recorder.interval_secs {
            0 => "every value".to_owned(),
            n => format!("every {n} s"),
        };
        info!(
            "recorder {}: {key} {:?} {every} into bucket {}",
            recorder.id.0, recorder.resource, recorder.bucket
        );
        let answer = self
            .handle
            .subscribe(&key, &recorder.resource, sink, recorder.interval_secs);
        let id = recorder.id.0;
        // The outcome only matters to the log: the sink stays registered either way, and the
        // fan-out asks the device again when it reconnects (spec §6.9).
        smol::spawn(async move {
            match answer.await {
                Some(Ok(())) => debug!("recorder {id}: subscribed"),
                Some(Err(end)) => warn!(
                    "recorder {id}: {key} refused the stream ({end:?}); asked again when it \
                     reconnects"
                ),
                None => {}
            }
        })
        .detach();
        self.recorder_sinks.insert(sink, recorder.id);
        self.recorders
            .insert(recorder.id, Active { recorder, sink });
    }
}

/// The device the credentials name, from the index only.
fn lookup(shared: &Shared, credentials: &Credentials) -> Option<DeviceRef> {
    let index = shared.index();
    match credentials {
        Credentials::Password {
            user,
            device,
            credential,
        } => index.authenticate_device(user, device, credential),
        // The core hands a certificate over only when it is the verified TLS client
        // certificate (spec §6.2); the registry knows devices by its SHA-256.
        Credentials::Certificate { der } => index.device_by_fingerprint(&Fingerprint::of_der(der)),
    }
}
