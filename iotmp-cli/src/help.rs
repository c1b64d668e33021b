//! The long help of the top-level command: examples, environment, config file, exit codes.
//!
//! It lives in code rather than in a clap attribute so that the exit-code table comes from
//! [`crate::exit`] and the config keys from one place, and cannot drift from the behaviour.

use crate::exit;

/// The text after the options in `iotmp --help`.
pub(crate) fn top_level() -> String {
    let mut text = String::from(
        "Examples:
  iotmp demo                                                a server and two devices to try, here
  iotmp decode --dialect 2026 \"0A 04 08 6A 18 2A\"          one 2026 STREAM_DATA as JSON
  echo \"01 02 01 07\" | iotmp decode -d 2020                 hex on stdin
  iotmp encode --dialect 2026 '{\"type\":\"KEEP_ALIVE\"}'       JSON to hex
  iotmp encode -d 2026 '{\"type\":\"OK\",\"stream_id\":7}' | iotmp decode -d 2026
  iotmp replay tests/traces/sample-2026-device.trace        check a recorded session
  iotmp user add alice                                      a server user; prints a token once
  iotmp device add alice/dev01                              register a device; prints its credential
  iotmp device -s iotmp://localhost --user alice --device dev01 --metrics
                                                            run this machine as that device
  iotmp server                                              devices on 127.0.0.1:25204, API on :8080
  iotmp recorder add alice/dev01 temp --every 10 --bucket temps
                                                            record a resource into a bucket
  iotmp <COMMAND> --help                                    examples for one command

Environment:
  IOTMP_CONFIG     the config file (--config)
  IOTMP_DIALECT    --dialect of decode and encode
  IOTMP_PSON       --pson of encode
  IOTMP_MAX_BODY   --max-body of decode
  IOTMP_DB         --db of server, user, recorder and device add|list|remove (the registry)
  IOTMP_LISTEN, IOTMP_TLS_LISTEN, IOTMP_HTTP, IOTMP_TLS_CERT, ...
                   options of `iotmp server` (its --help lists them)
  IOTMP_SERVER, IOTMP_USER, IOTMP_DEVICE, IOTMP_CREDENTIAL, ...
                   options of `iotmp device` (its --help lists them)
  RUST_LOG         log filter in tracing-subscriber syntax (e.g. debug, iotmp=trace);
                   wins over -v. Logs go to stderr; stdout carries only results.

Config file (--config FILE, TOML): keys mirror the long options, one table per command.
Precedence: command line, then environment, then config file, then the built-in default.
  verbose = 1            # like -v
  [decode]
  dialect = \"detect\"     # or 2020, 2026
  max-body = \"256KiB\"    # or a number of bytes
  [encode]
  dialect = 2026
  pson = \"v2\"
  binary = false
  [server]
  db = \"iotmp.db\"        # the registry of `iotmp server`, `user`, `recorder`, `device add`
  listen = \"127.0.0.1:25204\"   # `iotmp server`: its options (tls-cert, http, runtime, ...)
  http = \"127.0.0.1:8080\"
  [device]               # `iotmp device`: its options, and resource tables
  server = \"iotmp://localhost\"
  user = \"alice\"
  device = \"dev01\"
  credential = \"s3cr3t\"  # keep this file private
  metrics = true
  [device.cmd]
  disk = \"df --output=pcent / | tail -n 1\"
Unknown keys are errors, so that a typo does not go unnoticed.

",
    );
    text.push_str(&exit::help_section());
    text
}

/// The complete resource file `iotmp device --help` shows (and a test parses, so that the
/// help cannot drift from what the parser accepts).
pub(crate) const RESOURCE_FILE: &str = r#"metrics = true                 # cpu, memory, load, uptime from /proc (Linux)

[cmd]                          # output (fn 3): sh -c COMMAND on each read
hostname = "hostname"
disk = { command = "df --output=pcent / | tail -n 1", timeout = "2s" }

[file]                         # output: the file's contents on each read
motd = "/etc/motd"

[const]                        # output: a fixed value (any TOML value)
model = "rpi4"
info = { fw = "1.4.2", sensors = ["temp", "heading"] }

[sine]                         # offset + amplitude * sin(2 pi t / period), t since start
temp = { period = "60s", amplitude = 10, offset = 20 }

[random-walk]                  # +-step at each read, seeded by --seed
heading = { step = 4, start = 180, min = 0, max = 359 }

