//! Replay traces: every connection of a pair is recorded on both sides; a fresh session fed the
//! trace must reproduce every output, and a tampered trace must be caught at the right line.

use std::time::Duration;

use iotmp_proto::trace::{ReplayError, replay};
use iotmp_proto::{Dialect, Value};
use iotmp_tests::pair::{AuthPolicy, Pair};
use iotmp_tests::sample::main_exchange;
use quickcheck::{Arbitrary, Gen, QuickCheck, TestResult};

fn replay_ok(trace: &str, what: &str) -> iotmp_proto::trace::Replayed {
    replay(trace).unwrap_or_else(|e| panic!("{what}: {e}\n{trace}"))
}

#[test]
fn the_sample_exchange_replays_on_both_sides() {
    for dialect in [Dialect::Draft2020, Dialect::Draft2026] {
        let mut pair = main_exchange(dialect);
        let (device, server) = pair.traces();
        let d = replay_ok(&device, "device trace");
        let s = replay_ok(&server, "server trace");
        assert_eq!((d.role.as_str(), s.role.as_str()), ("client", "server"));
        assert!(
            d.steps > 20 && s.steps > 20,
            "the traces hold the whole exchange"
        );
        // The server's replay transcript shows the exchange from its side.
        assert!(
            s.transcript.contains("C->S CONNECT sid=1 ka=30"),
            "{}",
            s.transcript
        );
        assert!(
            s.transcript.contains("S->C START_STREAM sid=105"),
            "{}",
            s.transcript
        );
    }
}

#[test]
fn a_changed_output_is_reported_at_its_line() {
    let mut pair = main_exchange(Dialect::Draft2026);
    let (_, server) = pair.traces();
    // Corrupt the recorded OK to CONNECT: the replay produces the real one.
    let lines: Vec<&str> = server.lines().collect();
    let index = lines
        .iter()
        .position(|l| l.ends_with(" out 01 02 08 01"))
        .expect("the OK to CONNECT");
    let mut tampered: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
    tampered[index] = tampered[index].replace("01 02 08 01", "01 02 08 02");
    match replay(&tampered.join("\n")) {
        Err(ReplayError::Diverged(d)) => {
            assert_eq!(d.line, index + 1, "{d}");
            assert!(
                d.expected.contains("08 02") && d.actual.contains("08 01"),
                "{d}"
            );
        }
        other => panic!("expected a divergence, got {other:?}"),
    }
    // A dropped event is caught as well.
    let mut without_event = lines.clone();
    let event = without_event
        .iter()
        .position(|l| l.contains(" event StreamOpened"))
        .expect("an event line");
    without_event.remove(event);
    assert!(matches!(
        replay(&without_event.join("\n")),
        Err(ReplayError::Diverged(_))
    ));
}

#[test]
fn malformed_traces_are_format_errors() {
    for (text, line) in [
        ("", 1),
        ("hello", 1),
        ("iotmp-trace 1\nclient {", 2),
        ("iotmp-trace 1\nserver {}\nstart 0", 2),
    ] {
        match replay(text) {
            Err(ReplayError::Format { line: l, .. }) => assert_eq!(l, line, "{text:?}"),
            other => panic!("{text:?}: expected a format error, got {other:?}"),
        }
    }
}

/// One step of a random scenario.
#[derive(Debug, Clone)]
enum Op {
    Advance(u16),
    ServerRun(u8),
    ServerDescribe(bool),
    StartStream(u8, u8),
    StopFirstStream,
    DeviceStream,
    DeviceRun,
    Join(u8, u8),
    Leave(u8),
    Garbage(Vec<u8>),
    Cut,
}

