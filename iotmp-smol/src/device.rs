//! The device: one task that connects, runs the session and reconnects.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use async_channel::{Receiver, Sender};
use async_net::TcpStream;
use futures_lite::{AsyncReadExt, AsyncWriteExt, FutureExt};
use futures_rustls::rustls::pki_types::ServerName;
use futures_rustls::{TlsConnector, rustls};
use iotmp_proto::backoff::{Backoff, Reconnect};
use iotmp_proto::{ClientConfig, Device, DeviceResources, DriverEvent, Value};

use crate::{Clock, Io, READ_BUFFER, Runtime, closed, next, or_none, timed, write_all};

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct DeviceOptions {
    /// `host:port` of the server; default `127.0.0.1:25204` (spec §9).
    pub address: String,
    /// TLS: the client configuration and the server name to verify and send as SNI.
    pub tls: Option<(Arc<rustls::ClientConfig>, String)>,
    /// Reconnect delays (spec §6.1).
    pub backoff: Backoff,
    /// The executor to run on.
    pub runtime: Runtime,
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
            runtime: Runtime::default(),
            record: None,
        }
    }
}

/// A running device.
#[derive(Debug)]
pub struct DeviceDriver {
    /// Commands to the device.
    pub handle: DeviceHandle,
    /// What happens to the connection, and the session's events. Unbounded: read it, or drop it
    /// to discard events.
    pub events: Receiver<DriverEvent>,
    done: Receiver<()>,
}

impl DeviceDriver {
    /// Blocks until the driver stopped (after [`DeviceHandle::shutdown`]).
    pub fn join(self) -> io::Result<()> {
        async_io::block_on(closed(&self.done));
        Ok(())
    }
}

#[derive(Debug)]
enum DeviceCommand {
    Stream(String),
    StreamValue(String, Value),
    Shutdown,
}

/// Commands to a running device, from any thread. Stream commands while the device is offline
/// are dropped: no server listens then.
#[derive(Debug, Clone)]
pub struct DeviceHandle {
    commands: Sender<DeviceCommand>,
}

impl DeviceHandle {
    fn send(&self, command: DeviceCommand) {
        // Unbounded, so this fails only once the driver stopped.
        let _ = self.commands.try_send(command);
    }

    /// Sends the current value of `resource` on its event stream, if the server listens.
    pub fn stream(&self, resource: &str) {
        self.send(DeviceCommand::Stream(resource.into()));
    }

    /// Sends `value` on the event stream of `resource`, if the server listens.
    pub fn stream_value(&self, resource: &str, value: Value) {
        self.send(DeviceCommand::StreamValue(resource.into(), value));
    }

    /// Sends DISCONNECT (without waiting for an answer), closes and stops reconnecting.
    pub fn shutdown(&self) {
        self.send(DeviceCommand::Shutdown);
    }
}

/// Starts a device with `resources` on `options.runtime`; it connects in the background.
pub fn connect(
    options: DeviceOptions,
    config: ClientConfig,
    resources: DeviceResources,
) -> io::Result<DeviceDriver> {
    fn invalid(e: impl std::error::Error + Send + Sync + 'static) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidInput, e)
    }
    let tls = match options.tls {
        Some((config, name)) => {
            let name = ServerName::try_from(name).map_err(invalid)?;
            Some((TlsConnector::from(config), name))
        }
        None => None,
    };
    let clock = Clock::start();
    let device = Device::new(config, resources, clock.now()).map_err(invalid)?;
    let (commands, commands_rx) = async_channel::unbounded();
    let (events_tx, events) = async_channel::unbounded();
    let (done_tx, done) = async_channel::bounded(1);
    let task = DeviceTask {
        address: options.address,
        tls,
        device,
        reconnect: Reconnect::new(options.backoff),
        commands: commands_rx,
        events: events_tx,
        clock,
        record: options.record,
        sessions: 0,
    };
    options.runtime.spawn(task.run(done_tx));
    let handle = DeviceHandle { commands };
    Ok(DeviceDriver {
        handle,
        events,
        done,
    })
}

