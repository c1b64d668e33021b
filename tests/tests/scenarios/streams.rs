//! Streams on the device (spec §6.7, §6.8): an event stream fed by the application and by the
//! echo rule, and a sampling stream until STOP_STREAM.

use iotmp_proto::client::ClientEvent;
use iotmp_proto::server::ServerEvent;
use iotmp_proto::session::StreamEnd;
use iotmp_proto::{Dialect, MessageType, StreamKind, Value};
use iotmp_tests::pair::alice_config;
use iotmp_tests::transcript::Direction;

use crate::common::{at, map, messages, sample_with, stream_data};

in_both_dialects!(stream_events, stream_sampling);

/// An event stream of `heading`: its first value comes with the OK, then one value each time
/// the application calls `stream("heading")`. `stream("temp")` sends nothing (nobody listens).
/// Then an event stream of the input `led`: a RUN with a payload is answered and echoed once on
/// it; a RUN without payload is not echoed.
fn stream_events(dialect: Dialect) {
    let mut s = sample_with(alice_config(dialect).with_keep_alive(30), |r| r);
    for v in [92.5, 95.0] {
        s.heading.push(Value::F32(v));
    }
    s.pair.run_until(at(1.0));
    let heading = s
        .pair
        .on_server(|srv, now| srv.start_stream(now, "heading", 0))
        .unwrap();
    s.pair.run_until(at(2.0));
    assert_eq!(
        s.pair.on_device(|d, now| d.stream(now, "heading")),
        Ok(true)
    );
    s.pair.run_until(at(3.0));
    assert_eq!(
        s.pair.on_device(|d, now| d.stream(now, "heading")),
        Ok(true)
    );
    assert_eq!(
        s.pair.on_device(|d, now| d.stream(now, "temp")),
        Ok(false),
        "no event stream listens to temp"
    );
    s.pair.run_until(at(4.0));
    let led = s
        .pair
        .on_server(|srv, now| srv.start_stream(now, "led", 0))
        .unwrap();
    s.pair.run_until(at(5.0));
    let on = map(&[("on", true.into())]);
    s.pair
        .on_server(|srv, now| srv.run(now, "led", Some(on.clone())))
        .unwrap();
    s.pair.run_until(at(6.0));
    s.pair
        .on_server(|srv, now| srv.run(now, "led", None))
        .unwrap();
    s.pair.run_until(at(10.0));

    let off = map(&[("on", false.into())]);
    assert_eq!(
        stream_data(&s.pair),
        [
            (at(1.0), heading, Value::F32(87.5)),
            (at(2.0), heading, Value::F32(92.5)),
            (at(3.0), heading, Value::F32(95.0)),
            (at(4.0), led, off),
            (at(5.0), led, on.clone()),
        ]
    );
    // The echo follows the OK of the RUN.
    let up: Vec<_> = messages(&s.pair, Direction::DeviceToServer)
        .into_iter()
        .filter(|(t, _)| *t == at(5.0))
        .map(|(_, m)| m.kind)
        .collect();
    assert_eq!(up, [MessageType::Ok, MessageType::StreamData]);
    // 2020 tells events from samples by message type.
    if dialect == Dialect::Draft2020 {
        assert!(s.pair.server_events.iter().all(|(_, e)| !matches!(
            e,
            ServerEvent::StreamData {
                kind: Some(StreamKind::Sample),
                ..
            }
        )));
    }
    assert_eq!(*s.led.lock().unwrap(), [on]);

    insta::assert_snapshot!(format!("stream_events_{dialect}"), s.pair.transcript.text());
}

/// A sampling stream of `temp` every 5 s: a value with the OK at 1 s, then at 6, 11 and 16 s;
/// STOP_STREAM at 18 s is answered OK and no value follows.
fn stream_sampling(dialect: Dialect) {
    let mut s = sample_with(alice_config(dialect).with_keep_alive(30), |r| r);
    for v in [21.75, 22.0, 22.25] {
        s.temp.push(Value::F32(v));
    }
    s.pair.run_until(at(1.0));
    let id = s
        .pair
        .on_server(|srv, now| srv.start_stream(now, "temp", 5000))
        .unwrap();
    s.pair.run_until(at(18.0));
    s.pair
        .on_server(|srv, now| srv.stop_stream(now, id))
        .unwrap();
    s.pair.run_until(at(40.0));

    assert_eq!(
        stream_data(&s.pair),
        [
            (at(1.0), id, Value::F32(21.5)),
            (at(6.0), id, Value::F32(21.75)),
            (at(11.0), id, Value::F32(22.0)),
            (at(16.0), id, Value::F32(22.25)),
        ]
    );
    assert!(s.pair.server_events.contains(&(
        at(18.0),
        ServerEvent::StreamClosed {
            id,
            why: StreamEnd::Stopped
        }
    )));
    assert!(
        s.pair
            .device_events
            .contains(&(at(18.0), ClientEvent::StreamStopped { id }))
    );
    assert!(s.pair.device.session().streams().is_empty());
    if dialect == Dialect::Draft2020 {
        assert!(s.pair.server_events.iter().all(|(_, e)| !matches!(
            e,
            ServerEvent::StreamData {
                kind: Some(StreamKind::Event),
                ..
            }
        )));
    }

    insta::assert_snapshot!(
        format!("stream_sampling_{dialect}"),
        s.pair.transcript.text()
    );
}
