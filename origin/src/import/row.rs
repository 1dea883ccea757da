//! One row of an import: its fields ([`Row`]), checked alone into a [`Valid`] row, and whether
//! the importer may grant its roles.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use users_core::fields::{DisplayName, Email, Username};
use users_core::password::{self, Identity};
use users_core::perms::{Permission, USER_ROLE};
use users_core::problem::FieldProblem;
use users_core::text;

use crate::fields::Check;
use crate::legacy_hash;

/// Longest `external_id`.
pub const EXTERNAL_ID_MAX: usize = 255;

/// One row: an account as another system had it.
#[derive(Debug, Default, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Row {
    /// Ignored (the id an export gives each account): an account keeps, or gets, its own.
    #[schema(value_type = Option<String>)]
    pub id: Option<serde_json::Value>,
    #[schema(pattern = "^[A-Za-z0-9_.-]{3,32}$")]
    pub username: Option<String>,
    #[schema(format = Email, max_length = 254)]
    pub email: Option<String>,
    #[schema(max_length = 100)]
    pub display_name: Option<String>,
    /// Default `["user"]`; every role must exist and be grantable by the importer.
    pub roles: Option<Vec<String>>,
    /// Default `true`.
    pub is_active: Option<bool>,
    /// Default `false`.
    pub email_verified: Option<bool>,
    /// RFC 3339; on insert only (default: now).
    #[schema(format = DateTime)]
    pub created_at: Option<String>,
    /// The account's id in the system it comes from (unique).
    #[schema(max_length = 255)]
    pub external_id: Option<String>,
    /// A hash in a supported format (taken as it is, within the cost bounds); or `password`.
    pub password_hash: Option<String>,
    /// A plaintext password (the password policy applies; at most 100 rows per request).
    #[schema(min_length = 15, max_length = 128)]
    pub password: Option<String>,
}

/// A valid row.
#[derive(Debug)]
pub struct Valid {
    pub(super) username: Username,
    pub(super) email: Email,
    pub(super) display_name: Option<DisplayName>,
    pub(super) roles: Vec<String>,
    pub(super) is_active: bool,
    pub(super) email_verified: bool,
    pub(super) created_at: Option<OffsetDateTime>,
    pub(super) external_id: Option<String>,
    /// The hash to store (`None`: a plaintext password not hashed yet, or a dry run).
    pub(super) hash: Option<String>,
    pub(super) password: Option<String>,
}

/// Validates `row` alone.
pub(super) fn validate(row: Row) -> Result<Valid, Vec<FieldProblem>> {
    let mut check = Check::default();
    let username = check
        .required("username", row.username.as_deref())
        .and_then(|u| check.field("username", Username::parse(u)));
    let email = check
        .required("email", row.email.as_deref())
        .and_then(|e| check.field("email", Email::parse(e)));
    let display_name = match row.display_name.as_deref() {
        Some(d) => check.field("display_name", DisplayName::parse(d)).map(Some),
        None => Some(None),
    };
    let created_at = match row.created_at.as_deref() {
        Some(t) => check
            .field(
                "created_at",
                OffsetDateTime::parse(t, &Rfc3339).map_err(|_| "must be an RFC 3339 date-time"),
            )
            .map(Some),
        None => Some(None),
    };
    if let Some(id) = &row.external_id
        && (id.is_empty() || id.len() > EXTERNAL_ID_MAX || text::storable(id).is_err())
    {
        check.fail(
            "external_id",
            format!("must be 1 to {EXTERNAL_ID_MAX} bytes of text"),
        );
    }
    let hash = match (&row.password_hash, &row.password) {
        (Some(_), Some(_)) => {
            check.fail(
                "password",
                "give either password_hash or password, not both",
            );
            None
        }
        (None, None) => {
            check.fail("password_hash", "password_hash or password is required");
            None
        }
        (Some(hash), None) => match legacy_hash::check(hash) {
            Ok(_) => Some(hash.clone()),
            Err(e) => {
                check.fail("password_hash", e);
                None
            }
        },
        (None, Some(password)) => {
            let identity = Identity {
                username: username.as_ref().map_or("", Username::as_str),
                email: email.as_ref().map_or("", Email::as_str),
                display_name: None,
            };
            check.field("password", password::check(password, identity));
            None
        }
    };
    let mut roles = row.roles.unwrap_or_else(|| vec![USER_ROLE.to_owned()]);
    roles.sort();
    roles.dedup();
    check.finish().map_err(|e| e.0)?;
    match (username, email, display_name, created_at) {
        (Some(username), Some(email), Some(display_name), Some(created_at)) => Ok(Valid {
            username,
            email,
            display_name,
            roles,
            is_active: row.is_active.unwrap_or(true),
            email_verified: row.email_verified.unwrap_or(false),
            created_at,
            external_id: row.external_id,
            hash,
            password: row.password,
        }),
        _ => Err(vec![FieldProblem::new("body", "is incomplete")]),
    }
}

