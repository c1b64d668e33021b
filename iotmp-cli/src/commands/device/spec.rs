//! What `iotmp device` exposes: resource declarations from the command line, a resource file
//! and the config file, checked and merged into one list before anything connects.
//!
//! The three sources share one vocabulary: a flag `--KIND NAME=…` or `--KIND NAME:k=v,…` and a
//! TOML table `[KIND]` with `NAME = …` entries mean the same thing, and are parsed by the same
//! functions (TOML parameters are turned into the flag's `k=v` text first), so a value that is
//! refused in one place is refused in the other with the same words.
//!
//! Every mistake is reported with where it was made (`--sine`, `res.toml [sine]`), the
//! resource, and what to write instead. A name declared twice is an error, not a silent
//! override: two sources that disagree about a resource are worth a question.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use iotmp_proto::Value;
use iotmp_proto::json::value::{FromJsonError, from_json};
use serde::Deserialize;
use thiserror::Error;

use crate::values::Span;

/// The shortest `--on-change` period: below it a poller would mostly keep a core busy.
const MIN_EVERY: Duration = Duration::from_millis(10);

/// A resource and where its value comes from.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Declaration {
    /// The resource name (spec §6.5.1).
    pub(crate) name: String,
    /// What reading or running it does.
    pub(crate) kind: Kind,
    /// Where it was declared, for messages: `--cmd`, `res.toml [cmd]`.
    pub(crate) origin: String,
}

/// The kinds of resources `iotmp device` can expose.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Kind {
    /// fn 3: `sh -c COMMAND` on each read; its output is the value.
    Cmd {
        /// The shell command.
        command: String,
        /// Its own timeout; `None` uses `--cmd-timeout`.
        timeout: Option<Duration>,
    },
    /// fn 3: the contents of a file on each read.
    File {
        /// The file.
        path: PathBuf,
    },
    /// fn 3: a fixed value.
    Const {
        /// The value.
        value: Value,
    },
    /// fn 3: `offset + amplitude · sin(2π t / period)`, `t` since the device started.
    Sine(Sine),
    /// fn 3: a seeded random walk, one step per read.
    RandomWalk(RandomWalk),
    /// fn 3: `start`, `start + step`, … one per read.
    Counter(Counter),
    /// fn 3: one system metric read from /proc.
    Metric(Metric),
    /// fn 2: the input, as JSON, goes to `sh -c COMMAND` on stdin and in `IOTMP_INPUT`.
    InputCmd {
        /// The shell command.
        command: String,
        /// Its own timeout; `None` uses `--cmd-timeout`.
        timeout: Option<Duration>,
    },
    /// fn 2: the input, as JSON, replaces the file (atomically).
    InputFile {
        /// The file.
        path: PathBuf,
    },
}

/// `--sine` parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Sine {
    /// One full wave.
    pub(crate) period: Duration,
    /// Half the distance between the peaks.
    pub(crate) amplitude: f64,
    /// The middle of the wave.
    pub(crate) offset: f64,
}

/// `--random-walk` parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct RandomWalk {
    /// Each read moves the value by a uniform amount in `[-step, step]`.
    pub(crate) step: f64,
    /// The first value.
    pub(crate) start: f64,
    /// The value never goes below this.
    pub(crate) min: Option<f64>,
    /// The value never goes above this.
    pub(crate) max: Option<f64>,
}

/// `--counter` parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Counter {
    /// The first value.
    pub(crate) start: i64,
    /// Added at each read.
    pub(crate) step: i64,
}

/// The resources `--metrics` adds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Metric {
    /// `cpu`: CPU usage in percent since the previous read (/proc/stat).
    Cpu,
    /// `memory`: `{"total","available","used_percent"}` (/proc/meminfo).
    Memory,
    /// `load`: `[1, 5, 15]` minute load averages (/proc/loadavg).
    Load,
    /// `uptime`: seconds since boot (/proc/uptime).
    Uptime,
}

impl Metric {
    /// Every metric, in the order DESCRIBE lists them.
    pub(crate) const ALL: [Metric; 4] = [Metric::Cpu, Metric::Memory, Metric::Load, Metric::Uptime];

    /// The resource name.
    pub(crate) const fn name(self) -> &'static str {
        match self {
            Metric::Cpu => "cpu",
            Metric::Memory => "memory",
            Metric::Load => "load",
            Metric::Uptime => "uptime",
        }
    }
}

/// `--on-change NAME:every=1s,threshold=0.5`: poll a resource, stream it when it changed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Watch {
    /// The resource (declared by some other flag or table).
    pub(crate) name: String,
    /// The polling period.
    pub(crate) every: Duration,
    /// A number must move at least this far from the last streamed value (0: any change).
    pub(crate) threshold: f64,
    /// Where it was declared.
    pub(crate) origin: String,
}

