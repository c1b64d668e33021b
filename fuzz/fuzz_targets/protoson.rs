//! Decodes the input as one Protoson ("PSON v1") value (whole and as a prefix) and round-trips
//! what decodes.
#![no_main]

use iotmp_proto::Flavour;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    iotmp_fuzz::check_value(Flavour::V1, data);
});
