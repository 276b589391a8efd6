//! Giving Pages, the flows behind them: an admin manages pages (every change audited), a payer's gift becomes
//! an intent handed to the one intake ([`Payments::take_intent`]) with the page as its `Origin`, and the
//! thank-you page reads the gift's real status. Pages are read far more often than they change, so what the
//! edge renders is cached here per page and language and dropped on every change.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::{json, Value};
use url::Url;

use crate::auth::{audit, tokens::new_token, Actor};
use crate::domain::giving_page::{parse_settings, Giving, GivingPageSettings};
use crate::domain::ids::new_id;
use crate::domain::intent::{Intent, OneTimeIntent, PayerInput, VippsParameters};
use crate::domain::money::Money;
use crate::domain::phone::Phone;
use crate::domain::recurring::{RecurringIntent, RecurringTerms};
use crate::domain::FieldError;
use crate::error::{ServiceError, ServiceResult};
use crate::processing::intake::Taken;
use crate::processing::payer_return::Return;
use crate::processing::{IntentError, Payments};
use crate::store::giving_pages::{self as page_store, GivingPageRecord};
use crate::store::{Store, StoreError};

/// A rendered page split where each request's own CSRF token goes, so the cached part is the same for all.
pub type Rendered = Arc<(String, String)>;

/// The Giving Pages service. Cheap to clone.
#[derive(Clone)]
pub struct GivingPages {
    store: Store,
    payments: Payments,
    rendered: Arc<RwLock<HashMap<(String, &'static str), Rendered>>>,
    limiter: Arc<Mutex<HashMap<String, (Instant, u32)>>>,
    per_minute: u32,
}

/// A payer's checked gift, ready for the intake.
#[derive(Debug, Clone)]
pub struct Gift {
    /// The amount, within the page's limits for the frequency.
    pub amount: Money,
    /// Once or on a schedule; one of the page's frequencies.
    pub giving: Giving,
    /// First name.
    pub first_name: Option<String>,
    /// Last name.
    pub last_name: Option<String>,
    /// Email.
    pub email: Option<String>,
    /// The phone number the payer typed (or the query pre-filled and the payer kept).
    pub phone: Option<Phone>,
    /// Campaign (from the query, checked), else the page's.
    pub campaign: Option<String>,
    /// Origin (from the query, checked), else the page's.
    pub origin: Option<String>,
}

/// Where a gift stands, as the thank-you page tells the payer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GiftStatus {
    /// Paid (one-time) or the agreement approved (recurring).
    Done,
    /// Vipps has not decided yet.
    Confirming,
    /// Rejected, expired or refused.
    Failed,
}

impl GivingPages {
    /// The service over the store and the payment flows; `per_minute` submissions per client address.
    pub fn new(store: Store, payments: Payments, per_minute: u32) -> Self {
        Self { store, payments, rendered: Arc::default(), limiter: Arc::default(), per_minute: per_minute.max(1) }
    }

    /// Every page, by slug.
    pub async fn list(&self) -> ServiceResult<Vec<GivingPageRecord>> {
        let mut conn = self.store.pool().acquire().await?;
        Ok(page_store::list(&mut conn).await?)
    }

    /// One page by id.
    pub async fn get(&self, id: &str) -> ServiceResult<GivingPageRecord> {
        let mut conn = self.store.pool().acquire().await?;
        page_store::get(&mut conn, id).await?.ok_or(ServiceError::NotFound("giving page"))
    }

    /// One page by slug (active or not).
    pub async fn by_slug(&self, slug: &str) -> ServiceResult<Option<GivingPageRecord>> {
        let mut conn = self.store.pool().acquire().await?;
        Ok(page_store::by_slug(&mut conn, slug).await?)
    }

    /// The newest gifts of every page, with their status now.
    pub async fn recent_gifts(&self, limit: i64) -> ServiceResult<Vec<page_store::GiftRow>> {
        let mut conn = self.store.pool().acquire().await?;
        Ok(page_store::recent_gifts(&mut conn, limit).await?)
    }

    /// How many gifts a page handed to the intake.
    pub async fn gift_count(&self, id: &str) -> ServiceResult<i64> {
        let mut conn = self.store.pool().acquire().await?;
        Ok(page_store::donation_count(&mut conn, id).await?)
    }

    async fn check_account(&self, settings: &GivingPageSettings) -> ServiceResult<()> {
        if let Some(name) = &settings.account {
            if self.payments.accounts.resolve(Some(name)).await?.is_none() {
                return Err(ServiceError::Invalid(vec![FieldError::invalid(
                    "account",
                    format!("No merchant account named {name}"),
                )]));
            }
        }
        Ok(())
    }

