//! The `roles` table.

use tokio_postgres::Row;
use users_core::model::RoleView;
use users_core::perms::Permission;

use super::GenericClient;

const COLUMNS: &str = "name, description, permissions, builtin";

fn view(r: Row) -> RoleView {
    let perms: Vec<String> = r.get("permissions");
    RoleView {
        name: r.get("name"),
        description: r.get("description"),
        permissions: perms.iter().filter_map(|p| Permission::parse(p)).collect(),
        builtin: r.get("builtin"),
    }
}

pub async fn list(db: &impl GenericClient) -> Result<Vec<RoleView>, tokio_postgres::Error> {
    Ok(db
        .query(&format!("SELECT {COLUMNS} FROM roles ORDER BY name"), &[])
        .await?
        .into_iter()
        .map(view)
        .collect())
}

pub async fn get(
    db: &impl GenericClient,
    name: &str,
) -> Result<Option<RoleView>, tokio_postgres::Error> {
    Ok(db
        .query_opt(
            &format!("SELECT {COLUMNS} FROM roles WHERE name = $1"),
            &[&name],
        )
        .await?
        .map(view))
}

/// The roles among `names` that exist.
pub async fn get_many(
    db: &impl GenericClient,
    names: &[String],
) -> Result<Vec<RoleView>, tokio_postgres::Error> {
    let sql = format!("SELECT {COLUMNS} FROM roles WHERE name = ANY($1) ORDER BY name");
    Ok(db
        .query(&sql, &[&names])
        .await?
        .into_iter()
        .map(view)
        .collect())
}

fn names(perms: &[Permission]) -> Vec<String> {
    perms.iter().map(|p| p.as_str().to_owned()).collect()
}

pub async fn insert(db: &impl GenericClient, role: &RoleView) -> Result<(), tokio_postgres::Error> {
    db.execute(
        "INSERT INTO roles (name, description, permissions) VALUES ($1, $2, $3)",
        &[&role.name, &role.description, &names(&role.permissions)],
    )
    .await?;
    Ok(())
}

pub async fn update(db: &impl GenericClient, role: &RoleView) -> Result<(), tokio_postgres::Error> {
    db.execute(
        "UPDATE roles SET description = $2, permissions = $3, updated_at = now() WHERE name = $1",
        &[&role.name, &role.description, &names(&role.permissions)],
    )
    .await?;
    Ok(())
}

pub async fn delete(db: &impl GenericClient, name: &str) -> Result<(), tokio_postgres::Error> {
    db.execute("DELETE FROM roles WHERE name = $1", &[&name])
        .await?;
    Ok(())
}

/// Revokes the tokens of every holder of `role` (its permissions changed or it is going away);
/// returns each holder's id and new row version.
pub async fn bump_holders(
    db: &impl GenericClient,
    role: &str,
) -> Result<Vec<(uuid::Uuid, i64)>, tokio_postgres::Error> {
    let rows = db
        .query(
            "UPDATE users SET security_version = security_version + 1, version = version + 1, updated_at = now() \
             WHERE id IN (SELECT user_id FROM user_roles WHERE role_name = $1) RETURNING id, version",
            &[&role],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}
