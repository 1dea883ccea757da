//! Text that PostgreSQL can store and compare, and the one place untrusted strings are decoded.
//!
//! PostgreSQL's `text` and `jsonb` refuse the NUL character, and a query string can carry bytes
//! that are not UTF-8 once percent-decoded. Both tiers apply these rules where input enters:
//! [`storable`] for a single string, [`first_unstorable`] for a JSON document (keys included),
//! and [`decode_query`] for a query string. A `&str` is valid UTF-8 by construction, and
//! `serde_json` refuses JSON's lone surrogates (`"\ud800"`) as malformed, so NUL is the one
//! character left to refuse.

use std::fmt::Write as _;

use percent_encoding::percent_decode_str;
use serde_json::Value;

use crate::fields::FieldError;

/// `raw` if PostgreSQL can store and compare it, else [`FieldError::Nul`].
pub fn storable(raw: &str) -> Result<&str, FieldError> {
    if raw.contains('\0') {
        Err(FieldError::Nul)
    } else {
        Ok(raw)
    }
}

/// The path (`roles[2]`, `a.b`) of the first string in `value`, key or value, that PostgreSQL
/// cannot store; `None` when every string is storable. A bad key is named by its parent's path
/// (`body` at the top).
pub fn first_unstorable(value: &Value) -> Option<String> {
    fn walk(value: &Value, path: &mut String) -> bool {
        match value {
            Value::String(s) => storable(s).is_err(),
            Value::Array(items) => items.iter().enumerate().any(|(i, item)| {
                let len = path.len();
                let _ = write!(path, "[{i}]");
                let bad = walk(item, path);
                if !bad {
                    path.truncate(len);
                }
                bad
            }),
            Value::Object(map) => map.iter().any(|(key, item)| {
                if storable(key).is_err() {
                    return true;
                }
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                let bad = walk(item, path);
                if !bad {
                    path.truncate(len);
                }
                bad
            }),
            Value::Null | Value::Bool(_) | Value::Number(_) => false,
        }
    }
    let mut path = String::new();
    walk(value, &mut path).then(|| if path.is_empty() { "body".into() } else { path })
}

/// Replaces every NUL in `value`'s strings (keys included) with U+FFFD, for records that keep
/// what a client sent (an audit entry naming an unknown login) in a `jsonb` column.
pub fn make_storable(value: &mut Value) {
    fn clean(s: &str) -> String {
        s.replace('\0', "\u{fffd}")
    }
    match value {
        Value::String(s) if storable(s).is_err() => *s = clean(s),
        Value::Array(items) => items.iter_mut().for_each(make_storable),
        Value::Object(map) => {
            if map.keys().any(|k| storable(k).is_err()) {
                let entries = std::mem::take(map);
                map.extend(entries.into_iter().map(|(k, v)| (clean(&k), v)));
            }
            map.values_mut().for_each(make_storable);
        }
        _ => {}
    }
}

/// Why a query string was refused: the parameter it names (`query` when the name itself is
/// bad) and the reason, as clients read it in `errors[]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name} {reason}")]
pub struct QueryError {
    pub name: String,
    pub reason: FieldError,
}

/// Decodes an `application/x-www-form-urlencoded` query string (`+` is a space) into its
/// pairs, in order, refusing any name or value that is not UTF-8 once percent-decoded or that
/// holds NUL. Empty pieces (`a=1&&b=2`) are skipped; a piece without `=` has an empty value.
pub fn decode_query(raw: &str) -> Result<Vec<(String, String)>, QueryError> {
    raw.split('&')
        .filter(|piece| !piece.is_empty())
        .map(|piece| {
            let (name, value) = piece.split_once('=').unwrap_or((piece, ""));
            let name = decode_component(name).map_err(|reason| QueryError {
                name: "query".into(),
                reason,
            })?;
            let value = decode_component(value).map_err(|reason| QueryError {
                name: name.clone(),
                reason,
            })?;
            Ok((name, value))
        })
        .collect()
}

