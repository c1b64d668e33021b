//! Binds the fan-outs of one device (one [`Fanout`] per resource) to its current
//! [`ServerSession`]: sinks join and leave here, the device's streams are opened, reconfigured
//! and stopped through the session, and values arriving on them are routed back to the sinks.
//!
//! The sinks live in [`DeviceStreams`], not in the session, so they survive the device going
//! away: [`DeviceStreams::disconnected`] forgets the streams, [`DeviceStreams::connected`] opens
//! what the sinks need on the new connection, with new ids (spec §6.9). Like the rest of the
//! core it is pure state: no I/O, time passed in.

use crate::fanout::{Delivery, Fanout, FanoutAction, SinkId, StreamSlot};
use crate::server::{ServerEvent, ServerSession};
use crate::session::requests::StreamEnd;
use crate::time::Instant;
use crate::value::{Text, Value};

#[derive(Debug, Default)]
struct ResourceStreams {
    resource: Text,
    fanout: Fanout,
    /// The stream id serving each open slot on the current connection.
    ids: Vec<(StreamSlot, u16)>,
}

impl ResourceStreams {
    fn slot_of(&self, id: u16) -> Option<StreamSlot> {
        self.ids.iter().find(|(_, i)| *i == id).map(|(s, _)| *s)
    }

    fn id_of(&self, slot: StreamSlot) -> Option<u16> {
        self.ids.iter().find(|(s, _)| *s == slot).map(|(_, i)| *i)
    }

    /// Carries out fan-out actions on the session; collects the ids of the START_STREAMs sent
    /// (new or reconfigured streams: an API layer waits for their answer, spec §8.4).
    fn apply(
        &mut self,
        now: Instant,
        session: &mut ServerSession,
        actions: Vec<FanoutAction>,
        opened: &mut Vec<u16>,
    ) {
        for action in actions {
            let slot = action.slot();
            let result = match action {
                FanoutAction::Open { interval_ms, .. } => session
                    .start_stream(now, Value::Str(self.resource.clone()), interval_ms)
                    .map(|id| {
                        self.ids.retain(|(s, _)| *s != slot);
                        self.ids.push((slot, id));
                        opened.push(id);
                    }),
                FanoutAction::Reconfigure { interval_ms, .. } => match self.id_of(slot) {
                    Some(id) => session
                        .reconfigure_stream(now, id, interval_ms)
                        .map(|()| opened.push(id)),
                    None => Ok(()),
                },
                FanoutAction::Stop { .. } => match self.id_of(slot) {
                    Some(id) => {
                        self.ids.retain(|(s, _)| *s != slot);
                        session.stop_stream(now, id)
                    }
                    None => Ok(()),
                },
            };
            if result.is_err() {
                // Limits reached or the connection is closing: the stream is not open.
                self.ids.retain(|(s, _)| *s != slot);
                self.fanout.stream_failed(slot);
            }
        }
    }
}

/// What a join did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Joined {
    /// Values for sinks right away (the cached value for a late joiner).
    pub deliveries: Vec<Delivery>,
    /// Streams the join opened or reconfigured on the device (START_STREAM sent); their answer
    /// decides the subscription (§8.4).
    pub opened: Vec<u16>,
}

/// The fan-outs of one device. See the [module docs](self).
#[derive(Debug, Default)]
pub struct DeviceStreams {
    resources: Vec<ResourceStreams>,
}

impl DeviceStreams {
    /// No sinks.
    pub fn new() -> Self {
        DeviceStreams::default()
    }

    /// No sink on any resource.
    pub fn is_empty(&self) -> bool {
        self.resources.is_empty()
    }

    fn entry(&mut self, resource: &str) -> Option<&mut ResourceStreams> {
        let index = match self.resources.iter().position(|r| r.resource == resource) {
            Some(index) => index,
            None => {
                self.resources.push(ResourceStreams {
                    resource: Text::from(resource),
                    ..ResourceStreams::default()
                });
                self.resources.len() - 1
            }
        };
        self.resources.get_mut(index)
    }

    /// The fan-out of `resource`, if any sink ever joined it.
    pub fn fanout(&self, resource: &str) -> Option<&Fanout> {
        self.resources
            .iter()
            .find(|r| r.resource == resource)
            .map(|r| &r.fanout)
    }

