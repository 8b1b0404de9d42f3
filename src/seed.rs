//! A generated catalogue to search (`nanum seed books --count N [--seed S]`): Korean and
//! English titles, authors, publishers and descriptions drawn from the word lists under
//! `assets/words/` (compiled in), deterministic for a seed.
//!
//! Words are drawn with a skew (rank r has weight ≈ 1/√r), so a few words are common and
//! most are rare, as in a real catalogue — a uniform draw would make every word equally
//! frequent and every posting list equally long. Books go in with explicit ids, 1000 per
//! multi-row `INSERT`, each batch in one transaction with its outbox rows, so a running
//! server indexes them as they arrive, and a reindex afterwards finds nothing left to do
//! twice.

use std::{
    sync::LazyLock,
    time::{Duration, Instant},
};

use chrono::{NaiveDate, Utc};
use indicatif::ProgressBar;
use rand::{Rng, SeedableRng, rngs::StdRng};
use sea_orm::{
    ActiveValue::Set, DatabaseConnection, DbErr, EntityTrait, QueryOrder, QuerySelect, TransactionTrait,
};

use crate::{entities::book, search::outbox};

/// Books per `INSERT` (and per transaction).
pub const BATCH: usize = 1000;

fn list(text: &'static str) -> Vec<&'static str> {
    text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect()
}

/// The vocabularies.
#[derive(Debug)]
struct Words {
    ko_nouns: Vec<&'static str>,
    ko_modifiers: Vec<&'static str>,
    ko_verbs: Vec<&'static str>,
    ko_surnames: Vec<&'static str>,
    ko_given: Vec<&'static str>,
    en_nouns: Vec<&'static str>,
    en_adjectives: Vec<&'static str>,
    en_first: Vec<&'static str>,
    en_last: Vec<&'static str>,
    publishers: Vec<&'static str>,
}

impl Words {
    fn load() -> Self {
        Self {
            ko_nouns: list(include_str!("../assets/words/ko_nouns.txt")),
            ko_modifiers: list(include_str!("../assets/words/ko_modifiers.txt")),
            ko_verbs: list(include_str!("../assets/words/ko_verbs.txt")),
            ko_surnames: list(include_str!("../assets/words/ko_surnames.txt")),
            ko_given: list(include_str!("../assets/words/ko_given.txt")),
            en_nouns: list(include_str!("../assets/words/en_nouns.txt")),
            en_adjectives: list(include_str!("../assets/words/en_adjectives.txt")),
            en_first: list(include_str!("../assets/words/en_first.txt")),
            en_last: list(include_str!("../assets/words/en_last.txt")),
            publishers: list(include_str!("../assets/words/publishers.txt")),
        }
    }
}

/// Does the last syllable of `word` end in a consonant (batchim)? Picks 이/가, 을/를, 과/와.
fn has_batchim(word: &str) -> bool {
    word.chars()
        .last()
        .is_some_and(|c| matches!(c as u32, 0xAC00..=0xD7A3 if !(c as u32 - 0xAC00).is_multiple_of(28)))
}

/// Deterministic book generator.
#[derive(Debug)]
pub struct Catalogue {
    rng: StdRng,
}

static WORDS: LazyLock<Words> = LazyLock::new(Words::load);

/// The generated fields of one book.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewBook {
    /// Title.
    pub title: String,
    /// Author.
    pub author: String,
    /// Publisher.
    pub publisher: String,
    /// ISBN-13 (979-11 prefix, valid check digit).
    pub isbn: String,
    /// Two or three sentences.
    pub description: String,
    /// Publication date.
    pub published_at: NaiveDate,
}

