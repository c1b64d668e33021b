//! A device with two resources, `temp` (an output) and `led` (an input), that connects to
//! 127.0.0.1:25204 (or `IOTMP_ADDRESS`) and streams `temp` every two seconds to whoever listens.
//!
//! ```text
//! cargo run -p iotmp-mio --example mio-device -- [user] [device] [credential]
//! ```
//!
//! Credentials come from the arguments, else `IOTMP_USER` / `IOTMP_DEVICE` /
//! `IOTMP_CREDENTIAL`, else `alice` / `dev01` / `secret`. Press Enter (or close stdin) to stop.

use std::time::Duration;

use iotmp_mio::proto::{ClientConfig, DeviceResources, Dialect, Value};
use iotmp_mio::{DeviceOptions, connect};

fn setting(args: &mut impl Iterator<Item = String>, env: &str, default: &str) -> String {
    args.next()
        .or_else(|| std::env::var(env).ok())
        .unwrap_or_else(|| default.to_owned())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let user = setting(&mut args, "IOTMP_USER", "alice");
    let device = setting(&mut args, "IOTMP_DEVICE", "dev01");
    let credential = setting(&mut args, "IOTMP_CREDENTIAL", "secret");
    let options = DeviceOptions {
        address: std::env::var("IOTMP_ADDRESS").unwrap_or_else(|_| "127.0.0.1:25204".into()),
        ..DeviceOptions::default()
    };

    let started = std::time::Instant::now();
    let resources = DeviceResources::new()
        // A temperature that drifts slowly, so that streamed values change.
        .output("temp", move || {
            let t = started.elapsed().as_secs_f32();
            Ok(Value::F32(21.0 + (t / 30.0).sin() * 2.0))
        })
        .input("led", Value::Bool(false), |value| {
            println!("led := {value}");
            Ok(())
        });
    let config = ClientConfig::new(Dialect::Draft2026, &user, &device, &credential);
    let driver = connect(options, config, resources)?;

    let handle = driver.handle.clone();
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(Duration::from_secs(2));
            handle.stream("temp"); // sends only while a server stream listens
        }
    });
    let handle = driver.handle.clone();
    std::thread::spawn(move || {
        let _ = std::io::stdin().read_line(&mut String::new());
        handle.shutdown();
    });

    while let Ok(event) = driver.events.recv_blocking() {
        println!("{event:?}");
    }
    driver.join()?;
    Ok(())
}
