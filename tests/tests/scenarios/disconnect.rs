//! DISCONNECT from either side (spec §6.11).

use iotmp_proto::{CloseReason, Dialect, MessageType, Value};
use iotmp_tests::transcript::Direction;

use crate::common::{at, device_close, messages, sample, server_close};

in_both_dialects!(
    disconnect_device_waits_for_ok,
    disconnect_device_ok_lost,
    disconnect_device_at_once,
    disconnect_by_server,
);

/// The device sends DISCONNECT with a stream id: the server answers OK and closes, the device
/// closes on that OK.
fn disconnect_device_waits_for_ok(dialect: Dialect) {
    let mut s = sample(dialect, Some(30));
    s.pair.run_until(at(1.0));
    s.pair
        .on_device(|d, now| d.client().disconnect(now, Some("shutdown".into()), true))
        .unwrap();
    s.pair.run_until(at(2.0));

    let up = messages(&s.pair, Direction::DeviceToServer);
    let (_, disconnect) = up.last().unwrap();
    assert_eq!(disconnect.kind, MessageType::Disconnect);
    let id = disconnect
        .stream_id
        .expect("a DISCONNECT waiting for OK has a stream id");
    let down = messages(&s.pair, Direction::ServerToDevice);
    assert_eq!(
        down.last().map(|(_, m)| (m.kind, m.stream_id)),
        Some((MessageType::Ok, Some(id)))
    );
    assert_eq!(
        server_close(&s.pair),
        Some((
            at(1.0),
            CloseReason::PeerDisconnect {
                reason: Some(Value::from("shutdown"))
            }
        ))
    );
    assert_eq!(
        device_close(&s.pair),
        Some((at(1.0), CloseReason::LocalDisconnect))
    );

    insta::assert_snapshot!(
        format!("disconnect_device_waits_for_ok_{dialect}"),
        s.pair.transcript.text()
    );
}

/// The device waits for an OK that the link loses (and, the link being a black hole, for an end
/// of stream that never comes): it gives up after the 10 s request timeout and closes anyway.
fn disconnect_device_ok_lost(dialect: Dialect) {
    let mut s = sample(dialect, Some(30));
    s.pair.run_until(at(1.0));
    s.pair.black_hole(Direction::ServerToDevice);
    s.pair
        .on_device(|d, now| d.client().disconnect(now, Some("shutdown".into()), true))
        .unwrap();
    s.pair.run_until(at(20.0));

    assert_eq!(
        server_close(&s.pair),
        Some((
            at(1.0),
            CloseReason::PeerDisconnect {
                reason: Some(Value::from("shutdown"))
            }
        ))
    );
    assert_eq!(
        device_close(&s.pair),
        Some((at(11.0), CloseReason::LocalDisconnect))
    );

    insta::assert_snapshot!(
        format!("disconnect_device_ok_lost_{dialect}"),
        s.pair.transcript.text()
    );
}

/// The device sends DISCONNECT without a stream id and closes right after writing it; the
/// server answers nothing.
fn disconnect_device_at_once(dialect: Dialect) {
    let mut s = sample(dialect, Some(30));
    s.pair.run_until(at(1.0));
    s.pair
        .on_device(|d, now| d.client().disconnect(now, Some("bye".into()), false))
        .unwrap();
    s.pair.run_until(at(2.0));

    let up = messages(&s.pair, Direction::DeviceToServer);
    let (_, disconnect) = up.last().unwrap();
    assert_eq!(disconnect.kind, MessageType::Disconnect);
    assert_eq!(disconnect.stream_id, None);
    assert_eq!(
        messages(&s.pair, Direction::ServerToDevice).len(),
        1,
        "only the OK to CONNECT: nothing answers the DISCONNECT"
    );
    assert_eq!(
        device_close(&s.pair),
        Some((at(1.0), CloseReason::LocalDisconnect))
    );
    assert_eq!(
        server_close(&s.pair),
        Some((
            at(1.0),
            CloseReason::PeerDisconnect {
                reason: Some(Value::from("bye"))
            }
        ))
    );

    insta::assert_snapshot!(
        format!("disconnect_device_at_once_{dialect}"),
        s.pair.transcript.text()
    );
}

/// The server sends DISCONNECT with a reason (a newer connection of the device won) and closes.
fn disconnect_by_server(dialect: Dialect) {
    let mut s = sample(dialect, Some(30));
    s.pair.run_until(at(1.0));
    s.pair
        .on_server(|srv, now| srv.disconnect(now, Some("replaced".into())))
        .unwrap();
    s.pair.run_until(at(2.0));

    assert_eq!(
        server_close(&s.pair),
        Some((at(1.0), CloseReason::LocalDisconnect))
    );
    assert_eq!(
        device_close(&s.pair),
        Some((
            at(1.0),
            CloseReason::PeerDisconnect {
                reason: Some(Value::from("replaced"))
            }
        ))
    );
    assert_eq!(
        messages(&s.pair, Direction::DeviceToServer).len(),
        1,
        "the device answers nothing: the DISCONNECT had no stream id"
    );

    insta::assert_snapshot!(
        format!("disconnect_by_server_{dialect}"),
        s.pair.transcript.text()
    );
}
