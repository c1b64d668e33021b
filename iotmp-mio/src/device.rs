//! The device loop: one connection at a time, reconnecting on the core's schedule.

use std::io::{self, ErrorKind};
use std::net::ToSocketAddrs;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use async_channel::{Receiver, Sender, TryRecvError};
use iotmp_proto::backoff::{Backoff, Reconnect};
use iotmp_proto::{ClientConfig, Device, DeviceResources, DriverEvent, Instant, Value};
use mio::net::TcpStream;
use mio::{Events, Poll, Token, Waker};
use rustls::pki_types::ServerName;

use crate::link::{Input, Links};
use crate::{Alarm, Mailbox};

const WAKER: Token = Token(0);
/// Each connection gets a new token, so that one still closing never mixes with the next.
const FIRST_LINK: usize = 1;
/// How long a TCP connect may take (the OS would wait minutes for an unreachable host). Once
/// connected, the session's own CONNECT timeout covers the TLS handshake and the answer.
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct DeviceOptions {
    /// `host:port` of the server (default `127.0.0.1:25204`), resolved at every attempt.
    pub address: String,
    /// TLS: the rustls config and the server name to send (SNI) and verify.
    pub tls: Option<(Arc<rustls::ClientConfig>, String)>,
    /// Reconnect delays (spec §6.1: 5 s doubling up to 60 s, with jitter).
    pub backoff: Backoff,
    /// Writes a replay trace of every session (one per transport) to this directory (created if
    /// missing), one file per session when it ends (`<role>-<n>-<unix ms>.trace`); a
    /// write error comes as [`DriverEvent::TraceFailed`]. Default none.
    pub record: Option<PathBuf>,
}

impl Default for DeviceOptions {
    fn default() -> Self {
        DeviceOptions {
            address: "127.0.0.1:25204".into(),
            tls: None,
            backoff: Backoff::default(),
            record: None,
        }
    }
}

/// A running device: its handle, its events and its thread.
#[derive(Debug)]
pub struct DeviceDriver {
    /// Commands to the device, from any thread.
    pub handle: DeviceHandle,
    /// What happens to the connection (unbounded: read it, or drop it).
    pub events: Receiver<DriverEvent>,
    thread: JoinHandle<io::Result<()>>,
}

impl DeviceDriver {
    /// Waits until the driver stopped: after a `shutdown`, or, when no other clone of the
    /// handle exists, after the graceful shutdown that dropping the last handle starts.
    pub fn join(self) -> io::Result<()> {
        drop(self.handle);
        crate::join(self.thread)
    }
}

#[derive(Debug)]
enum Order {
    Stream(String),
    StreamValue(String, Value),
    Shutdown,
}

/// Commands to a running device; cheap to clone, usable from any thread.
#[derive(Debug, Clone)]
pub struct DeviceHandle(Arc<Mailbox<Order>>);

impl DeviceHandle {
    /// Sends the current value of `resource` on its event stream, if connected and listened.
    pub fn stream(&self, resource: &str) {
        self.0.send(Order::Stream(resource.to_owned()));
    }

    /// Sends `value` on the event stream of `resource`, if connected and listened.
    pub fn stream_value(&self, resource: &str, value: Value) {
        self.0.send(Order::StreamValue(resource.to_owned(), value));
    }

    /// Graceful stop: DISCONNECT, output flushed, no reconnect.
    pub fn shutdown(&self) {
        self.0.send(Order::Shutdown);
    }
}

