//! RUN and DESCRIBE in both directions (spec §6.4–6.6): answers, errors, fire and forget, and a
//! request that never gets its answer.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use iotmp_proto::client::{ClientEvent, ServerAction};
use iotmp_proto::dialect::ErrorInfo;
use iotmp_proto::server::ServerEvent;
use iotmp_proto::session::StreamEnd;
use iotmp_proto::{Answer, Dialect, Instant, Message, MessageType, Value};
use iotmp_tests::pair::{Pair, alice_config};
use iotmp_tests::transcript::Direction;

use crate::common::{at, map, messages, sample, sample_with};

in_both_dialects!(
    requests_server_to_device,
    requests_device_to_server,
    requests_unknown_resource,
    requests_fire_and_forget,
    requests_timeout,
);

/// The server's answers, by request id.
fn answer(pair: &Pair, id: u16) -> (Instant, Answer) {
    pair.server_events
        .iter()
        .find_map(|(t, e)| match e {
            ServerEvent::Answered { id: i, answer } if *i == id => Some((*t, answer.clone())),
            _ => None,
        })
        .unwrap_or_else(|| panic!("request {id} got no answer"))
}

fn ok(payload: Option<Value>) -> Answer {
    Answer::Ok {
        params: None,
        payload,
    }
}

fn error(code: u64, text: &str) -> Answer {
    Answer::Error(ErrorInfo {
        code: Some(code),
        text: Some(text.to_owned()),
        has_payload: true,
    })
}

