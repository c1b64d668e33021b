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

use iotmp_proto::admission::IpPrefix;

use crate::store::names::DevicePath;
use crate::values::{
    ByteSize, DialectChoice, Listen, PsonChoice, RuntimeChoice, Span, WireDialect,
};

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

    /// Run this machine as an IOTMP device: commands, files, simulated sensors and system
    /// metrics as resources (`iotmp device connect` is the same).
    #[command(
        args_conflicts_with_subcommands = true,
        after_help = "Examples, a complete resource file and the exit statuses are in --help.",
        after_long_help = crate::help::device()
    )]
    Device(DeviceArgs),

    /// Manage the server's users and their API tokens (the registry database).
    #[command(
        arg_required_else_help = true,
        after_help = "Examples:\n  \
            iotmp user add alice                     prints alice's API token, once\n  \
            TOKEN=$(iotmp user add bob --db /var/lib/iotmp/iotmp.db)\n  \
            iotmp user token alice                   another token; the others stay valid\n  \
            iotmp user list --json\n  \
            iotmp user remove alice --yes            with her tokens, devices and records\n\n\
            The database is --db, else IOTMP_DB, else `db` in the config file's [server]\n\
            table, else ./iotmp.db; `user add` creates it. Tokens are random (256 bits) and\n\
            only a salted hash of each is stored: a lost token cannot be shown again, issue\n\
            another. Secrets go alone to stdout, explanations to stderr. Devices are managed\n\
            with `iotmp device add|list|remove`."
    )]
    User(UserArgs),

    /// Run the IOTMP server: device listeners (TCP, TLS), the HTTP / WebSocket / SSE API and
    /// the recorders, over the registry database.
    #[command(
        after_help = "Examples, the endpoints and the exit statuses are in --help.",
        after_long_help = crate::help::server()
    )]
    Server(Box<ServerArgs>),

    /// Try it all on this machine: a server on loopback with a user and two simulated devices
    /// (dialects 2020 and 2026), and the commands to talk to them; runs until Ctrl-C.
    #[command(
        after_help = "What it starts and prints, and the exit statuses, are in --help.",
        after_long_help = crate::help::demo()
    )]
    Demo(DemoArgs),

    /// Measure a running `iotmp server` on loopback: connections (conn), device-to-WebSocket
    /// streaming (stream), HTTP RUN round trips (rpc).
    #[command(
        arg_required_else_help = true,
        after_help = "The method, the summary's JSON fields and the exit statuses are in --help.",
        after_long_help = crate::help::bench()
    )]
    Bench(BenchArgs),

    /// Record device resources into buckets of the registry database (data buckets).
    #[command(
        arg_required_else_help = true,
        after_help = "Examples:\n  \
            iotmp recorder add alice/dev01 temp --every 10 --bucket temps\n  \
            iotmp recorder add alice/dev01 door --every 0 --bucket doors   every value the device sends\n  \
            iotmp recorder list alice --json\n  \
            iotmp recorder remove 3\n\n\
            A recorder subscribes to the resource like a WebSocket client (spec 6.9) and stores\n\
            each value with the server's reception time. The commands change the database; a\n\
            running `iotmp server` picks the change up within a few seconds (it watches the\n\
            file), and every recorder starts with the server. Records are read with\n\
            GET /v3/users/USER/buckets/BUCKET/data. Removing a recorder keeps its records."
    )]
    Recorder(RecorderArgs),
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

/// `iotmp device`: the device role, with or without the `connect` verb.
#[derive(Debug, Args)]
pub(crate) struct DeviceArgs {
    /// A verb; none runs the device, like `connect`.
    #[command(subcommand)]
    pub(crate) verb: Option<DeviceVerb>,
    /// The device's options when no verb is given (boxed: they are large, and clap types
    /// live in enums whose every variant would otherwise be that large).
    #[command(flatten)]
    pub(crate) connect: Box<DeviceConnectArgs>,
}

/// The verbs of `iotmp device`.
#[derive(Debug, Subcommand)]
pub(crate) enum DeviceVerb {
    /// Run this machine as an IOTMP device (the same as `iotmp device [OPTIONS]`).
    #[command(
        after_help = "Examples, a complete resource file and the exit statuses are in --help.",
        after_long_help = crate::help::device()
    )]
    Connect(Box<DeviceConnectArgs>),

    /// `add`, `list`, `remove`: the server's registry of devices.
    #[command(flatten)]
    Registry(DeviceRegistryCommand),
}

