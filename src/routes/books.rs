//! Books: admin writes, anyone reads. Every write also records an outbox row in the same
//! transaction, so the search index can never miss a change (see `search::outbox`).

use actix_web::{HttpResponse, delete, get, patch, post, web};
use chrono::NaiveDate;
use sea_orm::{ActiveModelTrait, EntityTrait, PaginatorTrait, QueryOrder, Set, TransactionTrait};
use serde::{Deserialize, Deserializer};
use utoipa::ToSchema;

use super::{Object, PageBody, PageQuery};
use crate::{
    auth::AuthUser,
    entities::book,
    error::{ApiError, FieldErrors},
    search::outbox,
    state::AppState,
};

/// Distinguishes an absent field (`None`) from an explicit `null` (`Some(None)`) in PATCH.
fn double_option<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    de: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(de).map(Some)
}

/// A book's writable fields; all optional so one type serves POST (checked for required
/// ones) and PATCH.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BookFields {
    /// 1–500 characters; required on `POST`.
    #[schema(min_length = 1, max_length = 500)]
    pub(crate) title: Option<String>,
    /// 1–200 characters; required on `POST`.
    #[schema(min_length = 1, max_length = 200)]
    pub(crate) author: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    pub(crate) publisher: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    /// ISBN-10 or ISBN-13 (hyphens and spaces are dropped).
    pub(crate) isbn: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    pub(crate) description: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, format = Date)]
    pub(crate) published_at: Option<Option<NaiveDate>>,
}

fn check_len(fields: &mut FieldErrors, name: &'static str, value: Option<&str>, min: usize, max: usize) {
    if let Some(v) = value {
        let n = v.trim().chars().count();
        if n < min || n > max {
            fields.insert(name, format!("must be {min} to {max} characters"));
        } else if crate::text::refused(v) {
            fields.insert(name, crate::text::REFUSED.into());
        }
    }
}

/// Digits of an ISBN-10/13 (hyphens and spaces dropped), or `None` when it is not one.
fn normalise_isbn(raw: &str) -> Option<String> {
    let digits: Vec<char> = raw.chars().filter(|c| !matches!(c, '-' | ' ')).collect();
    // By characters, not bytes: a multi-byte character must not be cut.
    let ok = match digits.as_slice() {
        [body @ .., check] if digits.len() == 10 => {
            body.iter().all(char::is_ascii_digit) && (check.is_ascii_digit() || *check == 'X')
        }
        all if all.len() == 13 => all.iter().all(char::is_ascii_digit),
        _ => false,
    };
    ok.then(|| digits.into_iter().collect())
}

impl BookFields {
    fn validate(&self, creating: bool) -> Result<(), ApiError> {
        let mut fields = FieldErrors::new();
        if creating && self.title.is_none() {
            fields.insert("title", "is required".into());
        }
        if creating && self.author.is_none() {
            fields.insert("author", "is required".into());
        }
        check_len(&mut fields, "title", self.title.as_deref(), 1, 500);
        check_len(&mut fields, "author", self.author.as_deref(), 1, 200);
        check_len(&mut fields, "publisher", self.publisher.clone().flatten().as_deref(), 1, 200);
        check_len(&mut fields, "description", self.description.clone().flatten().as_deref(), 0, 10_000);
        if let Some(Some(isbn)) = &self.isbn
            && normalise_isbn(isbn).is_none()
        {
            fields.insert("isbn", "must be an ISBN-10 or ISBN-13".into());
        }
        if fields.is_empty() { Ok(()) } else { Err(ApiError::Validation(fields)) }
    }

    fn apply_to(self, model: &mut book::ActiveModel) {
        let trimmed = |s: String| s.trim().to_owned();
        if let Some(t) = self.title {
            model.title = Set(trimmed(t));
        }
        if let Some(a) = self.author {
            model.author = Set(trimmed(a));
        }
        if let Some(p) = self.publisher {
            model.publisher = Set(p.map(trimmed));
        }
        if let Some(i) = self.isbn {
            model.isbn = Set(i.as_deref().and_then(normalise_isbn));
        }
        if let Some(d) = self.description {
            model.description = Set(d);
        }
        if let Some(p) = self.published_at {
            model.published_at = Set(p);
        }
        model.updated_at = Set(chrono::Utc::now());
    }
}

pub(crate) async fn find(state: &AppState, id: i64) -> Result<book::Model, ApiError> {
    book::Entity::find_by_id(id).one(&state.db).await?.ok_or(ApiError::NotFound("book"))
}

