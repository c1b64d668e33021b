//! # iotmp-mio
//!
//! The `mio` driver of IOTMP: a device client loop and a multi-connection server loop built on
//! `mio::Poll`, moving bytes and time between sockets and the sans-IO sessions of
//! [`iotmp_proto`]. It holds no protocol logic of its own.
//!
//! Status: placeholder. The loops arrive once the core's sessions exist (see the project issues);
//! for now the crate only re-exports the core so that the workspace builds as a whole.

pub use iotmp_proto as proto;
