//! The manager: one loop that reads the names, loads stored certificates, starts due orders
//! (at most [`MAX_CONCURRENT`]), and stores, installs or retries their outcomes.

use super::order::Order;
use super::{
    ACCOUNT_TIMEOUT, AcmeConfig, MAX_CONCURRENT, Name, Names, ORDER_TIMEOUT, POLL, Shared, State,
    backoff, chain, is_dns_name, now, pem_validity, renewal_due, write_private,
};
use crate::http::server::Tls;
use instant_acme::{Account, AccountCredentials, NewAccount};
use std::collections::HashMap;
use std::fs;
use std::path::PathBuf;
use std::sync::Arc;

pub(super) struct Manager {
    pub(super) shared: Arc<Shared>,
    pub(super) config: AcmeConfig,
    pub(super) dir: PathBuf,
    pub(super) tls: Tls,
    pub(super) names: Names,
    pub(super) account: Option<Arc<Account>>,
    /// Failed account set-ups in a row (for the back-off).
    pub(super) account_failures: u32,
}

/// What one order task returns: the name, and its chain and key (PEM) or an error.
type Outcome = (String, Result<(String, String), String>);

impl Manager {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) async fn run(mut self) {
        let mut tasks = tokio::task::JoinSet::<Outcome>::new();
        let mut running = HashMap::new();
        loop {
            self.refresh_names();
            self.start_due(&mut tasks, &mut running).await;
            tokio::select! {
                Some(done) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                    let outcome = match done {
                        Ok((id, outcome)) => {
                            running.remove(&id);
                            outcome
                        }
                        Err(e) => {
                            let name = running.remove(&e.id()).unwrap_or_default();
                            (name, Err(format!("the order task failed: {e}")))
                        }
                    };
                    self.finish(outcome);
                }
                _ = tokio::time::sleep(POLL) => {}
            }
        }
    }

    /// Reads the names; a new one gets its stored certificate, if any, else is due now.
    pub(super) fn refresh_names(&mut self) {
        let wanted = match (self.names)() {
            Ok(w) => w,
            Err(e) => {
                eprintln!("assetd: ACME: cannot read the environment domains: {e}");
                return;
            }
        };
        let wanted: Vec<String> = wanted
            .into_iter()
            .map(|n| n.to_ascii_lowercase())
            .filter(|n| is_dns_name(n))
            .collect();
        let known: Vec<String> = self.state().names.keys().cloned().collect();
        for gone in known.iter().filter(|k| !wanted.contains(k)) {
            let mut state = self.state();
            if state.names.get(gone).is_some_and(|n| !n.busy) {
                state.names.remove(gone);
                self.tls.uninstall(gone);
            }
        }
        for name in wanted {
            if self.state().names.contains_key(&name) {
                continue;
            }
            let entry = self.load(&name);
            self.state().names.insert(name, entry);
        }
    }

    /// The stored certificate of `name`, installed; or a name due now.
    fn load(&self, name: &str) -> Name {
        let (crt, key) = (
            self.dir.join(format!("{name}.crt")),
            self.dir.join(format!("{name}.key")),
        );
        let (Ok(chain), Ok(key_pem)) = (fs::read(&crt), fs::read(&key)) else {
            return Name::default();
        };
        let times = pem_validity(&chain);
        match (times, self.tls.install(name, &chain, &key_pem)) {
            (Some((from, until)), Ok(())) => Name {
                not_after: Some(until),
                due: renewal_due(from, until, self.config.renew_before.as_secs()),
                ..Name::default()
            },
            (_, Err(e)) => {
                eprintln!(
                    "assetd: ACME: ignoring {} ({e}); ordering a new one",
                    crt.display()
                );
                Name::default()
            }
            (None, Ok(())) => {
                self.tls.uninstall(name);
                eprintln!(
                    "assetd: ACME: ignoring {} (no validity); ordering a new one",
                    crt.display()
                );
                Name::default()
            }
        }
    }

    /// Starts orders for due names, up to [`MAX_CONCURRENT`] in flight.
    async fn start_due(
        &mut self,
        tasks: &mut tokio::task::JoinSet<Outcome>,
        running: &mut HashMap<tokio::task::Id, String>,
    ) {
        let t = now();
        let due: Vec<String> = {
            let state = self.state();
            state
                .names
                .iter()
                .filter(|(_, n)| !n.busy && n.due <= t && n.error.as_ref().is_none_or(|e| e.1 <= t))
                .map(|(k, _)| k.clone())
                .take(MAX_CONCURRENT.saturating_sub(tasks.len()))
                .collect()
        };
        if due.is_empty() {
            return;
        }
        let Some(account) = self.account().await else {
            return;
        };
        for name in due {
            if let Some(n) = self.state().names.get_mut(&name) {
                n.busy = true;
            }
            let what = if self.tls.has(&name) {
                "renewing"
            } else {
                "requesting"
            };
            eprintln!(
                "assetd: ACME: {what} a certificate for {name} ({})",
                self.config.challenge
            );
            let order = Order {
                account: account.clone(),
                tls: self.tls.clone(),
                shared: self.shared.clone(),
                challenge: self.config.challenge,
                name: name.clone(),
            };
            let task = tasks.spawn(async move {
                let result = match tokio::time::timeout(ORDER_TIMEOUT, order.run()).await {
                    Ok(r) => r,
                    Err(_) => Err(format!(
                        "no certificate within {} s",
                        ORDER_TIMEOUT.as_secs()
                    )),
                };
                (order.name, result)
            });
            running.insert(task.id(), name);
        }
    }

    /// The account: loaded from `account.json` or registered; `None` while it fails (the
    /// error is recorded and retried with back-off).
    async fn account(&mut self) -> Option<Arc<Account>> {
        if let Some(a) = &self.account {
            return Some(a.clone());
        }
        if self.state().account.as_ref().is_some_and(|e| e.1 > now()) {
            return None;
        }
        let result = match tokio::time::timeout(ACCOUNT_TIMEOUT, self.open_account()).await {
            Ok(r) => r,
            Err(_) => Err(format!(
                "{}: no answer within {} s",
                self.config.directory,
                ACCOUNT_TIMEOUT.as_secs()
            )),
        };
        match result {
            Ok(account) => {
                self.state().account = None;
                self.account_failures = 0;
                let account = Arc::new(account);
                self.account = Some(account.clone());
                Some(account)
            }
            Err(e) => {
                self.account_failures += 1;
                let wait = backoff(self.account_failures);
                let mut state = self.state();
                eprintln!(
                    "assetd: ACME: account with {} failed, retrying in {}: {e}",
                    self.config.directory,
                    crate::model::time::human_duration(wait)
                );
                state.account = Some((e, now() + wait));
                None
            }
        }
    }

    async fn open_account(&self) -> Result<Account, String> {
        let fetcher = crate::client::Fetcher::new(self.config.ca_cert.as_deref())
            .map_err(|e| e.to_string())?;
        let builder = || {
            Ok::<_, instant_acme::Error>(Account::builder_with_http(Box::new(
                super::transport::Transport(fetcher.clone()),
            )))
        };
        let path = self.dir.join("account.json");
        let e = |e: instant_acme::Error| {
            let why = chain(&e);
            match why.contains(&self.config.directory) {
                true => why,
                false => format!("{}: {why}", self.config.directory),
            }
        };
        if let Ok(bytes) = fs::read(&path) {
            let credentials: AccountCredentials = serde_json::from_slice(&bytes)
                .map_err(|err| format!("{}: unreadable ({err})", path.display()))?;
            return builder()
                .map_err(e)?
                .from_credentials(credentials)
                .await
                .map_err(e);
        }
        let contact = format!("mailto:{}", self.config.email);
        let (account, credentials) = builder()
            .map_err(e)?
            .create(
                &NewAccount {
                    contact: &[&contact],
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                },
                self.config.directory.clone(),
                None,
            )
            .await
            .map_err(e)?;
        let json = serde_json::to_vec(&credentials).map_err(|err| err.to_string())?;
        write_private(&path, &json)?;
        eprintln!(
            "assetd: ACME: registered account {} with {} ({contact}), key in {}",
            account.id(),
            self.config.directory,
            path.display()
        );
        Ok(account)
    }

    /// Stores and installs a new certificate, or records the failure.
    fn finish(&mut self, (name, result): Outcome) {
        let t = now();
        let stored = result.and_then(|(chain, key)| {
            let (from, until) = pem_validity(chain.as_bytes())
                .ok_or("the CA sent a certificate without a readable validity")?;
            self.tls.install(&name, chain.as_bytes(), key.as_bytes())?;
            write_private(&self.dir.join(format!("{name}.key")), key.as_bytes())?;
            write_private(&self.dir.join(format!("{name}.crt")), chain.as_bytes())?;
            Ok((from, until))
        });
        let renew_before = self.config.renew_before.as_secs();
        let mut state = self.state();
        let Some(n) = state.names.get_mut(&name) else {
            return;
        };
        n.busy = false;
        match stored {
            Ok((from, until)) => {
                n.not_after = Some(until);
                n.due = renewal_due(from, until, renew_before);
                n.failures = 0;
                n.error = None;
                eprintln!(
                    "assetd: ACME: certificate for {name} installed, valid until {}",
                    crate::model::time::iso8601(until)
                );
            }
            Err(e) => {
                n.failures += 1;
                let wait = backoff(n.failures);
                eprintln!(
                    "assetd: ACME: no certificate for {name}, retrying in {}: {e}",
                    crate::model::time::human_duration(wait)
                );
                n.error = Some((e, t + wait));
            }
        }
    }
}