[counter]                      # start, start+step, ... one per read
ticks = {}

[input-cmd]                    # input (fn 2): JSON input on stdin and in IOTMP_INPUT
led = "logger led=$IOTMP_INPUT"

[input-file]                   # input: JSON input written atomically (temp + rename)
setpoint = "/var/lib/pi/setpoint.json"

[on-change]                    # poll, and stream on the event stream when it changed
heading = { every = "1s", threshold = 10 }
"#;

/// The text after the options in `iotmp device --help`.
pub(crate) fn device() -> String {
    let mut text = String::from(
        "Examples:
  export IOTMP_CREDENTIAL=s3cr3t          # not --credential: the command line is visible to all
  iotmp device -s iotmp://localhost --user alice --device pi --metrics
  iotmp device -s iotmps://iot.example.com --user alice --device pi \\
      --cmd 'disk=df --output=pcent / | tail -n 1' --file motd=/etc/motd \\
      --const 'model=\"rpi4\"' --sine temp:period=30s,amplitude=5 --counter ticks
  iotmp device -s iotmp://localhost --user alice --device pi --dialect 2026 \\
      --random-walk heading:step=4,start=180,min=0,max=359 --seed 42 \\
      --on-change heading:every=1s,threshold=10         # stream when it turned 10 degrees
  iotmp device -s iotmp://localhost --user alice --device pi \\
      --input-file setpoint=/var/lib/pi/setpoint.json \\
      --input-cmd 'led=echo \"$IOTMP_INPUT\" > /sys/class/leds/led0/brightness'
  iotmp device -s iotmps://iot.example.com --cert pi.pem --key pi.key --ca ca.pem -r pi.toml
  iotmp device connect -c iotmp.toml       # the same as `iotmp device -c iotmp.toml`

A complete resource file (--resources FILE; the same tables may go in the config file
under [device], as [device.cmd], [device.sine], ...):

",
    );
    for line in RESOURCE_FILE.lines() {
        text.push_str(if line.is_empty() { "" } else { "  " });
        text.push_str(line);
        text.push('\n');
    }
    text.push_str(
        "
Values: command output and file contents that are JSON are sent as JSON (numbers mapped
as the HTTP API does: 22.0 -> 22, 23.5 -> f32); other text is sent trimmed, other bytes as
bytes. Output larger than --max-value-size fails the read. A failing command answers
ERROR 500 with its first stderr line; a command that times out is killed with its children
and answers ERROR 504. Every read steps a counter or a random walk: RUNs, samples, the
first value of a new stream and DESCRIBE of the resource.

Commands run on the device's connection thread: while one runs (at most its timeout) the
device answers nothing else and sends no keep-alive. The server drops a connection silent
for keep-alive x 1.15, so keep timeouts under 15% of --keep-alive (9 s for the default
60 s); iotmp warns at startup otherwise. Servers also give up on a RUN after their request
timeout (10 s by default).

--on-change compares each polled value with the last one sent (numbers: by at least the
threshold; anything else: any change), so a slow drift is sent once it adds up. The value
polled is the value sent; nothing is sent while no server listens to the event stream.

Resources come from the flags, the resource file and [device] together; a name declared
twice is an error. Options: command line, then IOTMP_* variables, then [device] in the
config file (keys as the long options: server, user, device, credential, keep-alive,
backoff-first, runtime, resources, cmd-timeout, seed, ...). The credential is read from
--credential, then IOTMP_CREDENTIAL, then the config file.

The device connects at once and reconnects after failures with backoff (--backoff-first,
doubling up to --backoff-max, with jitter), also when the server refuses the credentials
(logged as an error). Ctrl-C or SIGTERM sends DISCONNECT and exits 0; a second Ctrl-C
quits at once with status 130. Logs go to stderr at info level (-v for debug, RUST_LOG).

Environment:
  IOTMP_SERVER, IOTMP_HOST, IOTMP_PORT, IOTMP_CA, IOTMP_DIALECT, IOTMP_KEEP_ALIVE,
  IOTMP_RUNTIME, IOTMP_USER, IOTMP_DEVICE, IOTMP_CREDENTIAL, IOTMP_CERT, IOTMP_KEY,
  IOTMP_RESOURCES, IOTMP_CMD_TIMEOUT, IOTMP_MAX_VALUE_SIZE, IOTMP_SEED

",
    );
    text.push_str(&exit::help_section());
    text
}

