//! The server: one broker task, one task per listener, one task per connection.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_channel::{Receiver, Sender};
use async_io::Async;
use async_io::Timer;
use futures_lite::FutureExt;
use futures_rustls::{TlsAcceptor, rustls};
use iotmp_proto::Value;
use iotmp_proto::admission::AdmissionConfig;
use iotmp_proto::broker::{Broker, BrokerEvent, ConnId};
use iotmp_proto::control::{Command, Controller, Reply, RequestResult, SubscribeResult};
use iotmp_proto::fanout::SinkId;
use iotmp_proto::server::{ServerConfig, TransportInfo};

use crate::connection::Connection;
use crate::outlet::Outlet;
use crate::{Clock, Pending, Runtime, closed, next, or_none};

type TcpListener = Async<std::net::TcpListener>;

/// Messages from the connections to the broker task. The queue is bounded so that readers wait
/// (and stop reading their sockets) while the broker is busy.
const INPUT_QUEUE: usize = 64;

/// Accept queue of the listeners. Thousands of devices connect at once after a server restart
/// or a network outage; a short queue (std binds with 128) overflows, and the kernel then drops
/// SYNs that the clients retry only a second later. Linux caps it at `net.core.somaxconn`.
const ACCEPT_BACKLOG: i32 = 4096;

/// After a failed accept (out of file descriptors, say), wait this long instead of spinning.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// What to serve.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Plain TCP listener; default `127.0.0.1:25204` (spec §9).
    pub tcp: Option<SocketAddr>,
    /// TLS listener and its configuration (the spec's port is 25206); default none.
    pub tls: Option<(SocketAddr, Arc<rustls::ServerConfig>)>,
    /// Session settings.
    pub session: ServerConfig,
    /// Who may connect: connection cap, rate per source, bans after failed authentication.
    /// Default [`AdmissionConfig::default`].
    pub admission: AdmissionConfig,
    /// The executor to run on.
    pub runtime: Runtime,
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
            runtime: Runtime::default(),
            record: None,
        }
    }
}

/// A running server.
#[derive(Debug)]
pub struct Server {
    /// Commands to the server.
    pub handle: ServerHandle,
    /// Everything the application must see: `Authenticate` (answer it), devices coming and
    /// going, deliveries to sinks. Unbounded: read it, or drop it to discard events.
    pub events: Receiver<BrokerEvent>,
    tcp_addr: Option<SocketAddr>,
    tls_addr: Option<SocketAddr>,
    done: Receiver<()>,
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

    /// Blocks until the server stopped (after [`ServerHandle::shutdown`]).
    pub fn join(self) -> io::Result<()> {
        async_io::block_on(closed(&self.done));
        Ok(())
    }
}

/// Commands to a running server, from any thread.
#[derive(Debug, Clone)]
pub struct ServerHandle {
    commands: Sender<Command>,
}

impl ServerHandle {
    fn send(&self, command: Command) {
        // Unbounded, so this fails only once the server stopped; a reply inside the command is
        // then dropped and its `Pending` yields `None`.
        let _ = self.commands.try_send(command);
    }

    fn ask<T: Send + 'static>(&self, command: impl FnOnce(Reply<T>) -> Command) -> Pending<T> {
        let (reply, pending) = Pending::new();
        self.send(command(reply));
        pending
    }

    /// Accepts the CONNECT of `conn` as `device`.
    pub fn accept(&self, conn: ConnId, device: &str) {
        let device = device.into();
        self.send(Command::Accept { conn, device });
    }

    /// Refuses the CONNECT of `conn`.
    pub fn reject(&self, conn: ConnId) {
        self.send(Command::Reject { conn });
    }

    /// RUNs `resource` on `device`.
    pub fn run(
        &self,
        device: &str,
        resource: &str,
        input: Option<Value>,
    ) -> Pending<RequestResult> {
        let (device, resource) = (device.into(), resource.into());
        self.ask(|reply| Command::Run {
            device,
            resource,
            input,
            reply,
        })
    }

    /// DESCRIBEs one resource of `device`, or all of them.
    pub fn describe(&self, device: &str, resource: Option<&str>) -> Pending<RequestResult> {
        let (device, resource) = (device.into(), resource.map(Into::into));
        self.ask(|reply| Command::Describe {
            device,
            resource,
            reply,
        })
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
        let (device, resource) = (device.into(), resource.into());
        self.ask(|reply| Command::Subscribe {
            device,
            resource,
            sink,
            interval_s,
            reply,
        })
    }

    /// Removes `sink` from `resource` of `device`.
    pub fn unsubscribe(&self, device: &str, resource: &str, sink: SinkId) {
        let (device, resource) = (device.into(), resource.into());
        self.send(Command::Unsubscribe {
            device,
            resource,
            sink,
        });
    }

    /// Sends DISCONNECT to every device, flushes, closes the listeners and stops.
    pub fn shutdown(&self) {
        self.send(Command::Shutdown);
    }
}

