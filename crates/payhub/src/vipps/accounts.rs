//! The account registry: create, change and remove merchant accounts with one set of rules for the admin API,
//! the CLI and the Setup page. Secrets are sealed here and never leave except through [`Accounts::credentials`].

use chrono::{NaiveDate, Utc};
use serde::Serialize;
use serde_json::json;

use crate::auth::{audit, Actor};
use crate::domain::account::{validate, AccountInput, AccountSettings};
use crate::domain::ids::new_id;
use crate::domain::FieldError;
use crate::error::{ServiceError, ServiceResult};
use crate::secrets::{MasterKey, Secret};
use crate::store::accounts::{self as account_store, AccountRecord};
use crate::store::{Store, StoreError};

/// What callers see of an account: every setting, and only *whether* each secret is set.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct AccountView {
    /// `acc_…`
    pub id: String,
    /// Unique name, the Payment API's `Target`.
    pub name: String,
    /// Merchant Serial Number.
    pub merchant_serial_number: String,
    /// Vipps `client_id`.
    pub client_key: String,
    /// Whether a client secret is stored (it is never shown).
    pub client_secret_set: bool,
    /// Whether a subscription key is stored (it is never shown).
    pub subscription_key_set: bool,
    /// A Vipps test sales unit.
    pub is_test: bool,
    /// Default agreement product name.
    pub product_name: Option<String>,
    /// Merchant Agreement Url.
    pub merchant_agreement_url: Option<String>,
    /// RetryDays for recurring charges.
    pub retry_days: i64,
    /// The default account.
    pub is_default: bool,
    /// Enable Reconciliation Incoming Payments.
    pub reconciliation_enabled: bool,
    /// Initial Ledger Date.
    pub initial_ledger_date: Option<NaiveDate>,
    /// Vipps API base URL override, when set.
    pub api_base_url: Option<String>,
    /// The Vipps host in use.
    pub vipps_base_url: String,
    /// Default values of the Vipps parameters.
    pub parameter_defaults: std::collections::BTreeMap<String, crate::domain::account::ParameterDefault>,
    /// Stop the Vipps agreement when a recurring payment is cancelled in payhub.
    pub cancel_agreement_on_cancel: bool,
    /// What a manual match does with an amount the chosen installments do not expect.
    pub remainder_handling: crate::domain::account::RemainderHandling,
    /// Creation time (RFC 3339).
    pub created_at: String,
    /// Last change (RFC 3339).
    pub updated_at: String,
}

impl From<&AccountRecord> for AccountView {
    fn from(r: &AccountRecord) -> Self {
        let s = &r.settings;
        AccountView {
            id: r.id.clone(),
            name: s.name.clone(),
            merchant_serial_number: s.merchant_serial_number.clone(),
            client_key: s.client_key.clone(),
            client_secret_set: !r.client_secret_sealed.is_empty(),
            subscription_key_set: !r.subscription_key_sealed.is_empty(),
            is_test: s.is_test,
            product_name: s.product_name.clone(),
            merchant_agreement_url: s.merchant_agreement_url.clone(),
            retry_days: s.retry_days,
            is_default: s.is_default,
            reconciliation_enabled: s.reconciliation_enabled,
            initial_ledger_date: s.initial_ledger_date,
            api_base_url: s.api_base_url.clone(),
            vipps_base_url: s.vipps_base_url().to_owned(),
            parameter_defaults: s.parameter_defaults.clone(),
            cancel_agreement_on_cancel: s.cancel_agreement_on_cancel,
            remainder_handling: s.remainder_handling,
            created_at: crate::store::timestamp(r.created_at),
            updated_at: crate::store::timestamp(r.updated_at),
        }
    }
}

/// An account's Vipps credentials, opened for a call to Vipps.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// Merchant Serial Number.
    pub merchant_serial_number: String,
    /// Vipps `client_id`.
    pub client_id: String,
    /// Vipps `client_secret`.
    pub client_secret: Secret,
    /// Vipps subscription key.
    pub subscription_key: Secret,
    /// The Vipps host.
    pub base_url: String,
}

/// The registry of merchant accounts.
#[derive(Clone, Debug)]
pub struct Accounts {
    store: Store,
    key: MasterKey,
    /// Resolves Targets for every request waiting at once (started on first use).
    resolver: std::sync::Arc<std::sync::OnceLock<Resolver>>,
}

type Resolver = crate::batcher::Batcher<Option<String>, Result<Option<AccountView>, String>>;

fn context(id: &str, field: &str) -> String {
    format!("account:{id}:{field}")
}

