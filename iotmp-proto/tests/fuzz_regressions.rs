//! Bugs the session fuzz targets (`fuzz/`, `session_*`) found, pinned as plain tests.

// Test helpers may unwrap: a failed expectation must stop the test loudly.
#![allow(clippy::unwrap_used)]

use core::time::Duration;

use iotmp_proto::client::{ResourceKind, Resources};
use iotmp_proto::frame::Deframer;
use iotmp_proto::server::TransportInfo;
use iotmp_proto::{
    Client, ClientConfig, ClientEvent, CloseReason, Dialect, Instant, Message, ServerConfig,
    ServerSession, Value,
};

fn connected_client(dialect: Dialect) -> Client {
    let mut config = ClientConfig::new(dialect, "alice", "dev01", "s3cr3t");
    config.request_timeout = Duration::from_secs(1);
    let resources = Resources::new().with("temp", ResourceKind::Output);
    let mut client = Client::new(config, resources, Instant::ZERO).unwrap();
    let mut out = Vec::new();
    client.poll_transmit(&mut out);
    let mut input = &out[..];
    let mut deframer = Deframer::default();
    let frame = deframer.next_frame(&mut input).unwrap().unwrap();
    let connect = dialect.decode(frame.type_code, frame.body).unwrap();
    let mut ok = Vec::new();
    dialect
        .encode(
            &Message::ok(connect.stream_id.unwrap()),
            iotmp_proto::Flavour::V2,
            &mut ok,
        )
        .unwrap();
    client.handle_input(Instant::ZERO, &ok);
    client.poll_transmit(&mut Vec::new());
    assert_eq!(client.poll_event(), Some(ClientEvent::Connected));
    client
}

fn events(client: &mut Client) -> Vec<ClientEvent> {
    std::iter::from_fn(|| client.poll_event()).collect()
}

/// A DISCONNECT waiting for its OK times out in the same `handle_timeout` as a RUN sent after
/// it: the session closes, and `Closed` must be the last event (it used to be followed by the
/// RUN's `RequestTimedOut`).
#[test]
fn closed_stays_last_when_disconnect_and_run_time_out_together() {
    for dialect in [Dialect::Draft2020, Dialect::Draft2026] {
        let mut client = connected_client(dialect);
        let now = Instant::from_millis(100);
        client.disconnect(now, None, true).unwrap();
        // The DISCONNECT is outstanding, so the RUN gets the next (higher) id.
        let run = client.run(now, "lamp", None, false).unwrap();
        assert!(run.is_some());
        client.handle_timeout(now + Duration::from_secs(2));
        let events = events(&mut client);
        assert_eq!(
            events.last(),
            Some(&ClientEvent::Closed(CloseReason::LocalDisconnect)),
            "{dialect}: {events:?}"
        );
        assert_eq!(
            events.len(),
            1,
            "{dialect}: nothing may follow or precede Closed here: {events:?}"
        );
        assert!(client.poll_event().is_none());
    }
}

/// A CONNECT with stream id 0 has no stream id (spec §6.4): the server closes without an answer
/// (§6.1 step 3). It used to go on and refuse it with an ERROR carrying id 0.
#[test]
fn connect_with_stream_id_zero_is_closed_without_an_answer() {
    for dialect in [Dialect::Draft2020, Dialect::Draft2026] {
        // Credentials of the wrong shape, so that before the fix it was refused with ERROR 2.
        let connect = Message::new(iotmp_proto::MessageType::Connect)
            .with_stream_id(0)
            .with_payload(Value::Array(vec![Value::from("alice")]));
        let mut frame = Vec::new();
        dialect
            .encode(&connect, iotmp_proto::Flavour::V2, &mut frame)
            .unwrap();
        let mut session = ServerSession::new(
            ServerConfig::default(),
            TransportInfo::default(),
            Instant::ZERO,
        );
        session.handle_input(Instant::ZERO, &frame);
        let mut out = Vec::new();
        session.poll_transmit(&mut out);
        assert!(out.is_empty(), "{dialect}: answered with {out:02X?}");
        assert_eq!(
            session.poll_event(),
            Some(iotmp_proto::ServerEvent::Closed(CloseReason::NotConnect)),
            "{dialect}"
        );
    }
}

/// The first frame of `bytes`, decoded.
fn first_message(dialect: Dialect, bytes: &[u8]) -> Message {
    let mut input = bytes;
    let mut deframer = Deframer::default();
    let frame = deframer.next_frame(&mut input).unwrap().unwrap();
    dialect.decode(frame.type_code, frame.body).unwrap()
}

