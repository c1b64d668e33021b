//! A [`Client`] with resource handlers: declare each resource once with a closure, and the
//! device answers RUN, DESCRIBE and streams from it (spec §6.5–6.7).
//!
//! [`Device`] services the client's [`ClientEvent::Run`] and [`ClientEvent::ValueNeeded`]
//! events itself by calling the handlers, synchronously; every other event comes out of
//! [`Device::poll_event`]. Applications whose handlers must run asynchronously use [`Client`]
//! directly and answer those two events when they are ready.

use std::collections::VecDeque;

use crate::client::{
    Client, ClientConfig, ClientEvent, HandlerError, ResourceKind, Resources, RunOutput,
};
use crate::session::{CommandError, Timer};
use crate::time::Instant;
use crate::value::{Text, Value};

/// What a resource does when it is run or read.
pub trait ResourceHandler: Send {
    /// RUN: apply `input` (fn 2, 4) and return the output (fn 3, 4).
    fn run(
        &mut self,
        input: Option<Value>,
        params: Option<&Value>,
    ) -> Result<RunOutput, HandlerError>;
    /// The current value, for streams and DESCRIBE: the output (fn 3, 4) or current input (fn 2).
    fn read(&mut self) -> Result<Value, HandlerError>;
}

struct Output<F>(F);
impl<F: FnMut() -> Result<Value, HandlerError> + Send> ResourceHandler for Output<F> {
    fn run(
        &mut self,
        _input: Option<Value>,
        _params: Option<&Value>,
    ) -> Result<RunOutput, HandlerError> {
        (self.0)().map(RunOutput::value)
    }
    fn read(&mut self) -> Result<Value, HandlerError> {
        (self.0)()
    }
}

struct Input<F> {
    current: Value,
    apply: F,
}
impl<F: FnMut(&Value) -> Result<(), HandlerError> + Send> ResourceHandler for Input<F> {
    fn run(
        &mut self,
        input: Option<Value>,
        _params: Option<&Value>,
    ) -> Result<RunOutput, HandlerError> {
        if let Some(input) = input {
            (self.apply)(&input)?;
            self.current = input;
        }
        Ok(RunOutput::default())
    }
    fn read(&mut self) -> Result<Value, HandlerError> {
        Ok(self.current.clone())
    }
}

struct Action<F>(F);
impl<F: FnMut() -> Result<(), HandlerError> + Send> ResourceHandler for Action<F> {
    fn run(
        &mut self,
        _input: Option<Value>,
        _params: Option<&Value>,
    ) -> Result<RunOutput, HandlerError> {
        (self.0)().map(|()| RunOutput::default())
    }
    fn read(&mut self) -> Result<Value, HandlerError> {
        Err(HandlerError {
            code: 400,
            message: "an action has no value".into(),
        })
    }
}

struct InputOutput<F>(F);
impl<F: FnMut(Option<Value>) -> Result<Value, HandlerError> + Send> ResourceHandler
    for InputOutput<F>
{
    fn run(
        &mut self,
        input: Option<Value>,
        _params: Option<&Value>,
    ) -> Result<RunOutput, HandlerError> {
        (self.0)(input).map(RunOutput::value)
    }
    fn read(&mut self) -> Result<Value, HandlerError> {
        (self.0)(None)
    }
}

/// Declares resources and their handlers before connecting.
#[derive(Default)]
pub struct DeviceResources {
    resources: Resources,
    handlers: Vec<(Text, Box<dyn ResourceHandler>)>,
}

impl std::fmt::Debug for DeviceResources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceResources")
            .field("resources", &self.resources)
            .finish_non_exhaustive()
    }
}

impl DeviceResources {
    /// No resources yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// A resource with any handler.
    pub fn with_handler(
        mut self,
        name: &str,
        kind: ResourceKind,
        handler: impl ResourceHandler + 'static,
    ) -> Self {
        self.resources.add(name, kind);
        self.handlers.retain(|(n, _)| n != name);
        self.handlers.push((Text::from(name), Box::new(handler)));
        self
    }

    /// fn 3: `read` gives the current output.
    pub fn output(
        self,
        name: &str,
        read: impl FnMut() -> Result<Value, HandlerError> + Send + 'static,
    ) -> Self {
        self.with_handler(name, ResourceKind::Output, Output(read))
    }

    /// fn 2: `apply` takes each input; the last applied input is the resource's value.
    pub fn input(
        self,
        name: &str,
        initial: Value,
        apply: impl FnMut(&Value) -> Result<(), HandlerError> + Send + 'static,
    ) -> Self {
        self.with_handler(
            name,
            ResourceKind::Input,
            Input {
                current: initial,
                apply,
            },
        )
    }

    /// fn 1: `run` runs it.
    pub fn action(
        self,
        name: &str,
        run: impl FnMut() -> Result<(), HandlerError> + Send + 'static,
    ) -> Self {
        self.with_handler(name, ResourceKind::Action, Action(run))
    }

    /// fn 4: `call` takes the input if any and returns the output (called with `None` to read).
    pub fn input_output(
        self,
        name: &str,
        call: impl FnMut(Option<Value>) -> Result<Value, HandlerError> + Send + 'static,
    ) -> Self {
        self.with_handler(name, ResourceKind::InputOutput, InputOutput(call))
    }

    /// The names and kinds declared.
    pub fn resources(&self) -> &Resources {
        &self.resources
    }
}