/// Binds the listeners and starts the server's tasks on `options.runtime`.
pub fn serve(options: ServerOptions) -> io::Result<Server> {
    let bind = |addr| {
        let listener = std::net::TcpListener::bind(addr)?;
        // Best effort: listening again on a listening socket only changes its queue length.
        let _ = rustix::net::listen(&listener, ACCEPT_BACKLOG);
        Async::new(listener)
    };
    let tcp = options.tcp.map(bind).transpose()?;
    let tls = match options.tls {
        Some((addr, config)) => Some((bind(addr)?, TlsAcceptor::from(config))),
        None => None,
    };
    let tcp_addr = tcp.as_ref().map(|l| l.get_ref().local_addr()).transpose()?;
    let tls_addr = tls
        .as_ref()
        .map(|(l, _)| l.get_ref().local_addr())
        .transpose()?;
    let listeners = tcp.map(|l| (l, None)).into_iter();
    let listeners = listeners.chain(tls.map(|(l, acceptor)| (l, Some(acceptor))));

    let (inputs, inputs_rx) = async_channel::bounded(INPUT_QUEUE);
    let (commands, commands_rx) = async_channel::unbounded();
    let (events_tx, events) = async_channel::unbounded();
    let (stop, stop_rx) = async_channel::bounded(1);
    let (done_tx, done) = async_channel::bounded(1);
    let (runtime, ids) = (options.runtime, Arc::new(AtomicU64::new(0)));
    for (listener, tls) in listeners {
        let (ids, inputs, stop) = (ids.clone(), inputs.clone(), stop_rx.clone());
        runtime.spawn(listen(listener, tls, ids, inputs, stop, runtime));
    }
    let mut broker = Broker::with_admission(options.session, options.admission);
    broker.set_recording(options.record.is_some());
    let task = BrokerTask {
        controller: Controller::new(broker),
        record: options.record,
        conns: HashMap::new(),
        events: events_tx,
        stop: Some(stop),
        clock: Clock::start(),
    };
    runtime.spawn(task.run(inputs_rx, commands_rx, done_tx));
    Ok(Server {
        handle: ServerHandle { commands },
        events,
        tcp_addr,
        tls_addr,
        done,
    })
}

/// From a connection task to the broker task, with the connection's id.
pub(crate) enum Input {
    /// A transport was accepted from this address (the authentication deadline runs from
    /// here, if the broker admits it).
    Open(ConnIo, Option<IpAddr>),
    /// Its TLS handshake finished; comes before its first bytes.
    Tls(TransportInfo),
    Bytes(Vec<u8>),
    /// The writer finished the last bytes it was given.
    Wrote,
    /// The transport ended or failed.
    Eof,
}

/// The broker task's end of a connection. Dropping it closes the connection: the writer sends
/// what it was given, closes, and the connection task ends.
pub(crate) struct ConnIo {
    pub(crate) out: Outlet,
    /// A write is in flight: the session keeps its bytes until the writer is done.
    pub(crate) busy: bool,
}

struct BrokerTask {
    controller: Controller,
    conns: HashMap<ConnId, ConnIo>,
    events: Sender<BrokerEvent>,
    /// Dropped at shutdown, which stops the listener tasks.
    stop: Option<Sender<()>>,
    clock: Clock,
    /// Where traces go, when recording.
    record: Option<PathBuf>,
}

enum Step {
    Input(ConnId, Input),
    Command(Command),
    Timeout,
    /// Every listener and connection task is gone (which only happens after shutdown).
    Finished,
}

