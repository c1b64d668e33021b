//! Deframes the input in input-chosen chunks (byte 0 steers chunking and the body limit), checks
//! that chunked, byte-by-byte and whole feeding agree, then decodes every frame as dialect 2020 and
//! round-trips each decoded message through the encoder.
#![no_main]

use iotmp_proto::Dialect;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    iotmp_fuzz::deframe_decode(Dialect::Draft2020, data);
});
