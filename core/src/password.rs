//! The password policy of SPEC §4 (NIST SP 800-63B rev. 4): length in characters, no
//! composition rules, not built from the account's identity, and a zxcvbn strength floor.

use zxcvbn::Score;

/// Shortest accepted password, in Unicode scalar values (SPEC §4).
pub const PASSWORD_MIN: usize = 15;
/// Longest accepted password, in Unicode scalar values (SPEC §4). Longer input is refused,
/// never truncated.
pub const PASSWORD_MAX: usize = 128;
/// Minimum zxcvbn score (0–4) (SPEC §4).
pub const MIN_SCORE: Score = Score::Three;

/// Identity parts shorter than this are not searched for inside passwords.
pub const IDENTITY_PART_MIN: usize = 3;
/// Characters a password must keep once every occurrence of the username, the email and its
/// local part is removed: otherwise it is "built from" them (SP 800-63B §3.1.1.2).
pub const OWN_CHARS_MIN: usize = 8;

/// Why a password was refused. The text is shown to the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("must be at least {PASSWORD_MIN} characters long")]
    TooShort,
    #[error("must be at most {PASSWORD_MAX} characters long")]
    TooLong,
    #[error("must not be built from the username or email address")]
    ContainsIdentity,
    #[error("is too easy to guess{}", hint.as_deref().map(|h| format!(": {h}")).unwrap_or_default())]
    TooWeak { hint: Option<String> },
}

/// What the password is checked against besides dictionaries: the account's own identity.
#[derive(Debug, Clone, Copy, Default)]
pub struct Identity<'a> {
    pub username: &'a str,
    pub email: &'a str,
    pub display_name: Option<&'a str>,
}

/// Checks `password` against the policy.
pub fn check(password: &str, identity: Identity<'_>) -> Result<(), PasswordError> {
    let len = password.chars().count();
    if len < PASSWORD_MIN {
        return Err(PasswordError::TooShort);
    }
    if len > PASSWORD_MAX {
        return Err(PasswordError::TooLong);
    }
    let lowered = password.to_lowercase();
    let local = identity
        .email
        .rsplit_once('@')
        .map_or(identity.email, |(l, _)| l);
    let identity_parts = [identity.username, local, identity.email];
    let mut rest = lowered.clone();
    let mut longest_first = identity_parts;
    longest_first.sort_by_key(|part| std::cmp::Reverse(part.len()));
    for part in longest_first {
        let part = part.to_lowercase();
        if part.chars().count() >= IDENTITY_PART_MIN {
            rest = rest.replace(&part, "");
        }
    }
    if rest.chars().count() < OWN_CHARS_MIN {
        // Without the identity, too little of the password is left.
        return Err(PasswordError::ContainsIdentity);
    }
    let mut inputs: Vec<&str> = identity_parts.to_vec();
    inputs.extend(identity.display_name);
    let entropy = zxcvbn::zxcvbn(password, &inputs);
    if entropy.score() < MIN_SCORE {
        let hint = entropy.feedback().and_then(|f| {
            f.warning()
                .map(|w| w.to_string())
                .or_else(|| f.suggestions().first().map(|s| s.to_string()))
        });
        return Err(PasswordError::TooWeak { hint });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: Identity<'static> = Identity {
        username: "alice",
        email: "alice.smith@example.com",
        display_name: Some("Alice"),
    };

    #[test]
    fn length_counts_characters_not_bytes() {
        assert_eq!(check("short", ID), Err(PasswordError::TooShort));
        // 14 two-byte characters: 28 bytes but still too short.
        assert_eq!(check(&"é".repeat(14), ID), Err(PasswordError::TooShort));
        assert_eq!(check(&"x".repeat(129), ID), Err(PasswordError::TooLong));
    }

    #[test]
    fn identity_derived_passwords_are_refused() {
        assert_eq!(
            check("alice.smith12345", ID),
            Err(PasswordError::ContainsIdentity)
        );
        assert_eq!(
            check("ALICE@alice@1234", ID),
            Err(PasswordError::ContainsIdentity)
        );
    }

    #[test]
    fn common_passwords_are_refused_with_a_reason() {
        let err = check("passwordpassword", ID).unwrap_err();
        assert!(matches!(err, PasswordError::TooWeak { .. }));
        assert!(err.to_string().starts_with("is too easy to guess"));
        assert!(check("aaaaaaaaaaaaaaaaaa", ID).is_err());
    }

    #[test]
    fn strong_passphrases_pass_without_composition_rules() {
        assert_eq!(check("correct horse battery staple violin", ID), Ok(()));
        assert_eq!(check("плавающий-кит-на-закате", ID), Ok(()));
    }
}
