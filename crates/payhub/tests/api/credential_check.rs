//! Are an account's credentials good? `payhub check` asks Vipps' token endpoint for every account, and the Setup
//! page asks it on Save; both against the simulator, which refuses credentials it did not issue.

use payhub::domain::role::Role;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::cli::{payhub_of, run_beside};
use crate::helpers::{account_body, with, TestApp};
use crate::on_both_backends;

/// The line `payhub check` printed for the account `name`.
fn line_of<'a>(out: &'a str, name: &str) -> &'a str {
    out.lines().find(|l| l.starts_with(&format!("account {name} ("))).unwrap_or_else(|| panic!("{name} in {out}"))
}

async fn add_account(app: &TestApp, name: &str, msn: &str, base_url: &str) -> String {
    let body = with(account_body(name), json!({"merchant_serial_number": msn, "api_base_url": base_url}));
    app.create_account(body).await["id"].as_str().unwrap().to_owned()
}

/// The dashboard's line about the account `name`'s connection to Vipps.
fn connection_of(page: &str, name: &str) -> String {
    let start = page.find(&format!("data-account=\"{name}\"")).unwrap_or_else(|| panic!("{name} on the dashboard"));
    let rest = &page[start..];
    rest[..rest.find("</p>").unwrap_or(rest.len())].to_owned()
}

on_both_backends! {
    async fn the_dashboard_asks_vipps_whether_each_account_connects(app) {
        let vipps = app.with_vipps().await;
        let msn = vipps.sim.merchants()[0].msn.clone();
        add_account(&app, "MadeUp", &msn, &vipps.sim.base_url()).await;
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let nowhere = format!("http://{}", closed.local_addr().unwrap());
        drop(closed);
        add_account(&app, "Nowhere", "778899", &nowhere).await;
        for role in [Role::Admin, Role::Finance] {
            let (status, page) = app.browser(role).await.get("/").await;
            assert_eq!(status, StatusCode::OK);
            assert!(connection_of(&page, "Sandbox").contains("credentials ok"), "{}", connection_of(&page, "Sandbox"));
            assert!(connection_of(&page, "MadeUp").contains("refused"), "{}", connection_of(&page, "MadeUp"));
            assert!(connection_of(&page, "Nowhere").contains("unreachable"), "{}", connection_of(&page, "Nowhere"));
            assert!(!page.contains("subkey-") && !page.contains("client-secret-"), "no secret on the page");
        }
    }

    async fn check_reports_each_account_as_ok_refused_or_unreachable(app) {
        let vipps = app.with_vipps().await;
        let msn = vipps.sim.merchants()[0].msn.clone();
        // The simulator's merchant with credentials it never issued, and a host where nothing listens.
        let made_up = add_account(&app, "MadeUp", &msn, &vipps.sim.base_url()).await;
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let nowhere = format!("http://{}", closed.local_addr().unwrap());
        drop(closed);
        let gone = add_account(&app, "Nowhere", "778899", &nowhere).await;

        let (code, out, err) = run_beside(payhub_of(&app, &["check"])).await;
        assert_eq!(code, 1, "a refused or unreachable account fails the check: {out}{err}");
        assert!(out.lines().any(|l| l.starts_with("configuration: ok")), "{out}");
        assert!(out.lines().any(|l| l.starts_with("database: ok")), "{out}");
        assert!(line_of(&out, "Sandbox").ends_with("credentials ok"), "{out}");
        assert!(line_of(&out, "MadeUp").contains("): refused: "), "{out}");
        assert!(line_of(&out, "Nowhere").contains("): unreachable: "), "{out}");
        assert!(!out.contains("subkey-") && !out.contains("client-secret-"), "no secret is printed: {out}");

        for id in [made_up, gone] {
            let response = app.admin(Method::DELETE, &format!("/admin/api/accounts/{id}")).send().await.unwrap();
            assert_eq!(response.status(), StatusCode::NO_CONTENT);
        }
        let (code, out, err) = run_beside(payhub_of(&app, &["check"])).await;
        assert_eq!(code, 0, "{out}{err}");
        assert_eq!(out.lines().filter(|l| l.starts_with("account ")).count(), 1, "{out}");
    }

    async fn the_setup_page_saves_an_account_and_says_when_vipps_refuses_its_credentials(app) {
        let vipps = app.with_vipps().await;
        let merchant = vipps.sim.merchants()[0].clone();
        let base_url = vipps.sim.base_url();
        let admin = app.browser(Role::Admin).await;
        let csrf = admin.csrf().await;
        let form = |name: &'static str, secret: &str, key: &str| -> Vec<(String, String)> {
            [
                ("csrf_token", csrf.as_str()),
                ("name", name),
                ("merchant_serial_number", merchant.msn.as_str()),
                ("client_key", merchant.client_id.as_str()),
                ("client_secret", secret),
                ("subscription_key", key),
                ("product_name", "Monthly gift"),
                ("merchant_agreement_url", "https://example.org/agreement"),
                ("retry_days", "3"),
                ("is_test", "on"),
                ("api_base_url", base_url.as_str()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
        };
        let post = |path: String, fields: Vec<(String, String)>| {
            let client = admin.client.clone();
            let url = format!("{}{}", admin.base, path);
            async move {
                let response = client.post(url).form(&fields).send().await.unwrap();
                let location = response.headers().get("location").map(|v| v.to_str().unwrap().to_owned());
                (response.status(), location, response.text().await.unwrap())
            }
        };

        // Made-up credentials: saved (nothing typed is lost), and the page says at once that Vipps refused them.
        let (status, location, page) =
            post("/setup/vipps".into(), form("Typo", "not-the-secret", &merchant.subscription_key)).await;
        assert_eq!(status, StatusCode::OK, "{location:?}");
        assert!(page.contains("Saved, but Vipps refused these credentials"), "{page}");
        assert!(page.contains("role=\"alert\""), "shown as an alert");
        assert!(!page.contains("not-the-secret"), "the secret is not shown back");
        let typo = app.state.accounts.resolve(Some("Typo")).await.unwrap().expect("the account is saved");
        assert!(page.contains(&format!("action=\"/setup/vipps/{}\"", typo.id)), "the form edits the saved account");

        // Corrected on the same form: Vipps accepts, and the list says so.
        let (status, location, _) = post(
            format!("/setup/vipps/{}", typo.id),
            form("Typo", &merchant.client_secret, &merchant.subscription_key),
        )
        .await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert_eq!(location.as_deref(), Some("/setup/vipps?done=updated&check=ok"));
        let (_, list) = admin.get("/setup/vipps?done=updated&check=ok").await;
        assert!(list.contains("Account updated. Vipps accepted its credentials."), "{list}");

        // A wrong subscription key is refused too (the simulator checks it on the token call, as Vipps does).
        let (status, _, page) = post(
            format!("/setup/vipps/{}", typo.id),
            form("Typo", &merchant.client_secret, "not-the-subscription-key"),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert!(page.contains("Saved, but Vipps refused these credentials"), "{page}");
    }
}
