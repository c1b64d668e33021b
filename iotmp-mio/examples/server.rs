//! A tiny server on 127.0.0.1:25204: it accepts every device whose credential is `secret` (or
//! the first argument), prints every event, and subscribes to `temp` of each device that comes
//! online.
//!
//! ```text
//! cargo run -p iotmp-mio --example mio-server -- [credential]
//! ```
//!
//! Press Enter (or close stdin) to shut down: every device gets a DISCONNECT.

use std::time::Duration;

use iotmp_mio::proto::broker::BrokerEvent;
use iotmp_mio::proto::server::Credentials;
use iotmp_mio::{ServerOptions, serve};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let secret = std::env::args().nth(1).unwrap_or_else(|| "secret".into());
    let server = serve(ServerOptions::default())?;
    println!("listening on {:?}", server.tcp_addr());

    let handle = server.handle.clone();
    std::thread::spawn(move || {
        let _ = std::io::stdin().read_line(&mut String::new());
        handle.shutdown();
    });

    let mut next_sink = 0;
    while let Ok(event) = server.events.recv_blocking() {
        println!("{event:?}");
        match event {
            BrokerEvent::Authenticate { conn, request } => match request.credentials {
                // A real server compares in constant time against its device registry.
                Credentials::Password {
                    device, credential, ..
                } if credential == secret => server.handle.accept(conn, &device),
                _ => server.handle.reject(conn),
            },
            BrokerEvent::DeviceOnline { device, .. } => {
                next_sink += 1;
                let pending = server.handle.subscribe(&device, "temp", next_sink, 0);
                // Wait for the device's answer elsewhere: this thread keeps printing events.
                std::thread::spawn(move || {
                    let result = pending.wait_timeout(Duration::from_secs(15));
                    println!("subscription to {device}/temp: {result:?}");
                });
            }
            _ => {}
        }
    }
    server.join()?;
    Ok(())
}
