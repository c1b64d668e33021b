//! Parts 10 and 11 of `vectors/sessions-2020.txt` / `sessions-2026.txt`, replayed against a real
//! server session: part 10 drives the GCD fan-out ([`DeviceStreams`]) with sink joins and leaves
//! and the device's values at the file's times; part 11 is a legacy Protoson client. The device
//! side replays the file's own frames (answering each START_STREAM / STOP_STREAM with the OK the
//! file leaves out); the server's frames and the deliveries to sinks must match the file.

use iotmp_proto::fanout::{Delivery, SinkId};
use iotmp_proto::frame::Deframer;
use iotmp_proto::hub::DeviceStreams;
use iotmp_proto::server::{ServerConfig, ServerEvent, ServerSession, TransportInfo};
use iotmp_proto::{Dialect, Flavour, Instant, Message, MessageType, Text, Value};
use iotmp_tests::pair::Pair;
use iotmp_tests::sessions::parse;
use iotmp_tests::transcript::Direction;
use iotmp_tests::{hex_string, load_text};

/// A server session with a hub, driven by hand.
struct Server {
    session: ServerSession,
    hub: DeviceStreams,
    dialect: Dialect,
    /// What happened, as comparable lines.
    log: Vec<String>,
}

impl Server {
    fn new(dialect: Dialect, first_stream_id: u16, connect: &[u8]) -> Self {
        let config = ServerConfig {
            first_stream_id,
            ..ServerConfig::default()
        };
        let mut session = ServerSession::new(config, TransportInfo::default(), Instant::ZERO);
        session.handle_input(Instant::ZERO, connect);
        match session.poll_event() {
            Some(ServerEvent::Authenticate(_)) => session.accept(Instant::ZERO).unwrap(),
            other => panic!("expected an authentication request, got {other:?}"),
        }
        let mut server = Server {
            session,
            hub: DeviceStreams::new(),
            dialect,
            log: Vec::new(),
        };
        server.flush(Instant::ZERO);
        server
    }

    fn sink(letter: &str) -> SinkId {
        letter.bytes().next().map_or(0, u64::from)
    }

    /// Logs what the server sent and routes its events; the device answers OK to stream requests.
    fn flush(&mut self, now: Instant) {
        let mut out = Vec::new();
        self.session.poll_transmit(&mut out);
        let mut deframer = Deframer::default();
        let mut input = &out[..];
        let mut answers = Vec::new();
        while let Ok(Some(frame)) = deframer.next_frame(&mut input) {
            let mut whole = Vec::new();
            iotmp_proto::frame::write_header(&mut whole, frame.type_code, frame.body.len() as u32);
            whole.extend_from_slice(frame.body);
            self.log.push(format!("S->C {}", hex_string(&whole)));
            if let Ok(m) = self.dialect.decode(frame.type_code, frame.body)
                && matches!(m.kind, MessageType::StartStream | MessageType::StopStream)
                && let Some(id) = m.stream_id
            {
                answers.push(id);
            }
        }
        for id in answers {
            let mut ok = Vec::new();
            self.dialect
                .encode(&Message::ok(id), Flavour::V2, &mut ok)
                .unwrap();
            self.session.handle_input(now, &ok);
        }
        let mut deliveries: Vec<(Text, Delivery)> = Vec::new();
        while let Some(event) = self.session.poll_event() {
            self.hub.handle_event(now, &event, &mut deliveries);
        }
        for (_, d) in deliveries {
            self.deliver(d);
        }
        let mut rest = Vec::new();
        if self.session.poll_transmit(&mut rest) > 0 {
            panic!(
                "answering OK made the server send more: {}",
                hex_string(&rest)
            );
        }
    }

    fn deliver(&mut self, d: Delivery) {
        let letter = char::from(u8::try_from(d.sink).unwrap_or(b'?'));
        self.log
            .push(format!("deliver {} to sink {letter}", d.value));
    }
}

/// `t=7     sink B joins (interval 9 s)` → (7.0, "B", 9); events only → 0.
fn sink_line(line: &str) -> Option<(f64, String, Option<u32>)> {
    let rest = line.strip_prefix("t=")?;
    let (time, rest) = rest.split_once(char::is_whitespace)?;
    let rest = rest.trim_start().strip_prefix("sink ")?;
    let (name, what) = rest.split_once(' ')?;
    let interval = if what.starts_with("joins (interval ") {
        Some(
            what.trim_start_matches("joins (interval ")
                .split(' ')
                .next()?
                .parse()
                .ok()?,
        )
    } else if what.starts_with("joins") {
        Some(0)
    } else if what.starts_with("leaves") {
        None
    } else {
        return None;
    };
    Some((time.parse().ok()?, name.to_owned(), interval))
}

/// `t=0.2         deliver 20 to sink A`.
fn deliver_line(line: &str) -> Option<String> {
    let at = line.find("deliver ")?;
    line.get(at..).map(|s| s.trim().to_owned())
}

