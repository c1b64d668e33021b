//! The library half of the `iotmp` package: the parts of the binary that are worth testing from
//! the outside (integration tests under `tests/` can only reach a library target).
//!
//! * [`api`]: the HTTP / WebSocket / SSE API of `iotmp server` (spec chapter 8), behind the
//!   [`api::Backend`] trait; the `iotmp server` command implements that trait over the registry
//!   and the drivers and calls [`api::serve`] (`use iotmp_cli::api;` from `main.rs`' modules).
//!
//! Everything else of the command line lives in the binary target (`src/main.rs`).

pub mod api;
