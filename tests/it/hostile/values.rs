//! The hostile values the sweep feeds in, and how each is spelled in a URL, a JSON string and a
//! header: NUL, overlong, not UTF-8, lone surrogates, controls, Unicode edge cases, syntax
//! look-alikes, and seeded random strings.

use std::fmt;

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use reqwest::header::HeaderValue;

/// One hostile value, and how it is spelled in each place it can go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hostile {
    /// A string (valid UTF-8, possibly holding NUL, controls, or characters that change
    /// length when case-folded).
    Text(String),
    /// Bytes that are not UTF-8: `%FF%FE` in a URL or form, raw `0xFF 0xFE` in a JSON string
    /// or a header.
    NotUtf8,
    /// A lone UTF-16 surrogate: `"\ud800"` in JSON, its CESU-8 bytes `%ED%A0%80` in a URL.
    LoneSurrogate,
}

impl Hostile {
    fn text(s: impl Into<String>) -> Self {
        Self::Text(s.into())
    }

    /// Whether PostgreSQL could not store it: it must never be accepted.
    pub(super) fn holds_nul(&self) -> bool {
        matches!(self, Self::Text(s) if s.contains('\0'))
    }

    /// Spelled for a path segment, a query value or a form field.
    pub(super) fn url_encoded(&self) -> String {
        match self {
            Self::Text(s) => utf8_percent_encode(s, NON_ALPHANUMERIC).to_string(),
            Self::NotUtf8 => "%FF%FEa".into(),
            Self::LoneSurrogate => "%ED%A0%80".into(),
        }
    }

    /// Spelled as a JSON string literal, quotes included.
    pub(super) fn json_literal(&self) -> Vec<u8> {
        match self {
            Self::Text(s) => serde_json::to_vec(s).expect("a string serializes"),
            Self::NotUtf8 => b"\"\xff\xfea\"".to_vec(),
            Self::LoneSurrogate => br#""\ud800""#.to_vec(),
        }
    }

    /// Spelled as a header value, if a header can carry it at all (no control characters:
    /// clients cannot send them).
    pub(super) fn header_value(&self, prefix: &str) -> Option<HeaderValue> {
        let mut bytes = prefix.as_bytes().to_vec();
        match self {
            Self::Text(s) => bytes.extend_from_slice(s.as_bytes()),
            Self::NotUtf8 => bytes.extend_from_slice(b"\xff\xfea"),
            Self::LoneSurrogate => bytes.extend_from_slice(b"\xed\xa0\x80"),
        }
        HeaderValue::from_bytes(&bytes).ok()
    }
}

impl fmt::Display for Hostile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Text(s) if s.chars().count() > 40 => {
                write!(
                    f,
                    "{:?}… ({} chars)",
                    s.chars().take(20).collect::<String>(),
                    s.chars().count()
                )
            }
            Self::Text(s) => write!(f, "{s:?}"),
            Self::NotUtf8 => f.write_str("<not UTF-8>"),
            Self::LoneSurrogate => f.write_str("<lone surrogate>"),
        }
    }
}

/// The fixed hostile values: NUL, overlong, not UTF-8, lone surrogates, controls, Unicode
/// edge cases, and strings that look like syntax.
pub fn fixed_values() -> Vec<Hostile> {
    vec![
        Hostile::text("ad\0min"),
        Hostile::text("\0"),
        Hostile::text("a".repeat(10_000)),
        Hostile::NotUtf8,
        Hostile::LoneSurrogate,
        Hostile::text("\u{1}\u{7f}\r\n\t\u{85}"),
        Hostile::text("\u{202e}\u{200b}\u{feff}x"),
        Hostile::text("🦀e\u{301}\u{10ffff}\u{fffd}"),
        Hostile::text("İǅßﬃ".repeat(9)),
        Hostile::text("' OR '1'='1' --"),
        Hostile::text("%00%ff%zz"),
        Hostile::text("\\u0000"),
        Hostile::text("../../../etc/passwd"),
        Hostile::text(""),
        Hostile::text(" "),
    ]
}

/// The values the edge runs use: one of each kind.
pub fn edge_values() -> Vec<Hostile> {
    vec![
        Hostile::text("ad\0min"),
        Hostile::text("a".repeat(10_000)),
        Hostile::NotUtf8,
        Hostile::LoneSurrogate,
        Hostile::text("\u{1}\u{7f}\r\n\t"),
        Hostile::text("İǅßﬃ".repeat(9)),
    ]
}

/// `n` random strings of any characters (NUL, controls, surrogate-free astral planes),
/// reproducible from `seed`.
pub fn random_values(seed: u8, n: usize) -> Vec<Hostile> {
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &[seed; 32]);
    let mut runner = TestRunner::new_with_rng(Config::default(), rng);
    let strategy = prop::collection::vec(any::<char>(), 0..48);
    (0..n)
        .map(|_| {
            let chars = strategy.new_tree(&mut runner).expect("a value").current();
            Hostile::Text(chars.into_iter().collect())
        })
        .collect()
}
