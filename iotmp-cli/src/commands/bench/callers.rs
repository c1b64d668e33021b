//! The rpc role: `--concurrency` keep-alive HTTP/1.1 connections on one mio loop, each with
//! one `GET .../resources/v` (a RUN without input, spec §8.2) in flight at a time, cycling
//! over the devices. Responses are parsed with httparse and read to their `Content-Length`.

use std::collections::BTreeMap;
use std::io::{self, Read as _, Write as _};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use super::clock::{Clock, Counter, Flag, Window};
use super::fleet::RESOURCE;
use super::stats::latency_histogram;
use super::system::{connect_done, connect_from, source_address};

/// Source addresses of the callers start after those of the devices.
const SOURCE_OFFSET: usize = 200_000;

/// The largest response head or body accepted (a RUN answer is a few bytes).
const MAX_RESPONSE: usize = 64 * 1024;

/// What the callers do.
#[derive(Debug)]
pub(crate) struct CallPlan {
    /// The server's HTTP API.
    pub(crate) http: SocketAddr,
    /// The devices' owner.
    pub(crate) user: String,
    /// Its API token.
    pub(crate) token: String,
    /// The devices to call, in turn.
    pub(crate) devices: Vec<String>,
    /// Connections, each with one request in flight.
    pub(crate) concurrency: usize,
}

/// What the callers' loop and the main thread share.
#[derive(Debug, Default)]
pub(crate) struct CallShared {
    /// 200 answers completed inside the window.
    pub(crate) ok: Counter,
    /// Other statuses, broken connections, inside the window.
    pub(crate) failed: Counter,
    /// End the loop.
    pub(crate) stop: Flag,
    /// The measured window (by request start time).
    pub(crate) window: Window,
}

/// What the callers report.
#[derive(Debug)]
pub(crate) struct CallReport {
    /// Round trips of the 200 answers, µs.
    pub(crate) latency: Histogram<u64>,
    /// Failures by reason.
    pub(crate) failures: BTreeMap<String, u64>,
}

#[derive(Debug)]
struct Caller {
    stream: Option<TcpStream>,
    connecting: bool,
    /// Start of the request in flight, if any.
    sent_us: Option<u64>,
    input: Vec<u8>,
}

/// Runs the callers until `shared.stop`; meant for its own thread.
pub(crate) fn run(
    plan: &CallPlan,
    shared: &Arc<CallShared>,
    clock: Clock,
) -> io::Result<CallReport> {
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(256);
    let mut loop_state = Loop {
        plan,
        shared,
        clock,
        request: Vec::with_capacity(512),
        read_buf: vec![0; 16 * 1024],
        next_device: 0,
        report: CallReport {
            latency: latency_histogram(),
            failures: BTreeMap::new(),
        },
    };
    let mut callers: Vec<Caller> = (0..plan.concurrency)
        .map(|_| Caller {
            stream: None,
            connecting: false,
            sent_us: None,
            input: Vec::new(),
        })
        .collect();
    for index in 0..callers.len() {
        if let Some(caller) = callers.get_mut(index) {
            loop_state.connect(&poll, index, caller);
        }
    }
    while !shared.stop.get() {
        match poll.poll(&mut events, Some(Duration::from_millis(50))) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        for event in &events {
            let index = event.token().0;
            if let Some(caller) = callers.get_mut(index) {
                loop_state.ready(&poll, index, caller);
            }
        }
        // A caller whose connection broke reconnects here.
        for (index, caller) in callers.iter_mut().enumerate() {
            if caller.stream.is_none() {
                loop_state.connect(&poll, index, caller);
            }
        }
    }
    Ok(loop_state.report)
}

struct Loop<'a> {
    plan: &'a CallPlan,
    shared: &'a CallShared,
    clock: Clock,
    request: Vec<u8>,
    read_buf: Vec<u8>,
    next_device: usize,
    report: CallReport,
}

