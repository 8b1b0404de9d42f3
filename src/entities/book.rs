//! `books`: the catalogue.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// A stored book; also its JSON form (read back from the search index's stored copy).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize, utoipa::ToSchema)]
#[sea_orm(table_name = "books")]
#[schema(as = Book)]
pub struct Model {
    /// Id.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// Title.
    pub title: String,
    /// Author(s).
    pub author: String,
    /// Publisher.
    pub publisher: Option<String>,
    /// ISBN-10 or ISBN-13, digits only.
    pub isbn: Option<String>,
    /// Free text.
    #[sea_orm(column_type = "Text", nullable)]
    pub description: Option<String>,
    /// Publication date.
    #[schema(value_type = Option<String>, format = Date)]
    pub published_at: Option<Date>,
    /// Creation time.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTimeUtc,
    /// Last change.
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: DateTimeUtc,
}

/// No relations are navigated.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
