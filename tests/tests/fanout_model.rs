//! Model-based test of the server fan-out (spec §6.9): random operations (sinks joining and
//! leaving, device data on open and closed slots, clock advances, device disconnects, reconnects
//! in either dialect, refused streams) run against [`Fanout`] and against a deliberately naive
//! reference written here from the spec text: GCDs recomputed from scratch by trial division, the
//! window rule applied literally (including its `while` loop) in signed integer microseconds.
//!
//! After every operation: the actions and deliveries equal the model's; the device's stream table,
//! rebuilt only from the actions, equals the fan-out's open streams; while no refused stream is
//! pending, that table is exactly the desired configuration of the dialect and its sampling
//! interval is GCD × 1000 of the sampling sinks.

use iotmp_proto::fanout::{Delivery, Fanout, FanoutAction, SinkId, StreamSlot};
use iotmp_proto::pson::v2;
use iotmp_proto::{Dialect, Instant, Value};
use quickcheck::{Arbitrary, Gen, QuickCheck, TestResult};

const INTERVALS: [u32; 8] = [0, 1, 2, 3, 4, 6, 9, 10];
const SINKS: u64 = 5;
const ALL_SLOTS: [StreamSlot; 3] = [StreamSlot::Single, StreamSlot::Sampling, StreamSlot::Events];

// ---------------------------------------------------------------------------------------------
// Operations

#[derive(Debug, Clone)]
enum Op {
    Join {
        sink: SinkId,
        interval_s: u32,
    },
    Leave {
        sink: SinkId,
    },
    /// `pick` chooses among the open slots (or, if ≥ 200 or none is open, among all slots).
    Data {
        pick: u8,
        value: u8,
    },
    Advance {
        micros: u64,
    },
    Disconnect,
    Connect {
        dialect: Dialect,
    },
    /// The device refuses / does not answer the START_STREAM of an open slot.
    Fail {
        pick: u8,
    },
}

fn below(g: &mut Gen, n: u64) -> u64 {
    u64::arbitrary(g) % n
}

fn dialect(g: &mut Gen) -> Dialect {
    if bool::arbitrary(g) {
        Dialect::Draft2020
    } else {
        Dialect::Draft2026
    }
}

fn advance(g: &mut Gen) -> u64 {
    const STEPS: [u64; 10] = [
        0, 100_000, 250_000, 500_000, 1_000_000, 1_500_000, 2_000_000, 3_000_000, 4_500_000,
        5_000_000,
    ];
    // Mostly whole quarter seconds, so that values land exactly on window edges (`t == next_due
    // - P/2`) or one microsecond off them; sometimes jitter, arbitrary gaps, or long silences that
    // skip many slots.
    match below(g, 10) {
        0..=2 => 250_000 * below(g, 25),
        3 => *g.choose(&STEPS).unwrap(),
        4 => (250_000 * below(g, 25)).saturating_sub(1),
        5 => 1,
        6 => below(g, 1_000),
        7 => below(g, 12_000_000),
        8 => 1_000_000 * below(g, 12),
        _ => below(g, 90_000_000),
    }
}

impl Arbitrary for Op {
    fn arbitrary(g: &mut Gen) -> Self {
        match below(g, 100) {
            0..18 => Op::Join {
                sink: below(g, SINKS),
                interval_s: *g.choose(&INTERVALS).unwrap(),
            },
            18..28 => Op::Leave {
                sink: below(g, SINKS),
            },
            28..62 => Op::Data {
                pick: u8::arbitrary(g),
                value: u8::arbitrary(g),
            },
            62..90 => Op::Advance { micros: advance(g) },
            90..93 => Op::Disconnect,
            93..97 => Op::Connect {
                dialect: dialect(g),
            },
            _ => Op::Fail {
                pick: u8::arbitrary(g),
            },
        }
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = Self>> {
        match *self {
            Op::Advance { micros } if micros > 0 => Box::new(
                [0, micros / 2]
                    .into_iter()
                    .filter(move |&m| m < micros)
                    .map(|micros| Op::Advance { micros }),
            ),
            _ => quickcheck::empty_shrinker(),
        }
    }
}

/// A few values, with repeats so that the 2020 change-only rule matters, and two that are equal
/// as numbers but not in their canonical encoding (1 and 1.0).
fn value_of(n: u8) -> Value {
    match n % 6 {
        0 => Value::from(0u8),
        1 => Value::from(1u8),
        2 => Value::from(2u8),
        3 => Value::F64(1.0),
        4 => Value::from("a"),
        _ => Value::from(1u8),
    }
}

// ---------------------------------------------------------------------------------------------
// The reference model

#[derive(Debug, Clone)]
struct ModelSink {
    id: SinkId,
    interval_s: u32,
    next_due: Option<i128>,
    last_sent: Option<Vec<u8>>,
}

#[derive(Debug, Default)]
struct Model {
    dialect: Option<Dialect>,
    sinks: Vec<ModelSink>,
    /// Open streams in slot order.
    open: Vec<(StreamSlot, u64)>,
    cache: Option<Value>,
}

/// The greatest d dividing every interval, by trial from the smallest one down.
fn naive_gcd(intervals: &[u32]) -> u32 {
    let Some(&smallest) = intervals.iter().min() else {
        return 0;
    };
    (1..=smallest)
        .rev()
        .find(|d| intervals.iter().all(|i| i % d == 0))
        .unwrap()
}

fn encoded(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    v2::encode(value, &mut out).unwrap();
    out
}

impl Model {
    fn sampling_intervals(&self) -> Vec<u32> {
        self.sinks
            .iter()
            .filter(|s| s.interval_s > 0)
            .map(|s| s.interval_s)
            .collect()
    }

