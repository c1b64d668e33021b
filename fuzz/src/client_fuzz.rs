//! The device (client) session under random bytes, clock advances and application commands.
//!
//! The input is read as a configuration, then a list of steps; after every step the outputs are
//! drained exactly as the contract says (`poll_transmit`, then `poll_event` until `None`, then
//! `poll_timeout`) and the invariants in [`ClientCheck`] are asserted.

use core::time::Duration;
use std::collections::BTreeSet;

use arbitrary::{Result, Unstructured};
use iotmp_proto::client::{HandlerError, Resources, RunId, RunOutput, ServerAction};
use iotmp_proto::{
    Client, ClientConfig, ClientEvent, CommandError, Dialect, Instant, Message, MessageType,
};

use crate::draw;
use crate::wire::{decode_output, output_bound};

/// Most steps one input runs; keeps every execution short.
const MAX_STEPS: usize = 48;
/// Largest raw chunk one step feeds.
const MAX_CHUNK: usize = 96;

/// The configuration the fuzzer picked: small limits so that they are reached.
pub fn config(u: &mut Unstructured<'_>) -> Result<ClientConfig> {
    let mut config = ClientConfig::new(draw::dialect(u)?, "alice", "dev01", "s3cr3t");
    config.keep_alive = draw::pick(u, &[None, Some(5), Some(30), Some(60), Some(1)])?;
    config.first_stream_id = draw::pick(u, &[1, 2, u16::MAX])?;
    config.request_timeout = Duration::from_millis(draw::pick(u, &[10_000, 1_000, 250])?);
    config.max_body = draw::pick(u, &[iotmp_proto::frame::DEFAULT_MAX_BODY, 1024, 40])?;
    config.max_requests = draw::pick(u, &[64, 1, 2, 3])?;
    config.max_streams = draw::pick(u, &[64, 1, 2, 3])?;
    Ok(config)
}

/// The fuzzed device's resources.
pub fn resources() -> Resources {
    let mut resources = Resources::new();
    for (name, kind) in draw::RESOURCES {
        resources.add(name, kind);
    }
    resources
}

/// A client session together with everything the harness knows about it.
pub struct ClientCheck {
    /// The session.
    pub client: Client,
    /// The session's clock.
    pub now: Instant,
    config: ClientConfig,
    connect_id: Option<u16>,
    connected: bool,
    closed: bool,
    /// RUNs announced by events and not answered yet.
    pub runs: Vec<RunId>,
    /// Own requests sent and not yet answered or timed out.
    own: BTreeSet<u16>,
    bytes_in: usize,
    bytes_out: usize,
    steps: usize,
    /// What the last drain produced.
    pub last_out: Vec<Message>,
    /// Events of the last drain.
    pub last_events: Vec<ClientEvent>,
}

impl ClientCheck {
    /// A session created at time zero, drained once (the CONNECT).
    pub fn new(config: ClientConfig) -> Self {
        let client = match Client::new(config.clone(), resources(), Instant::ZERO) {
            Ok(c) => c,
            Err(e) => panic!("a valid configuration was refused: {e}"),
        };
        let mut check = ClientCheck {
            client,
            now: Instant::ZERO,
            config,
            connect_id: None,
            connected: false,
            closed: false,
            runs: Vec::new(),
            own: BTreeSet::new(),
            bytes_in: 0,
            bytes_out: 0,
            steps: 0,
            last_out: Vec::new(),
            last_events: Vec::new(),
        };
        check.drain();
        match check.last_out.as_slice() {
            [m] if m.kind == MessageType::Connect && m.request_id().is_some() => {
                check.connect_id = m.request_id();
            }
            other => {
                panic!("a new client must send exactly one CONNECT with an id, sent {other:?}")
            }
        }
        check
    }

    /// The dialect spoken.
    pub fn dialect(&self) -> Dialect {
        self.config.dialect
    }

    /// The id the CONNECT went out with.
    pub fn connect_id(&self) -> u16 {
        self.connect_id.unwrap_or(0)
    }

    /// The largest frame body the session accepts.
    pub fn max_body(&self) -> u32 {
        self.config.max_body
    }

    /// Feeds `bytes` and drains.
    pub fn input(&mut self, bytes: &[u8]) {
        self.bytes_in += bytes.len();
        self.client.handle_input(self.now, bytes);
        self.drain();
    }

    /// Moves the clock by `by`, signals a timeout, drains, and checks the next deadline lies
    /// after the time just handled.
    pub fn advance(&mut self, by: Duration) {
        self.now += by;
        self.timeout_now();
    }

