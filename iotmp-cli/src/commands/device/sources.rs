//! Where resource values come from, and the handlers the device session calls.
//!
//! Every resource is a [`Read`]: something that gives its current value, shared (behind an
//! `Arc`) between the session's handler on the driver thread and, for `--on-change`, a poller
//! thread. Inputs (fn 2) also apply what the server sends. Handlers log each RUN.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use iotmp_proto::client::{HandlerError, ResourceKind, RunOutput};
use iotmp_proto::device::ResourceHandler;
use iotmp_proto::json::value::{from_json, to_json};
use iotmp_proto::{DeviceResources, Value};
use tracing::{debug, info, warn};

use super::exec::{Exec, ExecError};
use super::metrics::{self, CpuState};
use super::spec::{Counter, Declaration, Kind, Metric, RandomWalk, Sine};

/// How long a logged value may be before it is cut (values can be whole files).
const LOG_VALUE_CHARS: usize = 200;

/// Settings every resource shares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// The timeout of commands that do not set their own.
    pub(crate) cmd_timeout: Duration,
    /// The largest command output or file accepted, in bytes.
    pub(crate) max_value: usize,
    /// Seeds the random walks (each mixes in its name, so that two walks differ).
    pub(crate) seed: u64,
}

/// The current value of a resource.
pub(crate) trait Read: Send + Sync {
    /// Reads it now.
    fn read(&self) -> Result<Value, HandlerError>;
}

/// The built resources: the session's declarations and handlers, and a reader per name for
/// the `--on-change` pollers.
pub(crate) struct Built {
    /// For the driver.
    pub(crate) resources: DeviceResources,
    /// Name → reader, in declaration order.
    pub(crate) readers: Vec<(String, Arc<dyn Read>)>,
}

impl std::fmt::Debug for Built {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Built")
            .field("resources", &self.resources)
            .finish_non_exhaustive()
    }
}

/// Builds every declared resource.
pub(crate) fn build(declarations: &[Declaration], limits: Limits) -> Built {
    let started = Instant::now();
    let cpu = Arc::new(CpuState::default());
    let mut resources = DeviceResources::new();
    let mut readers = Vec::with_capacity(declarations.len());
    for declaration in declarations {
        let name = declaration.name.clone();
        let exec = |command: &str, timeout: Option<Duration>| Exec {
            command: command.to_owned(),
            timeout: timeout.unwrap_or(limits.cmd_timeout),
            max_output: limits.max_value,
        };
        let (reader, input): (Arc<dyn Read>, Option<Arc<InputState>>) = match &declaration.kind {
            Kind::Cmd { command, timeout } => (
                Arc::new(CmdSource {
                    exec: exec(command, *timeout),
                }),
                None,
            ),
            Kind::File { path } => (
                Arc::new(FileSource {
                    path: path.clone(),
                    max: limits.max_value,
                }),
                None,
            ),
            Kind::Const { value } => (Arc::new(ConstSource(value.clone())), None),
            Kind::Sine(sine) => (
                Arc::new(SineSource {
                    sine: *sine,
                    started,
                }),
                None,
            ),
            Kind::RandomWalk(walk) => (
                Arc::new(WalkSource::new(*walk, limits.seed ^ name_hash(&name))),
                None,
            ),
            Kind::Counter(counter) => (Arc::new(CounterSource::new(*counter)), None),
            Kind::Metric(metric) => (
                Arc::new(MetricSource {
                    metric: *metric,
                    cpu: cpu.clone(),
                }),
                None,
            ),
            Kind::InputCmd { command, timeout } => {
                let state = Arc::new(InputState::new(
                    Value::Null,
                    Box::new(CmdSink {
                        exec: exec(command, *timeout),
                    }),
                ));
                (state.clone(), Some(state))
            }
            Kind::InputFile { path } => {
                // The file's current contents are the input's starting value, so that a device
                // restarted with the same file reports what it had last been given.
                let initial = read_file(path, limits.max_value).unwrap_or(Value::Null);
                let state = Arc::new(InputState::new(
                    initial,
                    Box::new(FileSink {
                        path: path.clone(),
                        writes: AtomicU64::new(0),
                    }),
                ));
                (state.clone(), Some(state))
            }
        };
        resources = match input {
            Some(state) => resources.with_handler(
                &name,
                ResourceKind::Input,
                InputHandler {
                    name: name.clone(),
                    state,
                },
            ),
            None => resources.with_handler(
                &name,
                ResourceKind::Output,
                OutputHandler {
                    name: name.clone(),
                    source: reader.clone(),
                },
            ),
        };
        readers.push((name, reader));
    }
    Built { resources, readers }
}

