//! Retention: how long each type of log entry keeps its payload before a redaction run
//! removes it (the leaf hash stays, so every proof still verifies), whether an entry is due,
//! and the plan of a run: the coalesced index ranges it redacts and how many of each type.
//! Pure: callers pass the entries' facts and the time.
//!
//! # Periods
//!
//! Each entry type has a period, counted from the entry's `logged_at`; a VO may have its own
//! period for the types whose entries name a VO ([`EntryType::has_vo`]). Periods are written
//! `180d`, `5y`, `12h`, or sums such as `1y30d` ([`Period`]); a year is 365 days.
//!
//! - **Traceability** types, issuances and sightings: 180 days, what the WLCG traceability
//!   policy asks of logs that tie a token to a person.
//! - **Audit** types, everything else (resolutions, suspensions, lifts, identity links, site
//!   key fetches, suspension requests and their accept and decline, redactions, erasures):
//!   5 years. They are the record of who looked at, suspended, linked or erased a person,
//!   and of what the ledger itself removed. Such records must outlive what they are about (a
//!   resolution is logged after the token it resolves), and the questions asked of them: an
//!   incident review, a complaint about a resolution, or a person asking who looked at
//!   their data can come years later. Five years spans several yearly audits and the longest
//!   incident follow-ups while still ending: these entries hold personal data too (person
//!   ids, pseudonyms, reasons), so "forever" is no default.
//!
//! # Rules of a policy ([`RetentionPolicy::validate`])
//!
//! 1. Every period is at least 1 second and at most 100 years.
//! 2. A VO's own periods are only for types whose entries name a VO: a lift, a site key
//!    fetch or a retention run's redaction belongs to the whole ledger.
//! 3. In the ledger-wide policy and in every VO's (its own periods laid over the
//!    ledger-wide ones), no audit type is shorter than the longest traceability type: the
//!    record of who looked at or acted on a person lasts as long as their tokens do.
//! 4. An entry that ends a record (a lift, a decision on a suspension request) is kept at
//!    least as long as the entry that began it (in every VO), which the record points at.
//! 5. The policy, as a redaction entry records it ([`RetentionPolicy::record`]), takes at
//!    most [`MAX_POLICY_RECORD_BYTES`], so a run's entry keeps room for its ranges.
//!
//! # When an entry is due ([`RetentionPolicy::decide`])
//!
//! An entry is redacted once its period has passed and, if it is about a token (an
//! issuance), that token has expired: a token without `exp` is held by its period only (the
//! ledger cannot tell when it stops being used, and holding it forever would defeat
//! retention). Nothing is redacted while something in force needs it, whatever its age
//! ([`Candidate::held`]): an active suspension (not lifted, not past `not_after`) needs its
//! own entry and the entries of its person or token (issuances, sightings, identity links),
//! and a pending suspension request needs its entry. The caller, which reads the storage,
//! says which entries are held.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use crate::entry::{EntryType, canonical_json, validate_vo_name};
use crate::redaction::{IndexRange, PolicyRecord};

const MINUTE: u64 = 60;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;
const WEEK: u64 = 7 * DAY;
/// A year of a period: 365 days (periods do not follow the calendar).
const YEAR: u64 = 365 * DAY;

/// The default period of the traceability types (issuances, sightings): 180 days.
pub const TRACEABILITY_PERIOD: Period = Period(180 * DAY);
/// The default period of the audit types (every other): 5 years.
pub const AUDIT_PERIOD: Period = Period(5 * YEAR);
/// The longest period accepted: 100 years.
pub const MAX_PERIOD: Period = Period(100 * YEAR);
/// The most bytes a policy may take in a redaction entry, leaving room for its ranges.
pub const MAX_POLICY_RECORD_BYTES: usize = 4096;