    /// Jumps to the session's own deadline (if later) and handles it.
    pub fn to_deadline(&mut self) {
        if let Some((at, _)) = self.client.poll_timeout() {
            self.now = self.now.max(at);
        }
        self.timeout_now();
    }

    fn timeout_now(&mut self) {
        self.client.handle_timeout(self.now);
        self.drain();
        if let Some((at, timer)) = self.client.poll_timeout() {
            assert!(
                at > self.now,
                "after handle_timeout({}) the {timer:?} deadline {at} is not in the future",
                self.now
            );
        }
    }

    /// Drains every output and checks the invariants of one step.
    pub fn drain(&mut self) {
        self.steps += 1;
        let mut out = Vec::new();
        let n = self.client.poll_transmit(&mut out);
        assert_eq!(n, out.len(), "poll_transmit miscounted");
        assert_eq!(
            self.client.pending_output(),
            0,
            "poll_transmit left bytes behind"
        );
        self.bytes_out += n;
        assert!(
            self.bytes_out <= output_bound(self.bytes_in, self.steps),
            "output grows beyond the input: {} bytes out for {} in over {} steps",
            self.bytes_out,
            self.bytes_in,
            self.steps
        );
        self.last_out = decode_output(self.config.dialect, &out);
        if self.closed {
            assert!(out.is_empty(), "a closed client sent {:?}", self.last_out);
        }
        let was_connected = self.connected;
        self.last_events.clear();
        while let Some(event) = self.client.poll_event() {
            assert!(!self.closed, "event {event:?} after Closed");
            self.on_event(&event);
            self.last_events.push(event);
            assert!(
                self.last_events.len() <= 4096,
                "unbounded events in one step"
            );
        }
        // Nothing but CONNECT before the server's OK (§6.1); frames answered in the very step
        // that brought the OK are fine.
        if !was_connected && !self.connected {
            for m in &self.last_out {
                assert_eq!(
                    m.kind,
                    MessageType::Connect,
                    "client sent {m} before it was connected"
                );
            }
        }
        if self.steps > 1 {
            assert!(
                self.last_out.iter().all(|m| m.kind != MessageType::Connect),
                "CONNECT sent twice"
            );
        }
        assert_eq!(
            self.client.is_closed(),
            self.closed,
            "is_closed() disagrees with the Closed event"
        );
        assert_eq!(
            self.client.is_connected(),
            self.connected && !self.closed,
            "is_connected() disagrees with the events"
        );
        if self.closed {
            assert!(
                self.client.poll_timeout().is_none(),
                "a closed client still wants a timeout"
            );
        }
        assert!(
            self.client.streams().len() <= self.config.max_streams,
            "stream table above its limit"
        );
        assert!(
            self.runs.len() <= self.config.max_requests,
            "more RUNs in progress than the limit"
        );
        assert!(
            self.own.len() <= self.config.max_requests,
            "more own requests than the limit"
        );
    }

    fn on_event(&mut self, event: &ClientEvent) {
        match event {
            ClientEvent::Connected => {
                assert!(!self.connected, "Connected twice");
                self.connected = true;
            }
            ClientEvent::Run(run) => {
                assert!(self.connected, "RUN event before Connected");
                assert!(
                    !self.runs.contains(&run.id),
                    "RUN id {:?} reused while pending",
                    run.id
                );
                assert!(
                    draw::RESOURCES
                        .iter()
                        .any(|(n, k)| *n == run.resource.as_str() && *k == run.kind)
                );
                self.runs.push(run.id);
            }
            ClientEvent::ValueNeeded { resource } => {
                assert!(
                    draw::RESOURCES.iter().any(|(n, _)| *n == resource.as_str()),
                    "value of undeclared {resource}"
                );
            }
            ClientEvent::StreamStarted { id, .. } | ClientEvent::StreamStopped { id } => {
                assert_ne!(*id, 0, "stream event for id 0");
            }
            ClientEvent::Answered { id, .. } | ClientEvent::RequestTimedOut { id } => {
                assert!(
                    self.own.remove(id),
                    "answer for {id}, which is no outstanding request"
                );
            }
            ClientEvent::Closed(reason) => {
                let _ = reason.to_string();
                self.closed = true;
                self.runs.clear();
                self.own.clear();
            }
            other => panic!("unexpected event {other:?}"),
        }
    }

