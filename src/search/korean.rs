//! Korean analysis: what a Korean reader types (`별`, `소년은`, `도시에서`) finds the title
//! (`별을 스치는 바람`, `소년이 온다`, `도시에서 살아남기`), without a dictionary.
//!
//! Korean writes a word and its particle or ending as one unit (an *eojeol*: `별을` is
//! `별` "star" + `을`), and compounds without spaces (`채식주의자` is `채식` + `주의` +
//! `자`). Bigrams of the whole unit never store a one-syllable noun (`별`), and find any two
//! syllables in a row, words or not (`의자` "chair" in `채식주의자`). This analysis works on
//! each Hangul run instead, with three small explicit lists ([`PARTICLES`], [`ENDINGS`],
//! [`SUFFIXES`]):
//!
//! - **words** (one field per text field, `title_ko`): the run as written (`별을`), the run
//!   without its particle or ending (`별`), and that stem without a one-syllable noun suffix
//!   when two syllables or more stay (`여행자` → `여행`). A query word matches when one of
//!   its own forms is one of these.
//! - **pieces** (`title_kp`, a lower boost so a word match ranks first): the parts of a
//!   compound a reader may type alone — every substring of the stem whose cut-off rest, on
//!   each side, is nothing or at least two syllables, or one syllable of the suffix list
//!   (`채식주의자` → `채`, `채식`, `주의`, `주의자`; never `의자`, `식주`). A one-syllable
//!   piece only starts a stem (`밤` of `밤하늘`). A rest of one syllable is most often the
//!   cut end of a longer word (`아몬|드`, `코|리아`), so it is not a part.
//!
//! Han and Kana runs keep the bigrams of [`super::cjk`]; letters and digits are lowercased
//! words, full-width folded. All offsets are bytes of the original text at character
//! boundaries, so a highlight is always whole syllables: the stem the reader typed.
//!
//! # Layout
//!
//! - [`analyze`]: text → (words, pieces) tokens; the two tantivy tokenizers wrap it.
//! - [`query_words`]: the query's words and each one's forms, for [`super::query`].

use tantivy_tokenizer_api::{Token, TokenStream, Tokenizer};

use super::cjk::{self, fold_width, is_cjk};

/// Version of this analysis, stored with each index: an index built by another version is
/// rebuilt when opened (its tokens would not be the ones queries look for).
pub const ANALYSIS_VERSION: u32 = 2;

/// Particles taken off the end of a Hangul run, a noun's: case (`이 가 을 를 의 에 에서
/// 으로`…), topic and focus (`은 는 도 만 까지 부터`…), the copula (`이다 인가`…). The
/// longest of these and [`ENDINGS`] that leaves a syllable is taken off.
pub const PARTICLES: &[&str] = &[
    "에서부터",
    "으로부터",
    "이라는",
    "이라고",
    "에게서",
    "에서는",
    "에서도",
    "으로는",
    "으로도",
    "입니다",
    "에서",
    "에게",
    "한테",
    "까지",
    "부터",
    "처럼",
    "보다",
    "마다",
    "조차",
    "라도",
    "이나",
    "이랑",
    "으로",
    "에는",
    "에도",
    "와는",
    "과는",
    "로는",
    "이다",
    "이며",
    "이고",
    "이여",
    "이야",
    "께서",
    "이란",
    "이라",
    "인가",
    "의",
    "이",
    "가",
    "은",
    "는",
    "을",
    "를",
    "에",
    "와",
    "과",
    "도",
    "만",
    "로",
    "란",
    "랑",
    "야",
    "께",
];

/// Endings of the verbs and adjectives titles use (`다 는다 한 하는 하지 지만 니까`…). A
/// verb is not a compound: a run that had one has no pieces (`이루어진다` holds no `이루`).
pub const ENDINGS: &[&str] = &[
    "하지만",
    "합니다",
    "했다",
    "한다",
    "하다",
    "하는",
    "하지",
    "하게",
    "하고",
    "하며",
    "해서",
    "하여",
    "는다",
    "지만",
    "니까",
    "으면",
    "면서",
    "어서",
    "아서",
    "도록",
    "었다",
    "았다",
    "겠다",
    "는가",
    "나요",
    "다",
    "한",
    "할",
    "해",
    "고",
    "면",
    "며",
    "지",
    "게",
    "듯",
    "던",
    "요",
];

