//! Reading query strings: parameters into typed values, with `422` problems naming the field
//! (a value that is not UTF-8 once percent-decoded, or holds NUL, included). Field-by-field
//! checks of bodies use [`crate::fields::Check`].

use serde::de::DeserializeOwned;

use users_core::text;

use crate::fields::Check;
use crate::http::error::{ApiError, ApiResult};

/// Parses a query string into `T`. Empty parameters (`?sort=&limit=`) count as absent.
pub fn non_empty_query<T: DeserializeOwned>(raw: Option<&str>) -> ApiResult<T> {
    let pairs = text::decode_query(raw.unwrap_or_default())
        .map_err(|e| ApiError::validation(&e.name, e.reason))?;
    let non_empty: Vec<_> = pairs.into_iter().filter(|(_, v)| !v.is_empty()).collect();
    let non_empty = serde_urlencoded::to_string(&non_empty).unwrap_or_default();
    serde_urlencoded::from_str(&non_empty).map_err(|e| ApiError::validation("query", e.to_string()))
}

/// Default and largest page size of a list (SPEC §3).
pub const LIMIT_DEFAULT: i64 = 20;
pub const LIMIT_MAX: i64 = 100;

/// The `limit` parameter of a list: 1–[`LIMIT_MAX`], [`LIMIT_DEFAULT`] when absent; a bad one
/// is recorded in `check`.
pub fn page_limit(check: &mut Check, raw: Option<&str>) -> i64 {
    match raw {
        None => LIMIT_DEFAULT,
        Some(l) => check
            .field(
                "limit",
                l.parse::<i64>()
                    .ok()
                    .filter(|n| (1..=LIMIT_MAX).contains(n))
                    .ok_or("must be an integer from 1 to 100"),
            )
            .unwrap_or(LIMIT_DEFAULT),
    }
}

/// An optional RFC 3339 timestamp parameter; a bad one is recorded in `check`.
pub fn parse_time(
    check: &mut Check,
    name: &str,
    raw: Option<&str>,
) -> Option<time::OffsetDateTime> {
    let raw = raw?;
    check.field(
        name,
        time::OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339)
            .map_err(|_| "must be an RFC 3339 timestamp such as 2026-01-31T12:00:00Z"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Q {
        a: Option<String>,
        b: Option<i64>,
    }

    #[test]
    fn empty_parameters_count_as_absent() {
        let q: Q = non_empty_query(Some("a=&b=3")).unwrap();
        assert_eq!((q.a, q.b), (None, Some(3)));
        let q: Q = non_empty_query(None).unwrap();
        assert_eq!((q.a, q.b), (None, None));
    }

    #[test]
    fn undecodable_values_are_refused_naming_the_parameter() {
        for raw in ["a=x%00y", "a=%FF", "b=1&a=%C3"] {
            let err = non_empty_query::<Q>(Some(raw)).unwrap_err();
            assert!(
                matches!(err, ApiError::Validation(ref e) if e[0].field == "a"),
                "{raw}: {err:?}"
            );
        }
    }

    #[test]
    fn unknown_parameters_are_refused_naming_the_query() {
        let err = non_empty_query::<Q>(Some("c=1")).unwrap_err();
        assert!(
            matches!(err, ApiError::Validation(ref e) if e[0].field == "query"),
            "{err:?}"
        );
    }
}