/// A stable hash of a name (FNV-1a), so that a seed gives the same walks on every run and
/// every machine (std's hasher is randomised per process).
fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere cannot leave these values half-written (each is one assignment).
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `value` as JSON text for the logs, cut to a readable length.
pub(crate) fn log_text(value: &Value) -> String {
    let text = to_json(value).to_string();
    if text.chars().count() <= LOG_VALUE_CHARS {
        return text;
    }
    let mut cut: String = text.chars().take(LOG_VALUE_CHARS).collect();
    let _ = write!(cut, "… ({} bytes)", text.len());
    cut
}

/// Command output or file contents as a value: JSON when it is JSON (numbers normalised as
/// the HTTP API does, spec §8.3), else the trimmed text; bytes that are not UTF-8 stay bytes.
pub(crate) fn parse_value(bytes: Vec<u8>) -> Value {
    match String::from_utf8(bytes) {
        Ok(text) => {
            let trimmed = text.trim();
            match serde_json::from_str::<serde_json::Value>(trimmed) {
                Ok(json) => match from_json(&json) {
                    Ok(value) => value,
                    // Valid JSON without an IOTMP equivalent (a 30-digit serial number, say)
                    // is still useful as the text it is.
                    Err(e) => {
                        debug!("output is JSON without an IOTMP equivalent ({e}); sent as text");
                        Value::from(trimmed)
                    }
                },
                Err(_) => Value::from(trimmed),
            }
        }
        Err(e) => Value::Bytes(e.into_bytes()),
    }
}

fn exec_error(error: ExecError) -> HandlerError {
    HandlerError {
        code: error.code(),
        message: error.to_string(),
    }
}

