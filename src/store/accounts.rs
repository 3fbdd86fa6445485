//! Accounts, subaccounts, API keys and auth-token rotation.

use super::ops::{Lookup, Tx, new_sid};
use super::records::{Account, ApiKey};
use super::tables::{ACCOUNTS, CHILDREN, INACTIVE_ACCOUNTS, KEYS};
use super::{Result, StoreError, decode_json, encode_json, get_json, new_token};
use crate::model::{Digest, SidKind};
use redb::{ReadableTable, WriteTransaction};

/// Most subaccounts one main account may have (Twilio's default limit is 1,000).
pub const MAX_SUBACCOUNTS: usize = 1000;
/// Most API keys one account may have.
pub const MAX_API_KEYS: usize = 100;

/// The stored form of a key secret: its BLAKE3 digest (the secret itself is shown once).
pub fn secret_hash(secret: &str) -> String {
    Digest::of(secret.as_bytes()).to_hex()
}

impl Tx<'_> {
    fn put_account(&self, a: &Account) -> Result<()> {
        self.txn()
            .open_table(ACCOUNTS)?
            .insert(a.sid.as_str(), encode_json(a).as_slice())?;
        let mut inactive = self.txn().open_table(INACTIVE_ACCOUNTS)?;
        if a.status == "active" {
            inactive.remove(a.sid.as_str())?;
        } else {
            inactive.insert(a.sid.as_str(), ())?;
        }
        Ok(())
    }

    fn account_mut(&self, sid: &str) -> Result<Account> {
        get_json(&self.txn().open_table(ACCOUNTS)?, sid)?
            .ok_or_else(|| StoreError::NotFound(format!("Account {sid} was not found")))
    }

    /// Creates a subaccount of `owner_sid` with its own auth token.
    pub fn create_subaccount(&mut self, owner_sid: &str, friendly_name: &str) -> Result<Account> {
        let owner = self.account_mut(owner_sid)?;
        if owner.owner_sid.is_some() {
            return Err(StoreError::Invalid(
                "a subaccount cannot create subaccounts".into(),
            ));
        }
        // Bounded, so that one credential cannot fill the disk with accounts.
        if self.child_sids(owner_sid, "AC")?.len() >= MAX_SUBACCOUNTS {
            return Err(StoreError::Invalid(format!(
                "Subaccounts are limited to {MAX_SUBACCOUNTS} per account"
            )));
        }
        let now = self.now();
        let acct = Account {
            sid: new_sid(SidKind::Account),
            friendly_name: friendly_name.to_string(),
            auth_token: new_token(),
            secondary_token: None,
            status: "active".into(),
            owner_sid: Some(owner_sid.to_string()),
            date_created: now,
            date_updated: now,
        };
        self.put_account(&acct)?;
        self.txn()
            .open_table(CHILDREN)?
            .insert((owner_sid, acct.sid.as_str()), ())?;
        Ok(acct)
    }

    /// Updates an account's friendly name and/or status (`active`, `suspended`, `closed`).
    /// A closed account cannot be reopened.
    pub fn update_account(
        &mut self,
        sid: &str,
        friendly_name: Option<&str>,
        status: Option<&str>,
    ) -> Result<Account> {
        let mut acct = self.account_mut(sid)?;
        if let Some(s) = status {
            if !matches!(s, "active" | "suspended" | "closed") {
                return Err(StoreError::Invalid(format!(
                    "Status must be active, suspended or closed, not {s:?}"
                )));
            }
            if acct.status == "closed" && s != "closed" {
                return Err(StoreError::Invalid(
                    "a closed account cannot be reopened".into(),
                ));
            }
            if acct.owner_sid.is_none() && s != "active" {
                return Err(StoreError::Invalid(
                    "the main account cannot be suspended or closed".into(),
                ));
            }
            acct.status = s.to_string();
        }
        if let Some(n) = friendly_name {
            acct.friendly_name = n.to_string();
        }
        acct.date_updated = self.now();
        self.put_account(&acct)?;
        Ok(acct)
    }

    /// Creates (or replaces) the secondary auth token of `sid`.
    pub fn create_secondary_token(&mut self, sid: &str) -> Result<Account> {
        let mut acct = self.account_mut(sid)?;
        acct.secondary_token = Some(new_token());
        acct.date_updated = self.now();
        self.put_account(&acct)?;
        Ok(acct)
    }

    /// Deletes the secondary auth token of `sid`.
    pub fn delete_secondary_token(&mut self, sid: &str) -> Result<Account> {
        let mut acct = self.account_mut(sid)?;
        if acct.secondary_token.take().is_none() {
            return Err(StoreError::NotFound(
                "no secondary auth token exists".into(),
            ));
        }
        acct.date_updated = self.now();
        self.put_account(&acct)?;
        Ok(acct)
    }

    /// Promotes the secondary token to primary; the old primary stops working at once, for
    /// the API and for signatures.
    pub fn promote_secondary_token(&mut self, sid: &str) -> Result<Account> {
        let mut acct = self.account_mut(sid)?;
        let Some(new) = acct.secondary_token.take() else {
            return Err(StoreError::Invalid(
                "there is no secondary auth token to promote; create one first".into(),
            ));
        };
        acct.auth_token = new;
        acct.date_updated = self.now();
        self.put_account(&acct)?;
        Ok(acct)
    }

    /// Creates an API key for `account_sid`; returns it with its secret (shown only now).
    pub fn create_api_key(
        &mut self,
        account_sid: &str,
        friendly_name: &str,
    ) -> Result<(ApiKey, String)> {
        self.account_mut(account_sid)?;
        if self.child_sids(account_sid, "SK")?.len() >= MAX_API_KEYS {
            return Err(StoreError::Invalid(format!(
                "API keys are limited to {MAX_API_KEYS} per account; delete unused keys first"
            )));
        }
        let secret = new_token();
        let now = self.now();
        let key = ApiKey {
            sid: new_sid(SidKind::ApiKey),
            account_sid: account_sid.to_string(),
            friendly_name: friendly_name.to_string(),
            secret_hash: secret_hash(&secret),
            date_created: now,
            date_updated: now,
        };
        self.txn()
            .open_table(KEYS)?
            .insert(key.sid.as_str(), encode_json(&key).as_slice())?;
        self.txn()
            .open_table(CHILDREN)?
            .insert((account_sid, key.sid.as_str()), ())?;
        Ok((key, secret))
    }

    /// Renames an API key of `account_sid`.
    pub fn rename_api_key(
        &mut self,
        account_sid: &str,
        key_sid: &str,
        friendly_name: &str,
    ) -> Result<ApiKey> {
        let key: Option<ApiKey> = get_json(&self.txn().open_table(KEYS)?, key_sid)?;
        match key {
            Some(mut k) if k.account_sid == account_sid => {
                k.friendly_name = friendly_name.to_string();
                k.date_updated = self.now();
                self.txn()
                    .open_table(KEYS)?
                    .insert(key_sid, encode_json(&k).as_slice())?;
                Ok(k)
            }
            _ => Err(StoreError::NotFound(format!("Key {key_sid} was not found"))),
        }
    }

    /// Deletes an API key of `account_sid`.
    pub fn delete_api_key(&mut self, account_sid: &str, key_sid: &str) -> Result<()> {
        let key: Option<ApiKey> = get_json(&self.txn().open_table(KEYS)?, key_sid)?;
        match key {
            Some(k) if k.account_sid == account_sid => {
                self.txn().open_table(KEYS)?.remove(key_sid)?;
                self.txn()
                    .open_table(CHILDREN)?
                    .remove((account_sid, key_sid))?;
                Ok(())
            }
            _ => Err(StoreError::NotFound(format!("Key {key_sid} was not found"))),
        }
    }
}

impl Lookup {
    /// The subaccounts of `owner_sid`.
    pub fn subaccounts(&self, owner_sid: &str) -> Result<Vec<Account>> {
        self.children_of(owner_sid, "AC", ACCOUNTS)
    }

    /// An API key by SID.
    pub fn api_key(&self, sid: &str) -> Result<Option<ApiKey>> {
        get_json(&self.txn().open_table(KEYS)?, sid)
    }

    /// The API keys of `account_sid`.
    pub fn api_keys(&self, account_sid: &str) -> Result<Vec<ApiKey>> {
        self.children_of(account_sid, "SK", KEYS)
    }
}

/// Rebuilds the index of accounts that are not `active` from the accounts themselves.
pub(crate) fn rebuild_inactive(txn: &WriteTransaction) -> Result<()> {
    txn.delete_table(INACTIVE_ACCOUNTS)?;
    let mut inactive = txn.open_table(INACTIVE_ACCOUNTS)?;
    for item in txn.open_table(ACCOUNTS)?.iter()? {
        let (sid, v) = item?;
        let a: Account = decode_json(v.value())?;
        if a.status != "active" {
            inactive.insert(sid.value(), ())?;
        }
    }
    Ok(())
}
