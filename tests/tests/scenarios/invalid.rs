//! Every frame entry of `vectors/invalid.json` driven through live sessions (spec §6.1, §7.2):
//!
//! * `"state": "established"`: injected into a connected pair of the entry's dialect, once
//!   towards the server and once towards the device (every entry makes sense for a device too:
//!   it receives the same message types, answers malformed requests the same way, and applies
//!   the same framing limits). The receiver must answer exactly
//!   `reply_hex` (`drop_and_error`), or nothing and stay up (`drop`, `ignore`: a keep-alive or a
//!   RUN afterwards still works, and the stream then ends cleanly), or close without sending
//!   anything (`close`), at the latest when the stream ends after `hex`.
//! * `"state": "new"`: the first bytes on a fresh server session, which closes without sending
//!   anything.
//!
//! No snapshot: the vector file is the reference.

use iotmp_proto::server::{ServerEvent, ServerSession, TransportInfo};
use iotmp_proto::{Answer, CloseReason, Dialect, Instant};
use iotmp_tests::pair::Pair;
use iotmp_tests::transcript::Direction;
use iotmp_tests::{dialect_of, hex_bytes, hex_string, load_json, name_of, str_member};
use serde_json::Value as Json;

use crate::common::{at, device_close, sample, server_close, server_config};

fn frame_entries(state: &str) -> Vec<Json> {
    let entries: Vec<Json> = load_json("invalid.json")
        .into_iter()
        .filter(|e| e.get("state").and_then(Json::as_str) == Some(state))
        .collect();
    assert!(!entries.is_empty(), "invalid.json has no {state:?} entries");
    if state == "established" {
        for dialect in [Dialect::Draft2020, Dialect::Draft2026] {
            assert!(
                entries.iter().any(|e| dialect_of(e) == dialect),
                "invalid.json has no established {dialect} entries"
            );
        }
    }
    entries
}

/// Everything the receiver in `direction` sent from `from` on, as one byte string.
fn replies(pair: &Pair, direction: Direction, from: Instant) -> Vec<u8> {
    let back = match direction {
        Direction::DeviceToServer => Direction::ServerToDevice,
        Direction::ServerToDevice => Direction::DeviceToServer,
    };
    pair.transcript
        .frames()
        .iter()
        .filter(|(t, d, _)| *d == back && *t >= from)
        .flat_map(|(_, _, bytes)| bytes.iter().copied())
        .collect()
}

/// Drives one established entry towards the receiver at the end of `direction`; returns what
/// went wrong, if anything.
fn drive(entry: &Json, direction: Direction) -> Result<(), String> {
    let dialect: Dialect = dialect_of(entry);
    let bytes = hex_bytes(str_member(entry, "hex"));
    let expect = str_member(entry, "expect");
    let mut s = sample(dialect, Some(30));
    s.pair.run_until(at(1.0));
    s.pair.inject(direction, &bytes);
    s.pair.run_until(at(2.0));
    let receiver_close = |pair: &Pair| match direction {
        Direction::DeviceToServer => server_close(pair),
        Direction::ServerToDevice => device_close(pair),
    };
    let reply = replies(&s.pair, direction, at(1.0));
    match expect {
        "close" => {
            // Header violations close at once; a truncated frame when the stream ends.
            s.pair.end_of_stream(direction);
            s.pair.run_until(at(3.0));
            let reply = replies(&s.pair, direction, at(1.0));
            if !reply.is_empty() {
                return Err(format!("sent {} before closing", hex_string(&reply)));
            }
            match receiver_close(&s.pair) {
                Some((_, CloseReason::Framing(_))) => Ok(()),
                other => Err(format!("expected a framing close, got {other:?}")),
            }
        }
        "drop" | "ignore" | "drop_and_error" => {
            let want = entry
                .get("reply_hex")
                .and_then(Json::as_str)
                .map(hex_bytes)
                .unwrap_or_default();
            if reply != want {
                return Err(format!(
                    "replied {:?}, expected {:?}",
                    hex_string(&reply),
                    hex_string(&want)
                ));
            }
            if let Some(closed) = receiver_close(&s.pair) {
                return Err(format!("closed: {closed:?}"));
            }
            check_still_up(&mut s.pair, direction, dialect)?;
            s.pair.end_of_stream(direction);
            s.pair.run_until(at(4.0));
            match receiver_close(&s.pair) {
                Some((t, CloseReason::TransportClosed)) if t == at(3.0) => Ok(()),
                other => Err(format!(
                    "expected a clean end of stream at 3 s (the frame was consumed whole), got {other:?}"
                )),
            }
        }
        other => Err(format!("unknown expectation {other:?}")),
    }
}

/// The connection still works after the bad input: the server echoes a keep-alive; the device
/// answers a RUN.
fn check_still_up(pair: &mut Pair, direction: Direction, dialect: Dialect) -> Result<(), String> {
    pair.run_until(at(2.5));
    match direction {
        Direction::DeviceToServer => {
            pair.inject(direction, dialect.keep_alive_frame());
            pair.run_until(at(3.0));
            let echo = replies(pair, direction, at(2.5));
            if echo != dialect.keep_alive_frame() {
                return Err(format!(
                    "no keep-alive echo afterwards: {}",
                    hex_string(&echo)
                ));
            }
        }
        Direction::ServerToDevice => {
            let id = pair
                .on_server(|srv, now| srv.run(now, "temp", None))
                .map_err(|e| e.to_string())?;
            pair.run_until(at(3.0));
            let answered = pair.server_events.iter().any(|(t, e)| {
                *t == at(2.5)
                    && matches!(e, ServerEvent::Answered { id: i, answer: Answer::Ok { .. } } if *i == id)
            });
            if !answered {
                return Err("the device no longer answers a RUN".into());
            }
        }
    }
    Ok(())
}

#[test]
fn invalid_established_towards_server() {
    let failures: Vec<String> = frame_entries("established")
        .iter()
        .filter_map(|e| {
            drive(e, Direction::DeviceToServer)
                .err()
                .map(|why| format!("{} {}: {why}", dialect_of(e), name_of(e)))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn invalid_established_towards_device() {
    let failures: Vec<String> = frame_entries("established")
        .iter()
        .filter_map(|e| {
            drive(e, Direction::ServerToDevice)
                .err()
                .map(|why| format!("{} {}: {why}", dialect_of(e), name_of(e)))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn invalid_new_connection() {
    let mut failures = Vec::new();
    for entry in frame_entries("new") {
        let bytes = hex_bytes(str_member(&entry, "hex"));
        assert_eq!(str_member(&entry, "expect"), "close");
        let now = Instant::ZERO;
        let mut session = ServerSession::new(server_config(), TransportInfo::default(), now);
        session.handle_input(now, &bytes);
        // Whole frames: the decision must not wait for the end of the stream.
        let closed_on_input = session.is_closed();
        session.handle_eof(now);
        let mut sent = Vec::new();
        session.poll_transmit(&mut sent);
        let events: Vec<ServerEvent> = std::iter::from_fn(|| session.poll_event()).collect();
        let ok = closed_on_input
            && sent.is_empty()
            && matches!(
                events.as_slice(),
                [ServerEvent::Closed(CloseReason::NotConnect)]
            );
        if !ok {
            failures.push(format!(
                "{}: closed on input {closed_on_input}, sent {:?}, events {events:?}",
                name_of(&entry),
                hex_string(&sent)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