/// Why a policy or a period was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RetentionError {
    #[error(
        "`{0}` is not a period such as 180d, 5y, 12h or 1y30d (units s, m, h, d, w, y; a year is 365 days)"
    )]
    BadPeriod(String),
    #[error("{what}: {error}")]
    Of {
        what: String,
        error: Box<RetentionError>,
    },
    #[error("{what}: a period is 1s to 100y, not {period}")]
    OutOfRange { what: String, period: String },
    #[error("`{0}` is no entry type; the types are {types}", types = type_names())]
    UnknownType(String),
    #[error("VO `{vo}`: {reason}")]
    BadVo { vo: String, reason: String },
    #[error(
        "{scope}: `{audit}` ({audit_period}) is shorter than `{traceability}` ({traceability_period}): \
         an audit type is kept at least as long as every traceability type (issuance, sighting)"
    )]
    AuditShorter {
        scope: String,
        audit: EntryType,
        audit_period: Period,
        traceability: EntryType,
        traceability_period: Period,
    },
    #[error(
        "{scope}: `{closing}` ({closing_period}) is shorter than `{opening}` ({opening_period}): \
         the entry that ends a record (a lift, a decision on a request) is kept at least as \
         long as the entry that began it, which the record still points at"
    )]
    ClosingShorter {
        scope: String,
        closing: EntryType,
        closing_period: Period,
        opening: EntryType,
        opening_period: Period,
    },
    #[error(
        "the policy takes {0} bytes in a redaction entry, more than the {MAX_POLICY_RECORD_BYTES} \
         allowed: fewer VO periods"
    )]
    TooLarge(usize),
}

fn type_names() -> String {
    EntryType::ALL.map(EntryType::as_str).join(", ")
}

/// A retention period, in whole seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Period(u64);

impl Period {
    pub const fn from_secs(secs: u64) -> Period {
        Period(secs)
    }

    pub fn secs(self) -> u64 {
        self.0
    }

    /// The period in microseconds (the unit of `logged_at`), at most `i64::MAX`.
    pub fn micros(self) -> i64 {
        i64::try_from(self.0)
            .ok()
            .and_then(|secs| secs.checked_mul(1_000_000))
            .unwrap_or(i64::MAX)
    }
}

/// `180d`, `5y`, `12h`, `90s`, `2w` or a sum such as `1y30d`: a whole number before each
/// unit (s, m, h, d, w, y; a year is 365 days), no spaces inside. The units are those of the
/// CLI's durations, plus `y`. (The humantime crate, not a dependency, reads a year as
/// 365.25 days: `5y` would not be a whole number of days.)
impl FromStr for Period {
    type Err = RetentionError;

    fn from_str(text: &str) -> Result<Period, RetentionError> {
        let bad = || RetentionError::BadPeriod(text.to_string());
        let mut total: u64 = 0;
        let mut digits = 0usize;
        let mut count: u64 = 0;
        for c in text.trim().chars() {
            if let Some(digit) = c.to_digit(10) {
                count = count
                    .checked_mul(10)
                    .and_then(|n| n.checked_add(u64::from(digit)))
                    .ok_or_else(bad)?;
                digits += 1;
                continue;
            }
            let unit = match c {
                's' => 1,
                'm' => MINUTE,
                'h' => HOUR,
                'd' => DAY,
                'w' => WEEK,
                'y' => YEAR,
                _ => return Err(bad()),
            };
            if digits == 0 {
                return Err(bad());
            }
            total = count
                .checked_mul(unit)
                .and_then(|secs| total.checked_add(secs))
                .ok_or_else(bad)?;
            digits = 0;
            count = 0;
        }
        if digits > 0 || text.trim().is_empty() {
            return Err(bad());
        }
        Ok(Period(total))
    }
}

/// The shortest text in years, days, hours, minutes and seconds: `180d`, `5y`, `1y35d`.
impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            return f.write_str("0s");
        }
        let mut rest = self.0;
        for (unit, name) in [
            (YEAR, 'y'),
            (DAY, 'd'),
            (HOUR, 'h'),
            (MINUTE, 'm'),
            (1, 's'),
        ] {
            if rest >= unit {
                write!(f, "{}{name}", rest / unit)?;
                rest %= unit;
            }
        }
        Ok(())
    }
}

/// Whether an entry type ties a token to a person (traceability) or records what someone,
/// or the ledger, did (audit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    Traceability,
    Audit,
}

impl Class {
    pub fn of(entry_type: EntryType) -> Class {
        match entry_type {
            EntryType::Issuance | EntryType::Sighting => Class::Traceability,
            EntryType::Resolution
            | EntryType::Suspension
            | EntryType::Lift
            | EntryType::SiteKeyFetch
            | EntryType::IdentityLink
            | EntryType::SuspensionRequest
            | EntryType::SuspensionRequestAccept
            | EntryType::SuspensionRequestDecline
            | EntryType::Redaction
            | EntryType::Erasure => Class::Audit,
        }
    }

