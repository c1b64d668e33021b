//! The registry in memory, so that authentication does not query SQLite.
//!
//! [`Index`] holds every user, token and device with their salted hashes; its lookups are hash
//! map probes keyed by `&str` (no allocation) plus one SHA-256, and return shared names (`Arc`).
//! [`Registry`] keeps an index consistent with its [`Store`]:
//!
//! * a write through the registry commits to the store first, then reloads the rows of the one
//!   user it touched, so the index says what the database says, never what we meant to write;
//! * another process's commits (`iotmp device add` while the server runs) show up in
//!   `PRAGMA data_version`; [`Registry::refresh`] checks it (a cheap read of shared memory)
//!   and reloads the whole index when it moved. Call it on a timer, and after a lookup fails,
//!   so that a device registered a moment ago can connect at once.
//!
//! The index sits behind an `Arc`: [`Registry::index`] hands a snapshot to other threads, which
//! read it without locks while the registry swaps in a new one (copy on write).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use rusqlite::params;

use super::accounts::{DEVICE_COLUMNS, DEVICE_FROM, device_info};
use super::secret::{self, Fingerprint, Salted, Secret};
use super::{DeviceInfo, DeviceRef, OpenMode, Store, StoreError, UserId, UserRef};

/// A device in the index.
#[derive(Debug, Clone, PartialEq, Eq)]
struct DeviceEntry {
    info: DeviceInfo,
    credential: Option<Salted>,
}

/// A user in the index.
#[derive(Debug, Clone, PartialEq, Eq)]
struct UserEntry {
    user: UserRef,
    /// By device id: listings come out sorted.
    devices: BTreeMap<Arc<str>, DeviceEntry>,
    /// Selectors of the user's tokens (to drop them with the user).
    selectors: Vec<Box<str>>,
}

/// A token in the index.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TokenEntry {
    user: UserRef,
    verifier: Option<Salted>,
}

/// Users, tokens and devices in memory, with the lookups of the server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Index {
    users: HashMap<Arc<str>, UserEntry>,
    /// By token selector.
    tokens: HashMap<Box<str>, TokenEntry>,
    fingerprints: HashMap<Fingerprint, DeviceRef>,
}

#[allow(
    dead_code,
    reason = "the server's lookup API (next work); the tests use all of it"
)]
impl Index {
    /// Reads the whole registry from `store`.
    pub(crate) fn load(store: &Store) -> Result<Index, StoreError> {
        let mut index = Index::default();
        index.load_rows(store, None)?;
        Ok(index)
    }

    /// The device `user/device` if `credential` is its credential (spec §6.2). Unknown names
    /// cost the same hash as a wrong credential.
    pub(crate) fn authenticate_device(
        &self,
        user: &str,
        device: &str,
        credential: &str,
    ) -> Option<DeviceRef> {
        let entry = self
            .users
            .get(user)
            .and_then(|found| found.devices.get(device));
        match entry {
            Some(DeviceEntry {
                info,
                credential: Some(stored),
            }) => stored.verify(credential).then(|| info.device.clone()),
            _ => {
                Salted::verify_nothing(credential);
                None
            }
        }
    }

    /// The device registered with this certificate fingerprint (spec §6.2).
    pub(crate) fn device_by_fingerprint(&self, fingerprint: &Fingerprint) -> Option<DeviceRef> {
        self.fingerprints.get(fingerprint).cloned()
    }

    /// The user an API token belongs to (spec §8.1).
    pub(crate) fn user_for_token(&self, token: &str) -> Option<UserRef> {
        let (selector, verifier) = secret::split_token(token)?;
        match self.tokens.get(selector) {
            Some(TokenEntry {
                user,
                verifier: Some(stored),
            }) => stored.verify(verifier).then(|| user.clone()),
            _ => {
                Salted::verify_nothing(verifier);
                None
            }
        }
    }

    /// The devices of `user` by device id; empty for an unknown user.
    pub(crate) fn devices_of(&self, user: &str) -> Vec<DeviceInfo> {
        self.users
            .get(user)
            .map(|entry| entry.devices.values().map(|d| d.info.clone()).collect())
            .unwrap_or_default()
    }

