//! Record ids: a short type prefix and a time-ordered random part (`acc_0192…`), opaque to callers; and the
//! payment references Vipps sees (`pi-…`), time-ordered too.

/// A new id with the given prefix (`acc`, `usr`, `key`, …). Ids sort by creation time.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

/// A new payment reference: `pi-`, the microseconds since 1970 (strictly increasing within this process), and
/// three random digits that keep two payhub instances on one database apart. References that grow with time
/// keep each insert into their indexes on the last page instead of a random one (a random reference dirtied a
/// page of each index per intent, which every commit then wrote out). A collision is still caught by the unique
/// index, and the intent draws another.
pub fn new_payment_reference() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX / 2));
    let mut last = LAST.load(Ordering::Relaxed);
    let micros = loop {
        let next = now.max(last + 1);
        match LAST.compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => break next,
            Err(seen) => last = seen,
        }
    };
    format!("pi-{micros}{:03}", rand::Rng::gen_range(&mut rand::thread_rng(), 0..1000u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_carry_their_prefix_and_are_unique() {
        let a = new_id("acc");
        let b = new_id("acc");
        assert!(a.starts_with("acc_") && a.len() == 36);
        assert_ne!(a, b);
    }
}
