//! Server fan-out with the GCD rule (spec §6.9), driven through the pair's hub: sinks join and
//! leave, the device is configured with the GCD of their intervals, and each sink gets values at
//! its own pace.

use iotmp_proto::fanout::SinkId;
use iotmp_proto::{DeviceResources, Dialect, Instant, Message, MessageType, Value};
use iotmp_tests::pair::{Pair, Script, alice_config};
use iotmp_tests::transcript::Direction;

use crate::common::{at, excerpt, messages, server_config, stream_data};

in_both_dialects!(fanout_gcd_6_and_9, fanout_mixed_sinks);

/// The sinks, as the transcripts number them.
const A: SinkId = 1;
const B: SinkId = 2;
const E: SinkId = 3;

/// A device whose `temp` reads 20, 21, 22, … (every read a new value).
fn counting_device(dialect: Dialect) -> Pair {
    let mut next = 20u32;
    let resources = DeviceResources::new().output("temp", move || {
        next += 1;
        Ok(Value::from(next - 1))
    });
    Pair::new(
        alice_config(dialect).with_keep_alive(60),
        resources,
        server_config(),
    )
}

/// A device whose `temp` reads what `script` says.
fn scripted_device(dialect: Dialect, script: &Script) -> Pair {
    let script = script.clone();
    let resources = DeviceResources::new().output("temp", move || Ok(script.next()));
    Pair::new(
        alice_config(dialect).with_keep_alive(60),
        resources,
        server_config(),
    )
}

/// When `sink` got values.
fn delivery_times(pair: &Pair, sink: SinkId) -> Vec<Instant> {
    pair.deliveries
        .iter()
        .filter(|(_, _, s, _)| *s == sink)
        .map(|(t, ..)| *t)
        .collect()
}

/// What `sink` got, with times.
fn deliveries_of(pair: &Pair, sink: SinkId) -> Vec<(Instant, Value)> {
    pair.deliveries
        .iter()
        .filter(|(_, _, s, _)| *s == sink)
        .map(|(t, _, _, v)| (*t, v.clone()))
        .collect()
}

/// A START_STREAM or STOP_STREAM the server sent: time, type, stream id, resource, interval.
type StreamRequest = (Instant, MessageType, u16, Option<Value>, Option<u64>);

/// The START_STREAMs and STOP_STREAMs the server sent.
fn stream_requests(pair: &Pair) -> Vec<StreamRequest> {
    messages(pair, Direction::ServerToDevice)
        .into_iter()
        .filter(|(_, m)| matches!(m.kind, MessageType::StartStream | MessageType::StopStream))
        .map(|(t, m): (Instant, Message)| {
            (
                t,
                m.kind,
                m.stream_id.unwrap_or(0),
                m.resource,
                m.interval_ms,
            )
        })
        .collect()
}

/// Sink A (1) every 6 s joins at 1 s; sink B (2) every 9 s joins at 4 s, so the device is
/// reconfigured to GCD(6, 9) = 3 s. For ten minutes A gets a value exactly every 6 s and B
/// exactly every 9 s. Then B leaves (the device goes back to 6 s) and finally A (STOP_STREAM).
/// The snapshot keeps the first 30 s and the last 50 s; the delivery times are all asserted.
fn fanout_gcd_6_and_9(dialect: Dialect) {
    let mut pair = counting_device(dialect);
    pair.run_until(at(1.0));
    pair.join("temp", A, 6);
    pair.run_until(at(4.0));
    pair.join("temp", B, 9);
    pair.run_until(at(604.0));
    pair.run_until(at(606.0));
    pair.leave("temp", B);
    pair.run_until(at(620.0));
    pair.leave("temp", A);
    pair.run_until(at(640.0));

    let id = 101;
    assert_eq!(
        stream_requests(&pair),
        [
            (
                at(1.0),
                MessageType::StartStream,
                id,
                Some("temp".into()),
                Some(6000)
            ),
            (at(4.0), MessageType::StartStream, id, None, Some(3000)),
            (at(606.0), MessageType::StartStream, id, None, Some(6000)),
            (at(620.0), MessageType::StopStream, id, None, None),
        ]
    );
    // Sink A: anchored at its first value (1 s), every 6 s; B from 4 s, every 9 s.
    let mut a: Vec<Instant> = (0..=100).map(|k| at(1.0 + 6.0 * f64::from(k))).collect();
    // After B leaves the device period is 6 s again: A's slot at 607 s takes the value of the
    // reconfiguration at 606 s (within half a period), and its schedule goes on from there.
    a.extend([at(606.0), at(612.0), at(618.0)]);
    let b: Vec<Instant> = (0..=66).map(|k| at(4.0 + 9.0 * f64::from(k))).collect();
    assert_eq!(delivery_times(&pair, A), a);
    assert_eq!(delivery_times(&pair, B), b);
    assert!(
        stream_data(&pair).iter().all(|(t, ..)| *t <= at(620.0)),
        "nothing streams after the last sink left"
    );
    assert!(pair.device.session().streams().is_empty());

    let summary = format!(
        "--- deliveries ---\nsink 1 (6 s): {} values, at 1 s + 6 s·k up to 601 s, then 606, 612, 618 s\n\
         sink 2 (9 s): {} values, at 4 s + 9 s·k up to 598 s\n",
        delivery_times(&pair, A).len(),
        delivery_times(&pair, B).len()
    );
    insta::assert_snapshot!(
        format!("fanout_gcd_6_and_9_{dialect}"),
        excerpt(pair.transcript.text(), |t| t <= 30.0 || t >= 590.0) + &summary
    );
}