/// Starts the driver thread of a device that connects to `options.address` as `config` says.
pub fn connect(
    options: DeviceOptions,
    config: ClientConfig,
    resources: DeviceResources,
) -> io::Result<DeviceDriver> {
    let invalid =
        |e: &dyn std::fmt::Display| io::Error::new(ErrorKind::InvalidInput, e.to_string());
    let tls = match options.tls {
        None => None,
        Some((config, name)) => {
            Some((config, ServerName::try_from(name).map_err(|e| invalid(&e))?))
        }
    };
    // The session is remade for every transport; this one only checks the configuration.
    let device = Device::new(config, resources, Instant::ZERO).map_err(|e| invalid(&e))?;
    let poll = Poll::new()?;
    let alarm = Arc::new(Alarm::new(Waker::new(poll.registry(), WAKER)?));
    let (commands_tx, commands) = async_channel::unbounded();
    let (events_tx, events) = async_channel::unbounded();
    let driver = DeviceLoop {
        alarm: alarm.clone(),
        links: Links::new(poll, FIRST_LINK),
        device,
        reconnect: Reconnect::new(options.backoff),
        address: options.address,
        tls,
        commands,
        events: events_tx,
        link: None,
        dialing: None,
        up: false,
        error: None,
        record: options.record,
        sessions: 0,
    };
    let thread = crate::spawn("iotmp-mio-device", move || driver.run())?;
    let handle = DeviceHandle(Arc::new(Mailbox {
        commands: commands_tx,
        alarm,
    }));
    Ok(DeviceDriver {
        handle,
        events,
        thread,
    })
}

struct DeviceLoop {
    /// Kept alive so that the last handle's wake is not lost; reset before each drain of the
    /// commands.
    alarm: Arc<Alarm>,
    links: Links,
    device: Device,
    reconnect: Reconnect,
    address: String,
    tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
    commands: Receiver<Order>,
    events: Sender<DriverEvent>,
    /// The current connection (earlier ones may still be closing).
    link: Option<usize>,
    /// While its TCP connection is being made: when to give up.
    dialing: Option<Instant>,
    /// Its TCP connection is made and the session runs on it.
    up: bool,
    /// Why the transport failed, for the `Disconnected` reason.
    error: Option<io::Error>,
    /// Where traces go, when recording.
    record: Option<PathBuf>,
    /// Sessions started so far: numbers the trace files.
    sessions: u64,
}

