//! Signing in cannot be used to guess passwords or to find out which emails have users.

use std::time::{Duration, Instant};

use payhub::auth::{self, Actor};
use payhub::domain::role::Role;
use reqwest::StatusCode;

use crate::helpers::Browser;
use crate::on_both_backends;

async fn timed_sign_in(browser: &Browser, email: &str, password: &str) -> (StatusCode, Duration) {
    let started = Instant::now();
    let status = browser.sign_in(email, password).await;
    (status, started.elapsed())
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

on_both_backends! {
    async fn an_unknown_email_costs_as_much_as_a_wrong_password(app) {
        auth::create_user(&app.state.store, "ops@example.org", "right password 1", Role::Finance, &Actor::cli()).await.unwrap();
        let browser = Browser::new(&app);
        let (mut known, mut unknown) = (Vec::new(), Vec::new());
        // Interleaved, so a slow moment of the machine lands on both; fewer than the lockout's five failures.
        for n in 0..3 {
            let (status, time) = timed_sign_in(&browser, "ops@example.org", "wrong password 1").await;
            assert_eq!(status, StatusCode::UNAUTHORIZED);
            known.push(time);
            let (status, time) = timed_sign_in(&browser, &format!("nobody{n}@example.org"), "wrong password 1").await;
            assert_eq!(status, StatusCode::UNAUTHORIZED);
            unknown.push(time);
        }
        let (known, unknown) = (median(known), median(unknown));
        // A real argon2id check takes tens of milliseconds; skipping it takes microseconds.
        assert!(unknown * 4 >= known, "unknown email {unknown:?} vs wrong password {known:?}: the timing tells them apart");
    }

    async fn five_wrong_passwords_lock_the_email_even_against_the_right_one(app) {
        auth::create_user(&app.state.store, "ops@example.org", "right password 1", Role::Finance, &Actor::cli()).await.unwrap();
        let browser = Browser::new(&app);
        for _ in 0..5 {
            assert_eq!(browser.sign_in("ops@example.org", "wrong password 1").await, StatusCode::UNAUTHORIZED);
        }
        assert_eq!(browser.sign_in("ops@example.org", "right password 1").await, StatusCode::TOO_MANY_REQUESTS);
        let (status, page) = browser.get("/").await;
        assert_ne!(status, StatusCode::OK, "no session was opened: {page}");
        // Another user is not locked out by someone guessing at this one.
        auth::create_user(&app.state.store, "fin@example.org", "right password 2", Role::Finance, &Actor::cli()).await.unwrap();
        assert_eq!(Browser::new(&app).sign_in("fin@example.org", "right password 2").await, StatusCode::SEE_OTHER);
    }

    async fn a_locked_email_looks_the_same_whether_or_not_it_has_a_user(app) {
        let browser = Browser::new(&app);
        for _ in 0..5 {
            assert_eq!(browser.sign_in("nobody@example.org", "wrong password 1").await, StatusCode::UNAUTHORIZED);
        }
        assert_eq!(browser.sign_in("nobody@example.org", "wrong password 1").await, StatusCode::TOO_MANY_REQUESTS);
    }

    async fn one_address_guessing_at_many_emails_is_slowed_down(app) {
        let browser = Browser::new(&app);
        let mut statuses = Vec::new();
        for n in 0..25 {
            statuses.push(browser.sign_in(&format!("guess{n}@example.org"), "wrong password 1").await);
        }
        assert!(statuses[..20].iter().all(|s| *s == StatusCode::UNAUTHORIZED), "{statuses:?}");
        assert!(statuses[20..].iter().all(|s| *s == StatusCode::TOO_MANY_REQUESTS), "{statuses:?}");
    }
}
