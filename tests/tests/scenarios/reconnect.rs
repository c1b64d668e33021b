//! Sinks survive a device reconnect (spec §6.9, §6.11): the link is cut, both sessions end,
//! the device comes back with a new session in the other dialect, and the hub re-opens what the
//! sinks need with new stream ids; deliveries resume.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use iotmp_proto::fanout::SinkId;
use iotmp_proto::server::ServerEvent;
use iotmp_proto::{CloseReason, DeviceResources, Dialect, Instant, Value};
use iotmp_tests::pair::{Pair, alice_config};

use crate::common::{at, device_close, server_close, server_config};

in_both_dialects!(reconnect_sinks_survive);

const A: SinkId = 1;
const E: SinkId = 2;

/// `temp` reads 20, 21, 22, … across sessions (the counter outlives the device session).
fn counting(counter: &Arc<AtomicU32>) -> DeviceResources {
    let counter = counter.clone();
    DeviceResources::new().output("temp", move || {
        Ok(Value::from(20 + counter.fetch_add(1, Ordering::SeqCst)))
    })
}

fn other(dialect: Dialect) -> Dialect {
    match dialect {
        Dialect::Draft2020 => Dialect::Draft2026,
        Dialect::Draft2026 => Dialect::Draft2020,
    }
}

/// Streams the server opened (ids), with the times of the OKs.
fn opened(pair: &Pair) -> Vec<(Instant, u16)> {
    pair.server_events
        .iter()
        .filter_map(|(t, e)| match e {
            ServerEvent::StreamOpened { id, .. } => Some((*t, *id)),
            _ => None,
        })
        .collect()
}

/// Sink A = 1 (every 5 s) and event-only sink E = 2 join; the link is cut at 12 s; at 20 s the
/// device reconnects in the other dialect.
fn reconnect_sinks_survive(dialect: Dialect) {
    let counter = Arc::new(AtomicU32::new(0));
    let config = alice_config(dialect).with_keep_alive(60);
    let mut pair = Pair::new(config, counting(&counter), server_config());
    pair.run_until(at(1.0));
    pair.join("temp", A, 5);
    pair.join("temp", E, 0);
    pair.run_until(at(12.0));
    pair.cut();
    pair.run_until(at(20.0));
    assert_eq!(
        device_close(&pair),
        Some((at(12.0), CloseReason::TransportClosed))
    );
    assert_eq!(
        server_close(&pair),
        Some((at(12.0), CloseReason::TransportClosed))
    );
    let before = opened(&pair);
    pair.reconnect(
        alice_config(other(dialect)).with_keep_alive(60),
        counting(&counter),
    );
    pair.run_until(at(31.0));

    assert!(pair.device.session().is_connected() && pair.server.is_established());
    assert_eq!(pair.server.dialect(), Some(other(dialect)));
    let after: Vec<_> = opened(&pair).into_iter().skip(before.len()).collect();
    let v = |n: u32| Value::from(n);
    let of = |sink: SinkId| -> Vec<(Instant, Value)> {
        pair.deliveries
            .iter()
            .filter(|(_, _, s, _)| *s == sink)
            .map(|(t, _, _, v)| (*t, v.clone()))
            .collect()
    };
    match dialect {
        // 2026 first: a sampling (101) and an event stream (102); then one 2020 stream (1)
        // whose samples E gets when they change (every value changes here).
        Dialect::Draft2026 => {
            assert_eq!(before, [(at(1.0), 101), (at(1.0), 102)]);
            assert_eq!(after, [(at(20.0), 1)]);
            assert_eq!(
                of(A),
                [
                    (at(1.0), v(20)),
                    (at(6.0), v(22)),
                    (at(11.0), v(23)),
                    (at(20.0), v(24)),
                    (at(25.0), v(25)),
                    (at(30.0), v(26))
                ]
            );
            assert_eq!(
                of(E),
                [
                    (at(1.0), v(21)),
                    (at(20.0), v(24)),
                    (at(25.0), v(25)),
                    (at(30.0), v(26))
                ]
            );
        }
        // 2020 first: one stream (101), E gets the cached value and the changes; then 2026
        // opens a sampling (1) and an event stream (2). Both START_STREAMs reach the device in
        // one read, so one read of temp (23) serves both first values; the next read (24) finds
        // no stream waiting for it.
        Dialect::Draft2020 => {
            assert_eq!(before, [(at(1.0), 101)]);
            assert_eq!(after, [(at(20.0), 1), (at(20.0), 2)]);
            assert_eq!(
                of(A),
                [
                    (at(1.0), v(20)),
                    (at(6.0), v(21)),
                    (at(11.0), v(22)),
                    (at(20.0), v(23)),
                    (at(25.0), v(25)),
                    (at(30.0), v(26))
                ]
            );
            assert_eq!(
                of(E),
                [
                    (at(1.0), v(20)),
                    (at(6.0), v(21)),
                    (at(11.0), v(22)),
                    (at(20.0), v(23))
                ]
            );
        }
    }

    insta::assert_snapshot!(
        format!("reconnect_sinks_survive_{dialect}"),
        pair.transcript.text()
    );
}
