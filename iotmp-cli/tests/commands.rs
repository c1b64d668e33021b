//! The `iotmp` binary as a user meets it: replay of the committed traces, usage errors, help,
//! the config file and environment variables, logging, binary input and output.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed expectation must stop the test loudly"
)]

#[allow(dead_code, reason = "each test crate uses a subset of the helpers")]
mod common;

use std::path::{Path, PathBuf};

use common::{iotmp, iotmp_env, repo_root};

const CONNECT_2026: &str =
    "03 1D 08 01 12 C1 82 6B 61 1E 1A E3 85 61 6C 69 63 65 85 64 65 76 30 31 86 73 33 63 72 33 74";

fn traces() -> Vec<PathBuf> {
    let dir = repo_root().join("tests/traces");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "trace"))
        .collect();
    files.sort();
    files
}

/// A fresh file under the test target's scratch folder.
fn scratch(name: &str, contents: &[u8]) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("iotmp-cli-commands");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

// ---- replay ----

#[test]
fn committed_traces_replay() {
    let files = traces();
    assert!(
        files.len() >= 4,
        "expected the committed traces, found {files:?}"
    );
    for file in files {
        let run = iotmp(&["replay", path_str(&file)], "");
        assert_eq!(run.code, 0, "{}: {}", file.display(), run.stderr);
        assert!(run.stderr.is_empty(), "{}: {}", file.display(), run.stderr);
        let lines = run.lines();
        assert!(lines.len() > 10, "{}: transcript too short", file.display());
        assert!(
            lines.iter().any(|l| l.contains("CONNECT")),
            "{}: {}",
            file.display(),
            run.out()
        );
    }
}

#[test]
fn replay_reads_stdin() {
    let file = &traces()[0];
    let text = std::fs::read_to_string(file).unwrap();
    let from_stdin = iotmp(&["replay", "-"], &text);
    let from_file = iotmp(&["replay", path_str(file)], "");
    assert_eq!(from_stdin.code, 0, "{}", from_stdin.stderr);
    assert_eq!(from_stdin.stdout, from_file.stdout);
}

#[test]
fn tampered_trace_diverges_with_line_expected_and_actual() {
    let original = repo_root().join("tests/traces/sample-2026-device.trace");
    let text = std::fs::read_to_string(&original).unwrap();
    // Change the last byte of the third recorded output.
    let (index, line) = text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.contains(" out "))
        .nth(2)
        .expect("the trace has outputs");
    let (head, last) = line.rsplit_once(' ').unwrap();
    let changed = format!("{head} {}", if last == "00" { "01" } else { "00" });
    let tampered: String = text
        .lines()
        .enumerate()
        .map(|(i, l)| format!("{}\n", if i == index { changed.as_str() } else { l }))
        .collect();
    let path = scratch("tampered.trace", tampered.as_bytes());
    let run = iotmp(&["replay", path_str(&path)], "");
    assert_eq!(run.code, 3, "{}", run.stderr);
    let line_no = index + 1;
    assert!(
        run.stderr.contains(&format!("diverged at line {line_no}")),
        "{}",
        run.stderr
    );
    let expected_hex = changed.split_once(" out ").unwrap().1;
    let actual_hex = line.split_once(" out ").unwrap().1;
    assert!(
        run.stderr
            .contains(&format!("expected: output {expected_hex}")),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains(&format!("actual:   output {actual_hex}")),
        "{}",
        run.stderr
    );
}

#[test]
fn replay_refuses_what_is_not_a_trace() {
    let path = scratch("not-a.trace", b"hello\n");
    let run = iotmp(&["replay", path_str(&path)], "");
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(run.stderr.contains("iotmp-trace 1"), "{}", run.stderr);
    let run = iotmp(&["replay", "/nonexistent/iotmp.trace"], "");
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("check the path"), "{}", run.stderr);
}

// ---- usage errors and help ----