/// `iotmp device [connect]`: where to connect, who to be, what to expose.
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct DeviceConnectArgs {
    /// The server: iotmp://HOST[:PORT] (TCP, port 25204) or iotmps://HOST[:PORT] (TLS, 25206)
    #[arg(
        long,
        short = 's',
        env = "IOTMP_SERVER",
        value_name = "URI",
        help_heading = "Connection"
    )]
    pub(crate) server: Option<String>,

    /// The server's host; overrides the host of --server
    #[arg(
        long,
        env = "IOTMP_HOST",
        value_name = "HOST",
        help_heading = "Connection"
    )]
    pub(crate) host: Option<String>,

    /// The server's port; overrides the port of --server [default: 25204, with TLS 25206]
    #[arg(
        long,
        env = "IOTMP_PORT",
        value_name = "PORT",
        help_heading = "Connection"
    )]
    pub(crate) port: Option<u16>,

    /// Connect with TLS (what an iotmps:// server says), for --host
    #[arg(long, help_heading = "Connection")]
    pub(crate) tls: bool,

    /// Verify the server with this CA (PEM) instead of the system's root certificates
    #[arg(
        long,
        env = "IOTMP_CA",
        value_name = "FILE",
        help_heading = "Connection"
    )]
    pub(crate) ca: Option<PathBuf>,

    /// Wire generation to speak [default: 2020]
    #[arg(
        long,
        short,
        value_enum,
        env = "IOTMP_DIALECT",
        value_name = "DIALECT",
        help_heading = "Connection"
    )]
    pub(crate) dialect: Option<WireDialect>,

    /// Seconds between keep-alives, asked of the server [default: none sent, the server's 60]
    #[arg(
        long,
        env = "IOTMP_KEEP_ALIVE",
        value_name = "SECS",
        help_heading = "Connection"
    )]
    pub(crate) keep_alive: Option<u32>,

    /// First reconnect delay; it doubles after each failure, with jitter [default: 5s]
    #[arg(long, value_name = "DURATION", help_heading = "Connection")]
    pub(crate) backoff_first: Option<Span>,

    /// Longest reconnect delay [default: 60s]
    #[arg(long, value_name = "DURATION", help_heading = "Connection")]
    pub(crate) backoff_max: Option<Span>,

    /// The driver: mio (one thread), smol or async-std [default: smol]
    #[arg(
        long,
        value_enum,
        env = "IOTMP_RUNTIME",
        value_name = "RUNTIME",
        help_heading = "Connection"
    )]
    pub(crate) runtime: Option<RuntimeChoice>,

    /// Write a replay trace of every connection into DIR (created if missing), one file per
    /// connection, named ROLE-N-UNIXMS.trace, for `iotmp replay`. Traces hold the credentials
    /// sent on the wire: keep DIR private. A connection's trace stays in memory until it closes.
    #[arg(
        long,
        env = "IOTMP_RECORD",
        value_name = "DIR",
        help_heading = "Connection"
    )]
    pub(crate) record: Option<PathBuf>,

    /// The owner's user name
    #[arg(
        long,
        env = "IOTMP_USER",
        value_name = "USER",
        help_heading = "Authentication"
    )]
    pub(crate) user: Option<String>,

    /// The device id
    #[arg(
        long,
        env = "IOTMP_DEVICE",
        value_name = "ID",
        help_heading = "Authentication"
    )]
    pub(crate) device: Option<String>,

    /// The device credential. Visible to other local users here: prefer IOTMP_CREDENTIAL or
    /// the config file
    #[arg(long, value_name = "SECRET", help_heading = "Authentication")]
    pub(crate) credential: Option<String>,

    /// Authenticate with this client certificate (PEM) instead of credentials; needs TLS
    #[arg(
        long,
        env = "IOTMP_CERT",
        value_name = "FILE",
        help_heading = "Authentication"
    )]
    pub(crate) cert: Option<PathBuf>,

    /// The private key (PEM) of --cert
    #[arg(
        long,
        env = "IOTMP_KEY",
        value_name = "FILE",
        help_heading = "Authentication"
    )]
    pub(crate) key: Option<PathBuf>,

    /// Declare resources from this TOML file (see --help for a complete one)
    #[arg(
        long,
        short = 'r',
        env = "IOTMP_RESOURCES",
        value_name = "FILE",
        help_heading = "Resources"
    )]
    pub(crate) resources: Option<PathBuf>,

    /// Output resource: runs `sh -c COMMAND` on each read; JSON output is parsed, other text
    /// sent trimmed
    #[arg(long, value_name = "NAME=COMMAND", help_heading = "Resources")]
    pub(crate) cmd: Vec<String>,

    /// Output resource: the file's contents on each read (JSON if JSON, else text)
    #[arg(long, value_name = "NAME=PATH", help_heading = "Resources")]
    pub(crate) file: Vec<String>,

    /// Output resource: a fixed JSON value
    #[arg(long = "const", value_name = "NAME=JSON", help_heading = "Resources")]
    pub(crate) constant: Vec<String>,

    /// Simulated sensor: offset + amplitude * sin(2 pi t / period)
    #[arg(
        long,
        value_name = "NAME[:period=60,amplitude=10,offset=20]",
        help_heading = "Resources"
    )]
    pub(crate) sine: Vec<String>,

    /// Simulated sensor: moves by up to ±step at each read (min and max optional)
    #[arg(
        long,
        value_name = "NAME[:step=0.5,start=20,min=,max=]",
        help_heading = "Resources"
    )]
    pub(crate) random_walk: Vec<String>,

    /// Simulated sensor: start, start+step, ... one per read
    #[arg(long, value_name = "NAME[:start=0,step=1]", help_heading = "Resources")]
    pub(crate) counter: Vec<String>,

    /// Add cpu (%), memory, load and uptime from /proc (Linux)
    #[arg(long, help_heading = "Resources")]
    pub(crate) metrics: bool,

    /// Input resource: runs `sh -c COMMAND` with the JSON input on stdin and in IOTMP_INPUT
    #[arg(long, value_name = "NAME=COMMAND", help_heading = "Resources")]
    pub(crate) input_cmd: Vec<String>,

    /// Input resource: writes the JSON input to the file (atomically: temporary file + rename)
    #[arg(long, value_name = "NAME=PATH", help_heading = "Resources")]
    pub(crate) input_file: Vec<String>,

    /// Poll a resource and send it on its event stream when it changed (numbers: by at least
    /// the threshold)
    #[arg(
        long,
        value_name = "NAME[:every=1s,threshold=0]",
        help_heading = "Resources"
    )]
    pub(crate) on_change: Vec<String>,

    /// Timeout of each command run by --cmd and --input-cmd [default: 5s]
    #[arg(
        long,
        env = "IOTMP_CMD_TIMEOUT",
        value_name = "DURATION",
        help_heading = "Resources"
    )]
    pub(crate) cmd_timeout: Option<Span>,

    /// Largest command output or file read, in bytes (units: KiB, MiB) [default: 64KiB]
    #[arg(
        long,
        env = "IOTMP_MAX_VALUE_SIZE",
        value_name = "BYTES",
        help_heading = "Resources"
    )]
    pub(crate) max_value_size: Option<ByteSize>,

    /// Seed of the random walks: the same seed gives the same values [default: random]
    #[arg(long, env = "IOTMP_SEED", value_name = "N", help_heading = "Resources")]
    pub(crate) seed: Option<u64>,
}

