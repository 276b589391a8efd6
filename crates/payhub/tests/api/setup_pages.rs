//! The Setup pages as an admin uses them in a browser: sign in, add accounts, see errors beside fields, edit,
//! delete with confirmation; and the first-run link.

use payhub::domain::role::Role;
use reqwest::StatusCode;

use crate::helpers::{hidden_value, Browser};
use crate::on_both_backends;

fn account_form<'a>(csrf: &'a str, name: &'a str, msn: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("csrf_token", csrf),
        ("name", name),
        ("merchant_serial_number", msn),
        ("client_key", "fb492b5e-7907-4d83-ba20-c7fb60ca35de"),
        ("client_secret", "form-client-secret-abcdef"),
        ("subscription_key", "form-subscription-key-abcdef"),
        ("product_name", "Monthly gift"),
        ("merchant_agreement_url", "https://example.org/agreement"),
        ("retry_days", "5"),
    ]
}

/// The error text shown in the field block of `field`.
fn error_beside(page: &str, field: &str) -> Option<String> {
    let start = page.find(&format!("id=\"{field}\""))?;
    let block = &page[start..];
    let end = block.find("class=\"field").unwrap_or(block.len());
    let block = &block[..end];
    let error = block.find("class=\"error\"")?;
    let text_start = block[error..].find('>')? + error + 1;
    let text_end = block[text_start..].find('<')? + text_start;
    Some(block[text_start..text_end].to_owned())
}