    fn period_s(&self) -> u32 {
        naive_gcd(&self.sampling_intervals())
    }

    /// Spec §6.9's table.
    fn desired(&self, dialect: Dialect) -> Vec<(StreamSlot, u64)> {
        let p = u64::from(self.period_s());
        let sampling = !self.sampling_intervals().is_empty();
        let events = self.sinks.iter().any(|s| s.interval_s == 0);
        let mut out = Vec::new();
        match dialect {
            Dialect::Draft2020 => {
                if sampling {
                    out.push((StreamSlot::Single, p * 1000));
                } else if events {
                    out.push((StreamSlot::Single, 0));
                }
            }
            Dialect::Draft2026 => {
                if sampling {
                    out.push((StreamSlot::Sampling, p * 1000));
                }
                if events {
                    out.push((StreamSlot::Events, 0));
                }
            }
        }
        out
    }

    fn open_interval(&self, slot: StreamSlot) -> Option<u64> {
        self.open.iter().find(|(s, _)| *s == slot).map(|(_, i)| *i)
    }

    fn reconcile(&mut self) -> Vec<FanoutAction> {
        let Some(dialect) = self.dialect else {
            return Vec::new();
        };
        let desired = self.desired(dialect);
        let mut actions = Vec::new();
        for slot in ALL_SLOTS {
            let want = desired.iter().find(|(s, _)| *s == slot).map(|(_, i)| *i);
            match (self.open_interval(slot), want) {
                (None, Some(interval_ms)) => actions.push(FanoutAction::Open { slot, interval_ms }),
                (Some(have), Some(interval_ms)) if have != interval_ms => {
                    actions.push(FanoutAction::Reconfigure { slot, interval_ms })
                }
                (Some(_), None) => actions.push(FanoutAction::Stop { slot }),
                _ => {}
            }
        }
        self.open = desired;
        if self.open.is_empty() {
            self.cache = None;
        }
        actions
    }

    fn connect(&mut self, dialect: Dialect) -> Vec<FanoutAction> {
        self.disconnect();
        self.dialect = Some(dialect);
        self.reconcile()
    }

    fn disconnect(&mut self) {
        self.dialect = None;
        self.open.clear();
        self.cache = None;
    }

    fn fail(&mut self, slot: StreamSlot) {
        self.open.retain(|(s, _)| *s != slot);
        if self.open.is_empty() {
            self.cache = None;
        }
    }

    /// The window rule's bookkeeping, literally.
    fn after_delivery(sink: &mut ModelSink, t: i128, half: i128, value: &Value) {
        sink.last_sent = Some(encoded(value));
        if sink.interval_s == 0 {
            return;
        }
        let i = i128::from(sink.interval_s) * 1_000_000;
        sink.next_due = Some(match sink.next_due {
            None => t + i,
            Some(due) => {
                let mut next = due + i;
                while next - half <= t {
                    next += i;
                }
                next
            }
        });
    }

    fn join(
        &mut self,
        t: u64,
        id: SinkId,
        interval_s: u32,
    ) -> (Vec<FanoutAction>, Vec<(SinkId, Value)>) {
        self.sinks.retain(|s| s.id != id);
        self.sinks.push(ModelSink {
            id,
            interval_s,
            next_due: None,
            last_sent: None,
        });
        let actions = self.reconcile();
        let mut deliveries = Vec::new();
        if actions.is_empty()
            && let Some(value) = self.cache.clone()
        {
            let half = i128::from(self.period_s()) * 1_000_000 / 2;
            let sink = self.sinks.last_mut().unwrap();
            Self::after_delivery(sink, i128::from(t), half, &value);
            deliveries.push((id, value));
        }
        (actions, deliveries)
    }

    fn leave(&mut self, id: SinkId) -> Vec<FanoutAction> {
        if !self.sinks.iter().any(|s| s.id == id) {
            return Vec::new();
        }
        self.sinks.retain(|s| s.id != id);
        self.reconcile()
    }