impl Arbitrary for Op {
    fn arbitrary(g: &mut Gen) -> Self {
        match u8::arbitrary(g) % 11 {
            0 | 1 => Op::Advance(u16::arbitrary(g) % 20_000),
            2 => Op::ServerRun(u8::arbitrary(g)),
            3 => Op::ServerDescribe(bool::arbitrary(g)),
            4 => Op::StartStream(u8::arbitrary(g), u8::arbitrary(g) % 8),
            5 => Op::StopFirstStream,
            6 => Op::DeviceStream,
            7 => Op::DeviceRun,
            8 => Op::Join(u8::arbitrary(g) % 3, u8::arbitrary(g) % 10),
            9 => Op::Leave(u8::arbitrary(g) % 3),
            _ => {
                if u8::arbitrary(g) % 8 == 0 {
                    Op::Cut
                } else {
                    Op::Garbage(Vec::<u8>::arbitrary(g).into_iter().take(12).collect())
                }
            }
        }
    }
}

const RESOURCES: [&str; 4] = ["temp", "led", "heading", "nope"];

fn run_ops(dialect: Dialect, ops: &[Op]) -> Pair {
    let (mut pair, temp, _heading, _led) = Pair::sample(dialect, Some(20));
    for op in ops {
        match op {
            Op::Advance(ms) => pair.run_for(Duration::from_millis(u64::from(*ms))),
            Op::ServerRun(r) => {
                let resource = RESOURCES[usize::from(*r) % RESOURCES.len()];
                let input = (r % 2 == 0).then(|| Value::from(u64::from(*r)));
                let _ = pair.on_server(|s, now| s.run(now, resource, input));
            }
            Op::ServerDescribe(all) => {
                let resource = (!all).then(|| Value::from("led"));
                let _ = pair.on_server(|s, now| s.describe(now, resource));
            }
            Op::StartStream(r, secs) => {
                let resource = RESOURCES[usize::from(*r) % RESOURCES.len()];
                let _ =
                    pair.on_server(|s, now| s.start_stream(now, resource, u64::from(*secs) * 1000));
            }
            Op::StopFirstStream => {
                let first = pair.device.session().streams().first().map(|s| s.id);
                if let Some(id) = first {
                    let _ = pair.on_server(|s, now| s.stop_stream(now, id));
                }
            }
            Op::DeviceStream => {
                temp.push(Value::F32(20.5));
                let _ = pair.on_device(|d, now| d.stream(now, "heading"));
            }
            Op::DeviceRun => {
                let _ = pair.on_device(|d, now| d.client().run(now, "clock", None, false));
            }
            Op::Join(sink, secs) => pair.join("temp", u64::from(*sink), u32::from(*secs)),
            Op::Leave(sink) => pair.leave("temp", u64::from(*sink)),
            Op::Garbage(bytes) => {
                let _ = pair.on_device(|d, _| {
                    d.client().send_unchecked(&iotmp_proto::Message::new(
                        iotmp_proto::MessageType::KeepAlive,
                    ))
                });
                let now = pair.now;
                pair.server.handle_input(now, bytes);
                pair.drain();
            }
            Op::Cut => pair.cut(),
        }
    }
    pair.run_for(Duration::from_secs(30));
    pair
}

#[test]
fn random_scenarios_replay_exactly() {
    fn prop(ops: Vec<Op>, year_2026: bool) -> TestResult {
        let dialect = if year_2026 {
            Dialect::Draft2026
        } else {
            Dialect::Draft2020
        };
        let mut pair = run_ops(dialect, &ops);
        let (device, server) = pair.traces();
        for (what, trace) in [("device", &device), ("server", &server)] {
            if let Err(e) = replay(trace) {
                return TestResult::error(format!("{what} trace does not replay: {e}\n{trace}"));
            }
        }
        TestResult::passed()
    }
    QuickCheck::new()
        .tests(300)
        .quickcheck(prop as fn(Vec<Op>, bool) -> TestResult);
}

#[test]
fn a_refused_connect_replays() {
    let (mut pair, ..) = Pair::sample(Dialect::Draft2020, Some(2));
    pair.auth = AuthPolicy::Ignore;
    pair.run_for(Duration::from_secs(1));
    let (device, server) = pair.traces();
    replay_ok(&device, "device");
    replay_ok(&server, "server");
    assert!(server.contains("Refused"), "{server}");
}