/// `iotmp server`: listeners, TLS, the device driver and session limits. Every option also
/// comes from an `IOTMP_*` variable and from the `[server]` table of the config file.
#[derive(Debug, Args)]
pub(crate) struct ServerArgs {
    /// The registry database (users, tokens, devices, recorders) [default: ./iotmp.db]
    #[arg(long, env = "IOTMP_DB", value_name = "PATH")]
    pub(crate) db: Option<PathBuf>,

    /// Device listener, plain TCP (iotmp://); "off" for none [default: 127.0.0.1:25204]
    #[arg(
        long,
        env = "IOTMP_LISTEN",
        value_name = "IP:PORT",
        help_heading = "Listeners"
    )]
    pub(crate) listen: Option<Listen>,

    /// Device listener over TLS (iotmps://), only with --tls-cert; "off" for none
    /// [default: 127.0.0.1:25206]
    #[arg(
        long,
        env = "IOTMP_TLS_LISTEN",
        value_name = "IP:PORT",
        help_heading = "Listeners"
    )]
    pub(crate) tls_listen: Option<Listen>,

    /// HTTP API listener (spec chapter 8); "off" for none [default: 127.0.0.1:8080]
    #[arg(
        long,
        env = "IOTMP_HTTP",
        value_name = "IP:PORT",
        help_heading = "Listeners"
    )]
    pub(crate) http: Option<Listen>,

    /// Serve the HTTP API over HTTPS, with --tls-cert and --tls-key
    #[arg(long, env = "IOTMP_HTTPS", help_heading = "Listeners")]
    pub(crate) https: bool,

    /// The server's certificate chain (PEM) for TLS
    #[arg(
        long,
        env = "IOTMP_TLS_CERT",
        value_name = "FILE",
        help_heading = "TLS"
    )]
    pub(crate) tls_cert: Option<PathBuf>,

    /// The private key (PEM) of --tls-cert
    #[arg(long, env = "IOTMP_TLS_KEY", value_name = "FILE", help_heading = "TLS")]
    pub(crate) tls_key: Option<PathBuf>,

    /// Ask devices on the TLS listener for a certificate, verify it against this CA (PEM) and
    /// let them authenticate with it (spec 6.2)
    #[arg(
        long,
        env = "IOTMP_CLIENT_CA",
        value_name = "FILE",
        help_heading = "TLS"
    )]
    pub(crate) client_ca: Option<PathBuf>,

    /// The device-side driver: smol, async-std or mio (the HTTP API runs on smol)
    /// [default: smol]
    #[arg(
        long,
        value_enum,
        env = "IOTMP_RUNTIME",
        value_name = "RUNTIME",
        help_heading = "Sessions"
    )]
    pub(crate) runtime: Option<RuntimeChoice>,

    /// Write a replay trace of every connection into DIR (created if missing), one file per
    /// connection, named ROLE-N-UNIXMS.trace, for `iotmp replay`. Traces hold the credentials
    /// sent on the wire: keep DIR private. A connection's trace stays in memory until it closes.
    #[arg(
        long,
        env = "IOTMP_RECORD",
        value_name = "DIR",
        help_heading = "Sessions"
    )]
    pub(crate) record: Option<PathBuf>,

    /// Smallest keep-alive a device may ask for, seconds [default: 5]
    #[arg(
        long,
        env = "IOTMP_KEEP_ALIVE_MIN",
        value_name = "SECS",
        help_heading = "Sessions"
    )]
    pub(crate) keep_alive_min: Option<u32>,

    /// Largest keep-alive a device may ask for, seconds [default: 1800]
    #[arg(
        long,
        env = "IOTMP_KEEP_ALIVE_MAX",
        value_name = "SECS",
        help_heading = "Sessions"
    )]
    pub(crate) keep_alive_max: Option<u32>,

    /// Time from accepting a connection to its CONNECT, TLS handshake included [default: 10s]
    #[arg(
        long,
        env = "IOTMP_AUTH_DEADLINE",
        value_name = "DURATION",
        help_heading = "Sessions"
    )]
    pub(crate) auth_deadline: Option<Span>,

    /// How long a RUN, DESCRIBE or stream request waits for the device (then 504)
    /// [default: 10s]
    #[arg(
        long,
        env = "IOTMP_REQUEST_TIMEOUT",
        value_name = "DURATION",
        help_heading = "Sessions"
    )]
    pub(crate) request_timeout: Option<Span>,

    /// Device connections open at once (TCP, TLS and /iotmp together, authenticated or not); a
    /// new one beyond is closed at once, unread; 0 = no cap [default: 10000]
    #[arg(
        long,
        env = "IOTMP_MAX_CONNECTIONS",
        value_name = "N",
        help_heading = "Limits"
    )]
    pub(crate) max_connections: Option<usize>,

    /// Device connections one source may open per second, sustained (an IPv4 address, or an
    /// IPv6 /64); beyond, new ones are closed at once; 0 = no rate limit [default: 20]
    #[arg(
        long,
        env = "IOTMP_RATE_LIMIT",
        value_name = "PER_SEC",
        help_heading = "Limits"
    )]
    pub(crate) rate_limit: Option<u32>,

    /// Device connections one source may open in a burst above --rate-limit [default: 50]
    #[arg(
        long,
        env = "IOTMP_RATE_BURST",
        value_name = "N",
        help_heading = "Limits"
    )]
    pub(crate) rate_burst: Option<u32>,

    /// Failed authentications (refused credentials, no or malformed CONNECT) within
    /// --failure-window after which a source is banned; 0 = never ban [default: 10]
    #[arg(
        long,
        env = "IOTMP_BAN_AFTER",
        value_name = "FAILURES",
        help_heading = "Limits"
    )]
    pub(crate) ban_after: Option<u32>,

    /// How long failed authentications count towards --ban-after [default: 60s]
    #[arg(
        long,
        env = "IOTMP_FAILURE_WINDOW",
        value_name = "DURATION",
        help_heading = "Limits"
    )]
    pub(crate) failure_window: Option<Span>,

    /// How long a banned source's connections are closed at once [default: 5m]
    #[arg(
        long,
        env = "IOTMP_BAN_TIME",
        value_name = "DURATION",
        help_heading = "Limits"
    )]
    pub(crate) ban_time: Option<Span>,

    /// Sources whose rate and failures are remembered at once (a fixed memory bound); a source
    /// is forgotten once its state settles, and when the table is full the one that would
    /// settle soonest goes first [default: 65536]
    #[arg(
        long,
        env = "IOTMP_MAX_SOURCES",
        value_name = "N",
        help_heading = "Limits"
    )]
    pub(crate) max_sources: Option<usize>,

    /// Sources never rate-limited nor banned: addresses or prefixes, comma-separated
    /// (127.0.0.1, 10.0.0.0/8, fd00::/8) [default: none]
    #[arg(
        long,
        env = "IOTMP_ALLOW",
        value_name = "PREFIX,...",
        value_delimiter = ',',
        help_heading = "Limits"
    )]
    pub(crate) allow: Vec<IpPrefix>,

    /// Largest frame body a device may send (spec 7.1); a larger header closes the connection
    /// [default: 256KiB]
    #[arg(
        long,
        env = "IOTMP_MAX_FRAME",
        value_name = "SIZE",
        help_heading = "Limits"
    )]
    pub(crate) max_frame: Option<ByteSize>,

    /// Streams the server opens on one device (spec 7.1); more sinks answer 503 [default: 64]
    #[arg(
        long,
        env = "IOTMP_MAX_STREAMS",
        value_name = "N",
        help_heading = "Limits"
    )]
    pub(crate) max_streams: Option<usize>,

    /// Outstanding requests to one device (spec 7.1); more answer 503 [default: 64]
    #[arg(
        long,
        env = "IOTMP_MAX_REQUESTS",
        value_name = "N",
        help_heading = "Limits"
    )]
    pub(crate) max_requests: Option<usize>,

    /// Bytes queued for one device: requests answer 503 once half is queued, and a device
    /// that sends without reading beyond it is closed [default: 1MiB]
    #[arg(
        long,
        env = "IOTMP_MAX_OUTGOING",
        value_name = "SIZE",
        help_heading = "Limits"
    )]
    pub(crate) max_outgoing: Option<ByteSize>,

    /// Largest HTTP request body (a RUN input); larger ones answer 400 [default: 256KiB]
    #[arg(
        long,
        env = "IOTMP_HTTP_MAX_BODY",
        value_name = "SIZE",
        help_heading = "Limits"
    )]
    pub(crate) http_max_body: Option<ByteSize>,

    /// HTTP connections open at once (requests, WebSockets, SSE); beyond, new ones are closed
    /// at once [default: 16384]
    #[arg(
        long,
        env = "IOTMP_HTTP_MAX_CONNECTIONS",
        value_name = "N",
        help_heading = "Limits"
    )]
    pub(crate) http_max_connections: Option<usize>,

    /// Values queued per WebSocket/SSE stream; a client that reads slower loses the oldest
    /// (counted and logged), never slowing the device or other clients [default: 64]
    #[arg(
        long,
        env = "IOTMP_SINK_QUEUE",
        value_name = "N",
        help_heading = "Limits"
    )]
    pub(crate) sink_queue: Option<usize>,
}

