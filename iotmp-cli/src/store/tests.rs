//! Tests of the store: schema and migrations, secrets, lookups, cascades, persistence,
//! recorders and records, and the cached index against the database.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed expectation must stop the test loudly"
)]

use std::path::{Path, PathBuf};

use serde_json::json;
use tempfile::TempDir;

use super::schema::{self, APPLICATION_ID, MIGRATIONS};
use super::*;
use crate::exit::Exit;

/// A scratch directory and a database path inside it (not created).
fn scratch() -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.db");
    (dir, path)
}

fn create(path: &Path) -> Store {
    Store::open(path, OpenMode::Create).unwrap()
}

fn pragma_i64(store: &Store, name: &str) -> i64 {
    store
        .conn
        .query_row(&format!("PRAGMA {name}"), [], |row| row.get(0))
        .unwrap()
}

fn count(store: &Store, table: &str) -> i64 {
    store
        .conn
        .query_row(&format!("SELECT count(*) FROM {table}"), [], |row| {
            row.get(0)
        })
        .unwrap()
}

/// A store with user alice (token returned) and device alice/dev01 (credential returned).
fn alice(store: &mut Store) -> (Secret, Secret) {
    let (_, token) = store.add_user("alice").unwrap();
    let credential = Secret::generate().unwrap();
    store
        .add_device("alice", "dev01", &credential, None)
        .unwrap();
    (token, credential)
}

// ---- schema and migrations

#[test]
fn a_fresh_database_gets_the_latest_schema_and_settings() {
    let (_dir, path) = scratch();
    let store = create(&path);
    assert_eq!(store.schema_version(), schema::latest());
    assert_eq!(
        pragma_i64(&store, "application_id"),
        i64::from(APPLICATION_ID)
    );
    assert_eq!(pragma_i64(&store, "foreign_keys"), 1);
    assert_eq!(pragma_i64(&store, "synchronous"), 2, "FULL");
    let mode: String = store
        .conn
        .query_row("PRAGMA journal_mode", [], |row| row.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    for table in [
        "users",
        "api_tokens",
        "devices",
        "buckets",
        "recorders",
        "records",
    ] {
        assert_eq!(count(&store, table), 0, "{table}");
    }
}

#[test]
fn reopening_keeps_the_data_and_migrates_nothing() {
    let (_dir, path) = scratch();
    let credential = {
        let mut store = create(&path);
        alice(&mut store).1
    };
    // Existing mode: the file is there now.
    let store = Store::open(&path, OpenMode::Existing).unwrap();
    assert_eq!(store.schema_version(), schema::latest());
    let found = store
        .authenticate_device("alice", "dev01", credential.expose())
        .unwrap()
        .unwrap();
    assert_eq!(&*found.user.name, "alice");
    assert_eq!(&*found.name, "dev01");
}

#[test]
fn an_existing_database_gets_only_the_missing_migrations() {
    let (_dir, path) = scratch();
    {
        let mut store = create(&path);
        alice(&mut store);
        assert_eq!(store.schema_version(), 1);
    }
    // A later version of the binary: one more migration. Re-running V1 would fail (its tables
    // exist), so success shows that only the new one ran.
    let v2 = "CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT NOT NULL) STRICT;";
    let mut migrations = MIGRATIONS.to_vec();
    migrations.push(v2);
    let store = Store::open_with(&path, OpenMode::Existing, &migrations).unwrap();
    assert_eq!(store.schema_version(), 2);
    assert_eq!(count(&store, "notes"), 0);
    assert_eq!(count(&store, "devices"), 1, "data survives the migration");
    drop(store);

    // The older binary now refuses the file instead of writing to a schema it does not know.
    let err = Store::open(&path, OpenMode::Existing).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::NewerSchema {
                found: 2,
                supported: 1,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.exit(), Exit::Usage);
    assert!(err.to_string().contains("upgrade iotmp"), "{err}");
}

#[test]
fn a_failing_migration_leaves_the_old_version() {
    let (_dir, path) = scratch();
    drop(create(&path));
    let mut migrations = MIGRATIONS.to_vec();
    migrations.push("CREATE TABLE ok_part (id INTEGER); THIS IS NOT SQL;");
    assert!(Store::open_with(&path, OpenMode::Existing, &migrations).is_err());
    let store = Store::open(&path, OpenMode::Existing).unwrap();
    assert_eq!(store.schema_version(), 1);
    let tables: i64 = store
        .conn
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE name = 'ok_part'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(tables, 0, "the half-applied migration was rolled back");
}

#[test]
fn foreign_files_are_refused() {
    let (dir, path) = scratch();
    // Some other program's SQLite database.
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch("CREATE TABLE theirs (x INTEGER);")
            .unwrap();
    }
    let err = Store::open(&path, OpenMode::Create).unwrap_err();
    assert!(matches!(err, StoreError::Foreign { .. }), "{err:?}");
    assert_eq!(err.exit(), Exit::Usage);

    // Not SQLite at all.
    let text = dir.path().join("notes.txt");
    std::fs::write(
        &text,
        "hello, this is not a database, just some text. ".repeat(50),
    )
    .unwrap();
    let err = Store::open(&text, OpenMode::Existing).unwrap_err();
    assert!(matches!(err, StoreError::Foreign { .. }), "{err:?}");
    assert!(err.to_string().contains("not an iotmp registry"), "{err}");
}

