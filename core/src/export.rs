//! Blocklist exports for consumers that cannot compute tags: HTCondor-CE mapfile, ARC
//! `file=` list, dCache gPlazma banfile, Argus ban commands, plain text. They carry
//! identities, so only a site's admins get them. Formats: ../shared/INTEGRATIONS.md.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::str::FromStr;

use crate::blocklist::Scope;

/// The issuer name under which linked X.509 identities are kept (`sub` = the DN).
pub const X509_ISSUER: &str = "x509";

/// Which export.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    /// `00-tokenledger-ban.conf`: `SCITOKENS <iss>,<sub> <pseudonym>@banned.htcondor.org`.
    Htcondor,
    /// ARC `[authgroup] file=`: one `"<iss>/<sub>"` per line.
    Arc,
    /// dCache gPlazma banfile: `ban oidc:<sub>@<OP>` with the site's provider aliases.
    Dcache,
    /// `pap-admin ban subject "<DN>"` for linked X.509 identities.
    Argus,
    /// `<iss>\t<sub>` per line.
    Text,
}

impl FromStr for ExportFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<ExportFormat, String> {
        Ok(match s {
            "htcondor" => ExportFormat::Htcondor,
            "arc" => ExportFormat::Arc,
            "dcache" => ExportFormat::Dcache,
            "argus" => ExportFormat::Argus,
            "text" => ExportFormat::Text,
            other => {
                return Err(format!(
                    "unknown export format `{other}` (htcondor, arc, dcache, argus, text)"
                ));
            }
        })
    }
}

impl ExportFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            ExportFormat::Htcondor => "htcondor",
            ExportFormat::Arc => "arc",
            ExportFormat::Dcache => "dcache",
            ExportFormat::Argus => "argus",
            ExportFormat::Text => "text",
        }
    }

    /// Which suspensions a consumer of this format enforces: CEs compute, dCache storage.
    fn enforces(self, scope: Scope) -> bool {
        match self {
            ExportFormat::Htcondor | ExportFormat::Arc => scope.blocks(Scope::Compute),
            ExportFormat::Dcache => scope.blocks(Scope::Storage),
            ExportFormat::Argus | ExportFormat::Text => true,
        }
    }
}

/// A suspended person with the identities an export names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportEntry {
    pub pseudonym: String,
    pub scope: Scope,
    /// `(iss, sub)`; empty for a single-token suspension, which no export format can express.
    pub identities: Vec<(String, String)>,
}

/// Renders `entries` in `format`. `op_aliases` maps an issuer URL to its dCache
/// `gplazma.oidc.provider!<OP>` alias; identities of other issuers are left out with a comment.
pub fn render(
    format: ExportFormat,
    site: &str,
    sequence: u64,
    entries: &[ExportEntry],
    op_aliases: &BTreeMap<String, String>,
) -> String {
    let mut out = format!(
        "# tokenledger {} export for site {site}, blocklist sequence {sequence}\n",
        format.as_str()
    );
    for entry in entries.iter().filter(|e| format.enforces(e.scope)) {
        if entry.identities.is_empty() {
            let _ = writeln!(
                out,
                "# {}: a single-token suspension, enforceable only by `tokenledger check`",
                entry.pseudonym
            );
        }
        for (iss, sub) in &entry.identities {
            match line(format, &entry.pseudonym, iss, sub, op_aliases) {
                Ok(Some(line)) => out.push_str(&line),
                Ok(None) => {}
                Err(why) => {
                    let _ = writeln!(out, "# {}: an identity left out: {why}", entry.pseudonym);
                }
            }
        }
    }
    out
}

fn line(
    format: ExportFormat,
    pseudonym: &str,
    iss: &str,
    sub: &str,
    op_aliases: &BTreeMap<String, String>,
) -> Result<Option<String>, &'static str> {
    let x509 = iss == X509_ISSUER;
    if sub.contains(['\n', '\r']) || iss.contains(['\n', '\r']) {
        return Err("contains a line break");
    }
    Ok(Some(match format {
        ExportFormat::Text => format!("{iss}\t{sub}\n"),
        ExportFormat::Argus if x509 => format!("pap-admin ban subject {}\n", shell_quote(sub)),
        ExportFormat::Argus => return Ok(None),
        _ if x509 => return Ok(None),
        ExportFormat::Htcondor => {
            format!(
                "SCITOKENS {} {pseudonym}@banned.htcondor.org\n",
                mapfile_field(&format!("{iss},{sub}"))
            )
        }
        ExportFormat::Arc => {
            if sub.contains('"') || iss.contains('"') {
                return Err("contains a double quote");
            }
            format!("\"{iss}/{sub}\"\n")
        }
        ExportFormat::Dcache => {
            let alias = op_aliases
                .get(iss)
                .ok_or("no dCache OP alias for its issuer")?;
            if sub.chars().any(char::is_whitespace) {
                return Err("contains white space");
            }
            format!("ban oidc:{sub}@{alias}\n")
        }
    }))
}

