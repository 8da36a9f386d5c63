//! Queries on the rows an account owns (`id` and `account_id` columns): read one or 404,
//! delete one or 404, restrict an edit to it, and the newest-first cursor page of a list.
//! Table, column and alias names passed here are fixed names from the route modules, never
//! input.

use axum::http::StatusCode;
use sqlx::postgres::PgRow;
use sqlx::{FromRow, PgExecutor, Postgres, QueryBuilder};
use uuid::Uuid;

use super::contacts::fields::{Page, Paging};
use crate::error::{ApiError, ApiResult};

/// The row `sql` selects with `$1` = the id and `$2` = the account; 404 when there is none.
pub async fn fetch<'e, T>(
    db: impl PgExecutor<'e>,
    sql: &str,
    id: Uuid,
    account: Uuid,
) -> ApiResult<T>
where
    T: for<'r> FromRow<'r, PgRow> + Send + Unpin,
{
    sqlx::query_as(sql)
        .bind(id)
        .bind(account)
        .fetch_optional(db)
        .await?
        .ok_or(ApiError::NotFound)
}

/// Deletes the account's row `id` of `table`: 204, or 404 when the account has no such row;
/// a database error goes through `on_error`.
pub async fn delete<'e>(
    db: impl PgExecutor<'e>,
    table: &str,
    id: Uuid,
    account: Uuid,
    on_error: impl FnOnce(sqlx::Error) -> ApiError,
) -> ApiResult<StatusCode> {
    let done = sqlx::query(&format!(
        "DELETE FROM {table} WHERE id = $1 AND account_id = $2"
    ))
    .bind(id)
    .bind(account)
    .execute(db)
    .await
    .map_err(on_error)?;
    if done.rows_affected() == 0 {
        return Err(ApiError::NotFound);
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Ends an `UPDATE … SET …` with `WHERE id = <id> AND account_id = <account>`.
pub fn push_where(sql: &mut QueryBuilder<'_, Postgres>, id: Uuid, account: Uuid) {
    sql.push(" WHERE id = ").push_bind(id);
    sql.push(" AND account_id = ").push_bind(account);
}

/// One page of the account's rows, newest first (ids are UUIDv7, so id order is creation
/// order): `select` is `SELECT … FROM …` whose rows are named by `alias` (`""` or `"l."`),
/// `filters` adds ` AND …` conditions.
pub async fn page<T>(
    db: &sqlx::PgPool,
    select: &str,
    alias: &str,
    account: Uuid,
    paging: Paging,
    filters: impl FnOnce(&mut QueryBuilder<'static, Postgres>),
    id_of: impl Fn(&T) -> Uuid,
) -> ApiResult<Page<T>>
where
    T: for<'r> FromRow<'r, PgRow> + Send + Unpin,
{
    let mut sql: QueryBuilder<'static, Postgres> =
        QueryBuilder::new(format!("{select} WHERE {alias}account_id = "));
    sql.push_bind(account);
    if let Some(c) = paging.cursor {
        sql.push(format!(" AND {alias}id < ")).push_bind(c);
    }
    filters(&mut sql);
    sql.push(format!(" ORDER BY {alias}id DESC LIMIT "))
        .push_bind(paging.limit + 1);
    let rows: Vec<T> = sql.build_query_as().fetch_all(db).await?;
    Ok(Page::from_rows(rows, paging.limit, id_of))
}