impl Loop<'_> {
    fn connect(&mut self, poll: &Poll, index: usize, caller: &mut Caller) {
        let opened = connect_from(source_address(SOURCE_OFFSET + index), self.plan.http).and_then(
            |mut stream| {
                poll.registry().register(
                    &mut stream,
                    Token(index),
                    Interest::READABLE | Interest::WRITABLE,
                )?;
                Ok(stream)
            },
        );
        match opened {
            Ok(stream) => {
                caller.stream = Some(stream);
                caller.connecting = true;
            }
            Err(e) => {
                self.failure(format!("connect: {e}"));
                // Do not spin on a refused connect: the next turn retries after the poll.
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }

    fn failure(&mut self, reason: String) {
        self.shared.failed.add(1);
        *self.report.failures.entry(reason).or_default() += 1;
    }

    fn broken(&mut self, caller: &mut Caller, reason: String) {
        // Only a request in flight is a failed request; an idle connection just reconnects.
        if caller
            .sent_us
            .take()
            .is_some_and(|at| self.shared.window.contains(at))
        {
            self.failure(reason);
        }
        caller.stream = None;
        caller.input.clear();
    }

    fn ready(&mut self, _poll: &Poll, _index: usize, caller: &mut Caller) {
        let Some(stream) = caller.stream.as_mut() else {
            return;
        };
        if caller.connecting {
            match connect_done(stream) {
                Ok(true) => caller.connecting = false,
                Ok(false) => return,
                Err(e) => {
                    self.broken(caller, format!("connect: {e}"));
                    return;
                }
            }
        }
        loop {
            match stream.read(&mut self.read_buf) {
                Ok(0) => {
                    self.broken(caller, "closed by the server".to_owned());
                    return;
                }
                Ok(n) => {
                    if caller.input.len() + n > MAX_RESPONSE {
                        self.broken(caller, "response too large".to_owned());
                        return;
                    }
                    caller
                        .input
                        .extend_from_slice(self.read_buf.get(..n).unwrap_or_default());
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.broken(caller, format!("read: {e}"));
                    return;
                }
            }
        }
        while caller.sent_us.is_some() {
            match parse(&caller.input) {
                Ok(None) => return,
                Ok(Some((status, used))) => {
                    caller.input.drain(..used);
                    let now = self.clock.now_us();
                    let Some(sent) = caller.sent_us.take() else {
                        return;
                    };
                    if self.shared.window.contains(sent) {
                        if status == 200 {
                            self.shared.ok.add(1);
                            let _ = self.report.latency.record(now.saturating_sub(sent).max(1));
                        } else {
                            self.failure(format!("HTTP {status}"));
                        }
                    }
                }
                Err(reason) => {
                    self.broken(caller, reason);
                    return;
                }
            }
        }
        if self.clock.now_us() < self.shared.window.end_us() {
            self.send(caller);
        }
    }

    fn send(&mut self, caller: &mut Caller) {
        let Some(device) = self.plan.devices.get(self.next_device) else {
            return;
        };
        self.next_device = (self.next_device + 1) % self.plan.devices.len().max(1);
        self.request.clear();
        let _ = write!(
            self.request,
            "GET /v3/users/{}/devices/{device}/resources/{RESOURCE} HTTP/1.1\r\nHost: {}\r\n\
             Authorization: Bearer {}\r\n\r\n",
            self.plan.user, self.plan.http, self.plan.token
        );
        let Some(stream) = caller.stream.as_mut() else {
            return;
        };
        caller.sent_us = Some(self.clock.now_us());
        // A request this small fits an empty socket buffer: a short write means the connection
        // is unusable.
        match stream.write(&self.request) {
            Ok(n) if n == self.request.len() => {}
            Ok(_) => self.broken(caller, "short write".to_owned()),
            Err(e) => self.broken(caller, format!("write: {e}")),
        }
    }
}

/// One complete response at the start of `input`: its status and length; `None` while
/// incomplete.
fn parse(input: &[u8]) -> Result<Option<(u16, usize)>, String> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let head = match response.parse(input) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("bad response: {e}")),
    };
    let status = response.code.unwrap_or(0);
    let length = response
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .and_then(|h| std::str::from_utf8(h.value).ok())
        .and_then(|v| v.trim().parse::<usize>().ok())
        .ok_or_else(|| "response without Content-Length".to_owned())?;
    if length > MAX_RESPONSE {
        return Err("response too large".to_owned());
    }
    Ok((input.len() >= head + length).then_some((status, head + length)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_parse_to_their_end() {
        let one = b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\n1234";
        assert_eq!(parse(one), Ok(Some((200, one.len()))));
        assert_eq!(parse(&one[..one.len() - 1]), Ok(None));
        assert_eq!(parse(b"HTTP/1.1 404 Not"), Ok(None));
        let two = b"HTTP/1.1 503 X\r\nContent-Length: 0\r\n\r\nHTTP/1.1";
        assert_eq!(parse(two), Ok(Some((503, two.len() - 8))));
        assert!(parse(b"HTTP/1.1 200 OK\r\n\r\n").is_err());
        assert!(parse(b"garbage\r\n\r\n").is_err());
    }
}
