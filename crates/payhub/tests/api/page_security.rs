//! Pages cannot be framed by another site, and a page showing a secret is never kept by a cache.

use payhub::domain::role::Role;
use reqwest::StatusCode;

use crate::helpers::Browser;
use crate::on_both_backends;

fn header(response: &reqwest::Response, name: &str) -> String {
    response.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

on_both_backends! {
    async fn pages_refuse_framing_and_caching(app) {
        let response = app.http.get(app.url("/login")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(header(&response, "x-frame-options"), "DENY");
        assert!(header(&response, "content-security-policy").contains("frame-ancestors 'none'"));
        assert_eq!(header(&response, "x-content-type-options"), "nosniff");
        assert!(header(&response, "cache-control").contains("no-store"));
    }

    async fn the_page_that_shows_a_new_key_is_not_cached(app) {
        let browser: Browser = app.browser(Role::Admin).await;
        let csrf = browser.csrf().await;
        let response = browser
            .client
            .post(format!("{}/setup/keys", browser.base))
            .form(&[("csrf_token", csrf.as_str()), ("name", "Salesforce"), ("role", "integrator")])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert!(header(&response, "cache-control").contains("no-store"));
        assert_eq!(header(&response, "x-frame-options"), "DENY");
        assert!(response.text().await.unwrap().contains("phk_"), "the key is shown once");
    }

    async fn api_answers_are_not_cached_either(app) {
        let response = app.admin(reqwest::Method::GET, "/admin/api/keys").send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert!(header(&response, "cache-control").contains("no-store"));
    }
}
