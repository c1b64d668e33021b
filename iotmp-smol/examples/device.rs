//! A device with two resources: `temp`, an output (a simulated thermometer), and `led`, an
//! input. It connects, reconnects with backoff whenever the connection ends, and prints what
//! happens until it is killed.
//!
//! ```text
//! cargo run -p iotmp-smol --example device -- [ADDRESS [USER [DEVICE [CREDENTIAL]]]]
//! ```
//!
//! Each argument may also come from the environment (`IOTMP_ADDRESS`, `IOTMP_USER`,
//! `IOTMP_DEVICE`, `IOTMP_CREDENTIAL`); the defaults suit the `server` example.

use std::error::Error;
use std::time::Instant;

use iotmp_smol::DeviceOptions;
use iotmp_smol::proto::{ClientConfig, DeviceResources, Dialect, Value};

/// The next argument, else the environment variable `env`, else `default`.
fn setting(args: &mut impl Iterator<Item = String>, env: &str, default: &str) -> String {
    args.next()
        .or_else(|| std::env::var(env).ok())
        .unwrap_or_else(|| default.to_owned())
}

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let address = setting(&mut args, "IOTMP_ADDRESS", "127.0.0.1:25204");
    let user = setting(&mut args, "IOTMP_USER", "alice");
    let device = setting(&mut args, "IOTMP_DEVICE", "dev01");
    let credential = setting(&mut args, "IOTMP_CREDENTIAL", "secret");

    let started = Instant::now();
    let resources = DeviceResources::new()
        // Drifts around 21 °C over a minute, so that a subscriber sees the values change.
        .output("temp", move || {
            let phase = started.elapsed().as_secs_f32() / 10.0;
            Ok(Value::F32(21.0 + 2.0 * phase.sin()))
        })
        .input("led", Value::Bool(false), |value| {
            println!("led <- {value}");
            Ok(())
        });
    let config = ClientConfig::new(Dialect::Draft2026, &user, &device, &credential);
    let options = DeviceOptions {
        address,
        ..DeviceOptions::default()
    };
    let driver = iotmp_smol::connect(options, config, resources)?;
    while let Ok(event) = driver.events.recv_blocking() {
        println!("{event:?}");
    }
    Ok(())
}
