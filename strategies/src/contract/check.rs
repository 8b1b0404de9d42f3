//! The one contract check: what a race told its readers against what the database holds.
//! The strategy-level race of this module, the HTTP crowd of the multi-instance tests and
//! `nanum loadtest` / `nanum compare` all fill a [`Check`] and ask it for its violations.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A race's books, balanced: every field is a count after the race (and after every 202 was
/// settled or its bound ran out).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    /// Copies offered.
    pub copies: i64,
    /// Distinct readers who applied; 0 when unknown (then too few winners is not checked).
    #[serde(default)]
    pub readers: u64,
    /// Requests sent; 0 when unknown (then the answers are not counted against them).
    #[serde(default)]
    pub requests: u64,
    /// Application rows.
    pub winners: u64,
    /// Distinct readers among them.
    pub distinct_winners: u64,
    /// `remaining` afterwards.
    pub remaining: i64,
    /// Readers told they won: 201 answers plus 202s that settled `won`.
    pub won_answers: u64,
    /// Readers told they lost: `sold_out` / `already_applied` (409s and settled 202s).
    #[serde(default)]
    pub lost_answers: u64,
    /// 202 `pending` answers.
    pub pending: u64,
    /// 202s still pending when the settle bound ran out.
    pub unsettled: u64,
    /// 5xx answers (strategy errors in a race without HTTP).
    pub server_errors: u64,
    /// Other answers outside the contract (4xx but 409, no answer at all).
    pub unexpected: u64,
}

impl Check {
    /// One check for several events raced at once: the first event's own check when it
    /// breaks anything (a sum could hide one event's extra winner behind another's missing
    /// one), else every count added up.
    pub fn combined(checks: &[Check]) -> Check {
        if let Some(broken) = checks.iter().find(|c| !c.violations().is_empty()) {
            return *broken;
        }
        checks.iter().fold(Check::default(), |sum, c| Check {
            copies: sum.copies + c.copies,
            readers: sum.readers + c.readers,
            requests: sum.requests + c.requests,
            winners: sum.winners + c.winners,
            distinct_winners: sum.distinct_winners + c.distinct_winners,
            remaining: sum.remaining + c.remaining,
            won_answers: sum.won_answers + c.won_answers,
            lost_answers: sum.lost_answers + c.lost_answers,
            pending: sum.pending + c.pending,
            unsettled: sum.unsettled + c.unsettled,
            server_errors: sum.server_errors + c.server_errors,
            unexpected: sum.unexpected + c.unexpected,
        })
    }

    /// Winners beyond the copies.
    pub fn over_allocated(&self) -> u64 {
        self.winners.saturating_sub(u64::try_from(self.copies).unwrap_or(0))
    }

    /// Rows beyond one per reader.
    pub fn duplicates(&self) -> u64 {
        self.winners - self.distinct_winners.min(self.winners)
    }

    /// Copies left on the table although every reader was answered without an error:
    /// `min(readers, copies)` must win.
    pub fn under_allocated(&self) -> u64 {
        let clean = self.server_errors == 0 && self.unexpected == 0 && self.unsettled == 0;
        if self.readers == 0 || !clean {
            return 0;
        }
        self.readers.min(u64::try_from(self.copies).unwrap_or(0)).saturating_sub(self.winners)
    }

    /// Whether the contract itself broke: a copy too many or too few, a reader twice, a win
    /// told that is not stored (or stored but not told), stock that does not add up, an
    /// accepted request never decided, a request never answered. A 5xx or a refused request
    /// is counted among the violations but is not this: nothing was written for it, and the
    /// reader was told so.
    pub fn breaks_contract(&self) -> bool {
        self.violations().keys().any(|k| !matches!(*k, "5xx" | "other errors"))
    }