    /// Records an own request id returned by a command.
    fn sent_request(&mut self, id: u16) {
        assert_ne!(id, 0, "allocated stream id 0");
        assert_ne!(
            Some(id),
            self.connect_id.filter(|_| !self.connected),
            "reused the CONNECT id"
        );
        assert!(
            self.own.insert(id),
            "allocated id {id}, which is still in use"
        );
    }

    /// One application command picked by the fuzzer; command errors are fine, panics are not.
    pub fn command(&mut self, u: &mut Unstructured<'_>) -> Result<()> {
        let now = self.now;
        match u.int_in_range(0..=9)? {
            0 if !self.runs.is_empty() => {
                let index = u.choose_index(self.runs.len())?;
                let run = self.runs.swap_remove(index);
                let result = if u.ratio(1, 4)? {
                    Err(HandlerError {
                        code: u.int_in_range(0..=600)?,
                        message: draw::text(u)?,
                    })
                } else {
                    Ok(RunOutput {
                        value: draw::opt_value(u)?,
                        code: if u.arbitrary()? {
                            Some(u.arbitrary()?)
                        } else {
                            None
                        },
                    })
                };
                match self.client.respond(now, run, result) {
                    Ok(()) => {}
                    // An output the dialect cannot carry: nothing sent, the RUN still pending.
                    Err(CommandError::Encode(_)) => self.runs.push(run),
                    Err(e) => panic!("respond to a pending RUN failed: {e}"),
                }
            }
            0 | 1 => {
                let resource = draw::pick(u, &draw::NAMES)?;
                let value = if u.ratio(1, 5)? {
                    Err(HandlerError::new("sensor failed"))
                } else {
                    Ok(draw::value(u, 2)?)
                };
                let _ = self.client.provide_value(now, resource, value);
            }
            2 => {
                let _ = self.client.stream(now, draw::pick(u, &draw::NAMES)?);
            }
            3 => {
                let resource = draw::pick(u, &draw::NAMES)?;
                let _ = self.client.stream_value(now, resource, draw::value(u, 2)?);
            }
            4 => {
                let resource = draw::resource(u)?;
                let input = draw::opt_value(u)?;
                let fire_and_forget = u.ratio(1, 4)?;
                if let Ok(Some(id)) = self.client.run(now, resource, input, fire_and_forget) {
                    self.sent_request(id);
                }
            }
            5 => {
                let action = draw::pick(
                    u,
                    &[
                        ServerAction::ReadProperty,
                        ServerAction::SetProperty,
                        ServerAction::CallDevice,
                        ServerAction::CallEndpoint,
                        ServerAction::WriteBucket,
                    ],
                )?;
                if let Ok(id) =
                    self.client
                        .run_action(now, action, draw::text(u)?, draw::opt_value(u)?)
                {
                    self.sent_request(id);
                }
            }
            6 => {
                let wait = u.arbitrary()?;
                let _ = self.client.disconnect(now, draw::opt_value(u)?, wait);
            }
            7 => self.client.close_now(now),
            8 => self.client.handle_eof(now),
            _ => {
                // The answer a server gives to CONNECT, so that runs get past authentication.
                let ok = Message::ok(self.connect_id());
                let mut frame = Vec::new();
                if self
                    .dialect()
                    .encode(&ok, draw::flavour(u)?, &mut frame)
                    .is_ok()
                {
                    self.bytes_in += frame.len();
                    self.client.handle_input(now, &frame);
                }
            }
        }
        self.drain();
        Ok(())
    }
}

/// The `session_client` target: configuration, then up to [`MAX_STEPS`] steps of raw bytes in
/// random chunks, clock advances and commands.
pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(config) = config(&mut u) else { return };
    let mut check = ClientCheck::new(config);
    for _ in 0..MAX_STEPS {
        if u.is_empty() || step(&mut u, &mut check).is_err() {
            break;
        }
    }
    // However it ended, the end of the transport closes the session, once.
    check.client.handle_eof(check.now);
    check.drain();
    assert!(check.client.is_closed(), "EOF did not close the client");
}

fn step(u: &mut Unstructured<'_>, check: &mut ClientCheck) -> Result<()> {
    match u.int_in_range(0..=7)? {
        0..=2 => {
            let len = u.int_in_range(0..=MAX_CHUNK)?;
            let bytes = u.bytes(len.min(u.len()))?;
            check.input(bytes);
        }
        3 => check.advance(draw::advance(u)?),
        4 => check.to_deadline(),
        _ => check.command(u)?,
    }
    Ok(())
}