    /// The default period of the class.
    pub fn default_period(self) -> Period {
        match self {
            Class::Traceability => TRACEABILITY_PERIOD,
            Class::Audit => AUDIT_PERIOD,
        }
    }
}

/// The period of every entry type, and the periods of VOs that differ.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Every entry type's ledger-wide period.
    periods: BTreeMap<EntryType, Period>,
    /// A VO's own periods (types that name a VO only).
    vos: BTreeMap<String, BTreeMap<EntryType, Period>>,
}

/// Each type with its class's default period, no VO periods.
impl Default for RetentionPolicy {
    fn default() -> RetentionPolicy {
        RetentionPolicy {
            periods: EntryType::ALL
                .into_iter()
                .map(|t| (t, Class::of(t).default_period()))
                .collect(),
            vos: BTreeMap::new(),
        }
    }
}

impl RetentionPolicy {
    /// The default policy with the periods given as text laid over it: `periods` by type
    /// name, `vos` by VO, then by type name; validated ([`RetentionPolicy::validate`]).
    pub fn parse(
        periods: &BTreeMap<String, String>,
        vos: &BTreeMap<String, BTreeMap<String, String>>,
    ) -> Result<RetentionPolicy, RetentionError> {
        let mut policy = RetentionPolicy::default();
        for (name, text) in periods {
            let entry_type = name.parse().map_err(unknown_type)?;
            policy.set(entry_type, period_of("ledger-wide", entry_type, text)?);
        }
        for (vo, periods) in vos {
            for (name, text) in periods {
                let entry_type = name.parse().map_err(unknown_type)?;
                let period = period_of(&format!("VO `{vo}`"), entry_type, text)?;
                policy.set_for_vo(vo, entry_type, period)?;
            }
        }
        policy.validate()?;
        Ok(policy)
    }

    /// Sets the ledger-wide period of `entry_type`.
    pub fn set(&mut self, entry_type: EntryType, period: Period) {
        self.periods.insert(entry_type, period);
    }

    /// Sets `vo`'s own period of `entry_type`, a type whose entries name a VO.
    pub fn set_for_vo(
        &mut self,
        vo: &str,
        entry_type: EntryType,
        period: Period,
    ) -> Result<(), RetentionError> {
        let bad_vo = |reason: String| RetentionError::BadVo {
            vo: vo.to_string(),
            reason,
        };
        validate_vo_name(vo).map_err(|e| bad_vo(e.to_string()))?;
        if !entry_type.has_vo() {
            return Err(bad_vo(format!(
                "`{entry_type}` entries name no VO: set their period ledger-wide only"
            )));
        }
        self.vos
            .entry(vo.to_string())
            .or_default()
            .insert(entry_type, period);
        Ok(())
    }

    /// Checks the rules of the module documentation.
    pub fn validate(&self) -> Result<(), RetentionError> {
        let scopes = std::iter::once(None).chain(self.vos.keys().map(|vo| Some(vo.as_str())));
        for vo in scopes {
            let scope = match vo {
                Some(vo) => format!("VO `{vo}`"),
                None => "ledger-wide".to_string(),
            };
            for entry_type in EntryType::ALL {
                let period = self.period(entry_type, vo);
                if period < Period(1) || period > MAX_PERIOD {
                    return Err(RetentionError::OutOfRange {
                        what: format!("{scope}, `{entry_type}`"),
                        period: period.to_string(),
                    });
                }
            }
            let periods_of = |class| {
                EntryType::ALL
                    .into_iter()
                    .filter(move |t| Class::of(*t) == class)
                    .map(|t| (self.period(t, vo), t))
            };
            // The longest traceability period and the shortest audit one (the first of equals).
            let traceability =
                periods_of(Class::Traceability).reduce(|a, b| if b.0 > a.0 { b } else { a });
            let audit = periods_of(Class::Audit).min();
            if let (Some((traceability_period, traceability)), Some((audit_period, audit))) =
                (traceability, audit)
                && audit_period < traceability_period
            {
                return Err(RetentionError::AuditShorter {
                    scope,
                    audit,
                    audit_period,
                    traceability,
                    traceability_period,
                });
            }
        }
        self.check_closing_entries()?;
        let size =
            canonical_json(&serde_json::to_value(self.record()).expect("a policy record is JSON"))
                .map(|bytes| bytes.len())
                .unwrap_or(usize::MAX);
        if size > MAX_POLICY_RECORD_BYTES {
            return Err(RetentionError::TooLarge(size));
        }
        Ok(())
    }