/// One-syllable suffixes of nouns (`-자` person, `-점` shop, `-적` -ic, `-가` -ist…): taken
/// off a stem of three syllables or more, and allowed as the one-syllable rest of a piece.
pub const SUFFIXES: &[char] = &['자', '점', '님', '적', '성', '론', '학', '가', '인', '사', '생'];

/// The plural suffix.
const PLURAL: char = '들';

/// Hangul syllables and jamo.
fn is_hangul(c: char) -> bool {
    matches!(c as u32, 0x1100..=0x11FF | 0x3130..=0x318F | 0xA960..=0xA97F | 0xAC00..=0xD7FF)
}

#[derive(PartialEq, Eq, Clone, Copy, Debug)]
enum Class {
    Hangul,
    OtherCjk,
    Word,
    Separator,
}

fn class(c: char) -> Class {
    if is_hangul(c) {
        Class::Hangul
    } else if is_cjk(c) {
        Class::OtherCjk
    } else if c.is_alphanumeric() {
        Class::Word
    } else {
        Class::Separator
    }
}

/// One run of the text: its class and `(byte offset, char)` of each character (folded).
#[derive(Debug, Clone)]
pub struct Run {
    class: Class,
    chars: Vec<(usize, char)>,
    end: usize,
}

impl Run {
    fn text(&self, from: usize, to: usize) -> String {
        self.chars[from..to].iter().map(|&(_, c)| c).collect()
    }

    /// Byte range in the original text of characters `from..to`.
    fn span(&self, from: usize, to: usize) -> (usize, usize) {
        let end = self.chars.get(to).map_or(self.end, |&(at, _)| at);
        (self.chars[from].0, end)
    }

    /// True for a Hangul run (the only kind with forms and pieces).
    pub fn is_hangul(&self) -> bool {
        self.class == Class::Hangul
    }

    /// True for a Han or Kana run (bigrams).
    pub fn is_other_cjk(&self) -> bool {
        self.class == Class::OtherCjk
    }
}

/// The runs of `text`: Hangul, other CJK, letters/digits; separators dropped.
pub fn runs(text: &str) -> Vec<Run> {
    let mut runs: Vec<Run> = Vec::new();
    let mut open = false;
    for (at, c) in text.char_indices() {
        let folded = fold_width(c);
        let kind = class(folded);
        let end = at + c.len_utf8();
        match runs.last_mut() {
            _ if kind == Class::Separator => open = false,
            Some(last) if open && last.class == kind => {
                last.chars.push((at, folded));
                last.end = end;
            }
            _ => {
                runs.push(Run { class: kind, chars: vec![(at, folded)], end });
                open = true;
            }
        }
    }
    runs
}

/// Length in characters of `word` once its particle or ending is off (the longest that
/// leaves at least one syllable), and whether it was a verb's ending; `None` when none.
fn without_ending(word: &[(usize, char)]) -> Option<(usize, bool)> {
    let text: String = word.iter().map(|&(_, c)| c).collect();
    let lists = [(PARTICLES, false), (ENDINGS, true)];
    lists
        .iter()
        .flat_map(|&(list, verb)| list.iter().map(move |e| (e, verb)))
        .filter(|(e, _)| text.ends_with(**e))
        .map(|(e, verb)| (word.len() - e.chars().count(), verb))
        .filter(|&(n, _)| n >= 1)
        .min()
}

/// The forms of one Hangul run (character counts of its prefix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forms {
    /// As written, without its particle or ending, without the plural, without a noun
    /// suffix (each only when it applies).
    pub lens: Vec<usize>,
    /// Without the particle or ending (the pieces are cut from it).
    pub stem: usize,
    /// The stem ends in a noun suffix that was taken off.
    pub suffixed: bool,
    /// A verb's ending was taken off: no pieces.
    pub verb: bool,
}

/// See [`Forms`].
pub fn forms(run: &Run) -> Forms {
    let mut lens = vec![run.chars.len()];
    let (mut stem, verb) = without_ending(&run.chars).unwrap_or((run.chars.len(), false));
    if stem != run.chars.len() {
        lens.push(stem);
    }
    // The plural `-들` goes on any noun, even of one syllable (`꽃들에게` → `꽃들` → `꽃`).
    if stem >= 2 && run.chars[stem - 1].1 == PLURAL {
        stem -= 1;
        lens.push(stem);
    }
    let suffixed = stem >= 3 && SUFFIXES.contains(&run.chars[stem - 1].1);
    if suffixed {
        lens.push(stem - 1);
    }
    Forms { lens, stem, suffixed, verb }
}