fn changed_fields(input: &AccountInput) -> Vec<&'static str> {
    let mut fields = Vec::new();
    macro_rules! mark {
        ($($f:ident),*) => { $( if input.$f.is_some() { fields.push(stringify!($f)); } )* };
    }
    mark!(
        name,
        merchant_serial_number,
        client_key,
        client_secret,
        subscription_key,
        is_test,
        product_name,
        merchant_agreement_url,
        retry_days,
        is_default,
        reconciliation_enabled,
        initial_ledger_date,
        api_base_url,
        parameter_defaults
    );
    fields
}

/// Queues the registration of the account's Vipps webhook, in the transaction that saves the account, so it
/// happens once the save is committed (and is retried if Vipps refuses for a while).
async fn register_webhook_soon(tx: &mut sqlx::AnyConnection, account_id: &str) -> ServiceResult<()> {
    let job = crate::jobs::NewJob::new(super::webhooks::REGISTER_JOB, json!({ "account": account_id })).max_attempts(5);
    crate::jobs::enqueue(tx, job).await?;
    Ok(())
}

fn name_taken(error: StoreError, name: &str) -> ServiceError {
    match error {
        StoreError::Conflict(_) => ServiceError::Conflict(vec![FieldError::invalid(
            "name",
            format!("An account named \"{name}\" already exists."),
        )]),
        other => other.into(),
    }
}

impl Accounts {
    /// A registry over `store`, sealing with `key`.
    pub fn new(store: Store, key: MasterKey) -> Self {
        Self { store, key, resolver: std::sync::Arc::default() }
    }

    /// Every account, the default first.
    pub async fn list(&self) -> ServiceResult<Vec<AccountView>> {
        let mut conn = self.store.pool().acquire().await?;
        Ok(account_store::list(&mut conn).await?.iter().map(AccountView::from).collect())
    }

    /// One account by id.
    pub async fn get(&self, id: &str) -> ServiceResult<AccountView> {
        Ok(AccountView::from(&self.record(id).await?))
    }

    async fn record(&self, id: &str) -> ServiceResult<AccountRecord> {
        let mut conn = self.store.pool().acquire().await?;
        account_store::get(&mut conn, id).await?.ok_or(ServiceError::NotFound("account"))
    }

    /// The account a Payment API `Target` names, or the default account when `target` is `None`.
    /// Requests that arrive together share the reads (one per distinct Target, on one connection).
    pub async fn resolve(&self, target: Option<&str>) -> ServiceResult<Option<AccountView>> {
        let resolver = self.resolver.get_or_init(|| {
            crate::batcher::reader(self.store.pool().clone(), |conn, target: &Option<String>| {
                Box::pin(async move {
                    let record = match target {
                        Some(name) => account_store::get_by_name(conn, name).await,
                        None => account_store::get_default(conn).await,
                    };
                    record.map(|r| r.as_ref().map(AccountView::from)).map_err(|e| e.to_string())
                })
            })
        });
        resolver
            .submit(target.map(str::to_owned))
            .await
            .unwrap_or_else(|| Err("the account resolver stopped".into()))
            .map_err(|e| ServiceError::Internal(anyhow::anyhow!(e)))
    }

    /// Opens an account's secrets for a call to Vipps.
    pub async fn credentials(&self, id: &str) -> ServiceResult<Credentials> {
        let record = self.record(id).await?;
        let open = |sealed: &str, field: &str| {
            self.key
                .open(sealed, &context(id, field))
                .map_err(|e| ServiceError::Internal(anyhow::anyhow!("account {id}: {field}: {e}")))
        };
        Ok(Credentials {
            merchant_serial_number: record.settings.merchant_serial_number.clone(),
            client_id: record.settings.client_key.clone(),
            client_secret: open(&record.client_secret_sealed, "client_secret")?,
            subscription_key: open(&record.subscription_key_sealed, "subscription_key")?,
            base_url: record.settings.vipps_base_url().to_owned(),
        })
    }

    /// Creates an account. The first account becomes the default; a new default takes the flag from the old one.
    pub async fn create(&self, input: &AccountInput, actor: &Actor) -> ServiceResult<AccountView> {
        let (mut settings, secrets) = validate(input, None).map_err(ServiceError::Invalid)?;
        let (Some(client_secret), Some(subscription_key)) = (secrets.client_secret, secrets.subscription_key) else {
            return Err(ServiceError::Internal(anyhow::anyhow!(
                "validation let a new account through without secrets"
            )));
        };
        let id = new_id("acc");
        let now = Utc::now();
        let mut tx = self.store.begin_write().await?;
        if account_store::count(&mut tx).await? == 0 {
            settings.is_default = true;
        }
        if settings.is_default {
            account_store::clear_default_except(&mut tx, &id).await?;
        }
        let record = AccountRecord {
            client_secret_sealed: self.key.seal(client_secret.expose(), &context(&id, "client_secret")),
            subscription_key_sealed: self.key.seal(subscription_key.expose(), &context(&id, "subscription_key")),
            id,
            settings,
            created_at: now,
            updated_at: now,
        };
        account_store::insert(&mut tx, &record).await.map_err(|e| name_taken(e, &record.settings.name))?;
        audit(
            &mut tx,
            actor,
            "account.create",
            "account",
            &record.id,
            json!({ "name": record.settings.name, "fields": changed_fields(input) }),
        )
        .await?;
        register_webhook_soon(&mut tx, &record.id).await?;
        tx.commit().await?;
        Ok(AccountView::from(&record))
    }