/// `iotmp demo`: a throwaway server and devices. Deliberately no `IOTMP_*` variables nor
/// config file: those configure a real server, and the demo must run the same everywhere.
#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Device listener of the demo's server (plain TCP)
    #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:25204")]
    pub(crate) listen: std::net::SocketAddr,

    /// HTTP API listener of the demo's server
    #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:8080")]
    pub(crate) http: std::net::SocketAddr,

    /// The driver of the server and the devices: smol, async-std or mio [default: smol]
    #[arg(long, value_enum, value_name = "RUNTIME")]
    pub(crate) runtime: Option<RuntimeChoice>,
}

/// `iotmp recorder`.
#[derive(Debug, Args)]
pub(crate) struct RecorderArgs {
    /// What to do.
    #[command(subcommand)]
    pub(crate) command: RecorderCommand,
}

/// The subcommands of `iotmp recorder`.
#[derive(Debug, Subcommand)]
pub(crate) enum RecorderCommand {
    /// Record a resource of a device into a bucket of its owner (created if needed).
    #[command(after_help = "Examples:\n  \
            iotmp recorder add alice/dev01 temp --every 10 --bucket temps\n  \
            iotmp recorder add alice/dev01 '$fs/get/a.txt' --every 1m --bucket files --json")]
    Add(RecorderAddArgs),
    /// List the recorders, of every user or of one.
    #[command(after_help = "Examples:\n  \
            iotmp recorder list\n  \
            iotmp recorder list alice --json")]
    List(RecorderListArgs),
    /// Remove a recorder by id (`recorder list` shows them); its bucket and records stay.
    #[command(after_help = "Examples:\n  \
            iotmp recorder remove 3")]
    Remove(RecorderRemoveArgs),
}

