//! # iotmp-smol
//!
//! The async driver of IOTMP over `futures-io` and `async-io` timers: smol by default, async-std
//! behind the `async-std` feature. Like `iotmp-mio` it moves bytes and time between transports and
//! the sans-IO sessions of [`iotmp_proto`], and holds no protocol logic of its own.
//!
//! Status: placeholder. The device and server loops arrive once the core's sessions exist; for now
//! the crate only re-exports the core so that the workspace builds as a whole.

pub use iotmp_proto as proto;
