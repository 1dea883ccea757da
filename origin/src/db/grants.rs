//! What a user's roles grant, read beside the user in the queries that sign or authorise a
//! token: the `perms` column, and the `perms_without_mfa` column that leaves out the roles of
//! `MFA_REQUIRED_ROLES` (SPEC §8).

use std::collections::BTreeSet;

use tokio_postgres::Row;
use users_core::perms::Permission;
use uuid::Uuid;

use super::GenericClient;

/// A user's permissions through their roles, as the column `perms`.
pub(super) const PERMS: &str = "ARRAY(SELECT DISTINCT p FROM user_roles ur JOIN roles r ON r.name = ur.role_name, \
     unnest(r.permissions) AS p WHERE ur.user_id = u.id) AS perms";

/// A user's permissions without the roles of `MFA_REQUIRED_ROLES` (the text array parameter
/// `$param`), as the column `perms_without_mfa`.
pub(super) fn perms_without_mfa(param: usize) -> String {
    format!(
        "ARRAY(SELECT DISTINCT p FROM user_roles ur JOIN roles r ON r.name = ur.role_name, \
         unnest(r.permissions) AS p WHERE ur.user_id = u.id \
         AND NOT (ur.role_name = ANY(${param}::text[]))) AS perms_without_mfa"
    )
}

/// What a user's roles grant: everything, and what is left without the roles whose
/// permissions need a token proved with a TOTP code (`MFA_REQUIRED_ROLES`, SPEC §8).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    pub all: BTreeSet<Permission>,
    pub without_mfa: BTreeSet<Permission>,
}

impl Grants {
    /// What a token may use: everything with `otp` in its `amr`, else the rest.
    pub fn usable(&self, otp: bool) -> &BTreeSet<Permission> {
        if otp { &self.all } else { &self.without_mfa }
    }

    /// What such a token holds only after a TOTP code.
    pub fn withheld(&self, otp: bool) -> BTreeSet<Permission> {
        self.all.difference(self.usable(otp)).copied().collect()
    }
}

/// The [`Grants`] of a row with the columns `perms` and `perms_without_mfa`.
pub(super) fn grants_of(r: &Row) -> Grants {
    let without: Vec<String> = r.get("perms_without_mfa");
    Grants {
        all: perms_of(r),
        without_mfa: without
            .iter()
            .filter_map(|p| Permission::parse(p))
            .collect(),
    }
}

/// The [`Grants`] of user `id` now (empty when there is no such user).
pub async fn grants(
    db: &impl GenericClient,
    id: Uuid,
    mfa_roles: &[String],
) -> Result<Grants, tokio_postgres::Error> {
    let sql = format!(
        "SELECT {PERMS}, {} FROM users u WHERE u.id = $1",
        perms_without_mfa(2)
    );
    Ok(db
        .query_opt(&sql, &[&id, &mfa_roles])
        .await?
        .map(|r| grants_of(&r))
        .unwrap_or_default())
}

/// The permissions a row's `perms` column lists; names this build does not know are skipped.
pub(super) fn perms_of(r: &Row) -> BTreeSet<Permission> {
    let perms: Vec<String> = r.get("perms");
    perms.iter().filter_map(|p| Permission::parse(p)).collect()
}
