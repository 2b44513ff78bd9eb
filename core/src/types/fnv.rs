//! FNV-1a, 64-bit: a small, fixed, platform-independent hash for state fingerprints and
//! determinism traces (not for hash tables or security).

/// The FNV-1a offset basis: the hash of nothing.
pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0100_0000_01b3;

/// Folds `bytes`, prefixed by their length (so `ab|c` and `a|bc` differ), into `hash`.
pub fn fold(hash: &mut u64, bytes: &[u8]) {
    for &byte in (bytes.len() as u64).to_le_bytes().iter().chain(bytes) {
        *hash = (*hash ^ u64::from(byte)).wrapping_mul(FNV_PRIME);
    }
}

/// Folds a number into `hash`.
pub fn fold_u64(hash: &mut u64, value: u64) {
    fold(hash, &value.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_separates_inputs() {
        let (mut a, mut b) = (FNV_OFFSET, FNV_OFFSET);
        fold(&mut a, b"ab");
        fold(&mut a, b"c");
        fold(&mut b, b"a");
        fold(&mut b, b"bc");
        assert_ne!(a, b);
        let mut c = FNV_OFFSET;
        fold(&mut c, b"ab");
        fold(&mut c, b"c");
        assert_eq!(a, c, "deterministic");
    }
}
