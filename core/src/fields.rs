//! Identity fields that parse once: a value of these types is valid by construction.

use serde::{Serialize, Serializer};
use validator::ValidateEmail;

/// Shortest username (SPEC §2).
pub const USERNAME_MIN: usize = 3;
/// Longest username (SPEC §2).
pub const USERNAME_MAX: usize = 32;
/// Longest email address: RFC 5321 §4.5.3.1.3 limits a path to 256 octets including the
/// angle brackets, which leaves 254 for the address.
pub const EMAIL_MAX: usize = 254;
/// Longest display name, in characters (SPEC §2).
pub const DISPLAY_NAME_MAX: usize = 100;
/// Shortest custom role name.
pub const ROLE_NAME_MIN: usize = 2;
/// Longest custom role name.
pub const ROLE_NAME_MAX: usize = 32;
/// Longest role description, in characters.
pub const ROLE_DESCRIPTION_MAX: usize = 500;

/// Why a field was refused. The `Display` text is what clients read in `errors[].detail`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    #[error("must be between {min} and {max} characters long")]
    Length { min: usize, max: usize },
    #[error("may contain only lower-case letters a-z, digits and the characters _ . -")]
    UsernameCharset,
    #[error("is not a valid email address")]
    EmailInvalid,
    #[error("must not contain control characters")]
    ControlCharacters,
    #[error("may contain only lower-case letters a-z, digits and the characters _ -")]
    RoleNameCharset,
    #[error("is required")]
    Required,
    #[error("must not contain the NUL character")]
    Nul,
    #[error("must be valid UTF-8 once percent-decoded")]
    NotUtf8,
}

/// A username: 3–32 characters of `[a-z0-9_.-]`, stored lower-case.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Username(String);

impl Username {
    /// Parses a username, folding ASCII upper case to lower case first.
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let lowered = raw.to_ascii_lowercase();
        let len = lowered.chars().count();
        if !(USERNAME_MIN..=USERNAME_MAX).contains(&len) {
            return Err(FieldError::Length {
                min: USERNAME_MIN,
                max: USERNAME_MAX,
            });
        }
        if !lowered.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b'-')
        }) {
            return Err(FieldError::UsernameCharset);
        }
        Ok(Self(lowered))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An email address, kept as given (unique case-insensitively in storage).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.len() > EMAIL_MAX {
            return Err(FieldError::Length {
                min: 3,
                max: EMAIL_MAX,
            });
        }
        if !trimmed.validate_email() || trimmed.chars().any(char::is_control) {
            return Err(FieldError::EmailInvalid);
        }
        Ok(Self(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The lower-cased address, the form uniqueness and look-ups use.
    pub fn normalized(&self) -> String {
        self.0.to_lowercase()
    }

    /// The part before the `@`.
    pub fn local_part(&self) -> &str {
        self.0
            .rsplit_once('@')
            .map_or(self.0.as_str(), |(local, _)| local)
    }
}

/// A display name: at most 100 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DisplayName(String);

impl DisplayName {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        if raw.chars().count() > DISPLAY_NAME_MAX {
            return Err(FieldError::Length {
                min: 0,
                max: DISPLAY_NAME_MAX,
            });
        }
        if raw.chars().any(char::is_control) {
            return Err(FieldError::ControlCharacters);
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A role name: 2–32 characters of `[a-z0-9_-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoleName(String);

impl RoleName {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let len = raw.chars().count();
        if !(ROLE_NAME_MIN..=ROLE_NAME_MAX).contains(&len) {
            return Err(FieldError::Length {
                min: ROLE_NAME_MIN,
                max: ROLE_NAME_MAX,
            });
        }
        if !raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-'))
        {
            return Err(FieldError::RoleNameCharset);
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

macro_rules! string_newtype_common {
    ($($ty:ty),*) => {$(
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }
        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    )*};
}
string_newtype_common!(Username, Email, DisplayName, RoleName);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn username_is_lowercased_and_checked() {
        assert_eq!(Username::parse("Alice_1").unwrap().as_str(), "alice_1");
        assert_eq!(
            Username::parse("al"),
            Err(FieldError::Length { min: 3, max: 32 })
        );
        assert_eq!(Username::parse("al ice"), Err(FieldError::UsernameCharset));
        assert_eq!(Username::parse("ålice"), Err(FieldError::UsernameCharset));
        assert!(Username::parse(&"a".repeat(33)).is_err());
        assert!(Username::parse(&"a".repeat(32)).is_ok());
    }

    #[test]
    fn email_is_validated() {
        assert!(Email::parse("alice@example.com").is_ok());
        assert_eq!(Email::parse("alice"), Err(FieldError::EmailInvalid));
        assert_eq!(Email::parse("a@b@c"), Err(FieldError::EmailInvalid));
        assert_eq!(
            Email::parse("Alice@Example.COM").unwrap().normalized(),
            "alice@example.com"
        );
        assert_eq!(
            Email::parse("bob.smith@example.com").unwrap().local_part(),
            "bob.smith"
        );
    }

    #[test]
    fn display_name_rejects_control_chars_and_length() {
        assert!(DisplayName::parse("Zoë 🦀").is_ok());
        assert_eq!(
            DisplayName::parse("a\u{7}b"),
            Err(FieldError::ControlCharacters)
        );
        assert!(DisplayName::parse(&"é".repeat(100)).is_ok());
        assert!(DisplayName::parse(&"é".repeat(101)).is_err());
    }

    proptest! {
        #[test]
        fn username_parse_never_panics_and_output_is_canonical(s in "\\PC{0,40}") {
            if let Ok(u) = Username::parse(&s) {
                prop_assert_eq!(Username::parse(u.as_str()).unwrap(), u.clone());
                prop_assert!(u.as_str().len() >= USERNAME_MIN && u.as_str().len() <= USERNAME_MAX);
            }
        }

        #[test]
        fn valid_usernames_are_accepted(s in "[a-z0-9_.-]{3,32}") {
            let parsed = Username::parse(&s).unwrap();
            prop_assert_eq!(parsed.as_str(), s.as_str());
        }

        #[test]
        fn email_and_display_name_never_panic(s in "\\PC{0,300}") {
            let _ = Email::parse(&s);
            if let Ok(d) = DisplayName::parse(&s) {
                prop_assert!(!d.as_str().chars().any(char::is_control));
            }
        }
    }
}