on_both_backends! {
    async fn an_admin_adds_two_accounts_marks_one_default_edits_and_deletes_them(app) {
        let admin = app.browser(Role::Admin).await;
        let (status, setup) = admin.get("/setup").await;
        assert_eq!(status, StatusCode::OK);
        assert!(setup.contains("href=\"/setup/vipps\"") && setup.contains("<strong>Vipps</strong>"), "the Vipps tile");
        let (_, list) = admin.get("/setup/vipps").await;
        assert!(list.contains("No accounts yet") && list.contains("Add Account"));
        let (status, form) = admin.get("/setup/vipps/new").await;
        assert_eq!(status, StatusCode::OK);
        let csrf = hidden_value(&form, "csrf_token").unwrap();
        for field in ["name", "merchant_serial_number", "client_key", "client_secret", "subscription_key", "is_test", "product_name",
                      "merchant_agreement_url", "retry_days", "is_default", "reconciliation_enabled", "initial_ledger_date"] {
            assert!(form.contains(&format!("name=\"{field}\"")), "the form has {field}");
        }

        let (status, _, location) = admin.post("/setup/vipps", &account_form(&csrf, "Innsamling", "223344")).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        // The credentials are tested on Save; Vipps' test host cannot be reached from the tests.
        assert_eq!(location.as_deref(), Some("/setup/vipps?done=created&check=unreachable"));
        let mut second = account_form(&csrf, "Medlemskap", "556677");
        second.push(("is_default", "on"));
        second.push(("is_test", "on"));
        assert_eq!(admin.post("/setup/vipps", &second).await.0, StatusCode::SEE_OTHER);

        let accounts = app.state.accounts.list().await.unwrap();
        assert_eq!(accounts.len(), 2);
        assert_eq!(accounts[0].name, "Medlemskap");
        assert!(accounts[0].is_default && accounts[0].is_test && !accounts[1].is_default);
        assert_eq!(accounts[1].retry_days, 5);
        let (_, list) = admin.get("/setup/vipps?done=created").await;
        assert!(list.contains("Account saved.") && list.contains("Innsamling") && list.contains("Medlemskap"));
        assert!(!list.contains("form-client-secret"), "secrets are never shown");

        // Edit: the secret fields come back empty, and a blank secret keeps the stored one.
        let id = accounts[1].id.clone();
        let (_, edit) = admin.get(&format!("/setup/vipps/{id}")).await;
        assert!(edit.contains("value=\"Innsamling\"") && !edit.contains("form-client-secret"));
        let mut changed = account_form(&csrf, "Innsamling 2026", "223344");
        changed.retain(|(k, _)| *k != "client_secret" && *k != "subscription_key");
        changed.push(("client_secret", ""));
        assert_eq!(admin.post(&format!("/setup/vipps/{id}"), &changed).await.0, StatusCode::SEE_OTHER);
        let settings = app.state.accounts.get(&id).await.unwrap();
        assert_eq!(settings.name, "Innsamling 2026");
        assert_eq!(app.state.accounts.credentials(&id).await.unwrap().client_secret.expose(), "form-client-secret-abcdef");

        // Delete asks first, then deletes.
        let (status, confirm) = admin.get(&format!("/setup/vipps/{id}/delete")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(confirm.contains("cannot be undone"));
        assert_eq!(app.state.accounts.list().await.unwrap().len(), 2, "asking changes nothing");
        let (status, _, location) = admin.post(&format!("/setup/vipps/{id}/delete"), &[("csrf_token", &csrf)]).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert_eq!(location.as_deref(), Some("/setup/vipps?done=deleted"));
        assert_eq!(app.state.accounts.list().await.unwrap().len(), 1);
    }

    async fn errors_are_shown_beside_their_fields_and_nothing_is_saved(app) {
        let admin = app.browser(Role::Admin).await;
        let csrf = admin.csrf().await;
        let mut form = account_form(&csrf, "Innsamling", "12x");
        form.retain(|(k, _)| *k != "retry_days" && *k != "merchant_agreement_url");
        form.push(("retry_days", "20"));
        form.push(("merchant_agreement_url", "http://example.org/a"));
        form.push(("reconciliation_enabled", "on"));
        let (status, page, _) = admin.post("/setup/vipps", &form).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(error_beside(&page, "merchant_serial_number").as_deref(), Some("Merchant Serial Number must be 4 to 10 digits."));
        assert_eq!(error_beside(&page, "retry_days").as_deref(), Some("RetryDays must be between 0 and 14."));
        assert!(error_beside(&page, "merchant_agreement_url").unwrap().contains("https"));
        assert!(error_beside(&page, "initial_ledger_date").unwrap().contains("required"));
        assert_eq!(error_beside(&page, "name"), None);
        assert!(page.contains("value=\"Innsamling\""), "what was typed is kept");
        let mut words = account_form(&csrf, "Innsamling", "123456");
        words.retain(|(k, _)| *k != "retry_days");
        words.push(("retry_days", "three"));
        let (status, page, _) = admin.post("/setup/vipps", &words).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(error_beside(&page, "retry_days").unwrap().contains("whole number"));

        // A duplicate name is reported beside the name.
        assert_eq!(admin.post("/setup/vipps", &account_form(&csrf, "Innsamling", "123456")).await.0, StatusCode::SEE_OTHER);
        let (status, page, _) = admin.post("/setup/vipps", &account_form(&csrf, "innsamling", "123456")).await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert!(error_beside(&page, "name").unwrap().contains("already exists"));
        assert_eq!(app.state.accounts.list().await.unwrap().len(), 1);
    }

    async fn a_form_without_the_right_csrf_token_changes_nothing(app) {
        let admin = app.browser(Role::Admin).await;
        let mut form = account_form("wrong-token", "Innsamling", "123456");
        let (status, page, _) = admin.post("/setup/vipps", &form).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(page.contains("expired"));
        form.remove(0);
        assert_eq!(admin.post("/setup/vipps", &form).await.0, StatusCode::BAD_REQUEST);
        // A token from another session does not work either.
        let other = app.browser(Role::Admin).await.csrf().await;
        assert_eq!(admin.post("/setup/vipps", &account_form(&other, "Innsamling", "123456")).await.0, StatusCode::BAD_REQUEST);
        assert!(app.state.accounts.list().await.unwrap().is_empty());
    }

    async fn sign_in_refuses_wrong_passwords_and_sign_out_ends_the_session(app) {
        payhub::auth::create_user(&app.state.store, "ops@example.org", "right password 1", Role::Finance, &payhub::auth::Actor::cli()).await.unwrap();
        let browser = Browser::new(&app);
        assert_eq!(browser.sign_in("ops@example.org", "wrong password 1").await, StatusCode::UNAUTHORIZED);
        assert_eq!(browser.sign_in("nobody@example.org", "right password 1").await, StatusCode::UNAUTHORIZED);
        let (status, _, location) = browser.post("/login", &[("email", "ops@example.org"), ("password", "right password 1"), ("form_token", "forged")]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{location:?}");
        assert_eq!(browser.sign_in("ops@example.org", "right password 1").await, StatusCode::SEE_OTHER);
        let (status, dashboard) = browser.get("/").await;
        assert_eq!(status, StatusCode::OK);
        assert!(dashboard.contains("Dashboard") && !dashboard.contains("href=\"/setup\""), "finance sees no Setup link");
        let csrf = browser.csrf().await;
        assert_eq!(browser.post("/logout", &[("csrf_token", &csrf)]).await.0, StatusCode::SEE_OTHER);
        let (status, _) = browser.get("/").await;
        assert_eq!(status, StatusCode::SEE_OTHER);
    }

    async fn the_first_run_link_creates_one_admin_once(app) {
        let token = payhub::auth::create_setup_link(&app.state.store).await.unwrap();
        let browser = Browser::new(&app);
        let (status, page) = browser.get(&format!("/first-run?token={token}")).await;
        assert_eq!(status, StatusCode::OK);
        let form_token = hidden_value(&page, "form_token").unwrap();
        let (status, page, _) = browser.post("/first-run", &[("token", &token), ("email", "me@example.org"), ("password", "short"), ("form_token", &form_token)]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(page.contains("at least 10"));
        let (_, page) = browser.get(&format!("/first-run?token={token}")).await;
        let form_token = hidden_value(&page, "form_token").unwrap();
        let (status, _, location) = browser.post("/first-run", &[("token", &token), ("email", "me@example.org"), ("password", "long enough password"), ("form_token", &form_token)]).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert_eq!(location.as_deref(), Some("/setup"));
        assert_eq!(browser.get("/setup").await.0, StatusCode::OK, "signed in as the new admin");
        let (status, _) = Browser::new(&app).get(&format!("/first-run?token={token}")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "the link works once");
    }

    async fn a_new_first_run_link_ends_the_one_printed_before(app) {
        let first = payhub::auth::create_setup_link(&app.state.store).await.unwrap();
        let second = payhub::auth::create_setup_link(&app.state.store).await.unwrap();
        assert!(!payhub::auth::setup_link_is_live(&app.state.store, &first).await.unwrap(), "an earlier start's link is over");
        assert!(payhub::auth::setup_link_is_live(&app.state.store, &second).await.unwrap());
        let (status, _) = Browser::new(&app).get(&format!("/first-run?token={first}")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    async fn the_dashboard_shows_admins_each_beats_last_run(app) {
        app.state.jobs.heartbeat.run_now("recurring.collect").await.unwrap();
        app.state.jobs.run_until_idle().await.unwrap();
        let admin = app.browser(Role::Admin).await;
        let (status, page) = admin.get("/").await;
        assert_eq!(status, StatusCode::OK);
        assert!(page.contains("Heartbeat") && page.contains("recurring.generate_installments"), "{page}");
        let row = page.split("<td>recurring.collect</td>").nth(1).unwrap_or_default();
        assert!(row.split("</tr>").next().unwrap_or_default().contains("succeeded"), "{row}");
        let finance = app.browser(Role::Finance).await;
        let (_, page) = finance.get("/").await;
        assert!(!page.contains("Heartbeat"), "only admins see the heartbeat");
    }
}
