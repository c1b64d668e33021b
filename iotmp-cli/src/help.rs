//! The long help of the top-level command: examples, environment, config file, exit codes.
//!
//! It lives in code rather than in a clap attribute so that the exit-code table comes from
//! [`crate::exit`] and the config keys from one place, and cannot drift from the behaviour.

use crate::exit;

/// The text after the options in `iotmp --help`.
pub(crate) fn top_level() -> String {
    let mut text = String::from(
        "Examples:
  iotmp decode --dialect 2026 \"0A 04 08 6A 18 2A\"          one 2026 STREAM_DATA as JSON
  echo \"01 02 01 07\" | iotmp decode -d 2020                 hex on stdin
  iotmp encode --dialect 2026 '{\"type\":\"KEEP_ALIVE\"}'       JSON to hex
  iotmp encode -d 2026 '{\"type\":\"OK\",\"stream_id\":7}' | iotmp decode -d 2026
  iotmp replay tests/traces/sample-2026-device.trace        check a recorded session
  iotmp <COMMAND> --help                                    examples for one command

Environment:
  IOTMP_CONFIG     the config file (--config)
  IOTMP_DIALECT    --dialect of decode and encode
  IOTMP_PSON       --pson of encode
  IOTMP_MAX_BODY   --max-body of decode
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
  [server]               # reserved for `iotmp server`
  [device]               # reserved for `iotmp device`
Unknown keys are errors, so that a typo does not go unnoticed.

",
    );
    text.push_str(&exit::help_section());
    text
}
