//! `events`: a sharing event (N copies of a book from a set time). Its stock row lives in
//! `event_stock`, created in the same transaction.

use sea_orm::entity::prelude::*;

/// A stored event.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "events")]
pub struct Model {
    /// Id (also the stock row's key).
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The book given away.
    pub book_id: i64,
    /// Title shown to readers.
    pub title: String,
    /// Copies offered.
    pub quantity: i32,
    /// Applications accepted from this time.
    pub opens_at: DateTimeUtc,
    /// ...until this time, if set.
    pub closes_at: Option<DateTimeUtc>,
    /// Creation time.
    pub created_at: DateTimeUtc,
}

/// No relations are navigated.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