    /// Changes an account. Absent fields keep their value; a secret is replaced only when a new one is given.
    /// The default flag cannot be taken off the default account: another account must be made the default.
    pub async fn update(&self, id: &str, input: &AccountInput, actor: &Actor) -> ServiceResult<AccountView> {
        let mut tx = self.store.begin_write().await?;
        let mut record = account_store::get(&mut tx, id).await?.ok_or(ServiceError::NotFound("account"))?;
        let (settings, secrets) = validate(input, Some(&record.settings)).map_err(ServiceError::Invalid)?;
        if record.settings.is_default && !settings.is_default {
            return Err(ServiceError::Invalid(vec![FieldError::invalid(
                "is_default",
                "One account must be the default while any exist: make another account the default instead.",
            )]));
        }
        if settings.vipps_base_url() != record.settings.vipps_base_url() {
            // The stored secrets were given for the old host: sending them to another one must be asked for.
            let missing: Vec<FieldError> = [
                ("client_secret", secrets.client_secret.is_none()),
                ("subscription_key", secrets.subscription_key.is_none()),
            ]
            .into_iter()
            .filter(|(_, missing)| *missing)
            .map(|(field, _)| {
                FieldError::missing(field, "Enter it again: the account now talks to another Vipps host.")
            })
            .collect();
            if !missing.is_empty() {
                return Err(ServiceError::Invalid(missing));
            }
        }
        if settings.is_default && !record.settings.is_default {
            account_store::clear_default_except(&mut tx, id).await?;
        }
        if let Some(secret) = secrets.client_secret {
            record.client_secret_sealed = self.key.seal(secret.expose(), &context(id, "client_secret"));
        }
        if let Some(secret) = secrets.subscription_key {
            record.subscription_key_sealed = self.key.seal(secret.expose(), &context(id, "subscription_key"));
        }
        record.settings = settings;
        record.updated_at = Utc::now();
        account_store::update(&mut tx, &record).await.map_err(|e| name_taken(e, &record.settings.name))?;
        audit(
            &mut tx,
            actor,
            "account.update",
            "account",
            id,
            json!({ "name": record.settings.name, "fields": changed_fields(input) }),
        )
        .await?;
        register_webhook_soon(&mut tx, id).await?;
        tx.commit().await?;
        Ok(AccountView::from(&record))
    }

    /// Removes an account that has no payment records (an account with any is refused: see
    /// [`account_store::has_records`]). When it was the default, the oldest remaining account becomes the default.
    pub async fn delete(&self, id: &str, actor: &Actor) -> ServiceResult<()> {
        let mut tx = self.store.begin_write().await?;
        let record = account_store::get(&mut tx, id).await?.ok_or(ServiceError::NotFound("account"))?;
        if account_store::has_records(&mut tx, id).await? {
            return Err(ServiceError::Conflict(vec![FieldError::invalid(
                "id",
                "This account has payments or agreements: deleting it would leave them without the credentials \
                 that collect, capture and refund them. Change its settings instead.",
            )]));
        }
        account_store::delete(&mut tx, id).await?;
        let promoted = account_store::promote_oldest_to_default(&mut tx, Utc::now()).await?;
        audit(
            &mut tx,
            actor,
            "account.delete",
            "account",
            id,
            json!({ "name": record.settings.name, "new_default": promoted }),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Seals another secret that belongs to an account (a webhook secret) under the same master key.
    pub fn seal(&self, plain: &str, context: &str) -> String {
        self.key.seal(plain, context)
    }

    /// Opens a secret sealed with [`Accounts::seal`].
    pub fn open(&self, sealed: &str, context: &str) -> Result<Secret, crate::secrets::UnsealError> {
        self.key.open(sealed, context)
    }

    /// The stored settings (for forms that edit them).
    pub async fn settings(&self, id: &str) -> ServiceResult<AccountSettings> {
        Ok(self.record(id).await?.settings)
    }
}
