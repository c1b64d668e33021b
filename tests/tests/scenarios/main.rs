//! Scenario transcripts. Each protocol scenario runs on an in-memory device/server [`Pair`] on a
//! virtual clock, once per dialect, and its transcript (one line per frame or event: relative
//! time, direction, decoded message, hex) is pinned with insta under `snapshots/`, named
//! `<scenario>_2020` and `<scenario>_2026`. Every test also asserts the behaviour it is about
//! (who closed and why, exact times, counts), so it means something before anyone reads the
//! snapshot.
//!
//! | Group | Spec | What |
//! |---|---|---|
//! | [`connect`] | §6.1, §6.2 | accepted, refused (credential, keep-alive), never answered |
//! | [`keep_alive`] | §6.3 | an idle hour; a lost echo (dead link); lost keep-alives (expiry) |
//! | [`requests`] | §6.4–6.6 | RUN and DESCRIBE both ways, 404, fire and forget, timeout |
//! | [`streams`] | §6.7 | event stream and the echo rule; sampling stream until STOP |
//! | [`fanout`] | §6.9 | the 6 s + 9 s GCD fan-out; sampling and event sinks together |
//! | [`timing`] | §6.3, §6.7 | late timer wakeups: no sample bursts, fixed keep-alive schedule |
//! | [`malformed`] | §7.2, §7.3 | bad input in each direction: malformed reply, skip, close |
//! | [`disconnect`] | §6.11 | DISCONNECT from either side, with and without waiting |
//! | [`reconnect`] | §6.9 | sinks survive a reconnect in the other dialect |
//! | [`invalid`] | §6.1, §7 | every frame entry of `invalid.json` on live sessions (no snapshot) |
//!
//! Update the snapshots with `INSTA_UPDATE=always cargo test -p iotmp-tests --test scenarios`
//! (or `cargo insta test --accept`), then read every changed snapshot against the spec: a
//! snapshot pins behaviour, so a wrong one is a bug.
//!
//! [`Pair`]: iotmp_tests::pair::Pair

#[macro_use]
mod common;

mod connect;
mod disconnect;
mod fanout;
mod invalid;
mod keep_alive;
mod malformed;
mod reconnect;
mod requests;
mod streams;
mod timing;
