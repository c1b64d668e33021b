//! # iotmp-proto
//!
//! The deterministic, sans-IO core of IOTMP, the IoT Message Protocol, in both wire generations
//! (2020 and 2026). This crate never touches a socket, a thread, a clock or a random number
//! generator: bytes, time and commands go in; bytes, events and deadlines come out.
//!
//! The layers, bottom up:
//!
//! * [`value`]: the value model ([`Value`], [`Map`]) and number normalisation (spec §5.1);
//! * [`pson`]: the PSON v2 and Protoson value codecs (spec §5.2, §5.3);
//! * [`message`]: the one message model both dialects share (spec §2.5);
//! * [`dialect`]: the 2020 and 2026 codecs for it (spec chapters 3, 4);
//! * [`frame`]: framing and the incremental [`Deframer`](frame::Deframer) (spec §2.3);
//! * [`outcome`]: what a receiver does with bad input (spec §7.2);
//! * `json` (feature `serde`, on by default): the value ↔ JSON mapping of spec §8.3 and the
//!   tagged-JSON forms of the test vectors.
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

pub mod client;
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
#[cfg(feature = "serde")]
pub mod trace;
pub mod value;
mod varint;

pub use client::{Client, ClientConfig, ClientEvent};
pub use device::{Device, DeviceResources};
pub use dialect::{Dialect, EncodeError, MessageError, MessageErrorKind};
pub use message::{AuthType, Message, MessageType, StreamKind};
pub use outcome::Outcome;
pub use pson::Flavour;
pub use server::{ServerConfig, ServerEvent, ServerSession};
pub use session::{Answer, CloseReason, CommandError, Timer};
pub use time::Instant;
pub use value::{Map, Text, Value};
