//! Giving Pages over HTTP: the admin API, and a payer's gift from the public page through the intake to the
//! simulator's payer page and back to the thank-you page, one-time and monthly; inline errors, English, and
//! the abuse guards (CSRF, honeypot, rate limit), each of which records nothing.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{hidden_value, storage, with, Browser, TestApp, Vipps};
use crate::on_both_backends;

/// The body the issue names, with the simulator's account.
fn spring() -> Value {
    json!({"slug": "spring", "title": {"nb": "Vårinnsamling", "en": "Spring appeal"}, "amounts": [100, 250],
           "frequencies": ["OneTime", "Monthly"], "account": "Sandbox", "max_amount": 5000,
           "thank_you": {"nb": "Gaven din gir rent vann.", "en": "Your gift gives clean water."}})
}

async fn create_page(app: &TestApp, body: &Value) -> Value {
    let response = app.admin(Method::POST, "/admin/api/giving-pages").json(body).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json().await.unwrap()
}

async fn messages(app: &TestApp) -> i64 {
    storage::count(app, "SELECT COUNT(*) FROM messages", &[]).await
}

/// A form's fields as a payer fills them in, with the page's CSRF token.
fn fields<'a>(token: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut fields = vec![
        ("csrf_token", token),
        ("lang", "nb"),
        ("firstName", "Kari"),
        ("lastName", "Nordmann"),
        ("email", "kari@example.no"),
    ];
    fields.extend_from_slice(extra);
    fields
}

/// Follows the payer through Vipps: the landing page (whose phone field shows what payhub sent), approve
/// there, payhub's return, the thank-you page. Returns the phone the simulator had and the thank-you page.
async fn approve_at_vipps(app: &TestApp, browser: &Browser, landing: &str) -> (String, String) {
    let page = browser.client.get(landing).send().await.unwrap().text().await.unwrap();
    let token = hidden_value(&page, "token").expect("landing token");
    let phone = page.split("name=\"phoneNumber\"").nth(1).and_then(|rest| {
        let start = rest.find("value=\"")? + 7;
        Some(rest[start..start + rest[start..].find('"')?].to_owned())
    });
    let sim_base = landing.split("/landing").next().unwrap();
    let back = browser
        .client
        .post(format!("{sim_base}/landing"))
        .form(&[("token", token.as_str()), ("action", "approve"), ("phoneNumber", phone.as_deref().unwrap_or(""))])
        .send()
        .await
        .unwrap();
    assert_eq!(back.status(), StatusCode::SEE_OTHER);
    let returned = back.headers()["location"].to_str().unwrap().to_owned();
    assert!(returned.starts_with(&app.base), "Vipps sends the payer back to payhub: {returned}");
    let forwarded = browser.client.get(&returned).send().await.unwrap();
    assert_eq!(forwarded.status(), StatusCode::SEE_OTHER);
    let thanks = forwarded.headers()["location"].to_str().unwrap().to_owned();
    assert!(thanks.starts_with(&format!("{}/give/spring/thanks/", app.base)), "{thanks}");
    let page = browser.client.get(&thanks).send().await.unwrap().text().await.unwrap();
    (phone.unwrap_or_default(), page)
}

async fn open_form(browser: &Browser, path: &str) -> (String, String) {
    let (status, page) = browser.get(path).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let token = hidden_value(&page, "csrf_token").expect("csrf token in the form");
    (page, token)
}