/// `iotmp recorder add USER/DEVICE RESOURCE --every N --bucket B`.
#[derive(Debug, Args)]
pub(crate) struct RecorderAddArgs {
    /// The device (registered with `iotmp device add`)
    #[arg(value_name = "USER/DEVICE")]
    pub(crate) target: DevicePath,

    /// The resource to record
    #[arg(value_name = "RESOURCE")]
    pub(crate) resource: String,

    /// Seconds between records (10, 10s, 5m, up to 1 day); 0 records every value the device
    /// sends on its own
    #[arg(
        long,
        value_name = "SECS",
        value_parser = crate::commands::registry::recorders::parse_every
    )]
    pub(crate) every: u32,

    /// The bucket of the device's owner to record into (1 to 64 ASCII letters, digits, '_',
    /// '-', '.')
    #[arg(long, value_name = "NAME")]
    pub(crate) bucket: String,

    #[command(flatten)]
    pub(crate) registry: RegistryArgs,
}

/// `iotmp recorder list [USER]`.
#[derive(Debug, Args)]
pub(crate) struct RecorderListArgs {
    /// Only this user's recorders
    #[arg(value_name = "USER", value_parser = crate::store::names::parse_user)]
    pub(crate) user: Option<String>,

    #[command(flatten)]
    pub(crate) registry: RegistryArgs,
}

