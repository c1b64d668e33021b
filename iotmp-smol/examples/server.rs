//! A tiny server on 127.0.0.1:25204: it accepts every device whose credential is "secret",
//! prints every event, and subscribes to `temp` of each device that comes online (a value every
//! 5 s). Run the `device` example next to it.
//!
//! ```text
//! cargo run -p iotmp-smol --example server
//! ```

use std::collections::HashMap;
use std::error::Error;

use iotmp_smol::ServerOptions;
use iotmp_smol::proto::broker::BrokerEvent;
use iotmp_smol::proto::fanout::SinkId;
use iotmp_smol::proto::server::Credentials;

/// Compares without an early exit, so that the time taken does not tell how much of a guess
/// was right.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn main() -> Result<(), Box<dyn Error>> {
    let server = iotmp_smol::serve(ServerOptions::default())?;
    println!("listening on {:?}", server.tcp_addr());
    // One sink per device: sinks survive reconnects, so a device is subscribed to only once.
    let mut sinks: HashMap<String, SinkId> = HashMap::new();
    while let Ok(event) = server.events.recv_blocking() {
        println!("{event:?}");
        match event {
            BrokerEvent::Authenticate { conn, request } => match request.credentials {
                Credentials::Password {
                    device, credential, ..
                } if same(credential.as_bytes(), b"secret") => server.handle.accept(conn, &device),
                _ => server.handle.reject(conn),
            },
            BrokerEvent::DeviceOnline { device, .. } if !sinks.contains_key(device.as_str()) => {
                let sink = SinkId::try_from(sinks.len())? + 1;
                sinks.insert(device.to_string(), sink);
                let pending = server.handle.subscribe(&device, "temp", sink, 5);
                // Wait for the device's answer elsewhere: this thread must go on reading events.
                std::thread::spawn(move || {
                    println!("subscribed to {device}/temp: {:?}", pending.wait());
                });
            }
            _ => {}
        }
    }
    Ok(())
}
