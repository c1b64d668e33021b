//! The server session under random bytes, clock advances and application commands.
//!
//! Same shape as [`crate::client_fuzz`]: a configuration, then steps, each followed by a full
//! drain and the invariants in [`ServerCheck`].

use core::time::Duration;
use std::collections::BTreeSet;

use arbitrary::{Result, Unstructured};
use iotmp_proto::server::TransportInfo;
use iotmp_proto::{
    CloseReason, Instant, Message, MessageType, ServerConfig, ServerEvent, ServerSession,
};

use crate::draw;
use crate::wire::{decode_output, output_bound};

const MAX_STEPS: usize = 48;
const MAX_CHUNK: usize = 96;

/// DER bytes standing in for a verified TLS client certificate (a tiny SEQUENCE).
pub const CLIENT_CERT_DER: [u8; 5] = [0x30, 0x03, 0x02, 0x01, 0x05];
/// The PEM a device presents for [`CLIENT_CERT_DER`].
pub const CLIENT_CERT_PEM: &str =
    "-----BEGIN CERTIFICATE-----\nMAMCAQU=\n-----END CERTIFICATE-----\n";

/// The configuration the fuzzer picked: small limits so that they are reached.
pub fn config(u: &mut Unstructured<'_>) -> Result<(ServerConfig, TransportInfo)> {
    let config = ServerConfig {
        auth_deadline: Duration::from_millis(draw::pick(u, &[10_000, 1_000])?),
        keep_alive_min: draw::pick(u, &[5, 1])?,
        keep_alive_max: draw::pick(u, &[1800, 60])?,
        keep_alive_factor_permille: draw::pick(u, &[1150, 1000, 3000])?,
        request_timeout: Duration::from_millis(draw::pick(u, &[10_000, 1_000, 250])?),
        first_stream_id: draw::pick(u, &[1, 2, u16::MAX])?,
        max_body: draw::pick(u, &[iotmp_proto::frame::DEFAULT_MAX_BODY, 1024, 40])?,
        max_requests: draw::pick(u, &[64, 1, 2, 3])?,
        max_streams: draw::pick(u, &[64, 1, 2, 3])?,
        // Small caps make the slow-consumer close reachable.
        max_outgoing: draw::pick(u, &[iotmp_proto::server::DEFAULT_MAX_OUTGOING, 4096, 200])?,
    };
    let transport = if u.ratio(1, 4)? {
        TransportInfo {
            tls: true,
            verified_client_certificate: Some(CLIENT_CERT_DER.to_vec()),
        }
    } else {
        TransportInfo::default()
    };
    Ok((config, transport))
}

/// A server session together with everything the harness knows about it.
pub struct ServerCheck {
    /// The session.
    pub session: ServerSession,
    /// The session's clock.
    pub now: Instant,
    config: ServerConfig,
    auth_pending: bool,
    established: bool,
    closed: bool,
    /// The session closed because its outgoing queue passed `max_outgoing`.
    closed_slow: bool,
    /// RUN / DESCRIBE ids sent and not yet answered or timed out.
    pub requests: BTreeSet<u16>,
    /// Streams opened by this side and not reported closed.
    pub streams: BTreeSet<u16>,
    bytes_in: usize,
    bytes_out: usize,
    steps: usize,
    /// What the last drain produced.
    pub last_out: Vec<Message>,
    /// Events of the last drain.
    pub last_events: Vec<ServerEvent>,
}

impl ServerCheck {
    /// A session accepted at time zero.
    pub fn new(config: ServerConfig, transport: TransportInfo) -> Self {
        let session = ServerSession::new(config.clone(), transport, Instant::ZERO);
        let mut check = ServerCheck {
            session,
            now: Instant::ZERO,
            config,
            auth_pending: false,
            established: false,
            closed: false,
            closed_slow: false,
            requests: BTreeSet::new(),
            streams: BTreeSet::new(),
            bytes_in: 0,
            bytes_out: 0,
            steps: 0,
            last_out: Vec::new(),
            last_events: Vec::new(),
        };
        check.drain();
        assert!(
            check.last_out.is_empty() && check.last_events.is_empty(),
            "a new server session spoke first"
        );
        check
    }

    /// True once the application accepted the CONNECT.
    pub fn is_established(&self) -> bool {
        self.established && !self.closed
    }

    /// True once the Closed event came out.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// True while an Authenticate event waits for accept or reject.
    pub fn auth_pending(&self) -> bool {
        self.auth_pending && !self.closed
    }

    /// The largest frame body the session accepts.
    pub fn max_body(&self) -> u32 {
        self.config.max_body
    }

