//! The server loop: listeners, connections and one broker on one thread.

use std::collections::HashMap;
use std::io::{self, ErrorKind};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;

use async_channel::{Receiver, Sender, TryRecvError};
use iotmp_proto::admission::AdmissionConfig;
use iotmp_proto::broker::{Broker, BrokerEvent, ConnId};
use iotmp_proto::control::{Command, Controller, RequestResult, SubscribeResult};
use iotmp_proto::fanout::SinkId;
use iotmp_proto::server::TransportInfo;
use iotmp_proto::{Instant, ServerConfig, Value};
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token, Waker};

use crate::link::{Input, Links};
use crate::{Alarm, Mailbox, Pending};

/// Accept queue of the listeners. Thousands of devices connect at once after a server restart
/// or a network outage; a short queue (std binds with 128) overflows, and the kernel then drops
/// SYNs that the clients retry only a second later. Linux caps it at `net.core.somaxconn`.
const ACCEPT_BACKLOG: i32 = 4096;

const WAKER: Token = Token(0);
const TCP: Token = Token(1);
const TLS: Token = Token(2);
/// Connections count from here (a token is its `ConnId`).
const FIRST_CONN: usize = 16;

/// What to listen on.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Plain TCP listener (default 127.0.0.1:25204, spec §9); `None` for none.
    pub tcp: Option<SocketAddr>,
    /// TLS listener (spec §9 suggests 127.0.0.1:25206) and its rustls config.
    pub tls: Option<(SocketAddr, Arc<rustls::ServerConfig>)>,
    /// Session limits and timers.
    pub session: ServerConfig,
    /// Who may connect: connection cap, rate per source, bans after failed authentication.
    /// Default [`AdmissionConfig::default`].
    pub admission: AdmissionConfig,
    /// Writes a replay trace of every connection to this directory (created if missing), one
    /// file per connection when it closes (`<role>-<n>-<unix ms>.trace`); a write
    /// error comes as [`BrokerEvent::TraceFailed`]. Default none.
    pub record: Option<PathBuf>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            tcp: Some(SocketAddr::from(([127, 0, 0, 1], 25204))),
            tls: None,
            session: ServerConfig::default(),
            admission: AdmissionConfig::default(),
            record: None,
        }
    }
}

/// A running server: its handle, its events and its thread.
#[derive(Debug)]
pub struct Server {
    /// Commands to the server, from any thread.
    pub handle: ServerHandle,
    /// Everything the application learns (answers with a [`Pending`] go there instead). The
    /// channel is unbounded: read it, or drop it.
    pub events: Receiver<BrokerEvent>,
    tcp_addr: Option<SocketAddr>,
    tls_addr: Option<SocketAddr>,
    thread: JoinHandle<io::Result<()>>,
}

impl Server {
    /// The TCP listener's address.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp_addr
    }

    /// The TLS listener's address.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls_addr
    }

    /// Waits until the driver stopped: after a `shutdown`, or, when no other clone of the
    /// handle exists, after the graceful shutdown that dropping the last handle starts.
    pub fn join(self) -> io::Result<()> {
        drop(self.handle);
        crate::join(self.thread)
    }
}

/// Commands to a running server; cheap to clone, usable from any thread.
#[derive(Debug, Clone)]
pub struct ServerHandle(Arc<Mailbox<Command>>);

impl ServerHandle {
    /// Accepts the CONNECT of `conn` (from [`BrokerEvent::Authenticate`]) as `device`.
    pub fn accept(&self, conn: ConnId, device: &str) {
        let device = device.to_owned();
        self.0.send(Command::Accept { conn, device });
    }

    /// Refuses the CONNECT of `conn` (ERROR "bad credentials", then close).
    pub fn reject(&self, conn: ConnId) {
        self.0.send(Command::Reject { conn });
    }

    /// RUNs `resource` on `device`.
    pub fn run(
        &self,
        device: &str,
        resource: &str,
        input: Option<Value>,
    ) -> Pending<RequestResult> {
        let (pending, reply) = Pending::new();
        let (device, resource) = (device.to_owned(), resource.to_owned());
        self.0.send(Command::Run {
            device,
            resource,
            input,
            reply,
        });
        pending
    }