/// The pieces of the stem `chars[..stem]` (see the module docs): `(from, to)` character
/// ranges, the stem itself excluded (it is a word form already).
fn pieces(stem: usize, suffixed: bool) -> Vec<(usize, usize)> {
    // A stem with a noun suffix is cut as its base: `채식주의|자` has the pieces of `채식주의`
    // (so `의자` is none), and those with the suffix kept (`주의자`).
    let base = if suffixed { stem - 1 } else { stem };
    let rest_ok = |len: usize| len == 0 || len >= 2;
    let mut out = Vec::new();
    for from in 0..base {
        for to in from + 1..=base {
            let long_enough = to - from >= 2 || (from == 0 && base - to >= 2);
            if (from, to) != (0, base) && rest_ok(from) && rest_ok(base - to) && long_enough {
                out.push((from, to));
                if suffixed && to == base {
                    out.push((from, stem));
                }
            }
        }
    }
    out
}

/// Tokens of `text` for the words field and for the pieces field.
pub fn analyze(text: &str) -> (Vec<Token>, Vec<Token>) {
    let (mut words, mut parts) = (Vec::new(), Vec::new());
    let mut position = 0;
    let token = |run: &Run, from: usize, to: usize, position: usize| {
        let (offset_from, offset_to) = run.span(from, to);
        Token { offset_from, offset_to, position, text: run.text(from, to), position_length: 1 }
    };
    for run in runs(text) {
        match run.class {
            Class::Hangul => {
                let forms = forms(&run);
                for &n in &forms.lens {
                    words.push(token(&run, 0, n, position));
                }
                let pieces = if forms.verb { Vec::new() } else { pieces(forms.stem, forms.suffixed) };
                for (from, to) in pieces {
                    parts.push(token(&run, from, to, position));
                }
                position += 1;
            }
            Class::OtherCjk => {
                let from = run.chars[0].0;
                for mut t in cjk::tokenize(&text[from..run.end]) {
                    (t.offset_from, t.offset_to, t.position) =
                        (t.offset_from + from, t.offset_to + from, position);
                    words.push(t);
                    position += 1;
                }
            }
            Class::Word | Class::Separator => {
                let mut t = token(&run, 0, run.chars.len(), position);
                t.text = t.text.to_lowercase();
                words.push(t);
                position += 1;
            }
        }
    }
    (words, parts)
}

/// One word of a query: its run, and for a Hangul run its forms (see [`forms`]).
#[derive(Debug, Clone)]
pub struct QueryWord {
    /// The run.
    pub run: Run,
    /// The forms to look up (Hangul); the lowercased run otherwise.
    pub forms: Vec<String>,
    /// A verb's ending was taken off (see [`Forms::verb`]).
    pub verb: bool,
}

/// The words of a query, each with its forms. Every character that is not a letter, digit or
/// CJK separates words: nothing in the text is query syntax.
pub fn query_words(q: &str) -> Vec<QueryWord> {
    runs(q)
        .into_iter()
        .map(|run| {
            let (forms, verb) = match run.class {
                Class::Hangul => {
                    let f = forms(&run);
                    (f.lens.into_iter().map(|n| run.text(0, n)).collect(), f.verb)
                }
                _ => (vec![run.text(0, run.chars.len()).to_lowercase()], false),
            };
            QueryWord { run, forms, verb }
        })
        .collect()
}

impl QueryWord {
    /// The text of characters `from..to` of the word.
    pub fn text(&self, from: usize, to: usize) -> String {
        self.run.text(from, to)
    }

    /// Characters in the word.
    pub fn len(&self) -> usize {
        self.run.chars.len()
    }

    /// Never true (a run has a character); for clippy.
    pub fn is_empty(&self) -> bool {
        self.run.chars.is_empty()
    }
}

/// Which half of [`analyze`] a tokenizer yields.
#[derive(Debug, Clone, Copy)]
pub enum Half {
    /// The word forms, other CJK bigrams, Latin and digit words.
    Words,
    /// The pieces of Hangul compounds.
    Pieces,
}

