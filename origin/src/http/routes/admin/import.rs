//! `POST /admin/users/import` (`users:create`; `mode=upsert` also `users:update`): up to 1000
//! accounts as NDJSON (`application/x-ndjson`, one row per line) or a JSON array, each row
//! failing only itself; answered with an NDJSON report, a line per row in input order, then
//! `{"summary": …}`. `Idempotency-Key` is honoured (not on a dry run, which writes nothing).

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use users_core::perms::Permission;
use users_core::problem::FieldProblem;

use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{Auth, parse_json};
use crate::http::idempotency::{self, IdempotentBytes};
use crate::http::validate::non_empty_query;
use crate::idempotency::{Caller, Key};
use crate::import::{self, Actor, Input, Line, Mode, Row, Summary};
use crate::state::AppState;
use crate::write::Write;

/// The media type of the body and the answer.
pub const NDJSON: &str = "application/x-ndjson";

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ImportQuery {
    /// `insert` (default: an address with an account is `skipped`) or `upsert` (it is
    /// `updated`; needs `users:update`).
    #[param(pattern = "^(insert|upsert)$")]
    mode: Option<String>,
    /// `true`: every row checked and reported, nothing written.
    #[param(value_type = Option<bool>)]
    dry_run: Option<String>,
}

/// The report's last line.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SummaryLine {
    summary: Summary,
}

/// A line of the report: a row's, or the summary.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum ReportLine {
    Row(Line),
    Summary(SummaryLine),
}

/// `POST /admin/users/import`.
#[utoipa::path(
    post, path = "/admin/users/import", tag = "admin", security(("bearer" = [])),
    params(ImportQuery),
    request_body(content((Row = "application/x-ndjson"), (Vec<Row> = "application/json")),
        description = "At most 1000 rows and 10 MiB; at most 100 rows with a plaintext `password`"),
    responses((status = 200, description = "One line per row, in input order, then the summary (NDJSON)",
        body = Vec<ReportLine>, content_type = "application/x-ndjson"))
)]
pub async fn import_users(
    State(state): State<AppState>,
    auth: Auth,
    RawQuery(raw): RawQuery,
    IdempotentBytes { body, key }: IdempotentBytes,
) -> ApiResult<Response> {
    auth.require(Permission::UsersCreate)?;
    let (mode, dry_run) = options(raw.as_deref())?;
    if mode == Mode::Upsert {
        auth.require(Permission::UsersUpdate)?;
    }
    let key = key
        .filter(|_| !dry_run)
        .map(|k| k.of(Caller::User(auth.user_id)));
    let work = import_once(&state, &auth, body, (mode, dry_run), key.as_ref());
    idempotency::answer(&state, key.as_ref(), work).await
}

fn options(raw: Option<&str>) -> ApiResult<(Mode, bool)> {
    let q: ImportQuery = non_empty_query(raw)?;
    let mode = match q.mode.as_deref() {
        None | Some("insert") => Mode::Insert,
        Some("upsert") => Mode::Upsert,
        Some(_) => return Err(ApiError::validation("mode", "must be insert or upsert")),
    };
    let dry_run = match q.dry_run.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(ApiError::validation("dry_run", "must be true or false")),
    };
    Ok((mode, dry_run))
}

async fn import_once(
    state: &AppState,
    auth: &Auth,
    body: Result<(Option<String>, Bytes), ApiError>,
    (mode, dry_run): (Mode, bool),
    key: Option<&Key>,
) -> ApiResult<Response> {
    let (media, bytes) = body?;
    let rows = read_rows(media.as_deref(), &bytes)?;
    let prepared = import::prepare(state, rows, dry_run).await?;
    let mut client = state.db.get().await?;
    let mut write = Write::begin(&mut client, &state.cache).await?;
    if let Some(replay) = idempotency::claim(state, &write.tx, key).await? {
        return Ok(replay);
    }
    let actor = Actor {
        id: Some(auth.user_id),
        perms: &auth.perms,
        ctx: &auth.ctx,
    };
    let (lines, summary) = import::write_rows(&mut write, actor, prepared, &mode, dry_run).await?;
    let res = report(lines, summary);
    if dry_run {
        // Dropped, the transaction rolls back: nothing was written.
        drop(write);
        return Ok(res);
    }
    let res = idempotency::record(state, &write.tx, key, res).await?;
    write.commit().await?;
    // What an unknown login costs follows the hashes just imported.
    crate::stand_ins::refresh(state).await;
    Ok(res)
}

/// The rows of the body, numbered by line (NDJSON; blank lines are no rows) or by position
/// (a JSON array).
fn read_rows(media: Option<&str>, bytes: &[u8]) -> ApiResult<Vec<Input>> {
    let rows: Vec<Input> = match media {
        Some(NDJSON) => bytes
            .split(|b| *b == b'\n')
            .enumerate()
            .filter(|(_, line)| !line.trim_ascii().is_empty())
            .map(|(i, line)| (i + 1, row_of(line)))
            .collect(),
        Some("application/json") => {
            let value: serde_json::Value = parse_json(bytes)?;
            let serde_json::Value::Array(items) = value else {
                return Err(ApiError::validation("body", "must be an array of rows"));
            };
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| (i + 1, row_of(item.to_string().as_bytes())))
                .collect()
        }
        _ => {
            return Err(ApiError::UnsupportedMediaType(format!(
                "Send the rows as {NDJSON} or as a JSON array (application/json)."
            )));
        }
    };
    if rows.is_empty() {
        return Err(ApiError::validation("body", "holds no rows"));
    }
    if rows.len() > import::ROWS_MAX {
        return Err(ApiError::validation(
            "body",
            format!(
                "holds {} rows; at most {} per request",
                rows.len(),
                import::ROWS_MAX
            ),
        ));
    }
    Ok(rows)
}

/// One row, or why it cannot be read (as a `422` would list it).
fn row_of(bytes: &[u8]) -> Result<Row, Vec<FieldProblem>> {
    match parse_json::<Row>(bytes) {
        Ok(row) => Ok(row),
        Err(ApiError::Validation(problems)) => Err(problems),
        Err(e) => Err(vec![FieldProblem::new("line", e.to_string())]),
    }
}

/// The NDJSON report.
fn report(lines: Vec<Line>, summary: Summary) -> Response {
    let mut body = String::new();
    for line in lines
        .into_iter()
        .map(ReportLine::Row)
        .chain([ReportLine::Summary(SummaryLine { summary })])
    {
        body.push_str(&serde_json::to_string(&line).unwrap_or_default());
        body.push('\n');
    }
    (StatusCode::OK, [(header::CONTENT_TYPE, NDJSON)], body).into_response()
}