    /// Whether `user/device` is registered: one map probe each, for the API's per-request
    /// check (listing the user's devices there cost O(devices) per RUN).
    pub(crate) fn has_device(&self, user: &str, device: &str) -> bool {
        self.users
            .get(user)
            .is_some_and(|entry| entry.devices.contains_key(device))
    }

    /// The user called `name`.
    pub(crate) fn user(&self, name: &str) -> Option<UserRef> {
        self.users.get(name).map(|entry| entry.user.clone())
    }

    /// How many users are registered.
    pub(crate) fn user_count(&self) -> usize {
        self.users.len()
    }

    /// Drops `user` and everything indexed under them.
    fn forget_user(&mut self, user: &str) {
        if let Some(entry) = self.users.remove(user) {
            for selector in &entry.selectors {
                self.tokens.remove(selector);
            }
            for device in entry.devices.values() {
                if let Some(fingerprint) = &device.info.fingerprint {
                    self.fingerprints.remove(fingerprint);
                }
            }
        }
    }

    /// Reads the rows of `only` (one user), or of everyone, into the index.
    fn load_rows(&mut self, store: &Store, only: Option<&str>) -> Result<(), StoreError> {
        let conn = &store.conn;
        let mut users =
            conn.prepare_cached("SELECT id, name FROM users WHERE ?1 IS NULL OR name = ?1")?;
        let rows = users.query_map([only], |row| {
            Ok(UserRef {
                id: UserId(row.get(0)?),
                name: Arc::from(row.get::<_, String>(1)?),
            })
        })?;
        for user in rows {
            let user = user?;
            self.users.insert(
                user.name.clone(),
                UserEntry {
                    user,
                    devices: BTreeMap::new(),
                    selectors: Vec::new(),
                },
            );
        }

        let mut devices = conn.prepare_cached(&format!(
            "SELECT {DEVICE_COLUMNS}, d.salt, d.credential_hash {DEVICE_FROM} WHERE ?1 IS NULL OR u.name = ?1"
        ))?;
        let rows = devices.query_map([only], |row| {
            let salt: Vec<u8> = row.get(6)?;
            let hash: Vec<u8> = row.get(7)?;
            Ok(DeviceEntry {
                info: device_info(row)?,
                credential: Salted::from_columns(&salt, &hash),
            })
        })?;
        for device in rows {
            let device = device?;
            if let Some(fingerprint) = device.info.fingerprint {
                self.fingerprints
                    .insert(fingerprint, device.info.device.clone());
            }
            if let Some(owner) = self.users.get_mut(&*device.info.device.user.name) {
                owner
                    .devices
                    .insert(device.info.device.name.clone(), device);
            }
        }

        let mut tokens = conn.prepare_cached(
            "SELECT t.selector, t.salt, t.hash, u.name FROM api_tokens t \
             JOIN users u ON u.id = t.user_id WHERE ?1 IS NULL OR u.name = ?1 ORDER BY t.id",
        )?;
        let rows = tokens.query_map(params![only], |row| {
            let selector: String = row.get(0)?;
            let salt: Vec<u8> = row.get(1)?;
            let hash: Vec<u8> = row.get(2)?;
            let user: String = row.get(3)?;
            Ok((selector, Salted::from_columns(&salt, &hash), user))
        })?;
        for token in rows {
            let (selector, verifier, user) = token?;
            if let Some(owner) = self.users.get_mut(user.as_str()) {
                let selector: Box<str> = selector.into();
                owner.selectors.push(selector.clone());
                self.tokens.insert(
                    selector,
                    TokenEntry {
                        user: owner.user.clone(),
                        verifier,
                    },
                );
            }
        }
        Ok(())
    }
}

/// A [`Store`] with its [`Index`] kept in step.
#[derive(Debug)]
pub(crate) struct Registry {
    store: Store,
    index: Arc<Index>,
    /// `PRAGMA data_version` when the index was last made whole; `None` after a partial update
    /// failed, so that the next refresh reloads everything.
    data_version: Option<i64>,
}

#[allow(
    dead_code,
    reason = "the server's registry (next work); the tests use all of it"
)]
impl Registry {
    /// Opens the database at `path` and loads the index.
    pub(crate) fn open(path: &std::path::Path, mode: OpenMode) -> Result<Registry, StoreError> {
        Registry::new(Store::open(path, mode)?)
    }

