//! Canary identities: a VO's test account, suspended at every site of the VO for good with
//! reason code [`REASON_CODE`], and the verdict a node's self-test (`tokenledger check
//! --self-test`) draws from deciding it, in the Nagios/ETF plugin states.

use std::fmt;

/// The reason code of a canary's suspension.
pub const REASON_CODE: &str = "canary";

/// A blocklist expiring sooner than this is a warning. The ledger re-signs a blocklist when
/// half of its 24 h validity is gone, so a node whose pull works always holds one valid for
/// about 12 h more; 6 h left means the pull has failed for about 18 h.
pub const EXPIRY_WARNING_SECS: i64 = 6 * 3600;

/// A Nagios/ETF plugin state; its exit status is the discriminant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    Ok = 0,
    Warning = 1,
    Critical = 2,
}

impl Status {
    pub fn exit_code(self) -> u8 {
        self as u8
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Ok => "OK",
            Status::Warning => "WARNING",
            Status::Critical => "CRITICAL",
        })
    }
}

/// How a canary was decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CanaryDecision {
    /// Let in: the node does not enforce the VO's suspensions.
    LetIn,
    /// Denied by this suspension of this site's blocklist.
    Denied {
        site: String,
        suspension_id: String,
        reason_code: String,
    },
}

/// What a self-test found, each with its state; the worst one is the verdict.
#[derive(Clone, Debug, Default)]
pub struct Findings {
    problems: Vec<(Status, String)>,
    good: Vec<String>,
}

impl Findings {
    /// A ledger whose blocklist (or keys) cannot be used: critical, whatever `on_stale`
    /// says (with `deny` it refuses everyone, with `allow` it lets everyone in).
    pub fn stale(&mut self, site: &str, why: &str) {
        self.problems
            .push((Status::Critical, format!("site {site}: {why}")));
    }

    /// A usable blocklist of `site`, of `sequence`, expiring at `expires_at` (unix seconds).
    pub fn fresh(&mut self, site: &str, sequence: u64, expires_at: i64, now: i64) {
        let left = expires_at - now;
        if left < EXPIRY_WARNING_SECS {
            self.problems.push((
                Status::Warning,
                format!(
                    "site {site}: blocklist {sequence} expires in {} (is the pull running?)",
                    hours(left)
                ),
            ));
        } else {
            self.good.push(format!(
                "site {site} blocklist {sequence} valid {}",
                hours(left)
            ));
        }
    }

    /// The decision on canary `iss`/`sub`.
    pub fn canary(&mut self, iss: &str, sub: &str, decision: &CanaryDecision) {
        match decision {
            CanaryDecision::LetIn => self.problems.push((
                Status::Critical,
                format!("canary {iss} {sub} would be let in"),
            )),
            CanaryDecision::Denied {
                site,
                suspension_id,
                reason_code,
            } if reason_code == REASON_CODE => self
                .good
                .push(format!("canary denied by site {site} ({suspension_id})")),
            CanaryDecision::Denied {
                site,
                suspension_id,
                reason_code,
            } => self.problems.push((
                Status::Warning,
                format!(
                    "canary {iss} {sub} denied by site {site} ({suspension_id}) with reason \
                     code `{reason_code}`, not `{REASON_CODE}`: is it the VO's canary?"
                ),
            )),
        }
    }

    /// Something that works but needs an admin (a cache or rollback mark not writable).
    pub fn warning(&mut self, what: String) {
        self.problems.push((Status::Warning, what));
    }

    /// A test that could not be made (no configuration, no canary): critical.
    pub fn critical(&mut self, what: String) {
        self.problems.push((Status::Critical, what));
    }

    /// The worst state and its one-line status: the problems of that state, or what was
    /// found good.
    pub fn verdict(&self) -> (Status, String) {
        let worst = self
            .problems
            .iter()
            .map(|(status, _)| *status)
            .max()
            .unwrap_or(Status::Ok);
        let said: Vec<&str> = if worst == Status::Ok {
            self.good.iter().map(String::as_str).collect()
        } else {
            self.problems
                .iter()
                .filter(|(status, _)| *status == worst)
                .map(|(_, what)| what.as_str())
                .collect()
        };
        (worst, format!("TOKENLEDGER {worst}: {}", one_line(&said)))
    }
}

/// The parts joined by `; `, with line breaks and controls made spaces (one line, always).
fn one_line(parts: &[&str]) -> String {
    parts
        .join("; ")
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Seconds as hours and minutes (`23h05m`; `expired` when not positive).
fn hours(secs: i64) -> String {
    if secs <= 0 {
        return "expired".into();
    }
    format!("{}h{:02}m", secs / 3600, secs % 3600 / 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_000_000;

    fn denied(code: &str) -> CanaryDecision {
        CanaryDecision::Denied {
            site: "CERN-PROD".into(),
            suspension_id: "su-1".into(),
            reason_code: code.into(),
        }
    }

    #[test]
    fn a_denied_canary_and_a_fresh_blocklist_are_ok() {
        let mut f = Findings::default();
        f.fresh("CERN-PROD", 42, NOW + 23 * 3600 + 300, NOW);
        f.canary("https://iss/", "canary", &denied("canary"));
        assert_eq!(
            f.verdict(),
            (
                Status::Ok,
                "TOKENLEDGER OK: site CERN-PROD blocklist 42 valid 23h05m; canary denied by \
                 site CERN-PROD (su-1)"
                    .into()
            )
        );
    }

    #[test]
    fn the_worst_finding_decides_and_only_its_kind_is_said() {
        let mut f = Findings::default();
        f.fresh("CERN-PROD", 42, NOW + 3600, NOW);
        f.canary("https://iss/", "canary", &denied("misuse"));
        let (status, line) = f.verdict();
        assert_eq!(status, Status::Warning);
        assert!(
            line.starts_with("TOKENLEDGER WARNING: site CERN-PROD: blocklist 42 expires in 1h00m")
        );
        assert!(line.contains("reason code `misuse`"), "{line}");

        f.canary("https://iss/", "canary\nx", &CanaryDecision::LetIn);
        f.stale("RAL", "the blocklist is missing");
        let (status, line) = f.verdict();
        assert_eq!((status, status.exit_code()), (Status::Critical, 2));
        assert_eq!(
            line,
            "TOKENLEDGER CRITICAL: canary https://iss/ canary x would be let in; site RAL: the \
             blocklist is missing"
        );
    }

    #[test]
    fn exit_codes_are_the_plugin_conventions() {
        assert_eq!(Status::Ok.exit_code(), 0);
        assert_eq!(Status::Warning.exit_code(), 1);
        assert_eq!(Status::Critical.exit_code(), 2);
        let mut f = Findings::default();
        f.critical("no [[canary]]".into());
        assert_eq!(f.verdict().0, Status::Critical);
        assert_eq!(hours(-5), "expired");
    }
}
