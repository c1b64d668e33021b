//! The delivery path of `iotmp server` under a burst: values a device pushes reach every
//! WebSocket sink of the resource in the order they were pushed, on every runtime. The path
//! batches (the pump drains many events per wake-up, a socket writes what its queue holds);
//! a full sink queue may drop its oldest values, so a sink may miss some, but never sees them
//! out of order and always gets the newest.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed expectation must stop the test loudly"
)]

#[allow(dead_code, reason = "each test crate uses a subset of the helpers")]
mod common;

use std::time::Instant;

use iotmp_proto::{Dialect, Value};

use common::server::*;

/// Values pushed in one burst.
const BURST: u64 = 2_000;

/// Sinks on the same resource.
const SINKS: usize = 3;

fn burst_arrives_in_order(runtime: &str) {
    let registry = Registry::new(&["alice/streamer"]);
    let server = Server::start(&registry, &["--runtime", runtime]);
    let device = device(&server, &registry, "alice/streamer", Dialect::Draft2026);
    server.wait_online("alice", "streamer", &registry.alice);
    let mut sinks: Vec<_> = (0..SINKS)
        .map(|_| {
            websocket(
                server.http(),
                "/v3/users/alice/devices/streamer/resources/alarm",
                &registry.alice,
            )
        })
        .collect();
    for i in 1..=BURST {
        device.stream_value("alarm", Value::UInt(i));
    }
    for (n, ws) in sinks.iter_mut().enumerate() {
        let deadline = Instant::now() + WAIT;
        let mut last = 0;
        let mut received = 0;
        while last < BURST {
            let text = next_text(ws, deadline)
                .unwrap_or_else(|| panic!("sink {n}: stopped after {last} ({received} values)"));
            // The device's current value may come first, when the stream opens.
            if text == "\"quiet\"" {
                continue;
            }
            let value: u64 = text.parse().unwrap_or_else(|_| panic!("sink {n}: {text}"));
            assert!(value > last, "sink {n}: {value} after {last}");
            last = value;
            received += 1;
        }
        assert!(received > 0);
    }
}

#[test]
fn a_burst_reaches_every_sink_in_order_on_smol() {
    burst_arrives_in_order("smol");
}

#[test]
fn a_burst_reaches_every_sink_in_order_on_mio() {
    burst_arrives_in_order("mio");
}

#[test]
fn a_burst_reaches_every_sink_in_order_on_async_std() {
    burst_arrives_in_order("async-std");
}

/// With sink queues larger than the burst nothing may be dropped: the values a socket writes
/// per wake-up in one go (WebSocket frames flushed together, SSE events in one chunk) arrive
/// complete, each once, in order.
fn burst_arrives_whole(runtime: &str) {
    let registry = Registry::new(&["alice/streamer"]);
    let queue = (BURST * 2).to_string();
    let server = Server::start(&registry, &["--runtime", runtime, "--sink-queue", &queue]);
    let device = device(&server, &registry, "alice/streamer", Dialect::Draft2026);
    server.wait_online("alice", "streamer", &registry.alice);
    let path = "/v3/users/alice/devices/streamer/resources/alarm";
    let mut ws = websocket(server.http(), path, &registry.alice);
    let mut sse = Sse::open(server.http(), path, &registry.alice);
    for i in 1..=BURST {
        device.stream_value("alarm", Value::UInt(i));
    }
    let deadline = Instant::now() + WAIT;
    let mut from_ws = Vec::new();
    while from_ws.last() != Some(&BURST) {
        let text = next_text(&mut ws, deadline)
            .unwrap_or_else(|| panic!("WebSocket: stopped after {} values", from_ws.len()));
        if text != "\"quiet\"" {
            from_ws.push(text.parse::<u64>().unwrap());
        }
    }
    let mut from_sse = Vec::new();
    while from_sse.last() != Some(&BURST) {
        let text = sse.next_data();
        if text != "\"quiet\"" {
            from_sse.push(text.parse::<u64>().unwrap());
        }
    }
    let all: Vec<u64> = (1..=BURST).collect();
    assert_eq!(from_ws, all);
    assert_eq!(from_sse, all);
}

#[test]
fn a_burst_reaches_websocket_and_sse_whole_on_mio() {
    burst_arrives_whole("mio");
}

#[test]
fn a_burst_reaches_websocket_and_sse_whole_on_smol() {
    burst_arrives_whole("smol");
}
