//! TOTP (RFC 6238) as SPEC §8 fixes it: HMAC-SHA-1, 6 digits, 30-second steps, 160-bit secrets;
//! a code is accepted for the current step and the previous one. The arithmetic is `totp-rs`.

use rand::RngCore as _;
use totp_rs::{Algorithm, Secret, TOTP};

/// Seconds per time step.
pub const STEP_SECS: u64 = 30;
/// Digits of a code.
pub const DIGITS: usize = 6;
/// Bytes of a secret (160 bits, RFC 4226 §4's recommendation).
pub const SECRET_BYTES: usize = 20;

/// A fresh random secret.
pub fn new_secret() -> Vec<u8> {
    let mut secret = vec![0u8; SECRET_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    secret
}

/// The secret as authenticator apps take it typed in: RFC 4648 base32, unpadded.
pub fn base32(secret: &[u8]) -> String {
    Secret::Raw(secret.to_vec()).to_encoded().to_string()
}

fn totp(secret: &[u8], digits: usize) -> TOTP {
    TOTP::new_unchecked(
        Algorithm::SHA1,
        digits,
        0,
        STEP_SECS,
        secret.to_vec(),
        None,
        String::new(),
    )
}

/// The `otpauth://` URI of the secret, for a QR code (`issuer` and `account` must hold no `:`).
pub fn otpauth_uri(secret: &[u8], issuer: &str, account: &str) -> Option<String> {
    TOTP::new(
        Algorithm::SHA1,
        DIGITS,
        0,
        STEP_SECS,
        secret.to_vec(),
        Some(issuer.to_owned()),
        account.to_owned(),
    )
    .ok()
    .map(|t| t.get_url())
}

/// The time step of a Unix time.
pub fn step_of(unix_secs: u64) -> i64 {
    (unix_secs / STEP_SECS) as i64
}

/// The code of step `step`.
pub fn code_at(secret: &[u8], step: i64) -> String {
    totp(secret, DIGITS).generate(step.max(0) as u64 * STEP_SECS)
}

/// The step `code` is right for at `unix_secs`: the current one, else the previous one, and
/// only one later than `after` (the factor's last accepted step). Compared in constant time.
pub fn matching_step(secret: &[u8], code: &str, unix_secs: u64, after: Option<i64>) -> Option<i64> {
    if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let totp = totp(secret, DIGITS);
    let now = step_of(unix_secs);
    [now, now - 1].into_iter().find(|&step| {
        step >= 0
            && after.is_none_or(|last| step > last)
            && totp.check(code, step as u64 * STEP_SECS)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B: the SHA-1 column (8 digits, seed "12345678901234567890").
    #[test]
    fn rfc6238_appendix_b_sha1_vectors() {
        let seed = b"12345678901234567890";
        let vectors = [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ];
        for (time, code) in vectors {
            assert_eq!(totp(seed, 8).generate(time), code, "T = {time}");
            assert!(totp(seed, 8).check(code, time));
        }
        // Six digits are the last six of the same truncation (RFC 4226 §5.3).
        assert_eq!(code_at(seed, step_of(59)), "287082");
    }

    #[test]
    fn the_current_and_the_previous_step_are_accepted_once_each() {
        let secret = new_secret();
        let t = 1_700_000_015;
        let now = step_of(t);
        let current = code_at(&secret, now);
        let previous = code_at(&secret, now - 1);
        assert_eq!(matching_step(&secret, &current, t, None), Some(now));
        assert_eq!(matching_step(&secret, &previous, t, None), Some(now - 1));
        assert_eq!(
            matching_step(&secret, &code_at(&secret, now - 2), t, None),
            None
        );
        assert_eq!(
            matching_step(&secret, &code_at(&secret, now + 1), t, None),
            None
        );
        // Once a step is accepted, it and every earlier one are refused.
        assert_eq!(matching_step(&secret, &current, t, Some(now)), None);
        assert_eq!(matching_step(&secret, &previous, t, Some(now)), None);
        assert_eq!(
            matching_step(&secret, &current, t, Some(now - 1)),
            Some(now)
        );
    }

    #[test]
    fn malformed_codes_match_nothing() {
        let secret = new_secret();
        for code in ["", "12345", "1234567", "12a456", "１２３４５６", " 123456"] {
            assert_eq!(
                matching_step(&secret, code, 1_700_000_000, None),
                None,
                "{code:?}"
            );
        }
    }

    #[test]
    fn secrets_are_160_random_bits_and_the_uri_names_them() {
        let (a, b) = (new_secret(), new_secret());
        assert_eq!(a.len(), 20);
        assert_ne!(a, b);
        assert_eq!(base32(&a).len(), 32);
        let uri = otpauth_uri(&a, "users.example", "alice").unwrap();
        assert!(
            uri.starts_with("otpauth://totp/users.example:alice?"),
            "{uri}"
        );
        assert!(uri.contains(&format!("secret={}", base32(&a))), "{uri}");
        assert!(uri.contains("issuer=users.example"), "{uri}");
    }
}