/// What a browser submits from the page's form as shown: each input's value (a checkbox only when checked) and
/// each select's selected option (the first when none is marked).
fn submitted(page: &str) -> Vec<(String, String)> {
    let start = page.find("<form class=\"card\"").expect("the form");
    let form = &page[start..start + page[start..].find("</form>").expect("its end")];
    let attr = |tag: &str, name: &str| {
        let at = tag.find(&format!(" {name}=\""))? + name.len() + 3;
        let value = &tag[at..at + tag[at..].find('"')?];
        Some(value.replace("&quot;", "\"").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&"))
    };
    let mut fields = Vec::new();
    for (at, _) in form.match_indices('<') {
        let tag = &form[at..at + form[at..].find('>').unwrap()];
        if tag.starts_with("<input ") {
            let checkbox = attr(tag, "type").as_deref() == Some("checkbox");
            if let Some(name) = attr(tag, "name").filter(|_| !checkbox || tag.contains(" checked")) {
                fields.push((name, attr(tag, "value").unwrap_or_default()));
            }
        } else if tag.starts_with("<select ") {
            let body = &form[at..at + form[at..].find("</select>").unwrap()];
            let options: Vec<String> =
                body.split("<option ").skip(1).map(|o| format!(" {}", &o[..o.find('>').unwrap()])).collect();
            let chosen = options.iter().find(|o| o.contains(" selected")).or(options.first()).unwrap();
            fields.push((attr(tag, "name").unwrap(), attr(chosen, "value").unwrap_or_default()));
        }
    }
    fields
}

async fn setup(app: &TestApp) -> Vipps {
    let vipps = app.with_vipps().await;
    create_page(app, &spring()).await;
    vipps
}

on_both_backends! {
    async fn the_admin_api_manages_pages_and_audits_every_change(app) {
        let _vipps = app.with_vipps().await;
        let created = create_page(&app, &json!({"slug": "spring", "title": "Vårinnsamling", "amounts": [100, 250], "frequencies": ["OneTime", "Monthly"], "account": "Sandbox"})).await;
        let id = created["id"].as_str().unwrap().to_owned();
        assert_eq!(created["amounts"][1]["amount"], json!(250.0));
        assert_eq!(created["default_frequency"], "OneTime");
        assert_eq!(created["min_amount"], json!(10.0));
        assert_eq!(created["active"], true);
        assert!(created["url"].as_str().unwrap().ends_with("/give/spring"));

        let changed = app.admin(Method::PATCH, &format!("/admin/api/giving-pages/{id}")).json(&json!({"title": {"nb": "Høst", "en": "Autumn"}, "default_frequency": "Monthly"})).send().await.unwrap();
        assert_eq!(changed.status(), StatusCode::OK);
        let changed: Value = changed.json().await.unwrap();
        assert_eq!((changed["title"]["en"].as_str(), changed["default_frequency"].as_str(), changed["amounts"].as_array().map(Vec::len)), (Some("Autumn"), Some("Monthly"), Some(2)));
        let listed: Value = app.admin(Method::GET, "/admin/api/giving-pages").send().await.unwrap().json().await.unwrap();
        assert_eq!(listed["giving_pages"].as_array().unwrap().len(), 1);

        // Bad input names every field at fault and changes nothing.
        let bad = app.admin(Method::POST, "/admin/api/giving-pages").json(&json!({"slug": "Bad Slug", "amounts": ["ten"], "frequencies": ["Daily"], "account": "Sandbox"})).send().await.unwrap();
        assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
        let bad: Value = bad.json().await.unwrap();
        let named: Vec<&str> = bad["Errors"].as_array().unwrap().iter().filter_map(|e| e["field"].as_str()).collect();
        for field in ["slug", "title", "amounts", "frequencies"] {
            assert!(named.contains(&field), "{field} in {bad}");
        }
        let unknown_account = app.admin(Method::PATCH, &format!("/admin/api/giving-pages/{id}")).json(&json!({"account": "Nowhere"})).send().await.unwrap();
        assert_eq!(unknown_account.status(), StatusCode::BAD_REQUEST);
        let taken = app.admin(Method::POST, "/admin/api/giving-pages").json(&spring()).send().await.unwrap();
        assert_eq!(taken.status(), StatusCode::CONFLICT);
        let again: Value = app.admin(Method::GET, &format!("/admin/api/giving-pages/{id}")).send().await.unwrap().json().await.unwrap();
        assert_eq!((again["title"]["en"].as_str(), again["account"].as_str()), (Some("Autumn"), Some("Sandbox")));

        let audit: Value = app.admin(Method::GET, &format!("/admin/api/audit?object_id={id}")).send().await.unwrap().json().await.unwrap();
        let actions: Vec<&str> = audit["entries"].as_array().unwrap().iter().filter_map(|e| e["action"].as_str()).collect();
        assert_eq!(actions, vec!["giving_page.update", "giving_page.create"]);

        let deleted = app.admin(Method::DELETE, &format!("/admin/api/giving-pages/{id}")).send().await.unwrap();
        assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
        let gone = app.admin(Method::GET, &format!("/admin/api/giving-pages/{id}")).send().await.unwrap();
        assert_eq!(gone.status(), StatusCode::NOT_FOUND);
        assert_eq!(app.http.get(app.url("/give/spring")).send().await.unwrap().status(), StatusCode::NOT_FOUND);
    }

    async fn a_one_time_gift_goes_from_the_page_to_vipps_and_back_to_a_thank_you(app) {
        let _vipps = setup(&app).await;
        let browser = Browser::new(&app);
        // The query pre-fills the form: the phone, and an amount within the page's limits.
        let (page, token) = open_form(&browser, "/give/spring?mobileNumber=4791234567&amount=75&campaign=tv-2027").await;
        assert!(page.contains("<html lang=\"nb\">"), "bokmål by default");
        assert!(page.contains("value=\"4791234567\""), "the phone from the query is pre-filled");
        assert!(page.contains("value=\"75\""), "the amount from the query is pre-filled");
        assert!(page.contains("kr\u{a0}250"), "presets in Norwegian format");
        assert!(page.contains("name=\"campaign\" value=\"tv-2027\""));
        // The payer types another number; the typed one wins.
        let sent = browser.post("/give/spring", &fields(&token, &[("frequency", "OneTime"), ("amount", "75"), ("mobileNumber", "+47 912 34 999"), ("campaign", "tv-2027")])).await;
        assert_eq!(sent.0, StatusCode::SEE_OTHER, "{}", sent.1);
        let landing = sent.2.unwrap();
        let (phone, thanks) = approve_at_vipps(&app, &browser, &landing).await;
        assert_eq!(phone, "4791234999", "the simulator received the typed number");
        assert!(thanks.contains("Takk for gaven!") && thanks.contains("Gaven din gir rent vann."), "{thanks}");

        // Collected, and traceable: the intent's origin is the page, its campaign the query's.
        let status = storage::text(&app, "SELECT status FROM installments", &[]).await;
        assert_eq!(status.as_deref(), Some("Collected"));
        assert_eq!(storage::text(&app, "SELECT CAST(amount_ore AS TEXT) FROM installments", &[]).await.as_deref(), Some("7500"));
        let origin = storage::pairs(&app, "SELECT origin, campaign_id FROM payment_intents", &[]).await;
        assert_eq!(origin, vec![("give/spring".to_owned(), "tv-2027".to_owned())]);
        let message = storage::text(&app, "SELECT body FROM messages WHERE channel = 'api'", &[]).await.unwrap();
        assert!(message.contains("amount=75") && !message.contains("csrf_token"), "the form is the Message: {message}");
        // The admin sees the gift with its status now.
        let admin = app.browser(payhub::domain::role::Role::Admin).await;
        let (_, list) = admin.get("/setup/giving-pages").await;
        assert!(list.contains("Recent gifts") && list.contains("kr\u{a0}75") && list.contains("Collected"), "{list}");
    }

    async fn a_monthly_gift_approves_an_agreement(app) {
        let _vipps = setup(&app).await;
        let browser = Browser::new(&app);
        let (page, token) = open_form(&browser, "/give/spring?phone=91234567&frequency=Monthly").await;
        assert!(page.contains("id=\"frequency-Monthly\" value=\"Monthly\" checked"), "the query's frequency is chosen");
        let sent = browser.post("/give/spring", &fields(&token, &[("frequency", "Monthly"), ("preset", "25000"), ("mobileNumber", "93 00 00 01")])).await;
        assert_eq!(sent.0, StatusCode::SEE_OTHER, "{}", sent.1);
        let (phone, thanks) = approve_at_vipps(&app, &browser, &sent.2.unwrap()).await;
        assert_eq!(phone, "4793000001");
        assert!(thanks.contains("Takk for at du gir fast!"), "{thanks}");
        assert_eq!(storage::text(&app, "SELECT status FROM mandates", &[]).await.as_deref(), Some("Active"));
        let amount = storage::text(&app, "SELECT CAST(amount_ore AS TEXT) FROM recurring_payments", &[]).await;
        assert_eq!(amount.as_deref(), Some("25000"), "the preset the payer chose, from the page's own amounts");
    }

    async fn a_rejected_payment_says_so_and_offers_another_try(app) {
        let _vipps = setup(&app).await;
        let browser = Browser::new(&app);
        let (_, token) = open_form(&browser, "/give/spring?lang=en").await;
        let sent = browser.post("/give/spring", &[("csrf_token", token.as_str()), ("lang", "en"), ("frequency", "OneTime"), ("preset", "10000")]).await;
        assert_eq!(sent.0, StatusCode::SEE_OTHER, "{}", sent.1);
        let landing = sent.2.unwrap();
        let page = browser.client.get(&landing).send().await.unwrap().text().await.unwrap();
        let sim_token = hidden_value(&page, "token").unwrap();
        let sim_base = landing.split("/landing").next().unwrap();
        let back = browser.client.post(format!("{sim_base}/landing")).form(&[("token", sim_token.as_str()), ("action", "reject")]).send().await.unwrap();
        let returned = back.headers()["location"].to_str().unwrap().to_owned();
        let forwarded = browser.client.get(&returned).send().await.unwrap();
        let thanks = forwarded.headers()["location"].to_str().unwrap().to_owned();
        assert!(thanks.ends_with("?lang=en"), "the payer's language is kept across Vipps: {thanks}");
        let page = browser.client.get(&thanks).send().await.unwrap().text().await.unwrap();
        assert!(page.contains("The payment did not go through") && page.contains("href=\"/give/spring?lang=en\""), "{page}");
        assert_eq!(storage::text(&app, "SELECT status FROM installments", &[]).await.as_deref(), Some("Failed"));
    }

    async fn bad_input_is_shown_beside_its_field_and_records_nothing(app) {
        let _vipps = setup(&app).await;
        let browser = Browser::new(&app);
        // A pre-filled amount outside the page's limits is not used.
        let (page, token) = open_form(&browser, "/give/spring?amount=999999&mobileNumber=12").await;
        assert!(!page.contains("999999") && !page.contains("value=\"12\""), "unfit query values are left out");
        let before = messages(&app).await;
        type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);
        let cases: [Case; 4] = [
            (&[("frequency", "OneTime"), ("amount", "ti kroner")], "amount", "Skriv beløpet i kroner"),
            (&[("frequency", "OneTime"), ("amount", "5")], "amount", "lavere enn det minste"),
            (&[("frequency", "OneTime"), ("amount", "6000")], "amount", "høyere enn det største"),
            (&[("frequency", "OneTime"), ("preset", "99900")], "amount", "Velg et beløp"),
        ];
        for (extra, field, text) in cases {
            let (status, page, _) = browser.post("/give/spring", &fields(&token, extra)).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{extra:?}");
            assert!(page.contains(text), "{extra:?}: {page}");
            assert!(page.contains(&format!("aria-describedby=\"{field}-hint {field}-error\"")) && page.contains("aria-invalid=\"true\""), "the error is tied to its field");
            assert!(page.contains(&format!("id=\"{field}-error\"")));
        }
        let (status, page, _) = browser.post("/give/spring", &fields(&token, &[("frequency", "Daily"), ("amount", "100"), ("mobileNumber", "123"), ("email", "kari@")])).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        for field in ["frequency", "mobileNumber", "email"] {
            assert!(page.contains(&format!("href=\"#{field}\"")), "{field} in the summary");
        }
        assert!(page.contains("value=\"123\""), "what the payer typed is shown again");
        // In English when the payer reads English.
        let (status, page, _) = browser.post("/give/spring", &[("csrf_token", token.as_str()), ("lang", "en"), ("frequency", "OneTime"), ("amount", "abc")]).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(page.contains("<html lang=\"en\">") && page.contains("Type the amount in kroner"), "{page}");
        assert_eq!(messages(&app).await, before, "nothing was recorded");
        assert_eq!(storage::count(&app, "SELECT COUNT(*) FROM giving_donations", &[]).await, 0);
    }

    async fn a_pages_phone_default_takes_the_number_from_a_payer_field(app) {
        let _vipps = setup(&app).await;
        let id = app.state.pages.by_slug("spring").await.unwrap().unwrap().id;
        let patch = |body: Value| app.admin(Method::PATCH, &format!("/admin/api/giving-pages/{id}")).json(&body).send();
        for bad in [json!({"payer_field": "Home Phone"}), json!({"value": "12"}), json!({})] {
            let refused = patch(json!({"parameter_defaults": {"mobileNumber": bad}})).await.unwrap();
            assert_eq!(refused.status(), StatusCode::BAD_REQUEST, "{bad}");
            assert!(refused.text().await.unwrap().contains("parameter_defaults"), "the field is named");
        }
        let saved = patch(json!({"parameter_defaults": {"mobileNumber": {"payer_field": "HomePhone"}}})).await.unwrap();
        assert_eq!(saved.status(), StatusCode::OK);
        let saved: Value = saved.json().await.unwrap();
        assert_eq!(saved["parameter_defaults"]["mobileNumber"], json!({"payer_field": "HomePhone"}), "{saved}");

        // A CRM's link carries the payer's home phone as a payer field: it pre-fills the phone.
        let browser = Browser::new(&app);
        let (page, token) = open_form(&browser, "/give/spring?pf_HomePhone=48000000").await;
        assert!(page.contains("name=\"mobileNumber\" value=\"48000000\""), "{page}");
        // The link's own mobileNumber comes first, and a field that is no phone number is left out.
        let (page, _) = open_form(&browser, "/give/spring?pf_HomePhone=48000000&mobileNumber=91234567").await;
        assert!(page.contains("value=\"91234567\"") && !page.contains("48000000"), "{page}");
        let (page, _) = open_form(&browser, "/give/spring?pf_HomePhone=12").await;
        assert!(page.contains("name=\"mobileNumber\" value=\"\""), "{page}");
        // The payer keeps the pre-filled number, so Vipps receives it.
        let sent = browser.post("/give/spring", &fields(&token, &[("frequency", "OneTime"), ("amount", "100"), ("mobileNumber", "48000000")])).await;
        assert_eq!(sent.0, StatusCode::SEE_OTHER, "{}", sent.1);
        let (phone, _) = approve_at_vipps(&app, &browser, &sent.2.unwrap()).await;
        assert_eq!(phone, "4748000000");
    }

    async fn the_page_speaks_english_when_asked(app) {
        let _vipps = setup(&app).await;
        let (_, page) = Browser::new(&app).get("/give/spring?lang=en").await;
        assert!(page.contains("<html lang=\"en\">") && page.contains("Spring appeal") && page.contains("Give with Vipps"), "{page}");
        let by_browser = app.http.get(app.url("/give/spring")).header("accept-language", "en-GB,en;q=0.9").send().await.unwrap().text().await.unwrap();
        assert!(by_browser.contains("<html lang=\"en\">"));
        let norwegian = app.http.get(app.url("/give/spring")).header("accept-language", "nb-NO,en;q=0.5").send().await.unwrap().text().await.unwrap();
        assert!(norwegian.contains("<html lang=\"nb\">") && norwegian.contains("Gi med Vipps"));
        // An edit shows at once: the cached page is dropped.
        let id = app.state.pages.by_slug("spring").await.unwrap().unwrap().id;
        let edit = app.admin(Method::PATCH, &format!("/admin/api/giving-pages/{id}")).json(&json!({"title": {"nb": "Sommer", "en": "Summer appeal"}})).send().await.unwrap();
        assert_eq!(edit.status(), StatusCode::OK);
        let (_, page) = Browser::new(&app).get("/give/spring?lang=en").await;
        assert!(page.contains("Summer appeal"));
        let inactive = app.admin(Method::PATCH, &format!("/admin/api/giving-pages/{id}")).json(&json!({"active": false})).send().await.unwrap();
        assert_eq!(inactive.status(), StatusCode::OK);
        assert_eq!(Browser::new(&app).get("/give/spring").await.0, StatusCode::NOT_FOUND);
    }

    async fn csrf_and_the_honeypot_refuse_and_record_nothing(app) {
        let _vipps = setup(&app).await;
        let before = messages(&app).await;
        let gift = [("frequency", "OneTime"), ("amount", "100")];
        // No cookie: a form posted from elsewhere.
        let stranger = app.http.post(app.url("/give/spring")).form(&[("csrf_token", "gv_forged"), ("frequency", "OneTime"), ("amount", "100")]).send().await.unwrap();
        assert_eq!(stranger.status(), StatusCode::FORBIDDEN);
        // A cookie, but another token.
        let browser = Browser::new(&app);
        let (_, token) = open_form(&browser, "/give/spring").await;
        let wrong = browser.post("/give/spring", &fields("gv_not_the_cookie", &gift)).await;
        assert_eq!(wrong.0, StatusCode::FORBIDDEN);
        // The honeypot filled in.
        let bot = browser.post("/give/spring", &fields(&token, &[("frequency", "OneTime"), ("amount", "100"), ("website", "http://spam.example")])).await;
        assert_eq!(bot.0, StatusCode::BAD_REQUEST);
        assert_eq!(messages(&app).await, before, "nothing was recorded");
        // The same browser, honestly: it goes through.
        let ok = browser.post("/give/spring", &fields(&token, &gift)).await;
        assert_eq!(ok.0, StatusCode::SEE_OTHER, "{}", ok.1);
    }
}

