//! Server fan-out with the GCD rule (spec §6.9), for one (device, resource) pair.
//!
//! Several *sinks* (WebSocket, SSE clients, recorders) may consume one device resource, each at its
//! own interval in whole seconds or event-only (interval 0). The device is kept simple: it runs at
//! most one sampling stream whose period `P` is the greatest common divisor of the sampling sinks'
//! intervals (plus, in 2026, a separate event stream), and [`Fanout`] down-samples per sink.
//!
//! [`Fanout`] is pure bookkeeping: no I/O, no clock, no randomness. Time enters only as `now`
//! arguments ([`Instant`], microseconds) and all time arithmetic is integer microseconds, so a run
//! is exactly reproducible. Outputs are appended to caller-owned vectors:
//!
//! * [`FanoutAction`]s: what to send to the device, in order. The caller owns stream ids: it
//!   allocates a new id for every [`FanoutAction::Open`], keeps it for the action's
//!   [`StreamSlot`], frees it on [`FanoutAction::Stop`], and builds the message with
//!   [`FanoutAction::to_message`]. A stream counts as configured as soon as its action is emitted.
//! * [`Delivery`]s: which sink gets which value, in sink join order.
//!
//! Inputs: [`Fanout::join`] / [`Fanout::leave`] (sinks), [`Fanout::on_data`] (a value arrived on
//! the stream of a slot), [`Fanout::device_connected`] / [`Fanout::device_disconnected`] (sinks
//! survive reconnects) and [`Fanout::stream_failed`] (the device refused a START_STREAM or did not
//! answer it).
//!
//! Decisions where §6.9 leaves room:
//!
//! * Re-joining with a sink id that is already registered replaces that sink atomically: the old
//!   entry is removed and a fresh one (new join time, unset `next_due`, no `last_sent`) is
//!   appended, then the device configuration is reconciled **once**. So a re-join never makes the
//!   device stop and re-open a stream only to reach the same configuration; if it causes no
//!   action, the re-joined sink gets the cached value like any joining sink.
//! * A sink's `next_due` and `last_sent` survive device disconnects (the sink survives).
//! * Values arriving on a slot that is not open (or while the device is offline) are ignored and do
//!   not update the cache.
//! * A value whose PSON v2 encoding fails (impossible for decoded values) always counts as changed
//!   for the 2020 change-only rule and leaves the sink without a `last_sent`.
//! * Intervals are not clamped: the API layer validates `0..=86400` (spec §8.4); larger values
//!   work too, with saturating time arithmetic.
//! * When one call emits several actions they come in slot order: [`StreamSlot::Single`],
//!   [`StreamSlot::Sampling`], [`StreamSlot::Events`] (so a 2026 reconnect opens the sampling
//!   stream before the event stream).
//!
//! ```
//! use iotmp_proto::fanout::{Delivery, Fanout, FanoutAction, StreamSlot};
//! use iotmp_proto::{Dialect, Instant, Value};
//!
//! let mut fanout = Fanout::new();
//! let (mut actions, mut deliveries) = (Vec::new(), Vec::new());
//! fanout.device_connected(Instant::ZERO, Dialect::Draft2026, &mut actions);
//! fanout.join(Instant::ZERO, 1, 6, &mut actions, &mut deliveries);
//! fanout.join(Instant::from_secs(1), 2, 9, &mut actions, &mut deliveries);
//! assert_eq!(
//!     actions,
//!     [
//!         FanoutAction::Open { slot: StreamSlot::Sampling, interval_ms: 6000 },
//!         FanoutAction::Reconfigure { slot: StreamSlot::Sampling, interval_ms: 3000 },
//!     ]
//! );
//! fanout.on_data(Instant::from_millis(1100), StreamSlot::Sampling, &Value::from(20), &mut deliveries);
//! assert_eq!(
//!     deliveries,
//!     [Delivery { sink: 1, value: Value::from(20) }, Delivery { sink: 2, value: Value::from(20) }]
//! );
//! ```

use crate::dialect::Dialect;
use crate::message::{Message, MessageType};
use crate::pson::v2;
use crate::time::Instant;
use crate::value::Value;

/// Identifies a sink; chosen by the application (unique per (device, resource)).
pub type SinkId = u64;

const MICROS_PER_SECOND: u64 = 1_000_000;
const MILLIS_PER_SECOND: u64 = 1_000;

/// Which device stream of the resource an action or a value concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StreamSlot {
    /// 2020: the one stream of the resource (interval `P`, or 0 for events).
    Single,
    /// 2026: the sampling stream (period `P`).
    Sampling,
    /// 2026: the event stream.
    Events,
}

