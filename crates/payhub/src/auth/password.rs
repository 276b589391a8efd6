//! Password hashing with argon2id (the crate's defaults follow OWASP's recommendation).
//!
//! A check costs tens of milliseconds of CPU by design. It never runs on the async workers (a few parallel
//! sign-ins would stall the Payment API on two cores): [`verify`] and [`hash`] run it on the blocking pool,
//! one at a time.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

/// The shortest password accepted.
pub const MIN_PASSWORD_LEN: usize = 10;

/// Checks a new password against the length rules; the message is safe to show.
pub fn check_new_password(password: &str) -> Result<(), String> {
    let len = password.chars().count();
    if len < MIN_PASSWORD_LEN {
        return Err(format!("Password must be at least {MIN_PASSWORD_LEN} characters."));
    }
    if len > 1024 {
        return Err("Password must be at most 1024 characters.".into());
    }
    Ok(())
}

/// Hashes a password into a PHC string with a fresh salt.
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("hashing a password failed: {e}"))
}

/// Whether `password` matches the stored PHC string. A malformed hash never matches.
pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|hash| Argon2::default().verify_password(password.as_bytes(), &hash).is_ok())
}

/// A real hash of a password nobody knows, made once: checking a sign-in for an email without a user against
/// it costs what a real check costs, so the answer's timing does not tell which emails have users.
pub fn stand_in_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| {
        let unknown = super::tokens::new_token("");
        hash_password(&unknown).unwrap_or_default()
    })
}

/// One argon2 computation at a time: two cores stay free for payments while someone signs in.
static ONE_AT_A_TIME: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);

/// [`verify_password`] on the blocking pool.
pub async fn verify(password: &str, phc: &str) -> bool {
    let (password, phc) = (password.to_owned(), phc.to_owned());
    let Ok(_turn) = ONE_AT_A_TIME.acquire().await else { return false };
    tokio::task::spawn_blocking(move || verify_password(&password, &phc)).await.unwrap_or(false)
}

/// [`hash_password`] on the blocking pool.
pub async fn hash(password: &str) -> anyhow::Result<String> {
    let password = password.to_owned();
    let _turn = ONE_AT_A_TIME.acquire().await?;
    tokio::task::spawn_blocking(move || hash_password(&password)).await?
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_password_verifies_against_its_own_hash_only() {
        let hash = hash_password("correct horse battery").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", &hash));
        assert!(!verify_password("wrong horse battery", &hash));
        assert!(!verify_password("x", "not a hash"));
        assert!(check_new_password("short").is_err() && check_new_password("long enough!").is_ok());
    }

    #[test]
    fn the_stand_in_hash_is_a_real_argon2id_hash_with_the_same_cost() {
        let stand_in = PasswordHash::new(stand_in_hash()).unwrap();
        let real_hash = hash_password("correct horse battery").unwrap();
        let real = PasswordHash::new(&real_hash).unwrap();
        assert_eq!(stand_in.algorithm, real.algorithm);
        assert_eq!(stand_in.params, real.params);
        assert!(!verify_password("", stand_in_hash()));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_check_leaves_the_async_thread_free() {
        let hash = hash_password("correct horse battery").unwrap();
        let ticks = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = ticks.clone();
        let ticker = tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        });
        tokio::task::yield_now().await;
        let started = std::time::Instant::now();
        assert!(verify("correct horse battery", &hash).await);
        let took = started.elapsed();
        ticker.abort();
        let ticked = ticks.load(std::sync::atomic::Ordering::Relaxed);
        // On the only async thread, a check run in place lets nothing else run while it lasts: no tick at all
        // (seen: 0 ticks in 54 ms). Off the thread the ticker runs meanwhile, however loaded the machine is.
        assert!(ticked >= 2, "{ticked} ticks in {took:?}");
    }
}