    /// A record begun by one entry and ended by another (a suspension and its lift, a request
    /// and its decision) points at both while it is kept: the ending entry, logged later, must
    /// be kept at least as long as the beginning one, in every VO (a lift names no VO: its one
    /// period covers every VO's suspensions).
    fn check_closing_entries(&self) -> Result<(), RetentionError> {
        const PAIRS: [(EntryType, EntryType); 3] = [
            (EntryType::Suspension, EntryType::Lift),
            (
                EntryType::SuspensionRequest,
                EntryType::SuspensionRequestAccept,
            ),
            (
                EntryType::SuspensionRequest,
                EntryType::SuspensionRequestDecline,
            ),
        ];
        let scopes = std::iter::once(None).chain(self.vos.keys().map(|vo| Some(vo.as_str())));
        for vo in scopes {
            for (opening, closing) in PAIRS {
                let closing_vo = if closing.has_vo() { vo } else { None };
                let (opening_period, closing_period) =
                    (self.period(opening, vo), self.period(closing, closing_vo));
                if closing_period < opening_period {
                    return Err(RetentionError::ClosingShorter {
                        scope: vo.map_or("ledger-wide".to_string(), |vo| format!("VO `{vo}`")),
                        closing,
                        closing_period,
                        opening,
                        opening_period,
                    });
                }
            }
        }
        Ok(())
    }

    /// The period of `entry_type` for an entry of `vo` (none: the ledger-wide period).
    pub fn period(&self, entry_type: EntryType, vo: Option<&str>) -> Period {
        vo.and_then(|vo| self.vos.get(vo))
            .and_then(|periods| periods.get(&entry_type))
            .or_else(|| self.periods.get(&entry_type))
            .copied()
            .unwrap_or_else(|| Class::of(entry_type).default_period())
    }

    /// The VOs with periods of their own.
    pub fn vos(&self) -> impl Iterator<Item = &str> {
        self.vos.keys().map(String::as_str)
    }

    /// The policy as a redaction entry records it: every type's period and each VO's own,
    /// in seconds.
    pub fn record(&self) -> PolicyRecord {
        let secs = |periods: &BTreeMap<EntryType, Period>| {
            periods.iter().map(|(t, p)| (*t, p.secs())).collect()
        };
        PolicyRecord {
            periods: EntryType::ALL
                .into_iter()
                .map(|t| (t, self.period(t, None).secs()))
                .collect(),
            vos: self
                .vos
                .iter()
                .map(|(vo, periods)| (vo.clone(), secs(periods)))
                .collect(),
        }
    }

    /// When `entry` becomes due (unix microseconds): the end of its period or, if later,
    /// the expiry of its token; `None` while something in force holds it.
    pub fn due_at(&self, entry: &Candidate<'_>) -> Option<i64> {
        if entry.held {
            return None;
        }
        let period_end = entry
            .logged_at
            .saturating_add(self.period(entry.entry_type, entry.vo).micros());
        let token_end = entry
            .token_exp
            .map_or(i64::MIN, |exp| exp.saturating_mul(1_000_000));
        Some(period_end.max(token_end))
    }

    /// Whether `entry` is redacted by a run at `now` (unix microseconds).
    pub fn decide(&self, entry: &Candidate<'_>, now: i64) -> Decision {
        match self.due_at(entry) {
            None => Decision::Held,
            Some(at) if now >= at => Decision::Redact,
            Some(at) => Decision::NotYet { at },
        }
    }
}

/// `text` read as the period of `entry_type` in `scope`; an error names both.
fn period_of(scope: &str, entry_type: EntryType, text: &str) -> Result<Period, RetentionError> {
    text.parse().map_err(|e| RetentionError::Of {
        what: format!("{scope}, `{entry_type}`"),
        error: Box::new(e),
    })
}

fn unknown_type(e: crate::entry::UnknownEntryType) -> RetentionError {
    RetentionError::UnknownType(e.0)
}

