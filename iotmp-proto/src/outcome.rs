//! What a receiver does with an input it cannot use as is (spec §7.2).

/// The four outcomes of spec §7.2, as the vector files name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Skip the frame (unknown message type); send nothing; keep the connection.
    Ignore,
    /// Discard the message; send nothing; keep the connection.
    Drop,
    /// Discard the message and answer the malformed reply (spec §7.3) for `stream_id`.
    DropAndError {
        /// The request's stream id.
        stream_id: u16,
    },
    /// Close the connection without sending anything more.
    Close,
}

impl Outcome {
    /// The name used by `vectors/invalid.json`.
    pub const fn name(self) -> &'static str {
        match self {
            Outcome::Ignore => "ignore",
            Outcome::Drop => "drop",
            Outcome::DropAndError { .. } => "drop_and_error",
            Outcome::Close => "close",
        }
    }
}
