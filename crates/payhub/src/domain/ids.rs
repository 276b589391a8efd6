//! Record ids: a short type prefix and a time-ordered random part (`acc_0192…`), opaque to callers.

/// A new id with the given prefix (`acc`, `usr`, `key`, …). Ids sort by creation time.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
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
