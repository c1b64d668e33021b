//! `iotmp`: one binary for both IOTMP roles.
//!
//! It will play a device exposing resources, or a server with the HTTP / WebSocket / SSE API of
//! spec chapter 8, and will decode, encode, record and replay traffic. Only the wire codec of
//! `iotmp-proto` exists so far; until the roles land this binary says so and exits with status 2.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!(
        "iotmp {}: the device, server, decode and replay commands are not built yet.\n\
         The wire codec is ready in the iotmp-proto crate; see README.md for the status.",
        env!("CARGO_PKG_VERSION")
    );
    ExitCode::from(2)
}
