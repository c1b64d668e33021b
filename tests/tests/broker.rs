//! The broker with several devices on a virtual clock: authentication by the application,
//! requests routed to the right device and back, sinks across devices, replaced connections and
//! sinks surviving a reconnect.

use std::time::Duration;

use iotmp_proto::broker::{Broker, BrokerEvent, ConnId, RequestFailure, Subscription};
use iotmp_proto::server::{Credentials, ServerConfig, TransportInfo};
use iotmp_proto::{
    Answer, ClientConfig, ClientEvent, Device, DeviceResources, Dialect, Instant, Value,
};

struct World {
    now: Instant,
    broker: Broker,
    devices: Vec<(ConnId, Device, bool)>,
    events: Vec<BrokerEvent>,
    device_events: Vec<(ConnId, ClientEvent)>,
    next_conn: ConnId,
}

fn resources(temp: f32) -> DeviceResources {
    DeviceResources::new()
        .output("temp", move || Ok(Value::F32(temp)))
        .input("led", Value::Bool(false), |_| Ok(()))
}

impl World {
    fn new() -> Self {
        World {
            now: Instant::ZERO,
            broker: Broker::new(ServerConfig::default()),
            devices: Vec::new(),
            events: Vec::new(),
            device_events: Vec::new(),
            next_conn: 1,
        }
    }

    fn connect(&mut self, dialect: Dialect, device: &str, credential: &str, temp: f32) -> ConnId {
        let conn = self.next_conn;
        self.next_conn += 1;
        self.broker.open(self.now, conn, TransportInfo::default());
        let config = ClientConfig::new(dialect, "alice", device, credential);
        let device = Device::new(config, resources(temp), self.now).unwrap();
        self.devices.push((conn, device, true));
        self.settle();
        conn
    }

    /// Moves bytes both ways and answers authentication until nothing moves.
    fn settle(&mut self) {
        loop {
            let mut moved = false;
            for (conn, device, open) in &mut self.devices {
                let mut bytes = Vec::new();
                if *open && device.poll_transmit(&mut bytes) > 0 {
                    moved = true;
                    self.broker.handle_input(self.now, *conn, &bytes);
                }
                while let Some(e) = device.poll_event() {
                    moved = true;
                    if matches!(e, ClientEvent::Closed(_)) && *open {
                        *open = false;
                        self.broker.handle_eof(self.now, *conn);
                    }
                    self.device_events.push((*conn, e));
                }
            }
            while let Some(conn) = self.broker.poll_dirty() {
                moved = true;
                let mut bytes = Vec::new();
                self.broker.poll_transmit(conn, &mut bytes);
                self.deliver(conn, &bytes);
            }
            while let Some((conn, last)) = self.broker.poll_closed() {
                moved = true;
                self.deliver(conn, &last);
                if let Some((_, device, open)) = self.devices.iter_mut().find(|(c, ..)| *c == conn)
                {
                    if *open {
                        device.handle_eof(self.now);
                    }
                    *open = false;
                }
            }
            while let Some(event) = self.broker.poll_event() {
                moved = true;
                if let BrokerEvent::Authenticate { conn, request } = &event {
                    match &request.credentials {
                        Credentials::Password {
                            device, credential, ..
                        } if credential == "good" => {
                            self.broker
                                .accept(self.now, *conn, &format!("alice/{device}"))
                                .unwrap();
                        }
                        _ => self.broker.reject(self.now, *conn).unwrap(),
                    }
                }
                self.events.push(event);
            }
            if !moved {
                break;
            }
        }
    }

    fn deliver(&mut self, conn: ConnId, bytes: &[u8]) {
        if let Some((_, device, true)) = self.devices.iter_mut().find(|(c, ..)| *c == conn) {
            device.handle_input(self.now, bytes);
        }
    }

    fn run_until(&mut self, until: Instant) {
        loop {
            let device_next = self
                .devices
                .iter()
                .filter(|d| d.2)
                .filter_map(|(_, d, _)| d.poll_timeout().map(|(t, _)| t))
                .min();
            let next = [device_next, self.broker.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(t) if t <= until => {
                    self.now = self.now.max(t);
                    for (_, device, open) in &mut self.devices {
                        if *open && device.poll_timeout().is_some_and(|(t, _)| t <= self.now) {
                            device.handle_timeout(self.now);
                        }
                    }
                    self.broker.handle_timeout(self.now);
                    self.settle();
                }
                _ => break,
            }
        }
        self.now = until;
    }

