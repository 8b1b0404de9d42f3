//! CJK bigrams, after Elasticsearch's `cjk` analyzer (standard tokenizer + `cjk_width` +
//! `lowercase` + `cjk_bigram`): what the index used for Korean before [`super::korean`],
//! which still uses it for Han and Kana runs; the Korean query set's test measures
//! bigrams alone against nori beside the Korean analysis.
//!
//! Korean has no dictionary-free word segmentation worth the name: particles stick to nouns
//! (`소년이`, `소년을`, `소년의` are all "boy"), and compounds hide words (`채식주의자` holds
//! `주의`). Overlapping character bigrams find a two-syllable word anywhere, without a
//! dictionary (lindera's ko-dic downloads one at build time, which cannot work here):
//!
//! - a run of Hangul, Han or Kana becomes overlapping bigrams (`소년이` → `소년`, `년이`),
//!   each one position after the last, so a query of several syllables is a phrase of
//!   bigrams and matches only where they stand in order;
//! - a lone CJK character between separators stays a unigram (`책`);
//! - a run of letters or digits (Latin or any other non-CJK script) becomes one lowercased
//!   word; full-width ASCII (`ＡＢＣ１`) is folded to ASCII first, as `cjk_width` does.
//!
//! Everything else (spaces, punctuation) separates runs; bigrams never span a separator.
//! tantivy's own `NgramTokenizer` is not this: it gives every gram position 0 and grams span
//! spaces.

use tantivy_tokenizer_api::Token;

/// Hangul (syllables and jamo), Han ideographs, Hiragana and Katakana.
pub fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x1100..=0x11FF          // Hangul Jamo
        | 0x3040..=0x309F        // Hiragana
        | 0x30A0..=0x30FF        // Katakana
        | 0x3130..=0x318F        // Hangul Compatibility Jamo
        | 0x31F0..=0x31FF        // Katakana Phonetic Extensions
        | 0x3400..=0x4DBF        // CJK Extension A
        | 0x4E00..=0x9FFF        // CJK Unified Ideographs
        | 0xA960..=0xA97F        // Hangul Jamo Extended-A
        | 0xAC00..=0xD7AF        // Hangul Syllables
        | 0xD7B0..=0xD7FF        // Hangul Jamo Extended-B
        | 0xF900..=0xFAFF        // CJK Compatibility Ideographs
        | 0xFF66..=0xFF9F        // Half-width Katakana
        | 0x20000..=0x2FFFF) // CJK Extensions B…
}

/// Full-width ASCII (U+FF01–FF5E) to ASCII, as `cjk_width` does.
pub(crate) fn fold_width(c: char) -> char {
    match c as u32 {
        code @ 0xFF01..=0xFF5E => char::from_u32(code - 0xFEE0).unwrap_or(c),
        _ => c,
    }
}

#[derive(PartialEq, Eq, Clone, Copy)]
enum Class {
    Cjk,
    Word,
    Separator,
}

fn class(c: char) -> Class {
    if is_cjk(c) {
        Class::Cjk
    } else if c.is_alphanumeric() {
        Class::Word
    } else {
        Class::Separator
    }
}

/// Tokenizes `text` (see the module docs).
pub fn tokenize(text: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut position = 0;
    let mut push = |tokens: &mut Vec<Token>, from: usize, to: usize, text: String| {
        tokens.push(Token { offset_from: from, offset_to: to, position, text, position_length: 1 });
        position += 1;
    };
    let mut chars = text.char_indices().map(|(i, c)| (i, fold_width(c), c.len_utf8())).peekable();
    while let Some(&(start, c, _)) = chars.peek() {
        match class(c) {
            Class::Separator => {
                chars.next();
            }
            Class::Word => {
                let mut word = String::new();
                let mut end = start;
                while let Some(&(i, c, len)) = chars.peek().filter(|(_, c, _)| class(*c) == Class::Word) {
                    word.extend(c.to_lowercase());
                    end = i + len;
                    chars.next();
                }
                push(&mut tokens, start, end, word);
            }
            Class::Cjk => {
                // (byte offset, char, byte length) of the run.
                let mut run = Vec::new();
                while let Some(&item) = chars.peek().filter(|(_, c, _)| class(*c) == Class::Cjk) {
                    run.push(item);
                    chars.next();
                }
                if let [(from, c, len)] = run[..] {
                    push(&mut tokens, from, from + len, c.to_string());
                }
                for pair in run.windows(2) {
                    let [(from, a, _), (at, b, len)] = [pair[0], pair[1]];
                    push(&mut tokens, from, at + len, [a, b].iter().collect());
                }
            }
        }
    }
    tokens
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(text: &str) -> Vec<String> {
        tokenize(text).into_iter().map(|t| t.text).collect()
    }

    #[test]
    fn a_hangul_run_becomes_overlapping_bigrams_with_increasing_positions() {
        let tokens = tokenize("채식주의자");
        let got: Vec<_> = tokens.iter().map(|t| (t.text.as_str(), t.position)).collect();
        assert_eq!(got, [("채식", 0), ("식주", 1), ("주의", 2), ("의자", 3)]);
        // Offsets are bytes of the original text, so highlighting can cut it.
        assert_eq!((tokens[1].offset_from, tokens[1].offset_to), (3, 9));
    }

    #[test]
    fn bigrams_never_span_a_space_or_punctuation() {
        assert_eq!(texts("소년이 온다"), ["소년", "년이", "온다"]);
        assert_eq!(texts("한강, 소설"), ["한강", "소설"]);
    }

    #[test]
    fn a_lone_cjk_character_stays_a_unigram() {
        assert_eq!(texts("책 한 권"), ["책", "한", "권"]);
        let tokens = tokenize("나 너");
        assert_eq!(tokens.iter().map(|t| t.position).collect::<Vec<_>>(), [0, 1]);
    }

    #[test]
    fn latin_and_digit_runs_become_lowercased_words_between_korean_bigrams() {
        let tokens = tokenize("해리포터 Harry Potter 2권, 1999년");
        let got: Vec<_> = tokens.iter().map(|t| (t.text.as_str(), t.position)).collect();
        assert_eq!(
            got,
            [
                ("해리", 0),
                ("리포", 1),
                ("포터", 2),
                ("harry", 3),
                ("potter", 4),
                ("2", 5),
                ("권", 6),
                ("1999", 7),
                ("년", 8)
            ]
        );
    }

    #[test]
    fn han_and_kana_are_bigrammed_like_hangul() {
        assert_eq!(texts("東京タワー"), ["東京", "京タ", "タワ", "ワー"]);
    }

    #[test]
    fn full_width_ascii_is_folded_before_lowercasing() {
        let tokens = tokenize("ＡＢＣ１２");
        assert_eq!(tokens[0].text, "abc12");
        assert_eq!((tokens[0].offset_from, tokens[0].offset_to), (0, 15));
    }

    #[test]
    fn empty_and_separator_only_text_has_no_tokens() {
        assert!(tokenize("").is_empty());
        assert!(tokenize("  -- !? ").is_empty());
    }
}