#[test]
fn existing_mode_does_not_create() {
    let (_dir, path) = scratch();
    let err = Store::open(&path, OpenMode::Existing).unwrap_err();
    assert!(matches!(err, StoreError::Missing { .. }), "{err:?}");
    assert!(err.to_string().contains("iotmp user add"), "{err}");
    assert!(!path.exists());
}

#[test]
fn a_path_in_a_missing_directory_is_an_open_error() {
    let (dir, _) = scratch();
    let path = dir.path().join("no/such/dir/registry.db");
    let err = Store::open(&path, OpenMode::Create).unwrap_err();
    assert!(matches!(err, StoreError::Open { .. }), "{err:?}");
    assert_eq!(err.exit(), Exit::Usage);
}

#[cfg(unix)]
#[test]
fn a_new_database_is_private() {
    use std::os::unix::fs::PermissionsExt as _;
    let (_dir, path) = scratch();
    drop(create(&path));
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0, "{mode:o}");
}

// ---- users, tokens, devices

#[test]
fn credentials_verify_only_for_their_device() {
    let mut store = Store::open_in_memory().unwrap();
    let (_, credential) = alice(&mut store);
    store.add_user("bob").unwrap();
    let bobs = Secret::generate().unwrap();
    store.add_device("bob", "dev01", &bobs, None).unwrap();

    let ok = store
        .authenticate_device("alice", "dev01", credential.expose())
        .unwrap();
    assert_eq!(ok.as_ref().map(|d| &*d.user.name), Some("alice"));
    for (user, device, secret) in [
        ("alice", "dev01", "wrong"),
        ("alice", "dev01", ""),
        ("bob", "dev01", credential.expose()), // right credential, wrong user
        ("alice", "dev02", credential.expose()), // unknown device
        ("carol", "dev01", credential.expose()), // unknown user
        ("alice", "dev01", bobs.expose()),     // another device's credential
    ] {
        assert_eq!(
            store.authenticate_device(user, device, secret).unwrap(),
            None,
            "{user}/{device}"
        );
    }
}

#[test]
fn secrets_are_stored_hashed() {
    let (_dir, path) = scratch();
    let (token, credential) = {
        let mut store = create(&path);
        let chosen = Secret::from_user("my-known-credential-1234".to_owned());
        store.add_user("bob").unwrap();
        store.add_device("bob", "d", &chosen, None).unwrap();
        alice(&mut store)
    };
    // Checkpointed or not, the bytes are in the file or its WAL.
    let mut bytes = std::fs::read(&path).unwrap();
    if let Ok(wal) = std::fs::read(path.with_extension("db-wal")) {
        bytes.extend(wal);
    }
    let contains = |needle: &str| bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
    assert!(contains("alice"), "the search works");
    assert!(!contains(credential.expose()));
    assert!(!contains(token.expose()));
    let (_, verifier) = secret::split_token(token.expose()).unwrap();
    assert!(!contains(verifier));
    assert!(!contains("my-known-credential-1234"));
}

