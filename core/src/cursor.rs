//! Opaque keyset-pagination cursors and the sort orders they belong to.
//!
//! A cursor names the last row a page showed by its sort key and id; the next page starts
//! strictly after it, so the cost of a page is independent of its depth and rows inserted
//! meanwhile are neither skipped nor repeated (among rows present when the walk began).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The sort orders of `GET /users`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Sort {
    #[serde(rename = "created_at")]
    CreatedAsc,
    #[serde(rename = "-created_at")]
    CreatedDesc,
    #[serde(rename = "username")]
    UsernameAsc,
    #[serde(rename = "-username")]
    UsernameDesc,
}

impl Sort {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "created_at" => Some(Self::CreatedAsc),
            "-created_at" => Some(Self::CreatedDesc),
            "username" => Some(Self::UsernameAsc),
            "-username" => Some(Self::UsernameDesc),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::CreatedAsc => "created_at",
            Self::CreatedDesc => "-created_at",
            Self::UsernameAsc => "username",
            Self::UsernameDesc => "-username",
        }
    }

    pub fn descending(self) -> bool {
        matches!(self, Self::CreatedDesc | Self::UsernameDesc)
    }
}

/// Where the next page starts: after the row with this sort key and id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    #[serde(rename = "s")]
    pub sort: Sort,
    /// The sort key of the last row shown: a username, or a timestamp in microseconds.
    #[serde(rename = "k")]
    pub key: CursorKey,
    #[serde(rename = "i")]
    pub id: Uuid,
}

/// The sort key stored in a cursor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CursorKey {
    Micros(i64),
    Text(String),
}

/// A cursor that was not made by this API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the cursor is not one this API issued")]
pub struct CursorError;

/// Longest cursor accepted, in bytes; real ones are far shorter.
pub const CURSOR_MAX: usize = 512;

impl Cursor {
    pub fn encode(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        URL_SAFE_NO_PAD.encode(json)
    }

    pub fn decode(raw: &str) -> Result<Self, CursorError> {
        if raw.len() > CURSOR_MAX {
            return Err(CursorError);
        }
        let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| CursorError)?;
        let cursor: Cursor = serde_json::from_slice(&bytes).map_err(|_| CursorError)?;
        let key_fits = matches!(
            (&cursor.key, cursor.sort),
            (CursorKey::Micros(_), Sort::CreatedAsc | Sort::CreatedDesc)
                | (CursorKey::Text(_), Sort::UsernameAsc | Sort::UsernameDesc)
        );
        if key_fits {
            Ok(cursor)
        } else {
            Err(CursorError)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn cursors_round_trip() {
        let c = Cursor {
            sort: Sort::UsernameDesc,
            key: CursorKey::Text("bob".into()),
            id: Uuid::nil(),
        };
        assert_eq!(Cursor::decode(&c.encode()), Ok(c));
        let t = Cursor {
            sort: Sort::CreatedAsc,
            key: CursorKey::Micros(-5),
            id: Uuid::max(),
        };
        assert_eq!(Cursor::decode(&t.encode()), Ok(t));
    }

    #[test]
    fn mismatched_key_kinds_are_refused() {
        let c = Cursor {
            sort: Sort::CreatedAsc,
            key: CursorKey::Text("bob".into()),
            id: Uuid::nil(),
        };
        assert_eq!(Cursor::decode(&c.encode()), Err(CursorError));
    }

    proptest! {
        #[test]
        fn arbitrary_input_never_panics(s in "\\PC{0,600}") {
            let _ = Cursor::decode(&s);
        }

        #[test]
        fn text_keys_round_trip(k in "\\PC{0,64}", desc in any::<bool>()) {
            let sort = if desc { Sort::UsernameDesc } else { Sort::UsernameAsc };
            let c = Cursor { sort, key: CursorKey::Text(k), id: Uuid::nil() };
            prop_assert_eq!(Cursor::decode(&c.encode()), Ok(c));
        }
    }
}
