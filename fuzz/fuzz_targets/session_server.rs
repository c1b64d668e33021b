//! A server session fed raw bytes in random chunks, clock advances and application commands;
//! see `src/server_fuzz.rs` for the input layout and the invariants.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    iotmp_fuzz::server_fuzz::run(data);
});
