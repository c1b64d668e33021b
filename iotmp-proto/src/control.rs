//! Commands from application threads to a [`Broker`] that a driver runs, with their answers
//! delivered through callbacks.
//!
//! A driver owns the broker on its own thread or task. The application sends it [`Command`]s
//! (through whatever channel the driver uses); each command that has an answer carries a
//! [`Reply`] callback, called exactly once with the outcome. The [`Controller`] does the
//! bookkeeping, so that drivers only move commands, bytes and time — and every driver behaves
//! the same.

use std::collections::BTreeMap;

use crate::broker::{Broker, BrokerEvent, ConnId, RequestFailure, RequestId, Subscription};
use crate::fanout::SinkId;
use crate::session::Answer;
use crate::session::requests::StreamEnd;
use crate::time::Instant;
use crate::value::{Text, Value};

/// A callback that receives the outcome of a command, exactly once.
pub type Reply<T> = Box<dyn FnOnce(T) + Send>;

/// The outcome of a RUN or DESCRIBE.
pub type RequestResult = Result<Answer, RequestFailure>;

/// The outcome of a subscription.
pub type SubscribeResult = Result<(), StreamEnd>;

/// A subscription waiting for the device: device, resource, sink, callback.
type WaitingSubscription = (Text, Text, SinkId, Reply<SubscribeResult>);

/// What an application asks of a running broker.
#[non_exhaustive]
pub enum Command {
    /// Accept a connection's CONNECT as `device`.
    Accept {
        /// The connection, from [`BrokerEvent::Authenticate`].
        conn: ConnId,
        /// The device it is.
        device: String,
    },
    /// Refuse a connection's CONNECT.
    Reject {
        /// The connection.
        conn: ConnId,
    },
    /// RUN a resource of a device.
    Run {
        /// The device.
        device: String,
        /// The resource.
        resource: String,
        /// The input.
        input: Option<Value>,
        /// Receives the answer.
        reply: Reply<RequestResult>,
    },
    /// DESCRIBE a device (one resource or all).
    Describe {
        /// The device.
        device: String,
        /// One resource, or `None` for all.
        resource: Option<String>,
        /// Receives the answer.
        reply: Reply<RequestResult>,
    },
    /// Register a sink; values come as [`BrokerEvent::Delivery`].
    Subscribe {
        /// The device.
        device: String,
        /// The resource.
        resource: String,
        /// The sink.
        sink: SinkId,
        /// Seconds between values, 0 = events.
        interval_s: u32,
        /// Receives `Ok` once the device streams (at once if nothing had to be asked).
        reply: Reply<SubscribeResult>,
    },
    /// Remove a sink.
    Unsubscribe {
        /// The device.
        device: String,
        /// The resource.
        resource: String,
        /// The sink.
        sink: SinkId,
    },
    /// DISCONNECT every device and stop.
    Shutdown,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Accept { conn, device } => write!(f, "Accept({conn}, {device:?})"),
            Command::Reject { conn } => write!(f, "Reject({conn})"),
            Command::Run {
                device, resource, ..
            } => write!(f, "Run({device:?}, {resource:?})"),
            Command::Describe {
                device, resource, ..
            } => write!(f, "Describe({device:?}, {resource:?})"),
            Command::Subscribe {
                device,
                resource,
                sink,
                interval_s,
                ..
            } => {
                write!(
                    f,
                    "Subscribe({device:?}, {resource:?}, sink {sink}, {interval_s} s)"
                )
            }
            Command::Unsubscribe {
                device,
                resource,
                sink,
            } => write!(f, "Unsubscribe({device:?}, {resource:?}, sink {sink})"),
            Command::Shutdown => f.write_str("Shutdown"),
        }
    }
}

/// A broker plus the callbacks waiting on it.
pub struct Controller {
    broker: Broker,
    requests: BTreeMap<RequestId, Reply<RequestResult>>,
    subscriptions: Vec<WaitingSubscription>,
    shutting_down: bool,
}

impl std::fmt::Debug for Controller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller")
            .field("broker", &self.broker)
            .field("pending_requests", &self.requests.len())
            .field("pending_subscriptions", &self.subscriptions.len())
            .finish()
    }
}

impl Controller {
    /// Wraps `broker`.
    pub fn new(broker: Broker) -> Self {
        Controller {
            broker,
            requests: BTreeMap::new(),
            subscriptions: Vec::new(),
            shutting_down: false,
        }
    }

    /// The broker, for the driver's transport calls.
    pub fn broker(&mut self) -> &mut Broker {
        &mut self.broker
    }

    /// True once [`Command::Shutdown`] was applied.
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down
    }

    /// Applies a command at `now`.
    pub fn command(&mut self, now: Instant, command: Command) {
        match command {
            // A decision about a connection that is already gone has nothing left to decide.
            Command::Accept { conn, device } => {
                let _ = self.broker.accept(now, conn, &device);
            }
            Command::Reject { conn } => {
                let _ = self.broker.reject(now, conn);
            }
            Command::Run {
                device,
                resource,
                input,
                reply,
            } => match self.broker.run(now, &device, &resource, input) {
                Ok(id) => {
                    self.requests.insert(id, reply);
                }
                Err(e) => reply(Err(e)),
            },
            Command::Describe {
                device,
                resource,
                reply,
            } => match self.broker.describe(now, &device, resource.as_deref()) {
                Ok(id) => {
                    self.requests.insert(id, reply);
                }
                Err(e) => reply(Err(e)),
            },
            Command::Subscribe {
                device,
                resource,
                sink,
                interval_s,
                reply,
            } => {
                match self
                    .broker
                    .subscribe(now, &device, &resource, sink, interval_s)
                {
                    Subscription::Ready => reply(Ok(())),
                    Subscription::Pending => self.subscriptions.push((
                        Text::from(device),
                        Text::from(resource),
                        sink,
                        reply,
                    )),
                }
            }
            Command::Unsubscribe {
                device,
                resource,
                sink,
            } => {
                self.broker.unsubscribe(now, &device, &resource, sink);
            }
            Command::Shutdown => {
                self.shutting_down = true;
                self.broker.shutdown(now);
            }
        }
    }

    /// The next event for the application; answers and subscription outcomes that have a
    /// callback go to it instead.
    pub fn poll_event(&mut self) -> Option<BrokerEvent> {
        loop {
            let event = self.broker.poll_event()?;
            match event {
                BrokerEvent::Answer { request, result } => match self.requests.remove(&request) {
                    Some(reply) => reply(result),
                    None => return Some(BrokerEvent::Answer { request, result }),
                },
                BrokerEvent::Subscribed {
                    device,
                    resource,
                    sink,
                    result,
                } => {
                    let index = self
                        .subscriptions
                        .iter()
                        .position(|(d, r, s, _)| *d == device && *r == resource && *s == sink);
                    match index {
                        Some(i) => {
                            let (.., reply) = self.subscriptions.swap_remove(i);
                            reply(result);
                        }
                        None => {
                            return Some(BrokerEvent::Subscribed {
                                device,
                                resource,
                                sink,
                                result,
                            });
                        }
                    }
                }
                other => return Some(other),
            }
        }
    }
}