/// Reads a file, at most `max` bytes, as a value.
fn read_file(path: &Path, max: usize) -> Result<Value, HandlerError> {
    let fail = |e: io::Error| HandlerError::new(format!("cannot read {}: {e}", path.display()));
    let file = File::open(path).map_err(fail)?;
    let mut bytes = Vec::new();
    // /proc and /sys files report a size of 0: the cap is enforced on what is read instead.
    file.take(u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(fail)?;
    if bytes.len() > max {
        return Err(HandlerError::new(format!(
            "{} is larger than {max} bytes (raise --max-value-size)",
            path.display()
        )));
    }
    Ok(parse_value(bytes))
}

struct CmdSource {
    exec: Exec,
}

impl Read for CmdSource {
    fn read(&self) -> Result<Value, HandlerError> {
        self.exec.run(None).map(parse_value).map_err(exec_error)
    }
}

struct FileSource {
    path: PathBuf,
    max: usize,
}

impl Read for FileSource {
    fn read(&self) -> Result<Value, HandlerError> {
        read_file(&self.path, self.max)
    }
}

struct ConstSource(Value);

impl Read for ConstSource {
    fn read(&self) -> Result<Value, HandlerError> {
        Ok(self.0.clone())
    }
}

/// A wave over wall time: sampling streams then draw it whatever their interval.
struct SineSource {
    sine: Sine,
    started: Instant,
}

impl SineSource {
    fn at(&self, elapsed: Duration) -> f64 {
        let phase = elapsed.as_secs_f64() / self.sine.period.as_secs_f64();
        self.sine.offset + self.sine.amplitude * (std::f64::consts::TAU * phase).sin()
    }
}

impl Read for SineSource {
    fn read(&self) -> Result<Value, HandlerError> {
        Ok(metrics::rounded(self.at(self.started.elapsed()), 3))
    }
}

/// One step per read, from a seeded generator: the same seed gives the same sequence.
struct WalkSource {
    walk: RandomWalk,
    state: Mutex<(fastrand::Rng, Option<f64>)>,
}

impl WalkSource {
    fn new(walk: RandomWalk, seed: u64) -> Self {
        WalkSource {
            walk,
            state: Mutex::new((fastrand::Rng::with_seed(seed), None)),
        }
    }
}

impl Read for WalkSource {
    fn read(&self) -> Result<Value, HandlerError> {
        let mut state = lock(&self.state);
        let (rng, current) = &mut *state;
        let next = match *current {
            // The first read gives the start itself.
            None => self.walk.start,
            Some(value) => {
                let moved = value + (rng.f64() * 2.0 - 1.0) * self.walk.step;
                let moved = self.walk.min.map_or(moved, |min| moved.max(min));
                self.walk.max.map_or(moved, |max| moved.min(max))
            }
        };
        *current = Some(next);
        Ok(metrics::rounded(next, 3))
    }
}

struct CounterSource {
    next: Mutex<i64>,
    step: i64,
}

impl CounterSource {
    fn new(counter: Counter) -> Self {
        CounterSource {
            next: Mutex::new(counter.start),
            step: counter.step,
        }
    }
}

impl Read for CounterSource {
    fn read(&self) -> Result<Value, HandlerError> {
        let mut next = lock(&self.next);
        let value = *next;
        // At the end of the range it stays there rather than wrapping to the other end.
        *next = value.saturating_add(self.step);
        Ok(Value::from(value))
    }
}

struct MetricSource {
    metric: Metric,
    cpu: Arc<CpuState>,
}

impl Read for MetricSource {
    fn read(&self) -> Result<Value, HandlerError> {
        metrics::read(self.metric, &self.cpu)
    }
}

/// What an input does with each value the server sends.
trait Sink: Send + Sync {
    fn apply(&self, input: &Value) -> Result<(), HandlerError>;
}

struct CmdSink {
    exec: Exec,
}

impl Sink for CmdSink {
    fn apply(&self, input: &Value) -> Result<(), HandlerError> {
        let json = to_json(input).to_string();
        let output = self.exec.run(Some(&json)).map_err(exec_error)?;
        if !output.is_empty() {
            debug!(
                "input command printed: {}",
                String::from_utf8_lossy(&output).trim()
            );
        }
        Ok(())
    }
}

struct FileSink {
    path: PathBuf,
    /// Numbers the temporary files, so that no two writes share one.
    writes: AtomicU64,
}

impl Sink for FileSink {
    fn apply(&self, input: &Value) -> Result<(), HandlerError> {
        let mut json = to_json(input).to_string();
        json.push('\n');
        let n = self.writes.fetch_add(1, Ordering::Relaxed);
        write_atomically(&self.path, json.as_bytes(), n)
            .map_err(|e| HandlerError::new(format!("cannot write {}: {e}", self.path.display())))
    }
}

/// Writes `bytes` to a temporary file beside `path` and renames it over `path`, so that a
/// reader of `path` sees the old contents or the new ones, never half of them.
fn write_atomically(path: &Path, bytes: &[u8], n: u64) -> io::Result<()> {
    let file_name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the path names no file"))?;
    let dir = path
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let temp = dir.join(format!(
        ".{}.{}-{n}.tmp",
        file_name.to_string_lossy(),
        std::process::id()
    ));
    let written = File::create(&temp).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    let result = written.and_then(|()| std::fs::rename(&temp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// An input's last applied value and what applies the next one.
struct InputState {
    current: Mutex<Value>,
    sink: Box<dyn Sink>,
}

impl InputState {
    fn new(initial: Value, sink: Box<dyn Sink>) -> Self {
        InputState {
            current: Mutex::new(initial),
            sink,
        }
    }
}

impl Read for InputState {
    fn read(&self) -> Result<Value, HandlerError> {
        Ok(lock(&self.current).clone())
    }
}

struct OutputHandler {
    name: String,
    source: Arc<dyn Read>,
}

impl ResourceHandler for OutputHandler {
    fn run(
        &mut self,
        _input: Option<Value>,
        _params: Option<&Value>,
    ) -> Result<RunOutput, HandlerError> {
        let result = self.source.read();
        match &result {
            Ok(value) => info!("RUN {}: {}", self.name, log_text(value)),
            Err(e) => warn!("RUN {} failed ({}): {}", self.name, e.code, e.message),
        }
        result.map(RunOutput::value)
    }

    fn read(&mut self) -> Result<Value, HandlerError> {
        let result = self.source.read();
        match &result {
            Ok(value) => debug!("read {}: {}", self.name, log_text(value)),
            Err(e) => warn!("reading {} failed ({}): {}", self.name, e.code, e.message),
        }
        result
    }
}

struct InputHandler {
    name: String,
    state: Arc<InputState>,
}

impl ResourceHandler for InputHandler {
    fn run(
        &mut self,
        input: Option<Value>,
        _params: Option<&Value>,
    ) -> Result<RunOutput, HandlerError> {
        // A RUN without payload has nothing to apply (spec §6.5.1: fn 2 applies the payload).
        let Some(input) = input else {
            info!("RUN {} without input: nothing applied", self.name);
            return Ok(RunOutput::default());
        };
        match self.state.sink.apply(&input) {
            Ok(()) => {
                info!("RUN {} <- {}", self.name, log_text(&input));
                *lock(&self.state.current) = input;
                Ok(RunOutput::default())
            }
            Err(e) => {
                warn!(
                    "RUN {} <- {} failed ({}): {}",
                    self.name,
                    log_text(&input),
                    e.code,
                    e.message
                );
                Err(e)
            }
        }
    }

    fn read(&mut self) -> Result<Value, HandlerError> {
        self.state.read()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            cmd_timeout: Duration::from_secs(5),
            max_value: 1024,
            seed: 7,
        }
    }

    fn declaration(name: &str, kind: Kind) -> Declaration {
        Declaration {
            name: name.to_owned(),
            kind,
            origin: "test".to_owned(),
        }
    }

    fn reader(built: &Built, name: &str) -> Arc<dyn Read> {
        built
            .readers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, r)| r.clone())
            .unwrap()
    }

    #[test]
    fn outputs_parse_json_or_text() {
        assert_eq!(parse_value(b"42\n".to_vec()), Value::UInt(42));
        assert_eq!(parse_value(b" 21.5 ".to_vec()), Value::F32(21.5));
        assert_eq!(
            parse_value(b"hello world\n".to_vec()),
            Value::from("hello world")
        );
        assert_eq!(parse_value(b"".to_vec()), Value::from(""));
        assert_eq!(
            parse_value(b"123456789012345678901234567890".to_vec()),
            Value::from("123456789012345678901234567890")
        );
        assert_eq!(
            parse_value(vec![0xff, 0x00]),
            Value::Bytes(vec![0xff, 0x00])
        );
        let map = parse_value(br#"{"a":1,"b":[true,null]}"#.to_vec());
        assert_eq!(to_json(&map).to_string(), r#"{"a":1,"b":[true,null]}"#);
    }

    #[test]
    fn simulated_sensors_are_deterministic() {
        let walk = RandomWalk {
            step: 1.0,
            start: 10.0,
            min: Some(9.5),
            max: Some(10.5),
        };
        let declarations = [
            declaration("n", Kind::Counter(Counter { start: 5, step: 3 })),
            declaration("w", Kind::RandomWalk(walk)),
        ];
        let sequence = |seed| {
            let built = build(&declarations, Limits { seed, ..limits() });
            let w = reader(&built, "w");
            (0..20).map(|_| w.read().unwrap()).collect::<Vec<_>>()
        };
        assert_eq!(sequence(1), sequence(1), "same seed, same walk");
        assert_ne!(sequence(1), sequence(2), "another seed, another walk");
        let walked = sequence(1);
        assert_eq!(walked[0], Value::UInt(10), "starts at start");
        assert!(
            walked
                .iter()
                .all(|v| (9.5..=10.5).contains(&v.as_f64().unwrap()))
        );

        let built = build(&declarations, limits());
        let n = reader(&built, "n");
        let counted: Vec<Value> = (0..3).map(|_| n.read().unwrap()).collect();
        assert_eq!(counted, [Value::UInt(5), Value::UInt(8), Value::UInt(11)]);
        let edge = CounterSource::new(Counter {
            start: i64::MAX - 1,
            step: 5,
        });
        for _ in 0..3 {
            edge.read().unwrap();
        }
        assert_eq!(edge.read().unwrap(), Value::from(i64::MAX));
    }

    #[test]
    fn sine_follows_the_clock() {
        let sine = SineSource {
            sine: Sine {
                period: Duration::from_secs(60),
                amplitude: 10.0,
                offset: 20.0,
            },
            started: Instant::now(),
        };
        assert!((sine.at(Duration::ZERO) - 20.0).abs() < 1e-9);
        assert!((sine.at(Duration::from_secs(15)) - 30.0).abs() < 1e-9);
        assert!((sine.at(Duration::from_secs(45)) - 10.0).abs() < 1e-9);
    }

    #[test]
    fn files_and_inputs() {
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path();
        let source = dir.join("value.json");
        std::fs::write(&source, "{\"x\": 2.0}\n").unwrap();
        let target = dir.join("setpoint.json");
        let _ = std::fs::remove_file(&target);
        let big = dir.join("big.txt");
        std::fs::write(&big, vec![b'a'; 2000]).unwrap();
        let declarations = [
            declaration("f", Kind::File { path: source }),
            declaration("big", Kind::File { path: big }),
            declaration(
                "sp",
                Kind::InputFile {
                    path: target.clone(),
                },
            ),
        ];
        let built = build(&declarations, limits());
        assert_eq!(
            to_json(&reader(&built, "f").read().unwrap()).to_string(),
            r#"{"x":2}"#
        );
        let err = reader(&built, "big").read().unwrap_err();
        assert!(err.message.contains("larger than 1024 bytes"), "{err:?}");
        assert_eq!(reader(&built, "sp").read().unwrap(), Value::Null);
        let kinds = built.resources.resources();
        assert_eq!(kinds.kind("sp"), Some(ResourceKind::Input));
        assert_eq!(kinds.kind("f"), Some(ResourceKind::Output));

        // A handler as the session calls it for a RUN.
        let state = Arc::new(InputState::new(
            Value::Null,
            Box::new(FileSink {
                path: target.clone(),
                writes: AtomicU64::new(0),
            }),
        ));
        let mut handler = InputHandler {
            name: "sp".into(),
            state: state.clone(),
        };
        handler.run(Some(Value::from(21.5f32)), None).unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "21.5\n");
        assert_eq!(handler.read().unwrap(), Value::F32(21.5));
        assert_eq!(state.read().unwrap(), Value::F32(21.5));
        // Without input there is nothing to apply.
        handler.run(None, None).unwrap();
        assert_eq!(state.read().unwrap(), Value::F32(21.5));
        // No temporary file is left behind.
        let leftovers: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");

        // A restarted device starts from the file's contents.
        let built = build(&declarations, limits());
        assert_eq!(reader(&built, "sp").read().unwrap(), Value::F32(21.5));

        // A file in a folder that does not exist fails the RUN, with the path.
        let sink = FileSink {
            path: dir.join("missing/x.json"),
            writes: AtomicU64::new(0),
        };
        let err = sink.apply(&Value::Bool(true)).unwrap_err();
        assert!(err.message.contains("missing/x.json"), "{err:?}");
    }

    #[cfg(unix)]
    #[test]
    fn commands_as_outputs_and_inputs() {
        let declarations = [
            declaration(
                "json",
                Kind::Cmd {
                    command: "echo '{\"a\":1}'".into(),
                    timeout: None,
                },
            ),
            declaration(
                "slow",
                Kind::Cmd {
                    command: "sleep 3".into(),
                    timeout: Some(Duration::from_millis(100)),
                },
            ),
        ];
        let built = build(&declarations, limits());
        assert_eq!(
            to_json(&reader(&built, "json").read().unwrap()).to_string(),
            r#"{"a":1}"#
        );
        let err = reader(&built, "slow").read().unwrap_err();
        assert_eq!(err.code, 504, "{err:?}");
        let sink = CmdSink {
            exec: Exec {
                command: "test \"$(cat)\" = '[1,\"x\"]'".into(),
                timeout: Duration::from_secs(5),
                max_output: 1024,
            },
        };
        let input = Value::Array(vec![Value::UInt(1), Value::from("x")]);
        sink.apply(&input).unwrap();
        let err = sink.apply(&Value::Null).unwrap_err();
        assert!(err.message.contains("exit status: 1"), "{err:?}");
    }

    #[test]
    fn long_values_are_cut_in_logs() {
        let text = log_text(&Value::from("x".repeat(1000)));
        assert!(text.ends_with("… (1002 bytes)"), "{text}");
        assert_eq!(log_text(&Value::UInt(3)), "3");
    }
}
