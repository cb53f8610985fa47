//! Stable ids: FNV-1a over 128 bits, rendered as 32 hex digits. Stable
//! across runs, machines and compiler versions, unlike `DefaultHasher`.

const OFFSET: u128 = 0x6c62272e07bb014262b821756295c58d;
const PRIME: u128 = 0x0000000001000000000000000000013B;

/// Hashes the parts with a separator that cannot occur inside them, so
/// `("ab", "c")` and `("a", "bc")` differ.
pub fn stable_id(parts: &[&str]) -> String {
    let mut h = OFFSET;
    for part in parts {
        for b in part.bytes().chain(std::iter::once(0xff)) {
            h ^= u128::from(b);
            h = h.wrapping_mul(PRIME);
        }
    }
    format!("{h:032x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_stable_and_separates_parts() {
        assert_eq!(stable_id(&["a", "b"]), stable_id(&["a", "b"]));
        assert_ne!(stable_id(&["ab", "c"]), stable_id(&["a", "bc"]));
        assert_eq!(stable_id(&[]).len(), 32);
    }
}
