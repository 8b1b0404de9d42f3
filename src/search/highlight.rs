//! Highlighting of the Korean fields: the text's own Korean tokens (word forms and compound
//! pieces, [`korean::analyze`]) that are terms of the query, in `<b>…</b>`, the rest
//! HTML-escaped.
//!
//! tantivy's snippet generator expects one token stream in text order without overlaps; the
//! Korean fields index several tokens per run (`별을`, `별`; `채식`, `주의`), nested, and
//! its fragment cut then slices outside the fragment (a panic). Here ranges are merged
//! first and the text is cut only at character boundaries outside every range, so a
//! highlight is always whole syllables of what matched: the stem the reader typed.

use std::{collections::HashSet, ops::Range};

use tantivy::{query::Query, schema::Field};

use super::korean;

/// Longest text shown whole; a longer one is cut to about this many characters around the
/// first match (as tantivy's snippets are).
const SNIPPET_CHARS: usize = 150;
/// Characters kept before the first match of a cut text.
const LEAD_CHARS: usize = 40;

/// The query's terms in the Korean fields (words and pieces) of one text field.
#[derive(Debug, Default)]
pub struct KoreanMarks {
    terms: HashSet<String>,
}

impl KoreanMarks {
    /// The terms of `query` in `fields`.
    pub fn new(query: &dyn Query, fields: [Field; 2]) -> Self {
        let mut terms = HashSet::new();
        query.query_terms(&mut |term, _| {
            if fields.contains(&term.field()) {
                terms.extend(term.value().as_str().map(str::to_owned));
            }
        });
        Self { terms }
    }

    /// `text` with the matched tokens in `<b>…</b>`, or `None` when none matched.
    pub fn snippet(&self, text: &str) -> Option<String> {
        let (words, pieces) = korean::analyze(text);
        let mut ranges: Vec<Range<usize>> = words
            .iter()
            .chain(&pieces)
            .filter(|t| self.terms.contains(&t.text))
            .map(|t| t.offset_from..t.offset_to)
            .collect();
        ranges.sort_by_key(|r| (r.start, r.end));
        let ranges = merged(ranges);
        let first = ranges.first()?.start;
        let window = window(text, first);
        let mut html = String::with_capacity(text.len() + 16);
        let mut at = window.start;
        for r in ranges.iter().filter(|r| r.start >= window.start && r.end <= window.end) {
            escape_into(&mut html, &text[at..r.start]);
            html.push_str("<b>");
            escape_into(&mut html, &text[r.clone()]);
            html.push_str("</b>");
            at = r.end;
        }
        escape_into(&mut html, &text[at..window.end]);
        Some(html)
    }
}

/// Overlapping or touching ranges (sorted) merged into one (`82` + `년생`).
fn merged(ranges: Vec<Range<usize>>) -> Vec<Range<usize>> {
    let mut out: Vec<Range<usize>> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match out.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => out.push(r),
        }
    }
    out
}

/// The byte range shown: all of a short text, else about [`SNIPPET_CHARS`] characters from a
/// little before `first` — always at character boundaries.
fn window(text: &str, first: usize) -> Range<usize> {
    if text.chars().count() <= SNIPPET_CHARS {
        return 0..text.len();
    }
    let before: Vec<usize> = text[..first].char_indices().map(|(i, _)| i).collect();
    let start = before.len().checked_sub(LEAD_CHARS).map_or(0, |i| before[i]);
    let end = text[start..].char_indices().nth(SNIPPET_CHARS).map_or(text.len(), |(i, _)| start + i);
    start..end
}

fn escape_into(html: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => html.push_str("&amp;"),
            '<' => html.push_str("&lt;"),
            '>' => html.push_str("&gt;"),
            '"' => html.push_str("&quot;"),
            _ => html.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marks(terms: &[&str]) -> KoreanMarks {
        KoreanMarks { terms: terms.iter().map(|t| (*t).to_owned()).collect() }
    }

    #[test]
    fn nested_tokens_are_highlighted_once_as_the_widest_match() {
        assert_eq!(
            marks(&["별을", "별"]).snippet("별을 스치는 바람").as_deref(),
            Some("<b>별을</b> 스치는 바람")
        );
        assert_eq!(
            marks(&["주의"]).snippet("채식주의자 <b>").as_deref(),
            Some("채식<b>주의</b>자 &lt;b&gt;")
        );
        assert_eq!(marks(&["없는"]).snippet("별을 스치는 바람"), None);
    }

    #[test]
    fn a_long_text_is_cut_at_character_boundaries_around_the_first_match() {
        let text = format!("{} 별을 보다 {}", "가".repeat(300), "나".repeat(300));
        let snippet = marks(&["별"]).snippet(&text).unwrap();
        assert!(snippet.contains("<b>별</b>을 보다"), "{snippet}");
        let plain = snippet.replace("<b>", "").replace("</b>", "");
        assert!(text.contains(&plain));
        assert_eq!(plain.chars().count(), SNIPPET_CHARS);
        assert_eq!(plain.find('별'), Some((LEAD_CHARS - 1) * 3 + 1), "{LEAD_CHARS} characters before it");
    }
}