    /// Every broken invariant with its count; empty when the race held.
    pub fn violations(&self) -> BTreeMap<&'static str, u64> {
        let expected_left = self.copies - i64::try_from(self.winners).unwrap_or(i64::MAX);
        let stock_off = self.remaining != expected_left || self.remaining < 0;
        let told =
            self.won_answers + self.lost_answers + self.unsettled + self.server_errors + self.unexpected;
        let unanswered = if self.requests == 0 { 0 } else { self.requests.abs_diff(told) };
        [
            ("over-allocated", self.over_allocated()),
            ("under-allocated", self.under_allocated()),
            ("duplicate winners", self.duplicates()),
            ("5xx", self.server_errors),
            ("unsettled 202", self.unsettled),
            ("wins told ≠ rows", self.won_answers.abs_diff(self.winners)),
            ("stock ≠ copies − winners", u64::from(stock_off)),
            ("answers ≠ requests", unanswered),
            ("other errors", self.unexpected),
        ]
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean() -> Check {
        Check {
            copies: 10,
            readers: 300,
            requests: 600,
            winners: 10,
            distinct_winners: 10,
            remaining: 0,
            won_answers: 10,
            lost_answers: 590,
            ..Check::default()
        }
    }

    #[test]
    fn a_clean_race_has_no_violations_and_each_fault_is_named() {
        let clean = clean();
        assert!(clean.violations().is_empty());
        let over = Check { winners: 58, distinct_winners: 58, won_answers: 58, lost_answers: 542, ..clean };
        assert_eq!(over.violations().get("over-allocated"), Some(&48));
        // remaining stayed 0 while 58 rows were written: the stock no longer adds up
        assert!(over.violations().contains_key("stock ≠ copies − winners"));
        let dup = Check { distinct_winners: 9, ..clean };
        assert_eq!(dup.violations().get("duplicate winners"), Some(&1));
        let lost = Check { won_answers: 9, unsettled: 1, server_errors: 2, lost_answers: 588, ..clean };
        assert_eq!(lost.violations().len(), 3, "{:?}", lost.violations());
        assert!(lost.breaks_contract() && over.breaks_contract() && dup.breaks_contract());
        let refused = Check { server_errors: 1, unexpected: 2, lost_answers: 587, ..clean };
        assert_eq!(refused.violations().len(), 2, "{:?}", refused.violations());
        assert!(!refused.breaks_contract(), "a 503 with nothing written keeps the contract");
    }

    #[test]
    fn events_raced_together_add_up_unless_one_breaks_and_then_that_one_shows() {
        let clean = clean();
        let both = Check::combined(&[clean, clean]);
        assert!(both.violations().is_empty());
        assert_eq!((both.copies, both.winners, both.requests), (20, 20, 1200));
        // one event one copy over, the other one short: the sum would balance, the check does not
        let over = Check { winners: 11, distinct_winners: 11, won_answers: 11, lost_answers: 589, ..clean };
        let short = Check {
            winners: 9,
            distinct_winners: 9,
            won_answers: 9,
            remaining: 1,
            lost_answers: 591,
            ..clean
        };
        assert_eq!(Check::combined(&[short, over]), short);
        assert_eq!(Check::combined(&[clean, over]), over);
    }

    #[test]
    fn copies_left_over_or_requests_unanswered_break_the_contract() {
        let left = Check {
            winners: 8,
            distinct_winners: 8,
            won_answers: 8,
            remaining: 2,
            lost_answers: 592,
            ..clean()
        };
        assert_eq!(left.violations().get("under-allocated"), Some(&2));
        assert!(left.breaks_contract());
        // with a 503 among the answers, fewer winners is allowed (that reader was refused)
        let refused = Check { server_errors: 1, lost_answers: 591, ..left };
        assert!(!refused.violations().contains_key("under-allocated"));
        let silent = Check { lost_answers: 589, ..clean() };
        assert_eq!(silent.violations().get("answers ≠ requests"), Some(&1));
        // unknown readers and requests: those two checks are skipped, not failed
        let unknown = Check { readers: 0, requests: 0, ..left };
        assert!(!unknown.violations().contains_key("under-allocated"));
    }
}