    fn data(&mut self, t: u64, slot: StreamSlot, value: &Value) -> Vec<(SinkId, Value)> {
        let Some(interval_ms) = self.open_interval(slot) else {
            return Vec::new();
        };
        self.cache = Some(value.clone());
        let t = i128::from(t);
        let half = i128::from(self.period_s()) * 1_000_000 / 2;
        let bytes = encoded(value);
        let mut out = Vec::new();
        for sink in &mut self.sinks {
            let window = match sink.next_due {
                None => true,
                Some(due) => t >= due - half,
            };
            let event_only = sink.interval_s == 0;
            let deliver = match (slot, interval_ms) {
                (StreamSlot::Events, _) => event_only,
                (StreamSlot::Sampling, _) => !event_only && window,
                (StreamSlot::Single, 0) => event_only,
                (StreamSlot::Single, _) => {
                    if event_only {
                        sink.last_sent.as_ref() != Some(&bytes)
                    } else {
                        window
                    }
                }
            };
            if deliver {
                Self::after_delivery(sink, t, half, value);
                out.push((sink.id, value.clone()));
            }
        }
        out
    }
}

// ---------------------------------------------------------------------------------------------
// The run

macro_rules! ensure_eq {
    ($left:expr, $right:expr, $($what:tt)+) => {{
        let (left, right) = (&$left, &$right);
        if left != right {
            return Err(format!("{}\n  real:  {:?}\n  model: {:?}", format!($($what)+), left, right));
        }
    }};
}

/// The device's stream table, built from the actions alone.
fn apply_to_device(
    device: &mut Vec<(StreamSlot, u64)>,
    actions: &[FanoutAction],
) -> Result<(), String> {
    for action in actions {
        let slot = action.slot();
        let position = device.iter().position(|(s, _)| *s == slot);
        match (*action, position) {
            (FanoutAction::Open { interval_ms, .. }, None) => device.push((slot, interval_ms)),
            (FanoutAction::Reconfigure { interval_ms, .. }, Some(i)) => device[i].1 = interval_ms,
            (FanoutAction::Stop { .. }, Some(i)) => {
                device.remove(i);
            }
            _ => {
                return Err(format!(
                    "{action:?} does not fit the device table {device:?}"
                ));
            }
        }
    }
    device.sort();
    Ok(())
}

fn pick_slot(pick: u8, open: &[(StreamSlot, u64)]) -> StreamSlot {
    if pick < 200 && !open.is_empty() {
        open[usize::from(pick) % open.len()].0
    } else {
        ALL_SLOTS[usize::from(pick) % 3]
    }
}

fn run(first: Dialect, ops: &[Op]) -> Result<(), String> {
    let mut fanout = Fanout::new();
    let mut model = Model::default();
    let mut device: Vec<(StreamSlot, u64)> = Vec::new();
    let mut now: u64 = 0;
    let mut failure_pending = false;
    let mut actions = Vec::new();
    let mut deliveries: Vec<Delivery> = Vec::new();

    fanout.device_connected(Instant::ZERO, first, &mut actions);
    let expected_actions = model.connect(first);
    ensure_eq!(actions, expected_actions, "initial connect");

    for (step, op) in ops.iter().enumerate() {
        actions.clear();
        deliveries.clear();
        let at = Instant::from_micros(now);
        // Whether this operation makes the fan-out reconcile (a leave of an unknown sink is a
        // no-op), which repairs any refused stream.
        let reconciled = match *op {
            Op::Join { .. } | Op::Connect { .. } => true,
            Op::Leave { sink } => model.sinks.iter().any(|s| s.id == sink),
            _ => false,
        };
        let (expected_actions, expected_deliveries) = match *op {
            Op::Join { sink, interval_s } => {
                fanout.join(at, sink, interval_s, &mut actions, &mut deliveries);
                model.join(now, sink, interval_s)
            }
            Op::Leave { sink } => {
                fanout.leave(at, sink, &mut actions);
                (model.leave(sink), Vec::new())
            }
            Op::Data { pick, value } => {
                let open: Vec<_> = fanout.open_streams().collect();
                let slot = pick_slot(pick, &open);
                let value = value_of(value);
                fanout.on_data(at, slot, &value, &mut deliveries);
                (Vec::new(), model.data(now, slot, &value))
            }
            Op::Advance { micros } => {
                now += micros;
                (Vec::new(), Vec::new())
            }
            Op::Disconnect => {
                fanout.device_disconnected();
                model.disconnect();
                device.clear();
                (Vec::new(), Vec::new())
            }
            Op::Connect { dialect } => {
                fanout.device_connected(at, dialect, &mut actions);
                device.clear();
                (model.connect(dialect), Vec::new())
            }
            Op::Fail { pick } => {
                let open: Vec<_> = fanout.open_streams().collect();
                if !open.is_empty() {
                    let slot = pick_slot(pick.min(199), &open);
                    fanout.stream_failed(slot);
                    model.fail(slot);
                    device.retain(|(s, _)| *s != slot);
                    failure_pending = true;
                }
                (Vec::new(), Vec::new())
            }
        };
        let what = format!("step {step} {op:?} at {now} µs");
        if reconciled {
            failure_pending = false;
        }

        ensure_eq!(actions, expected_actions, "{what}: actions");
        let got: Vec<(SinkId, Value)> = deliveries
            .iter()
            .map(|d| (d.sink, d.value.clone()))
            .collect();
        ensure_eq!(got, expected_deliveries, "{what}: deliveries");

        apply_to_device(&mut device, &actions).map_err(|e| format!("{what}: {e}"))?;
        let open: Vec<_> = fanout.open_streams().collect();
        ensure_eq!(open, device, "{what}: open streams vs device table");
        ensure_eq!(open, model.open, "{what}: open streams vs model");

        let sinks: Vec<_> = fanout.sinks().collect();
        let model_sinks: Vec<_> = model.sinks.iter().map(|s| (s.id, s.interval_s)).collect();
        ensure_eq!(sinks, model_sinks, "{what}: sinks");
        ensure_eq!(fanout.cached(), model.cache.as_ref(), "{what}: cache");
        let gcd_ms = u64::from(naive_gcd(&model.sampling_intervals())) * 1000;
        ensure_eq!(fanout.sampling_period_ms(), gcd_ms, "{what}: P");
        ensure_eq!(
            fanout.is_idle(),
            model.sinks.is_empty() && device.is_empty(),
            "{what}: idle"
        );

        match model.dialect {
            None => ensure_eq!(device, Vec::new(), "{what}: offline device has streams"),
            Some(dialect) if !failure_pending => {
                ensure_eq!(
                    device,
                    model.desired(dialect),
                    "{what}: desired configuration"
                );
                let sampling_slot = match dialect {
                    Dialect::Draft2020 => StreamSlot::Single,
                    Dialect::Draft2026 => StreamSlot::Sampling,
                };
                let configured = device
                    .iter()
                    .find(|(s, i)| *s == sampling_slot && *i > 0)
                    .map(|(_, i)| *i);
                ensure_eq!(
                    configured,
                    (gcd_ms > 0).then_some(gcd_ms),
                    "{what}: device sampling interval"
                );
            }
            Some(_) => {}
        }
    }
    Ok(())
}

fn property(first_is_2020: bool, ops: Vec<Op>) -> TestResult {
    let first = if first_is_2020 {
        Dialect::Draft2020
    } else {
        Dialect::Draft2026
    };
    match run(first, &ops) {
        Ok(()) => TestResult::passed(),
        Err(message) => TestResult::error(message),
    }
}

#[test]
fn fanout_matches_the_reference_model() {
    QuickCheck::new()
        .tests(2000)
        .max_tests(4000)
        .rng(Gen::new(120))
        .quickcheck(property as fn(bool, Vec<Op>) -> TestResult);
}

#[test]
fn naive_gcd_is_right() {
    assert_eq!(naive_gcd(&[]), 0);
    assert_eq!(naive_gcd(&[6, 9]), 3);
    assert_eq!(naive_gcd(&[4, 6, 10]), 2);
    assert_eq!(naive_gcd(&[9]), 9);
}

/// A fixed long run (same as a quickcheck case, but deterministic and longer): every kind of
/// operation in a pattern, over simulated hours.
#[test]
fn long_deterministic_run() {
    let mut ops = Vec::new();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for _ in 0..20_000 {
        let r = next();
        ops.push(match r % 100 {
            0..15 => Op::Join {
                sink: next() % SINKS,
                interval_s: INTERVALS[(next() % 8) as usize],
            },
            15..25 => Op::Leave {
                sink: next() % SINKS,
            },
            25..60 => Op::Data {
                pick: (next() % 256) as u8,
                value: (next() % 256) as u8,
            },
            60..92 => Op::Advance {
                micros: [
                    0,
                    250_000,
                    500_000,
                    1_000_000,
                    1_500_000,
                    next() % 5_000_000,
                ][(next() % 6) as usize],
            },
            92..94 => Op::Disconnect,
            94..97 => Op::Connect {
                dialect: if next() % 2 == 0 {
                    Dialect::Draft2020
                } else {
                    Dialect::Draft2026
                },
            },
            _ => Op::Fail {
                pick: (next() % 256) as u8,
            },
        });
    }
    run(Dialect::Draft2026, &ops).unwrap();
    run(Dialect::Draft2020, &ops).unwrap();
}
