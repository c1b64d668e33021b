//! Bulk provisioning for `iotmp bench`: one user with many devices, written in one transaction.
//!
//! Registering 19,000 devices one `iotmp device add` at a time would cost 19,000 fsyncs; here
//! the whole fleet is one commit, and re-running replaces the previous fleet (the user is
//! removed with everything it owned, then added again), so the call is idempotent and leaves no
//! stale credentials behind. Secrets are stored salted and hashed as everywhere else.

use rusqlite::{TransactionBehavior, params};

use super::accounts::{find_user, insert_token};
use super::names::{self, NameKind};
use super::secret::{Salted, Secret};
use super::{Store, StoreError, now_ms};

impl Store {
    /// Replaces `user` (and all it owned) with a fresh user holding `devices` (name and
    /// credential each) and one new API token, which is returned.
    pub(crate) fn replace_user_with_devices(
        &mut self,
        user: &str,
        devices: &[(String, Secret)],
    ) -> Result<Secret, StoreError> {
        names::check(NameKind::User, user)?;
        let mut hashed = Vec::with_capacity(devices.len());
        for (name, credential) in devices {
            names::check(NameKind::Device, name)?;
            if credential.expose().is_empty() {
                return Err(StoreError::EmptyCredential);
            }
            hashed.push((name.as_str(), Salted::new(credential.expose())?));
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        if let Some(old) = find_user(&tx, user)? {
            // foreign_keys is on: tokens, devices, recorders and buckets go with the user.
            tx.execute("DELETE FROM users WHERE id = ?1", [old.id.0])?;
        }
        let now = now_ms();
        tx.execute(
            "INSERT INTO users (name, created_at) VALUES (?1, ?2)",
            params![user, now],
        )?;
        let user_id = super::UserId(tx.last_insert_rowid());
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO devices (user_id, name, salt, credential_hash, cert_sha256, \
                 created_at) VALUES (?1, ?2, ?3, ?4, NULL, ?5)",
            )?;
            for (name, salted) in &hashed {
                insert.execute(params![
                    user_id.0,
                    name,
                    salted.salt.as_slice(),
                    salted.hash.as_slice(),
                    now
                ])?;
            }
        }
        let token = insert_token(&tx, user_id)?;
        tx.commit()?;
        Ok(token)
    }
}