/// A RUN answered with an output 2020 cannot carry (an integer below -2^63): `respond` used to
/// close the whole session with `Overload` and then report `Closed`. Now the command fails with
/// `Encode`, nothing is sent, and the RUN can still be answered.
#[test]
fn respond_with_an_unsendable_output_fails_and_keeps_the_run() {
    let dialect = Dialect::Draft2020;
    let mut client = connected_client(dialect);
    let now = Instant::from_millis(10);
    let run = Message::new(iotmp_proto::MessageType::Run)
        .with_stream_id(9)
        .with_resource("temp");
    let mut frame = Vec::new();
    dialect
        .encode(&run, iotmp_proto::Flavour::V2, &mut frame)
        .unwrap();
    client.handle_input(now, &frame);
    let Some(ClientEvent::Run(request)) = client.poll_event() else {
        panic!("no RUN event");
    };
    let huge = iotmp_proto::client::RunOutput::value(Value::NegInt(u64::MAX));
    let result = client.respond(now, request.id, Ok(huge));
    assert!(
        matches!(result, Err(iotmp_proto::CommandError::Encode(_))),
        "{result:?}"
    );
    assert!(!client.is_closed());
    let mut out = Vec::new();
    client.poll_transmit(&mut out);
    assert!(out.is_empty(), "sent {out:02X?}");
    client
        .respond(
            now,
            request.id,
            Ok(iotmp_proto::client::RunOutput::value(21)),
        )
        .unwrap();
    client.poll_transmit(&mut out);
    let ok = first_message(dialect, &out);
    assert_eq!(
        (ok.kind, ok.stream_id),
        (iotmp_proto::MessageType::Ok, Some(9))
    );
    assert_eq!(ok.payload, Some(Value::UInt(21)));
    assert!(client.poll_event().is_none());
}

/// The same for a value read: the DESCRIBE waiting for it stays waiting until a sendable value
/// (or a failure) is provided.
#[test]
fn provide_value_with_an_unsendable_value_fails_and_keeps_waiting() {
    let dialect = Dialect::Draft2020;
    let mut client = connected_client(dialect);
    let now = Instant::from_millis(10);
    let describe = Message::new(iotmp_proto::MessageType::Describe)
        .with_stream_id(5)
        .with_resource("temp");
    let mut frame = Vec::new();
    dialect
        .encode(&describe, iotmp_proto::Flavour::V2, &mut frame)
        .unwrap();
    client.handle_input(now, &frame);
    assert!(matches!(
        client.poll_event(),
        Some(ClientEvent::ValueNeeded { .. })
    ));
    let result = client.provide_value(now, "temp", Ok(Value::NegInt(u64::MAX)));
    assert!(
        matches!(result, Err(iotmp_proto::CommandError::Encode(_))),
        "{result:?}"
    );
    assert!(!client.is_closed());
    let mut out = Vec::new();
    client.poll_transmit(&mut out);
    assert!(out.is_empty(), "sent {out:02X?}");
    client
        .provide_value(now, "temp", Ok(Value::UInt(3)))
        .unwrap();
    client.poll_transmit(&mut out);
    let ok = first_message(dialect, &out);
    assert_eq!(
        (ok.kind, ok.stream_id),
        (iotmp_proto::MessageType::Ok, Some(5))
    );
}

/// `Device` turns an output its handler cannot get onto the wire into a handler failure: the
/// RUN is answered with ERROR 500 and the session stays up.
#[test]
fn device_answers_an_unsendable_output_with_error_500() {
    let dialect = Dialect::Draft2020;
    let config = ClientConfig::new(dialect, "alice", "dev01", "s3cr3t");
    let resources =
        iotmp_proto::DeviceResources::new().output("temp", || Ok(Value::NegInt(u64::MAX)));
    let mut device = iotmp_proto::Device::new(config, resources, Instant::ZERO).unwrap();
    let mut out = Vec::new();
    device.poll_transmit(&mut out);
    let connect = first_message(dialect, &out);
    let mut input = Vec::new();
    for m in [
        Message::ok(connect.stream_id.unwrap()),
        Message::new(iotmp_proto::MessageType::Run)
            .with_stream_id(9)
            .with_resource("temp"),
    ] {
        dialect
            .encode(&m, iotmp_proto::Flavour::V2, &mut input)
            .unwrap();
    }
    device.handle_input(Instant::ZERO, &input);
    out.clear();
    device.poll_transmit(&mut out);
    let error = first_message(dialect, &out);
    assert_eq!(
        (error.kind, error.stream_id),
        (iotmp_proto::MessageType::Error, Some(9))
    );
    assert_eq!(dialect.error_info(&error).code, Some(500));
    assert!(!device.session().is_closed());
}