/// What a run needs to know of one entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Candidate<'a> {
    pub entry_type: EntryType,
    /// The entry's VO ([`crate::entry::EntryBody::vo`]); ignored for types that name none.
    pub vo: Option<&'a str>,
    /// When the entry was logged (unix microseconds).
    pub logged_at: i64,
    /// The expiry (unix seconds) of the token the entry is about, which holds it while
    /// valid: an issuance's `exp`.
    pub token_exp: Option<i64>,
    /// Something in force needs the entry (see the module documentation).
    pub held: bool,
}

/// What a run does with an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Its period has passed, its token (if any) has expired, nothing holds it.
    Redact,
    /// Not yet: due at `at` (unix microseconds).
    NotYet { at: i64 },
    /// Something in force needs it, whatever its age.
    Held,
}

impl Decision {
    pub fn is_redact(self) -> bool {
        self == Decision::Redact
    }
}

/// What a run redacts: coalesced index ranges and how many entries of each type.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RedactionPlan {
    pub ranges: Vec<IndexRange>,
    pub counts: BTreeMap<EntryType, u64>,
}

impl RedactionPlan {
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// How many entries the plan redacts.
    pub fn total(&self) -> u64 {
        self.ranges.iter().map(IndexRange::len).sum()
    }
}

/// Why an entry could not be added to a plan.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    #[error("entry {index} comes after entry {previous}: a plan takes entries by increasing index")]
    NotIncreasing { previous: u64, index: u64 },
    #[error("entry {0} is beyond the last index a log can have")]
    IndexTooLarge(u64),
}

/// Whether a plan took an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pushed {
    /// Taken (in a range if due, else as a break between ranges).
    Taken,
    /// Not taken: a due entry would open a range beyond the plan's room. The run redacts
    /// what the plan holds; the next one starts at this entry.
    Full,
}

/// Builds a [`RedactionPlan`] from entries given by increasing index: consecutive due
/// entries make one range; an entry not due, or an index not given, ends a range.
#[derive(Clone, Debug)]
pub struct RedactionPlanner {
    plan: RedactionPlan,
    max_ranges: usize,
    previous: Option<u64>,
    full: bool,
}

impl RedactionPlanner {
    /// A plan of at most `max_ranges` ranges (what its entry has room for:
    /// [`crate::redaction::range_room`]).
    pub fn new(max_ranges: usize) -> RedactionPlanner {
        RedactionPlanner {
            plan: RedactionPlan::default(),
            max_ranges,
            previous: None,
            full: false,
        }
    }

    /// Adds the entry at `index`, of `entry_type`, redacted if `due`.
    pub fn push(
        &mut self,
        index: u64,
        entry_type: EntryType,
        due: bool,
    ) -> Result<Pushed, PlanError> {
        if let Some(previous) = self.previous
            && index <= previous
        {
            return Err(PlanError::NotIncreasing { previous, index });
        }
        if self.full {
            return Ok(Pushed::Full);
        }
        let end = index
            .checked_add(1)
            .ok_or(PlanError::IndexTooLarge(index))?;
        if due {
            let ranges = &mut self.plan.ranges;
            if let Some(last) = ranges.last_mut().filter(|last| last.end == index) {
                last.end = end;
            } else if ranges.len() == self.max_ranges {
                self.full = true;
                return Ok(Pushed::Full);
            } else {
                ranges.push(IndexRange { start: index, end });
            }
            *self.plan.counts.entry(entry_type).or_default() += 1;
        }
        self.previous = Some(index);
        Ok(Pushed::Taken)
    }

