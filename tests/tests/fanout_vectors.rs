//! `fanout.json` (spec §6.9, vectors README §6): every scenario replayed through
//! [`iotmp_proto::fanout::Fanout`], checking the messages sent to the device and the deliveries
//! step by step; and part 10 of `sessions-2020.txt` / `sessions-2026.txt` (the worked example with
//! an event-only sink as well), replayed from its frames.

use iotmp_proto::fanout::{Delivery, Fanout, FanoutAction, SinkId, StreamSlot};
use iotmp_proto::json::message::{message_from_json, message_to_json};
use iotmp_proto::json::tagged::from_tagged;
use iotmp_proto::{Dialect, Instant, Message, Value};
use iotmp_tests::{dialect_of, hex_bytes, load_json, load_text, name_of, whole_frames};
use serde_json::Value as Json;

/// Sink names of the vectors ↔ application sink ids (index in order of first appearance).
#[derive(Default)]
struct SinkNames(Vec<String>);

impl SinkNames {
    fn id(&mut self, name: &str) -> SinkId {
        let index = match self.0.iter().position(|n| n == name) {
            Some(i) => i,
            None => {
                self.0.push(name.to_owned());
                self.0.len() - 1
            }
        };
        index as SinkId
    }

    fn name(&self, id: SinkId) -> &str {
        &self.0[id as usize]
    }
}

/// The server side of the scenario: the fan-out plus the stream ids the session would hold.
struct Server {
    fanout: Fanout,
    dialect: Dialect,
    resource: Value,
    next_id: u16,
    ids: Vec<(StreamSlot, u16)>,
}

impl Server {
    fn id_of(&self, slot: StreamSlot) -> u16 {
        self.ids
            .iter()
            .find(|(s, _)| *s == slot)
            .map(|(_, id)| *id)
            .unwrap_or_else(|| panic!("no stream id held for {slot:?}"))
    }

    fn slot_of(&self, id: u16) -> StreamSlot {
        self.ids
            .iter()
            .find(|(_, i)| *i == id)
            .map(|(slot, _)| *slot)
            .unwrap_or_else(|| panic!("data on stream {id}, which is not open"))
    }

    /// Turns actions into messages, allocating ids on Open and freeing them on Stop (the device
    /// answers OK at once).
    fn messages(&mut self, actions: &[FanoutAction]) -> Vec<Message> {
        actions
            .iter()
            .map(|action| {
                let slot = action.slot();
                let id = match action {
                    FanoutAction::Open { .. } => {
                        assert!(
                            self.ids.iter().all(|(s, _)| *s != slot),
                            "{slot:?} opened twice"
                        );
                        let id = self.next_id;
                        self.next_id += 1;
                        self.ids.push((slot, id));
                        id
                    }
                    FanoutAction::Reconfigure { .. } => self.id_of(slot),
                    FanoutAction::Stop { .. } => {
                        let id = self.id_of(slot);
                        self.ids.retain(|(s, _)| *s != slot);
                        id
                    }
                };
                action.to_message(self.dialect, id, &self.resource)
            })
            .collect()
    }
}

/// Seconds (a JSON number like `6.2`) to exact microseconds.
fn instant(t: &Json) -> Instant {
    let seconds = t.as_f64().unwrap_or_else(|| panic!("bad time {t}"));
    assert!(seconds >= 0.0);
    Instant::from_micros((seconds * 1e6).round() as u64)
}

fn value(json: &Json, what: &str) -> Value {
    from_tagged(json).unwrap_or_else(|e| panic!("{what}: bad value {json}: {e}"))
}

fn expected_messages(step: &Json, what: &str) -> Vec<Message> {
    step.get("to_device")
        .and_then(Json::as_array)
        .unwrap_or_else(|| panic!("{what}: no to_device list"))
        .iter()
        .map(|m| message_from_json(m).unwrap_or_else(|e| panic!("{what}: bad message {m}: {e}")))
        .collect()
}

fn expected_deliveries(step: &Json, what: &str) -> Vec<(String, Value)> {
    step.get("deliver")
        .and_then(Json::as_array)
        .unwrap_or_else(|| panic!("{what}: no deliver list"))
        .iter()
        .map(|d| {
            let sink = d
                .get("sink")
                .and_then(Json::as_str)
                .unwrap_or_else(|| panic!("{what}: delivery without sink"));
            let v = d
                .get("value")
                .unwrap_or_else(|| panic!("{what}: delivery without value"));
            (sink.to_owned(), value(v, what))
        })
        .collect()
}