/// `iotmp recorder remove ID`.
#[derive(Debug, Args)]
pub(crate) struct RecorderRemoveArgs {
    /// The recorder's id
    #[arg(value_name = "ID")]
    pub(crate) id: i64,

    #[command(flatten)]
    pub(crate) registry: RegistryArgs,
}

/// The registry database and the output form, taken by every `user` and `device` registry
/// command.
#[derive(Debug, Args)]
pub(crate) struct RegistryArgs {
    /// The registry database (SQLite; `user add` creates it) [default: ./iotmp.db]
    #[arg(long, env = "IOTMP_DB", value_name = "PATH")]
    pub(crate) db: Option<PathBuf>,

    /// Print one JSON document instead of text, for scripts.
    #[arg(long)]
    pub(crate) json: bool,
}

/// `iotmp user`.
#[derive(Debug, Args)]
pub(crate) struct UserArgs {
    /// What to do.
    #[command(subcommand)]
    pub(crate) command: UserCommand,
}

/// The subcommands of `iotmp user`.
#[derive(Debug, Subcommand)]
pub(crate) enum UserCommand {
    /// Add a user and print their first API token (shown only this once).
    #[command(after_help = "Examples:\n  \
            iotmp user add alice\n  \
            iotmp user add alice --json              {\"user\":\"alice\",\"token\":\"...\"}\n\n\
            The token goes alone to stdout; only a salted hash of it is stored.")]
    Add(UserNameArgs),
    /// List the users with their numbers of tokens and devices.
    #[command(after_help = "Examples:\n  \
            iotmp user list\n  \
            iotmp user list --json --db /var/lib/iotmp/iotmp.db")]
    List(RegistryArgs),
    /// Remove a user with their API tokens, devices and recorded data (asks first).
    #[command(after_help = "Examples:\n  \
            iotmp user remove alice                  asks on the terminal\n  \
            iotmp user remove alice --yes            in scripts (stdin not a terminal)")]
    Remove(UserRemoveArgs),
    /// Issue another API token for a user and print it (shown only this once).
    #[command(after_help = "Examples:\n  \
            iotmp user token alice\n  \
            TOKEN=$(iotmp user token alice)\n\n\
            The user's other tokens stay valid.")]
    Token(UserNameArgs),
}