impl DeviceLoop {
    fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(16);
        let mut out = Vec::new();
        loop {
            let now = self.links.now();
            if self.link.is_none() && self.reconnect.due(now) {
                self.dial(now);
            }
            self.drain(&mut out);
            if self.reconnect.is_stopped() && self.links.is_empty() {
                let _ = self.events.try_send(DriverEvent::Stopped);
                return Ok(());
            }
            let session = self.device.poll_timeout().filter(|_| self.up);
            let deadlines = [
                self.reconnect
                    .poll_timeout()
                    .filter(|_| self.link.is_none()),
                session.map(|(at, _)| at),
                self.dialing,
            ];
            self.links
                .wait(&mut events, deadlines.into_iter().flatten().min())?;
            let now = self.links.now();
            for event in &events {
                if event.token() != WAKER {
                    let closed = event.is_read_closed() || event.is_error();
                    self.ready(now, event.token().0, closed);
                }
            }
            if self.dialing.is_some_and(|at| now >= at) {
                self.abort();
                self.lost(
                    now,
                    format!("cannot connect to {}: timed out", self.address),
                );
            }
            self.commands(now);
            if self.up {
                self.device.handle_timeout(now);
            }
            self.links.expire(now);
        }
    }

    fn emit(&self, event: DriverEvent) {
        let _ = self.events.try_send(event);
    }

    /// Starts a TCP connection (non-blocking); `ready` learns when it is made.
    fn dial(&mut self, now: Instant) {
        match self.open() {
            Ok(id) => {
                self.link = Some(id);
                self.dialing = Some(now + DIAL_TIMEOUT);
            }
            Err(e) => self.lost(now, format!("cannot connect to {}: {e}", self.address)),
        }
    }

    fn open(&mut self) -> io::Result<usize> {
        let addr = (self.address.to_socket_addrs()?.next())
            .ok_or_else(|| io::Error::new(ErrorKind::NotFound, "no address"))?;
        let tcp = TcpStream::connect(addr)?;
        let tls = match &self.tls {
            None => None,
            Some((config, name)) => {
                let tls = rustls::ClientConnection::new(config.clone(), name.clone());
                Some(tls.map_err(io::Error::other)?.into())
            }
        };
        self.links.add(tcp, tls, true)
    }

    fn ready(&mut self, now: Instant, id: usize, closed: bool) {
        if self.link == Some(id) && !self.up {
            match self.links.connected(id) {
                Ok(false) => return, // spurious: still connecting
                Ok(true) => {
                    // A fresh session (and its CONNECT) for every transport.
                    if let Err(e) = self.device.reconnect(now) {
                        self.reconnect.stop();
                        self.abort();
                        return self.lost(now, e.to_string());
                    }
                    self.sessions += 1;
                    if self.record.is_some() {
                        // Right after the fresh session is made, so that it holds every output.
                        self.device.start_trace();
                    }
                    (self.up, self.dialing) = (true, None);
                    self.reconnect.up();
                    self.emit(DriverEvent::TransportUp);
                }
                Err(e) => {
                    self.abort();
                    return self.lost(now, format!("cannot connect to {}: {e}", self.address));
                }
            }
        }
        let device = &mut self.device;
        let read = self.links.ready(id, now, closed, |input| {
            if let Input::Bytes(bytes) = input {
                device.handle_input(now, bytes);
            }
        });
        match read {
            None | Some(Ok(false)) => {}
            Some(Ok(true)) => device.handle_eof(now),
            Some(Err(e)) => {
                self.error = Some(e);
                device.handle_eof(now);
            }
        }
    }

    fn commands(&mut self, now: Instant) {
        self.alarm.reset();
        loop {
            let order = match self.commands.try_recv() {
                Ok(order) => order,
                // Every handle is gone: nobody can ever stop the device, so stop now.
                Err(TryRecvError::Closed) if !self.reconnect.is_stopped() => Order::Shutdown,
                Err(_) => return,
            };
            // Stream orders while offline have nothing to do, like in the core.
            match order {
                Order::Stream(resource) if self.up => {
                    let _ = self.device.stream(now, &resource);
                }
                Order::StreamValue(resource, value) if self.up => {
                    let _ = self.device.client().stream_value(now, &resource, value);
                }
                Order::Shutdown => {
                    self.reconnect.stop();
                    if self.up {
                        // Without waiting for an OK: the session closes at once (spec §6.11).
                        let _ = self.device.client().disconnect(now, None, false);
                    } else {
                        self.abort(); // still connecting: nothing to say
                    }
                }
                _ => {}
            }
        }
    }

    /// Moves the session's output to the socket and its events to the application.
    fn drain(&mut self, out: &mut Vec<u8>) {
        let (Some(id), true) = (self.link, self.up) else {
            return;
        };
        let now = self.links.now();
        self.device.poll_transmit(out);
        if let Err(e) = self.links.send(id, out) {
            self.error = Some(e);
            self.device.handle_eof(now);
        }
        out.clear();
        while let Some(event) = self.device.poll_event() {
            match self.reconnect.observe(event) {
                Ok(event) => self.emit(event),
                Err(reason) => {
                    // The session's last bytes (an ERROR, a DISCONNECT) go out before the close.
                    self.device.poll_transmit(out);
                    self.links.close(id, now, out);
                    self.link = None;
                    out.clear();
                    let reason = match self.error.take() {
                        Some(e) => format!("{reason}: {e}"),
                        None => reason.to_string(),
                    };
                    self.lost(now, reason);
                }
            }
        }
    }

    /// Writes the ended session's trace, when recording (empty: no session ran since the last).
    fn save_trace(&mut self) {
        let Some(dir) = &self.record else { return };
        let text = self.device.take_trace();
        if text.is_empty() {
            return;
        }
        if let Err(e) = crate::write_trace(dir, "device", self.sessions, &text) {
            let error = format!("cannot write the trace to {}: {e}", dir.display());
            let _ = self.events.try_send(DriverEvent::TraceFailed { error });
        }
    }

    /// Gives up the current connection before it is up.
    fn abort(&mut self) {
        if let Some(id) = self.link.take() {
            self.links.abort(id);
        }
        self.dialing = None;
    }

    /// The connection ended or could not be made: report it and schedule the next attempt.
    fn lost(&mut self, now: Instant, reason: String) {
        self.up = false;
        self.save_trace();
        self.emit(DriverEvent::Disconnected { reason });
        if !self.reconnect.is_stopped() {
            let at = self.reconnect.lost(now, fastrand::u32(..));
            self.emit(DriverEvent::Retrying {
                after: at.saturating_since(now),
            });
        }
    }
}