    /// DESCRIBEs one resource of `device`, or all of them.
    pub fn describe(&self, device: &str, resource: Option<&str>) -> Pending<RequestResult> {
        let (pending, reply) = Pending::new();
        let (device, resource) = (device.to_owned(), resource.map(str::to_owned));
        self.0.send(Command::Describe {
            device,
            resource,
            reply,
        });
        pending
    }

    /// Registers `sink` for `resource` of `device` every `interval_s` seconds (0 = events);
    /// values come as [`BrokerEvent::Delivery`].
    pub fn subscribe(
        &self,
        device: &str,
        resource: &str,
        sink: SinkId,
        interval_s: u32,
    ) -> Pending<SubscribeResult> {
        let (pending, reply) = Pending::new();
        let (device, resource) = (device.to_owned(), resource.to_owned());
        self.0.send(Command::Subscribe {
            device,
            resource,
            sink,
            interval_s,
            reply,
        });
        pending
    }

    /// Removes `sink`.
    pub fn unsubscribe(&self, device: &str, resource: &str, sink: SinkId) {
        let (device, resource) = (device.to_owned(), resource.to_owned());
        self.0.send(Command::Unsubscribe {
            device,
            resource,
            sink,
        });
    }

    /// Graceful stop: no more connections, DISCONNECT to every device, output flushed.
    pub fn shutdown(&self) {
        self.0.send(Command::Shutdown);
    }
}

struct Listener {
    socket: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
}

/// Binds the listeners of `options` and starts the driver thread.
pub fn serve(options: ServerOptions) -> io::Result<Server> {
    let poll = Poll::new()?;
    let alarm = Arc::new(Alarm::new(Waker::new(poll.registry(), WAKER)?));
    let mut listeners = HashMap::new();
    let mut bind = |token, addr, tls| -> io::Result<SocketAddr> {
        let mut socket = TcpListener::bind(addr)?;
        // Best effort: listening again on a listening socket only changes its queue length.
        let _ = rustix::net::listen(&socket, ACCEPT_BACKLOG);
        poll.registry()
            .register(&mut socket, token, Interest::READABLE)?;
        let addr = socket.local_addr()?;
        listeners.insert(token, Listener { socket, tls });
        Ok(addr)
    };
    let tcp_addr = options.tcp.map(|addr| bind(TCP, addr, None)).transpose()?;
    let tls = options
        .tls
        .map(|(addr, config)| bind(TLS, addr, Some(config)));
    let tls_addr = tls.transpose()?;
    let (commands_tx, commands) = async_channel::unbounded();
    let (events_tx, events) = async_channel::unbounded();
    let mut broker = Broker::with_admission(options.session, options.admission);
    broker.set_recording(options.record.is_some());
    let driver = ServerLoop {
        alarm: alarm.clone(),
        links: Links::new(poll, FIRST_CONN),
        controller: Controller::new(broker),
        record: options.record,
        commands,
        events: events_tx,
        listeners,
    };
    let thread = crate::spawn("iotmp-mio-server", move || driver.run())?;
    let handle = ServerHandle(Arc::new(Mailbox {
        commands: commands_tx,
        alarm,
    }));
    Ok(Server {
        handle,
        events,
        tcp_addr,
        tls_addr,
        thread,
    })
}

struct ServerLoop {
    /// Kept alive so that the last handle's wake is not lost; reset before each drain of the
    /// commands.
    alarm: Arc<Alarm>,
    links: Links,
    controller: Controller,
    commands: Receiver<Command>,
    events: Sender<BrokerEvent>,
    listeners: HashMap<Token, Listener>,
    /// Where traces go, when recording.
    record: Option<PathBuf>,
}

/// Link tokens are the connection ids: `usize` and `u64` agree on every platform mio supports.
fn token(conn: ConnId) -> usize {
    conn as usize
}

