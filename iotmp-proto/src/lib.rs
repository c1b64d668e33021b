//! # iotmp-proto
//!
//! The deterministic, sans-IO core of IOTMP, the IoT Message Protocol, in both wire generations
//! (2020 and 2026). This crate never touches a socket, a thread, a clock or a random number
//! generator: bytes, time and commands go in; bytes, events and deadlines come out. Drivers
//! (`iotmp-mio`, `iotmp-smol`, or your own event loop) move bytes and time between a transport
//! and the sessions; every protocol rule lives here.
//!
//! ## The sessions
//!
//! * [`Client`]: the device side of one connection. [`Device`] wraps it with closures that
//!   answer RUNs and value reads on the spot.
//! * [`ServerSession`]: the server side of one connection; [`hub::DeviceStreams`] binds it to
//!   the GCD [`fanout`] of each resource so that sinks (dashboards, recorders) survive reconnects.
//!
//! ## The contract
//!
//! Both sessions follow the same shape:
//!
//! * **Inputs**: `handle_input(now, bytes)` when bytes arrive (any chunking), `handle_timeout(now)`
//!   when the deadline from `poll_timeout` is reached (calling it early or twice is harmless),
//!   `handle_eof(now)` when the transport ends.
//! * **Commands** are verbs: `run`, `describe`, `start_stream`, `respond`, `provide_value`,
//!   `stream`, `disconnect`, … They queue output and may queue events; they fail with a typed
//!   [`CommandError`] and send nothing when they cannot be carried out.
//! * **Outputs** are drained, in this order, after every input or command:
//!   1. `poll_transmit(&mut buf)` appends every byte to write (whole frames);
//!   2. `poll_event()` until `None`;
//!   3. `poll_timeout()` gives the next deadline and the [`Timer`] that set it.
//! * **Time** is an [`Instant`] passed into every call that needs it: microseconds on the
//!   caller's monotonic clock. The core never reads a clock (clippy's `disallowed-methods`
//!   enforces it) and holds no randomness (the first stream id is configuration).
//! * **Closing** is one event, `Closed(reason)`, exactly once and last. When it comes out, write
//!   what `poll_transmit` still holds (an ERROR to a refused CONNECT, say), then close the
//!   transport. After that every input and command is a no-op.
//!
//! ## The run loop
//!
//! One mutation, then drain, then sleep until input or the deadline. A device over a blocking
//! `std::net::TcpStream`:
//!
//! ```no_run
//! use std::io::{ErrorKind, Read, Write};
//! use std::net::TcpStream;
//! use std::time::{Duration, Instant as Clock};
//!
//! use iotmp_proto::{ClientConfig, ClientEvent, Device, DeviceResources, Dialect, Instant, Value};
//!
//! let epoch = Clock::now();
//! let now = || Instant::from_elapsed(epoch.elapsed());
//! let mut socket = TcpStream::connect("127.0.0.1:25204")?;
//! let config = ClientConfig::new(Dialect::Draft2026, "alice", "dev01", "s3cr3t").with_keep_alive(30);
//! let resources = DeviceResources::new().output("temp", || Ok(Value::F32(21.5)));
//! let mut device = Device::new(config, resources, now())?; // queues the CONNECT
//!
//! let (mut out, mut buf) = (Vec::new(), [0u8; 4096]);
//! loop {
//!     // Drain: bytes first, then events.
//!     device.poll_transmit(&mut out);
//!     socket.write_all(&out)?;
//!     out.clear();
//!     while let Some(event) = device.poll_event() {
//!         match event {
//!             ClientEvent::Connected => println!("connected"),
//!             ClientEvent::Closed(reason) => {
//!                 println!("closed: {reason}");
//!                 return Ok(());
//!             }
//!             _ => {}
//!         }
//!     }
//!     // Sleep until input or the next deadline.
//!     let wait = device.poll_timeout().map_or(Duration::from_secs(60), |(at, _)| at.saturating_since(now()));
//!     socket.set_read_timeout(Some(wait.max(Duration::from_millis(1))))?;
//!     // One mutation.
//!     match socket.read(&mut buf) {
//!         Ok(0) => device.handle_eof(now()),
//!         Ok(n) => device.handle_input(now(), &buf[..n]),
//!         Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => device.handle_timeout(now()),
//!         Err(e) => return Err(e.into()),
//!     }
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## The layers, bottom up
//!
//! * [`value`]: the value model ([`Value`], [`Map`]) and number normalisation (spec §5.1);
//! * [`pson`]: the PSON v2 and Protoson value codecs (spec §5.2, §5.3);
//! * [`message`]: the one message model both dialects share (spec §2.5);
//! * [`dialect`]: the 2020 and 2026 codecs for it (spec chapters 3, 4);
//! * [`frame`]: framing and the incremental [`Deframer`](frame::Deframer) (spec §2.3);
//! * [`outcome`]: what a receiver does with bad input (spec §7.2);
//! * [`client`], [`server`], [`session`]: the state machines (spec chapter 6);
//! * [`fanout`], [`hub`]: server-side stream scheduling with the GCD rule (spec §6.9);
//! * `json` and `trace` (feature `serde`, on by default): the value ↔ JSON mapping of spec §8.3,
//!   the tagged-JSON forms of the test vectors, and replayable session traces.
//!
//! ```
//! use iotmp_proto::{Dialect, Flavour, Message, MessageType, Value};
//! use iotmp_proto::frame::Deframer;
//!
//! let run = Message::new(MessageType::Run).with_stream_id(3).with_resource("led").with_payload(true);
//! let mut wire = Vec::new();
//! Dialect::Draft2026.encode(&run, Flavour::V2, &mut wire)?;
//! assert_eq!(wire, [0x06, 0x09, 0x08, 0x03, 0x22, 0x83, b'l', b'e', b'd', 0x1A, 0x61]);
//!
//! let mut input = &wire[..];
//! let mut deframer = Deframer::default();
//! let frame = deframer.next_frame(&mut input)?.expect("one whole frame");
//! assert_eq!(Dialect::Draft2026.decode(frame.type_code, frame.body)?, run);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]

pub mod admission;
pub mod backoff;
pub mod broker;
pub mod client;
pub mod control;
pub mod device;
pub mod dialect;
pub mod fanout;
pub mod frame;
pub mod hub;
#[cfg(feature = "serde")]
pub mod json;
mod len_prefix;
pub mod message;
pub mod outcome;
pub mod pson;
pub mod server;
pub mod session;
pub mod time;
#[cfg(feature = "tls")]
pub mod tls;
#[cfg(feature = "serde")]
pub mod trace;
pub mod value;
mod varint;

pub use client::{Client, ClientConfig, ClientEvent};
pub use device::{Device, DeviceResources, DriverEvent};
pub use dialect::{Dialect, EncodeError, MessageError, MessageErrorKind};
pub use message::{AuthType, Message, MessageType, StreamKind};
pub use outcome::Outcome;
pub use pson::Flavour;
pub use server::{ServerConfig, ServerEvent, ServerSession};
pub use session::{Answer, CloseReason, CommandError, Timer};
pub use time::Instant;
pub use value::{Map, Text, Value};