impl Catalogue {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Self { rng: StdRng::seed_from_u64(seed) }
    }

    /// A skewed draw: low ranks (the top of each list) come up far more often.
    fn pick<'a>(&mut self, list: &[&'a str]) -> &'a str {
        let u: f64 = self.rng.random();
        list[((u * u) * list.len() as f64) as usize % list.len()]
    }

    fn korean_title(&mut self) -> String {
        let w = &*WORDS;
        let noun = self.pick(&w.ko_nouns);
        match self.rng.random_range(0..5) {
            0 => noun.to_owned(),
            1 => format!("{} {noun}", self.pick(&w.ko_modifiers)),
            2 => format!("{noun}의 {}", self.pick(&w.ko_nouns)),
            3 => {
                let and = if has_batchim(noun) { "과" } else { "와" };
                format!("{noun}{and} {}", self.pick(&w.ko_nouns))
            }
            _ => {
                let subject = if has_batchim(noun) { "이" } else { "가" };
                format!("{noun}{subject} {}", self.pick(&w.ko_verbs))
            }
        }
    }

    fn english_title(&mut self) -> String {
        let w = &*WORDS;
        let cap = |s: &str| s[..1].to_uppercase() + &s[1..];
        let (adj, noun, other) =
            (self.pick(&w.en_adjectives), self.pick(&w.en_nouns), self.pick(&w.en_nouns));
        match self.rng.random_range(0..4) {
            0 => format!("The {} {}", cap(adj), cap(noun)),
            1 => format!("{} of the {}", cap(noun), cap(other)),
            2 => format!("A {} in the {}", cap(noun), cap(other)),
            _ => format!("{} {}s", cap(adj), cap(noun)),
        }
    }

    fn description(&mut self, korean: bool) -> String {
        let w = &*WORDS;
        let sentences = self.rng.random_range(2..=3);
        let mut out = Vec::with_capacity(sentences);
        for _ in 0..sentences {
            let (a, b, c) = if korean {
                (self.pick(&w.ko_nouns), self.pick(&w.ko_nouns), self.pick(&w.ko_nouns))
            } else {
                (self.pick(&w.en_nouns), self.pick(&w.en_nouns), self.pick(&w.en_nouns))
            };
            let m = if korean { self.pick(&w.ko_modifiers) } else { self.pick(&w.en_adjectives) };
            out.push(match (korean, self.rng.random_range(0..3)) {
                (true, 0) => {
                    format!("{m} {a}{}에 대한 {b}의 이야기.", if has_batchim(a) { "과 " } else { "와 " })
                }
                (true, 1) => format!("{a}{} {c}에서 {b}{} 찾는다.", josa(a, "은", "는"), josa(b, "을", "를")),
                (true, _) => format!("{m} {a}, 그리고 {b}의 {c}."),
                (false, 0) => format!("A {m} story about {a} and {b}."),
                (false, 1) => format!("When the {a} meets the {b}, nothing about {c} stays the same."),
                (false, _) => format!("An essay on {a}, {b} and the {m} {c}."),
            });
        }
        out.join(" ")
    }

    /// The book with catalogue number `n` (used for its ISBN) — the next of the sequence.
    pub fn book(&mut self, n: u64) -> NewBook {
        let w = &*WORDS;
        let korean = self.rng.random_bool(0.6);
        let (title, author) = if korean {
            let name =
                format!("{}{}{}", self.pick(&w.ko_surnames), self.pick(&w.ko_given), self.pick(&w.ko_given));
            (self.korean_title(), name)
        } else {
            (self.english_title(), format!("{} {}", self.pick(&w.en_first), self.pick(&w.en_last)))
        };
        let publisher = self.pick(&w.publishers).to_owned();
        let description = self.description(korean);
        let days = self.rng.random_range(0..27_000);
        let published_at = NaiveDate::from_ymd_opt(1951, 1, 1).unwrap_or_default() + chrono::Days::new(days);
        NewBook { title, author, publisher, isbn: isbn13(n), description, published_at }
    }
}

fn josa(word: &str, with: &'static str, without: &'static str) -> &'static str {
    if has_batchim(word) { with } else { without }
}

