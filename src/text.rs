//! What stored text and times may hold. Titles, names and descriptions are shown on pages,
//! in the admin's lists and in JSON: a NUL, another control character or a line/paragraph
//! separator (U+2028/U+2029, which end a line in JavaScript) has no business there, so it is
//! refused with a 422 naming the field rather than stored. Tabs and line breaks are allowed
//! (a description has paragraphs). Times must be ones every reader's clock can show.

use chrono::{DateTime, Datelike, Timelike, Utc};

/// The 422 message of a refused character.
pub const REFUSED: &str = "must not contain control characters or U+2028/U+2029 separators";

/// True when `s` holds a character [`REFUSED`] names.
pub fn refused(s: &str) -> bool {
    s.chars()
        .any(|c| (c.is_control() && !matches!(c, '\t' | '\n' | '\r')) || matches!(c, '\u{2028}' | '\u{2029}'))
}

/// Earliest and latest year of a stored time: years 1970–9998 stay four-digit years in
/// every time zone (9999-12-31 in KST is already year 10000).
pub const YEARS: std::ops::RangeInclusive<i32> = 1970..=9998;

/// Why `t` cannot be stored, if it cannot: outside [`YEARS`], or a leap second (which
/// MariaDB's DATETIME and most clocks cannot hold).
pub fn time_problem(t: DateTime<Utc>) -> Option<&'static str> {
    if !YEARS.contains(&t.year()) {
        return Some("must be a time between the years 1970 and 9998");
    }
    if t.nanosecond() >= 1_000_000_000 {
        return Some("must not be a leap second (use :59)");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_and_separators_are_refused_but_line_breaks_are_not() {
        for bad in ["a\u{0}b", "\u{7}", "a\u{2028}b", "a\u{2029}", "\u{85}", "\u{7f}"] {
            assert!(refused(bad), "{bad:?}");
        }
        for good in ["채식주의자", "line\nbreak", "tab\there", "Ｆｕｌｌ"] {
            assert!(!refused(good), "{good:?}");
        }
    }

    #[test]
    fn times_outside_four_digit_years_and_leap_seconds_are_refused() {
        let parse = |s: &str| DateTime::parse_from_rfc3339(s).expect(s).with_timezone(&Utc);
        assert!(time_problem(parse("2026-12-24T20:00:00+09:00")).is_none());
        assert!(time_problem(parse("9999-12-31T23:00:00Z")).is_some());
        assert!(time_problem(parse("2016-12-31T23:59:60Z")).is_some());
        assert!(time_problem(parse("1969-12-31T23:59:59Z")).is_some());
    }
}
