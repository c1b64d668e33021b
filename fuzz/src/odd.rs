//! Valid-but-odd message sequences: well-formed frames built with the core's encoder (duplicate
//! stream ids, answers to requests never made, STOP of unknown streams, keep-alive storms,
//! reconfiguring START_STREAMs, DISCONNECT at odd times, both dialects, both 2026 flavours mixed
//! on one connection), fed to a server or a client session. Besides the invariants of the
//! session harnesses, each single message must get the answer spec §6 and §7.2 give it.

use arbitrary::{Result, Unstructured};
use iotmp_proto::client::{ResourceKind, resource_name};
use iotmp_proto::outcome::Outcome;
use iotmp_proto::{
    AuthType, ClientEvent, CloseReason, Dialect, Flavour, Map, Message, MessageType, ServerEvent,
    StreamKind, Value,
};

use crate::client_fuzz::{self, ClientCheck};
use crate::draw;
use crate::server_fuzz::{self, CLIENT_CERT_PEM, ServerCheck};

const MAX_STEPS: usize = 40;

/// The `session_odd` target: byte 0 picks the side, the rest drives the sequence.
pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(server_side) = u.arbitrary::<bool>() else {
        return;
    };
    if server_side {
        let _ = run_server(&mut u);
    } else {
        let _ = run_client(&mut u);
    }
}

/// A message of any type with fields a peer might set, stream ids biased to `known`.
fn odd_message(u: &mut Unstructured<'_>, dialect: Dialect, known: &[u16]) -> Result<Message> {
    let kind = draw::pick(u, &MessageType::ALL)?;
    let mut m = Message::new(kind);
    m.stream_id = match u.int_in_range(0..=5)? {
        0 => None,
        1 | 2 if !known.is_empty() => Some(draw::pick(u, known)?),
        _ => Some(draw::stream_id(u)?),
    };
    if u.ratio(2, 3)? {
        m.resource = Some(draw::resource(u)?);
    }
    match kind {
        MessageType::Disconnect => m.reason = draw::opt_value(u)?,
        MessageType::KeepAlive => m.stream_id = None,
        _ => m.payload = draw::opt_value(u)?,
    }
    if kind == MessageType::StreamData && (dialect == Dialect::Draft2020 || u.arbitrary()?) {
        m.data_kind = Some(draw::pick(u, &[StreamKind::Sample, StreamKind::Event])?);
    }
    if kind == MessageType::StartStream && u.arbitrary()? {
        m.interval_ms = Some(draw::interval_ms(u)?);
    }
    match dialect {
        Dialect::Draft2026
            if u.ratio(1, 4)?
                && kind != MessageType::StartStream
                && kind != MessageType::Connect =>
        {
            m.params = Some(draw::value(u, 1)?);
        }
        Dialect::Draft2020 if kind == MessageType::Run && u.ratio(1, 4)? => {
            m.action = Some(u.int_in_range(0..=16)?)
        }
        _ => {}
    }
    if kind == MessageType::Connect {
        m.payload = Some(credentials(u)?);
        if u.arbitrary()? {
            m.keep_alive = Some(draw::pick(u, &[30, 0, 4, 5, 1800, 1801, u32::MAX])?);
        }
    }
    Ok(m)
}

fn credentials(u: &mut Unstructured<'_>) -> Result<Value> {
    Ok(match u.int_in_range(0..=5)? {
        0 => draw::value(u, 1)?,
        1 => Value::Array(vec![Value::from("alice"), Value::from("dev01")]),
        _ => Value::Array(vec![
            Value::from("alice"),
            Value::from(draw::text(u)?),
            Value::from("s3cr3t"),
        ]),
    })
}

/// Encodes `m`; `None` when the dialect cannot carry it (then the step is skipped).
fn encode(dialect: Dialect, flavour: Flavour, m: &Message) -> Option<Vec<u8>> {
    let mut frame = Vec::new();
    dialect.encode(m, flavour, &mut frame).ok()?;
    Some(frame)
}

