//! Recovery codes: 10 per set, each 16 characters of RFC 4648 base32 (80 bits), shown once in
//! four groups of four. What a user types is normalised before it is hashed: case, spaces and
//! dashes do not matter.

use rand::Rng as _;

/// Codes per set (SPEC §8).
pub const COUNT: usize = 10;
/// Characters per code: 16 × 5 bits = 80 bits.
pub const LEN: usize = 16;
const _: () = assert!(LEN * 5 >= 80, "at least 80 bits per code (SPEC §8)");
const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// A fresh set, formatted for display (`ABCD-EFGH-IJKL-MNOP`).
pub fn generate() -> Vec<String> {
    let mut rng = rand::rngs::OsRng;
    (0..COUNT)
        .map(|_| {
            let raw: String = (0..LEN)
                .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
                .collect();
            raw.as_bytes()
                .chunks(4)
                .map(|c| std::str::from_utf8(c).unwrap_or_default())
                .collect::<Vec<_>>()
                .join("-")
        })
        .collect()
}

/// The canonical form of a typed code, or `None` when it cannot be one.
pub fn normalise(typed: &str) -> Option<String> {
    if typed.len() > 64 {
        return None;
    }
    let code: String = typed
        .chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .map(|c| c.to_ascii_uppercase())
        .collect();
    (code.len() == LEN && code.bytes().all(|b| ALPHABET.contains(&b))).then_some(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_is_ten_distinct_80_bit_codes() {
        let codes = generate();
        assert_eq!(codes.len(), COUNT);
        let unique: std::collections::HashSet<_> = codes.iter().collect();
        assert_eq!(unique.len(), COUNT);
        for code in &codes {
            assert_eq!(code.len(), LEN + 3, "{code}");
            assert_eq!(normalise(code).unwrap().len(), LEN);
        }
    }

    #[test]
    fn typed_codes_are_normalised_or_refused() {
        assert_eq!(
            normalise("abcd-efgh ijkl-mnop").as_deref(),
            Some("ABCDEFGHIJKLMNOP")
        );
        for bad in [
            "",
            "ABCD",
            "ABCDEFGHIJKLMNO1",
            "ABCDEFGHIJKLMNOPQ",
            "ÄBCDEFGHIJKLMNOP",
        ] {
            assert_eq!(normalise(bad), None, "{bad:?}");
        }
        assert_eq!(normalise(&"A".repeat(100)), None);
    }
}
