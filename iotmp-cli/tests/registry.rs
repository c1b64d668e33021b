//! `iotmp user …` and `iotmp device add|list|remove` as a user meets them: the real binary on a
//! database in a scratch directory. Secrets must be printed once and stored only hashed.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed expectation must stop the test loudly"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use serde_json::Value as Json;
use sha2::{Digest as _, Sha256};
use tempfile::TempDir;

/// What one run did.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Json {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {:?}", self.stdout))
    }

    fn ok(self) -> Run {
        assert_eq!(self.code, 0, "stderr: {}", self.stderr);
        self
    }
}

/// A scratch directory to run `iotmp` in.
struct Scratch {
    dir: TempDir,
}

impl Scratch {
    fn new() -> Scratch {
        Scratch {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs `iotmp args…` in the scratch directory, without any IOTMP_* from the environment
    /// but `env`, with `stdin`.
    fn run_with(&self, args: &[&str], env: &[(&str, &str)], stdin: &str) -> Run {
        let mut command = Command::new(env!("CARGO_BIN_EXE_iotmp"));
        command
            .args(args)
            .current_dir(self.dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, _) in std::env::vars() {
            if key.starts_with("IOTMP_") || key == "RUST_LOG" {
                command.env_remove(key);
            }
        }
        command.envs(env.iter().copied());
        let mut child = command.spawn().expect("the iotmp binary runs");
        {
            use std::io::Write as _;
            let mut pipe = child.stdin.take().unwrap();
            let _ = pipe.write_all(stdin.as_bytes());
        }
        let output = child.wait_with_output().unwrap();
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8(output.stdout).unwrap(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    fn run(&self, args: &[&str]) -> Run {
        self.run_with(args, &[], "")
    }

    /// Every byte SQLite keeps for `db`: the file and, if present, its WAL.
    fn db_bytes(&self, db: &str) -> Vec<u8> {
        let mut bytes = std::fs::read(self.path(db)).unwrap();
        if let Ok(wal) = std::fs::read(self.path(&format!("{db}-wal"))) {
            bytes.extend(wal);
        }
        bytes
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// The single line of stdout, which must be a secret of the generated form.
fn the_secret(run: &Run) -> String {
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "stdout: {:?}", run.stdout);
    let secret = lines[0].to_owned();
    assert!(secret.len() >= 43, "{secret}");
    assert!(
        secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)),
        "URL-safe: {secret}"
    );
    secret
}

/// A PEM file around `der` (the registry only reads the PEM and hashes the DER).
fn pem(path: &Path, der: &[u8]) {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut text = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in body.as_bytes().chunks(64) {
        text.push_str(std::str::from_utf8(line).unwrap());
        text.push('\n');
    }
    text.push_str("-----END CERTIFICATE-----\n");
    std::fs::write(path, text).unwrap();
}

#[test]
fn user_add_prints_a_token_once_and_stores_only_a_hash() {
    let s = Scratch::new();
    // No --db: ./iotmp.db in the working directory.
    let added = s.run(&["user", "add", "alice"]).ok();
    let token = the_secret(&added);
    assert!(
        added.stderr.contains("shown only this once"),
        "{}",
        added.stderr
    );
    assert!(
        !added.stderr.contains(&token),
        "the token goes to stdout only"
    );
    assert!(s.path("iotmp.db").exists());

    let bytes = s.db_bytes("iotmp.db");
    assert!(contains(&bytes, "alice"), "the search itself works");
    assert!(!contains(&bytes, &token), "the token is not stored");
    let verifier = token.split_once('.').unwrap().1;
    assert!(!contains(&bytes, verifier), "nor its secret part");

    // Listings never show it again.
    let list = s.run(&["user", "list"]).ok();
    assert!(list.stdout.contains("alice"), "{}", list.stdout);
    assert!(!list.stdout.contains(&token));
    let json = s.run(&["user", "list", "--json"]).ok().json();
    assert_eq!(json[0]["user"], "alice");
    assert_eq!(json[0]["tokens"], 1);
    assert_eq!(json[0]["devices"], 0);
    assert!(json[0]["created_at"].as_i64().unwrap() > 1_600_000_000_000);

    // Another token, different, and both counted.
    let second = the_secret(&s.run(&["user", "token", "alice"]).ok());
    assert_ne!(second, token);
    let json = s.run(&["user", "token", "alice", "--json"]).ok().json();
    assert_eq!(json["user"], "alice");
    assert!(json["token"].as_str().unwrap().len() >= 43);
    assert_eq!(
        s.run(&["user", "list", "--json"]).ok().json()[0]["tokens"],
        3
    );
}

#[test]
fn device_add_prints_the_credential_once() {
    let s = Scratch::new();
    s.run(&["user", "add", "alice", "--db", "r.db"]).ok();
    let added = s
        .run(&["device", "add", "alice/dev01", "--db", "r.db"])
        .ok();
    let credential = the_secret(&added);
    assert!(
        added.stderr.contains("shown only this once"),
        "{}",
        added.stderr
    );
    assert!(!contains(&s.db_bytes("r.db"), &credential));

    let json = s
        .run(&["device", "add", "alice/dev02", "--db", "r.db", "--json"])
        .ok()
        .json();
    assert_eq!(json["user"], "alice");
    assert_eq!(json["device"], "dev02");
    assert_eq!(json["fingerprint"], Json::Null);
    let second = json["credential"].as_str().unwrap();
    assert_ne!(second, credential);
    assert!(!contains(&s.db_bytes("r.db"), second));

    let list = s.run(&["device", "list", "--db", "r.db"]).ok();
    assert!(list.stdout.starts_with("DEVICE"), "{}", list.stdout);
    assert!(list.stdout.contains("alice/dev01"), "{}", list.stdout);
    assert!(!list.stdout.contains(&credential));
    let json = s
        .run(&["device", "list", "alice", "--db", "r.db", "--json"])
        .ok()
        .json();
    let devices: Vec<&str> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["device"].as_str().unwrap())
        .collect();
    assert_eq!(devices, ["dev01", "dev02"]);
}

#[test]
fn a_known_credential_can_be_set_with_a_warning() {
    let s = Scratch::new();
    s.run(&["user", "add", "alice"]).ok();
    let run = s
        .run(&["device", "add", "alice/old", "--credential", "short"])
        .ok();
    assert!(run.stdout.is_empty(), "not echoed: {}", run.stdout);
    assert!(run.stderr.contains("long and random"), "{}", run.stderr);
    assert!(run.stderr.contains("only 5 characters"), "{}", run.stderr);
    // From stdin, kept out of the process list.
    let chosen = "a-long-credential-chosen-by-the-user-42";
    let run = s.run_with(
        &[
            "device",
            "add",
            "alice/older",
            "--credential",
            "-",
            "--json",
        ],
        &[],
        &format!("{chosen}\n"),
    );
    let json = run.ok().json();
    assert_eq!(json["credential"], Json::Null);
    assert!(!contains(&s.db_bytes("iotmp.db"), chosen));
    let empty = s.run(&["device", "add", "alice/x", "--credential", ""]);
    assert_eq!(empty.code, 2, "{}", empty.stderr);
    assert!(
        empty.stderr.contains("omit --credential"),
        "{}",
        empty.stderr
    );
}

#[test]
fn a_certificate_fingerprint_is_registered_once() {
    let s = Scratch::new();
    s.run(&["user", "add", "alice"]).ok();
    let der = b"\x30\x82 pretend this is a DER certificate";
    pem(&s.path("cam.pem"), der);
    let expected = hex::encode(Sha256::digest(der));

    let json = s
        .run(&["device", "add", "alice/cam", "--cert", "cam.pem", "--json"])
        .ok()
        .json();
    assert_eq!(json["fingerprint"], expected);
    let list = s.run(&["device", "list"]).ok();
    assert!(list.stdout.contains(&expected), "{}", list.stdout);

    let again = s.run(&["device", "add", "alice/cam2", "--cert", "cam.pem"]);
    assert_eq!(again.code, 2, "{}", again.stderr);
    assert!(
        again.stderr.contains("already registered for alice/cam"),
        "{}",
        again.stderr
    );
    assert!(
        again.stdout.is_empty(),
        "no credential for a refused device"
    );

    std::fs::write(s.path("key.pem"), "-----BEGIN PRIVATE KEY-----\nAAAA\n").unwrap();
    let not_pem = s.run(&["device", "add", "alice/cam3", "--cert", "key.pem"]);
    assert_eq!(not_pem.code, 2, "{}", not_pem.stderr);
    assert!(
        not_pem.stderr.contains("holds no PEM certificate"),
        "{}",
        not_pem.stderr
    );
    let missing = s.run(&["device", "add", "alice/cam3", "--cert", "nope.pem"]);
    assert_eq!(missing.code, 2, "{}", missing.stderr);
    assert!(
        missing.stderr.contains("check the --cert path"),
        "{}",
        missing.stderr
    );
}

#[test]
fn remove_devices_and_users() {
    let s = Scratch::new();
    s.run(&["user", "add", "alice"]).ok();
    s.run(&["user", "add", "bob"]).ok();
    s.run(&["device", "add", "alice/dev01"]).ok();
    s.run(&["device", "add", "alice/dev02"]).ok();
    s.run(&["device", "add", "bob/dev01"]).ok();

    let removed = s.run(&["device", "remove", "alice/dev01"]).ok();
    assert!(removed.stdout.contains("alice/dev01"), "{}", removed.stdout);
    let again = s.run(&["device", "remove", "alice/dev01"]);
    assert_eq!(again.code, 2);
    assert!(
        again.stderr.contains("iotmp device list alice"),
        "{}",
        again.stderr
    );

    // stdin is not a terminal here: no question, a refusal that says what to do.
    let unconfirmed = s.run(&["user", "remove", "alice"]);
    assert_eq!(unconfirmed.code, 2, "{}", unconfirmed.stderr);
    assert!(
        unconfirmed.stderr.contains("--yes"),
        "{}",
        unconfirmed.stderr
    );
    assert_eq!(
        s.run(&["user", "list", "--json"])
            .ok()
            .json()
            .as_array()
            .unwrap()
            .len(),
        2
    );

    let json = s
        .run(&["user", "remove", "alice", "--yes", "--json"])
        .ok()
        .json();
    assert_eq!(json["removed"]["user"], "alice");
    assert_eq!(json["removed"]["devices"], 1);
    let devices = s.run(&["device", "list", "--json"]).ok().json();
    assert_eq!(devices.as_array().unwrap().len(), 1, "{devices}");
    assert_eq!(devices[0]["user"], "bob");
    let gone = s.run(&["device", "list", "alice"]);
    assert_eq!(gone.code, 2);
    assert!(
        gone.stderr.contains("there is no user alice"),
        "{}",
        gone.stderr
    );
}

#[test]
fn mistakes_exit_2_and_say_what_to_do() {
    let s = Scratch::new();
    for (args, needle) in [
        (vec!["user", "list"], "`iotmp user add NAME` creates one"),
        (
            vec!["device", "add", "alice/dev01"],
            "`iotmp user add NAME` creates one",
        ),
        (vec!["device", "add", "alice"], "with a slash"),
        (vec!["device", "add", "alice/dev 01"], "only ASCII letters"),
        (vec!["user", "add", "a/b"], "only ASCII letters"),
    ] {
        let run = s.run(&args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(needle), "{args:?}: {}", run.stderr);
        assert!(run.stdout.is_empty(), "{args:?}");
    }
    assert!(
        !s.path("iotmp.db").exists(),
        "only `user add` creates the database"
    );

    s.run(&["user", "add", "alice"]).ok();
    for (args, needle) in [
        (vec!["user", "add", "alice"], "already exists"),
        (vec!["user", "token", "bob"], "`iotmp user list` shows"),
        (vec!["device", "add", "bob/dev01"], "there is no user bob"),
        (
            vec!["device", "remove", "alice/nope"],
            "there is no device alice/nope",
        ),
    ] {
        let run = s.run(&args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(
            run.stderr.starts_with("error: "),
            "{args:?}: {}",
            run.stderr
        );
        assert!(run.stderr.contains(needle), "{args:?}: {}", run.stderr);
    }

    std::fs::write(s.path("notes.txt"), "not a database ".repeat(100)).unwrap();
    let run = s.run(&["user", "list", "--db", "notes.txt"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("is not an iotmp registry database"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_damaged_database_is_a_runtime_failure() {
    let s = Scratch::new();
    s.run(&["user", "add", "alice", "--db", "r.db"]).ok();
    // Keep page 1 (header and schema), overwrite the tables' pages.
    let mut bytes = std::fs::read(s.path("r.db")).unwrap();
    assert!(bytes.len() > 8192, "{} bytes", bytes.len());
    for byte in &mut bytes[4096..] {
        *byte = 0xA5;
    }
    std::fs::write(s.path("r.db"), bytes).unwrap();
    let run = s.run(&["user", "list", "--db", "r.db"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("the registry database failed"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("caused by"), "{}", run.stderr);
}

#[test]
fn the_database_comes_from_option_env_or_config() {
    let s = Scratch::new();
    std::fs::write(s.path("iotmp.toml"), "[server]\ndb = \"from-config.db\"\n").unwrap();
    let config = ["--config", "iotmp.toml"];
    s.run(&[&["user", "add", "c"][..], &config].concat()).ok();
    assert!(s.path("from-config.db").exists());
    s.run_with(
        &[&["user", "add", "e"][..], &config].concat(),
        &[("IOTMP_DB", "from-env.db")],
        "",
    )
    .ok();
    assert!(
        s.path("from-env.db").exists(),
        "the environment wins over the file"
    );
    s.run_with(
        &[&["user", "add", "o", "--db", "from-option.db"][..], &config].concat(),
        &[("IOTMP_DB", "from-env.db")],
        "",
    )
    .ok();
    let users = |db: &str| -> Vec<String> {
        s.run(&["user", "list", "--json", "--db", db])
            .ok()
            .json()
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["user"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(users("from-config.db"), ["c"]);
    assert_eq!(users("from-env.db"), ["e"]);
    assert_eq!(users("from-option.db"), ["o"]);
}

#[test]
fn help_has_examples() {
    let s = Scratch::new();
    for args in [
        vec!["user", "--help"],
        vec!["user", "add", "--help"],
        vec!["device", "add", "--help"],
        vec!["device", "list", "--help"],
    ] {
        let run = s.run(&args).ok();
        assert!(run.stdout.contains("Examples:"), "{args:?}: {}", run.stdout);
        assert!(run.stdout.contains("iotmp "), "{args:?}");
    }
    let run = s.run(&["device", "add", "--help"]).ok();
    assert!(run.stdout.contains("--db <PATH>"), "{}", run.stdout);
    assert!(run.stdout.contains("IOTMP_DB"), "{}", run.stdout);
}
