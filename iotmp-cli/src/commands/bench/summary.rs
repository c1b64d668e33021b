//! Printing a summary: the text form for people, or one JSON object (`--json`) whose field
//! names are part of the command's interface (listed in `iotmp bench --help`).

use std::collections::BTreeMap;
use std::io::Write as _;

use serde::Serialize;

use super::BenchError;
use crate::output::{self, OutputError};

/// A summary that also has a text form.
pub(crate) trait Summary: Serialize {
    /// The lines people read.
    fn text(&self) -> String;
}

/// Prints `summary` on stdout, as JSON or text.
pub(crate) fn print(summary: &impl Summary, json: bool) -> Result<(), BenchError> {
    let text = if json {
        serde_json::to_string(summary).map_err(|e| OutputError(std::io::Error::other(e)))?
    } else {
        summary.text()
    };
    let mut out = std::io::stdout().lock();
    output::check(writeln!(out, "{}", text.trim_end()).and_then(|()| out.flush()))?;
    Ok(())
}

/// Merges failure reasons of several roles, each reason prefixed by its role.
pub(crate) fn reasons(parts: &[(&str, &BTreeMap<String, u64>)]) -> BTreeMap<String, u64> {
    let mut all = BTreeMap::new();
    for (role, reasons) in parts {
        for (reason, count) in reasons.iter() {
            *all.entry(format!("{role}: {reason}")).or_default() += count;
        }
    }
    all
}

/// Failure reasons as indented text lines (nothing when there are none).
pub(crate) fn reasons_text(reasons: &BTreeMap<String, u64>) -> String {
    reasons
        .iter()
        .map(|(reason, count)| format!("    {count} × {reason}\n"))
        .collect()
}

/// `bytes` as a human figure.
pub(crate) fn bytes(n: u64) -> String {
    if n >= 10 * 1024 * 1024 {
        format!("{:.1} MiB", n as f64 / 1048576.0)
    } else if n >= 10 * 1024 {
        format!("{:.1} KiB", n as f64 / 1024.0)
    } else {
        format!("{n} B")
    }
}