/// The server reads every kind of resource: DESCRIBE all and one, RUN of an output, an input
/// with a payload, and an action; a DESCRIBE afterwards shows the applied input.
fn requests_server_to_device(dialect: Dialect) {
    let reboots = Arc::new(AtomicU32::new(0));
    let counter = reboots.clone();
    let mut s = sample_with(alice_config(dialect).with_keep_alive(30), move |r| {
        r.action("reboot", move || {
            counter.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
    });
    let on = map(&[("on", true.into())]);
    let off = map(&[("on", false.into())]);

    s.pair.run_until(at(1.0));
    let all = s
        .pair
        .on_server(|srv, now| srv.describe(now, None))
        .unwrap();
    let led = s
        .pair
        .on_server(|srv, now| srv.describe(now, Some("led".into())))
        .unwrap();
    let temp = s
        .pair
        .on_server(|srv, now| srv.describe(now, Some("temp".into())))
        .unwrap();
    let reboot = s
        .pair
        .on_server(|srv, now| srv.describe(now, Some("reboot".into())))
        .unwrap();
    s.pair.run_until(at(2.0));
    let read = s
        .pair
        .on_server(|srv, now| srv.run(now, "temp", None))
        .unwrap();
    let write = s
        .pair
        .on_server(|srv, now| srv.run(now, "led", Some(on.clone())))
        .unwrap();
    let act = s
        .pair
        .on_server(|srv, now| srv.run(now, "reboot", None))
        .unwrap();
    s.pair.run_until(at(3.0));
    let led_after = s
        .pair
        .on_server(|srv, now| srv.describe(now, Some("led".into())))
        .unwrap();
    s.pair.run_until(at(4.0));

    let fn_of = |code: u32| map(&[("fn", code.into())]);
    let descriptors = map(&[
        ("led", fn_of(2)),
        ("temp", fn_of(3)),
        ("heading", fn_of(3)),
        ("reboot", fn_of(1)),
    ]);
    assert_eq!(answer(&s.pair, all), (at(1.0), ok(Some(descriptors))));
    assert_eq!(
        answer(&s.pair, led),
        (at(1.0), ok(Some(map(&[("in", off)]))))
    );
    assert_eq!(
        answer(&s.pair, temp),
        (at(1.0), ok(Some(map(&[("out", Value::F32(21.5))]))))
    );
    assert_eq!(answer(&s.pair, reboot), (at(1.0), ok(Some(map(&[])))));
    assert_eq!(answer(&s.pair, read), (at(2.0), ok(Some(Value::F32(21.5)))));
    assert_eq!(
        answer(&s.pair, write),
        (at(2.0), ok(None)),
        "an input answers OK without payload"
    );
    assert_eq!(answer(&s.pair, act), (at(2.0), ok(None)));
    assert_eq!(
        answer(&s.pair, led_after),
        (at(3.0), ok(Some(map(&[("in", on.clone())]))))
    );
    assert_eq!(*s.led.lock().unwrap(), [on]);
    assert_eq!(reboots.load(Ordering::SeqCst), 1);

    insta::assert_snapshot!(
        format!("requests_server_to_device_{dialect}"),
        s.pair.transcript.text()
    );
}

/// The device's own requests: this server implements no server resources or actions, so a RUN
/// gets ERROR 501, so does a server action, and a DESCRIBE gets OK `{}` (spec §6.5.3).
fn requests_device_to_server(dialect: Dialect) {
    let mut s = sample(dialect, Some(30));
    s.pair.run_until(at(1.0));
    let run = s
        .pair
        .on_device(|d, now| d.client().run(now, "status", None, false))
        .unwrap()
        .expect("a RUN with an id");
    let bucket = s
        .pair
        .on_device(|d, now| {
            d.client().run_action(
                now,
                ServerAction::WriteBucket,
                "readings",
                Some(map(&[("t", Value::F32(21.5))])),
            )
        })
        .unwrap();
    // The client has no DESCRIBE command of its own; put one on the wire as is.
    let describe = Message::new(MessageType::Describe).with_stream_id(50);
    s.pair
        .on_device(|d, _| d.client().send_unchecked(&describe))
        .unwrap();
    s.pair.run_until(at(2.0));

    let unsupported = Answer::Error(ErrorInfo {
        code: Some(501),
        text: Some("unsupported action".into()),
        has_payload: true,
    });
    let answers: Vec<_> = s
        .pair
        .device_events
        .iter()
        .filter_map(|(t, e)| match e {
            ClientEvent::Answered { id, answer } => Some((*t, *id, answer.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        answers,
        [
            (at(1.0), run, unsupported.clone()),
            (at(1.0), bucket, unsupported)
        ]
    );
    let down = messages(&s.pair, Direction::ServerToDevice);
    let (_, last) = down.last().expect("the server answered the DESCRIBE");
    assert_eq!(
        *last,
        Message::ok(50).with_payload(map(&[])),
        "DESCRIBE of the server: OK {{}}"
    );
    assert!(s.pair.device.session().is_connected() && s.pair.server.is_established());

    insta::assert_snapshot!(
        format!("requests_device_to_server_{dialect}"),
        s.pair.transcript.text()
    );
}

/// A resource the device does not have: RUN, DESCRIBE and START_STREAM all get ERROR 404
/// "unknown resource"; the connection goes on.
fn requests_unknown_resource(dialect: Dialect) {
    let mut s = sample(dialect, Some(30));
    s.pair.run_until(at(1.0));
    let run = s
        .pair
        .on_server(|srv, now| srv.run(now, "nope", None))
        .unwrap();
    let describe = s
        .pair
        .on_server(|srv, now| srv.describe(now, Some("nope".into())))
        .unwrap();
    let stream = s
        .pair
        .on_server(|srv, now| srv.start_stream(now, "nope", 0))
        .unwrap();
    s.pair.run_until(at(2.0));

    let unknown = error(404, "unknown resource");
    assert_eq!(answer(&s.pair, run), (at(1.0), unknown.clone()));
    assert_eq!(answer(&s.pair, describe), (at(1.0), unknown));
    assert!(s.pair.server_events.iter().any(|(t, e)| *t == at(1.0)
        && matches!(e, ServerEvent::StreamClosed { id, why: StreamEnd::Refused(info) }
            if *id == stream && info.code == Some(404))));
    assert!(s.pair.device.session().streams().is_empty());
    assert!(s.pair.device.session().is_connected() && s.pair.server.is_established());

    insta::assert_snapshot!(
        format!("requests_unknown_resource_{dialect}"),
        s.pair.transcript.text()
    );
}

/// A RUN without a stream id is fire and forget: the device applies the input and answers
/// nothing.
fn requests_fire_and_forget(dialect: Dialect) {
    let mut s = sample(dialect, Some(30));
    s.pair.run_until(at(1.0));
    let off = map(&[("on", false.into())]);
    let run = Message::new(MessageType::Run)
        .with_resource("led")
        .with_payload(off.clone());
    s.pair.on_server(|srv, _| srv.send_unchecked(&run)).unwrap();
    s.pair.run_until(at(5.0));

    assert_eq!(*s.led.lock().unwrap(), [off]);
    assert!(
        messages(&s.pair, Direction::DeviceToServer)
            .iter()
            .all(|(t, _)| *t < at(1.0)),
        "no answer to a RUN without stream id"
    );
    assert!(
        !s.pair
            .server_events
            .iter()
            .any(|(_, e)| matches!(e, ServerEvent::Answered { .. })),
    );

    insta::assert_snapshot!(
        format!("requests_fire_and_forget_{dialect}"),
        s.pair.transcript.text()
    );
}

/// The link to the device swallows the RUN: after the 10 s request timeout the server gives up
/// on it and frees the id.
fn requests_timeout(dialect: Dialect) {
    let mut s = sample(dialect, Some(30));
    s.pair.run_until(at(1.0));
    s.pair.black_hole(Direction::ServerToDevice);
    let id = s
        .pair
        .on_server(|srv, now| srv.run(now, "temp", None))
        .unwrap();
    s.pair.run_until(at(15.0));

    let timed_out: Vec<_> = s
        .pair
        .server_events
        .iter()
        .filter(|(_, e)| matches!(e, ServerEvent::RequestTimedOut { .. }))
        .cloned()
        .collect();
    assert_eq!(timed_out, [(at(11.0), ServerEvent::RequestTimedOut { id })]);
    assert!(
        s.pair.server.is_established(),
        "a timed-out request does not end the connection"
    );
    assert!(s.pair.device.session().is_connected());

    insta::assert_snapshot!(
        format!("requests_timeout_{dialect}"),
        s.pair.transcript.text()
    );
}