impl StreamSlot {
    /// Every slot, in the order actions are emitted.
    pub const ALL: [StreamSlot; 3] = [StreamSlot::Single, StreamSlot::Sampling, StreamSlot::Events];
}

/// What the server must send to the device, produced in order by [`Fanout`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FanoutAction {
    /// Open the slot's stream: `START_STREAM {new id, resource, interval if > 0}`.
    Open {
        /// The slot; the caller allocates a new stream id for it.
        slot: StreamSlot,
        /// The interval in milliseconds, 0 = events.
        interval_ms: u64,
    },
    /// Change the interval of the slot's open stream: `START_STREAM {same id, interval}`.
    Reconfigure {
        /// The slot.
        slot: StreamSlot,
        /// The new interval in milliseconds; 0 (a 2020 stream going back to events) is sent
        /// explicitly.
        interval_ms: u64,
    },
    /// Close the slot's stream: `STOP_STREAM {id}`; the caller frees the id once answered.
    Stop {
        /// The slot.
        slot: StreamSlot,
    },
}

impl FanoutAction {
    /// The slot this action concerns.
    pub const fn slot(&self) -> StreamSlot {
        match *self {
            FanoutAction::Open { slot, .. }
            | FanoutAction::Reconfigure { slot, .. }
            | FanoutAction::Stop { slot } => slot,
        }
    }

    /// The interval the stream has after this action, `None` for [`FanoutAction::Stop`].
    pub const fn interval_ms(&self) -> Option<u64> {
        match *self {
            FanoutAction::Open { interval_ms, .. }
            | FanoutAction::Reconfigure { interval_ms, .. } => Some(interval_ms),
            FanoutAction::Stop { .. } => None,
        }
    }

    /// The message for this action, given the stream id the caller allocated (for
    /// [`FanoutAction::Open`]) or holds (otherwise) for the slot.
    ///
    /// Both dialects get the same model message: the codec converts the interval (2020 whole
    /// seconds, 2026 milliseconds), and the 2026 v1-flavour copy of the resource into the payload
    /// (spec §4.6) is the session's business. `dialect` is taken so callers need not care.
    pub fn to_message(&self, dialect: Dialect, stream_id: u16, resource: &Value) -> Message {
        let _ = dialect;
        match *self {
            FanoutAction::Open { interval_ms, .. } => {
                let mut message = Message::new(MessageType::StartStream)
                    .with_stream_id(stream_id)
                    .with_resource(resource.clone());
                message.interval_ms = (interval_ms > 0).then_some(interval_ms);
                message
            }
            FanoutAction::Reconfigure { interval_ms, .. } => {
                let mut message = Message::new(MessageType::StartStream).with_stream_id(stream_id);
                message.interval_ms = Some(interval_ms);
                message
            }
            FanoutAction::Stop { .. } => {
                Message::new(MessageType::StopStream).with_stream_id(stream_id)
            }
        }
    }
}

/// One value for one sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The receiving sink.
    pub sink: SinkId,
    /// The value.
    pub value: Value,
}

/// One consumer of the resource.
#[derive(Debug, Clone)]
struct Sink {
    id: SinkId,
    /// Whole seconds; 0 = event-only.
    interval_s: u32,
    /// Microseconds; `None` = unset (sampling sinks only).
    next_due: Option<u64>,
    /// Canonical PSON v2 bytes of the last value received (event-only sinks only: nobody else
    /// ever compares it).
    last_sent: Option<Vec<u8>>,
}

impl Sink {
    const fn new(id: SinkId, interval_s: u32) -> Self {
        Sink {
            id,
            interval_s,
            next_due: None,
            last_sent: None,
        }
    }

    const fn is_sampling(&self) -> bool {
        self.interval_s > 0
    }

    /// The window rule's test: `next_due` unset, or `t >= next_due - P/2`.
    fn window_open(&self, t: u64, half_period: u64) -> bool {
        self.next_due
            .is_none_or(|due| due <= t.saturating_add(half_period))
    }

    /// Whether `encoded` (the value's PSON v2 bytes, `None` if unencodable) differs from
    /// `last_sent`.
    fn changed(&self, encoded: Option<&[u8]>) -> bool {
        encoded.is_none() || self.last_sent.as_deref() != encoded
    }