/// A declaration that cannot be used.
#[derive(Debug, Error)]
pub(crate) enum SpecError {
    /// A flag value without the separator its syntax needs.
    #[error("{flag} {given:?} is not of the form {syntax}: write e.g. {flag} {example}")]
    Syntax {
        /// The flag.
        flag: &'static str,
        /// What was given.
        given: String,
        /// The expected form.
        syntax: &'static str,
        /// A valid example.
        example: &'static str,
    },
    /// A resource name that IOTMP cannot carry well.
    #[error(
        "{origin}: the resource name {name:?} {problem}: use printable text such as temp or sensors/temp"
    )]
    Name {
        /// Where.
        origin: String,
        /// The name.
        name: String,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// A parameter that is unknown, repeated or has a bad value.
    #[error("{origin} {name}: {message}")]
    Param {
        /// Where.
        origin: String,
        /// The resource.
        name: String,
        /// What is wrong and what to write.
        message: String,
    },
    /// `--const` text that is not JSON.
    #[error(
        "{origin} {name}: {given:?} is not JSON: quote text as a JSON string (--const 'model=\"rpi4\"') or fix the JSON"
    )]
    Json {
        /// Where.
        origin: String,
        /// The resource.
        name: String,
        /// The text.
        given: String,
        /// The parser's complaint.
        #[source]
        source: serde_json::Error,
    },
    /// JSON that has no IOTMP value (an integer beyond 64 bits, say).
    #[error("{origin} {name}: the value cannot be carried by IOTMP: change it")]
    Value {
        /// Where.
        origin: String,
        /// The resource.
        name: String,
        /// Why.
        #[source]
        source: FromJsonError,
    },
    /// A TOML entry of the wrong shape.
    #[error("{origin} {name}: expected {expected}")]
    Shape {
        /// Where.
        origin: String,
        /// The resource.
        name: String,
        /// What the entry should look like.
        expected: &'static str,
    },
    /// Two declarations of one name.
    #[error("the resource {name:?} is declared twice ({first} and {second}): rename or remove one")]
    Duplicate {
        /// The name.
        name: String,
        /// The first declaration's origin.
        first: String,
        /// The second one's.
        second: String,
    },
    /// `--on-change` of a resource nobody declared.
    #[error(
        "{origin}: {name:?} is not a declared resource: declare it (--cmd, --file, --sine, …) or fix the name"
    )]
    UnknownWatch {
        /// Where.
        origin: String,
        /// The name.
        name: String,
    },
    /// Two `--on-change` for one resource.
    #[error("{second}: {name:?} is already watched ({first}): keep one --on-change per resource")]
    DuplicateWatch {
        /// The name.
        name: String,
        /// The first one's origin.
        first: String,
        /// The second one's.
        second: String,
    },
    /// The resource file cannot be read.
    #[error("cannot read the resource file {}: check the path given by --resources", path.display())]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The resource file is not TOML of the expected shape.
    #[error(
        "the resource file {} is not valid: fix the entry named below (`iotmp device --help` shows a complete file)",
        path.display()
    )]
    ParseFile {
        /// The file.
        path: PathBuf,
        /// Where and what.
        #[source]
        source: toml::de::Error,
    },
}

/// The declaration flags of `iotmp device`, as clap collected them.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Flags<'a> {
    /// `--cmd NAME=COMMAND`.
    pub(crate) cmd: &'a [String],
    /// `--file NAME=PATH`.
    pub(crate) file: &'a [String],
    /// `--const NAME=JSON`.
    pub(crate) constant: &'a [String],
    /// `--sine NAME[:…]`.
    pub(crate) sine: &'a [String],
    /// `--random-walk NAME[:…]`.
    pub(crate) random_walk: &'a [String],
    /// `--counter NAME[:…]`.
    pub(crate) counter: &'a [String],
    /// `--metrics`.
    pub(crate) metrics: bool,
    /// `--input-cmd NAME=COMMAND`.
    pub(crate) input_cmd: &'a [String],
    /// `--input-file NAME=PATH`.
    pub(crate) input_file: &'a [String],
    /// `--on-change NAME[:…]`.
    pub(crate) on_change: &'a [String],
}

/// The declaration tables of a resource file, and of the config file's `[device]` section.
/// Entries of one table come in name order (TOML tables are not ordered here).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct Tables {
    /// `metrics = true`.
    pub(crate) metrics: Option<bool>,
    /// `[cmd]`: `name = "command"` or `name = { command = "…", timeout = "2s" }`.
    pub(crate) cmd: BTreeMap<String, toml::Value>,
    /// `[file]`: `name = "path"`.
    pub(crate) file: BTreeMap<String, toml::Value>,
    /// `[const]`: `name = <any TOML value>`.
    #[serde(rename = "const")]
    pub(crate) constant: BTreeMap<String, toml::Value>,
    /// `[sine]`: `name = { period = 60, amplitude = 10, offset = 20 }`.
    pub(crate) sine: BTreeMap<String, toml::Value>,
    /// `[random-walk]`: `name = { step = 0.5, start = 20 }`.
    pub(crate) random_walk: BTreeMap<String, toml::Value>,
    /// `[counter]`: `name = {}` or `name = { start = 0, step = 1 }`.
    pub(crate) counter: BTreeMap<String, toml::Value>,
    /// `[input-cmd]`: like `[cmd]`.
    pub(crate) input_cmd: BTreeMap<String, toml::Value>,
    /// `[input-file]`: like `[file]`.
    pub(crate) input_file: BTreeMap<String, toml::Value>,
    /// `[on-change]`: `name = { every = "1s", threshold = 0.5 }`.
    pub(crate) on_change: BTreeMap<String, toml::Value>,
}

