//! Committed replay traces (`tests/traces/*.trace`): each is replayed through a fresh session
//! and its transcript is pinned with insta. They were recorded from the sample exchange of the
//! spec's session files; `cargo test -p iotmp-tests --test committed_traces -- --ignored`
//! records them again (then review the diff).

use std::path::PathBuf;

use iotmp_proto::Dialect;
use iotmp_proto::trace::replay;
use iotmp_tests::sample::main_exchange;

fn traces_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("traces")
}

const NAMES: [(&str, Dialect); 2] = [
    ("sample-2020", Dialect::Draft2020),
    ("sample-2026", Dialect::Draft2026),
];

#[test]
fn committed_traces_replay() {
    let mut replayed = 0;
    for (name, _) in NAMES {
        for side in ["device", "server"] {
            let file = traces_dir().join(format!("{name}-{side}.trace"));
            let text = std::fs::read_to_string(&file)
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            let result =
                replay(&text).unwrap_or_else(|e| panic!("{} does not replay: {e}", file.display()));
            assert!(
                result.steps > 10,
                "{}: too short to mean anything",
                file.display()
            );
            insta::assert_snapshot!(format!("{name}-{side}"), result.transcript);
            replayed += 1;
        }
    }
    assert_eq!(replayed, 4);
}

/// Records the committed traces again from the scenario.
#[test]
#[ignore = "rewrites tests/traces; run on purpose and review the diff"]
fn regenerate_committed_traces() {
    std::fs::create_dir_all(traces_dir()).unwrap();
    for (name, dialect) in NAMES {
        let mut pair = main_exchange(dialect);
        let (device, server) = pair.traces();
        let header = format!(
            "# The application exchange of parts 1-8 of sessions-{}.txt.\n",
            dialect.year()
        );
        std::fs::write(
            traces_dir().join(format!("{name}-device.trace")),
            format!("{header}{device}"),
        )
        .unwrap();
        std::fs::write(
            traces_dir().join(format!("{name}-server.trace")),
            format!("{header}{server}"),
        )
        .unwrap();
    }
}
