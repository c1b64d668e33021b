//! Well-formed but odd message sequences, built with the core's encoder, fed to a server or a
//! client session; each message must get the answer the spec gives it. See `src/odd.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    iotmp_fuzz::odd::run(data);
});