    /// Creates a page from the admin API's JSON.
    pub async fn create(&self, body: &Value, actor: &Actor) -> ServiceResult<GivingPageRecord> {
        let settings = parse_settings(body).map_err(ServiceError::Invalid)?;
        self.check_account(&settings).await?;
        let now = Utc::now();
        let record = GivingPageRecord { id: new_id("gp"), settings, created_at: now, updated_at: now };
        let mut tx = self.store.begin_write().await?;
        page_store::insert(&mut tx, &record).await.map_err(|e| slug_taken(e, &record.settings.slug))?;
        audit(&mut tx, actor, "giving_page.create", "giving_page", &record.id, json!({ "slug": record.settings.slug }))
            .await?;
        tx.commit().await?;
        self.forget_rendered();
        Ok(record)
    }

    /// Changes a page: the fields given replace the stored ones, and the result is checked whole.
    pub async fn update(&self, id: &str, changes: &Value, actor: &Actor) -> ServiceResult<GivingPageRecord> {
        let Some(changes) = changes.as_object() else {
            return Err(ServiceError::Invalid(vec![FieldError::invalid("body", "The body must be a JSON object")]));
        };
        let mut record = self.get(id).await?;
        let mut merged = record.settings.to_json();
        if let Some(map) = merged.as_object_mut() {
            for (key, value) in changes {
                map.insert(key.clone(), value.clone());
            }
        }
        let settings = parse_settings(&merged).map_err(ServiceError::Invalid)?;
        self.check_account(&settings).await?;
        let now = Utc::now();
        let mut tx = self.store.begin_write().await?;
        page_store::update(&mut tx, id, &settings, now).await.map_err(|e| slug_taken(e, &settings.slug))?;
        let fields: Vec<&String> = changes.keys().collect();
        audit(
            &mut tx,
            actor,
            "giving_page.update",
            "giving_page",
            id,
            json!({ "slug": settings.slug, "fields": fields }),
        )
        .await?;
        tx.commit().await?;
        self.forget_rendered();
        record.settings = settings;
        record.updated_at = now;
        Ok(record)
    }

    /// Deletes a page that never took a gift; one that did can only be deactivated (its gifts point at it).
    pub async fn delete(&self, id: &str, actor: &Actor) -> ServiceResult<()> {
        let record = self.get(id).await?;
        let mut tx = self.store.begin_write().await?;
        if !page_store::delete_unused(&mut tx, id).await? {
            return Err(ServiceError::Conflict(vec![FieldError::invalid(
                "id",
                "This page has taken gifts, so it is kept: set active to false instead",
            )]));
        }
        audit(&mut tx, actor, "giving_page.delete", "giving_page", id, json!({ "slug": record.settings.slug })).await?;
        tx.commit().await?;
        self.forget_rendered();
        Ok(())
    }

    /// A page rendered earlier for this slug and language.
    pub fn rendered(&self, slug: &str, lang: &'static str) -> Option<Rendered> {
        let cache = self.rendered.read().unwrap_or_else(|p| p.into_inner());
        cache.get(&(slug.to_owned(), lang)).cloned()
    }

    /// Keeps a rendered page until the next change of any page. Unknown slugs are never kept, so the cache
    /// holds at most two entries per page.
    pub fn keep_rendered(&self, slug: &str, lang: &'static str, rendered: Rendered) {
        let mut cache = self.rendered.write().unwrap_or_else(|p| p.into_inner());
        cache.insert((slug.to_owned(), lang), rendered);
    }