#[test]
fn tokens_identify_their_user() {
    let mut store = Store::open_in_memory().unwrap();
    let (first, _) = alice(&mut store);
    let second = store.issue_token("alice").unwrap();
    let (_, bobs) = store.add_user("bob").unwrap();
    assert_ne!(first, second);
    for token in [&first, &second] {
        let user = store.user_for_token(token.expose()).unwrap().unwrap();
        assert_eq!(&*user.name, "alice");
    }
    assert_eq!(
        &*store.user_for_token(bobs.expose()).unwrap().unwrap().name,
        "bob"
    );
    // Right selector with a wrong verifier, a wrong selector, junk.
    let (selector, verifier) = secret::split_token(first.expose()).unwrap();
    let (other_selector, _) = secret::split_token(bobs.expose()).unwrap();
    for token in [
        format!("{selector}.x{verifier}"),
        format!("{other_selector}.{verifier}"),
        verifier.to_owned(),
        String::new(),
    ] {
        assert_eq!(store.user_for_token(&token).unwrap(), None, "{token}");
    }
    let users = store.users().unwrap();
    assert_eq!(users.len(), 2);
    assert_eq!((&*users[0].user.name, users[0].tokens), ("alice", 2));
    assert_eq!((&*users[1].user.name, users[1].tokens), ("bob", 1));
}

#[test]
fn names_are_unique_where_they_should_be() {
    let mut store = Store::open_in_memory().unwrap();
    alice(&mut store);
    let err = store.add_user("alice").unwrap_err();
    assert!(matches!(err, StoreError::UserExists(_)), "{err:?}");
    assert!(err.to_string().contains("iotmp user token alice"), "{err}");
    let credential = Secret::generate().unwrap();
    let err = store
        .add_device("alice", "dev01", &credential, None)
        .unwrap_err();
    assert!(matches!(err, StoreError::DeviceExists { .. }), "{err:?}");
    // The same device id under another user is another device.
    store.add_user("bob").unwrap();
    store.add_device("bob", "dev01", &credential, None).unwrap();
    let err = store
        .add_device("carol", "dev01", &credential, None)
        .unwrap_err();
    assert!(matches!(err, StoreError::UnknownUser(_)), "{err:?}");
    let err = store.add_user("a/b").unwrap_err();
    assert!(matches!(err, StoreError::InvalidName(_)), "{err:?}");
    let err = store
        .add_device("bob", "d2", &Secret::from_user(String::new()), None)
        .unwrap_err();
    assert!(matches!(err, StoreError::EmptyCredential), "{err:?}");
    for err in [
        StoreError::UserExists("x".into()),
        StoreError::UnknownUser("x".into()),
    ] {
        assert_eq!(err.exit(), Exit::Usage);
    }
}

