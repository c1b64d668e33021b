//! Running a resource's shell command with a deadline and a cap on its output.
//!
//! Resource handlers run on the driver's thread (see the module docs of
//! [`super`]), so a command must never hold it for long: each run has a timeout, after which
//! the command's whole process group is killed (a `sh -c` pipeline has children that killing
//! `sh` alone would leave running, still holding the output pipe). Output beyond the cap is an
//! error rather than a truncation: half a JSON document is not a value.

use std::io::{self, Read, Write};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use thiserror::Error;

/// How much of stderr is kept for the error message; the rest is read and dropped so that a
/// chatty command does not block on a full pipe.
const STDERR_KEPT: usize = 1024;

/// Once the command exited, how long its output pipes may stay open: only a background process
/// it left behind holds them longer.
const PIPE_GRACE: Duration = Duration::from_millis(500);

/// The longest pause between two checks of whether the command exited: short commands finish
/// in a few milliseconds, and the checks start at 1 ms and double up to this.
const MAX_POLL: Duration = Duration::from_millis(20);

/// One shell command, run afresh for each read or input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Exec {
    /// The `sh -c` text.
    pub(crate) command: String,
    /// The deadline of one run.
    pub(crate) timeout: Duration,
    /// The largest stdout accepted, in bytes.
    pub(crate) max_output: usize,
}

/// Why a run gave no output.
#[derive(Debug, Error)]
pub(crate) enum ExecError {
    /// `sh` could not be started.
    #[error("cannot start `sh -c`: {0}")]
    Spawn(#[source] io::Error),
    /// The deadline passed; the command and its children were killed.
    #[error("the command did not finish within {0:?} and was killed")]
    TimedOut(Duration),
    /// More output than the cap.
    #[error("the command printed more than {0} bytes (raise --max-value-size)")]
    TooLarge(usize),
    /// A non-zero exit status.
    #[error("the command failed ({status}){stderr}")]
    Failed {
        /// The status.
        status: ExitStatus,
        /// `": <first line of stderr>"`, or nothing.
        stderr: String,
    },
    /// The command exited but something it started in the background kept its output open.
    #[error(
        "the command exited but a background process still holds its output: redirect that process's output (cmd > /dev/null &)"
    )]
    PipeHeld,
    /// Waiting for the command failed.
    #[error("waiting for the command failed: {0}")]
    Wait(#[source] io::Error),
}

impl ExecError {
    /// The HTTP-like code of the ERROR the device answers with (spec §6.10): a timeout is a
    /// gateway timeout, anything else a handler failure.
    pub(crate) const fn code(&self) -> u32 {
        match self {
            ExecError::TimedOut(_) => 504,
            _ => 500,
        }
    }
}

enum Pipe {
    Out(io::Result<Vec<u8>>),
    Err(Vec<u8>),
}

impl Exec {
    /// Runs the command; `input` goes to its stdin and into `IOTMP_INPUT`. Returns stdout.
    pub(crate) fn run(&self, input: Option<&str>) -> Result<Vec<u8>, ExecError> {
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(&self.command)
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(text) = input {
            command.env("IOTMP_INPUT", text);
        }
        #[cfg(unix)]
        {
            // Its own process group, so that a timeout can kill the pipeline as a whole.
            use std::os::unix::process::CommandExt as _;
            command.process_group(0);
        }
        let mut child = command.spawn().map_err(ExecError::Spawn)?;

        // The pipes are drained on their own threads while we wait: a command that fills a
        // pipe would otherwise block on it and only look slow.
        let (tx, rx) = mpsc::channel();
        let mut expected = 0;
        if let Some(mut stdout) = child.stdout.take() {
            let (tx, cap) = (tx.clone(), self.max_output.saturating_add(1));
            let read = move || {
                let mut bytes = Vec::new();
                // One byte past the cap tells "exactly the cap" from "more".
                let result = (&mut stdout)
                    .take(u64::try_from(cap).unwrap_or(u64::MAX))
                    .read_to_end(&mut bytes)
                    .map(|_| bytes);
                let _ = tx.send(Pipe::Out(result));
            };
            if spawn_helper("iotmp-cmd-stdout", read) {
                expected += 1;
            }
        }
        if let Some(mut stderr) = child.stderr.take() {
            let tx = tx.clone();
            let read = move || {
                let mut kept = Vec::new();
                let _ = (&mut stderr)
                    .take(STDERR_KEPT as u64)
                    .read_to_end(&mut kept);
                let _ = io::copy(&mut stderr, &mut io::sink());
                let _ = tx.send(Pipe::Err(kept));
            };
            if spawn_helper("iotmp-cmd-stderr", read) {
                expected += 1;
            }
        }
        drop(tx);
        if let (Some(mut stdin), Some(text)) = (child.stdin.take(), input) {
            let text = text.to_owned();
            // A command that does not read its stdin must not block us either.
            let _ = spawn_helper("iotmp-cmd-stdin", move || {
                let _ = stdin.write_all(text.as_bytes());
            });
        }

        let deadline = Instant::now() + self.timeout;
        let status = match wait_until(&mut child, deadline) {
            Ok(Some(status)) => status,
            Ok(None) => {
                kill(&mut child);
                return Err(ExecError::TimedOut(self.timeout));
            }
            Err(e) => {
                kill(&mut child);
                return Err(ExecError::Wait(e));
            }
        };

        let (mut stdout, mut stderr) = (None, Vec::new());
        let grace = Instant::now() + PIPE_GRACE;
        for _ in 0..expected {
            let left = grace.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(Pipe::Out(result)) => stdout = Some(result),
                Ok(Pipe::Err(bytes)) => stderr = bytes,
                Err(_) => {
                    // Whatever it left behind is in the group: it goes too.
                    kill_group(&child);
                    return Err(ExecError::PipeHeld);
                }
            }
        }
        let stdout = stdout
            .unwrap_or_else(|| Ok(Vec::new()))
            .map_err(ExecError::Wait)?;
        // Before the status: a command stopped reading from dies of SIGPIPE, and "too much
        // output" is the reason worth telling.
        if stdout.len() > self.max_output {
            return Err(ExecError::TooLarge(self.max_output));
        }
        if !status.success() {
            let text = String::from_utf8_lossy(&stderr);
            let first = text.lines().map(str::trim).find(|l| !l.is_empty());
            return Err(ExecError::Failed {
                status,
                stderr: first.map(|l| format!(": {l}")).unwrap_or_default(),
            });
        }
        Ok(stdout)
    }
}

