//! Every route with every role and with no credentials: the route table is the router's own list, so a new
//! route cannot escape this test.

use payhub::app::routes;
use payhub::domain::role::{Access, Role};
use reqwest::{Method, StatusCode};

use crate::helpers::{Browser, TestApp};
use crate::on_both_backends;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Caller {
    Nobody,
    As(Role),
}

async fn call(
    app: &TestApp,
    browsers: &[(Role, Browser, String)],
    caller: Caller,
    method: &Method,
    route_path: &str,
    path: &str,
) -> (StatusCode, Option<String>) {
    let url = app.url(path);
    let api = path.starts_with("/admin/api") || path.starts_with("/v2/");
    let request = match caller {
        Caller::Nobody => Browser::new(app).client.request(method.clone(), &url),
        Caller::As(role) if api => app.http.request(method.clone(), &url).bearer_auth(app.key(role).await),
        Caller::As(role) => {
            if path == "/logout" {
                // Signing out ends the session: use a browser of its own.
                let fresh = app.browser(role).await;
                let csrf = fresh.csrf().await;
                let response = fresh.client.post(&url).form(&[("csrf_token", csrf.as_str())]).send().await.unwrap();
                return (response.status(), location(&response));
            }
            let (_, browser, csrf) = browsers.iter().find(|(r, _, _)| *r == role).unwrap();
            let request = browser.client.request(method.clone(), &url);
            if method == Method::POST {
                request.form(&[("csrf_token", csrf.as_str())])
            } else {
                request
            }
        }
    };
    let request = if api && takes_json(method, route_path) {
        request.header("content-type", "application/json").body("{}")
    } else {
        request
    };
    let response = request.send().await.unwrap();
    (response.status(), location(&response))
}

/// Whether the document gives `method route_path` a JSON body (the others take none, so none is sent).
fn takes_json(method: &Method, route_path: &str) -> bool {
    let escaped = route_path.replace('~', "~0").replace('/', "~1");
    let pointer = format!("/paths/{escaped}/{}/requestBody", method.as_str().to_ascii_lowercase());
    crate::helpers::conformance::document().pointer(&pointer).is_some()
}

fn location(response: &reqwest::Response) -> Option<String> {
    response.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_owned)
}

on_both_backends! {
    async fn every_route_checks_its_role(app) {
        let mut browsers = Vec::new();
        for role in Role::ALL {
            let browser = app.browser(role).await;
            let csrf = browser.csrf().await;
            browsers.push((role, browser, csrf));
        }
        let table = routes();
        assert!(table.len() >= 30, "the route table lists every route");
        let mut checked = 0;
        for route in &table {
            let path = route.path.replace("{id}", "x_unknown").replace("{slug}", "x_unknown").replace("{token}", "x_unknown");
            let api = path.starts_with("/admin/api") || path.starts_with("/v2/");
            for caller in [Caller::Nobody, Caller::As(Role::Admin), Caller::As(Role::Finance), Caller::As(Role::Integrator)] {
                let (status, location) = call(&app, &browsers, caller, &route.method, route.path, &path).await;
                let to_login = location.as_deref().is_some_and(|l| l.starts_with("/login?next="));
                let what = format!("{} {} as {caller:?}: {status} {location:?}", route.method, route.path);
                let allowed = match caller {
                    Caller::Nobody => route.access == Access::Public,
                    Caller::As(role) => role.allows(route.access),
                };
                if allowed {
                    assert!(status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN && !to_login, "{what}");
                } else if caller == Caller::Nobody {
                    if api {
                        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}");
                    } else {
                        assert!(status == StatusCode::SEE_OTHER && to_login, "{what}");
                    }
                } else {
                    assert_eq!(status, StatusCode::FORBIDDEN, "{what}");
                }
                checked += 1;
            }
        }
        assert_eq!(checked, table.len() * 4);
    }

    async fn a_revoked_or_made_up_key_authenticates_nothing(app) {
        let key = app.key(Role::Admin).await;
        let ok = app.http.get(app.url("/admin/api/accounts")).bearer_auth(&key).send().await.unwrap();
        assert_eq!(ok.status(), StatusCode::OK);
        let list: serde_json::Value = app.admin(Method::GET, "/admin/api/keys").send().await.unwrap().json().await.unwrap();
        assert!(!list.to_string().contains(&key), "the key itself is never listed");
        let id = list["keys"].as_array().unwrap().iter().find(|k| key.starts_with(k["prefix"].as_str().unwrap()) && k["name"] == "admin key").unwrap()["id"].as_str().unwrap().to_owned();
        let revoked = app.admin(Method::DELETE, &format!("/admin/api/keys/{id}")).send().await.unwrap();
        assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
        for bad in [key.as_str(), "phk_madeup", ""] {
            let response = app.http.get(app.url("/admin/api/accounts")).bearer_auth(bad).send().await.unwrap();
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{bad}");
            assert_eq!(response.headers()["www-authenticate"], "Bearer");
        }
        let basic = app.http.get(app.url("/admin/api/accounts")).basic_auth("admin", Some("x")).send().await.unwrap();
        assert_eq!(basic.status(), StatusCode::UNAUTHORIZED);
    }

    async fn keys_created_through_the_api_are_shown_once_and_work(app) {
        let response = app.admin(Method::POST, "/admin/api/keys").json(&serde_json::json!({"name": "donation form", "role": "integrator"})).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        let body: serde_json::Value = response.json().await.unwrap();
        let secret = body["secret"].as_str().unwrap();
        assert!(secret.starts_with("phk_"));
        let as_integrator = app.http.get(app.url("/admin/api/accounts")).bearer_auth(secret).send().await.unwrap();
        assert_eq!(as_integrator.status(), StatusCode::FORBIDDEN);
        let bad_role = app.admin(Method::POST, "/admin/api/keys").json(&serde_json::json!({"name": "x", "role": "root"})).send().await.unwrap();
        assert_eq!(bad_role.status(), StatusCode::BAD_REQUEST);
        let body: serde_json::Value = bad_role.json().await.unwrap();
        assert_eq!(body["Errors"][0]["field"], "role");
    }
}