/// Why `roles` cannot be granted by the importer, if they cannot: unknown roles, or roles
/// carrying permissions it does not hold.
pub(super) fn role_problem(
    roles: &[String],
    known: &BTreeMap<String, Vec<Permission>>,
    held: &BTreeSet<Permission>,
) -> Option<FieldProblem> {
    for name in roles {
        match known.get(name) {
            None => return Some(FieldProblem::new("roles", format!("unknown role {name:?}"))),
            Some(perms) if perms.iter().any(|p| !held.contains(p)) => {
                return Some(FieldProblem::new(
                    "roles",
                    format!(
                        "you cannot grant the role {name:?}: it carries permissions you do not hold"
                    ),
                ));
            }
            Some(_) => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn row(extra: serde_json::Value) -> Row {
        let mut base = json!({"username": "ann", "email": "ann@example.com",
                              "password_hash": "$2b$05$jM/bPVicsBDxCEFWeE6ChuUphkt10Vupc1UAxtmgxPcEYSvsLjlYC"});
        for (k, v) in extra.as_object().unwrap() {
            base[k] = v.clone();
        }
        serde_json::from_value(base).unwrap()
    }

    fn fields(r: Result<Valid, Vec<FieldProblem>>) -> Vec<String> {
        r.err()
            .unwrap_or_default()
            .into_iter()
            .map(|p| p.field)
            .collect()
    }

    #[test]
    fn a_row_with_a_hash_in_bounds_is_valid() {
        let v = validate(row(json!({}))).unwrap();
        assert_eq!(v.roles, ["user"]);
        assert!(v.is_active && !v.email_verified && v.hash.is_some());
    }

    #[test]
    fn each_bad_field_is_named() {
        let over = "$2b$13$jM/bPVicsBDxCEFWeE6ChuUphkt10Vupc1UAxtmgxPcEYSvsLjlYC";
        assert_eq!(
            fields(validate(row(json!({"password_hash": over})))),
            ["password_hash"]
        );
        assert_eq!(
            fields(validate(row(json!({"password_hash": "plain"})))),
            ["password_hash"]
        );
        assert_eq!(
            fields(validate(row(json!({"username": "a b", "email": "nope"})))),
            ["username", "email"]
        );
        assert_eq!(
            fields(validate(row(json!({"created_at": "yesterday"})))),
            ["created_at"]
        );
        assert_eq!(
            fields(validate(row(json!({"external_id": ""})))),
            ["external_id"]
        );
        assert_eq!(
            fields(validate(row(
                json!({"password": "correct horse battery staple"})
            ))),
            ["password"],
            "both a hash and a password"
        );
        let mut none = row(json!({}));
        none.password_hash = None;
        assert_eq!(fields(validate(none)), ["password_hash"]);
        let mut weak = row(json!({"password": "short"}));
        weak.password_hash = None;
        assert_eq!(fields(validate(weak)), ["password"]);
    }

    #[test]
    fn roles_must_exist_and_be_grantable() {
        let known = BTreeMap::from([
            ("user".to_owned(), vec![]),
            ("admin".to_owned(), vec![Permission::UsersDelete]),
        ]);
        let held = BTreeSet::from([Permission::UsersCreate]);
        assert!(role_problem(&["user".into()], &known, &held).is_none());
        assert!(role_problem(&["admin".into()], &known, &held).is_some());
        assert!(role_problem(&["ghost".into()], &known, &held).is_some());
    }
}