    /// Feeds `bytes` and drains.
    pub fn input(&mut self, bytes: &[u8]) {
        self.bytes_in += bytes.len();
        self.session.handle_input(self.now, bytes);
        self.drain();
    }

    /// Moves the clock by `by`, signals a timeout, drains, and checks the deadlines.
    pub fn advance(&mut self, by: Duration) {
        self.now += by;
        self.timeout_now();
    }

    /// Jumps to the session's own deadline (if later) and handles it.
    pub fn to_deadline(&mut self) {
        if let Some((at, _)) = self.session.poll_timeout() {
            self.now = self.now.max(at);
        }
        self.timeout_now();
    }

    fn timeout_now(&mut self) {
        self.session.handle_timeout(self.now);
        self.drain();
        if let Some((at, timer)) = self.session.poll_timeout() {
            assert!(
                at > self.now,
                "after handle_timeout({}) the {timer:?} deadline {at} is not in the future",
                self.now
            );
        }
        if !self.established && self.now >= Instant::ZERO + self.config.auth_deadline {
            assert!(
                self.closed,
                "still open at {} without an accepted CONNECT",
                self.now
            );
        }
    }

    /// Drains every output and checks the invariants of one step.
    pub fn drain(&mut self) {
        self.steps += 1;
        let mut out = Vec::new();
        let n = self.session.poll_transmit(&mut out);
        assert_eq!(n, out.len(), "poll_transmit miscounted");
        assert_eq!(
            self.session.pending_output(),
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
        if self.closed {
            assert!(out.is_empty(), "a closed server session sent {out:02X?}");
        }
        self.last_out = match self.session.dialect() {
            Some(dialect) => decode_output(dialect, &out),
            None => {
                assert!(out.is_empty(), "server wrote before it knew the dialect");
                Vec::new()
            }
        };
        assert!(
            self.last_out.iter().all(|m| m.kind != MessageType::Connect),
            "a server sent CONNECT"
        );
        let was_established = self.established;
        self.last_events.clear();
        while let Some(event) = self.session.poll_event() {
            assert!(!self.closed, "event {event:?} after Closed");
            self.on_event(&event);
            self.last_events.push(event);
            assert!(
                self.last_events.len() <= 4096,
                "unbounded events in one step"
            );
        }
        if !was_established && !self.established {
            // Before accept the only thing a server may write is the refusal of the CONNECT.
            let refused = self
                .last_events
                .iter()
                .any(|e| matches!(e, ServerEvent::Closed(CloseReason::Refused { .. })));
            match self.last_out.as_slice() {
                [] => {}
                [m] if refused && m.kind == MessageType::Error && m.request_id().is_some() => {}
                other => panic!("server wrote {other:?} before accepting the CONNECT"),
            }
        }
        assert_eq!(
            self.session.is_closed(),
            self.closed,
            "is_closed() disagrees with the Closed event"
        );
        assert_eq!(
            self.session.is_established(),
            self.is_established(),
            "is_established() disagrees"
        );
        if self.closed {
            assert!(
                self.session.poll_timeout().is_none(),
                "a closed session still wants a timeout"
            );
        } else {
            assert!(
                self.session.poll_timeout().is_some(),
                "an open server session must always have a deadline"
            );
        }
        assert!(
            self.requests.len() <= self.config.max_requests,
            "more requests than the limit"
        );
        assert!(
            self.streams.len() <= self.config.max_streams,
            "more streams than the limit"
        );
    }

    fn on_event(&mut self, event: &ServerEvent) {
        match event {
            ServerEvent::Authenticate(request) => {
                assert!(
                    !self.established && !self.auth_pending,
                    "a second Authenticate"
                );
                assert!(
                    (self.config.keep_alive_min..=self.config.keep_alive_max)
                        .contains(&request.keep_alive)
                );
                let _ = format!("{request:?}");
                self.auth_pending = true;
            }
            ServerEvent::Answered { id, .. } | ServerEvent::RequestTimedOut { id } => {
                assert!(
                    self.requests.remove(id),
                    "answer for {id}, which is no outstanding request"
                );
            }
            ServerEvent::StreamOpened { id, .. } | ServerEvent::StreamData { id, .. } => {
                assert!(
                    self.streams.contains(id),
                    "{event:?} for a stream this side did not open"
                );
            }
            ServerEvent::StreamClosed { id, .. } => {
                assert!(
                    self.streams.remove(id),
                    "stream {id} closed twice or never opened"
                );
            }
            ServerEvent::Closed(reason) => {
                let _ = reason.to_string();
                self.closed_slow = matches!(reason, CloseReason::SlowConsumer);
                assert!(
                    self.streams.is_empty(),
                    "Closed before every stream was reported closed"
                );
                self.closed = true;
                self.auth_pending = false;
                self.requests.clear();
            }
            other => panic!("unexpected event {other:?}"),
        }
    }

    fn new_id(&mut self, id: u16) {
        assert_ne!(id, 0, "allocated stream id 0");
        assert!(
            !self.requests.contains(&id) && !self.streams.contains(&id),
            "allocated id {id}, which is in use"
        );
    }

    /// Accepts the pending CONNECT; checks the OK goes out first.
    pub fn accept(&mut self) {
        let pending = self.auth_pending();
        let result = self.session.accept(self.now);
        assert_eq!(
            result.is_ok(),
            pending,
            "accept: {result:?} with a CONNECT pending: {pending}"
        );
        if result.is_ok() {
            self.auth_pending = false;
            self.established = true;
        }
        self.drain();
        // Input the device sent before its OK is answered at accept; answers past a (small)
        // `max_outgoing` close the session as a slow consumer, and a closed session sends nothing.
        if result.is_ok() && !self.closed_slow {
            let first = self.last_out.first().map(|m| m.kind);
            assert_eq!(
                first,
                Some(MessageType::Ok),
                "the first frame after accept must be OK"
            );
        }
    }

    /// Rejects the pending CONNECT; checks an ERROR goes out and the session closes.
    pub fn reject(&mut self) {
        let pending = self.auth_pending();
        let result = self.session.reject(self.now);
        assert_eq!(
            result.is_ok(),
            pending,
            "reject: {result:?} with a CONNECT pending: {pending}"
        );
        self.drain();
        if result.is_ok() {
            assert!(self.closed, "reject did not close");
            assert!(
                matches!(self.last_out.as_slice(), [m] if m.kind == MessageType::Error),
                "reject must send one ERROR"
            );
        }
    }

    /// One application command picked by the fuzzer; command errors are fine, panics are not.
    pub fn command(&mut self, u: &mut Unstructured<'_>) -> Result<()> {
        let now = self.now;
        match u.int_in_range(0..=10)? {
            // accept and reject drain and check on their own.
            0 | 1 => {
                self.accept();
                return Ok(());
            }
            2 => {
                self.reject();
                return Ok(());
            }
            3 => {
                if let Ok(id) = self
                    .session
                    .run(now, draw::resource(u)?, draw::opt_value(u)?)
                {
                    self.new_id(id);
                    self.requests.insert(id);
                }
            }
            4 => {
                let resource = if u.arbitrary()? {
                    Some(draw::resource(u)?)
                } else {
                    None
                };
                if let Ok(id) = self.session.describe(now, resource) {
                    self.new_id(id);
                    self.requests.insert(id);
                }
            }
            5 => {
                if let Ok(id) =
                    self.session
                        .start_stream(now, draw::resource(u)?, draw::interval_ms(u)?)
                {
                    self.new_id(id);
                    self.streams.insert(id);
                }
            }
            6 => {
                let id = self.some_stream(u)?;
                let result = self
                    .session
                    .reconfigure_stream(now, id, draw::interval_ms(u)?);
                if result.is_ok() {
                    assert!(
                        self.streams.contains(&id),
                        "reconfigured unknown stream {id}"
                    );
                }
            }
            7 => {
                let id = self.some_stream(u)?;
                if self.session.stop_stream(now, id).is_ok() {
                    assert!(self.streams.contains(&id), "stopped unknown stream {id}");
                }
            }
            8 => {
                let _ = self.session.disconnect(now, draw::opt_value(u)?);
            }
            9 => self.session.close_now(now),
            _ => self.session.handle_eof(now),
        }
        self.drain();
        Ok(())
    }

    fn some_stream(&self, u: &mut Unstructured<'_>) -> Result<u16> {
        if !self.streams.is_empty() && u.ratio(3, 4)? {
            let index = u.choose_index(self.streams.len())?;
            return Ok(self.streams.iter().nth(index).copied().unwrap_or(0));
        }
        draw::stream_id(u)
    }
}

/// The `session_server` target: configuration, then up to [`MAX_STEPS`] steps of raw bytes in
/// random chunks, clock advances and commands.
pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok((config, transport)) = config(&mut u) else {
        return;
    };
    let mut check = ServerCheck::new(config, transport);
    for _ in 0..MAX_STEPS {
        if u.is_empty() || step(&mut u, &mut check).is_err() {
            break;
        }
    }
    check.session.handle_eof(check.now);
    check.drain();
    assert!(check.session.is_closed(), "EOF did not close the session");
}

fn step(u: &mut Unstructured<'_>, check: &mut ServerCheck) -> Result<()> {
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
