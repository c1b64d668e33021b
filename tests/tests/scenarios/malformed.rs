//! Malformed input on a live connection (spec §7.2, §7.3), in each direction: a request with an
//! invalid wire type gets the malformed reply, an unknown message type is skipped silently, and
//! a header announcing a body above the 256 KiB limit closes the connection.

use iotmp_proto::server::ServerEvent;
use iotmp_proto::{Answer, CloseReason, Dialect, Instant, MessageType};
use iotmp_tests::hex_bytes;
use iotmp_tests::pair::Pair;
use iotmp_tests::transcript::Direction;

use crate::common::{at, device_close, messages, sample, server_close};

in_both_dialects!(malformed_to_device, malformed_to_server);

/// RUN {id 7} whose next field has wire type 3 (invalid in both dialects).
fn bad_wire_type_run(dialect: Dialect) -> Vec<u8> {
    hex_bytes(match dialect {
        Dialect::Draft2020 => "04 04 01 07 32 00",
        Dialect::Draft2026 => "06 04 08 07 23 00",
    })
}

/// A frame of a type the dialect does not define, with a body.
fn unknown_type(dialect: Dialect) -> Vec<u8> {
    hex_bytes(match dialect {
        Dialect::Draft2020 => "0C 01 00",
        Dialect::Draft2026 => "0B 01 00",
    })
}

/// A header announcing a 262145-byte body.
fn oversized_header() -> Vec<u8> {
    hex_bytes("01 81 80 10")
}

/// What went `direction` at `t`.
fn sent_at(pair: &Pair, direction: Direction, t: Instant) -> Vec<MessageType> {
    messages(pair, direction)
        .into_iter()
        .filter(|(when, _)| *when == t)
        .map(|(_, m)| m.kind)
        .collect()
}

/// Bytes from "the server" that no server session wrote reach the device.
fn malformed_to_device(dialect: Dialect) {
    let mut s = sample(dialect, Some(30));
    s.pair.run_until(at(1.0));
    s.pair
        .inject(Direction::ServerToDevice, &bad_wire_type_run(dialect));
    s.pair.run_until(at(2.0));
    s.pair
        .inject(Direction::ServerToDevice, &unknown_type(dialect));
    s.pair.run_until(at(2.5));
    let id = s
        .pair
        .on_server(|srv, now| srv.run(now, "temp", None))
        .unwrap();
    s.pair.run_until(at(3.0));
    s.pair
        .inject(Direction::ServerToDevice, &oversized_header());
    s.pair.run_until(at(4.0));

    let up = messages(&s.pair, Direction::DeviceToServer);
    let reply = up
        .iter()
        .find(|(t, _)| *t == at(1.0))
        .expect("a malformed reply");
    assert_eq!(reply.1, dialect.malformed_reply(7));
    assert!(sent_at(&s.pair, Direction::DeviceToServer, at(2.0)).is_empty());
    assert!(s.pair.server_events.iter().any(|(t, e)| *t == at(2.5)
        && matches!(e, ServerEvent::Answered { id: i, answer: Answer::Ok { .. } } if *i == id)));
    assert!(
        matches!(device_close(&s.pair), Some((t, CloseReason::Framing(_))) if t == at(3.0)),
        "an oversized header closes at once: {:?}",
        device_close(&s.pair)
    );
    assert!(sent_at(&s.pair, Direction::DeviceToServer, at(3.0)).is_empty());
    assert_eq!(
        server_close(&s.pair),
        Some((at(3.0), CloseReason::TransportClosed))
    );

    insta::assert_snapshot!(
        format!("malformed_to_device_{dialect}"),
        s.pair.transcript.text()
    );
}

/// Bytes from "the device" that no device session wrote reach the server.
fn malformed_to_server(dialect: Dialect) {
    let mut s = sample(dialect, Some(30));
    s.pair.run_until(at(1.0));
    s.pair
        .inject(Direction::DeviceToServer, &bad_wire_type_run(dialect));
    s.pair.run_until(at(2.0));
    s.pair
        .inject(Direction::DeviceToServer, &unknown_type(dialect));
    s.pair.run_until(at(2.5));
    let id = s
        .pair
        .on_server(|srv, now| srv.run(now, "temp", None))
        .unwrap();
    s.pair.run_until(at(3.0));
    s.pair
        .inject(Direction::DeviceToServer, &oversized_header());
    s.pair.run_until(at(4.0));

    let down = messages(&s.pair, Direction::ServerToDevice);
    let reply = down
        .iter()
        .find(|(t, _)| *t == at(1.0))
        .expect("a malformed reply");
    assert_eq!(reply.1, dialect.malformed_reply(7));
    assert!(sent_at(&s.pair, Direction::ServerToDevice, at(2.0)).is_empty());
    assert!(s.pair.server_events.iter().any(|(t, e)| *t == at(2.5)
        && matches!(e, ServerEvent::Answered { id: i, answer: Answer::Ok { .. } } if *i == id)));
    assert!(
        matches!(server_close(&s.pair), Some((t, CloseReason::Framing(_))) if t == at(3.0)),
        "an oversized header closes at once: {:?}",
        server_close(&s.pair)
    );
    assert!(sent_at(&s.pair, Direction::ServerToDevice, at(3.0)).is_empty());
    assert_eq!(
        device_close(&s.pair),
        Some((at(3.0), CloseReason::TransportClosed))
    );

    insta::assert_snapshot!(
        format!("malformed_to_server_{dialect}"),
        s.pair.transcript.text()
    );
}