    fn answers(&self) -> Vec<&Result<Answer, RequestFailure>> {
        self.events
            .iter()
            .filter_map(|e| {
                if let BrokerEvent::Answer { result, .. } = e {
                    Some(result)
                } else {
                    None
                }
            })
            .collect()
    }

    fn deliveries(&self) -> Vec<(String, u64, Value)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                BrokerEvent::Delivery {
                    device,
                    sink,
                    value,
                    ..
                } => Some((device.to_string(), *sink, value.clone())),
                _ => None,
            })
            .collect()
    }
}

#[test]
fn requests_reach_the_right_device_in_either_dialect() {
    let mut w = World::new();
    w.connect(Dialect::Draft2020, "a", "good", 1.5);
    w.connect(Dialect::Draft2026, "b", "good", 2.5);
    let bad = w.connect(Dialect::Draft2026, "c", "bad", 0.0);
    assert!(
        w.events
            .iter()
            .any(|e| matches!(e, BrokerEvent::ConnectionClosed { conn, .. } if *conn == bad))
    );
    assert_eq!(w.broker.online().count(), 2);
    let ra = w.broker.run(w.now, "alice/a", "temp", None).unwrap();
    let rb = w.broker.run(w.now, "alice/b", "temp", None).unwrap();
    w.settle();
    let answer = |id| {
        w.events.iter().find_map(|e| match e {
            BrokerEvent::Answer {
                request,
                result: Ok(Answer::Ok { payload, .. }),
            } if *request == id => payload.clone(),
            _ => None,
        })
    };
    assert_eq!(answer(ra), Some(Value::F32(1.5)));
    assert_eq!(answer(rb), Some(Value::F32(2.5)));
    assert_eq!(
        w.broker.run(w.now, "alice/c", "temp", None),
        Err(RequestFailure::Offline)
    );
}

#[test]
fn a_silent_device_times_out() {
    let mut w = World::new();
    let conn = w.connect(Dialect::Draft2026, "a", "good", 1.0);
    // The device stops reading: its half of the link is gone, the connection stays up.
    w.devices.iter_mut().find(|d| d.0 == conn).unwrap().2 = false;
    w.broker.run(w.now, "alice/a", "temp", None).unwrap();
    w.run_until(Instant::from_secs(11));
    assert_eq!(w.answers(), [&Err(RequestFailure::Timeout)]);
}

#[test]
fn sinks_fan_out_and_survive_a_reconnect() {
    let mut w = World::new();
    w.connect(Dialect::Draft2026, "a", "good", 20.0);
    assert_eq!(
        w.broker.subscribe(w.now, "alice/a", "temp", 1, 2),
        Subscription::Pending
    );
    assert_eq!(
        w.broker.subscribe(w.now, "alice/a", "temp", 2, 3),
        Subscription::Pending
    );
    w.settle();
    assert!(w.events.iter().any(|e| matches!(
        e,
        BrokerEvent::Subscribed {
            sink: 1,
            result: Ok(()),
            ..
        }
    )));
    w.run_until(Instant::from_secs(12));
    let counts = |w: &World, sink| w.deliveries().iter().filter(|(_, s, _)| *s == sink).count();
    // Device at GCD(2, 3) = 1 s; sink 1 every 2 s and sink 2 every 3 s from t = 0.
    assert_eq!((counts(&w, 1), counts(&w, 2)), (7, 5));

    // A second connection of the same device replaces the first; the sinks carry on.
    let before = w.deliveries().len();
    w.connect(Dialect::Draft2020, "a", "good", 21.0);
    assert!(w.device_events.iter().any(|(_, e)| matches!(
        e,
        ClientEvent::Closed(iotmp_proto::CloseReason::PeerDisconnect { .. })
    )));
    w.run_until(Instant::from_secs(24));
    let after: Vec<_> = w.deliveries().into_iter().skip(before).collect();
    assert!(
        after.len() >= 8,
        "deliveries resumed on the new connection: {after:?}"
    );
    assert!(
        after.iter().all(|(_, _, v)| *v == Value::F32(21.0)),
        "{after:?}"
    );

    // The last sinks leave: the device's stream stops.
    w.broker.unsubscribe(w.now, "alice/a", "temp", 1);
    w.broker.unsubscribe(w.now, "alice/a", "temp", 2);
    w.settle();
    let before = w.deliveries().len();
    w.run_for_secs(10);
    assert_eq!(w.deliveries().len(), before);
}

impl World {
    fn run_for_secs(&mut self, s: u64) {
        self.run_until(self.now + Duration::from_secs(s));
    }
}