impl Tables {
    /// True when nothing is declared.
    pub(crate) fn is_empty(&self) -> bool {
        *self == Tables::default()
    }

    /// Reads a resource file.
    pub(crate) fn load(path: &Path) -> Result<Tables, SpecError> {
        let text = std::fs::read_to_string(path).map_err(|source| SpecError::ReadFile {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| SpecError::ParseFile {
            path: path.to_owned(),
            source,
        })
    }
}

/// Every declaration, checked.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Declarations {
    /// The resources, in declaration order (DESCRIBE keeps it).
    pub(crate) resources: Vec<Declaration>,
    /// The `--on-change` pollers.
    pub(crate) watches: Vec<Watch>,
}

impl Declarations {
    /// Adds a resource; a name already declared is an error.
    fn add(&mut self, name: &str, kind: Kind, origin: &str) -> Result<(), SpecError> {
        check_name(origin, name)?;
        if let Some(first) = self.resources.iter().find(|d| d.name == name) {
            return Err(SpecError::Duplicate {
                name: name.to_owned(),
                first: first.origin.clone(),
                second: origin.to_owned(),
            });
        }
        self.resources.push(Declaration {
            name: name.to_owned(),
            kind,
            origin: origin.to_owned(),
        });
        Ok(())
    }

    fn add_metrics(&mut self, origin: &str) -> Result<(), SpecError> {
        for metric in Metric::ALL {
            self.add(metric.name(), Kind::Metric(metric), origin)?;
        }
        Ok(())
    }

    fn add_watch(&mut self, watch: Watch) -> Result<(), SpecError> {
        if let Some(first) = self.watches.iter().find(|w| w.name == watch.name) {
            return Err(SpecError::DuplicateWatch {
                name: watch.name,
                first: first.origin.clone(),
                second: watch.origin,
            });
        }
        self.watches.push(watch);
        Ok(())
    }

    /// Adds the command line's declarations. `cmd_timeout` is not needed here: commands keep
    /// `None` and use the global timeout when they are built.
    pub(crate) fn add_flags(&mut self, flags: &Flags<'_>) -> Result<(), SpecError> {
        for text in flags.cmd {
            let (name, command) =
                split_assignment("--cmd", text, "NAME=COMMAND", "'disk=df -h /'")?;
            let command = non_empty_command("--cmd", name, command)?;
            self.add(
                name,
                Kind::Cmd {
                    command,
                    timeout: None,
                },
                "--cmd",
            )?;
        }
        for text in flags.file {
            let (name, path) = split_assignment("--file", text, "NAME=PATH", "motd=/etc/motd")?;
            let path = non_empty_path("--file", name, path)?;
            self.add(name, Kind::File { path }, "--file")?;
        }
        for text in flags.constant {
            let (name, json) = split_assignment("--const", text, "NAME=JSON", "'model=\"rpi4\"'")?;
            let value = parse_json("--const", name, json)?;
            self.add(name, Kind::Const { value }, "--const")?;
        }
        for text in flags.sine {
            let (name, params) = split_params(text);
            let sine = sine("--sine", name, &params)?;
            self.add(name, Kind::Sine(sine), "--sine")?;
        }
        for text in flags.random_walk {
            let (name, params) = split_params(text);
            let walk = random_walk("--random-walk", name, &params)?;
            self.add(name, Kind::RandomWalk(walk), "--random-walk")?;
        }
        for text in flags.counter {
            let (name, params) = split_params(text);
            let counter = counter("--counter", name, &params)?;
            self.add(name, Kind::Counter(counter), "--counter")?;
        }
        if flags.metrics {
            self.add_metrics("--metrics")?;
        }
        for text in flags.input_cmd {
            let (name, command) = split_assignment(
                "--input-cmd",
                text,
                "NAME=COMMAND",
                "'led=logger \"led $IOTMP_INPUT\"'",
            )?;
            let command = non_empty_command("--input-cmd", name, command)?;
            self.add(
                name,
                Kind::InputCmd {
                    command,
                    timeout: None,
                },
                "--input-cmd",
            )?;
        }
        for text in flags.input_file {
            let (name, path) = split_assignment(
                "--input-file",
                text,
                "NAME=PATH",
                "setpoint=/tmp/setpoint.json",
            )?;
            let path = non_empty_path("--input-file", name, path)?;
            self.add(name, Kind::InputFile { path }, "--input-file")?;
        }
        for text in flags.on_change {
            let (name, params) = split_params(text);
            check_name("--on-change", name)?;
            let watch = watch("--on-change", name, &params)?;
            self.add_watch(watch)?;
        }
        Ok(())
    }