    /// Loads the index of `store`.
    pub(crate) fn new(store: Store) -> Result<Registry, StoreError> {
        let data_version = store.data_version()?;
        let index = Arc::new(Index::load(&store)?);
        Ok(Registry {
            store,
            index,
            data_version: Some(data_version),
        })
    }

    /// The current index, to look up from any thread; it does not change under the holder.
    pub(crate) fn index(&self) -> Arc<Index> {
        Arc::clone(&self.index)
    }

    /// The database, for the queries the index does not answer (listings, records).
    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    /// The database for writes the index does not cover (recorders, records).
    pub(crate) fn store_mut(&mut self) -> &mut Store {
        &mut self.store
    }

    /// Reloads the index if another connection committed since it was loaded; says whether it
    /// did.
    pub(crate) fn refresh(&mut self) -> Result<bool, StoreError> {
        let version = self.store.data_version()?;
        if self.data_version == Some(version) {
            return Ok(false);
        }
        // Read the version first: a commit landing during the load then shows up again at the
        // next refresh instead of being lost.
        self.index = Arc::new(Index::load(&self.store)?);
        self.data_version = Some(version);
        Ok(true)
    }

    /// See [`Index::authenticate_device`].
    pub(crate) fn authenticate_device(
        &self,
        user: &str,
        device: &str,
        credential: &str,
    ) -> Option<DeviceRef> {
        self.index.authenticate_device(user, device, credential)
    }

    /// See [`Index::device_by_fingerprint`].
    pub(crate) fn device_by_fingerprint(&self, fingerprint: &Fingerprint) -> Option<DeviceRef> {
        self.index.device_by_fingerprint(fingerprint)
    }

    /// See [`Index::user_for_token`].
    pub(crate) fn user_for_token(&self, token: &str) -> Option<UserRef> {
        self.index.user_for_token(token)
    }

    /// See [`Index::devices_of`].
    pub(crate) fn devices_of(&self, user: &str) -> Vec<DeviceInfo> {
        self.index.devices_of(user)
    }

    /// [`Store::add_user`], then the index.
    pub(crate) fn add_user(&mut self, name: &str) -> Result<(UserRef, Secret), StoreError> {
        let added = self.store.add_user(name)?;
        self.reload_user(name);
        Ok(added)
    }

    /// [`Store::issue_token`], then the index.
    pub(crate) fn issue_token(&mut self, user: &str) -> Result<Secret, StoreError> {
        let token = self.store.issue_token(user)?;
        self.reload_user(user);
        Ok(token)
    }

    /// [`Store::remove_user`], then the index.
    pub(crate) fn remove_user(&mut self, user: &str) -> Result<u64, StoreError> {
        let removed = self.store.remove_user(user)?;
        self.reload_user(user);
        Ok(removed)
    }

    /// [`Store::add_device`], then the index.
    pub(crate) fn add_device(
        &mut self,
        user: &str,
        device: &str,
        credential: &Secret,
        fingerprint: Option<Fingerprint>,
    ) -> Result<DeviceRef, StoreError> {
        let added = self
            .store
            .add_device(user, device, credential, fingerprint)?;
        self.reload_user(user);
        Ok(added)
    }

    /// [`Store::remove_device`], then the index.
    pub(crate) fn remove_device(&mut self, user: &str, device: &str) -> Result<(), StoreError> {
        self.store.remove_device(user, device)?;
        self.reload_user(user);
        Ok(())
    }

    /// Makes the index say what the database says about `user`. Our own commits do not move
    /// `data_version`, so this keeps the index whole without a full reload. The write it follows
    /// has committed, so a failure here must not turn it into an error (a new token would be
    /// lost): the index is marked stale instead, and the next refresh reloads it.
    fn reload_user(&mut self, user: &str) {
        let index = Arc::make_mut(&mut self.index);
        index.forget_user(user);
        if let Err(e) = index.load_rows(&self.store, Some(user)) {
            tracing::warn!("registry index not updated for user {user} ({e}); reloading later");
            self.data_version = None;
        }
    }
}