    /// Bookkeeping after a delivery at `t` (µs).
    fn delivered(&mut self, t: u64, half_period: u64, encoded: Option<&[u8]>) {
        if !self.is_sampling() {
            match encoded {
                Some(bytes) => {
                    let last = self.last_sent.get_or_insert_with(Vec::new);
                    last.clear();
                    last.extend_from_slice(bytes);
                }
                None => self.last_sent = None,
            }
            return;
        }
        let step = u64::from(self.interval_s).saturating_mul(MICROS_PER_SECOND);
        self.next_due = Some(match self.next_due {
            None => t.saturating_add(step),
            Some(due) => {
                // `next_due += I; while next_due - P/2 <= t: next_due += I`, in closed form: the
                // loop runs while `next_due <= t + P/2`.
                let next = due.saturating_add(step);
                let limit = t.saturating_add(half_period);
                if next > limit {
                    next
                } else {
                    match (limit - next).checked_div(step) {
                        Some(k) => next.saturating_add(k.saturating_add(1).saturating_mul(step)),
                        None => next,
                    }
                }
            }
        });
    }
}

/// The device streams of the resource: each slot's configured interval in ms, if open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Streams {
    single: Option<u64>,
    sampling: Option<u64>,
    events: Option<u64>,
}

impl Streams {
    const fn get(&self, slot: StreamSlot) -> Option<u64> {
        match slot {
            StreamSlot::Single => self.single,
            StreamSlot::Sampling => self.sampling,
            StreamSlot::Events => self.events,
        }
    }

    const fn slot_mut(&mut self, slot: StreamSlot) -> &mut Option<u64> {
        match slot {
            StreamSlot::Single => &mut self.single,
            StreamSlot::Sampling => &mut self.sampling,
            StreamSlot::Events => &mut self.events,
        }
    }

    const fn is_empty(&self) -> bool {
        self.single.is_none() && self.sampling.is_none() && self.events.is_none()
    }

    fn iter(self) -> impl Iterator<Item = (StreamSlot, u64)> {
        StreamSlot::ALL
            .into_iter()
            .filter_map(move |slot| self.get(slot).map(|interval| (slot, interval)))
    }
}

/// Who receives a value, per kind of sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EventRule {
    /// Event-only sinks receive nothing.
    Skip,
    /// Every event-only sink receives it.
    All,
    /// An event-only sink receives it if its PSON v2 encoding differs from `last_sent`.
    Changed,
}

/// Fan-out state of one (device, resource) pair (spec §6.9).
///
/// Created offline with no sinks. Every input that may change the device configuration appends
/// the [`FanoutAction`]s to send; every input that may deliver values appends [`Delivery`]s in sink
/// join order. The configuration is recomputed from scratch on each join, leave and connect:
///
/// | | 2026 | 2020 |
/// |---|---|---|
/// | sampling sinks | [`StreamSlot::Sampling`] at `P`·1000 ms | [`StreamSlot::Single`] at `P`·1000 ms |
/// | event-only sinks | [`StreamSlot::Events`] (also when sampling sinks exist) | [`StreamSlot::Single`] at 0 ms unless sampling sinks exist |
///
/// with `P` the GCD of the sampling sinks' intervals. Use one `Fanout` per (device, resource).
#[derive(Debug, Clone, Default)]
pub struct Fanout {
    /// `Some` while the device is connected.
    dialect: Option<Dialect>,
    /// In join order.
    sinks: Vec<Sink>,
    /// `P` in seconds: GCD of the sampling sinks' intervals, 0 if none.
    period_s: u64,
    /// Open (configured) device streams.
    streams: Streams,
    /// Last value received while a stream was open.
    cache: Option<Value>,
    /// Reused buffer for PSON v2 encodings.
    scratch: Vec<u8>,
}

impl Fanout {
    /// Device offline, no sinks.
    pub fn new() -> Self {
        Fanout::default()
    }

    // ---- getters ----

    /// Open device streams: slot and configured interval in ms (0 = events), in slot order.
    pub fn open_streams(&self) -> impl Iterator<Item = (StreamSlot, u64)> {
        self.streams.iter()
    }

    /// The configured interval (ms) of the slot's stream, if open.
    pub const fn stream_interval_ms(&self, slot: StreamSlot) -> Option<u64> {
        self.streams.get(slot)
    }

    /// Registered sinks with their intervals (seconds, 0 = event-only), in join order.
    pub fn sinks(&self) -> impl Iterator<Item = (SinkId, u32)> {
        self.sinks.iter().map(|sink| (sink.id, sink.interval_s))
    }

    /// Whether `sink` is registered.
    pub fn contains(&self, sink: SinkId) -> bool {
        self.sinks.iter().any(|s| s.id == sink)
    }