/// The text after the options in `iotmp server --help`.
pub(crate) fn server() -> String {
    let mut text = String::from(
        "Examples:
  iotmp user add alice > alice.token && iotmp device add alice/dev01 > dev01.cred
  iotmp server                                   # devices on 127.0.0.1:25204, API on :8080
  iotmp server --listen 0.0.0.0:25204 --http 0.0.0.0:8080 --db /var/lib/iotmp/iotmp.db
  iotmp server --tls-cert server.pem --tls-key server.key --client-ca devices-ca.pem
  iotmp server --runtime mio -v                  # the mio driver; debug logs with -vv
  curl -H \"Authorization: Bearer $(cat alice.token)\" localhost:8080/v3/users/alice/devices

Devices authenticate with [user, device, credential] as registered with `iotmp device add`
or, on the TLS listener with --client-ca, with a certificate signed by that CA whose SHA-256
fingerprint was registered (`iotmp device add alice/cam --cert cam.pem`). Lookups are served
from memory; the server watches the database, so users, tokens, devices and recorders added
while it runs work within 2 seconds, and a device that fails to authenticate makes it look
at once.

HTTP API (spec chapter 8; token of `iotmp user add` as `Authorization: Bearer TOKEN` or
?authorization=TOKEN):
  GET  /v3/users/USER/devices                          devices, connected or not
  GET  /v3/users/USER/devices/DEV/resources            DESCRIBE (WebSocket: several streams)
  GET  /v3/users/USER/devices/DEV/resources/RES        RUN (WebSocket or SSE: a stream,
  POST /v3/users/USER/devices/DEV/resources/RES        RUN with a JSON input  ?interval=N)
  GET  /v3/users/USER/buckets/BUCKET/data?from=&to=&limit=
                                                       recorded values [{\"ts\", \"value\"}]
  GET|POST /v3/users/USER/recorders, DELETE /v3/users/USER/recorders/ID

Recorders (`iotmp recorder add`) sample a resource like a stream client and store each
value with the server's reception time. Records are written in batches, one transaction
each, and count as stored once committed (on disk: the database runs synchronous=FULL);
values still queued when the machine fails are lost, and on Ctrl-C the queue is written
before the server exits.

Everything listens on 127.0.0.1 unless told otherwise. Ctrl-C or SIGTERM sends DISCONNECT
to every device, closes the API's streams, writes pending records and exits 0; a second
Ctrl-C quits at once with status 130. Options: command line, then IOTMP_* variables, then
[server] in the config file (keys as the long options), then the defaults shown.

",
    );
    text.push_str(&exit::help_section());
    text
}

/// The text after the options in `iotmp demo --help`.
pub(crate) fn demo() -> String {
    let mut text = String::from(
        "What it starts, all on this machine, from a new folder under the temporary directory
(TMPDIR), removed on exit:
  * a registry database with the user `demo` (a fresh API token) and the devices
    demo/thermo-2020 and demo/thermo-2026 (fresh credentials);
  * `iotmp server` with devices on --listen and the HTTP / WebSocket / SSE API on --http
    (no TLS listener);
  * two `iotmp device`s, speaking dialects 2020 and 2026, each with the resources
      temp      a sensor: a sine around 21 over 60 s
      humidity  a random walk between 20 and 80
      counter   0, 1, 2, ... one per read
      heading   a random walk sent on its event stream whenever it moves (--on-change)
      led       an actuator: its JSON input is written to led-2020.json / led-2026.json
                in the folder.

Once both devices are online, it prints the token, the folder, the children's log files
(their stderr) and what to try: curl lines for the device list, DESCRIBE, a RUN of temp, a
RUN of led with an input and the heading events over SSE, a WebSocket URL for websocat or a
browser, and an `iotmp decode` line.

Examples:
  iotmp demo
  iotmp demo --http 127.0.0.1:8081 --listen 127.0.0.1:25214    when the default ports are taken
  iotmp demo --runtime mio

The children get their credentials in IOTMP_CREDENTIAL, never on the command line, and no
other IOTMP_* variable; the demo reads neither those variables nor the config file. If the
server or a device does not come up within 10 s, or exits, the demo stops the others and
quotes the end of its log. Ctrl-C or SIGTERM stops the devices (DISCONNECT), then the server,
removes the folder and exits 0; a child that takes more than 5 s to stop is killed.

",
    );
    text.push_str(&exit::help_section());
    text
}

/// `iotmp bench --help`: the method and the summary's JSON fields.
pub(crate) fn bench() -> String {
    "How it runs: against an `iotmp server` already running on this machine (loopback only),
with the registry file that server uses (--db). Each run replaces the user `bench` (--user)
with devices bench-0 .. bench-N-1, fresh random credentials and one API token, in one
transaction, then waits until the server accepts bench-0 (it reloads its registry within 2 s).
Devices speak dialect 2026 and expose one output resource `v` whose value is the bench's clock
in microseconds. Source addresses are spread over 127.0.0.0/8. One thread and one mio loop per
role (devices, WebSocket sinks, HTTP callers). Ctrl-C stops early with a partial summary.
The open-file soft limit is raised to the hard limit; --devices must fit it (stream needs two
sockets per device, rpc one per device plus --concurrency).

  conn    devices connect at --rate, authenticate, stay idle for --duration. With
          --server-pid: VmRSS before the first connection and once all are up and RSS is
          stable (two equal readings 0.5 s apart, at most 15 s).
  stream  one single-resource WebSocket per device (event-only, or ?interval=N with
          --interval); devices push --rate samples/s in total (event mode); --warm-up,
          then --duration measured, then up to 3 s for samples in flight. Only samples sent
          inside the window count; latency = arrival at the sink - time in the value.
  rpc     --concurrency HTTP connections, one GET .../resources/v (RUN) in flight each,
          cycling over the devices; requests started inside the window count.

JSON summary (--json), one object; fields present in every run unless marked:
  all      bench (\"conn\"|\"stream\"|\"rpc\"), devices, failure_reasons {reason: count},
           interrupted (bool); latency objects are {count, p50_us, p99_us, p999_us,
           max_us, mean_us}
  conn     connected, failed, dropped, connect_seconds, connect_rate (per s),
           connect_latency (socket opened to OK), rss_before_bytes, rss_after_bytes,
           rss_end_bytes, rss_per_device_bytes, settle_seconds (null without
           --server-pid), idle_seconds
  stream   mode (\"events\"|\"sampling\"), devices_connected, sinks_subscribed,
           rate_requested, interval_seconds (null in the other mode), warm_up_seconds,
           duration_seconds, sent, received, sent_per_sec, delivered_per_sec, lost,
           loss_ratio, sinks_with_loss, max_lost_by_one_sink, bad_frames, failures,
           latency (end to end), server_cpu_seconds, server_cpu_us_per_sample (null
           without --server-pid), bench_cpu_seconds (this process, over the window: a
           bench near one core per role would be the bottleneck)
  rpc      devices_connected, concurrency, warm_up_seconds, duration_seconds, requests
           (200 answers), failures, requests_per_sec, latency (HTTP round trip),
           server_cpu_seconds, server_cpu_us_per_request (null without --server-pid),
           bench_cpu_seconds

Exit status: 0 when the run completed (failures are in the summary), 1 when it could not run
(registry, server not serving the devices), 2 for a bad invocation (non-loopback address,
too many devices for the open-file limit, unreadable --server-pid).

Example:
  iotmp server --db /tmp/b/iotmp.db --runtime mio &
  iotmp bench stream --db /tmp/b/iotmp.db --devices 5000 --rate 40000 --server-pid $! --json
"
    .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::device::spec::{Declarations, Tables};
    use crate::config::Config;

    #[test]
    fn the_resource_file_in_the_help_parses() {
        let tables: Tables = toml::from_str(RESOURCE_FILE).unwrap();
        let mut declarations = Declarations::default();
        declarations.add_tables(&tables, "help").unwrap();
        let declarations = declarations.finish().unwrap();
        assert_eq!(declarations.resources.len(), 14, "{declarations:?}");
        assert_eq!(declarations.watches.len(), 1);
        assert!(device().contains("  [random-walk]"));
    }

    #[test]
    fn the_config_sample_in_the_help_parses() {
        let help = top_level();
        let sample: String = help
            .lines()
            .skip_while(|l| !l.starts_with("  verbose = 1"))
            .take_while(|l| l.starts_with("  "))
            .map(|l| format!("{}\n", l.trim_start()))
            .collect();
        assert!(sample.contains("[device.cmd]"), "{sample}");
        Config::parse(&sample).unwrap();
    }
}