/// A tantivy tokenizer over one half of [`analyze`].
#[derive(Debug, Clone, Copy)]
pub struct KoreanTokenizer(pub Half);

/// The tokens of one text, computed up front (field values are short).
#[derive(Debug)]
pub struct KoreanTokenStream {
    tokens: Vec<Token>,
    next: usize,
}

impl Tokenizer for KoreanTokenizer {
    type TokenStream<'a> = KoreanTokenStream;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> KoreanTokenStream {
        let (words, pieces) = analyze(text);
        let tokens = match self.0 {
            Half::Words => words,
            Half::Pieces => pieces,
        };
        KoreanTokenStream { tokens, next: 0 }
    }
}

impl TokenStream for KoreanTokenStream {
    fn advance(&mut self) -> bool {
        let more = self.next < self.tokens.len();
        self.next += usize::from(more);
        more
    }

    fn token(&self) -> &Token {
        &self.tokens[self.next - 1]
    }

    fn token_mut(&mut self) -> &mut Token {
        &mut self.tokens[self.next - 1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<(String, usize)> {
        analyze(text).0.into_iter().map(|t| (t.text, t.position)).collect()
    }

    fn pieces_of(text: &str) -> Vec<String> {
        analyze(text).1.into_iter().map(|t| t.text).collect()
    }

    fn forms_of(q: &str) -> Vec<Vec<String>> {
        query_words(q).into_iter().map(|w| w.forms).collect()
    }

    #[test]
    fn a_run_is_indexed_as_written_without_its_particle_and_without_its_noun_suffix() {
        let got = words("별을 스치는 바람");
        assert_eq!(got[..2], [("별을".into(), 0), ("별".into(), 0)]);
        assert_eq!(
            forms_of("소년은 엄마가 도시에서"),
            [vec!["소년은", "소년"], vec!["엄마가", "엄마"], vec!["도시에서", "도시"]]
        );
        assert_eq!(forms_of("여행자들"), [vec!["여행자들", "여행자", "여행"]]);
        assert_eq!(forms_of("꽃들에게"), [vec!["꽃들에게", "꽃들", "꽃"]]);
        // Two syllables keep a suffix-like end: `왕자` is a word, not `왕` + `-자`.
        assert_eq!(forms_of("왕자"), [vec!["왕자"]]);
    }

    #[test]
    fn compound_pieces_leave_no_one_syllable_rest_except_a_noun_suffix() {
        let pieces = pieces_of("채식주의자");
        for part in ["채식", "주의", "주의자", "채"] {
            assert!(pieces.contains(&part.to_owned()), "{part} in {pieces:?}");
        }
        for cut in ["의자", "식주", "채식주의자", "식"] {
            assert!(!pieces.contains(&cut.to_owned()), "{cut} in {pieces:?}");
        }
        assert_eq!(pieces_of("태백산맥"), ["태", "태백", "산맥"]);
        // A one-syllable start stays (`밤` of `밤하늘`), a two-syllable cut end does not.
        assert_eq!(pieces_of("아몬드"), ["아"]);
        assert_eq!(pieces_of("코리아"), ["코"]);
    }

    #[test]
    fn mixed_hangul_latin_and_digits_are_separate_words_with_byte_offsets_of_the_text() {
        let (words, _) = analyze("82년생 김지영 Ｈａｒｒｙ");
        let got: Vec<_> = words.iter().map(|t| (t.text.as_str(), t.offset_from, t.offset_to)).collect();
        assert_eq!(got, [("82", 0, 2), ("년생", 2, 8), ("김지영", 9, 18), ("harry", 19, 34)]);
        assert_eq!(words[1].position, 1);
    }

    #[test]
    fn han_and_kana_runs_are_bigrams_in_a_row() {
        let got = words("東京タワー 本");
        assert_eq!(
            got,
            [
                ("東京".into(), 0),
                ("京タ".into(), 1),
                ("タワ".into(), 2),
                ("ワー".into(), 3),
                ("本".into(), 4)
            ]
        );
    }

    #[test]
    fn query_syntax_characters_only_separate_words() {
        let words: Vec<_> =
            query_words("title:* \"별을\" (a OR b)~^2").into_iter().map(|w| w.forms[0].clone()).collect();
        assert_eq!(words, ["title", "별을", "a", "or", "b", "2"]);
        assert!(query_words("*:~^()\"'").is_empty());
    }
}