    /// The cached value: the last value received while a stream was open.
    pub const fn cached(&self) -> Option<&Value> {
        self.cache.as_ref()
    }

    /// No sinks and no open streams: the state can be dropped.
    pub fn is_idle(&self) -> bool {
        self.sinks.is_empty() && self.streams.is_empty()
    }

    /// `P` in milliseconds: the GCD of the sampling sinks' intervals ·1000, 0 if there are none.
    pub const fn sampling_period_ms(&self) -> u64 {
        self.period_s.saturating_mul(MILLIS_PER_SECOND)
    }

    /// The device's dialect while it is connected.
    pub const fn dialect(&self) -> Option<Dialect> {
        self.dialect
    }

    // ---- device ----

    /// The device connected (again) with `dialect`: opens the streams the registered sinks need.
    /// If the device was considered connected, its old streams are forgotten first.
    pub fn device_connected(
        &mut self,
        now: Instant,
        dialect: Dialect,
        actions: &mut Vec<FanoutAction>,
    ) {
        let _ = now;
        self.device_disconnected();
        self.dialect = Some(dialect);
        self.reconcile_inner(actions);
    }

    /// The device is gone: its streams are gone and the cache is cleared; sinks stay registered.
    pub fn device_disconnected(&mut self) {
        self.dialect = None;
        self.streams = Streams::default();
        self.cache = None;
    }

    /// The device refused the slot's START_STREAM (ERROR) or did not answer it: the stream is
    /// considered not open. Nothing is re-sent here; the next join, leave, connect or
    /// [`Fanout::reconcile`] opens it again if still needed. (For a refused reconfigure, spec
    /// §6.8 also wants a STOP_STREAM for the old id: that is the caller's, who holds the id.)
    pub fn stream_failed(&mut self, slot: StreamSlot) {
        *self.streams.slot_mut(slot) = None;
        if self.streams.is_empty() {
            self.cache = None;
        }
    }

    /// Brings the device streams to the desired configuration (e.g. after
    /// [`Fanout::stream_failed`]). Returns whether any action was emitted.
    pub fn reconcile(&mut self, actions: &mut Vec<FanoutAction>) -> bool {
        self.reconcile_inner(actions)
    }

    // ---- sinks ----

    /// Registers `sink` with `interval_s` seconds (0 = event-only); an already registered `sink`
    /// is replaced (see the module docs). If this causes no action and a value is cached, the
    /// sink receives it at once, counting as a delivery at `now`.
    pub fn join(
        &mut self,
        now: Instant,
        sink: SinkId,
        interval_s: u32,
        actions: &mut Vec<FanoutAction>,
        deliveries: &mut Vec<Delivery>,
    ) {
        self.sinks.retain(|s| s.id != sink);
        self.sinks.push(Sink::new(sink, interval_s));
        self.update_period();
        if self.reconcile_inner(actions) {
            return;
        }
        let Fanout {
            sinks,
            cache,
            scratch,
            period_s,
            ..
        } = self;
        if let (Some(value), Some(joined)) = (cache.as_ref(), sinks.last_mut()) {
            let encoded = encode_if(!joined.is_sampling(), value, scratch);
            joined.delivered(now.as_micros(), half_period_micros(*period_s), encoded);
            deliveries.push(Delivery {
                sink,
                value: value.clone(),
            });
        }
    }

    /// Removes `sink` (no-op if absent) and reconfigures the device accordingly.
    pub fn leave(&mut self, now: Instant, sink: SinkId, actions: &mut Vec<FanoutAction>) {
        let _ = now;
        let before = self.sinks.len();
        self.sinks.retain(|s| s.id != sink);
        if self.sinks.len() != before {
            self.update_period();
            self.reconcile_inner(actions);
        }
    }

    // ---- data ----

    /// A value arrived at `now` on the stream of `slot`: caches it and delivers it to the sinks
    /// the slot's rule selects. Ignored if that slot is not open.
    pub fn on_data(
        &mut self,
        now: Instant,
        slot: StreamSlot,
        value: &Value,
        deliveries: &mut Vec<Delivery>,
    ) {
        let Some(interval_ms) = self.streams.get(slot) else {
            return;
        };
        self.cache = Some(value.clone());
        let (sampling, events) = match slot {
            StreamSlot::Events => (false, EventRule::All),
            StreamSlot::Sampling => (true, EventRule::Skip),
            StreamSlot::Single if interval_ms == 0 => (false, EventRule::All),
            StreamSlot::Single => (true, EventRule::Changed),
        };
        let Fanout {
            sinks,
            scratch,
            period_s,
            ..
        } = self;
        let any_event_sink = sinks.iter().any(|s| !s.is_sampling());
        let encoded = encode_if(events != EventRule::Skip && any_event_sink, value, scratch);
        let t = now.as_micros();
        let half = half_period_micros(*period_s);
        for sink in sinks.iter_mut() {
            let deliver = if sink.is_sampling() {
                sampling && sink.window_open(t, half)
            } else {
                match events {
                    EventRule::Skip => false,
                    EventRule::All => true,
                    EventRule::Changed => sink.changed(encoded),
                }
            };
            if deliver {
                sink.delivered(t, half, encoded);
                deliveries.push(Delivery {
                    sink: sink.id,
                    value: value.clone(),
                });
            }
        }
    }