/// `97911` + 7 digits of `n` + the ISBN-13 check digit.
pub fn isbn13(n: u64) -> String {
    let body = format!("97911{:07}", n % 10_000_000);
    let sum: u32 =
        body.bytes().enumerate().map(|(i, b)| u32::from(b - b'0') * if i % 2 == 0 { 1 } else { 3 }).sum();
    format!("{body}{}", (10 - sum % 10) % 10)
}

/// What a seed run did.
#[derive(Debug, Clone, Copy)]
pub struct SeedReport {
    /// Books inserted.
    pub inserted: u64,
    /// Id of the first.
    pub first_id: i64,
    /// Wall time.
    pub elapsed: Duration,
}

impl SeedReport {
    /// Books per second.
    pub fn rate(&self) -> f64 {
        self.inserted as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Inserts `count` generated books after the highest existing id, each batch of [`BATCH`]
/// with its outbox rows in one transaction. Run it while nobody else creates books (the
/// ids are chosen here).
///
/// # Errors
///
/// Any database error; the batches before it stay.
pub async fn seed_books(
    db: &DatabaseConnection,
    count: u64,
    seed: u64,
    progress: &ProgressBar,
) -> Result<SeedReport, DbErr> {
    let started = Instant::now();
    let last: Option<i64> = book::Entity::find()
        .select_only()
        .column(book::Column::Id)
        .order_by_desc(book::Column::Id)
        .limit(1)
        .into_tuple()
        .one(db)
        .await?;
    let first_id = last.unwrap_or(0) + 1;
    let mut catalogue = Catalogue::new(seed);
    progress.set_length(count);
    let now = Utc::now();
    let mut done = 0_u64;
    while done < count {
        let n = (count - done).min(BATCH as u64);
        let ids: Vec<i64> = (0..n).map(|i| first_id + (done + i) as i64).collect();
        let models = ids.iter().map(|&id| {
            let b = catalogue.book(id as u64);
            book::ActiveModel {
                id: Set(id),
                title: Set(b.title),
                author: Set(b.author),
                publisher: Set(Some(b.publisher)),
                isbn: Set(Some(b.isbn)),
                description: Set(Some(b.description)),
                published_at: Set(Some(b.published_at)),
                created_at: Set(now),
                updated_at: Set(now),
            }
        });
        let tx = db.begin().await?;
        book::Entity::insert_many(models.collect::<Vec<_>>()).exec_without_returning(&tx).await?;
        outbox::record(&tx, &ids).await?;
        tx.commit().await?;
        done += n;
        progress.inc(n);
    }
    Ok(SeedReport { inserted: count, first_id, elapsed: started.elapsed() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_books_and_another_seed_others() {
        let a: Vec<_> = (0..50)
            .map({
                let mut c = Catalogue::new(7);
                move |n| c.book(n)
            })
            .collect();
        let mut again = Catalogue::new(7);
        assert!(a.iter().enumerate().all(|(n, b)| *b == again.book(n as u64)));
        let mut other = Catalogue::new(8);
        assert!(a.iter().enumerate().any(|(n, b)| *b != other.book(n as u64)));
    }

    #[test]
    fn books_are_korean_or_english_with_valid_isbns() {
        let mut c = Catalogue::new(1);
        let books: Vec<_> = (0..200).map(|n| c.book(n)).collect();
        let korean = books.iter().filter(|b| b.title.chars().any(crate::search::cjk::is_cjk)).count();
        assert!((60..180).contains(&korean), "{korean} of 200 Korean");
        assert!(books.iter().all(|b| b.isbn.len() == 13 && !b.description.is_empty()));
        // 9+21+9+3+1+0+0+0+4+6+3+12 = 68 → check digit 2.
        assert_eq!(isbn13(4234), "9791100042342");
    }

    #[test]
    fn particles_follow_the_final_consonant() {
        assert!(has_batchim("소년") && !has_batchim("바다") && !has_batchim("book"));
    }
}