/// What a receiver with body limit `max_body` will make of `frame`: the decoded message, or the
/// outcome of its error (`Close` for a body above the limit).
fn received(
    dialect: Dialect,
    max_body: u32,
    frame: &[u8],
) -> std::result::Result<Message, Outcome> {
    let mut input = frame;
    let mut deframer = iotmp_proto::frame::Deframer::new(u32::MAX);
    match deframer.next_frame(&mut input) {
        Ok(Some(f)) if f.body.len() > max_body as usize => Err(Outcome::Close),
        Ok(Some(f)) => dialect.decode(f.type_code, f.body).map_err(|e| e.outcome()),
        other => panic!("the encoder built no whole frame: {other:?}"),
    }
}

fn error_code(dialect: Dialect, m: &Message) -> Option<u64> {
    dialect.error_info(m).code
}

/// Asserts `out` is exactly one ERROR for `id` with `code`.
fn assert_error(dialect: Dialect, out: &[Message], id: u16, code: u64, what: &str) {
    match out {
        [m] if m.kind == MessageType::Error && m.request_id() == Some(id) => {
            assert_eq!(
                error_code(dialect, m),
                Some(code),
                "{what}: wrong error code in {m}"
            );
        }
        other => panic!("{what}: expected ERROR {code} for {id}, got {other:?}"),
    }
}