    /// Adds the declarations of a resource file or config section; `source` names it in
    /// messages (`res.toml`, `the config file [device]`).
    pub(crate) fn add_tables(&mut self, tables: &Tables, source: &str) -> Result<(), SpecError> {
        let origin = |table: &str| format!("{source} [{table}]");
        for (name, entry) in &tables.cmd {
            let (command, timeout) = command_entry(&origin("cmd"), name, entry)?;
            self.add(name, Kind::Cmd { command, timeout }, &origin("cmd"))?;
        }
        for (name, entry) in &tables.file {
            let path = path_entry(&origin("file"), name, entry)?;
            self.add(name, Kind::File { path }, &origin("file"))?;
        }
        for (name, entry) in &tables.constant {
            let value = toml_value(&origin("const"), name, entry)?;
            self.add(name, Kind::Const { value }, &origin("const"))?;
        }
        for (name, entry) in &tables.sine {
            let sine = sine(
                &origin("sine"),
                name,
                &toml_params(&origin("sine"), name, entry)?,
            )?;
            self.add(name, Kind::Sine(sine), &origin("sine"))?;
        }
        for (name, entry) in &tables.random_walk {
            let table = origin("random-walk");
            let walk = random_walk(&table, name, &toml_params(&table, name, entry)?)?;
            self.add(name, Kind::RandomWalk(walk), &table)?;
        }
        for (name, entry) in &tables.counter {
            let table = origin("counter");
            let counter = counter(&table, name, &toml_params(&table, name, entry)?)?;
            self.add(name, Kind::Counter(counter), &table)?;
        }
        if tables.metrics == Some(true) {
            self.add_metrics(&format!("{source} metrics = true"))?;
        }
        for (name, entry) in &tables.input_cmd {
            let table = origin("input-cmd");
            let (command, timeout) = command_entry(&table, name, entry)?;
            self.add(name, Kind::InputCmd { command, timeout }, &table)?;
        }
        for (name, entry) in &tables.input_file {
            let table = origin("input-file");
            let path = path_entry(&table, name, entry)?;
            self.add(name, Kind::InputFile { path }, &table)?;
        }
        for (name, entry) in &tables.on_change {
            let table = origin("on-change");
            check_name(&table, name)?;
            let watch = watch(&table, name, &toml_params(&table, name, entry)?)?;
            self.add_watch(watch)?;
        }
        Ok(())
    }

    /// Checks what needs every source: each watch names a declared resource.
    pub(crate) fn finish(self) -> Result<Declarations, SpecError> {
        for watch in &self.watches {
            if !self.resources.iter().any(|d| d.name == watch.name) {
                return Err(SpecError::UnknownWatch {
                    origin: watch.origin.clone(),
                    name: watch.name.clone(),
                });
            }
        }
        Ok(self)
    }
}

/// Resource names travel as strings in every message; control characters and surrounding
/// blanks would only make them impossible to type in a URL or a terminal.
fn check_name(origin: &str, name: &str) -> Result<(), SpecError> {
    let problem = if name.is_empty() {
        Some("is empty")
    } else if name.chars().any(char::is_control) {
        Some("holds control characters")
    } else if name.trim() != name {
        Some("starts or ends with blanks")
    } else {
        None
    };
    match problem {
        Some(problem) => Err(SpecError::Name {
            origin: origin.to_owned(),
            name: name.to_owned(),
            problem,
        }),
        None => Ok(()),
    }
}

/// `NAME=VALUE`, split at the first `=` (commands and JSON may hold more).
fn split_assignment<'a>(
    flag: &'static str,
    text: &'a str,
    syntax: &'static str,
    example: &'static str,
) -> Result<(&'a str, &'a str), SpecError> {
    text.split_once('=').ok_or_else(|| SpecError::Syntax {
        flag,
        given: text.to_owned(),
        syntax,
        example,
    })
}

fn non_empty_command(origin: &str, name: &str, command: &str) -> Result<String, SpecError> {
    if command.trim().is_empty() {
        return Err(SpecError::Param {
            origin: origin.to_owned(),
            name: name.to_owned(),
            message: "the command is empty: give the shell command to run".to_owned(),
        });
    }
    Ok(command.to_owned())
}

fn non_empty_path(origin: &str, name: &str, path: &str) -> Result<PathBuf, SpecError> {
    if path.is_empty() {
        return Err(SpecError::Param {
            origin: origin.to_owned(),
            name: name.to_owned(),
            message: "the path is empty: give the file's path".to_owned(),
        });
    }
    Ok(PathBuf::from(path))
}

fn parse_json(origin: &str, name: &str, text: &str) -> Result<Value, SpecError> {
    let json: serde_json::Value = serde_json::from_str(text).map_err(|source| SpecError::Json {
        origin: origin.to_owned(),
        name: name.to_owned(),
        given: text.to_owned(),
        source,
    })?;
    from_json(&json).map_err(|source| SpecError::Value {
        origin: origin.to_owned(),
        name: name.to_owned(),
        source,
    })
}

