//! Schema migrations, run at start-up. The race tables come from `strategies::schema` so
//! there is one definition of each table; then the search outbox (the change log every
//! instance's index follows) with the FULLTEXT index that `engine=fulltext` measures, the
//! record of requests that answered 202, and an index on the log's age for pruning.

use sea_orm_migration::prelude::*;

/// All migrations, in order.
#[derive(Debug)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(Catalogue),
            Box::new(strategies::schema::Migration),
            Box::new(strategies::outcomes::Migration),
            Box::new(SearchOutbox),
            Box::new(PendingRequests),
            Box::new(SearchLogAge),
            Box::new(crate::web::session::Migration),
        ]
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Email,
    PasswordHash,
    Name,
    Role,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Books {
    Table,
    Id,
    Title,
    Author,
    Publisher,
    Isbn,
    Description,
    PublishedAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Events {
    Table,
    Id,
    BookId,
    Title,
    Quantity,
    OpensAt,
    ClosesAt,
    CreatedAt,
}

fn id_col<T: IntoIden>(name: T) -> ColumnDef {
    ColumnDef::new(name).big_integer().not_null().auto_increment().primary_key().to_owned()
}

/// users, books, events.
#[derive(DeriveMigrationName)]
struct Catalogue;

// sea-orm-migration's trait elides the lifetime; naming it here would not match.
#[expect(elided_lifetimes_in_paths, reason = "sea-orm-migration's trait elides the lifetime")]
#[async_trait::async_trait]
impl MigrationTrait for Catalogue {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Users::Table)
                .if_not_exists()
                .col(id_col(Users::Id))
                .col(ColumnDef::new(Users::Email).string_len(254).not_null().unique_key())
                .col(ColumnDef::new(Users::PasswordHash).string_len(255).not_null())
                .col(ColumnDef::new(Users::Name).string_len(100).not_null())
                .col(ColumnDef::new(Users::Role).string_len(16).not_null())
                .col(ColumnDef::new(Users::CreatedAt).date_time().not_null())
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(Books::Table)
                .if_not_exists()
                .col(id_col(Books::Id))
                .col(ColumnDef::new(Books::Title).string_len(500).not_null())
                .col(ColumnDef::new(Books::Author).string_len(200).not_null())
                .col(ColumnDef::new(Books::Publisher).string_len(200).null())
                .col(ColumnDef::new(Books::Isbn).string_len(13).null())
                .col(ColumnDef::new(Books::Description).text().null())
                .col(ColumnDef::new(Books::PublishedAt).date().null())
                .col(ColumnDef::new(Books::CreatedAt).date_time().not_null())
                .col(ColumnDef::new(Books::UpdatedAt).date_time().not_null())
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(Events::Table)
                .if_not_exists()
                .col(id_col(Events::Id))
                .col(ColumnDef::new(Events::BookId).big_integer().not_null())
                .col(ColumnDef::new(Events::Title).string_len(200).not_null())
                .col(ColumnDef::new(Events::Quantity).integer().not_null())
                .col(ColumnDef::new(Events::OpensAt).date_time().not_null())
                .col(ColumnDef::new(Events::ClosesAt).date_time().null())
                .col(ColumnDef::new(Events::CreatedAt).date_time().not_null())
                .check(Expr::col(Events::Quantity).gt(0))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_events_book")
                        .from(Events::Table, Events::BookId)
                        .to(Books::Table, Books::Id)
                        .on_delete(ForeignKeyAction::Restrict),
                )
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for table in [Events::Table.into_iden(), Books::Table.into_iden(), Users::Table.into_iden()] {
            m.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Outbox {
    #[sea_orm(iden = "search_outbox")]
    Table,
    Id,
    BookId,
    CreatedAt,
}

/// `search_outbox` (book changes waiting for the index; no foreign key, since a deleted
/// book's row must outlive it) and, on MariaDB/MySQL, `FULLTEXT(title, author, publisher,
/// description)` on books. SQLite gets no full-text index (`engine=fulltext` is 422 there).
struct SearchOutbox;

// Named by hand: `DeriveMigrationName` names a migration after its file, and `Catalogue`
// already holds that name.
impl MigrationName for SearchOutbox {
    fn name(&self) -> &str {
        "m20261126_000100_search_outbox"
    }
}

#[expect(elided_lifetimes_in_paths, reason = "sea-orm-migration's trait elides the lifetime")]
#[async_trait::async_trait]
impl MigrationTrait for SearchOutbox {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Outbox::Table)
                .if_not_exists()
                .col(id_col(Outbox::Id))
                .col(ColumnDef::new(Outbox::BookId).big_integer().not_null())
                .col(ColumnDef::new(Outbox::CreatedAt).date_time().not_null())
                .to_owned(),
        )
        .await?;
        if m.get_database_backend() == sea_orm::DbBackend::MySql {
            m.get_connection()
                // Written out, not read from the search engine's constant: a migration is
                // history, and changing that constant later must not rewrite this one.
                .execute_unprepared(
                    "CREATE FULLTEXT INDEX ft_books ON books (title, author, publisher, description)",
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        if m.get_database_backend() == sea_orm::DbBackend::MySql {
            m.get_connection().execute_unprepared("DROP INDEX ft_books ON books").await?;
        }
        m.drop_table(Table::drop().table(Outbox::Table).to_owned()).await
    }
}

#[derive(DeriveIden)]
enum PendingRequestsTable {
    #[sea_orm(iden = "pending_requests")]
    Table,
    RequestId,
    EventId,
    UserId,
    CreatedAt,
}

/// `pending_requests`: every request id that answered 202 (queued for a Kafka consumer), so
/// `GET /applications/{request id}` can tell a queued request from one never sent, and a
/// reused `Idempotency-Key` can be traced to its event.
struct PendingRequests;

impl MigrationName for PendingRequests {
    fn name(&self) -> &str {
        "m20261126_000200_pending_requests"
    }
}

#[expect(elided_lifetimes_in_paths, reason = "sea-orm-migration's trait elides the lifetime")]
#[async_trait::async_trait]
impl MigrationTrait for PendingRequests {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(PendingRequestsTable::Table)
                .if_not_exists()
                .col(ColumnDef::new(PendingRequestsTable::RequestId).string_len(100).not_null().primary_key())
                .col(ColumnDef::new(PendingRequestsTable::EventId).big_integer().not_null())
                .col(ColumnDef::new(PendingRequestsTable::UserId).big_integer().not_null())
                .col(ColumnDef::new(PendingRequestsTable::CreatedAt).date_time().not_null())
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(PendingRequestsTable::Table).to_owned()).await
    }
}

/// An index on `search_outbox.created_at`: the log is append-only now and pruned by age by
/// every instance, so finding the old rows must not scan it.
struct SearchLogAge;

impl MigrationName for SearchLogAge {
    fn name(&self) -> &str {
        "m20261126_000300_search_outbox_created_at"
    }
}

#[expect(elided_lifetimes_in_paths, reason = "sea-orm-migration's trait elides the lifetime")]
#[async_trait::async_trait]
impl MigrationTrait for SearchLogAge {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_index(
            Index::create()
                .name("idx_search_outbox_created_at")
                .table(Outbox::Table)
                .col(Outbox::CreatedAt)
                .if_not_exists()
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_index(Index::drop().name("idx_search_outbox_created_at").table(Outbox::Table).to_owned()).await
    }
}