async fn open(
    address: &str,
    tls: Option<&(TlsConnector, ServerName<'static>)>,
) -> io::Result<Box<dyn Io>> {
    let tcp = timed(TcpStream::connect(address)).await?;
    // IOTMP frames are small and often answer each other: do not let Nagle hold them back.
    let _ = tcp.set_nodelay(true);
    Ok(match tls {
        None => Box::new(tcp),
        Some((connector, name)) => Box::new(timed(connector.connect(name.clone(), tcp)).await?),
    })
}

/// Consumes commands until a shutdown; while offline, nothing else can be carried out.
async fn until_shutdown(commands: &Receiver<DeviceCommand>) {
    while !matches!(next(commands).await, DeviceCommand::Shutdown) {}
}

struct DeviceTask {
    address: String,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    device: Device,
    reconnect: Reconnect,
    commands: Receiver<DeviceCommand>,
    events: Sender<DriverEvent>,
    clock: Clock,
    /// Where traces go, when recording.
    record: Option<PathBuf>,
    /// Sessions started so far: numbers the trace files.
    sessions: u64,
}

enum Step {
    Read(io::Result<usize>),
    Command(DeviceCommand),
    Timeout,
}

impl DeviceTask {
    fn emit(&self, event: DriverEvent) {
        // The application may have dropped its receiver: then nobody wants the events.
        let _ = self.events.try_send(event);
    }

    async fn run(mut self, _done: Sender<()>) {
        // `None` once stopped.
        while let Some(at) = self.reconnect.poll_timeout() {
            // Borrow fields, not `self`: the future must be `Send`, and handlers are not `Sync`.
            let (timer, commands) = (self.clock.timer(Some(at)), &self.commands);
            let open = async {
                timer.await;
                open(&self.address, self.tls.as_ref()).await
            };
            let reason = match or_none(open, until_shutdown(commands)).await {
                None => break,
                Some(Err(e)) => e.to_string(),
                Some(Ok(stream)) => self.session(stream).await,
            };
            self.save_trace();
            self.emit(DriverEvent::Disconnected { reason });
            if self.reconnect.is_stopped() {
                break;
            }
            let now = self.clock.now();
            let at = self.reconnect.lost(now, fastrand::u32(..));
            self.emit(DriverEvent::Retrying { after: at - now });
        }
        self.emit(DriverEvent::Stopped);
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

    /// Runs one session over `stream`; returns why it ended.
    async fn session(&mut self, mut stream: Box<dyn Io>) -> String {
        self.reconnect.up();
        self.emit(DriverEvent::TransportUp);
        if let Err(e) = self.device.reconnect(self.clock.now()) {
            return e.to_string();
        }
        self.sessions += 1;
        if self.record.is_some() {
            // Right after the fresh session is made, so that it holds every output.
            self.device.start_trace();
        }
        let (mut buf, mut out) = (vec![0; READ_BUFFER], Vec::new());
        loop {
            // Drain: bytes first, then events (`Closed` comes last).
            self.device.poll_transmit(&mut out);
            // A failed write ends the transport: the session closes as on EOF.
            if !out.is_empty() && write_all(&mut stream, &out).await.is_err() {
                self.device.handle_eof(self.clock.now());
            }
            out.clear();
            while let Some(event) = self.device.poll_event() {
                match self.reconnect.observe(event) {
                    Ok(event) => self.emit(event),
                    Err(reason) => {
                        let _ = timed(stream.close()).await;
                        return reason.to_string();
                    }
                }
            }

            // Sleep until input, a command or the deadline.
            let timer = self
                .clock
                .timer(self.device.poll_timeout().map(|(at, _)| at));
            let commands = &self.commands;
            let step = async { Step::Read(stream.read(&mut buf).await) }
                .race(async { Step::Command(next(commands).await) })
                .race(async {
                    timer.await;
                    Step::Timeout
                })
                .await;

            // One mutation.
            let (now, device) = (self.clock.now(), &mut self.device);
            match step {
                Step::Read(Ok(n)) if n > 0 => {
                    device.handle_input(now, buf.get(..n).unwrap_or_default())
                }
                // An error ends the transport like EOF does (non-blocking reads are not
                // interrupted).
                Step::Read(_) => device.handle_eof(now),
                // Refused commands (not connected yet, say) have nothing to send.
                Step::Command(DeviceCommand::Stream(resource)) => {
                    drop(device.stream(now, &resource))
                }
                Step::Command(DeviceCommand::StreamValue(resource, value)) => {
                    let _ = device.client().stream_value(now, &resource, value);
                    device.service(now);
                }
                Step::Command(DeviceCommand::Shutdown) => {
                    self.reconnect.stop();
                    let _ = device.client().disconnect(now, None, false);
                    device.service(now);
                }
                Step::Timeout => device.handle_timeout(now),
            }
        }
    }
}
