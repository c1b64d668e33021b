//! What the scenario groups share: the per-dialect test generator, the sample device, and small
//! readers of a pair's history.

use std::sync::{Arc, Mutex};

use iotmp_proto::client::ClientEvent;
use iotmp_proto::server::{ServerConfig, ServerEvent};
use iotmp_proto::{
    ClientConfig, CloseReason, DeviceResources, Dialect, Instant, Message, MessageType, Value,
};
use iotmp_tests::pair::{Pair, Script, alice_config, sample_resources};
use iotmp_tests::transcript::Direction;
use iotmp_tests::whole_frames;

/// One `#[test]` per dialect for each scenario `fn name(dialect: Dialect)`: `name::d2020` and
/// `name::d2026`.
macro_rules! in_both_dialects {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn d2020() {
                super::$name(iotmp_proto::Dialect::Draft2020);
            }

            #[test]
            fn d2026() {
                super::$name(iotmp_proto::Dialect::Draft2026);
            }
        }
    )*};
}

/// `s` seconds after the start of the run.
pub(crate) fn at(s: f64) -> Instant {
    Pair::at(s)
}

/// The server of every scenario: defaults, stream ids from 101 like the spec's sample sessions.
pub(crate) fn server_config() -> ServerConfig {
    ServerConfig {
        first_stream_id: 101,
        ..ServerConfig::default()
    }
}

/// The spec's sample device (`led` input, `temp` and `heading` outputs) and what it exposes.
pub(crate) struct Sample {
    pub(crate) pair: Pair,
    /// What `temp` reads, in order (the last value repeats).
    pub(crate) temp: Script,
    /// What `heading` reads.
    pub(crate) heading: Script,
    /// Every input applied to `led`.
    pub(crate) led: Arc<Mutex<Vec<Value>>>,
}

/// The sample device of alice/dev01 with `keep_alive`, connecting at time zero.
pub(crate) fn sample(dialect: Dialect, keep_alive: Option<u32>) -> Sample {
    let mut config = alice_config(dialect);
    config.keep_alive = keep_alive;
    sample_with(config, |r| r)
}

/// The sample device with `config`, its resources extended by `extend`.
pub(crate) fn sample_with(
    config: ClientConfig,
    extend: impl FnOnce(DeviceResources) -> DeviceResources,
) -> Sample {
    let temp = Script::new([Value::F32(21.5)]);
    let heading = Script::new([Value::F32(87.5)]);
    let led = Arc::new(Mutex::new(Vec::new()));
    let resources = extend(sample_resources(&temp, &heading, led.clone()));
    let pair = Pair::new(config, resources, server_config());
    Sample {
        pair,
        temp,
        heading,
        led,
    }
}

/// A map value from pairs.
pub(crate) fn map(pairs: &[(&str, Value)]) -> Value {
    Value::Map(pairs.iter().map(|(k, v)| (*k, v.clone())).collect())
}

/// When and why the device session closed, if it did.
pub(crate) fn device_close(pair: &Pair) -> Option<(Instant, CloseReason)> {
    pair.device_events.iter().find_map(|(t, e)| match e {
        ClientEvent::Closed(reason) => Some((*t, reason.clone())),
        _ => None,
    })
}

/// When and why the server session closed, if it did.
pub(crate) fn server_close(pair: &Pair) -> Option<(Instant, CloseReason)> {
    pair.server_events.iter().find_map(|(t, e)| match e {
        ServerEvent::Closed(reason) => Some((*t, reason.clone())),
        _ => None,
    })
}

/// Every frame that went `direction`, decoded in the transcript's dialect, with its time.
pub(crate) fn messages(pair: &Pair, direction: Direction) -> Vec<(Instant, Message)> {
    let dialect = pair.transcript.dialect();
    pair.transcript
        .frames()
        .iter()
        .filter(|(_, d, _)| *d == direction)
        .flat_map(|(t, _, bytes)| {
            whole_frames(bytes).into_iter().map(move |(code, body)| {
                let m = dialect
                    .decode(code, &body)
                    .unwrap_or_else(|e| panic!("a session sent an undecodable frame: {e}"));
                (*t, m)
            })
        })
        .collect()
}

/// The times of the frames of `kind` that went `direction`.
pub(crate) fn times_of(pair: &Pair, direction: Direction, kind: MessageType) -> Vec<Instant> {
    messages(pair, direction)
        .into_iter()
        .filter(|(_, m)| m.kind == kind)
        .map(|(t, _)| t)
        .collect()
}

/// Values that arrived on the server's streams: time, stream id, value.
pub(crate) fn stream_data(pair: &Pair) -> Vec<(Instant, u16, Value)> {
    pair.server_events
        .iter()
        .filter_map(|(t, e)| match e {
            ServerEvent::StreamData {
                id, value: Some(v), ..
            } => Some((*t, *id, v.clone())),
            _ => None,
        })
        .collect()
}

/// The time at the start of a transcript line, in seconds.
fn line_time(line: &str) -> Option<f64> {
    line.split_whitespace()
        .next()?
        .strip_suffix('s')?
        .parse()
        .ok()
}

/// The transcript lines whose time passes `keep`; each run of left-out lines becomes one line
/// saying how many were left out and over which times.
pub(crate) fn excerpt(text: &str, keep: impl Fn(f64) -> bool) -> String {
    let mut out = String::new();
    let mut skipped: Vec<f64> = Vec::new();
    let flush = |out: &mut String, skipped: &mut Vec<f64>| {
        if let (Some(first), Some(last)) = (skipped.first(), skipped.last()) {
            out.push_str(&format!(
                "      ...      ({} lines from {first:.3}s to {last:.3}s left out)\n",
                skipped.len()
            ));
        }
        skipped.clear();
    };
    for line in text.lines() {
        match line_time(line) {
            Some(t) if !keep(t) => skipped.push(t),
            _ => {
                flush(&mut out, &mut skipped);
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    flush(&mut out, &mut skipped);
    out
}