/// A single-quoted shell word: nothing inside is expanded (`$(...)`, backticks, `$VAR`);
/// a `'` becomes `'\''`. These lines are meant to be run by a shell on the PAP host.
fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "'\\''"))
}

/// A double-quoted string with `"` and `\` escaped.
fn quote(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

/// An HTCondor mapfile field: plain (an exact hash key) unless it holds white space or
/// quotes, or starts with `/` (which would make it a regex).
fn mapfile_field(value: &str) -> String {
    if value.starts_with('/') || value.contains(|c: char| c.is_whitespace() || c == '"') {
        quote(value)
    } else {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISS: &str = "https://atlas-auth.cern.ch/";

    fn entries() -> Vec<ExportEntry> {
        vec![
            ExportEntry {
                pseudonym: "p1-aaaa".into(),
                scope: Scope::All,
                identities: vec![
                    (ISS.into(), "a1b2".into()),
                    (
                        X509_ISSUER.into(),
                        "/DC=ch/DC=cern/OU=Users/CN=jdoe \"J\"".into(),
                    ),
                ],
            },
            ExportEntry {
                pseudonym: "p1-bbbb".into(),
                scope: Scope::Storage,
                identities: vec![("https://other.example/".into(), "c3".into())],
            },
            ExportEntry {
                pseudonym: "p1-cccc".into(),
                scope: Scope::Compute,
                identities: vec![],
            },
        ]
    }

    fn aliases() -> BTreeMap<String, String> {
        BTreeMap::from([(ISS.to_string(), "ATLAS".to_string())])
    }

    fn body(format: ExportFormat) -> Vec<String> {
        render(format, "CERN-PROD", 9, &entries(), &aliases())
            .lines()
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn htcondor_mapfile_lines_map_to_banned_users() {
        assert_eq!(
            body(ExportFormat::Htcondor),
            [
                "# tokenledger htcondor export for site CERN-PROD, blocklist sequence 9",
                "SCITOKENS https://atlas-auth.cern.ch/,a1b2 p1-aaaa@banned.htcondor.org",
                "# p1-cccc: a single-token suspension, enforceable only by `tokenledger check`",
            ]
        );
        assert_eq!(mapfile_field("https://i/,a b"), "\"https://i/,a b\"");
    }

    #[test]
    fn arc_file_lines_are_quoted_iss_slash_sub() {
        assert_eq!(
            body(ExportFormat::Arc)[1],
            "\"https://atlas-auth.cern.ch//a1b2\""
        );
    }

    #[test]
    fn dcache_ban_lines_use_the_op_alias_and_skip_unknown_issuers() {
        assert_eq!(
            body(ExportFormat::Dcache)[1..],
            [
                "ban oidc:a1b2@ATLAS",
                "# p1-bbbb: an identity left out: no dCache OP alias for its issuer",
            ]
        );
    }

    #[test]
    fn argus_bans_linked_x509_subjects_only_in_single_quotes() {
        assert_eq!(
            body(ExportFormat::Argus)[1..],
            [
                "pap-admin ban subject '/DC=ch/DC=cern/OU=Users/CN=jdoe \"J\"'",
                "# p1-cccc: a single-token suspension, enforceable only by `tokenledger check`",
            ]
        );
        assert_eq!(
            shell_quote("/CN=x$(rm -rf /)`id`'q"),
            "'/CN=x$(rm -rf /)`id`'\\''q'"
        );
    }

    #[test]
    fn text_lists_every_identity() {
        assert_eq!(body(ExportFormat::Text).len(), 1 + 3 + 1);
        assert_eq!(
            body(ExportFormat::Text)[1],
            "https://atlas-auth.cern.ch/\ta1b2"
        );
    }

    #[test]
    fn formats_parse_by_name() {
        for f in [
            ExportFormat::Htcondor,
            ExportFormat::Arc,
            ExportFormat::Dcache,
            ExportFormat::Argus,
            ExportFormat::Text,
        ] {
            assert_eq!(f.as_str().parse::<ExportFormat>(), Ok(f));
        }
        assert!("json".parse::<ExportFormat>().is_err());
    }
}