/// `iotmp user add|token NAME`.
#[derive(Debug, Args)]
pub(crate) struct UserNameArgs {
    /// The user name: 1 to 64 ASCII letters, digits, '_', '-', '.'
    #[arg(value_name = "NAME", value_parser = crate::store::names::parse_user)]
    pub(crate) name: String,

    #[command(flatten)]
    pub(crate) registry: RegistryArgs,
}

/// `iotmp user remove NAME`.
#[derive(Debug, Args)]
pub(crate) struct UserRemoveArgs {
    /// The user to remove.
    #[arg(value_name = "NAME", value_parser = crate::store::names::parse_user)]
    pub(crate) name: String,

    /// Do not ask for confirmation (required when stdin is not a terminal).
    #[arg(long, short)]
    pub(crate) yes: bool,

    #[command(flatten)]
    pub(crate) registry: RegistryArgs,
}

/// The registry verbs of `iotmp device`.
#[derive(Debug, Subcommand)]
pub(crate) enum DeviceRegistryCommand {
    /// Register a device with the server and print its credential (shown only this once).
    #[command(after_help = "Examples:\n  \
            iotmp device add alice/dev01               prints dev01's credential, once\n  \
            iotmp device add alice/cam --cert cam.pem  also accept cam.pem's certificate (TLS)\n  \
            iotmp device add alice/old --credential -  a known credential, read from stdin\n  \
            iotmp device add alice/dev02 --json        {\"user\":…,\"credential\":…}\n\n\
            Devices authenticate with [user, device, credential] (spec 6.2) or, over TLS with a\n\
            verified client certificate, with the certificate whose SHA-256 fingerprint --cert\n\
            registered. Generated credentials are random (256 bits) and go alone to stdout;\n\
            only a salted hash is stored. The user must exist (`iotmp user add`).")]
    Add(DeviceAddArgs),
    /// List the registered devices, of every user or of one.
    #[command(after_help = "Examples:\n  \
            iotmp device list\n  \
            iotmp device list alice --json")]
    List(DeviceListArgs),
    /// Remove a registered device (and its recorders; its recorded data stays with the user).
    #[command(after_help = "Examples:\n  \
            iotmp device remove alice/dev01")]
    Remove(DeviceRemoveArgs),
}

/// `iotmp device add USER/DEVICE`.
#[derive(Debug, Args)]
pub(crate) struct DeviceAddArgs {
    /// The owner (registered with `iotmp user add`) and the new device's id
    #[arg(value_name = "USER/DEVICE")]
    pub(crate) target: DevicePath,

    /// Also let the device authenticate with this certificate (PEM; the SHA-256 fingerprint of
    /// its first certificate is stored)
    #[arg(long, value_name = "FILE.pem")]
    pub(crate) cert: Option<PathBuf>,

    /// Set this credential instead of generating one ("-": read a line from stdin). It should
    /// be long and random, as the generated one is
    #[arg(long, value_name = "SECRET")]
    pub(crate) credential: Option<String>,

    #[command(flatten)]
    pub(crate) registry: RegistryArgs,
}

/// `iotmp device list [USER]`.
#[derive(Debug, Args)]
pub(crate) struct DeviceListArgs {
    /// Only this user's devices
    #[arg(value_name = "USER", value_parser = crate::store::names::parse_user)]
    pub(crate) user: Option<String>,

    #[command(flatten)]
    pub(crate) registry: RegistryArgs,
}

/// `iotmp device remove USER/DEVICE`.
#[derive(Debug, Args)]
pub(crate) struct DeviceRemoveArgs {
    /// The device to remove
    #[arg(value_name = "USER/DEVICE")]
    pub(crate) target: DevicePath,

    #[command(flatten)]
    pub(crate) registry: RegistryArgs,
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

/// `iotmp bench`.
#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// What to measure.
    #[command(subcommand)]
    pub(crate) command: BenchCommand,
}