/// Replays one scenario; returns the number of steps.
fn replay(scenario: &Json) -> usize {
    let name = name_of(scenario);
    let dialect = dialect_of(scenario);
    let first_id = scenario
        .get("first_stream_id")
        .and_then(Json::as_u64)
        .unwrap_or_else(|| panic!("{name}: no first_stream_id"));
    let mut server = Server {
        fanout: Fanout::new(),
        dialect,
        resource: Value::from("temp"),
        next_id: u16::try_from(first_id).expect("u16 stream id"),
        ids: Vec::new(),
    };
    let mut sinks = SinkNames::default();
    let mut actions = Vec::new();
    let mut deliveries: Vec<Delivery> = Vec::new();
    server
        .fanout
        .device_connected(Instant::ZERO, dialect, &mut actions);
    assert!(actions.is_empty(), "{name}: no sinks, nothing to open");

    let steps = scenario
        .get("steps")
        .and_then(Json::as_array)
        .unwrap_or_else(|| panic!("{name}: no steps"));
    for (index, step) in steps.iter().enumerate() {
        let what = format!("{} {name} step {index}", dialect.year());
        let now = instant(step.get("t").unwrap_or_else(|| panic!("{what}: no t")));
        if let Some(join) = step.get("join") {
            let sink = sinks.id(join.get("sink").and_then(Json::as_str).expect("sink"));
            let interval = join
                .get("interval_s")
                .and_then(Json::as_u64)
                .expect("interval_s");
            let interval = u32::try_from(interval).expect("u32 interval");
            server
                .fanout
                .join(now, sink, interval, &mut actions, &mut deliveries);
        } else if let Some(leave) = step.get("leave") {
            let sink = sinks.id(leave.as_str().expect("leave names a sink"));
            server.fanout.leave(now, sink, &mut actions);
        } else if let Some(data) = step.get("data") {
            let id = data
                .get("stream_id")
                .and_then(Json::as_u64)
                .expect("stream_id");
            let slot = server.slot_of(u16::try_from(id).expect("u16 stream id"));
            let v = value(data.get("value").expect("value"), &what);
            server.fanout.on_data(now, slot, &v, &mut deliveries);
        } else {
            panic!("{what}: no join, leave or data");
        }

        let sent = server.messages(&std::mem::take(&mut actions));
        let expected = expected_messages(step, &what);
        assert_eq!(
            sent,
            expected,
            "{what}: to_device\n  got:      {:?}\n  expected: {:?}",
            sent.iter().map(message_to_json).collect::<Vec<_>>(),
            expected.iter().map(message_to_json).collect::<Vec<_>>(),
        );
        let delivered: Vec<(String, Value)> = std::mem::take(&mut deliveries)
            .into_iter()
            .map(|d| (sinks.name(d.sink).to_owned(), d.value))
            .collect();
        assert_eq!(
            delivered,
            expected_deliveries(step, &what),
            "{what}: deliver"
        );
    }
    assert!(server.fanout.sinks().count() <= sinks.0.len());
    steps.len()
}

#[test]
fn fanout_scenarios() {
    let scenarios = load_json("fanout.json");
    assert_eq!(scenarios.len(), 8, "fanout.json has 8 scenarios");
    let mut steps = 0;
    for scenario in &scenarios {
        steps += replay(scenario);
    }
    assert!(steps >= 80, "only {steps} steps replayed");
}

#[test]
fn both_dialects_are_covered() {
    let scenarios = load_json("fanout.json");
    for dialect in [Dialect::Draft2020, Dialect::Draft2026] {
        assert_eq!(
            scenarios
                .iter()
                .filter(|s| dialect_of(s) == dialect)
                .count(),
            4,
            "{dialect:?}"
        );
    }
}

/// One input of a session transcript's part 10 and the outputs listed after it.
#[derive(Debug)]
struct TranscriptStep {
    line: usize,
    now: Instant,
    input: TranscriptInput,
    to_device: Vec<Message>,
    deliver: Vec<(String, Value)>,
}

#[derive(Debug)]
enum TranscriptInput {
    Join(String, u32),
    Leave(String),
    Data(u16, Value),
}

fn transcript_time(text: &str, line: usize) -> Instant {
    let seconds: f64 = text
        .strip_prefix("t=")
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("line {line}: bad time {text:?}"));
    Instant::from_micros((seconds * 1e6).round() as u64)
}

