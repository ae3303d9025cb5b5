//! `tokenledger check --self-test`: the node decides the VO's canaries (`[[canary]]` in
//! check.toml) with its own configuration, keys and blocklists, exactly as the plugins do,
//! and answers as a Nagios/ETF plugin: one status line on stdout, exit 0 OK, 1 WARNING,
//! 2 CRITICAL (a canary let in, a blocklist that cannot be used, a configuration that
//! cannot be read). The verdict's rules are `tokenledger_core::canary`.

use std::path::Path;

use tokenledger_core::blocklist::Scope;
use tokenledger_core::canary::{CanaryDecision, Findings};

use super::config::{self, CheckConfig};
use super::identity::Identity;

/// Runs the self-test of the configuration at `path`, for access of kind `asked` (default:
/// the configuration's `scope`); its exit status.
pub fn run(path: &Path, asked: Option<Scope>) -> u8 {
    let mut findings = Findings::default();
    match config::load(path) {
        Ok(config) => test(&config, asked, crate::timespec::now_secs(), &mut findings),
        Err(e) => findings.critical(format!("cannot use the configuration: {}", e.message)),
    }
    let (status, line) = findings.verdict();
    println!("{line}");
    status.exit_code()
}

/// Every ledger's blocklist must be usable, and every canary denied by one of them.
fn test(config: &CheckConfig, asked: Option<Scope>, now: i64, findings: &mut Findings) {
    let asked = asked.unwrap_or(config.scope);
    if config.canaries.is_empty() {
        findings.critical(format!(
            "{} names no [[canary]]: nothing to test",
            config.path.display()
        ));
    }
    let who: Vec<Identity> = config
        .canaries
        .iter()
        .map(|c| Identity {
            iss: c.iss.clone(),
            sub: Some(c.sub.clone()),
            ..Identity::default()
        })
        .collect();
    let mut decisions = vec![CanaryDecision::LetIn; who.len()];
    let mut warnings = Vec::new();
    for ledger in &config.ledgers {
        let keys = match &ledger.keys {
            Ok(keys) => keys,
            Err(why) => {
                findings.stale(&ledger.site, why);
                continue;
            }
        };
        let mut warn = |w: String| warnings.push(w);
        // Opened first on its own (no identity to match): is its blocklist usable?
        let nobody = Identity::default();
        match super::ask(ledger, keys, &nobody, asked, now, &mut warn) {
            Ok((_, header)) => {
                findings.fresh(&ledger.site, header.sequence, header.expires_at, now)
            }
            Err(why) => {
                findings.stale(&ledger.site, &why);
                continue;
            }
        }
        for (canary, decision) in who.iter().zip(decisions.iter_mut()) {
            if *decision != CanaryDecision::LetIn {
                continue;
            }
            match super::ask(ledger, keys, canary, asked, now, &mut warn) {
                Ok((Some(entry), _)) => {
                    *decision = CanaryDecision::Denied {
                        site: ledger.site.clone(),
                        suspension_id: entry.suspension_id,
                        reason_code: entry.reason_code,
                    }
                }
                Ok((None, _)) => {}
                Err(why) => {
                    findings.stale(&ledger.site, &why);
                    break;
                }
            }
        }
    }
    for (canary, decision) in config.canaries.iter().zip(&decisions) {
        findings.canary(&canary.iss, &canary.sub, decision);
    }
    warnings.sort();
    warnings.dedup();
    for warning in warnings {
        findings.warning(warning);
    }
}
