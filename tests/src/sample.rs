//! The application exchange of parts 1–8 of the spec's session files, as a reusable scenario.

use std::collections::VecDeque;

use iotmp_proto::client::{HandlerError, ServerAction};
use iotmp_proto::server::ServerConfig;
use iotmp_proto::{DeviceResources, Dialect, Map, Message, MessageType, Value};

use crate::pair::{Pair, alice_config};

/// A sensor whose reads follow a script; `None` is a failed read (no data message follows).
/// A sensor whose reads follow a script.
pub fn scripted(
    reads: Vec<Option<Value>>,
) -> impl FnMut() -> Result<Value, HandlerError> + Send + 'static {
    let mut reads: VecDeque<Option<Value>> = reads.into();
    move || match reads.pop_front() {
        Some(Some(v)) => Ok(v),
        _ => Err(HandlerError::new("sensor read failed")),
    }
}

/// The device of the session files: `led`, `temp`, `heading` with scripted reads.
pub fn sample_device() -> DeviceResources {
    let f = |x: f32| Some(Value::F32(x));
    // RUN at part 2, stream values at 10, 15, 20 s; the reads at 25 and 30 s fail (the file
    // shows no samples there); 31 and 41 s.
    let temp = scripted(vec![
        f(21.5),
        f(21.5),
        f(21.75),
        f(22.0),
        None,
        None,
        f(22.25),
        f(22.5),
    ]);
    let heading = scripted(vec![f(87.5), f(92.5)]);
    let mut off = Map::new();
    off.insert("on", false);
    DeviceResources::new()
        .input("led", Value::Map(off), |_| Ok(()))
        .output("temp", temp)
        .output("heading", heading)
}

/// Server stream ids start at 101, as in the files.
pub fn server_config() -> ServerConfig {
    ServerConfig {
        first_stream_id: 101,
        ..ServerConfig::default()
    }
}

/// A map from pairs.
pub fn map(pairs: &[(&str, Value)]) -> Value {
    Value::Map(pairs.iter().map(|(k, v)| (*k, v.clone())).collect())
}

/// Parts 1–8: one connection through the whole application exchange.
pub fn main_exchange(dialect: Dialect) -> Pair {
    let config = alice_config(dialect).with_keep_alive(30);
    let mut pair = Pair::new(config, sample_device(), server_config());
    pair.run_until(Pair::at(0.0));
    // 1. The server describes the device.
    pair.on_server(|s, now| s.describe(now, None)).unwrap();
    pair.on_server(|s, now| s.describe(now, Some("led".into())))
        .unwrap();
    // 2. GET and POST.
    pair.on_server(|s, now| s.run(now, "temp", None)).unwrap();
    pair.on_server(|s, now| s.run(now, "led", Some(map(&[("on", true.into())]))))
        .unwrap();
    // 3–5. A sampling stream, reconfigured, then stopped.
    pair.run_until(Pair::at(10.0));
    let id = pair
        .on_server(|s, now| s.start_stream(now, "temp", 5000))
        .unwrap();
    pair.run_until(Pair::at(31.0));
    pair.on_server(|s, now| s.reconfigure_stream(now, id, 10_000))
        .unwrap();
    pair.run_until(Pair::at(45.0));
    pair.on_server(|s, now| s.stop_stream(now, id)).unwrap();
    // 6. An event stream, and the application streaming an event.
    pair.run_until(Pair::at(46.0));
    pair.on_server(|s, now| s.start_stream(now, "heading", 0))
        .unwrap();
    pair.run_until(Pair::at(47.0));
    assert_eq!(pair.on_device(|d, now| d.stream(now, "heading")), Ok(true));
    // 7. Errors, fire and forget, and a server action the server does not implement.
    pair.run_until(Pair::at(48.0));
    pair.on_server(|s, now| s.run(now, "nope", None)).unwrap();
    pair.on_server(|s, _| {
        s.send_unchecked(&Message::new(MessageType::StopStream).with_stream_id(999))
    })
    .unwrap();
    let forget = Message::new(MessageType::Run)
        .with_resource("led")
        .with_payload(map(&[("on", false.into())]));
    pair.on_server(|s, _| s.send_unchecked(&forget)).unwrap();
    pair.on_device(|d, now| {
        d.client().run_action(
            now,
            ServerAction::WriteBucket,
            "readings",
            Some(map(&[("t", Value::F32(21.5))])),
        )
    })
    .unwrap();
    // 8. Orderly disconnect.
    pair.run_until(Pair::at(49.0));
    pair.on_device(|d, now| d.client().disconnect(now, Some("shutdown".into()), true))
        .unwrap();
    pair.run_until(Pair::at(50.0));
    assert!(
        pair.device_closed() && pair.server_closed(),
        "both ends close after part 8"
    );
    pair
}
