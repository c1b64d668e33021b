//! The command line: clap types only, no behaviour.
//!
//! Every option that makes sense outside one invocation can also come from an `IOTMP_*`
//! environment variable (clap's `env`) and from the config file (see [`crate::config`]). Options
//! that the config file may set are `Option`s here, without a clap default: `None` means "not on
//! the command line nor in the environment", and the command then falls back to the config file
//! and finally to the built-in default (documented in each option's help).
//!
//! A new subcommand adds a variant to [`Command`], its `Args` struct here, a module under
//! `commands/`, and one arm in [`crate::commands::run`].

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand};

use crate::values::{ByteSize, DialectChoice, PsonChoice, WireDialect};

/// `iotmp`: inspect and replay IOTMP traffic.
#[derive(Debug, Parser)]
#[command(
    name = "iotmp",
    version,
    about = "IOTMP (IoT Message Protocol) tool: decode and encode frames, replay session traces",
    long_about = "IOTMP (IoT Message Protocol) tool: decode and encode frames of both wire \
                  generations (2020 and 2026), and replay recorded session traces.",
    after_help = "Examples and the environment variables are in --help.",
    after_long_help = crate::help::top_level(),
    arg_required_else_help = true,
    propagate_version = true
)]
pub(crate) struct Cli {
    /// Options every subcommand takes.
    #[command(flatten)]
    pub(crate) global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Options every subcommand takes (before or after the subcommand's name).
#[derive(Debug, Args)]
pub(crate) struct GlobalArgs {
    /// Read settings from this TOML file; its keys mirror the long options (see --help).
    #[arg(
        long,
        short = 'c',
        global = true,
        env = "IOTMP_CONFIG",
        value_name = "FILE"
    )]
    pub(crate) config: Option<PathBuf>,

    /// More logs on stderr: -v info, -vv debug, -vvv trace (RUST_LOG, when set, wins).
    #[arg(short, long, global = true, action = ArgAction::Count)]
    pub(crate) verbose: u8,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Decode frames (hex or binary) into one message JSON object per line.
    #[command(after_help = "Examples:\n  \
            iotmp decode --dialect 2026 \"0A 04 08 6A 18 2A\"\n  \
            iotmp decode 03 1D 08 01 12 C1 82 6B 61 1E 1A E3 85 61 6C 69 63 65 85 64 65 76 30 31 86 73 33 63 72 33 74\n  \
            echo \"0A 04 08 6A 18 2A\" | iotmp decode --dialect 2026\n  \
            iotmp decode --dialect 2020 --file capture.bin\n\n\
            A frame that does not decode is reported on stderr with its byte offset and the\n\
            receiver's outcome (spec §7.2); decoding goes on with the next frame. A framing\n\
            error (bad header, body above --max-body, truncated frame) stops the decoding.\n\
            Exit status 3 when any frame failed.")]
    Decode(DecodeArgs),

    /// Encode message JSON objects (one per line) into frames, as hex or raw bytes.
    #[command(after_help = "Examples:\n  \
            echo '{\"type\":\"RUN\",\"stream_id\":3,\"resource\":\"led\",\"payload\":true}' | iotmp encode --dialect 2026\n  \
            iotmp encode --dialect 2020 '{\"type\":\"KEEP_ALIVE\"}'\n  \
            iotmp encode --dialect 2026 --pson v1 --file messages.jsonl\n  \
            iotmp decode --dialect 2026 \"06 09 08 03 22 83 6C 65 64 1A 61\" | iotmp encode --dialect 2020 --binary > run.bin\n\n\
            The message JSON form is the one `iotmp decode` prints (spec vectors README §4).\n\
            Blank lines and lines starting with # are skipped. A line that does not encode is\n\
            reported on stderr with its line number and skipped; exit status 3 when any failed.")]
    Encode(EncodeArgs),

    /// Replay a session trace and check that a fresh session reproduces every output.
    #[command(after_help = "Examples:\n  \
            iotmp replay tests/traces/sample-2026-device.trace\n  \
            iotmp replay - < session.trace\n\n\
            Prints the transcript on stdout. Exit status 3 with the first divergence (trace\n\
            line, expected and actual output) when the replay does not match the recording.")]
    Replay(ReplayArgs),
}

/// `iotmp decode`.
#[derive(Debug, Args)]
pub(crate) struct DecodeArgs {
    /// Frames as hex: pairs of digits, spaces and newlines allowed, "0x" prefixes allowed,
    /// "#" starts a comment. None, or "-", reads the hex from stdin.
    #[arg(value_name = "HEX", conflicts_with = "file")]
    pub(crate) hex: Vec<String>,

    /// Read raw binary frames from FILE instead of hex ("-" reads binary from stdin).
    #[arg(long, short, value_name = "FILE")]
    pub(crate) file: Option<PathBuf>,

    /// Wire generation; "detect" picks it from the first frame (0x08 -> 2020, 0x03 -> 2026)
    /// [default: detect]
    #[arg(long, short, value_enum, env = "IOTMP_DIALECT", value_name = "DIALECT")]
    pub(crate) dialect: Option<DialectChoice>,

    /// Largest frame body accepted, in bytes (units: KiB, MiB) [default: 256KiB]
    #[arg(long, env = "IOTMP_MAX_BODY", value_name = "BYTES")]
    pub(crate) max_body: Option<ByteSize>,
}

/// `iotmp encode`.
#[derive(Debug, Args)]
pub(crate) struct EncodeArgs {
    /// Messages as JSON objects, one per argument. None, or "-", reads JSON lines from stdin.
    #[arg(value_name = "JSON", conflicts_with = "file")]
    pub(crate) messages: Vec<String>,

    /// Read JSON lines from FILE ("-": stdin).
    #[arg(long, short, value_name = "FILE")]
    pub(crate) file: Option<PathBuf>,

    /// Wire generation to encode for (required: here, in IOTMP_DIALECT or in the config file)
    #[arg(long, short, value_enum, env = "IOTMP_DIALECT", value_name = "DIALECT")]
    pub(crate) dialect: Option<WireDialect>,

    /// Value encoding of 2026 frames; 2020 frames always use Protoson [default: v2]
    #[arg(long, value_enum, env = "IOTMP_PSON", value_name = "FLAVOUR")]
    pub(crate) pson: Option<PsonChoice>,

    /// Write the raw frames instead of hex lines (refused when stdout is a terminal).
    #[arg(long)]
    pub(crate) binary: bool,
}

/// `iotmp replay`.
#[derive(Debug, Args)]
pub(crate) struct ReplayArgs {
    /// The trace file ("-": stdin), as written by the sessions' `start_trace`.
    #[arg(value_name = "FILE")]
    pub(crate) trace: PathBuf,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
