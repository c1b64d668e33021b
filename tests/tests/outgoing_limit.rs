//! The bounded outgoing queue of a server session (`ServerConfig::max_outgoing`): requests of
//! the application are refused once half of it is queued, and a device that keeps sending while
//! never reading what it is sent is closed with `CloseReason::SlowConsumer`.

use iotmp_proto::server::TransportInfo;
use iotmp_proto::{
    CloseReason, CommandError, Dialect, Flavour, Instant, Message, MessageType, ServerConfig,
    ServerEvent, ServerSession, Value,
};

fn established(max_outgoing: usize) -> ServerSession {
    let config = ServerConfig {
        max_outgoing,
        ..ServerConfig::default()
    };
    let mut s = ServerSession::new(config, TransportInfo::default(), Instant::ZERO);
    let connect = Message::new(MessageType::Connect)
        .with_stream_id(1)
        .with_payload(Value::Array(vec!["a".into(), "d".into(), "c".into()]));
    let mut bytes = Vec::new();
    Dialect::Draft2026
        .encode(&connect, Flavour::V2, &mut bytes)
        .unwrap();
    s.handle_input(Instant::ZERO, &bytes);
    assert!(matches!(s.poll_event(), Some(ServerEvent::Authenticate(_))));
    s.accept(Instant::ZERO).unwrap();
    s
}

#[test]
fn requests_wait_for_room_in_the_queue() {
    let mut s = established(1000);
    let mut sent = 0;
    let refused = loop {
        match s.run(
            Instant::ZERO,
            "r",
            Some(Value::from("x".repeat(100).as_str())),
        ) {
            Ok(_) => sent += 1,
            Err(e) => break e,
        }
    };
    assert_eq!(refused, CommandError::OutputFull);
    assert!(s.pending_output() >= 500 && s.pending_output() < 700);
    assert!(sent >= 4);
    // Once the device read its bytes, requests go out again.
    let mut out = Vec::new();
    s.poll_transmit(&mut out);
    assert!(s.run(Instant::ZERO, "r", None).is_ok());
}

#[test]
fn a_device_that_sends_but_never_reads_is_closed() {
    let mut s = established(1000);
    let mut out = Vec::new();
    s.poll_transmit(&mut out); // the OK
    while s.poll_event().is_some() {}
    // Each KEEP_ALIVE is answered: 2 bytes queued per 2 bytes sent, never drained.
    let keep_alive = Dialect::Draft2026.keep_alive_frame();
    let mut closed = None;
    for _ in 0..1000 {
        s.handle_input(Instant::ZERO, keep_alive);
        if let Some(ServerEvent::Closed(reason)) = s.poll_event() {
            closed = Some(reason);
            break;
        }
    }
    assert_eq!(closed, Some(CloseReason::SlowConsumer));
    assert_eq!(s.pending_output(), 0, "the queue is dropped");
    assert!(s.is_closed());
}