/// A device session that answers from its handlers. Same contract as [`Client`].
pub struct Device {
    client: Client,
    config: ClientConfig,
    handlers: Vec<(Text, Box<dyn ResourceHandler>)>,
    events: VecDeque<ClientEvent>,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device")
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

impl Device {
    /// Connects (queues CONNECT) with the declared resources.
    pub fn new(
        config: ClientConfig,
        resources: DeviceResources,
        now: Instant,
    ) -> Result<Self, CommandError> {
        let client = Client::new(config.clone(), resources.resources, now)?;
        Ok(Device {
            client,
            config,
            handlers: resources.handlers,
            events: VecDeque::new(),
        })
    }

    /// A new transport is open: starts a fresh session (queuing its CONNECT) with the same
    /// configuration, resources and handlers. Events of the old session that were not polled
    /// are dropped.
    pub fn reconnect(&mut self, now: Instant) -> Result<(), CommandError> {
        let resources = self.client.resources().clone();
        self.client = Client::new(self.config.clone(), resources, now)?;
        self.events.clear();
        Ok(())
    }

    /// Starts recording a replay trace of the current session ([`Client::start_trace`]). Call
    /// it right after [`Device::new`] or [`Device::reconnect`]: each session has its own trace.
    #[cfg(feature = "serde")]
    pub fn start_trace(&mut self) {
        self.client.start_trace();
    }

    /// Takes the trace text of the current session recorded since the last call (empty when
    /// not recording). Taken after the session closed, it is the session's complete trace.
    #[cfg(feature = "serde")]
    pub fn take_trace(&mut self) -> String {
        self.client.take_trace()
    }

    /// The session, for commands such as [`Client::run`] or [`Client::disconnect`].
    pub fn client(&mut self) -> &mut Client {
        &mut self.client
    }

    /// Read-only access to the session.
    pub fn session(&self) -> &Client {
        &self.client
    }

    /// See [`Client::handle_input`].
    pub fn handle_input(&mut self, now: Instant, bytes: &[u8]) {
        self.client.handle_input(now, bytes);
        self.service(now);
    }

    /// See [`Client::handle_timeout`].
    pub fn handle_timeout(&mut self, now: Instant) {
        self.client.handle_timeout(now);
        self.service(now);
    }

    /// See [`Client::handle_eof`].
    pub fn handle_eof(&mut self, now: Instant) {
        self.client.handle_eof(now);
        self.service(now);
    }

    /// `stream(resource)`: reads the resource and sends it on its event stream, if one listens.
    pub fn stream(&mut self, now: Instant, resource: &str) -> Result<bool, CommandError> {
        let listened = self.client.stream(now, resource)?;
        self.service(now);
        Ok(listened)
    }

    /// Answers pending handler work after a command issued through [`Device::client`].
    pub fn service(&mut self, now: Instant) {
        while let Some(event) = self.client.poll_event() {
            match event {
                ClientEvent::Run(run) => {
                    let result = match self.handler(&run.resource) {
                        Some(handler) => handler.run(run.input, run.params.as_ref()),
                        None => Err(HandlerError::new("no handler")),
                    };
                    // The run is pending until now, so this cannot fail for a missing request;
                    // an output the dialect cannot carry becomes a handler failure (§6.5.1).
                    if let Err(CommandError::Encode(e)) = self.client.respond(now, run.id, result) {
                        let failure = Err(HandlerError::new(format!("output not sendable: {e}")));
                        let _ = self.client.respond(now, run.id, failure);
                    }
                }
                ClientEvent::ValueNeeded { resource } => {
                    let value = match self.handler(&resource) {
                        Some(handler) => handler.read(),
                        None => Err(HandlerError::new("no handler")),
                    };
                    // A value the dialect cannot carry is a failed read: no data message, and
                    // a waiting DESCRIBE gets an ERROR (§6.7).
                    if let Err(CommandError::Encode(e)) =
                        self.client.provide_value(now, &resource, value)
                    {
                        let failure = Err(HandlerError::new(format!("value not sendable: {e}")));
                        let _ = self.client.provide_value(now, &resource, failure);
                    }
                }
                other => self.events.push_back(other),
            }
        }
    }

    fn handler(&mut self, resource: &str) -> Option<&mut Box<dyn ResourceHandler>> {
        self.handlers
            .iter_mut()
            .find(|(n, _)| n == resource)
            .map(|(_, h)| h)
    }

    /// See [`Client::poll_transmit`].
    pub fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> usize {
        self.client.poll_transmit(buf)
    }

    /// Events the handlers did not consume.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// See [`Client::poll_timeout`].
    pub fn poll_timeout(&self) -> Option<(Instant, Timer)> {
        self.client.poll_timeout()
    }
}

/// What a device driver (mio, smol, …) reports to its application about the connection.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum DriverEvent {
    /// A transport to the server is open; CONNECT is on its way.
    TransportUp,
    /// The server accepted the CONNECT.
    Connected,
    /// Any other event of the session (answers to the device's requests, streams started, …).
    Session(ClientEvent),
    /// The connection ended (or could not be made); the driver will try again.
    Disconnected {
        /// Why, in words.
        reason: String,
    },
    /// The next attempt is scheduled after this delay (backoff with jitter).
    Retrying {
        /// The delay.
        after: core::time::Duration,
    },
    /// The driver stopped for good (shutdown).
    Stopped,
    /// The driver could not write the replay trace of a session (recording on).
    TraceFailed {
        /// What went wrong, in words.
        error: String,
    },
}