    // ---- internals ----

    fn update_period(&mut self) {
        self.period_s = self
            .sinks
            .iter()
            .filter(|s| s.is_sampling())
            .fold(0, |g, s| gcd(g, u64::from(s.interval_s)));
    }

    /// The configuration the sinks need on a device speaking `dialect`.
    fn desired(&self, dialect: Dialect) -> Streams {
        let period_ms = self.sampling_period_ms();
        let sampling = (period_ms > 0).then_some(period_ms);
        let events = self.sinks.iter().any(|s| !s.is_sampling()).then_some(0);
        match dialect {
            Dialect::Draft2020 => Streams {
                single: sampling.or(events),
                ..Streams::default()
            },
            Dialect::Draft2026 => Streams {
                sampling,
                events,
                ..Streams::default()
            },
        }
    }

    /// Emits the actions that turn the open streams into the desired ones (nothing while the
    /// device is offline); returns whether there were any.
    fn reconcile_inner(&mut self, actions: &mut Vec<FanoutAction>) -> bool {
        let Some(dialect) = self.dialect else {
            return false;
        };
        let desired = self.desired(dialect);
        let mut any = false;
        for slot in StreamSlot::ALL {
            let action = match (self.streams.get(slot), desired.get(slot)) {
                (None, Some(interval_ms)) => FanoutAction::Open { slot, interval_ms },
                (Some(open), Some(interval_ms)) if open != interval_ms => {
                    FanoutAction::Reconfigure { slot, interval_ms }
                }
                (Some(_), None) => FanoutAction::Stop { slot },
                _ => continue,
            };
            actions.push(action);
            any = true;
        }
        self.streams = desired;
        if self.streams.is_empty() {
            self.cache = None;
        }
        any
    }
}

/// `P/2` in microseconds for `P` in seconds (exact: `P`·10^6 is even).
const fn half_period_micros(period_s: u64) -> u64 {
    period_s.saturating_mul(MICROS_PER_SECOND) / 2
}

/// The canonical PSON v2 bytes of `value` in `scratch` if `needed` and encodable.
fn encode_if<'a>(needed: bool, value: &Value, scratch: &'a mut Vec<u8>) -> Option<&'a [u8]> {
    if !needed {
        return None;
    }
    scratch.clear();
    v2::encode(value, scratch).ok()?;
    Some(scratch.as_slice())
}

const fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        let r = a % b;
        a = b;
        b = r;
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    const T2020: Dialect = Dialect::Draft2020;
    const T2026: Dialect = Dialect::Draft2026;

    fn secs(s: f64) -> Instant {
        Instant::from_micros((s * 1e6).round() as u64)
    }

    /// A connected fan-out plus output buffers, drained by each call.
    struct Harness {
        fanout: Fanout,
        actions: Vec<FanoutAction>,
        deliveries: Vec<Delivery>,
    }

    impl Harness {
        fn new(dialect: Dialect) -> Self {
            let mut h = Harness {
                fanout: Fanout::new(),
                actions: Vec::new(),
                deliveries: Vec::new(),
            };
            h.fanout
                .device_connected(Instant::ZERO, dialect, &mut h.actions);
            assert!(h.actions.is_empty());
            h
        }

        fn join(&mut self, t: f64, sink: SinkId, interval_s: u32) -> Vec<FanoutAction> {
            self.fanout.join(
                secs(t),
                sink,
                interval_s,
                &mut self.actions,
                &mut self.deliveries,
            );
            std::mem::take(&mut self.actions)
        }

        fn leave(&mut self, t: f64, sink: SinkId) -> Vec<FanoutAction> {
            self.fanout.leave(secs(t), sink, &mut self.actions);
            std::mem::take(&mut self.actions)
        }

        fn data(&mut self, t: f64, slot: StreamSlot, value: i64) -> Vec<(SinkId, Value)> {
            self.fanout
                .on_data(secs(t), slot, &Value::from(value), &mut self.deliveries);
            self.take_deliveries()
        }

        fn take_deliveries(&mut self) -> Vec<(SinkId, Value)> {
            std::mem::take(&mut self.deliveries)
                .into_iter()
                .map(|d| (d.sink, d.value))
                .collect()
        }
    }

    fn v(n: i64) -> Value {
        Value::from(n)
    }

    #[test]
    fn gcd_works() {
        assert_eq!(gcd(0, 0), 0);
        assert_eq!(gcd(0, 9), 9);
        assert_eq!(gcd(6, 9), 3);
        assert_eq!(gcd(10, 4), 2);
    }

    #[test]
    fn join_same_sink_twice_replaces_it() {
        let mut h = Harness::new(T2026);
        assert_eq!(
            h.join(0.0, 1, 6),
            [FanoutAction::Open {
                slot: StreamSlot::Sampling,
                interval_ms: 6000
            }]
        );
        assert_eq!(h.data(0.1, StreamSlot::Sampling, 5), [(1, v(5))]);
        // Same interval: no action, so the re-joined sink gets the cached value at once.
        assert_eq!(h.join(1.0, 1, 6), []);
        assert_eq!(h.take_deliveries(), [(1, v(5))]);
        assert_eq!(h.fanout.sinks().collect::<Vec<_>>(), [(1, 6)]);
        // Its schedule restarted at the join: next due 7.0, window opens at 4.0.
        assert_eq!(h.data(3.9, StreamSlot::Sampling, 6), []);
        assert_eq!(h.data(4.0, StreamSlot::Sampling, 7), [(1, v(7))]);
        // Another interval: one reconfigure, not a stop and a re-open.
        assert_eq!(
            h.join(5.0, 1, 4),
            [FanoutAction::Reconfigure {
                slot: StreamSlot::Sampling,
                interval_ms: 4000
            }]
        );
        assert_eq!(h.take_deliveries(), []);
        // Becoming event-only swaps the streams.
        assert_eq!(
            h.join(6.0, 1, 0),
            [
                FanoutAction::Stop {
                    slot: StreamSlot::Sampling
                },
                FanoutAction::Open {
                    slot: StreamSlot::Events,
                    interval_ms: 0
                }
            ]
        );
        assert_eq!(h.fanout.sinks().count(), 1);
    }

    #[test]
    fn rejoin_moves_the_sink_to_the_end_of_the_order() {
        let mut h = Harness::new(T2020);
        h.join(0.0, 1, 2);
        h.join(0.0, 2, 2);
        h.join(0.0, 1, 2);
        assert_eq!(h.fanout.sinks().collect::<Vec<_>>(), [(2, 2), (1, 2)]);
        assert_eq!(h.data(0.1, StreamSlot::Single, 1), [(2, v(1)), (1, v(1))]);
    }

    #[test]
    fn leave_unknown_sink_is_a_no_op() {
        let mut h = Harness::new(T2020);
        assert_eq!(h.leave(0.0, 42), []);
        assert!(h.fanout.is_idle());
        h.join(0.0, 1, 5);
        assert_eq!(h.leave(1.0, 42), []);
        assert_eq!(
            h.fanout.open_streams().collect::<Vec<_>>(),
            [(StreamSlot::Single, 5000)]
        );
        assert_eq!(
            h.leave(2.0, 1),
            [FanoutAction::Stop {
                slot: StreamSlot::Single
            }]
        );
        assert!(h.fanout.is_idle());
        assert_eq!(h.leave(3.0, 1), []);
    }

    #[test]
    fn stream_failed_then_rejoin_reopens() {
        let mut h = Harness::new(T2026);
        assert_eq!(h.join(0.0, 1, 3).len(), 1);
        h.fanout.stream_failed(StreamSlot::Sampling);
        assert_eq!(h.fanout.open_streams().count(), 0);
        assert!(!h.fanout.is_idle(), "the sink is still registered");
        // Data for a stream that is not open is ignored and not cached.
        assert_eq!(h.data(0.5, StreamSlot::Sampling, 1), []);
        assert_eq!(h.fanout.cached(), None);
        assert_eq!(
            h.join(1.0, 1, 3),
            [FanoutAction::Open {
                slot: StreamSlot::Sampling,
                interval_ms: 3000
            }]
        );
        assert_eq!(h.data(1.1, StreamSlot::Sampling, 2), [(1, v(2))]);
    }

    #[test]
    fn stream_failed_clears_cache_when_nothing_remains_and_reconcile_retries() {
        let mut h = Harness::new(T2026);
        h.join(0.0, 1, 3);
        h.join(0.0, 2, 0);
        h.data(0.1, StreamSlot::Events, 9);
        h.fanout.stream_failed(StreamSlot::Sampling);
        assert_eq!(
            h.fanout.cached(),
            Some(&v(9)),
            "the event stream is still open"
        );
        h.fanout.stream_failed(StreamSlot::Events);
        assert_eq!(h.fanout.cached(), None);
        let mut actions = Vec::new();
        assert!(h.fanout.reconcile(&mut actions));
        assert_eq!(
            actions,
            [
                FanoutAction::Open {
                    slot: StreamSlot::Sampling,
                    interval_ms: 3000
                },
                FanoutAction::Open {
                    slot: StreamSlot::Events,
                    interval_ms: 0
                }
            ]
        );
        assert!(!h.fanout.reconcile(&mut actions));
    }

    #[test]
    fn disconnect_clears_cache_and_reconnect_reopens() {
        let mut h = Harness::new(T2020);
        h.join(0.0, 1, 4);
        h.join(0.0, 2, 0);
        h.data(0.1, StreamSlot::Single, 7);
        assert_eq!(h.fanout.cached(), Some(&v(7)));
        h.fanout.device_disconnected();
        assert_eq!(h.fanout.cached(), None);
        assert_eq!(h.fanout.open_streams().count(), 0);
        assert_eq!(h.fanout.sinks().count(), 2);
        // Offline: joins and leaves send nothing and deliver nothing; data is ignored.
        assert_eq!(h.join(1.0, 3, 6), []);
        assert_eq!(h.take_deliveries(), []);
        assert_eq!(h.data(1.5, StreamSlot::Single, 8), []);
        assert_eq!(h.fanout.sampling_period_ms(), 2000);
        // Back in the other dialect: both kinds of sinks need two streams.
        let mut actions = Vec::new();
        h.fanout.device_connected(secs(2.0), T2026, &mut actions);
        assert_eq!(
            actions,
            [
                FanoutAction::Open {
                    slot: StreamSlot::Sampling,
                    interval_ms: 2000
                },
                FanoutAction::Open {
                    slot: StreamSlot::Events,
                    interval_ms: 0
                }
            ]
        );
        // Event sink 2 does not get a sample; sink 1 is due at 4.1 (window from 3.1).
        assert_eq!(h.data(2.1, StreamSlot::Sampling, 8), [(3, v(8))]);
        assert_eq!(h.data(3.1, StreamSlot::Sampling, 9), [(1, v(9))]);
        assert_eq!(h.data(3.2, StreamSlot::Events, 10), [(2, v(10))]);
    }

    #[test]
    fn change_only_delivery_to_event_sinks_in_2020() {
        let mut h = Harness::new(T2020);
        assert_eq!(
            h.join(0.0, 1, 0),
            [FanoutAction::Open {
                slot: StreamSlot::Single,
                interval_ms: 0
            }]
        );
        // Interval 0: every value, repeated or not.
        assert_eq!(h.data(0.1, StreamSlot::Single, 1), [(1, v(1))]);
        assert_eq!(h.data(0.2, StreamSlot::Single, 1), [(1, v(1))]);
        assert_eq!(
            h.join(1.0, 2, 1),
            [FanoutAction::Reconfigure {
                slot: StreamSlot::Single,
                interval_ms: 1000
            }]
        );
        // Interval 1 s: the event sink only gets values that changed, by canonical encoding.
        assert_eq!(h.data(1.1, StreamSlot::Single, 1), [(2, v(1))]);
        assert_eq!(h.data(2.1, StreamSlot::Single, 2), [(1, v(2)), (2, v(2))]);
        assert_eq!(h.data(3.1, StreamSlot::Single, 2), [(2, v(2))]);
        let f64_two = Value::F64(2.0);
        h.fanout
            .on_data(secs(4.1), StreamSlot::Single, &f64_two, &mut h.deliveries);
        assert_eq!(h.take_deliveries(), [(1, f64_two.clone()), (2, f64_two)]);
        // A late event-only joiner gets the cached value, which then counts as its last_sent.
        assert_eq!(h.join(4.5, 3, 0), []);
        assert_eq!(h.take_deliveries(), [(3, Value::F64(2.0))]);
        h.fanout.on_data(
            secs(5.1),
            StreamSlot::Single,
            &Value::F64(2.0),
            &mut h.deliveries,
        );
        assert_eq!(h.take_deliveries(), [(2, Value::F64(2.0))]);
        // Back to events only: explicit interval 0, and every value again.
        assert_eq!(
            h.leave(6.0, 2),
            [FanoutAction::Reconfigure {
                slot: StreamSlot::Single,
                interval_ms: 0
            }]
        );
        h.fanout.on_data(
            secs(6.1),
            StreamSlot::Single,
            &Value::F64(2.0),
            &mut h.deliveries,
        );
        assert_eq!(h.take_deliveries().len(), 2);
    }

    #[test]
    fn events_and_samples_are_separate_in_2026() {
        let mut h = Harness::new(T2026);
        h.join(0.0, 1, 2);
        h.join(0.0, 2, 0);
        assert_eq!(h.data(0.1, StreamSlot::Sampling, 1), [(1, v(1))]);
        assert_eq!(h.data(0.2, StreamSlot::Events, 1), [(2, v(1))]);
        assert_eq!(h.data(0.3, StreamSlot::Events, 1), [(2, v(1))]);
        assert_eq!(
            h.data(0.4, StreamSlot::Single, 1),
            [],
            "no such stream in 2026"
        );
    }

    #[test]
    fn window_rule_skips_missed_slots_and_never_doubles() {
        let mut h = Harness::new(T2020);
        h.join(0.0, 1, 10);
        h.join(0.0, 2, 2);
        assert_eq!(h.fanout.sampling_period_ms(), 2000);
        assert_eq!(h.data(0.0, StreamSlot::Single, 0), [(1, v(0)), (2, v(0))]);
        // Sink 1 due at 10 (window from 9); a long gap: next value at 35.5.
        assert_eq!(h.data(8.9, StreamSlot::Single, 1), [(2, v(1))]);
        assert_eq!(h.data(35.5, StreamSlot::Single, 2), [(1, v(2)), (2, v(2))]);
        // Sink 1: 10 → 20 → 30 → 40 (40 − 1 > 35.5), so its next window opens at 39 exactly.
        // Sink 2: 10 → 12 → … → 38 → (delivered at 38.9) → 40.
        assert_eq!(h.data(38.9, StreamSlot::Single, 3), [(2, v(3))]);
        assert_eq!(h.data(38.95, StreamSlot::Single, 4), []);
        assert_eq!(h.data(39.0, StreamSlot::Single, 5), [(1, v(5)), (2, v(5))]);
        // One value per slot: the same instant again delivers nothing.
        assert_eq!(h.data(39.0, StreamSlot::Single, 6), []);
        assert_eq!(h.data(41.0, StreamSlot::Single, 7), [(2, v(7))]);
    }

    #[test]
    fn to_message_shapes() {
        let resource = Value::from("temp");
        let open = FanoutAction::Open {
            slot: StreamSlot::Events,
            interval_ms: 0,
        };
        let expected = Message::new(MessageType::StartStream)
            .with_stream_id(7)
            .with_resource("temp");
        assert_eq!(open.to_message(T2026, 7, &resource), expected);
        let mut sampling = expected.clone();
        sampling.interval_ms = Some(3000);
        let open = FanoutAction::Open {
            slot: StreamSlot::Single,
            interval_ms: 3000,
        };
        assert_eq!(open.to_message(T2020, 7, &resource), sampling);
        let back = FanoutAction::Reconfigure {
            slot: StreamSlot::Single,
            interval_ms: 0,
        };
        let mut reconfigure = Message::new(MessageType::StartStream).with_stream_id(7);
        reconfigure.interval_ms = Some(0);
        assert_eq!(back.to_message(T2020, 7, &resource), reconfigure);
        assert_eq!(back.slot(), StreamSlot::Single);
        let stop = FanoutAction::Stop {
            slot: StreamSlot::Sampling,
        };
        assert_eq!(
            stop.to_message(T2026, 7, &resource),
            Message::new(MessageType::StopStream).with_stream_id(7)
        );
        assert_eq!(stop.interval_ms(), None);
    }

    #[test]
    fn huge_times_and_intervals_saturate_without_looping() {
        let mut h = Harness::new(T2020);
        h.join(0.0, 1, u32::MAX);
        h.fanout.on_data(
            Instant::from_micros(u64::MAX - 1),
            StreamSlot::Single,
            &v(1),
            &mut h.deliveries,
        );
        h.fanout.on_data(
            Instant::from_micros(u64::MAX),
            StreamSlot::Single,
            &v(2),
            &mut h.deliveries,
        );
        assert_eq!(h.take_deliveries(), [(1, v(1)), (1, v(2))]);
    }
}