    fn forget_rendered(&self) {
        self.rendered.write().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// Whether a client address may submit again now (a fixed one-minute window per address).
    pub fn allow_submission(&self, address: &str) -> bool {
        let mut map = self.limiter.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if map.len() > 100_000 {
            map.retain(|_, (start, _)| now.duration_since(*start) < Duration::from_secs(60));
        }
        let entry = map.entry(address.to_owned()).or_insert((now, 0));
        if now.duration_since(entry.0) >= Duration::from_secs(60) {
            *entry = (now, 0);
        }
        entry.1 += 1;
        entry.1 <= self.per_minute
    }

    /// Hands a checked gift to the intake. `raw` is the form as the page received it (the Message). Returns the
    /// thank-you token and what the intake made of it; the gift is recorded even when Vipps then refuses it.
    /// `lang` is the page's language, kept in the thank-you page's address across the trip to Vipps.
    pub async fn give(
        &self,
        page: &GivingPageRecord,
        gift: &Gift,
        raw: &str,
        lang: &str,
    ) -> Result<(String, Taken), IntentError> {
        let settings = &page.settings;
        let token = new_token("gift");
        let public = self.payments.public_url.as_str().trim_end_matches('/').to_owned();
        let thanks = Url::parse(&format!("{public}/give/{}/thanks/{token}?lang={lang}", settings.slug))
            .map_err(|e| IntentError::Internal(e.into()))?;
        let (success_url, failure_url) = match (&settings.success_url, &settings.failure_url) {
            (Some(s), Some(f)) => (
                Url::parse(s).map_err(|e| IntentError::Internal(e.into()))?,
                Url::parse(f).map_err(|e| IntentError::Internal(e.into()))?,
            ),
            _ => (thanks.clone(), thanks),
        };
        let mut fields = std::collections::BTreeMap::new();
        for (key, value) in [("FirstName", &gift.first_name), ("LastName", &gift.last_name), ("Email", &gift.email)] {
            if let Some(value) = value {
                fields.insert(format!("Contact.{key}"), Value::String(value.clone()));
            }
        }
        if let Some(phone) = &gift.phone {
            fields.insert("Contact.MobilePhone".into(), Value::String(phone.as_str().to_owned()));
        }
        let base = OneTimeIntent {
            success_url,
            failure_url,
            webhook_url: None,
            origin: gift
                .origin
                .clone()
                .or_else(|| settings.origin.clone())
                .or_else(|| Some(format!("give/{}", settings.slug))),
            campaign_id: gift.campaign.clone().or_else(|| settings.campaign.clone()),
            amount: gift.amount,
            payer: PayerInput {
                first_name: gift.first_name.clone(),
                last_name: gift.last_name.clone(),
                email: gift.email.clone(),
                phone: gift.phone.clone(),
                fields,
            },
            target: settings.account.clone(),
            parameters: VippsParameters {
                mobile_number: gift.phone.clone(),
                transaction_text: settings.parameters.transaction_text.clone(),
                description: settings.parameters.description.clone(),
                product_name: settings.parameters.product_name.clone(),
                merchant_agreement_url: settings.parameters.merchant_agreement_url.clone(),
            },
        };
        let intent = match gift.giving {
            Giving::OneTime => Intent::OneTime(base),
            Giving::Recurring(frequency) => Intent::Recurring(RecurringIntent {
                base,
                terms: RecurringTerms {
                    amount: gift.amount,
                    frequency,
                    start_date: self.payments.today(),
                    end_date: None,
                    collection_day: None,
                },
                initial: None,
            }),
        };
        let taken = match self.payments.take_intent(&intent, raw).await {
            Ok(taken) => taken,
            Err(IntentError::Provider { intent_id, message }) => {
                self.remember(&token, &page.id, &intent_id).await?;
                return Err(IntentError::Provider { intent_id, message });
            }
            Err(other) => return Err(other),
        };
        self.remember(&token, &page.id, taken.intent_id()).await?;
        Ok((token, taken))
    }

    async fn remember(&self, token: &str, page_id: &str, intent_id: &str) -> Result<(), IntentError> {
        let mut tx = self.store.begin_write().await?;
        page_store::insert_donation(&mut tx, token, page_id, intent_id, Utc::now()).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The page and the real status of the gift behind a thank-you token, read from Vipps now (so the page is
    /// right even when no webhook came). `None`: no such token.
    pub async fn gift_status(&self, token: &str) -> ServiceResult<Option<(GivingPageRecord, GiftStatus, bool)>> {
        let found = {
            let mut conn = self.store.pool().acquire().await?;
            page_store::donation(&mut conn, token).await?
        };
        let Some((page_id, intent_id)) = found else { return Ok(None) };
        let page = self.get(&page_id).await?;
        let recurring = {
            let mut conn = self.store.pool().acquire().await?;
            crate::store::intents::recurring_of_intent(&mut conn, &intent_id).await?.is_some()
        };
        let status = match self.payments.payer_returned(&intent_id).await? {
            Some(Return::Success(_)) => GiftStatus::Done,
            Some(Return::Failure(_)) => GiftStatus::Failed,
            Some(Return::Checking) | None => GiftStatus::Confirming,
        };
        Ok(Some((page, status, recurring)))
    }
}

fn slug_taken(error: StoreError, slug: &str) -> ServiceError {
    match error {
        StoreError::Conflict(_) => {
            ServiceError::Conflict(vec![FieldError::invalid("slug", format!("A page with slug {slug} exists"))])
        }
        other => other.into(),
    }
}