#[test]
fn usage_errors_exit_2_with_a_hint() {
    for (args, needle) in [
        (&[][..], "Usage"),
        (&["frobnicate"][..], "unrecognized subcommand"),
        (
            &["decode", "--dialect", "2030", "00"][..],
            "possible values",
        ),
        (&["decode", "--max-body", "lots", "00"][..], "256KiB"),
        (
            &["decode", "--file", "x.bin", "05 00"][..],
            "cannot be used with",
        ),
        (
            &["decode", "--file", "/nonexistent/x.bin"][..],
            "check the path",
        ),
        (
            &["decode", "05 00"][..],
            "pass --dialect 2020 or --dialect 2026",
        ),
        (
            &["encode", "{\"type\":\"KEEP_ALIVE\"}"][..],
            "pass --dialect 2020 or --dialect 2026",
        ),
        (
            &["encode", "--dialect", "detect"][..],
            "possible values: 2020, 2026",
        ),
        (
            &["encode", "--dialect", "2026", "--pson", "v3"][..],
            "possible values: v1, v2",
        ),
        (&["replay"][..], "<FILE>"),
        (
            &["--config", "/nonexistent/iotmp.toml", "decode"][..],
            "IOTMP_CONFIG",
        ),
    ] {
        let run = iotmp(args, "");
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(run.stdout.is_empty(), "{args:?}: {}", run.out());
        assert!(
            run.stderr.contains(needle),
            "{args:?}: no {needle:?} in {}",
            run.stderr
        );
    }
}

#[test]
fn help_shows_examples_environment_and_exit_codes() {
    let run = iotmp(&["--help"], "");
    assert_eq!(run.code, 0, "{}", run.stderr);
    let help = run.out();
    for needle in [
        "Examples:",
        "iotmp decode",
        "iotmp encode",
        "iotmp replay",
        "IOTMP_CONFIG",
        "IOTMP_DIALECT",
        "IOTMP_PSON",
        "IOTMP_MAX_BODY",
        "RUST_LOG",
        "[decode]",
        "Exit status:",
        "  0  success",
        "  1  runtime failure",
        "  2  usage or configuration error",
        "  3  data error",
    ] {
        assert!(help.contains(needle), "--help lacks {needle:?}:\n{help}");
    }
    for command in ["decode", "encode", "replay"] {
        let run = iotmp(&[command, "--help"], "");
        assert_eq!(run.code, 0, "{command}: {}", run.stderr);
        let help = run.out();
        assert!(help.contains("Examples:"), "{command} --help:\n{help}");
        assert!(
            help.contains(&format!("iotmp {command}")),
            "{command} --help:\n{help}"
        );
        if command != "replay" {
            assert!(
                help.contains("[env: IOTMP_DIALECT"),
                "{command} --help:\n{help}"
            );
        }
    }
    let run = iotmp(&["--version"], "");
    assert_eq!(run.code, 0);
    assert!(run.out().starts_with("iotmp "), "{}", run.out());
}

/// Every example of the top-level help works as written (paths relative to the repository).
#[test]
fn help_examples_work() {
    let run = iotmp(&["decode", "--dialect", "2026", "0A 04 08 6A 18 2A"], "");
    assert_eq!(
        run.out(),
        "{\"type\":\"STREAM_DATA\",\"stream_id\":106,\"payload\":42}\n"
    );
    let run = iotmp(&["decode", "-d", "2020"], "01 02 01 07\n");
    assert_eq!(run.out(), "{\"type\":\"OK\",\"stream_id\":7}\n");
    let run = iotmp(
        &["encode", "--dialect", "2026", "{\"type\":\"KEEP_ALIVE\"}"],
        "",
    );
    assert_eq!(run.out(), "05 00\n");
    let hex = iotmp(
        &["encode", "-d", "2026", "{\"type\":\"OK\",\"stream_id\":7}"],
        "",
    )
    .out();
    let run = iotmp(&["decode", "-d", "2026"], &hex);
    assert_eq!(run.out(), "{\"type\":\"OK\",\"stream_id\":7}\n");
    let run = iotmp(&["decode", CONNECT_2026], "");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.out().starts_with("{\"type\":\"CONNECT\""),
        "{}",
        run.out()
    );
}