    /// The plan so far.
    pub fn finish(self) -> RedactionPlan {
        self.plan
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::{EntryBody, LogEntry};
    use crate::redaction::{Erasure, Redaction, check_ranges, range_room};

    const SEC: i64 = 1_000_000;

    type Texts = BTreeMap<String, String>;
    type VoTexts = BTreeMap<String, Texts>;

    fn texts(pairs: &[(&str, &str)]) -> Texts {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn entry(entry_type: EntryType, vo: Option<&str>, logged_at: i64) -> Candidate<'_> {
        Candidate {
            entry_type,
            vo,
            logged_at,
            token_exp: None,
            held: false,
        }
    }

    #[test]
    fn periods_read_and_print_in_units() {
        for (text, secs) in [
            ("90s", 90),
            ("30m", 1800),
            ("12h", 43_200),
            ("180d", 15_552_000),
            ("2w", 1_209_600),
            ("5y", 157_680_000),
            ("1y30d", 34_128_000),
            (" 7d ", 604_800),
        ] {
            assert_eq!(
                text.parse::<Period>(),
                Ok(Period::from_secs(secs)),
                "{text}"
            );
        }
        for bad in [
            "",
            "180",
            "d",
            "1.5y",
            "-1d",
            "1d 2h",
            "5 y",
            "5Y",
            "1M",
            "forever",
            "99999999999999999999s",
            "999999999999y",
        ] {
            assert_eq!(
                bad.parse::<Period>(),
                Err(RetentionError::BadPeriod(bad.to_string())),
                "{bad}"
            );
        }
        for (secs, text) in [
            (15_552_000, "180d"),
            (157_680_000, "5y"),
            (34_128_000 + 3_661, "1y30d1h1m1s"),
            (0, "0s"),
        ] {
            assert_eq!(Period::from_secs(secs).to_string(), text);
            assert_eq!(text.parse::<Period>().unwrap().secs(), secs);
        }
        assert_eq!(Period::from_secs(u64::MAX).micros(), i64::MAX);
    }

    #[test]
    fn defaults_are_180_days_for_traceability_and_5_years_for_audit() {
        let policy = RetentionPolicy::default();
        assert_eq!(policy.validate(), Ok(()));
        for t in EntryType::ALL {
            let expected = match t {
                EntryType::Issuance | EntryType::Sighting => Period::from_secs(180 * 86_400),
                _ => Period::from_secs(5 * 365 * 86_400),
            };
            assert_eq!(policy.period(t, None), expected, "{t}");
            assert_eq!(policy.period(t, Some("atlas")), expected, "{t}");
        }
        assert_eq!(policy.record().periods.len(), EntryType::ALL.len());
        assert!(policy.record().vos.is_empty());
    }

    #[test]
    fn vo_periods_apply_to_their_vo_only() {
        let policy = RetentionPolicy::parse(
            &texts(&[("sighting", "90d"), ("resolution", "10y")]),
            &BTreeMap::from([("atlas".to_string(), texts(&[("issuance", "1y")]))]),
        )
        .unwrap();
        assert_eq!(
            policy.period(EntryType::Issuance, Some("atlas")),
            "1y".parse().unwrap()
        );
        assert_eq!(
            policy.period(EntryType::Issuance, Some("cms")),
            TRACEABILITY_PERIOD
        );
        assert_eq!(
            policy.period(EntryType::Issuance, None),
            TRACEABILITY_PERIOD
        );
        assert_eq!(
            policy.period(EntryType::Sighting, Some("atlas")),
            "90d".parse().unwrap()
        );
        assert_eq!(
            policy.period(EntryType::Resolution, Some("atlas")),
            "10y".parse().unwrap()
        );
        assert_eq!(policy.vos().collect::<Vec<_>>(), ["atlas"]);
        let record = policy.record();
        assert_eq!(record.periods[&EntryType::Sighting], 7_776_000);
        assert_eq!(
            record.vos["atlas"],
            BTreeMap::from([(EntryType::Issuance, 31_536_000)])
        );
    }

    #[test]
    fn bad_policies_are_refused_with_the_reason() {
        let vo =
            |name: &str, pairs: &[(&str, &str)]| BTreeMap::from([(name.to_string(), texts(pairs))]);
        let cases: [(Texts, VoTexts, &str); 14] = [
            (
                texts(&[("issuance", "0d")]),
                BTreeMap::new(),
                "1s to 100y, not 0s",
            ),
            (
                texts(&[("resolution", "101y")]),
                BTreeMap::new(),
                "1s to 100y, not 101y",
            ),
            (
                texts(&[("issuance", "180 days")]),
                BTreeMap::new(),
                "ledger-wide, `issuance`: `180 days` is not a period",
            ),
            (
                texts(&[("token", "1d")]),
                BTreeMap::new(),
                "`token` is no entry type; the types are issuance, resolution",
            ),
            (
                texts(&[("resolution", "90d")]),
                BTreeMap::new(),
                "ledger-wide: `resolution` (90d) is shorter than `issuance` (180d)",
            ),
            (
                texts(&[("sighting", "6y")]),
                BTreeMap::new(),
                "is shorter than `sighting` (6y)",
            ),
            (
                BTreeMap::new(),
                vo("atlas", &[("issuance", "6y")]),
                "VO `atlas`: `resolution` (5y) is shorter than `issuance` (6y)",
            ),
            (
                BTreeMap::new(),
                vo("atlas", &[("lift", "6y")]),
                "VO `atlas`: `lift` entries name no VO",
            ),
            (
                texts(&[("lift", "1y")]),
                BTreeMap::new(),
                "ledger-wide: `lift` (1y) is shorter than `suspension` (5y)",
            ),
            (
                BTreeMap::new(),
                vo("atlas", &[("suspension", "6y")]),
                "VO `atlas`: `lift` (5y) is shorter than `suspension` (6y)",
            ),
            (
                BTreeMap::new(),
                vo("atlas", &[("suspension_request_decline", "1y")]),
                "VO `atlas`: `suspension_request_decline` (1y) is shorter than `suspension_request` (5y)",
            ),
            (
                BTreeMap::new(),
                vo("ATLAS", &[("issuance", "1d")]),
                "VO `ATLAS`: claim `vo` is invalid",
            ),
            (
                BTreeMap::new(),
                vo("atlas", &[("sighting", "1 y")]),
                "VO `atlas`, `sighting`: `1 y` is not a period",
            ),
            (
                BTreeMap::new(),
                vo("atlas", &[("issuances", "1d")]),
                "`issuances` is no entry type",
            ),
        ];
        for (periods, vos, why) in cases {
            let err = RetentionPolicy::parse(&periods, &vos)
                .unwrap_err()
                .to_string();
            assert!(err.contains(why), "{periods:?} {vos:?}: {err}");
        }
        let mut many = RetentionPolicy::default();
        for n in 0..200 {
            many.set_for_vo(&format!("vo-{n}"), EntryType::Issuance, TRACEABILITY_PERIOD)
                .unwrap();
        }
        assert!(matches!(many.validate(), Err(RetentionError::TooLarge(_))));
    }

    #[test]
    fn an_entry_is_due_after_its_period_unless_its_token_is_valid_or_it_is_held() {
        let policy = RetentionPolicy::parse(
            &BTreeMap::new(),
            &BTreeMap::from([("atlas".to_string(), texts(&[("issuance", "1y")]))]),
        )
        .unwrap();
        let day = 86_400 * SEC;
        let logged = 1_000 * day;
        let issuance = entry(EntryType::Issuance, Some("cms"), logged);
        assert_eq!(
            policy.decide(&issuance, logged + 180 * day - 1),
            Decision::NotYet {
                at: logged + 180 * day
            }
        );
        assert_eq!(
            policy.decide(&issuance, logged + 180 * day),
            Decision::Redact
        );
        let atlas = entry(EntryType::Issuance, Some("atlas"), logged);
        assert_eq!(
            policy.decide(&atlas, logged + 180 * day),
            Decision::NotYet {
                at: logged + 365 * day
            }
        );
        let long_token = Candidate {
            token_exp: Some((logged + 200 * day) / SEC),
            ..issuance
        };
        assert_eq!(
            policy.decide(&long_token, logged + 190 * day),
            Decision::NotYet {
                at: logged + 200 * day
            }
        );
        assert!(policy.decide(&long_token, logged + 200 * day).is_redact());
        let short_token = Candidate {
            token_exp: Some(logged / SEC + 3600),
            ..issuance
        };
        assert!(policy.decide(&short_token, logged + 180 * day).is_redact());
        let held = Candidate {
            held: true,
            ..issuance
        };
        assert_eq!(policy.decide(&held, i64::MAX), Decision::Held);
        let lift = entry(EntryType::Lift, Some("atlas"), logged);
        assert_eq!(
            policy.decide(&lift, logged + 180 * day),
            Decision::NotYet {
                at: logged + 5 * 365 * day
            }
        );
        let early = entry(EntryType::Sighting, Some("cms"), i64::MAX - 1);
        assert_eq!(
            policy.decide(&early, i64::MAX - 1),
            Decision::NotYet { at: i64::MAX }
        );
        let skewed = entry(EntryType::Sighting, None, logged);
        assert!(!policy.decide(&skewed, logged - 1).is_redact());
    }

    #[test]
    fn a_plan_coalesces_consecutive_due_entries_and_counts_types() {
        let mut planner = RedactionPlanner::new(10);
        let stream = [
            (0, EntryType::Issuance, true),
            (1, EntryType::Issuance, true),
            (2, EntryType::Sighting, true),
            (3, EntryType::Issuance, false),
            (4, EntryType::Resolution, true),
            (6, EntryType::Issuance, true),
            (7, EntryType::Issuance, true),
            (9, EntryType::Issuance, false),
        ];
        for (index, t, due) in stream {
            assert_eq!(planner.push(index, t, due), Ok(Pushed::Taken));
        }
        let plan = planner.finish();
        assert_eq!(
            plan.ranges,
            [(0, 3).into(), (4, 5).into(), (6, 8).into()] as [IndexRange; 3]
        );
        assert_eq!(
            plan.counts,
            BTreeMap::from([
                (EntryType::Issuance, 4),
                (EntryType::Sighting, 1),
                (EntryType::Resolution, 1)
            ])
        );
        assert_eq!(plan.total(), 6);
        assert_eq!(check_ranges(&plan.ranges, &plan.counts), Ok(()));
        assert!(RedactionPlanner::new(10).finish().is_empty());
    }

    #[test]
    fn a_plan_takes_increasing_indexes_and_stops_when_full() {
        let mut planner = RedactionPlanner::new(2);
        planner.push(5, EntryType::Issuance, true).unwrap();
        assert_eq!(
            planner.push(5, EntryType::Issuance, true),
            Err(PlanError::NotIncreasing {
                previous: 5,
                index: 5
            })
        );
        assert_eq!(
            planner.push(7, EntryType::Issuance, true),
            Ok(Pushed::Taken)
        );
        assert_eq!(
            planner.push(8, EntryType::Issuance, true),
            Ok(Pushed::Taken)
        );
        assert_eq!(
            planner.push(9, EntryType::Issuance, false),
            Ok(Pushed::Taken)
        );
        assert_eq!(
            planner.push(10, EntryType::Issuance, true),
            Ok(Pushed::Full)
        );
        assert_eq!(
            planner.push(11, EntryType::Issuance, false),
            Ok(Pushed::Full)
        );
        let plan = planner.finish();
        assert_eq!(
            plan.ranges,
            [(5, 6).into(), (7, 9).into()] as [IndexRange; 2]
        );
        assert_eq!(plan.total(), 3);
        let mut last = RedactionPlanner::new(1);
        assert_eq!(
            last.push(u64::MAX, EntryType::Issuance, true),
            Err(PlanError::IndexTooLarge(u64::MAX))
        );
    }

    /// A full plan with the largest indexes and counts, under the largest policy a
    /// configuration may hold, or with the longest erasure fields, still fits in one entry.
    #[test]
    fn a_full_plan_fits_in_its_entry() {
        let mut policy = RetentionPolicy::default();
        let mut n = 0;
        while policy.validate().is_ok() {
            policy
                .set_for_vo(
                    &format!("vo-{n:04}"),
                    EntryType::Issuance,
                    TRACEABILITY_PERIOD,
                )
                .unwrap();
            n += 1;
        }
        let mut record = policy.record();
        record.vos.pop_last();
        let unranged = |body| LogEntry::new(i64::MIN, body);
        let bodies = [
            EntryBody::Redaction(Box::new(Redaction {
                policy: record,
                ranges: vec![],
                counts: BTreeMap::new(),
            })),
            EntryBody::Erasure(Box::new(Erasure {
                vo: "v".repeat(64),
                person_id: "\u{10ffff}".repeat(1024),
                requester: "\"".repeat(1024),
                reason: "\u{10ffff}".repeat(512),
                ranges: vec![],
                counts: BTreeMap::new(),
            })),
        ];
        for body in bodies {
            let room = range_room(&body);
            assert!(room >= 64, "{room}");
            let mut planner = RedactionPlanner::new(room);
            let mut index = u64::MAX - 2 * room as u64 - 2;
            let mut types = EntryType::ALL.into_iter().cycle();
            while planner.push(index, types.next().unwrap(), true).unwrap() == Pushed::Taken {
                index += 2;
            }
            let plan = planner.finish();
            assert_eq!(plan.ranges.len(), room);
            let body = match body {
                EntryBody::Redaction(mut r) => {
                    (r.ranges, r.counts) = (plan.ranges, plan.counts);
                    EntryBody::Redaction(r)
                }
                EntryBody::Erasure(mut e) => {
                    (e.ranges, e.counts) = (plan.ranges, plan.counts);
                    EntryBody::Erasure(e)
                }
                _ => unreachable!(),
            };
            unranged(body).canonical_bytes().unwrap();
        }
    }
}
