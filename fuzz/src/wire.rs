//! What a session writes must always be whole, valid frames of its dialect.

use iotmp_proto::frame::Deframer;
use iotmp_proto::{Dialect, Message};

/// Splits one `poll_transmit` output into messages, panicking (a fuzz finding) if it is not a
/// sequence of whole frames that each decode in `dialect`.
pub fn decode_output(dialect: Dialect, bytes: &[u8]) -> Vec<Message> {
    let mut deframer = Deframer::new(u32::MAX);
    let mut input = bytes;
    let mut messages = Vec::new();
    loop {
        match deframer.next_frame(&mut input) {
            Ok(Some(frame)) => match dialect.decode(frame.type_code, frame.body) {
                Ok(m) => messages.push(m),
                Err(e) => panic!(
                    "session wrote a {dialect} frame that does not decode: {e}; frame {:02X?}",
                    frame.body
                ),
            },
            Ok(None) => break,
            Err(e) => panic!("session wrote bytes that do not frame: {e}"),
        }
    }
    if let Err(e) = deframer.finish() {
        panic!("session output ends inside a frame: {e}; bytes {bytes:02X?}");
    }
    messages
}

/// Output a session may have produced after `bytes_in` bytes of input over `steps` steps: every
/// frame in can be answered by a few frames out, and each step may add a bounded amount of its
/// own (a keep-alive, a DESCRIBE of all resources, one value to every stream). Anything above
/// this is growth the peer drives without paying for it.
pub fn output_bound(bytes_in: usize, steps: usize) -> usize {
    64 * bytes_in + 32 * 1024 * steps
}