/// Starts a helper thread; false if the system has no thread to give (the pipe is then simply
/// not read, which the caller accounts for).
fn spawn_helper(name: &str, work: impl FnOnce() + Send + 'static) -> bool {
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(work)
        .is_ok()
}

/// Waits for `child` to exit, until `deadline`; `None` when it is still running then.
fn wait_until(child: &mut Child, deadline: Instant) -> io::Result<Option<ExitStatus>> {
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        std::thread::sleep(pause.min(left));
        pause = (pause * 2).min(MAX_POLL);
    }
}

/// Kills the command with everything it started, and reaps it.
fn kill(child: &mut Child) {
    kill_group(child);
    let _ = child.kill();
    let _ = child.wait();
}

/// SIGKILL to the command's process group (its pid: see `process_group(0)` above).
#[cfg(unix)]
fn kill_group(child: &Child) {
    use rustix::process::{Pid, Signal, kill_process_group};
    // The group may be gone already: nothing left to kill is fine.
    let _ = kill_process_group(Pid::from_child(child), Signal::KILL);
}

#[cfg(not(unix))]
fn kill_group(_child: &Child) {}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn exec(command: &str, timeout_ms: u64) -> Exec {
        Exec {
            command: command.to_owned(),
            timeout: Duration::from_millis(timeout_ms),
            max_output: 64,
        }
    }

    #[test]
    fn output_and_input() {
        assert_eq!(exec("echo hello", 5000).run(None).unwrap(), b"hello\n");
        let out = exec("cat; printf ' %s' \"$IOTMP_INPUT\"", 5000)
            .run(Some("{\"on\":true}"))
            .unwrap();
        assert_eq!(out, b"{\"on\":true} {\"on\":true}");
    }

    #[test]
    fn failures_say_why() {
        let err = exec("echo oops >&2; exit 3", 5000).run(None).unwrap_err();
        assert_eq!(err.code(), 500);
        let text = err.to_string();
        assert!(
            text.contains("exit status: 3") && text.ends_with(": oops"),
            "{text}"
        );

        let started = Instant::now();
        let err = exec("sleep 5 | cat", 200).run(None).unwrap_err();
        assert!(matches!(err, ExecError::TimedOut(_)), "{err}");
        assert_eq!(err.code(), 504);
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "the pipeline was killed"
        );

        let err = exec("yes", 5000).run(None).unwrap_err();
        assert!(matches!(err, ExecError::TooLarge(64)), "{err}");
        // Exactly the cap is fine.
        let out = exec("head -c 64 /dev/zero", 5000).run(None).unwrap();
        assert_eq!(out.len(), 64);
    }

    #[test]
    fn background_children_do_not_hang_the_read() {
        let started = Instant::now();
        let err = exec("sleep 5 & echo started", 5000).run(None).unwrap_err();
        assert!(matches!(err, ExecError::PipeHeld), "{err}");
        assert!(started.elapsed() < Duration::from_secs(3));
        // Redirected, as the message says, it works.
        let out = exec("sleep 5 > /dev/null 2>&1 & echo started", 5000)
            .run(None)
            .unwrap();
        assert_eq!(out, b"started\n");
    }
}
