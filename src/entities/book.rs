//! `books`: the catalogue.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// A stored book; also its JSON form (read back from the search index's stored copy).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "books")]
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
    pub published_at: Option<Date>,
    /// Creation time.
    pub created_at: DateTimeUtc,
    /// Last change.
    pub updated_at: DateTimeUtc,
}

/// No relations are navigated.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