// ---- decode and encode details ----

#[test]
fn hex_input_forms() {
    let expected = "{\"type\":\"OK\",\"stream_id\":1}\n{\"type\":\"KEEP_ALIVE\"}\n";
    for stdin in [
        "01 02 08 01 05 00",
        "0102080105 00\n",
        "# an OK\n01 02 08 01\n\n# a keep-alive\n05 00 # trailing comment\n",
        "0x01, 0x02, 0x08, 0x01, 0x05, 0x00",
    ] {
        let run = iotmp(&["decode", "--dialect", "2026"], stdin);
        assert_eq!(run.code, 0, "{stdin:?}: {}", run.stderr);
        assert_eq!(run.out(), expected, "{stdin:?}");
        let run = iotmp(&["decode", "--dialect", "2026", "-"], stdin);
        assert_eq!(run.out(), expected, "{stdin:?} with -");
    }
    // Several arguments are one stream.
    let run = iotmp(
        &["decode", "--dialect", "2026", "01", "02 08", "01 05 00"],
        "",
    );
    assert_eq!(run.out(), expected);
    let run = iotmp(&["decode", "--dialect", "2026"], "01 02\n08 0Z\n");
    assert_eq!(run.code, 3);
    assert!(
        run.stderr.contains("stdin is not hex: line 2, column 5"),
        "{}",
        run.stderr
    );
}

#[test]
fn empty_input_decodes_to_nothing() {
    let run = iotmp(&["decode", "--dialect", "2026"], "");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.is_empty());
    assert!(run.stderr.contains("no frames"), "{}", run.stderr);
}

#[test]
fn framing_errors_stop_with_exit_3() {
    let run = iotmp(
        &[
            "decode",
            "--dialect",
            "2026",
            "05 00 05 00 01 81 80 10 05 00",
        ],
        "",
    );
    assert_eq!(run.code, 3);
    assert_eq!(run.lines().len(), 2);
    assert!(run.stderr.contains("at byte 4"), "{}", run.stderr);
    assert!(run.stderr.contains("--max-body"), "{}", run.stderr);
    // The same frame fits under a larger limit, and is then merely truncated.
    let run = iotmp(
        &[
            "decode",
            "--dialect",
            "2026",
            "--max-body",
            "1MiB",
            "05 00 01 81 80 10 05 00",
        ],
        "",
    );
    assert_eq!(run.code, 3);
    assert!(
        run.stderr.contains("input ends inside a frame"),
        "{}",
        run.stderr
    );
    // A small limit refuses a frame that would otherwise decode.
    let run = iotmp(
        &[
            "decode",
            "--dialect",
            "2026",
            "--max-body",
            "3",
            "01 04 08 01 1A 00",
        ],
        "",
    );
    assert_eq!(run.code, 3);
    assert!(run.stderr.contains("limit of 3 bytes"), "{}", run.stderr);
}

#[test]
fn binary_out_and_in() {
    let messages = "{\"type\":\"OK\",\"stream_id\":7}\n{\"type\":\"KEEP_ALIVE\"}\n";
    let run = iotmp(&["encode", "--dialect", "2020", "--binary"], messages);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout, [0x01, 0x02, 0x01, 0x07, 0x03, 0x00]);
    let path = scratch("frames.bin", &run.stdout);
    let decoded = iotmp(
        &["decode", "--dialect", "2020", "--file", path_str(&path)],
        "",
    );
    assert_eq!(decoded.out(), messages);
    let decoded = iotmp_env(
        &["decode", "--dialect", "2020", "--file", "-"],
        &run.stdout,
        &[],
    );
    assert_eq!(decoded.out(), messages);
}