/// Asserts the malformed reply or silence, as the decode outcome says (§7.2); a frame above the
/// body limit closes the connection without an answer.
fn assert_dropped(dialect: Dialect, outcome: Outcome, out: &[Message], closed_by_framing: bool) {
    match outcome {
        Outcome::DropAndError { stream_id } => {
            assert_error(dialect, out, stream_id, 400, "malformed request")
        }
        Outcome::Close => {
            assert!(
                out.is_empty(),
                "a frame above the limit was answered with {out:?}"
            );
            assert!(
                closed_by_framing,
                "a frame above the body limit did not close"
            );
        }
        _ => assert!(
            out.is_empty(),
            "a dropped message was answered with {out:?}"
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// Server side
// ---------------------------------------------------------------------------------------------

fn run_server(u: &mut Unstructured<'_>) -> Result<()> {
    let (config, transport) = server_fuzz::config(u)?;
    let mut check = ServerCheck::new(config, transport);
    let dialect = draw::dialect(u)?;
    let flavour = draw::flavour(u)?;
    // A CONNECT the server can accept, or an odd one it must refuse.
    let mut connect =
        Message::new(MessageType::Connect).with_stream_id(draw::pick(u, &[1, 7, u16::MAX])?);
    connect.payload = Some(Value::Array(vec![
        Value::from("alice"),
        Value::from("dev01"),
        Value::from("s3cr3t"),
    ]));
    match u.int_in_range(0..=7)? {
        0 => connect.keep_alive = Some(draw::pick(u, &[0, 4, 1801, u32::MAX])?),
        1 => {
            connect.auth_type = Some(AuthType::Certificate);
            connect.payload = Some(Value::from(CLIENT_CERT_PEM));
        }
        2 if dialect == Dialect::Draft2026 => {
            connect.pson_version = Some(draw::pick(u, &[0, 1, 2])?)
        }
        3 => connect.payload = Some(credentials(u)?),
        _ => connect.keep_alive = Some(30),
    }
    if let Some(frame) = encode(dialect, flavour, &connect) {
        check.input(&frame);
    }
    if u.ratio(7, 8)? {
        check.accept();
    } else {
        check.reject();
    }
    for _ in 0..MAX_STEPS {
        if u.is_empty() || check.is_closed() {
            break;
        }
        server_step(u, &mut check, dialect)?;
    }
    Ok(())
}

fn server_step(u: &mut Unstructured<'_>, check: &mut ServerCheck, dialect: Dialect) -> Result<()> {
    match u.int_in_range(0..=9)? {
        0 => {
            // A keep-alive storm: every one is echoed, once, at once.
            let n = u.int_in_range(1..=64)?;
            let storm = dialect.keep_alive_frame().repeat(n);
            let was_established = check.is_established();
            check.input(&storm);
            if !was_established {
                return Ok(());
            }
            let echoes = check
                .last_out
                .iter()
                .filter(|m| m.kind == MessageType::KeepAlive)
                .count();
            assert_eq!(echoes, n, "{n} keep-alives, {echoes} echoes");
        }
        1 => check.advance(draw::advance(u)?),
        2 => check.to_deadline(),
        3 | 4 => check.command(u)?,
        _ => {
            let known: Vec<u16> = check
                .requests
                .iter()
                .chain(&check.streams)
                .copied()
                .collect();
            let m = odd_message(u, dialect, &known)?;
            let Some(frame) = encode(dialect, draw::flavour(u)?, &m) else {
                return Ok(());
            };
            let expected = received(dialect, check.max_body(), &frame);
            let (requests, streams) = (check.requests.clone(), check.streams.clone());
            let was_established = check.is_established();
            check.input(&frame);
            if was_established {
                expect_server(dialect, &expected, check, &requests, &streams);
            }
        }
    }
    Ok(())
}

/// What the server must do with one message on an established connection (§6.1, §6.4, §6.5.3,
/// §6.11, §7.2).
fn expect_server(
    dialect: Dialect,
    received: &std::result::Result<Message, Outcome>,
    check: &ServerCheck,
    requests: &std::collections::BTreeSet<u16>,
    streams: &std::collections::BTreeSet<u16>,
) {
    let out = check.last_out.as_slice();
    let events = check.last_events.as_slice();
    let closed_by_framing = matches!(
        events.last(),
        Some(ServerEvent::Closed(CloseReason::Framing(_)))
    );
    let m = match received {
        Ok(m) => m,
        Err(outcome) => {
            assert_dropped(dialect, *outcome, out, closed_by_framing);
            // Closing reports the open streams as ended, then Closed; a drop raises nothing.
            if !closed_by_framing {
                assert!(events.is_empty(), "a dropped message raised {events:?}");
            }
            return;
        }
    };
    let id = m.request_id();
    match (m.kind, id) {
        (MessageType::KeepAlive, _) => assert!(
            matches!(out, [k] if k.kind == MessageType::KeepAlive),
            "keep-alive echo: {out:?}"
        ),
        (MessageType::Connect, Some(id)) => assert_error(dialect, out, id, 400, "second CONNECT"),
        (MessageType::Run | MessageType::StartStream, Some(id)) => {
            assert_error(dialect, out, id, 501, "device request")
        }
        (MessageType::StopStream, Some(id)) => {
            assert_error(dialect, out, id, 404, "device STOP_STREAM")
        }
        (MessageType::Describe, Some(id)) => match out {
            [ok] if ok.kind == MessageType::Ok && ok.request_id() == Some(id) => {
                assert_eq!(
                    ok.payload,
                    Some(Value::Map(Map::new())),
                    "device DESCRIBE is answered with {{}}"
                );
            }
            other => panic!("device DESCRIBE answered with {other:?}"),
        },
        (MessageType::Disconnect, _) => {
            match id {
                Some(id) => assert!(
                    matches!(out, [ok] if ok.kind == MessageType::Ok && ok.request_id() == Some(id)),
                    "DISCONNECT answer {out:?}"
                ),
                None => assert!(
                    out.is_empty(),
                    "DISCONNECT without id answered with {out:?}"
                ),
            }
            assert!(check.is_closed(), "DISCONNECT did not close");
            assert!(
                matches!(
                    events.last(),
                    Some(ServerEvent::Closed(CloseReason::PeerDisconnect { .. }))
                ),
                "{events:?}"
            );
        }
        (MessageType::Ok | MessageType::Error, Some(id)) if requests.contains(&id) => {
            assert!(out.is_empty(), "an answer was answered: {out:?}");
            assert!(
                matches!(events, [ServerEvent::Answered { id: a, .. }] if *a == id),
                "answer to {id} gave {events:?}"
            );
        }
        (MessageType::Ok | MessageType::Error, Some(id)) if streams.contains(&id) => {
            // A stream's answer opens, refuses or finishes it; at most a STOP_STREAM goes out.
            assert!(
                out.iter()
                    .all(|s| s.kind == MessageType::StopStream && s.request_id() == Some(id)),
                "{out:?}"
            );
        }
        (MessageType::StreamData, Some(id)) if streams.contains(&id) => {
            assert!(out.is_empty(), "STREAM_DATA answered with {out:?}");
        }
        // Fire-and-forget, answers to nothing, data for unknown streams, requests without ids:
        // silence (§6.4).
        _ => {
            assert!(out.is_empty(), "{m} must not be answered, got {out:?}");
            assert!(events.is_empty(), "{m} must raise no event, got {events:?}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Client side
// ---------------------------------------------------------------------------------------------

fn run_client(u: &mut Unstructured<'_>) -> Result<()> {
    let config = client_fuzz::config(u)?;
    let mut check = ClientCheck::new(config);
    let dialect = check.dialect();
    // The server's answer to CONNECT: usually OK, sometimes an ERROR or something unrelated.
    let answer = match u.int_in_range(0..=7)? {
        0 => dialect.error_message(check.connect_id(), Some(2), None),
        1 => odd_message(u, dialect, &[check.connect_id()])?,
        _ => Message::ok(check.connect_id()),
    };
    if let Some(frame) = encode(dialect, draw::flavour(u)?, &answer) {
        check.input(&frame);
    }
    for _ in 0..MAX_STEPS {
        if u.is_empty() || check.client.is_closed() {
            break;
        }
        client_step(u, &mut check, dialect)?;
    }
    Ok(())
}

fn client_step(u: &mut Unstructured<'_>, check: &mut ClientCheck, dialect: Dialect) -> Result<()> {
    match u.int_in_range(0..=9)? {
        0 => {
            let n = u.int_in_range(1..=64)?;
            check.input(&dialect.keep_alive_frame().repeat(n));
            assert!(
                check.last_out.is_empty(),
                "a client answered keep-alives with {:?}",
                check.last_out
            );
        }
        1 => check.advance(draw::advance(u)?),
        2 => check.to_deadline(),
        3 | 4 => check.command(u)?,
        _ => {
            let known: Vec<u16> = check.client.streams().iter().map(|s| s.id).collect();
            let m = odd_message(u, dialect, &known)?;
            let Some(frame) = encode(dialect, draw::flavour(u)?, &m) else {
                return Ok(());
            };
            let expected = received(dialect, check.max_body(), &frame);
            let streams_before: Vec<u16> = check.client.streams().iter().map(|s| s.id).collect();
            let connected = check.client.is_connected();
            check.input(&frame);
            if connected {
                expect_client(dialect, &expected, check, &streams_before);
            }
        }
    }
    Ok(())
}

fn declared(resource: Option<&Value>) -> Option<ResourceKind> {
    let name = resource_name(resource?)?;
    draw::RESOURCES
        .iter()
        .find(|(n, _)| *n == name.as_str())
        .map(|(_, k)| *k)
}

/// What a connected device must do with one message (§6.4 to §6.7, §6.11, §7.2).
fn expect_client(
    dialect: Dialect,
    received: &std::result::Result<Message, Outcome>,
    check: &ClientCheck,
    streams_before: &[u16],
) {
    let out = check.last_out.as_slice();
    let events = check.last_events.as_slice();
    let closed_by_framing = matches!(
        events.last(),
        Some(ClientEvent::Closed(CloseReason::Framing(_)))
    );
    let m = match received {
        Ok(m) => m,
        Err(outcome) => {
            assert_dropped(dialect, *outcome, out, closed_by_framing);
            return;
        }
    };
    let id = m.request_id();
    let kind = declared(m.resource.as_ref());
    let busy = |out: &[Message], id: u16| matches!(out, [e] if e.kind == MessageType::Error && e.request_id() == Some(id) && error_code(dialect, e) == Some(503));
    match (m.kind, id) {
        (MessageType::KeepAlive | MessageType::StreamData | MessageType::Connect, _) => {
            assert!(
                out.is_empty() && events.is_empty(),
                "{m} gave {out:?} {events:?}"
            );
        }
        (MessageType::Run, _) if kind.is_none() => match id {
            Some(id) => assert_error(dialect, out, id, 404, "RUN of an unknown resource"),
            None => assert!(out.is_empty(), "fire-and-forget RUN answered: {out:?}"),
        },
        (MessageType::Run, _) => {
            // Beyond the limit a RUN with an id gets 503, a fire-and-forget one is dropped.
            let ran = matches!(events, [ClientEvent::Run(r)] if r.fire_and_forget == id.is_none());
            let refused = match id {
                Some(id) => busy(out, id),
                None => out.is_empty() && events.is_empty(),
            };
            assert!(
                ran && out.is_empty() || refused,
                "RUN gave {out:?} {events:?}"
            );
        }
        (MessageType::Describe | MessageType::StartStream | MessageType::StopStream, None) => {
            assert!(
                out.is_empty() && events.is_empty(),
                "{m} without id gave {out:?} {events:?}"
            );
        }
        (MessageType::Describe, Some(id)) => match (&m.resource, kind) {
            (None, _) => match out {
                [ok] if ok.kind == MessageType::Ok && ok.request_id() == Some(id) => {
                    assert_eq!(
                        ok.payload,
                        Some(client_fuzz::resources().describe_all()),
                        "DESCRIBE of all"
                    );
                }
                other => panic!("DESCRIBE of all answered with {other:?}"),
            },
            (Some(_), None) => {
                assert_error(dialect, out, id, 404, "DESCRIBE of an unknown resource")
            }
            (Some(_), Some(ResourceKind::Action)) => {
                assert!(
                    matches!(out, [ok] if ok.kind == MessageType::Ok && ok.payload == Some(Value::Map(Map::new()))),
                    "{out:?}"
                );
            }
            (Some(_), Some(_)) => assert!(
                out.is_empty() && matches!(events, [ClientEvent::ValueNeeded { .. }])
                    || busy(out, id),
                "DESCRIBE of a resource gave {out:?} {events:?}"
            ),
        },
        (MessageType::StartStream, Some(id)) => {
            let refused = match (&m.resource, kind) {
                (Some(_), None) => Some(404),
                (Some(_), Some(ResourceKind::Action)) => Some(400),
                (None, _) if !streams_before.contains(&id) => Some(404),
                _ => None,
            };
            match refused {
                Some(code) => assert_error(dialect, out, id, code, "START_STREAM"),
                None => match out.first() {
                    Some(ok) if ok.kind == MessageType::Ok && ok.request_id() == Some(id) => {
                        assert!(
                            matches!(events.first(), Some(ClientEvent::StreamStarted { id: s, .. }) if *s == id),
                            "{events:?}"
                        );
                        assert!(
                            check.client.streams().iter().any(|s| s.id == id),
                            "started stream {id} not in the table"
                        );
                    }
                    _ => assert!(busy(out, id), "START_STREAM answered with {out:?}"),
                },
            }
        }
        (MessageType::StopStream, Some(id)) => {
            if streams_before.contains(&id) {
                assert!(
                    matches!(out, [ok] if ok.kind == MessageType::Ok && ok.request_id() == Some(id)),
                    "STOP answered {out:?}"
                );
                assert!(
                    matches!(events, [ClientEvent::StreamStopped { id: s }] if *s == id),
                    "{events:?}"
                );
            } else {
                assert_error(dialect, out, id, 404, "STOP_STREAM of an unknown stream");
            }
            assert!(
                check.client.streams().iter().all(|s| s.id != id),
                "stopped stream still in the table"
            );
        }
        (MessageType::Disconnect, _) => {
            match id {
                Some(id) => assert!(
                    matches!(out, [ok] if ok.kind == MessageType::Ok && ok.request_id() == Some(id)),
                    "{out:?}"
                ),
                None => assert!(out.is_empty(), "{out:?}"),
            }
            assert!(
                matches!(
                    events.last(),
                    Some(ClientEvent::Closed(CloseReason::PeerDisconnect { .. }))
                ),
                "{events:?}"
            );
        }
        (MessageType::Ok | MessageType::Error, _) => {
            // Answers only ever resolve this side's own requests (the harness checks the ids).
            assert!(out.is_empty(), "an answer was answered: {out:?}");
        }
    }
}
