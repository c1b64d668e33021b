//! `iotmp recorder add|list|remove`: the recorders of the registry (data buckets).
//!
//! These commands only change the database. A running `iotmp server` notices the change on its
//! next registry refresh (it polls `PRAGMA data_version` every couple of seconds) and starts or
//! stops the recorder then; a stopped server starts every recorder when it starts.

use serde_json::json;

use super::render::table;
use super::{RegistryCmdError, note, open, print, print_json};
use crate::cli::{RecorderAddArgs, RecorderCommand, RecorderListArgs, RecorderRemoveArgs};
use crate::config::ServerConfig;
use crate::store::{OpenMode, Recorder, RecorderId};
use crate::values::Span;

/// Longest `--every`: one day, as for stream subscriptions (spec §8.4).
const MAX_EVERY_SECS: u64 = 86_400;

/// Runs `iotmp recorder add|list|remove`.
pub(crate) fn run(command: RecorderCommand, config: &ServerConfig) -> Result<(), RegistryCmdError> {
    match command {
        RecorderCommand::Add(args) => add(&args, config),
        RecorderCommand::List(args) => list(&args, config),
        RecorderCommand::Remove(args) => remove(&args, config),
    }
}

/// `--every`: whole seconds 0..=86400, written as a plain number or with a unit (`10s`, `5m`).
pub(crate) fn parse_every(text: &str) -> Result<u32, String> {
    let span: Span = text
        .parse()
        .map_err(|e: crate::values::BadDuration| e.to_string())?;
    let duration = span.get();
    if duration.subsec_nanos() != 0 || duration.as_secs() > MAX_EVERY_SECS {
        return Err(format!(
            "a recorder samples every 0 to 86400 whole seconds (0: every value), not {text:?}"
        ));
    }
    u32::try_from(duration.as_secs()).map_err(|e| e.to_string())
}

/// `recorder add USER/DEVICE RESOURCE --every N --bucket B`.
fn add(args: &RecorderAddArgs, config: &ServerConfig) -> Result<(), RegistryCmdError> {
    let mut registry = open(&args.registry, config, OpenMode::Existing)?;
    let target = &args.target;
    let recorder = registry.store_mut().add_recorder(
        &target.user,
        &target.device,
        &args.resource,
        args.every,
        &args.bucket,
    )?;
    if args.registry.json {
        return print_json(&recorder_json(&recorder));
    }
    note(&format!(
        "Added recorder {}: {} of {target} {} into bucket {} of {}. A running server starts it \
         within a few seconds.",
        recorder.id.0,
        recorder.resource,
        every_text(recorder.interval_secs),
        recorder.bucket,
        target.user,
    ));
    print(&format!("{}\n", recorder.id.0))
}

/// `recorder list [USER]`.
fn list(args: &RecorderListArgs, config: &ServerConfig) -> Result<(), RegistryCmdError> {
    let registry = open(&args.registry, config, OpenMode::Existing)?;
    let recorders = registry.store().list_recorders(args.user.as_deref())?;
    if args.registry.json {
        let list: Vec<_> = recorders.iter().map(recorder_json).collect();
        return print_json(&json!(list));
    }
    if recorders.is_empty() {
        note(
            "No recorders: `iotmp recorder add USER/DEVICE RESOURCE --every N --bucket B` adds one.",
        );
        return Ok(());
    }
    let rows: Vec<Vec<String>> = recorders
        .iter()
        .map(|r| {
            vec![
                r.id.0.to_string(),
                format!("{}/{}", r.user, r.device),
                r.resource.clone(),
                match r.interval_secs {
                    0 => "each value".to_owned(),
                    n => format!("{n} s"),
                },
                r.bucket.clone(),
            ]
        })
        .collect();
    print(&table(
        &["ID", "DEVICE", "RESOURCE", "EVERY", "BUCKET"],
        &rows,
    ))
}

/// `recorder remove ID`.
fn remove(args: &RecorderRemoveArgs, config: &ServerConfig) -> Result<(), RegistryCmdError> {
    let mut registry = open(&args.registry, config, OpenMode::Existing)?;
    registry.store_mut().remove_recorder(RecorderId(args.id))?;
    if args.registry.json {
        return print_json(&json!({ "removed": args.id }));
    }
    print(&format!(
        "Removed recorder {}; its bucket and records stay.\n",
        args.id
    ))
}

/// One recorder of `--json` output.
fn recorder_json(r: &Recorder) -> serde_json::Value {
    json!({
        "id": r.id.0,
        "user": r.user,
        "device": r.device,
        "resource": r.resource,
        "interval": r.interval_secs,
        "bucket": r.bucket,
    })
}

/// `every 10 s`, or `every value` for 0.
fn every_text(secs: u32) -> String {
    match secs {
        0 => "every value".to_owned(),
        n => format!("every {n} s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_takes_whole_seconds() {
        assert_eq!(parse_every("10"), Ok(10));
        assert_eq!(parse_every("0"), Ok(0));
        assert_eq!(parse_every("5m"), Ok(300));
        assert_eq!(parse_every("1h"), Ok(3600));
        assert_eq!(parse_every("86400s"), Ok(86_400));
        for bad in ["1.5", "500ms", "86401", "-1", "x", "25h"] {
            assert!(parse_every(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_texts() {
        assert_eq!(every_text(0), "every value");
        assert_eq!(every_text(10), "every 10 s");
    }
}