/// `NAME[:k=v,k=v]`: the name, and the raw parameter text (checked by [`Params::new`]).
fn split_params(text: &str) -> (&str, Vec<(String, String)>) {
    match text.split_once(':') {
        None => (text, Vec::new()),
        Some((name, params)) => {
            let pairs = params
                .split(',')
                .filter(|p| !p.trim().is_empty())
                .map(|p| match p.split_once('=') {
                    Some((k, v)) => (k.trim().to_owned(), v.trim().to_owned()),
                    // A key without a value: `Params::new` names it.
                    None => (p.trim().to_owned(), String::new()),
                })
                .collect();
            (name, pairs)
        }
    }
}

/// A TOML entry of parameters (`{ period = 60 }`) as the flag's `k=v` pairs.
fn toml_params(
    origin: &str,
    name: &str,
    entry: &toml::Value,
) -> Result<Vec<(String, String)>, SpecError> {
    let shape = || SpecError::Shape {
        origin: origin.to_owned(),
        name: name.to_owned(),
        expected: "a table of parameters such as { period = 60, amplitude = 10 } (or {})",
    };
    let table = entry.as_table().ok_or_else(shape)?;
    table
        .iter()
        .map(|(key, value)| {
            let text = match value {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(n) => n.to_string(),
                toml::Value::Float(x) => x.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                _ => {
                    return Err(SpecError::Param {
                        origin: origin.to_owned(),
                        name: name.to_owned(),
                        message: format!("{key} must be a number or a string"),
                    });
                }
            };
            Ok((key.clone(), text))
        })
        .collect()
}

/// `name = "command"` or `name = { command = "…", timeout = "2s" }`.
fn command_entry(
    origin: &str,
    name: &str,
    entry: &toml::Value,
) -> Result<(String, Option<Duration>), SpecError> {
    let shape = || SpecError::Shape {
        origin: origin.to_owned(),
        name: name.to_owned(),
        expected: "a command string, or { command = \"…\", timeout = \"5s\" }",
    };
    match entry {
        toml::Value::String(command) => Ok((non_empty_command(origin, name, command)?, None)),
        toml::Value::Table(table) => {
            let mut command = None;
            let mut timeout = None;
            for (key, value) in table {
                match (key.as_str(), value) {
                    ("command", toml::Value::String(text)) => command = Some(text.as_str()),
                    ("timeout", toml::Value::String(text)) => {
                        timeout = Some(duration(origin, name, "timeout", text)?);
                    }
                    ("timeout", toml::Value::Integer(secs)) => {
                        timeout = Some(duration(origin, name, "timeout", &secs.to_string())?);
                    }
                    ("timeout", toml::Value::Float(secs)) => {
                        timeout = Some(duration(origin, name, "timeout", &secs.to_string())?);
                    }
                    _ => return Err(shape()),
                }
            }
            let command = non_empty_command(origin, name, command.ok_or_else(shape)?)?;
            if timeout.is_some_and(|t| t.is_zero()) {
                return Err(SpecError::Param {
                    origin: origin.to_owned(),
                    name: name.to_owned(),
                    message: "timeout must be above 0: give e.g. timeout = \"5s\"".to_owned(),
                });
            }
            Ok((command, timeout))
        }
        _ => Err(shape()),
    }
}

fn path_entry(origin: &str, name: &str, entry: &toml::Value) -> Result<PathBuf, SpecError> {
    match entry {
        toml::Value::String(path) => non_empty_path(origin, name, path),
        _ => Err(SpecError::Shape {
            origin: origin.to_owned(),
            name: name.to_owned(),
            expected: "a path string such as \"/etc/motd\"",
        }),
    }
}

/// Any TOML value as an IOTMP value: floats are normalised like JSON numbers (spec §5.1),
/// dates become their text.
fn toml_value(origin: &str, name: &str, entry: &toml::Value) -> Result<Value, SpecError> {
    Ok(match entry {
        toml::Value::String(s) => Value::from(s.as_str()),
        toml::Value::Integer(n) => Value::from(*n),
        toml::Value::Float(x) => Value::from_number(*x),
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(d) => Value::from(d.to_string()),
        toml::Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|item| toml_value(origin, name, item))
                .collect::<Result<_, _>>()?,
        ),
        toml::Value::Table(table) => {
            let mut map = iotmp_proto::Map::with_capacity(table.len());
            for (key, item) in table {
                map.insert(key.as_str(), toml_value(origin, name, item)?);
            }
            if Value::Map(map.clone()).depth() > iotmp_proto::value::MAX_DEPTH {
                return Err(SpecError::Value {
                    origin: origin.to_owned(),
                    name: name.to_owned(),
                    source: FromJsonError::TooDeep,
                });
            }
            Value::Map(map)
        }
    })
}

/// Checked `k=v` parameters of one declaration.
struct Params<'a> {
    origin: &'a str,
    name: &'a str,
    pairs: &'a [(String, String)],
}