fn part_10(dialect: Dialect, file: &str) {
    let text = load_text(file);
    let frames = parse(&text);
    let connect = frames
        .iter()
        .find(|f| f.part == 1)
        .map(|f| f.bytes.clone())
        .unwrap();
    let mut server = Server::new(dialect, 201, &connect);
    server.log.clear();

    // The expected log, and the inputs, from part 10 in file order.
    let mut expected = Vec::new();
    let mut inputs: Vec<(f64, Input)> = Vec::new();
    let mut in_part = false;
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.starts_with("# ") && line.chars().nth(2).is_some_and(|c| c.is_ascii_digit()) {
            in_part = line.starts_with("# 10.");
            continue;
        }
        if !in_part {
            continue;
        }
        if let Some((t, sink, interval)) = sink_line(line) {
            inputs.push((t, Input::Sink(sink, interval)));
        } else if let Some(deliver) = deliver_line(line) {
            expected.push(deliver);
        } else if line.contains("S->C") || line.contains("C->S") {
            let hex: String = lines
                .next()
                .unwrap_or_default()
                .chars()
                .filter(char::is_ascii_hexdigit)
                .collect();
            let bytes = iotmp_tests::hex_bytes(&hex);
            if line.contains("S->C") {
                expected.push(format!("S->C {}", hex_string(&bytes)));
            } else {
                let t = line
                    .trim_start_matches("t=")
                    .split_whitespace()
                    .next()
                    .and_then(|t| t.parse().ok())
                    .unwrap();
                inputs.push((t, Input::Data(bytes)));
            }
        }
    }
    assert!(inputs.len() >= 18, "{file}: part 10 has too few steps");
    for (t, input) in inputs {
        let now = Pair::at(t);
        match input {
            Input::Sink(name, Some(interval)) => {
                let joined = server.hub.join(
                    now,
                    Some(&mut server.session),
                    "temp",
                    Server::sink(&name),
                    interval,
                );
                server.flush(now);
                for d in joined.deliveries {
                    server.deliver(d);
                }
            }
            Input::Sink(name, None) => {
                server
                    .hub
                    .leave(now, Some(&mut server.session), "temp", Server::sink(&name));
                server.flush(now);
            }
            Input::Data(bytes) => {
                server.session.handle_input(now, &bytes);
                server.flush(now);
            }
        }
    }
    assert_eq!(server.log, expected, "{file}: part 10");
}

enum Input {
    Sink(String, Option<u32>),
    Data(Vec<u8>),
}

#[test]
fn session_2020_part_10_fanout() {
    part_10(Dialect::Draft2020, "sessions-2020.txt");
}

#[test]
fn session_2026_part_10_fanout() {
    part_10(Dialect::Draft2026, "sessions-2026.txt");
}

/// Part 11: a legacy client speaking Protoson; the server answers in that flavour and copies
/// START_STREAM's resource into field 3.
#[test]
fn session_2026_part_11_legacy_client() {
    let frames: Vec<_> = parse(&load_text("sessions-2026.txt"))
        .into_iter()
        .filter(|f| f.part == 11)
        .collect();
    assert!(frames.len() >= 7);
    let config = ServerConfig {
        first_stream_id: 101,
        ..ServerConfig::default()
    };
    let mut session = ServerSession::new(config, TransportInfo::default(), Instant::ZERO);
    let now = Instant::ZERO;
    let mut events = Vec::new();
    for frame in &frames {
        let mut sent = Vec::new();
        match frame.direction {
            Direction::DeviceToServer => {
                session.handle_input(now, &frame.bytes);
                while let Some(event) = session.poll_event() {
                    if let ServerEvent::Authenticate(request) = &event {
                        assert_eq!(
                            request.flavour,
                            Flavour::V1,
                            "the flavour comes from the CONNECT payload"
                        );
                        session.accept(now).unwrap();
                    }
                    events.push(event);
                }
                // Whatever the device's frame caused (the OK to CONNECT) is checked next.
                session.poll_transmit(&mut sent);
                if !sent.is_empty() {
                    let next = frames
                        .iter()
                        .skip_while(|f| f.line != frame.line)
                        .nth(1)
                        .unwrap();
                    assert_eq!(
                        hex_string(&sent),
                        hex_string(&next.bytes),
                        "after {}",
                        frame.line
                    );
                }
            }
            Direction::ServerToDevice => {
                let (code, body) = iotmp_tests::whole_frames(&frame.bytes).remove(0);
                let m = Dialect::Draft2026.decode(code, &body).unwrap();
                match m.kind {
                    MessageType::Ok => continue, // produced by accept, checked above
                    MessageType::Run => {
                        session.run(now, m.resource.unwrap(), m.payload).unwrap();
                    }
                    MessageType::StartStream => {
                        session
                            .start_stream(now, m.resource.unwrap(), m.interval_ms.unwrap_or(0))
                            .unwrap();
                    }
                    other => panic!("part 11 has no server {other}"),
                }
                session.poll_transmit(&mut sent);
                assert_eq!(
                    hex_string(&sent),
                    hex_string(&frame.bytes),
                    "{}",
                    frame.line
                );
            }
        }
    }
    assert!(
        events.iter().any(|e| matches!(e, ServerEvent::StreamData { value: Some(Value::F32(v)), .. } if *v == 21.5)),
        "the legacy device's sample reaches the server: {events:?}"
    );
}