/// The subcommands of `iotmp bench`.
#[derive(Debug, Subcommand)]
pub(crate) enum BenchCommand {
    /// Open N device connections at a given rate, authenticate them, keep them idle; report the
    /// connect rate, failures and (with --server-pid) the server's resident memory per device.
    #[command(after_help = "Example:\n  \
            iotmp bench conn --db /tmp/b/iotmp.db --devices 10000 --rate 10000 --server-pid $PID")]
    Conn(BenchConnArgs),
    /// N devices, each streaming one resource to its own single-resource WebSocket sink;
    /// report delivered samples/s, loss, end-to-end latency and server CPU per sample.
    #[command(after_help = "Examples:\n  \
            iotmp bench stream --db /tmp/b/iotmp.db --devices 5000 --rate 40000 --json\n  \
            iotmp bench stream --db /tmp/b/iotmp.db --devices 5000 --interval 1")]
    Stream(BenchStreamArgs),
    /// HTTP RUN round trips against N connected devices at a given concurrency; report
    /// requests/s, latency and failures.
    #[command(after_help = "Example:\n  \
            iotmp bench rpc --db /tmp/b/iotmp.db --devices 5000 --concurrency 100")]
    Rpc(BenchRpcArgs),
}

/// Options every `iotmp bench` subcommand takes.
#[derive(Debug, Args)]
pub(crate) struct BenchCommonArgs {
    /// The server's device listener (loopback only)
    #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:25204")]
    pub(crate) server: std::net::SocketAddr,

    /// The registry database the server uses; the bench writes its user and devices into it
    /// [default: ./iotmp.db]
    #[arg(long, env = "IOTMP_DB", value_name = "PATH")]
    pub(crate) db: Option<PathBuf>,

    /// The user that owns the bench devices (replaced with its devices at every run)
    #[arg(long, value_name = "NAME", default_value = "bench")]
    pub(crate) user: String,

    /// How many devices
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub(crate) devices: u32,

    /// Measured time, seconds: idle time once all are up (conn), the window after the warm-up
    /// (stream, rpc); at most a day
    #[arg(long, value_name = "SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub(crate) duration: u64,

    /// The server's process id: adds its memory (conn) or CPU time (stream, rpc) to the summary
    #[arg(long, value_name = "PID")]
    pub(crate) server_pid: Option<u32>,

    /// Print the summary as one JSON object (fields in --help)
    #[arg(long)]
    pub(crate) json: bool,

    /// No progress bar
    #[arg(long, short)]
    pub(crate) quiet: bool,
}

/// `iotmp bench conn`.
#[derive(Debug, Args)]
pub(crate) struct BenchConnArgs {
    /// Shared options.
    #[command(flatten)]
    pub(crate) common: BenchCommonArgs,

    /// New connections per second
    #[arg(long, value_name = "PER_SEC", default_value_t = 10_000)]
    pub(crate) rate: u32,

    /// Keep-alive the devices ask for, seconds
    #[arg(long, value_name = "SECS", default_value_t = 60,
          value_parser = clap::value_parser!(u32).range(1..=3600))]
    pub(crate) keep_alive: u32,
}

/// `iotmp bench stream`.
#[derive(Debug, Args)]
pub(crate) struct BenchStreamArgs {
    /// Shared options.
    #[command(flatten)]
    pub(crate) common: BenchCommonArgs,

    /// The server's HTTP API (loopback only)
    #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:8080")]
    pub(crate) http: std::net::SocketAddr,

    /// Event mode: samples per second over all devices together
    #[arg(
        long,
        value_name = "PER_SEC",
        default_value_t = 1000,
        conflicts_with = "interval"
    )]
    pub(crate) rate: u32,

    /// Sampling mode: each sink asks for one sample every SECS seconds
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u32).range(1..=86400))]
    pub(crate) interval: Option<u32>,

    /// Warm-up before the measured time, seconds (not counted)
    #[arg(long, value_name = "SECS", default_value_t = 2,
          value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub(crate) warm_up: u64,
}

/// `iotmp bench rpc`.
#[derive(Debug, Args)]
pub(crate) struct BenchRpcArgs {
    /// Shared options.
    #[command(flatten)]
    pub(crate) common: BenchCommonArgs,

    /// The server's HTTP API (loopback only)
    #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:8080")]
    pub(crate) http: std::net::SocketAddr,

    /// Requests in flight at any time (one keep-alive HTTP connection each)
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=5000))]
    pub(crate) concurrency: u32,

    /// Warm-up before the measured time, seconds (not counted)
    #[arg(long, value_name = "SECS", default_value_t = 1,
          value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub(crate) warm_up: u64,
}
