//! Helpers for the `iotmp` binary tests: running it with a clean environment, and reading the
//! spec's vector files.
//!
//! The vector helpers mirror `tests/src/lib.rs` (`vectors_dir`, `load_json`, `hex_bytes`,
//! `name_of`, `str_member`) rather than depend on the `iotmp-tests` crate, which pulls in both
//! drivers: a CLI test should not fail to build because a driver is mid-change.

pub(crate) mod server;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::Value as Json;

/// Variables that would change what the binary does; every run starts without them.
const ISOLATED_VARS: [&str; 5] = [
    "IOTMP_CONFIG",
    "IOTMP_DIALECT",
    "IOTMP_PSON",
    "IOTMP_MAX_BODY",
    "RUST_LOG",
];

/// What one run of `iotmp` did.
#[derive(Debug)]
pub(crate) struct Run {
    /// Exit status (-1 if killed by a signal).
    pub(crate) code: i32,
    /// Raw stdout.
    pub(crate) stdout: Vec<u8>,
    /// stderr as text.
    pub(crate) stderr: String,
}

impl Run {
    /// stdout as text.
    pub(crate) fn out(&self) -> String {
        String::from_utf8(self.stdout.clone()).expect("stdout is UTF-8")
    }

    /// stdout lines.
    pub(crate) fn lines(&self) -> Vec<String> {
        self.out().lines().map(str::to_owned).collect()
    }
}

/// Runs `iotmp args…` with `stdin` and extra environment variables.
pub(crate) fn iotmp_env(args: &[&str], stdin: &[u8], env: &[(&str, &str)]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_iotmp"));
    command
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for var in ISOLATED_VARS {
        command.env_remove(var);
    }
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn().expect("the iotmp binary runs");
    let mut pipe = child.stdin.take().expect("stdin is piped");
    let input = stdin.to_vec();
    // Written from another thread: a large input could otherwise fill the pipe while the child
    // waits for us to read its output.
    let writer = std::thread::spawn(move || {
        let _ = pipe.write_all(&input);
    });
    let output = child.wait_with_output().expect("iotmp finishes");
    writer.join().expect("stdin writer");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: output.stdout,
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Runs `iotmp args…` with `stdin`.
pub(crate) fn iotmp(args: &[&str], stdin: &str) -> Run {
    iotmp_env(args, stdin.as_bytes(), &[])
}

/// The repository root (this crate's parent).
pub(crate) fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The vector folder: `$IOTMP_VECTORS`, else `../shared/spec/vectors` from the repository root.
pub(crate) fn vectors_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("IOTMP_VECTORS") {
        return PathBuf::from(dir);
    }
    repo_root().join("../shared/spec/vectors")
}

/// Reads and parses one vector file (a JSON array).
pub(crate) fn load_json(name: &str) -> Vec<Json> {
    let path = vectors_dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read vector file {}: {e} (set IOTMP_VECTORS to the vectors folder)",
            path.display()
        )
    });
    match serde_json::from_str::<Json>(&text) {
        Ok(Json::Array(entries)) => entries,
        Ok(_) => panic!("{} is not a JSON array", path.display()),
        Err(e) => panic!("{} is not valid JSON: {e}", path.display()),
    }
}

/// Parses the vectors' hex form.
pub(crate) fn hex_bytes(text: &str) -> Vec<u8> {
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    hex::decode(&compact).unwrap_or_else(|e| panic!("bad hex {text:?}: {e}"))
}

/// The `name` member of a vector entry.
pub(crate) fn name_of(entry: &Json) -> &str {
    entry
        .get("name")
        .and_then(Json::as_str)
        .unwrap_or("<unnamed>")
}

/// A string member of a vector entry.
pub(crate) fn str_member<'a>(entry: &'a Json, member: &str) -> &'a str {
    entry
        .get(member)
        .and_then(Json::as_str)
        .unwrap_or_else(|| panic!("{}: missing string {member:?}", name_of(entry)))
}

/// Structural equality where object member order counts: inside values, a map's order is
/// part of the value (vectors README §1).
pub(crate) fn ordered_eq(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::Object(x), Json::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y.iter())
                    .all(|((ka, va), (kb, vb))| ka == kb && ordered_eq(va, vb))
        }
        (Json::Array(x), Json::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| ordered_eq(p, q))
        }
        _ => a == b,
    }
}

/// Two message objects describe the same message: the same members (in any order, since a
/// message's members are named fields), each with an equal value (map order counts there).
pub(crate) fn same_message(a: &Json, b: &Json) -> bool {
    match (a.as_object(), b.as_object()) {
        (Some(x), Some(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| ordered_eq(v, w)))
        }
        _ => false,
    }
}