/// 201 Book (admin).
#[utoipa::path(
    operation_id = "create_book",
    request_body = BookFields,
    tag = "books",
    security(("bearer" = [])),
    responses((status = 201, description = "Created", body = book::Model,
        headers(("Location" = String, description = "/api/v1/books/{id}")))),
)]
#[post("/books")]
pub(crate) async fn create(
    state: web::Data<AppState>,
    user: AuthUser,
    body: web::Json<Object<BookFields>>,
) -> Result<HttpResponse, ApiError> {
    let saved = create_book(&state, &user, body.into_inner().0).await?;
    Ok(HttpResponse::Created().insert_header(("Location", format!("/api/v1/books/{}", saved.id))).json(saved))
}

/// Validates and stores a book with its outbox row (admin; shared with the web pages).
pub(crate) async fn create_book(
    state: &AppState,
    user: &AuthUser,
    fields: BookFields,
) -> Result<book::Model, ApiError> {
    user.require_admin(&state.db).await?;
    fields.validate(true)?;
    let now = chrono::Utc::now();
    let mut model = book::ActiveModel { created_at: Set(now), ..Default::default() };
    model.publisher = Set(None);
    model.isbn = Set(None);
    model.description = Set(None);
    model.published_at = Set(None);
    fields.apply_to(&mut model);
    let write = BookWrite::begin(state).await?;
    let saved = model.insert(&write.tx).await?;
    write.commit(state, saved.id).await?;
    Ok(saved)
}

/// `{items, page, size, total}`, newest first.
#[utoipa::path(
    operation_id = "list_books",
    tag = "books",
    responses((status = 200, description = "One page, newest first", body = PageBody<book::Model>)),
)]
#[get("/books")]
pub(crate) async fn list(
    state: web::Data<AppState>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let (page, size) = query.bounds()?;
    let paginator = book::Entity::find().order_by_desc(book::Column::Id).paginate(&state.db, size);
    let total = paginator.num_items().await?;
    let items = paginator.fetch_page(page - 1).await?;
    Ok(HttpResponse::Ok().json(PageBody::new(items, page, size, total)))
}

/// Book or 404.
#[utoipa::path(
    operation_id = "get_book",
    tag = "books",
    params(("id" = i64, Path, description = "book id")),
    responses((status = 200, description = "The book", body = book::Model)),
)]
#[get("/books/{id}")]
pub(crate) async fn get(state: web::Data<AppState>, id: web::Path<i64>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(find(&state, id.into_inner()).await?))
}

/// Partial update (admin); `null` clears an optional field.
#[utoipa::path(
    operation_id = "update_book",
    request_body = BookFields,
    tag = "books",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "book id")),
    responses((status = 200, description = "The changed book", body = book::Model)),
)]
#[patch("/books/{id}")]
pub(crate) async fn update(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<i64>,
    body: web::Json<Object<BookFields>>,
) -> Result<HttpResponse, ApiError> {
    user.require_admin(&state.db).await?;
    let fields = body.into_inner().0;
    fields.validate(false)?;
    let mut model: book::ActiveModel = find(&state, id.into_inner()).await?.into();
    fields.apply_to(&mut model);
    let write = BookWrite::begin(&state).await?;
    let saved = model.update(&write.tx).await?;
    write.commit(&state, saved.id).await?;
    Ok(HttpResponse::Ok().json(saved))
}

/// 204 (admin); 409 while an event gives the book away.
#[utoipa::path(
    operation_id = "delete_book",
    tag = "books",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "book id")),
    responses((status = 204, description = "Deleted")),
)]
#[delete("/books/{id}")]
pub(crate) async fn delete(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    user.require_admin(&state.db).await?;
    let id = id.into_inner();
    let write = BookWrite::begin(&state).await?;
    let result = book::Entity::delete_by_id(id).exec(&write.tx).await.map_err(|e| {
        if strategies::dberr::is_foreign_key_violation(&e) {
            ApiError::Conflict("an event gives this book away; delete is refused")
        } else {
            e.into()
        }
    })?;
    if result.rows_affected == 0 {
        return Err(ApiError::NotFound("book"));
    }
    write.commit(&state, id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// One book write: the change and its outbox row commit in one transaction (so the index
/// can never miss it), then the sync task is woken instead of waiting for its next poll.
struct BookWrite {
    tx: sea_orm::DatabaseTransaction,
}

impl BookWrite {
    async fn begin(state: &AppState) -> Result<Self, ApiError> {
        Ok(Self { tx: state.db.begin().await? })
    }

    async fn commit(self, state: &AppState, book_id: i64) -> Result<(), ApiError> {
        outbox::record(&self.tx, &[book_id]).await?;
        self.tx.commit().await?;
        state.search.notify();
        Ok(())
    }
}