on_both_backends! {
    with &[("PAYHUB_GIVE_SUBMISSIONS_PER_MINUTE", "3")];
    async fn one_address_may_submit_only_so_often(app) {
        let _vipps = setup(&app).await;
        let browser = Browser::new(&app);
        let (_, token) = open_form(&browser, "/give/spring").await;
        for _ in 0..3 {
            let (status, _, _) = browser.post("/give/spring", &fields(&token, &[("frequency", "OneTime"), ("amount", "x")])).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        }
        let before = messages(&app).await;
        let (status, page, _) = browser.post("/give/spring", &fields(&token, &[("frequency", "OneTime"), ("amount", "100")])).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{page}");
        assert_eq!(messages(&app).await, before);
    }
}

on_both_backends! {
    async fn an_admin_creates_and_edits_a_page_in_the_ui(app) {
        let _vipps = app.with_vipps().await;
        let admin = app.browser(payhub::domain::role::Role::Admin).await;
        let csrf = admin.csrf().await;
        let (status, form) = admin.get("/setup/giving-pages/new").await;
        assert_eq!(status, StatusCode::OK);
        assert!(form.contains("name=\"slug\"") && form.contains("<option value=\"Sandbox\""));
        let fields = [("csrf_token", csrf.as_str()), ("slug", "summer"), ("title_nb", "Sommeraksjon"), ("title_en", "Summer appeal"),
            ("amounts", "100, 250, 1 000"), ("frequencies", "OneTime"), ("frequencies", "Monthly"), ("default_frequency", "Monthly"),
            ("account", "Sandbox"), ("brand_colour", "#0b5fff"), ("transaction_text", "Gave til sommeraksjonen"), ("active", "on")];
        let (status, _, location) = admin.post("/setup/giving-pages", &fields).await;
        assert_eq!((status, location.as_deref()), (StatusCode::SEE_OTHER, Some("/setup/giving-pages")));
        let (_, list) = admin.get("/setup/giving-pages").await;
        assert!(list.contains("href=\"/give/summer\""), "{list}");
        let page = app.state.pages.by_slug("summer").await.unwrap().unwrap();
        assert_eq!(page.settings.amounts.iter().map(|p| p.ore).collect::<Vec<_>>(), vec![10_000, 25_000, 100_000]);
        assert_eq!(page.settings.default_frequency.as_str(), "Monthly");
        // The page is on the air at once, in the admin's words.
        let (status, public) = Browser::new(&app).get("/give/summer").await;
        assert_eq!(status, StatusCode::OK);
        assert!(public.contains("Sommeraksjon") && public.contains("kr\u{a0}1\u{a0}000") && public.contains("--brand:#0b5fff"));

        // A bad edit is shown with its errors and changes nothing.
        let (_, edit) = admin.get(&format!("/setup/giving-pages/{}", page.id)).await;
        assert!(edit.contains("value=\"Sommeraksjon\""));
        let bad = [("csrf_token", csrf.as_str()), ("slug", "summer"), ("title_nb", "Sommer"), ("amounts", "many"), ("frequencies", "OneTime")];
        let (status, shown, _) = admin.post(&format!("/setup/giving-pages/{}", page.id), &bad).await;
        assert_eq!(status, StatusCode::OK);
        assert!(shown.contains("amounts: Amount must be a number"), "{shown}");
        assert_eq!(app.state.pages.by_slug("summer").await.unwrap().unwrap().settings.title.nb, "Sommeraksjon");
        let good = [("csrf_token", csrf.as_str()), ("slug", "summer"), ("title_nb", "Sommer"), ("amounts", "50"), ("frequencies", "OneTime"), ("active", "on")];
        let (status, _, _) = admin.post(&format!("/setup/giving-pages/{}", page.id), &good).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        let (_, public) = Browser::new(&app).get("/give/summer").await;
        assert!(public.contains("<h1>Sommer</h1>"), "the edit shows at once");
        assert!(!public.contains("--brand:#0b5fff"), "an emptied field takes its default");
    }

    async fn saving_the_edit_form_unchanged_keeps_the_parameter_defaults_it_does_not_show(app) {
        let _vipps = app.with_vipps().await;
        let defaults = json!({"TransactionText": "Gave til våren", "ProductName": "Fast giver",
            "description": "Vårinnsamling 2026", "MerchantAgreementUrl": "https://example.org/min-side",
            "mobileNumber": {"value": "91234567"}});
        let created = create_page(&app, &with(spring(), json!({"parameter_defaults": defaults.clone()}))).await;
        assert_eq!(created["parameter_defaults"], defaults, "{created}");
        let id = created["id"].as_str().unwrap();
        let admin = app.browser(payhub::domain::role::Role::Admin).await;
        let (status, edit) = admin.get(&format!("/setup/giving-pages/{id}")).await;
        assert_eq!(status, StatusCode::OK);
        let fields = submitted(&edit);
        assert!(fields.iter().any(|(k, v)| k == "transaction_text" && v == "Gave til våren"), "{fields:?}");
        let pairs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let (status, page, _) = admin.post(&format!("/setup/giving-pages/{id}"), &pairs).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{page}");
        let saved = app.state.pages.by_slug("spring").await.unwrap().unwrap();
        assert_eq!(serde_json::to_value(&saved.settings.parameters).unwrap(), defaults, "nothing lost");

        // What the form shows it changes: a payer field in place of the fixed number, the text emptied.
        let edited: Vec<(&str, &str)> = pairs
            .iter()
            .map(|&(k, v)| match k { "phone_field" => (k, "HomePhone"), "transaction_text" => (k, ""), _ => (k, v) })
            .collect();
        let (status, page, _) = admin.post(&format!("/setup/giving-pages/{id}"), &edited).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{page}");
        let saved = app.state.pages.by_slug("spring").await.unwrap().unwrap().settings.parameters;
        assert_eq!(saved.mobile_number.and_then(|d| d.payer_field).as_deref(), Some("HomePhone"));
        assert_eq!(saved.transaction_text, None);
        assert_eq!(saved.merchant_agreement_url.as_deref(), Some("https://example.org/min-side"));
        assert_eq!(saved.description.as_deref(), Some("Vårinnsamling 2026"));
    }
}