/// Parses part 10 of a session transcript: joins, leaves and device data are inputs; the frames
/// the server sends and the `deliver` lines that follow an input are its expected outputs.
fn transcript_steps(file: &str, dialect: Dialect) -> Vec<TranscriptStep> {
    let text = load_text(file);
    let lines: Vec<&str> = text.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.starts_with("# 10."))
        .unwrap_or_else(|| panic!("{file}: no part 10"));
    let decode = |index: usize| -> Message {
        let hex = lines[index + 1].replace('|', " ");
        let frames = whole_frames(&hex_bytes(&hex));
        assert_eq!(frames.len(), 1, "{file} line {}: one frame", index + 2);
        let (code, body) = &frames[0];
        dialect
            .decode(*code, body)
            .unwrap_or_else(|e| panic!("{file} line {}: {e}", index + 2))
    };
    let mut steps: Vec<TranscriptStep> = Vec::new();
    for (index, raw) in lines.iter().enumerate().skip(start + 1) {
        // The next part's heading ("# 11. ...") ends part 10; other "#" lines are comments.
        if raw
            .strip_prefix("# ")
            .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
        {
            break;
        }
        let line = index + 1;
        let words: Vec<&str> = raw.split_whitespace().collect();
        let input = match words.as_slice() {
            [_, "sink", sink, "joins", "(interval", n, "s)", ..] => {
                TranscriptInput::Join((*sink).to_owned(), n.parse().expect("interval"))
            }
            [_, "sink", sink, "joins", "(events", "only)", ..] => {
                TranscriptInput::Join((*sink).to_owned(), 0)
            }
            [_, "sink", sink, "leaves", ..] => TranscriptInput::Leave((*sink).to_owned()),
            [_, "C->S", ..] => {
                let message = decode(index);
                let id = message.stream_id.expect("data carries a stream id");
                TranscriptInput::Data(id, message.payload.expect("data carries a value"))
            }
            [_, "S->C", ..] => {
                let step = steps.last_mut().expect("an input before the first output");
                step.to_device.push(decode(index));
                continue;
            }
            [_, "deliver", v, "to", "sink", sink] => {
                let step = steps
                    .last_mut()
                    .expect("an input before the first delivery");
                let v: i64 = v.parse().expect("integer value");
                step.deliver.push(((*sink).to_owned(), Value::from(v)));
                continue;
            }
            _ => continue,
        };
        steps.push(TranscriptStep {
            line,
            now: transcript_time(words[0], line),
            input,
            to_device: Vec::new(),
            deliver: Vec::new(),
        });
    }
    steps
}

fn replay_transcript(file: &str, dialect: Dialect) {
    let steps = transcript_steps(file, dialect);
    assert!(steps.len() >= 20, "{file}: only {} steps", steps.len());
    let first_id = steps
        .iter()
        .flat_map(|s| &s.to_device)
        .find_map(|m| m.stream_id)
        .expect("a stream id");
    let mut server = Server {
        fanout: Fanout::new(),
        dialect,
        resource: Value::from("temp"),
        next_id: first_id,
        ids: Vec::new(),
    };
    let mut sinks = SinkNames::default();
    let mut actions = Vec::new();
    let mut deliveries = Vec::new();
    server
        .fanout
        .device_connected(Instant::ZERO, dialect, &mut actions);
    for step in &steps {
        let what = format!("{file} line {}", step.line);
        match &step.input {
            TranscriptInput::Join(sink, interval) => {
                let sink = sinks.id(sink);
                server
                    .fanout
                    .join(step.now, sink, *interval, &mut actions, &mut deliveries);
            }
            TranscriptInput::Leave(sink) => {
                let sink = sinks.id(sink);
                server.fanout.leave(step.now, sink, &mut actions);
            }
            TranscriptInput::Data(id, v) => {
                let slot = server.slot_of(*id);
                server.fanout.on_data(step.now, slot, v, &mut deliveries);
            }
        }
        let sent = server.messages(&std::mem::take(&mut actions));
        assert_eq!(sent, step.to_device, "{what}: to_device");
        let delivered: Vec<(String, Value)> = std::mem::take(&mut deliveries)
            .into_iter()
            .map(|d| (sinks.name(d.sink).to_owned(), d.value))
            .collect();
        assert_eq!(delivered, step.deliver, "{what}: deliver");
    }
    assert!(server.fanout.is_idle(), "{file}: every sink left");
}

#[test]
fn session_2020_part_10() {
    replay_transcript("sessions-2020.txt", Dialect::Draft2020);
}

#[test]
fn session_2026_part_10() {
    replay_transcript("sessions-2026.txt", Dialect::Draft2026);
}