fn decode_component(raw: &str) -> Result<String, FieldError> {
    let spaced = raw.replace('+', " ");
    let decoded = percent_decode_str(&spaced)
        .decode_utf8()
        .map_err(|_| FieldError::NotUtf8)?;
    storable(&decoded)?;
    Ok(decoded.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn nul_is_the_character_refused() {
        assert_eq!(storable("ad\0min"), Err(FieldError::Nul));
        assert_eq!(
            storable("Zoë 🦀 \u{202e}\u{feff}"),
            Ok("Zoë 🦀 \u{202e}\u{feff}")
        );
    }

    #[test]
    fn the_first_unstorable_string_is_named_by_its_path() {
        assert_eq!(first_unstorable(&json!({"a": "x", "b": [1, "y"]})), None);
        assert_eq!(
            first_unstorable(&json!({"login": "a\u{0}b"})).as_deref(),
            Some("login")
        );
        assert_eq!(
            first_unstorable(&json!({"roles": ["user", "a\u{0}"]})).as_deref(),
            Some("roles[1]")
        );
        assert_eq!(
            first_unstorable(&json!({"a": {"b\u{0}": 1}})).as_deref(),
            Some("a")
        );
        assert_eq!(
            first_unstorable(&json!({"k\u{0}": 1})).as_deref(),
            Some("body")
        );
        assert_eq!(first_unstorable(&json!("\u{0}")).as_deref(), Some("body"));
        assert_eq!(
            first_unstorable(&json!([[], ["\u{0}"]])).as_deref(),
            Some("[1][0]")
        );
    }

    #[test]
    fn records_keep_what_was_sent_without_nul() {
        let mut v = json!({"login": "ad\u{0}min", "k\u{0}": ["\u{0}"], "n": 1});
        make_storable(&mut v);
        assert_eq!(
            v,
            json!({"login": "ad\u{fffd}min", "k\u{fffd}": ["\u{fffd}"], "n": 1})
        );
        assert_eq!(first_unstorable(&v), None);
    }

    #[test]
    fn lone_surrogates_never_become_strings() {
        assert!(serde_json::from_str::<Value>(r#"{"a": "\ud800"}"#).is_err());
        assert!(serde_json::from_str::<Value>(r#"{"a": "\udc00x"}"#).is_err());
        let pair: Value = serde_json::from_str(r#""\ud83e\udd80""#).unwrap();
        assert_eq!(pair, json!("🦀"));
    }

    #[test]
    fn query_strings_decode_strictly() {
        assert_eq!(
            decode_query("q=a+b%20c&&role=&x").unwrap(),
            [
                ("q".into(), "a b c".into()),
                ("role".into(), String::new()),
                ("x".into(), String::new())
            ]
        );
        assert_eq!(
            decode_query("q=a%00b").unwrap_err(),
            QueryError {
                name: "q".into(),
                reason: FieldError::Nul
            }
        );
        assert_eq!(decode_query("email=%FF").unwrap_err().name, "email");
        assert_eq!(
            decode_query("email=%FF").unwrap_err().reason,
            FieldError::NotUtf8
        );
        assert_eq!(decode_query("%C0%AF=1").unwrap_err().name, "query");
        assert_eq!(
            decode_query("a=%e2%82").unwrap_err().reason,
            FieldError::NotUtf8
        );
        assert_eq!(decode_query("a=%zz").unwrap(), [("a".into(), "%zz".into())]);
    }

    proptest! {
        #[test]
        fn decoded_pairs_are_always_storable(raw in "[a-z%0-9A-F=&+\\x00-\\x7f]{0,64}") {
            if let Ok(pairs) = decode_query(&raw) {
                for (name, value) in pairs {
                    prop_assert!(storable(&name).is_ok() && storable(&value).is_ok());
                }
            }
        }

        #[test]
        fn encoded_text_round_trips(value in "\\PC{0,40}") {
            let encoded: String =
                percent_encoding::utf8_percent_encode(&value, percent_encoding::NON_ALPHANUMERIC).to_string();
            let pairs = decode_query(&format!("v={encoded}"));
            if value.contains('\0') {
                prop_assert!(pairs.is_err());
            } else {
                prop_assert_eq!(pairs.unwrap(), vec![("v".to_owned(), value)]);
            }
        }
    }
}