impl<'a> Params<'a> {
    /// Refuses unknown and repeated keys, naming the accepted ones.
    fn new(
        origin: &'a str,
        name: &'a str,
        pairs: &'a [(String, String)],
        accepted: &[&str],
    ) -> Result<Self, SpecError> {
        check_name(origin, name)?;
        let params = Params {
            origin,
            name,
            pairs,
        };
        for (i, (key, _)) in pairs.iter().enumerate() {
            if !accepted.contains(&key.as_str()) {
                return Err(params.error(format!(
                    "unknown parameter {key:?}: accepted are {}",
                    accepted.join(", ")
                )));
            }
            if pairs.iter().take(i).any(|(k, _)| k == key) {
                return Err(params.error(format!("{key} is given twice: keep one")));
            }
        }
        Ok(params)
    }

    fn error(&self, message: String) -> SpecError {
        SpecError::Param {
            origin: self.origin.to_owned(),
            name: self.name.to_owned(),
            message,
        }
    }

    fn text(&self, key: &str) -> Option<&'a str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn float(&self, key: &str) -> Result<Option<f64>, SpecError> {
        self.text(key)
            .map(|text| match text.parse::<f64>() {
                Ok(x) if x.is_finite() => Ok(x),
                _ => Err(self.error(format!(
                    "{key}={text:?} is not a number: write e.g. {key}=0.5"
                ))),
            })
            .transpose()
    }

    fn integer(&self, key: &str) -> Result<Option<i64>, SpecError> {
        self.text(key)
            .map(|text| {
                text.parse::<i64>().map_err(|_| {
                    self.error(format!(
                        "{key}={text:?} is not a whole number: write e.g. {key}=1"
                    ))
                })
            })
            .transpose()
    }

    fn duration(&self, key: &str) -> Result<Option<Duration>, SpecError> {
        self.text(key)
            .map(|text| duration(self.origin, self.name, key, text))
            .transpose()
    }
}

fn duration(origin: &str, name: &str, key: &str, text: &str) -> Result<Duration, SpecError> {
    text.parse::<Span>()
        .map(Span::get)
        .map_err(|e| SpecError::Param {
            origin: origin.to_owned(),
            name: name.to_owned(),
            message: format!("{key}: {e}"),
        })
}

fn sine(origin: &str, name: &str, pairs: &[(String, String)]) -> Result<Sine, SpecError> {
    let p = Params::new(origin, name, pairs, &["period", "amplitude", "offset"])?;
    let period = p.duration("period")?.unwrap_or(Duration::from_secs(60));
    if period.is_zero() {
        return Err(p.error("period must be above 0: write e.g. period=60 (seconds)".to_owned()));
    }
    Ok(Sine {
        period,
        amplitude: p.float("amplitude")?.unwrap_or(10.0),
        offset: p.float("offset")?.unwrap_or(20.0),
    })
}

fn random_walk(
    origin: &str,
    name: &str,
    pairs: &[(String, String)],
) -> Result<RandomWalk, SpecError> {
    let p = Params::new(origin, name, pairs, &["step", "start", "min", "max"])?;
    let walk = RandomWalk {
        step: p.float("step")?.unwrap_or(0.5),
        start: p.float("start")?.unwrap_or(20.0),
        min: p.float("min")?,
        max: p.float("max")?,
    };
    if walk.step < 0.0 {
        return Err(p.error("step must be 0 or more: write e.g. step=0.5".to_owned()));
    }
    if let (Some(min), Some(max)) = (walk.min, walk.max)
        && min > max
    {
        return Err(p.error(format!("min={min} is above max={max}: swap them")));
    }
    if walk.min.is_some_and(|min| walk.start < min) || walk.max.is_some_and(|max| walk.start > max)
    {
        return Err(p.error(format!(
            "start={} is outside min..max: give a start between them",
            walk.start
        )));
    }
    Ok(walk)
}

fn counter(origin: &str, name: &str, pairs: &[(String, String)]) -> Result<Counter, SpecError> {
    let p = Params::new(origin, name, pairs, &["start", "step"])?;
    Ok(Counter {
        start: p.integer("start")?.unwrap_or(0),
        step: p.integer("step")?.unwrap_or(1),
    })
}