#[test]
fn encode_reports_bad_lines_by_number_and_goes_on() {
    let input = "{\"type\":\"KEEP_ALIVE\"}\n\n# comment\n{\"type\":\"RUN\",\"stream_id\":1}\n{\"type\":\"OK\",\"stream_id\":7,\"colour\":1}\n{\"type\":\"OK\",\"stream_id\":7}\n";
    let run = iotmp(&["encode", "--dialect", "2026"], input);
    assert_eq!(run.code, 3);
    assert_eq!(run.lines(), ["05 00", "01 02 08 07"]);
    let errors: Vec<&str> = run.stderr.lines().collect();
    assert!(
        errors[0].starts_with("error: stdin line 4: cannot be encoded in 2026"),
        "{}",
        run.stderr
    );
    assert!(
        errors[1].starts_with("error: stdin line 5: not a message: unknown member \"colour\""),
        "{}",
        run.stderr
    );
    assert!(
        errors[2].contains("2 of 4 messages were not encoded"),
        "{}",
        run.stderr
    );
    // --file names the file.
    let path = scratch("messages.jsonl", input.as_bytes());
    let run = iotmp(
        &["encode", "--dialect", "2026", "--file", path_str(&path)],
        "",
    );
    assert!(
        run.stderr.contains("messages.jsonl line 4"),
        "{}",
        run.stderr
    );
    // Arguments are counted as arguments.
    let run = iotmp(
        &[
            "encode",
            "--dialect",
            "2026",
            "{\"type\":\"KEEP_ALIVE\"}",
            "{",
        ],
        "",
    );
    assert_eq!(run.code, 3);
    assert!(
        run.stderr.starts_with("error: argument 2: not JSON"),
        "{}",
        run.stderr
    );
}

#[test]
fn pson_flavour_changes_2026_values_only() {
    let message = "{\"type\":\"RUN\",\"stream_id\":3,\"resource\":\"led\",\"payload\":true}";
    let v2 = iotmp(&["encode", "--dialect", "2026", message], "").out();
    let v1 = iotmp(
        &["encode", "--dialect", "2026", "--pson", "v1", message],
        "",
    )
    .out();
    assert_eq!(v2, "06 09 08 03 22 83 6C 65 64 1A 61\n");
    assert_ne!(v1, v2);
    // Both decode to the same message.
    for hex in [&v1, &v2] {
        let run = iotmp(&["decode", "--dialect", "2026", hex], "");
        assert_eq!(run.out().trim(), message);
    }
    let a = iotmp(&["encode", "--dialect", "2020", message], "").out();
    let b = iotmp(
        &["encode", "--dialect", "2020", "--pson", "v1", message],
        "",
    )
    .out();
    assert_eq!(a, b);
}

// ---- config file, environment, logging ----

#[test]
fn config_file_then_environment_then_command_line() {
    // "03 00" is a 2020 KEEP_ALIVE, but an empty (invalid) CONNECT in 2026.
    let config = scratch("dialect.toml", b"[decode]\ndialect = 2020\n");
    let config = path_str(&config);
    let keep_alive = "{\"type\":\"KEEP_ALIVE\"}\n";
    let run = iotmp(&["--config", config, "decode", "03 00"], "");
    assert_eq!(
        (run.code, run.out()),
        (0, keep_alive.to_owned()),
        "{}",
        run.stderr
    );
    let run = iotmp_env(&["decode", "03 00"], b"", &[("IOTMP_CONFIG", config)]);
    assert_eq!(run.code, 0, "IOTMP_CONFIG: {}", run.stderr);
    let env = [("IOTMP_CONFIG", config), ("IOTMP_DIALECT", "2026")];
    let run = iotmp_env(&["decode", "03 00"], b"", &env);
    assert_eq!(
        run.code, 3,
        "the environment beats the file: {}",
        run.stderr
    );
    let run = iotmp_env(&["decode", "--dialect", "2020", "03 00"], b"", &env);
    assert_eq!(
        run.code, 0,
        "the command line beats the environment: {}",
        run.stderr
    );
    // Global options go before or after the subcommand.
    let run = iotmp(&["decode", "-c", config, "03 00"], "");
    assert_eq!(run.code, 0, "{}", run.stderr);
}