impl ServerLoop {
    fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(256);
        let mut out = Vec::new();
        loop {
            self.drain(&mut out);
            if self.controller.is_shutting_down() && self.links.is_empty() {
                return Ok(());
            }
            let deadline = self.controller.broker().poll_timeout();
            self.links.wait(&mut events, deadline)?;
            let now = self.links.now();
            for event in &events {
                match event.token() {
                    WAKER => {}
                    listener if listener.0 < FIRST_CONN => self.accept(now, listener),
                    Token(id) => {
                        let (conn, broker) = (id as ConnId, self.controller.broker());
                        let closed = event.is_read_closed() || event.is_error();
                        let read = self.links.ready(id, now, closed, |input| match input {
                            Input::Secured(info) => broker.set_transport(conn, info),
                            Input::Bytes(bytes) => broker.handle_input(now, conn, bytes),
                        });
                        if read.is_some_and(|r| !matches!(r, Ok(false))) {
                            broker.handle_eof(now, conn);
                        }
                        // The socket took its backlog: the session's queue may follow.
                        self.transmit(now, conn, &mut out);
                    }
                }
            }
            self.commands(now);
            self.controller.broker().handle_timeout(now);
            self.links.expire(now);
        }
    }

    fn accept(&mut self, now: Instant, token: Token) {
        let Some(listener) = self.listeners.get(&token) else {
            return;
        };
        loop {
            let (tcp, peer) = match listener.socket.accept() {
                Ok((tcp, peer)) => (tcp, peer),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                // WouldBlock, or out of descriptors and the like: wait for the next connection.
                Err(_) => return,
            };
            let tls = match &listener.tls {
                None => None,
                Some(config) => match rustls::ServerConnection::new(config.clone()) {
                    Ok(tls) => Some(tls.into()),
                    Err(_) => continue,
                },
            };
            if let Ok(id) = self.links.add(tcp, tls, false) {
                // TLS connections learn their transport when the handshake finished.
                let broker = self.controller.broker();
                let info = TransportInfo::default();
                if broker
                    .try_open(now, id as ConnId, Some(peer.ip()), info)
                    .is_err()
                {
                    // Refused: closed before a byte is read or written.
                    self.links.abort(id);
                }
            }
        }
    }

    fn commands(&mut self, now: Instant) {
        self.alarm.reset();
        loop {
            let command = match self.commands.try_recv() {
                Ok(command) => command,
                // Every handle is gone: nobody can ever stop the server, so stop now.
                Err(TryRecvError::Closed) if !self.controller.is_shutting_down() => {
                    Command::Shutdown
                }
                Err(_) => return,
            };
            self.controller.command(now, command);
            if self.controller.is_shutting_down() {
                for (_, mut listener) in self.listeners.drain() {
                    let _ = self.links.poll.registry().deregister(&mut listener.socket);
                }
            }
        }
    }

    /// Moves `conn`'s queued bytes to its socket once the socket has no backlog.
    fn transmit(&mut self, now: Instant, conn: ConnId, out: &mut Vec<u8>) {
        let broker = self.controller.broker();
        if self.links.backlogged(token(conn)) || broker.pending_output(conn) == 0 {
            return;
        }
        broker.poll_transmit(conn, out);
        if self.links.send(token(conn), out).is_err() {
            broker.handle_eof(now, conn);
        }
        out.clear();
    }

    /// Moves the core's output to the sockets and the application.
    fn drain(&mut self, out: &mut Vec<u8>) {
        let now = self.links.now();
        let broker = self.controller.broker();
        while let Some(conn) = broker.poll_dirty() {
            // A socket with a backlog takes nothing more: the bytes wait in the session, whose
            // queue is bounded (`ServerConfig::max_outgoing`), until the socket is writable.
            if self.links.backlogged(token(conn)) {
                continue;
            }
            broker.poll_transmit(conn, out);
            if self.links.send(token(conn), out).is_err() {
                broker.handle_eof(now, conn);
            }
            out.clear();
        }
        while let Some((conn, last)) = broker.poll_closed() {
            self.links.close(token(conn), now, &last);
        }
        while let Some((conn, text)) = broker.poll_trace() {
            if let Some(dir) = &self.record
                && let Err(e) = crate::write_trace(dir, "server", conn, &text)
            {
                let error = format!("cannot write the trace to {}: {e}", dir.display());
                let _ = self
                    .events
                    .try_send(BrokerEvent::TraceFailed { conn, error });
            }
        }
        while let Some(event) = self.controller.poll_event() {
            // Nobody listening is fine: the events are information, not obligations.
            let _ = self.events.try_send(event);
        }
    }
}