    /// The stream id serving `slot` of `resource` on the current connection.
    pub fn stream_id(&self, resource: &str, slot: StreamSlot) -> Option<u16> {
        self.resources
            .iter()
            .find(|r| r.resource == resource)
            .and_then(|r| r.id_of(slot))
    }

    /// A sink joins `resource` with `interval_s` (0 = events). `session` is the device's
    /// established connection, if it has one.
    pub fn join(
        &mut self,
        now: Instant,
        session: Option<&mut ServerSession>,
        resource: &str,
        sink: SinkId,
        interval_s: u32,
    ) -> Joined {
        let mut joined = Joined::default();
        let Some(entry) = self.entry(resource) else {
            return joined;
        };
        let mut actions = Vec::new();
        let session = session.filter(|s| s.is_established());
        // A resource seen for the first time learns that the device is online.
        if let Some(dialect) = session.as_ref().and_then(|s| s.dialect())
            && entry.fanout.dialect().is_none()
        {
            entry.fanout.device_connected(now, dialect, &mut actions);
        }
        entry
            .fanout
            .join(now, sink, interval_s, &mut actions, &mut joined.deliveries);
        if let Some(session) = session {
            entry.apply(now, session, actions, &mut joined.opened);
        }
        joined
    }

    /// A sink leaves `resource` (no-op if it was not there).
    pub fn leave(
        &mut self,
        now: Instant,
        session: Option<&mut ServerSession>,
        resource: &str,
        sink: SinkId,
    ) {
        let Some(entry) = self.resources.iter_mut().find(|r| r.resource == resource) else {
            return;
        };
        let mut actions = Vec::new();
        entry.fanout.leave(now, sink, &mut actions);
        if let Some(session) = session.filter(|s| s.is_established()) {
            entry.apply(now, session, actions, &mut Vec::new());
        }
        self.resources.retain(|r| !r.fanout.is_idle());
    }

    /// The device's connection was accepted: open what the registered sinks need.
    pub fn connected(&mut self, now: Instant, session: &mut ServerSession) {
        let Some(dialect) = session.dialect() else {
            return;
        };
        for entry in &mut self.resources {
            entry.ids.clear();
            let mut actions = Vec::new();
            entry.fanout.device_connected(now, dialect, &mut actions);
            entry.apply(now, session, actions, &mut Vec::new());
        }
    }

    /// The device's connection ended: streams and cached values are gone, sinks stay.
    pub fn disconnected(&mut self) {
        for entry in &mut self.resources {
            entry.ids.clear();
            entry.fanout.device_disconnected();
        }
    }

    /// Routes a session event: values to sinks (appended to `out` with their resource), stream
    /// failures back into the fan-out. Returns whether the event concerned these streams.
    pub fn handle_event(
        &mut self,
        now: Instant,
        event: &ServerEvent,
        out: &mut Vec<(Text, Delivery)>,
    ) -> bool {
        match event {
            ServerEvent::StreamData {
                id,
                value: Some(value),
                ..
            } => {
                let Some(entry) = self.resources.iter_mut().find(|r| r.slot_of(*id).is_some())
                else {
                    return false;
                };
                let Some(slot) = entry.slot_of(*id) else {
                    return false;
                };
                let mut deliveries = Vec::new();
                entry.fanout.on_data(now, slot, value, &mut deliveries);
                out.extend(deliveries.into_iter().map(|d| (entry.resource.clone(), d)));
                true
            }
            ServerEvent::StreamClosed { id, why } => {
                let Some(entry) = self.resources.iter_mut().find(|r| r.slot_of(*id).is_some())
                else {
                    return false;
                };
                if let Some(slot) = entry.slot_of(*id) {
                    entry.ids.retain(|(_, i)| i != id);
                    if !matches!(why, StreamEnd::Stopped) {
                        // Not re-opened here: a device that keeps refusing would otherwise be
                        // asked again at network speed. The next join, leave or reconnect
                        // reconciles, and an API layer drops the sink whose join failed (§8.4).
                        entry.fanout.stream_failed(slot);
                    }
                }
                true
            }
            _ => false,
        }
    }
}
