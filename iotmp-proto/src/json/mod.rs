//! JSON forms of values and messages (feature `serde`).
//!
//! * [`value`]: the mapping of spec §8.3 used by the HTTP API (lossy by design: JSON has no
//!   float widths and no bytes);
//! * [`tagged`]: the lossless "tagged JSON" of `vectors/README.md` (`{"$f32": 21.5}`, …), used by
//!   `iotmp decode` / `iotmp encode` and the conformance tests;
//! * [`message`]: the message JSON form of the vector files, built on the tagged values.

pub mod message;
pub mod tagged;
pub mod value;