#[test]
fn config_file_sets_encode_and_max_body() {
    let config = scratch(
        "encode.toml",
        b"[encode]\ndialect = \"2026\"\npson = \"v1\"\n[decode]\nmax-body = 3\n",
    );
    let config = path_str(&config);
    let message = "{\"type\":\"RUN\",\"stream_id\":3,\"resource\":\"led\",\"payload\":true}";
    let from_file = iotmp(&["-c", config, "encode", message], "");
    let explicit = iotmp(
        &["encode", "--dialect", "2026", "--pson", "v1", message],
        "",
    );
    assert_eq!(from_file.code, 0, "{}", from_file.stderr);
    assert_eq!(from_file.stdout, explicit.stdout);
    let run = iotmp(
        &[
            "-c",
            config,
            "decode",
            "--dialect",
            "2026",
            "01 04 08 01 1A 00",
        ],
        "",
    );
    assert!(run.stderr.contains("limit of 3 bytes"), "{}", run.stderr);
    let run = iotmp_env(
        &[
            "-c",
            config,
            "decode",
            "--dialect",
            "2026",
            "01 04 08 01 1A 00",
        ],
        b"",
        &[("IOTMP_MAX_BODY", "1KiB")],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
}

#[test]
fn bad_config_is_a_usage_error_naming_the_key() {
    let config = scratch("typo.toml", b"[decode]\nmax_body = 4\n");
    let run = iotmp(
        &[
            "--config",
            path_str(&config),
            "decode",
            "--dialect",
            "2026",
            "05 00",
        ],
        "",
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.starts_with("error: the config file "),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("caused by:"), "{}", run.stderr);
    assert!(run.stderr.contains("max_body"), "{}", run.stderr);
    assert!(
        run.stderr.contains("max-body"),
        "the accepted keys are listed: {}",
        run.stderr
    );
    let config = scratch("not-toml.toml", b"[decode\n");
    let run = iotmp(
        &[
            "--config",
            path_str(&config),
            "decode",
            "--dialect",
            "2026",
            "05 00",
        ],
        "",
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
}

#[test]
fn logs_go_to_stderr_and_rust_log_wins() {
    let run = iotmp(&["-vv", "decode", CONNECT_2026], "");
    assert_eq!(run.code, 0);
    assert_eq!(
        run.lines().len(),
        1,
        "stdout holds only results: {}",
        run.out()
    );
    assert!(run.stderr.contains("DEBUG"), "{}", run.stderr);
    assert!(
        run.stderr.contains("dialect 2026 detected"),
        "{}",
        run.stderr
    );
    let run = iotmp_env(
        &["-vv", "decode", CONNECT_2026],
        b"",
        &[("RUST_LOG", "off")],
    );
    assert!(
        run.stderr.is_empty(),
        "RUST_LOG=off wins over -vv: {}",
        run.stderr
    );
    let run = iotmp_env(&["decode", CONNECT_2026], b"", &[("RUST_LOG", "debug")]);
    assert!(run.stderr.contains("DEBUG"), "{}", run.stderr);
    let run = iotmp_env(
        &["decode", CONNECT_2026],
        b"",
        &[("RUST_LOG", "iotmp=loud")],
    );
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("RUST_LOG"), "{}", run.stderr);
    let config = scratch("verbose.toml", b"verbose = 2\n");
    let run = iotmp(&["-c", path_str(&config), "decode", CONNECT_2026], "");
    assert!(
        run.stderr.contains("DEBUG"),
        "verbose from the config: {}",
        run.stderr
    );
}