#[test]
fn a_certificate_fingerprint_belongs_to_one_device() {
    let mut store = Store::open_in_memory().unwrap();
    alice(&mut store);
    let fingerprint = Fingerprint::of_der(b"certificate of dev02");
    let credential = Secret::generate().unwrap();
    let dev02 = store
        .add_device("alice", "dev02", &credential, Some(fingerprint))
        .unwrap();
    assert_eq!(
        store.device_by_fingerprint(&fingerprint).unwrap(),
        Some(dev02)
    );
    assert_eq!(
        store
            .device_by_fingerprint(&Fingerprint::of_der(b"another"))
            .unwrap(),
        None
    );
    store.add_user("bob").unwrap();
    let err = store
        .add_device("bob", "dev03", &credential, Some(fingerprint))
        .unwrap_err();
    match &err {
        StoreError::FingerprintTaken { user, device, .. } => {
            assert_eq!((user.as_str(), device.as_str()), ("alice", "dev02"));
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains(&fingerprint.to_string()), "{err}");
    // Devices without a certificate do not collide with each other (NULLs are distinct).
    store.add_device("bob", "dev04", &credential, None).unwrap();
    // The database enforces it too, whatever the code above checks.
    let raw = store.conn.execute(
        "UPDATE devices SET cert_sha256 = ?1 WHERE name = 'dev04'",
        [fingerprint.0.as_slice()],
    );
    assert!(raw.is_err());
}

#[test]
fn removing_a_user_removes_everything_of_theirs() {
    let mut store = Store::open_in_memory().unwrap();
    alice(&mut store);
    store.issue_token("alice").unwrap();
    let credential = Secret::generate().unwrap();
    store
        .add_device(
            "alice",
            "dev02",
            &credential,
            Some(Fingerprint::of_der(b"c")),
        )
        .unwrap();
    let recorder = store
        .add_recorder("alice", "dev01", "temp", 60, "temps")
        .unwrap();
    store
        .append_record(recorder.bucket_id, 1, &json!(21.5))
        .unwrap();
    let (_, bobs_token) = store.add_user("bob").unwrap();
    store.add_device("bob", "dev01", &credential, None).unwrap();

    assert_eq!(store.remove_user("alice").unwrap(), 2);
    assert_eq!(count(&store, "users"), 1);
    assert_eq!(count(&store, "api_tokens"), 1);
    assert_eq!(count(&store, "devices"), 1);
    assert_eq!(count(&store, "recorders"), 0);
    assert_eq!(count(&store, "buckets"), 0);
    assert_eq!(count(&store, "records"), 0);
    assert!(store.user_for_token(bobs_token.expose()).unwrap().is_some());
    let err = store.remove_user("alice").unwrap_err();
    assert!(matches!(err, StoreError::UnknownUser(_)), "{err:?}");
}

#[test]
fn devices_list_and_remove() {
    let mut store = Store::open_in_memory().unwrap();
    alice(&mut store);
    let credential = Secret::generate().unwrap();
    store
        .add_device("alice", "a-first", &credential, None)
        .unwrap();
    store.add_user("bob").unwrap();
    store.add_device("bob", "zz", &credential, None).unwrap();
    let names = |list: Vec<DeviceInfo>| -> Vec<String> {
        list.iter()
            .map(|d| format!("{}/{}", d.device.user.name, d.device.name))
            .collect()
    };
    assert_eq!(
        names(store.devices(None).unwrap()),
        ["alice/a-first", "alice/dev01", "bob/zz"]
    );
    assert_eq!(names(store.devices(Some("bob")).unwrap()), ["bob/zz"]);
    assert!(matches!(
        store.devices(Some("carol")),
        Err(StoreError::UnknownUser(_))
    ));
    assert!(store.devices_of("carol").unwrap().is_empty());

    store.remove_device("alice", "dev01").unwrap();
    assert_eq!(names(store.devices_of("alice").unwrap()), ["alice/a-first"]);
    let err = store.remove_device("alice", "dev01").unwrap_err();
    assert!(matches!(err, StoreError::UnknownDevice { .. }), "{err:?}");
    assert!(err.to_string().contains("iotmp device list alice"), "{err}");
    let err = store.remove_device("carol", "dev01").unwrap_err();
    assert!(matches!(err, StoreError::UnknownUser(_)), "{err:?}");
}

// ---- recorders and records

#[test]
fn recorders_add_list_remove() {
    let mut store = Store::open_in_memory().unwrap();
    alice(&mut store);
    let credential = Secret::generate().unwrap();
    store
        .add_device("alice", "dev02", &credential, None)
        .unwrap();
    let temp = store
        .add_recorder("alice", "dev01", "temp", 60, "climate")
        .unwrap();
    let hum = store
        .add_recorder("alice", "dev02", "$fs/humidity", 0, "climate")
        .unwrap();
    assert_eq!(
        temp.bucket_id, hum.bucket_id,
        "one bucket per user and name"
    );
    assert_eq!(
        store.bucket("alice", "climate").unwrap(),
        Some(temp.bucket_id)
    );
    assert_eq!(store.bucket("alice", "nope").unwrap(), None);
    assert_eq!(store.list_recorders(None).unwrap(), [temp.clone(), hum]);
    assert_eq!(store.list_recorders(Some("bob")).unwrap(), []);

    for (result, what) in [
        (
            store.add_recorder("alice", "nope", "temp", 1, "b"),
            "unknown device",
        ),
        (
            store.add_recorder("alice", "dev01", "temp", 86_401, "b"),
            "interval",
        ),
        (
            store.add_recorder("alice", "dev01", "temp", 60, "climate"),
            "duplicate",
        ),
        (
            store.add_recorder("alice", "dev01", "temp", 60, "no/slash"),
            "bucket name",
        ),
    ] {
        assert!(result.is_err(), "{what}");
    }

    // Removing a device removes its recorders but keeps the user's bucket and records.
    store
        .append_record(temp.bucket_id, 5, &json!({"t": 1}))
        .unwrap();
    store.remove_device("alice", "dev02").unwrap();
    assert_eq!(
        store.list_recorders(Some("alice")).unwrap(),
        std::slice::from_ref(&temp)
    );
    assert_eq!(count(&store, "records"), 1);

    store.remove_recorder(temp.id).unwrap();
    assert!(store.list_recorders(None).unwrap().is_empty());
    assert!(matches!(
        store.remove_recorder(temp.id),
        Err(StoreError::UnknownRecorder(_))
    ));
    assert_eq!(
        store.bucket("alice", "climate").unwrap(),
        Some(temp.bucket_id)
    );
}

#[test]
fn records_by_time_range_and_limit() {
    let mut store = Store::open_in_memory().unwrap();
    alice(&mut store);
    let a = store
        .add_recorder("alice", "dev01", "temp", 1, "a")
        .unwrap()
        .bucket_id;
    let b = store
        .add_recorder("alice", "dev01", "hum", 1, "b")
        .unwrap()
        .bucket_id;
    let values: Vec<serde_json::Value> = (0..10).map(|i| json!({"i": i})).collect();
    // Appended out of order, with another bucket interleaved and a duplicate time.
    let mut batch = Vec::new();
    for (i, value) in values.iter().enumerate().rev() {
        let ts = 1_000 + 100 * i64::try_from(i).unwrap();
        batch.push((a, ts, value));
        batch.push((b, ts, value));
    }
    store.append_records(batch).unwrap();
    store.append_record(a, 1_500, &json!("same ms")).unwrap();

    let ts = |records: Vec<Record>| -> Vec<i64> { records.iter().map(|r| r.ts).collect() };
    assert_eq!(store.records(a, None, None, 100).unwrap().len(), 11);
    assert_eq!(
        ts(store.records(a, Some(1_200), Some(1_500), 100).unwrap()),
        [1_200, 1_300, 1_400],
        "from is inclusive, to exclusive"
    );
    assert_eq!(
        ts(store.records(a, Some(1_500), None, 3).unwrap()),
        [1_500, 1_500, 1_600],
        "oldest first, limited"
    );
    let same = store.records(a, Some(1_500), Some(1_501), 10).unwrap();
    assert_eq!(
        same[0].value,
        json!({"i": 5}),
        "insertion order within one ms"
    );
    assert_eq!(same[1].value, json!("same ms"));
    assert_eq!(
        ts(store.records(a, None, Some(1_100), 10).unwrap()),
        [1_000]
    );
    assert!(store.records(a, Some(5_000), None, 10).unwrap().is_empty());
    assert!(store.records(a, None, None, 0).unwrap().is_empty());
    assert_eq!(
        store.records(b, Some(1_900), None, 10).unwrap()[0].value,
        json!({"i": 9})
    );
    // Values come back as they went in, big integers included.
    let big: serde_json::Value = serde_json::from_str("18446744073709551615").unwrap();
    store.append_record(b, 9_000, &big).unwrap();
    assert_eq!(
        store.records(b, Some(9_000), None, 1).unwrap()[0].value,
        big
    );
}

// ---- the cached index

/// The index of `registry` says what the database says.
fn assert_consistent(registry: &Registry) {
    let fresh = Index::load(registry.store()).unwrap();
    assert_eq!(*registry.index(), fresh);
}

#[test]
fn the_index_answers_like_the_store() {
    let mut registry = Registry::new(Store::open_in_memory().unwrap()).unwrap();
    let (_, token) = registry.add_user("alice").unwrap();
    let credential = Secret::generate().unwrap();
    let fingerprint = Fingerprint::of_der(b"dev01 cert");
    let dev01 = registry
        .add_device("alice", "dev01", &credential, Some(fingerprint))
        .unwrap();
    assert_consistent(&registry);

    let store = registry.store();
    let index = registry.index();
    for (user, device, secret) in [
        ("alice", "dev01", credential.expose()),
        ("alice", "dev01", "wrong"),
        ("bob", "dev01", credential.expose()),
    ] {
        assert_eq!(
            index.authenticate_device(user, device, secret),
            store.authenticate_device(user, device, secret).unwrap()
        );
    }
    assert_eq!(
        registry.authenticate_device("alice", "dev01", credential.expose()),
        Some(dev01.clone())
    );
    assert_eq!(registry.device_by_fingerprint(&fingerprint), Some(dev01));
    assert_eq!(
        registry.user_for_token(token.expose()),
        store.user_for_token(token.expose()).unwrap()
    );
    assert!(registry.user_for_token(token.expose()).is_some());
    assert_eq!(registry.user_for_token("x.y"), None);
    assert_eq!(
        registry.devices_of("alice"),
        store.devices_of("alice").unwrap()
    );
    for (user, device) in [
        ("alice", "dev01"),
        ("alice", "nope"),
        ("bob", "dev01"),
        ("x", "y"),
    ] {
        assert_eq!(
            index.has_device(user, device),
            index
                .devices_of(user)
                .iter()
                .any(|d| &*d.device.name == device),
            "{user}/{device}"
        );
    }
    assert!(index.has_device("alice", "dev01"));
    assert!(!index.has_device("alice", "nope"));
    assert!(!index.has_device("nobody", "dev01"));
}

#[test]
fn bulk_provisioning_replaces_the_user_in_one_go() {
    let mut store = Store::open_in_memory().unwrap();
    let devices: Vec<(String, Secret)> = (0..3)
        .map(|i| (format!("b-{i}"), Secret::generate().unwrap()))
        .collect();
    let first = store.replace_user_with_devices("bench", &devices).unwrap();
    assert!(store.user_for_token(first.expose()).unwrap().is_some());
    // Again, with other secrets: the old token and credentials are gone, the new ones work.
    let again: Vec<(String, Secret)> = (0..2)
        .map(|i| (format!("b-{i}"), Secret::generate().unwrap()))
        .collect();
    let second = store.replace_user_with_devices("bench", &again).unwrap();
    assert_eq!(store.user_for_token(first.expose()).unwrap(), None);
    assert!(store.user_for_token(second.expose()).unwrap().is_some());
    assert_eq!(store.devices_of("bench").unwrap().len(), 2);
    let (name, old) = &devices[0];
    assert_eq!(
        store
            .authenticate_device("bench", name, old.expose())
            .unwrap(),
        None
    );
    let (name, new) = &again[0];
    assert!(
        store
            .authenticate_device("bench", name, new.expose())
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .replace_user_with_devices(
                "bench",
                &[("bad name/x".to_owned(), Secret::generate().unwrap())]
            )
            .is_err()
    );
}

#[test]
fn writes_through_the_registry_keep_the_index_consistent() {
    let mut registry = Registry::new(Store::open_in_memory().unwrap()).unwrap();
    let snapshot = registry.index();
    let mut tokens = Vec::new();
    let credential = Secret::generate().unwrap();
    // A fixed pseudo-random walk over the writes, failing ones included.
    let mut state: u32 = 12_345;
    for step in 0..300 {
        state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let user = format!("u{}", (state >> 8) % 4);
        let device = format!("d{}", (state >> 12) % 3);
        let fingerprint = ((state >> 16) % 3 == 0)
            .then(|| Fingerprint::of_der(format!("cert{}", (state >> 20) % 5).as_bytes()));
        let _ = match (state >> 24) % 6 {
            0 => registry.add_user(&user).map(|(_, t)| tokens.push(t)),
            1 => registry.issue_token(&user).map(|t| tokens.push(t)),
            2 => registry.remove_user(&user).map(drop),
            3 | 4 => registry
                .add_device(&user, &device, &credential, fingerprint)
                .map(drop),
            _ => registry.remove_device(&user, &device),
        };
        assert_consistent(&registry);
        if step % 50 == 0 {
            for token in &tokens {
                assert_eq!(
                    registry.user_for_token(token.expose()),
                    registry.store().user_for_token(token.expose()).unwrap()
                );
            }
        }
    }
    assert!(registry.index().user_count() > 0);
    // Snapshots taken earlier do not change under their holder.
    assert_eq!(snapshot.user_count(), 0);
}

#[test]
fn authentication_stays_fast() {
    // A guard against a slow hash sneaking in: CONNECT handling must sustain thousands of
    // authentications per second. 20,000 lookups take milliseconds with SHA-256 (even in a
    // debug build); a password KDF at ~50 ms each would take over a quarter of an hour.
    let mut registry = Registry::new(Store::open_in_memory().unwrap()).unwrap();
    let (_, token) = registry.add_user("alice").unwrap();
    let credential = Secret::generate().unwrap();
    registry
        .add_device("alice", "dev01", &credential, None)
        .unwrap();
    let index = registry.index();
    let start = std::time::Instant::now();
    for _ in 0..10_000 {
        assert!(
            index
                .authenticate_device("alice", "dev01", credential.expose())
                .is_some()
        );
        assert!(index.user_for_token(token.expose()).is_some());
    }
    let elapsed = start.elapsed();
    assert!(elapsed.as_secs() < 10, "{elapsed:?} for 20,000 lookups");
}

#[test]
fn refresh_picks_up_another_process_writes() {
    let (_dir, path) = scratch();
    let mut server = Registry::open(&path, OpenMode::Create).unwrap();
    assert!(!server.refresh().unwrap(), "nothing changed yet");

    // `iotmp user add` / `device add` from another process, with its own connection.
    let mut cli = Store::open(&path, OpenMode::Existing).unwrap();
    let (_, token) = cli.add_user("alice").unwrap();
    let credential = Secret::generate().unwrap();
    cli.add_device("alice", "dev01", &credential, None).unwrap();

    assert_eq!(
        server.authenticate_device("alice", "dev01", credential.expose()),
        None,
        "stale until refreshed"
    );
    assert!(server.refresh().unwrap());
    assert!(
        server
            .authenticate_device("alice", "dev01", credential.expose())
            .is_some()
    );
    assert!(server.user_for_token(token.expose()).is_some());
    assert!(!server.refresh().unwrap(), "own state is current");

    // The server's own writes do not make it reload, and the CLI sees them.
    server.issue_token("alice").unwrap();
    assert!(!server.refresh().unwrap());
    assert_eq!(cli.users().unwrap()[0].tokens, 2);

    cli.remove_user("alice").unwrap();
    assert!(server.refresh().unwrap());
    assert_eq!(server.user_for_token(token.expose()), None);
    assert_consistent(&server);
}