fn watch(origin: &str, name: &str, pairs: &[(String, String)]) -> Result<Watch, SpecError> {
    let p = Params::new(origin, name, pairs, &["every", "threshold"])?;
    let every = p.duration("every")?.unwrap_or(Duration::from_secs(1));
    if every < MIN_EVERY {
        return Err(p.error(format!(
            "every must be at least {} ms: write e.g. every=1s",
            MIN_EVERY.as_millis()
        )));
    }
    let threshold = p.float("threshold")?.unwrap_or(0.0);
    if threshold < 0.0 {
        return Err(p.error("threshold must be 0 or more: write e.g. threshold=0.5".to_owned()));
    }
    Ok(Watch {
        name: name.to_owned(),
        every,
        threshold,
        origin: origin.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    fn from_flags<'a>(build: impl FnOnce(&mut Flags<'a>)) -> Result<Declarations, SpecError> {
        let mut flags = Flags::default();
        build(&mut flags);
        let mut declarations = Declarations::default();
        declarations.add_flags(&flags)?;
        declarations.finish()
    }

    fn from_toml(text: &str) -> Result<Declarations, SpecError> {
        let tables: Tables = toml::from_str(text).unwrap();
        let mut declarations = Declarations::default();
        declarations.add_tables(&tables, "res.toml")?;
        declarations.finish()
    }

    fn error_text(result: Result<Declarations, SpecError>) -> String {
        result.unwrap_err().to_string()
    }

    #[test]
    fn flags_of_every_kind() {
        let cmd = strings(&["disk=df -h / | tail -n 1", "json=echo '{\"a\":1}'"]);
        let file = strings(&["motd=/etc/motd"]);
        let constant = strings(&["model=\"rpi4\"", "limits={\"max\":3.5}"]);
        let sine = strings(&["temp:period=30s,amplitude=5", "wave"]);
        let walk = strings(&["hum:step=0.25,start=50,min=0,max=100"]);
        let counter = strings(&["ticks", "down:start=10,step=-2"]);
        let input_cmd = strings(&["led=cat > /dev/null"]);
        let input_file = strings(&["setpoint=/tmp/setpoint.json"]);
        let on_change = strings(&["temp:every=500ms,threshold=0.5"]);
        let d = from_flags(|f| {
            f.cmd = &cmd;
            f.file = &file;
            f.constant = &constant;
            f.sine = &sine;
            f.random_walk = &walk;
            f.counter = &counter;
            f.metrics = true;
            f.input_cmd = &input_cmd;
            f.input_file = &input_file;
            f.on_change = &on_change;
        })
        .unwrap();
        let names: Vec<&str> = d.resources.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "disk", "json", "motd", "model", "limits", "temp", "wave", "hum", "ticks", "down",
                "cpu", "memory", "load", "uptime", "led", "setpoint"
            ]
        );
        assert_eq!(
            d.resources[0].kind,
            Kind::Cmd {
                command: "df -h / | tail -n 1".into(),
                timeout: None
            }
        );
        assert_eq!(
            d.resources[3].kind,
            Kind::Const {
                value: Value::from("rpi4")
            }
        );
        let mut limits = iotmp_proto::Map::new();
        limits.insert("max", Value::F32(3.5));
        assert_eq!(
            d.resources[4].kind,
            Kind::Const {
                value: Value::Map(limits)
            }
        );
        assert_eq!(
            d.resources[5].kind,
            Kind::Sine(Sine {
                period: Duration::from_secs(30),
                amplitude: 5.0,
                offset: 20.0
            })
        );
        assert_eq!(
            d.resources[6].kind,
            Kind::Sine(Sine {
                period: Duration::from_secs(60),
                amplitude: 10.0,
                offset: 20.0
            })
        );
        assert_eq!(
            d.resources[7].kind,
            Kind::RandomWalk(RandomWalk {
                step: 0.25,
                start: 50.0,
                min: Some(0.0),
                max: Some(100.0)
            })
        );
        assert_eq!(
            d.resources[9].kind,
            Kind::Counter(Counter {
                start: 10,
                step: -2
            })
        );
        assert_eq!(d.resources[10].kind, Kind::Metric(Metric::Cpu));
        assert_eq!(
            d.watches,
            [Watch {
                name: "temp".into(),
                every: Duration::from_millis(500),
                threshold: 0.5,
                origin: "--on-change".into()
            }]
        );
    }

    #[test]
    fn a_full_resource_file() {
        let d = from_toml(
            r#"
            metrics = false
            [cmd]
            hostname = "hostname"
            slow = { command = "sleep 1; echo done", timeout = "3s" }
            [file]
            motd = "/etc/motd"
            [const]
            model = "rpi4"
            limits = { max = 3.5, tags = ["a", 1, 2.0] }
            [sine]
            temp = { period = "30s", amplitude = 5 }
            [random-walk]
            humidity = { step = 0.5, start = 50 }
            [counter]
            ticks = {}
            [input-cmd]
            led = "logger led=$IOTMP_INPUT"
            [input-file]
            setpoint = "/tmp/setpoint.json"
            [on-change]
            temp = { every = 1, threshold = 0.5 }
            "#,
        )
        .unwrap();
        let names: Vec<&str> = d.resources.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "hostname", "slow", "motd", "limits", "model", "temp", "humidity", "ticks", "led",
                "setpoint"
            ]
        );
        assert_eq!(
            d.resources[1].kind,
            Kind::Cmd {
                command: "sleep 1; echo done".into(),
                timeout: Some(Duration::from_secs(3))
            }
        );
        assert_eq!(d.resources[1].origin, "res.toml [cmd]");
        let Kind::Const { value } = &d.resources[3].kind else {
            panic!("{:?}", d.resources[3]);
        };
        assert_eq!(
            iotmp_proto::json::value::to_json(value).to_string(),
            r#"{"max":3.5,"tags":["a",1,2]}"#
        );
        assert_eq!(d.watches[0].every, Duration::from_secs(1));
        assert_eq!(d.watches[0].threshold, 0.5);
    }

    #[test]
    fn flag_mistakes_are_explained() {
        let cases: Vec<(Vec<String>, &str, &str)> = vec![
            (
                strings(&["disk"]),
                "cmd",
                "--cmd \"disk\" is not of the form NAME=COMMAND",
            ),
            (strings(&["=df"]), "cmd", "resource name \"\" is empty"),
            (strings(&["disk=  "]), "cmd", "the command is empty"),
            (strings(&["model=rpi4"]), "const", "is not JSON: quote text"),
            (
                strings(&["big=18446744073709551616"]),
                "const",
                "cannot be carried by IOTMP",
            ),
            (
                strings(&["t:periode=5"]),
                "sine",
                "unknown parameter \"periode\": accepted are period, amplitude, offset",
            ),
            (strings(&["t:period=0"]), "sine", "period must be above 0"),
            (
                strings(&["t:amplitude=loud"]),
                "sine",
                "amplitude=\"loud\" is not a number",
            ),
            (
                strings(&["t:period=5,period=6"]),
                "sine",
                "period is given twice",
            ),
            (strings(&["t:period=5 parsecs"]), "sine", "invalid duration"),
            (strings(&["h:step=-1"]), "walk", "step must be 0 or more"),
            (strings(&["h:min=5,max=1"]), "walk", "min=5 is above max=1"),
            (strings(&["h:start=50,max=10"]), "walk", "outside min..max"),
            (strings(&["n:step=1.5"]), "counter", "is not a whole number"),
            (
                strings(&["x:every=1ms"]),
                "on-change",
                "every must be at least 10 ms",
            ),
            (
                strings(&["x:threshold=-1"]),
                "on-change",
                "threshold must be 0 or more",
            ),
        ];
        for (values, kind, needle) in cases {
            let err = error_text(from_flags(|f| match kind {
                "cmd" => f.cmd = &values,
                "const" => f.constant = &values,
                "sine" => f.sine = &values,
                "walk" => f.random_walk = &values,
                "counter" => f.counter = &values,
                _ => f.on_change = &values,
            }));
            assert!(err.contains(needle), "{values:?}: {err}");
        }
    }

    #[test]
    fn duplicates_and_unknown_watches_are_refused() {
        let cmd = strings(&["cpu=cat /proc/loadavg"]);
        let err = error_text(from_flags(|f| {
            f.cmd = &cmd;
            f.metrics = true;
        }));
        assert_eq!(
            err,
            "the resource \"cpu\" is declared twice (--cmd and --metrics): rename or remove one"
        );
        let on_change = strings(&["heading"]);
        let err = error_text(from_flags(|f| f.on_change = &on_change));
        assert!(
            err.starts_with("--on-change: \"heading\" is not a declared resource"),
            "{err}"
        );
        let twice = strings(&["t", "t:every=2s"]);
        let sine = strings(&["t"]);
        let err = error_text(from_flags(|f| {
            f.sine = &sine;
            f.on_change = &twice;
        }));
        assert!(err.contains("already watched"), "{err}");

        // The same name from a flag and a file.
        let mut d = Declarations::default();
        d.add_flags(&Flags {
            sine: &sine,
            ..Flags::default()
        })
        .unwrap();
        let tables: Tables = toml::from_str("[counter]\nt = {}\n").unwrap();
        let err = d.add_tables(&tables, "res.toml").unwrap_err().to_string();
        assert!(err.contains("(--sine and res.toml [counter])"), "{err}");
    }

    #[test]
    fn toml_mistakes_are_explained() {
        for (text, needle) in [
            (
                "[cmd]\nx = 1\n",
                "res.toml [cmd] x: expected a command string",
            ),
            (
                "[cmd]\nx = { command = \"ls\", timeot = 1 }\n",
                "expected a command string",
            ),
            (
                "[cmd]\nx = { command = \"ls\", timeout = 0 }\n",
                "timeout must be above 0",
            ),
            (
                "[cmd]\nx = { timeout = \"1s\" }\n",
                "expected a command string",
            ),
            ("[file]\nx = []\n", "expected a path string"),
            ("[sine]\nx = 5\n", "expected a table of parameters"),
            (
                "[sine]\nx = { period = [1] }\n",
                "period must be a number or a string",
            ),
            (
                "[counter]\nx = { start = \"ten\" }\n",
                "start=\"ten\" is not a whole number",
            ),
            ("[on-change]\nx = {}\n", "\"x\" is not a declared resource"),
            ("[const]\n\"\" = 1\n", "resource name \"\" is empty"),
        ] {
            let err = error_text(from_toml(text));
            assert!(err.contains(needle), "{text:?}: {err}");
        }
        // Unknown tables are caught by serde, with the key's name.
        let err = toml::from_str::<Tables>("[sines]\nx = {}\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("sines"), "{err}");
    }

    #[test]
    fn missing_resource_file_names_the_path() {
        let err = Tables::load(Path::new("/nonexistent/res.toml")).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cannot read the resource file /nonexistent/res.toml"),
            "{err}"
        );
    }
}