impl BrokerTask {
    async fn run(
        mut self,
        inputs: Receiver<(ConnId, Input)>,
        commands: Receiver<Command>,
        _done: Sender<()>,
    ) {
        loop {
            let timer = self.clock.timer(self.controller.broker().poll_timeout());
            let input = |(conn, input)| Step::Input(conn, input);
            let step = async { inputs.recv().await.map_or(Step::Finished, input) }
                .race(async { Step::Command(next(&commands).await) })
                .race(async {
                    timer.await;
                    Step::Timeout
                })
                .await;
            let now = self.clock.now();
            let shutting_down = self.controller.is_shutting_down();
            let broker = self.controller.broker();
            match step {
                // After shutdown, dropping `io` closes the newcomer at once.
                Step::Input(_, Input::Open(..)) if shutting_down => {}
                Step::Input(conn, Input::Open(io, peer)) => {
                    let info = TransportInfo::default();
                    // Refused: dropping `io` closes the transport before anything is read.
                    if broker.try_open(now, conn, peer, info).is_ok() {
                        // The go-ahead: the connection task starts reading.
                        io.out.admit();
                        self.conns.insert(conn, io);
                    }
                }
                Step::Input(conn, Input::Tls(info)) => broker.set_transport(conn, info),
                Step::Input(conn, Input::Bytes(bytes)) => broker.handle_input(now, conn, &bytes),
                Step::Input(conn, Input::Eof) => broker.handle_eof(now, conn),
                Step::Input(conn, Input::Wrote) => {
                    if let Some(io) = self.conns.get_mut(&conn) {
                        io.busy = false;
                    }
                    self.flush(conn);
                }
                Step::Command(command) => {
                    self.controller.command(now, command);
                    if self.controller.is_shutting_down() {
                        self.stop = None;
                    }
                }
                Step::Timeout => broker.handle_timeout(now),
                Step::Finished => {
                    // Before `_done` drops and `join` returns: later commands fail to send, and
                    // queued ones are dropped, so that their `Pending`s yield `None` at once.
                    commands.close();
                    while commands.try_recv().is_ok() {}
                    return;
                }
            }
            self.drain();
        }
    }

    /// The core's outputs, in the order its contract asks for.
    fn drain(&mut self) {
        while let Some(conn) = self.controller.broker().poll_dirty() {
            self.flush(conn);
        }
        while let Some((conn, last)) = self.controller.broker().poll_closed() {
            if let Some(io) = self.conns.remove(&conn)
                && !last.is_empty()
            {
                // Queued behind a write in flight, if any; then `io` drops and closes.
                let _ = io.out.send(last);
            }
        }
        let broker = self.controller.broker();
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
            // The application may have dropped its receiver: then nobody wants the events.
            let _ = self.events.try_send(event);
        }
    }

    /// Hands `conn`'s pending bytes to its writer, unless a write is in flight.
    fn flush(&mut self, conn: ConnId) {
        let Some(io) = self.conns.get_mut(&conn).filter(|io| !io.busy) else {
            return;
        };
        let mut bytes = Vec::new();
        if self.controller.broker().poll_transmit(conn, &mut bytes) > 0 {
            io.busy = io.out.send(bytes);
        }
    }
}

/// Accepts on `listener` until the broker drops the stop signal.
async fn listen(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    ids: Arc<AtomicU64>,
    inputs: Sender<(ConnId, Input)>,
    stop: Receiver<()>,
    runtime: Runtime,
) {
    while let Some(accepted) = or_none(listener.accept(), closed(&stop)).await {
        let Ok((stream, peer)) = accepted else {
            // Out of file descriptors, say: wait a little instead of spinning.
            Timer::after(ACCEPT_RETRY).await;
            continue;
        };
        let conn = ids.fetch_add(1, Ordering::Relaxed) + 1;
        let peer = Some(peer.ip());
        runtime.spawn(Connection::new(
            conn,
            stream,
            peer,
            tls.clone(),
            inputs.clone(),
        ));
    }
    // Close the port before `inputs` drops (the broker task ends once every input sender is
    // gone), so that a joined server's ports can be bound again.
    drop(listener);
}

#[cfg(test)]
mod tests {
    /// Every connection's task holds this future for its whole life: what only the TLS
    /// handshake, a read or a write in flight needs must not be inline (it was 5.6 KB with the
    /// handshake and the read buffer, ~0.7 KB as `async` blocks).
    #[test]
    fn a_connection_task_stays_small() -> std::io::Result<()> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let _client = std::net::TcpStream::connect(listener.local_addr()?)?;
        let tcp = async_io::Async::new(listener.accept()?.0)?;
        let (inputs, _rx) = async_channel::bounded(1);
        let task = super::Connection::new(1, tcp, None, None, inputs);
        let size = size_of_val(&task);
        assert!(size <= 128, "{size}");
        Ok(())
    }
}