/// A sampling sink S (4, every 5 s) and an event-only sink E (3) on one resource. 2026 opens two
/// streams: samples go to S, events (the event stream's first value and the application's
/// `stream("temp")`) go to E. 2020 has one stream per resource: E gets the cached value when
/// it joins, then only the samples whose value changed; `stream("temp")` finds no event stream.
fn fanout_mixed_sinks(dialect: Dialect) {
    const S: SinkId = 4;
    let script = Script::new([20, 20, 21, 21, 21, 22].map(Value::from));
    let mut pair = scripted_device(dialect, &script);
    pair.run_until(at(1.0));
    pair.join("temp", S, 5);
    pair.run_until(at(2.0));
    pair.join("temp", E, 0);
    pair.run_until(at(3.5));
    let listened = pair.on_device(|d, now| d.stream(now, "temp")).unwrap();
    pair.run_until(at(8.5));
    assert_eq!(
        pair.on_device(|d, now| d.stream(now, "temp")).unwrap(),
        listened
    );
    pair.run_until(at(27.0));
    pair.leave("temp", E);
    pair.run_until(at(28.0));
    pair.leave("temp", S);
    pair.run_until(at(40.0));

    let v = |n: u32| Value::from(n);
    match dialect {
        Dialect::Draft2026 => {
            assert!(listened, "2026: the event stream listens");
            assert_eq!(
                stream_requests(&pair),
                [
                    (
                        at(1.0),
                        MessageType::StartStream,
                        101,
                        Some("temp".into()),
                        Some(5000)
                    ),
                    (
                        at(2.0),
                        MessageType::StartStream,
                        102,
                        Some("temp".into()),
                        None
                    ),
                    (at(27.0), MessageType::StopStream, 102, None, None),
                    (at(28.0), MessageType::StopStream, 101, None, None),
                ]
            );
            // Reads: 1 s sample, 2 s event-stream start, 3.5 s event, 6 s sample, 8.5 s event,
            // then samples.
            assert_eq!(
                deliveries_of(&pair, S),
                [
                    (at(1.0), v(20)),
                    (at(6.0), v(21)),
                    (at(11.0), v(22)),
                    (at(16.0), v(22)),
                    (at(21.0), v(22)),
                    (at(26.0), v(22))
                ]
            );
            assert_eq!(
                deliveries_of(&pair, E),
                [(at(2.0), v(20)), (at(3.5), v(21)), (at(8.5), v(21))]
            );
        }
        Dialect::Draft2020 => {
            assert!(
                !listened,
                "2020: the one stream of temp samples; nobody listens to events"
            );
            assert_eq!(
                stream_requests(&pair),
                [
                    (
                        at(1.0),
                        MessageType::StartStream,
                        101,
                        Some("temp".into()),
                        Some(5000)
                    ),
                    (at(28.0), MessageType::StopStream, 101, None, None),
                ]
            );
            assert_eq!(
                deliveries_of(&pair, S),
                [
                    (at(1.0), v(20)),
                    (at(6.0), v(20)),
                    (at(11.0), v(21)),
                    (at(16.0), v(21)),
                    (at(21.0), v(21)),
                    (at(26.0), v(22))
                ]
            );
            // The cached 20 when joining, then changes only.
            assert_eq!(
                deliveries_of(&pair, E),
                [(at(2.0), v(20)), (at(11.0), v(21)), (at(26.0), v(22))]
            );
        }
    }

    insta::assert_snapshot!(
        format!("fanout_mixed_sinks_{dialect}"),
        pair.transcript.text()
    );
}
