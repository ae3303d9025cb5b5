//! Blocklist exports for consumers that cannot compute tags: HTCondor-CE mapfile, ARC
//! `file=` list, dCache gPlazma banfile, XRootD SciTokens `name_mapfile`, Argus ban
//! commands, plain text. They carry identities, so only a site's admins get them. Each
//! carries only the suspensions its consumer enforces: CEs `compute`, storage `storage`,
//! both `all`. Formats: ../shared/INTEGRATIONS.md.
//!
//! An identity is logged as its issuer minted it, so a `sub` (or a DN) may hold characters
//! that mislead a person or break a parser reading an export: line breaks (LF, VT, FF, CR,
//! NEL, U+2028, U+2029), other C0 and C1 controls and DEL, and bidirectional formatting
//! characters (U+061C, U+200E, U+200F, U+202A-U+202E, U+2066-U+2069), which reorder what an
//! admin sees. The line-based formats (HTCondor, ARC, dCache, Argus, text) have no escape
//! their consumers would read back as the same string, so they leave such an identity out
//! with a comment naming the pseudonym and the kind of character, never the identity. The
//! XRootD mapfile is JSON: there such characters are written as `\uXXXX` escapes, which the
//! plugin's JSON parser reads back as the exact `sub`, so the ban still applies.

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
    /// `pap-admin ban --private subject '<DN>'` for linked X.509 identities, and
    /// `pap-admin un-ban subject '<DN>'` for those of ended suspensions.
    Argus,
    /// `<iss>\t<sub>` per line (StoRM, EOS: storage).
    Text,
    /// The XRootD SciTokens plugin's `name_mapfile` of one issuer: suspended `sub`s map to
    /// one local name, which the authdb strips of every privilege.
    Xrootd,
}

/// The local name the XRootD export maps suspended users to, unless the site names another.
pub const DEFAULT_XROOTD_NAME: &str = "tlbanned";

impl FromStr for ExportFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<ExportFormat, String> {
        Ok(match s {
            "htcondor" => ExportFormat::Htcondor,
            "arc" => ExportFormat::Arc,
            "dcache" => ExportFormat::Dcache,
            "argus" => ExportFormat::Argus,
            "text" => ExportFormat::Text,
            "xrootd" => ExportFormat::Xrootd,
            other => {
                return Err(format!(
                    "unknown export format `{other}` (htcondor, arc, dcache, argus, text, xrootd)"
                ));
            }
        })
    }
}

impl ExportFormat {
    /// Every export format.
    pub const ALL: [ExportFormat; 6] = [
        ExportFormat::Htcondor,
        ExportFormat::Arc,
        ExportFormat::Dcache,
        ExportFormat::Argus,
        ExportFormat::Text,
        ExportFormat::Xrootd,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ExportFormat::Htcondor => "htcondor",
            ExportFormat::Arc => "arc",
            ExportFormat::Dcache => "dcache",
            ExportFormat::Argus => "argus",
            ExportFormat::Text => "text",
            ExportFormat::Xrootd => "xrootd",
        }
    }

    /// What a consumer of this format grants: CEs (HTCondor-CE, ARC, and Argus, which
    /// guards CEs and worker nodes) compute; dCache, XRootD, StoRM and EOS storage.
    pub fn grants(self) -> Scope {
        match self {
            ExportFormat::Htcondor | ExportFormat::Arc | ExportFormat::Argus => Scope::Compute,
            ExportFormat::Dcache | ExportFormat::Text | ExportFormat::Xrootd => Scope::Storage,
        }
    }

    /// Whether a suspension of `scope` belongs in this format: a compute-only suspension
    /// never locks anyone out of storage, nor a storage-only one out of a CE.
    fn enforces(self, scope: Scope) -> bool {
        scope.blocks(self.grants())
    }
}

/// A suspension with the identities an export names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportEntry {
    /// What names it in comments: the site's pseudonym of the person, or (a client
    /// suspension, which names no person) the suspension's id.
    pub label: String,
    pub scope: Scope,
    /// `(iss, sub)`; empty for a single-token or a client suspension, which no export format
    /// can express.
    pub identities: Vec<(String, String)>,
    /// A client suspension: no export format names a token's client.
    pub client: bool,
    /// A not-before cut-off (unix seconds), which no export format can compare with a
    /// token's `iat`: the identities are listed whole, with a comment saying so.
    pub issued_before: Option<i64>,
}

impl ExportEntry {
    /// The comment an export carries for this entry when its consumer cannot enforce it
    /// as `tokenledger check` does, if any: a single token or a client (left out), or a
    /// cut-off (every token of the identities refused).
    fn note(&self) -> Option<String> {
        let label = &self.label;
        if self.client {
            Some(format!("{label}: {CLIENT}"))
        } else if self.identities.is_empty() {
            Some(format!("{label}: {SINGLE_TOKEN}"))
        } else {
            self.issued_before
                .map(|t| format!("{label}: {}", cut_off(t)))
        }
    }
}

/// What the site tells about its consumer: dCache's provider aliases, XRootD's issuer
/// section and banned name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExportOptions {
    /// Issuer URL → the site's dCache `gplazma.oidc.provider!<OP>` alias; identities of
    /// other issuers are left out of a dCache export with a comment.
    pub op_aliases: BTreeMap<String, String>,
    /// The issuer whose `[Issuer ...]` section the XRootD `name_mapfile` serves (a mapfile
    /// matches `sub` only, so it must hold one issuer's subjects).
    pub xrootd_issuer: Option<String>,
    /// The local name suspended users map to (default [`DEFAULT_XROOTD_NAME`]).
    pub xrootd_name: Option<String>,
}

impl ExportOptions {
    /// Refuses options that do not fit `format`, or values its consumer would misread.
    pub fn check(&self, format: ExportFormat) -> Result<(), String> {
        if !self.op_aliases.is_empty() && format != ExportFormat::Dcache {
            return Err("op_alias applies to the dcache format only".into());
        }
        if format != ExportFormat::Xrootd {
            if self.xrootd_issuer.is_some() || self.xrootd_name.is_some() {
                return Err("issuer and xrootd_name apply to the xrootd format only".into());
            }
            return Ok(());
        }
        let issuer = self.xrootd_issuer.as_deref().unwrap_or_default();
        if issuer.is_empty() || misleading(issuer).is_some() {
            return Err(
                "an xrootd export serves one issuer's name_mapfile: name it with issuer=".into(),
            );
        }
        let name = self.xrootd_name();
        let plain = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-.".contains(&b);
        if name.is_empty() || name.len() > 32 || !name.bytes().all(plain) {
            return Err(format!(
                "xrootd_name `{name}` must be 1 to 32 of a-z, 0-9, `_`, `-`, `.` (a local user name)"
            ));
        }
        Ok(())
    }

    fn xrootd_name(&self) -> &str {
        self.xrootd_name.as_deref().unwrap_or(DEFAULT_XROOTD_NAME)
    }
}

/// Renders `active` (the suspensions in force) in `format`. `ended` (lifted or expired
/// suspensions) matters to Argus only, whose bans stay until they are removed: each of
/// their X.509 subjects that no active suspension still bans gets an `un-ban` line.
pub fn render(
    format: ExportFormat,
    site: &str,
    sequence: u64,
    active: &[ExportEntry],
    ended: &[ExportEntry],
    options: &ExportOptions,
) -> String {
    let active: Vec<&ExportEntry> = active.iter().filter(|e| format.enforces(e.scope)).collect();
    let header = format!(
        "tokenledger {} export for site {site}, blocklist sequence {sequence}",
        format.as_str()
    );
    if format == ExportFormat::Xrootd {
        return xrootd_mapfile(&header, &active, options);
    }
    let mut out = format!("# {header}\n");
    for entry in &active {
        if let Some(note) = entry.note() {
            let _ = writeln!(out, "# {note}");
        }
        for (iss, sub) in &entry.identities {
            match line(format, &entry.label, iss, sub, &options.op_aliases) {
                Ok(Some(line)) => out.push_str(&line),
                Ok(None) => {}
                Err(why) => {
                    let _ = writeln!(out, "# {}: an identity left out: {why}", entry.label);
                }
            }
        }
    }
    if format == ExportFormat::Argus {
        out.push_str(&argus_unbans(&active, ended));
    }
    out
}

const SINGLE_TOKEN: &str = "a single-token suspension, enforceable only by `tokenledger check`";
const CLIENT: &str = "a client suspension, left out: enforceable only by `tokenledger check` \
                      (--htcondor or --token: it reads the token's client_id or azp)";

/// The comment of a cut-off at `issued_before`.
fn cut_off(issued_before: i64) -> String {
    format!(
        "only tokens issued before {issued_before} (unix seconds) are suspended; this format \
         cannot compare a token's iat, so every token of the identities below is refused"
    )
}

/// `pap-admin un-ban` lines for the X.509 subjects of `ended` suspensions (of the scope
/// Argus enforces) that no `active` one bans, each once, in order.
fn argus_unbans(active: &[&ExportEntry], ended: &[ExportEntry]) -> String {
    let x509 = |e: &ExportEntry| -> Vec<String> {
        e.identities
            .iter()
            .filter(|(iss, sub)| iss == X509_ISSUER && misleading(sub).is_none())
            .map(|(_, sub)| sub.clone())
            .collect()
    };
    let banned: std::collections::BTreeSet<String> = active.iter().flat_map(|e| x509(e)).collect();
    let lifted: std::collections::BTreeSet<String> = ended
        .iter()
        .filter(|e| ExportFormat::Argus.enforces(e.scope))
        .flat_map(x509)
        .filter(|dn| !banned.contains(dn))
        .collect();
    lifted
        .iter()
        .map(|dn| format!("pap-admin un-ban subject {}\n", shell_quote(dn)))
        .collect()
}

/// The SciTokens plugin's `name_mapfile`: a JSON list of rules, first match wins; every
/// key present must match; `ignore` disables a rule and `comment` is read by no one, which
/// carries our header and notes. One rule a line, so a diff of two exports reads well.
fn xrootd_mapfile(header: &str, active: &[&ExportEntry], options: &ExportOptions) -> String {
    let issuer = options.xrootd_issuer.as_deref().unwrap_or_default();
    let name = options.xrootd_name();
    let note = |comment: String| serde_json::json!({"ignore": "", "comment": comment});
    let mut rules = vec![note(format!(
        "{header}, issuer {issuer}; the authdb must hold: u {name} / -a"
    ))];
    for entry in active {
        if let Some(text) = entry.note() {
            rules.push(note(text));
        }
        for (_, sub) in entry.identities.iter().filter(|(iss, _)| iss == issuer) {
            rules.push(serde_json::json!({"sub": sub, "result": name, "comment": entry.label}));
        }
    }
    let lines: Vec<String> = rules
        .iter()
        .map(|r| escape_misleading(&r.to_string()))
        .collect();
    format!("[\n{}\n]\n", lines.join(",\n"))
}

/// Why `value` cannot go into a line-based export as it is, if it cannot.
fn misleading(value: &str) -> Option<&'static str> {
    value.chars().find_map(misleading_char)
}

/// The kind of a character that misleads a person or breaks a parser reading an export.
/// Every one of them is in the Basic Multilingual Plane.
fn misleading_char(c: char) -> Option<&'static str> {
    match c {
        '\n' | '\u{0b}' | '\u{0c}' | '\r' | '\u{85}' | '\u{2028}' | '\u{2029}' => {
            Some("contains a line break")
        }
        c if is_bidi_formatting(c) => Some("contains a bidirectional formatting character"),
        c if c.is_control() => Some("contains a control character"),
        _ => None,
    }
}

/// A bidirectional formatting character (marks, embeddings, overrides, isolates): it
/// reorders the text around it for a person reading it, and is invisible.
pub fn is_bidi_formatting(c: char) -> bool {
    matches!(
        c,
        '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
    )
}

/// JSON text with every [`misleading_char`] written as a `\uXXXX` escape. serde_json
/// escapes only C0 controls; a raw bidirectional override or line separator (which can only
/// sit inside a string of serde_json's output) would reorder or split the file for a person
/// or a line-based tool, while a JSON parser reads the escape back as the same character.
fn escape_misleading(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if misleading_char(c).is_some() {
            let _ = write!(out, "\\u{:04x}", u32::from(c));
        } else {
            out.push(c);
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
    if let Some(why) = misleading(iss).or_else(|| misleading(sub)) {
        return Err(why);
    }
    Ok(Some(match format {
        ExportFormat::Text => format!("{iss}\t{sub}\n"),
        ExportFormat::Argus if x509 => {
            format!("pap-admin ban --private subject {}\n", shell_quote(sub))
        }
        ExportFormat::Argus | ExportFormat::Xrootd => return Ok(None),
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
                label: "p1-aaaa".into(),
                scope: Scope::All,
                client: false,
                issued_before: None,
                identities: vec![
                    (ISS.into(), "a1b2".into()),
                    (
                        X509_ISSUER.into(),
                        "/DC=ch/DC=cern/OU=Users/CN=jdoe \"J\"".into(),
                    ),
                ],
            },
            ExportEntry {
                label: "p1-bbbb".into(),
                scope: Scope::Storage,
                client: false,
                issued_before: None,
                identities: vec![("https://other.example/".into(), "c3".into())],
            },
            ExportEntry {
                label: "p1-cccc".into(),
                scope: Scope::Compute,
                client: false,
                issued_before: None,
                identities: vec![],
            },
        ]
    }

    fn aliases() -> BTreeMap<String, String> {
        BTreeMap::from([(ISS.to_string(), "ATLAS".to_string())])
    }

    fn options() -> ExportOptions {
        ExportOptions {
            op_aliases: aliases(),
            ..ExportOptions::default()
        }
    }

    fn body(format: ExportFormat) -> Vec<String> {
        let options = match format {
            ExportFormat::Dcache => options(),
            ExportFormat::Xrootd => xrootd_options(),
            _ => ExportOptions::default(),
        };
        render(format, "CERN-PROD", 9, &entries(), &[], &options)
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn xrootd_options() -> ExportOptions {
        ExportOptions {
            xrootd_issuer: Some(ISS.into()),
            ..ExportOptions::default()
        }
    }

    /// No format names a client: every one says it left the suspension out. No format
    /// compares `iat`: a cut-off lists its person's identities whole, and says so.
    #[test]
    fn client_suspensions_and_cut_offs_are_never_dropped_without_a_word() {
        let client = ExportEntry {
            label: "su-client".into(),
            scope: Scope::All,
            identities: vec![],
            client: true,
            issued_before: None,
        };
        let cut_off = ExportEntry {
            label: "p1-dddd".into(),
            scope: Scope::All,
            identities: vec![(ISS.into(), "d4".into())],
            client: false,
            issued_before: Some(1_767_225_600),
        };
        for format in ExportFormat::ALL {
            let options = match format {
                ExportFormat::Dcache => options(),
                ExportFormat::Xrootd => xrootd_options(),
                _ => ExportOptions::default(),
            };
            let text = render(
                format,
                "CERN-PROD",
                9,
                &[client.clone(), cut_off.clone()],
                &[],
                &options,
            );
            assert!(
                text.contains("su-client: a client suspension, left out: enforceable only by `tokenledger check`"),
                "{format:?}: {text}"
            );
            assert!(
                text.contains("p1-dddd: only tokens issued before 1767225600 (unix seconds) are suspended; this format cannot compare a token's iat, so every token of the identities below is refused"),
                "{format:?}: {text}"
            );
            let listed = match format {
                ExportFormat::Htcondor => {
                    Some("SCITOKENS https://atlas-auth.cern.ch/,d4 p1-dddd@banned.htcondor.org")
                }
                ExportFormat::Arc => Some("\"https://atlas-auth.cern.ch//d4\""),
                ExportFormat::Dcache => Some("ban oidc:d4@ATLAS"),
                ExportFormat::Text => Some("https://atlas-auth.cern.ch/\td4"),
                ExportFormat::Xrootd => {
                    Some(r#"{"comment":"p1-dddd","result":"tlbanned","sub":"d4"}"#)
                }
                ExportFormat::Argus => None,
            };
            if let Some(line) = listed {
                assert!(
                    text.lines().any(|l| l == line || l == format!("{line},")),
                    "{format:?}: {text}"
                );
            }
        }
    }

    #[test]
    fn every_format_parses_from_its_name() {
        for format in ExportFormat::ALL {
            assert_eq!(format.as_str().parse::<ExportFormat>(), Ok(format));
        }
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
    fn argus_bans_linked_x509_subjects_privately_in_single_quotes() {
        assert_eq!(
            body(ExportFormat::Argus)[1..],
            [
                "pap-admin ban --private subject '/DC=ch/DC=cern/OU=Users/CN=jdoe \"J\"'",
                "# p1-cccc: a single-token suspension, enforceable only by `tokenledger check`",
            ]
        );
        assert_eq!(
            shell_quote("/CN=x$(rm -rf /)`id`'q"),
            "'/CN=x$(rm -rf /)`id`'\\''q'"
        );
    }

    #[test]
    fn argus_unbans_subjects_of_ended_suspensions_that_nothing_still_bans() {
        let dn = |cn: &str| (X509_ISSUER.to_string(), format!("/DC=org/CN={cn}"));
        let ended = |p: &str, scope, ids| ExportEntry {
            label: p.into(),
            scope,
            client: false,
            issued_before: None,
            identities: ids,
        };
        let active = [ended("p1-a", Scope::Compute, vec![dn("still")])];
        let gone = [
            ended("p1-b", Scope::All, vec![dn("lifted"), dn("still")]),
            ended("p1-c", Scope::Compute, vec![dn("lifted"), dn("expired")]),
            // Never banned by Argus: a storage suspension is not in this export.
            ended("p1-d", Scope::Storage, vec![dn("storage-only")]),
        ];
        let out = render(ExportFormat::Argus, "S", 3, &active, &gone, &options());
        assert_eq!(
            out.lines().skip(1).collect::<Vec<_>>(),
            [
                "pap-admin ban --private subject '/DC=org/CN=still'",
                "pap-admin un-ban subject '/DC=org/CN=expired'",
                "pap-admin un-ban subject '/DC=org/CN=lifted'",
            ]
        );
        // Other formats never speak of ended suspensions.
        let text = render(ExportFormat::Text, "S", 3, &[], &gone, &options());
        assert_eq!(text.lines().count(), 1);
    }

    #[test]
    fn text_lists_the_identities_of_storage_suspensions() {
        assert_eq!(
            body(ExportFormat::Text)[1..],
            [
                "https://atlas-auth.cern.ch/\ta1b2",
                "x509\t/DC=ch/DC=cern/OU=Users/CN=jdoe \"J\"",
                "https://other.example/\tc3",
            ]
        );
    }

    #[test]
    fn every_export_carries_only_the_scopes_its_consumer_enforces() {
        let person = |p: &str, scope| ExportEntry {
            label: p.into(),
            scope,
            client: false,
            issued_before: None,
            identities: vec![
                (ISS.into(), p.into()),
                (X509_ISSUER.into(), format!("/CN={p}")),
            ],
        };
        let entries = [
            person("compute-only", Scope::Compute),
            person("storage-only", Scope::Storage),
            person("everything", Scope::All),
        ];
        for format in ExportFormat::ALL {
            let options = match format {
                ExportFormat::Xrootd => xrootd_options(),
                ExportFormat::Dcache => options(),
                _ => ExportOptions::default(),
            };
            let out = render(format, "S", 1, &entries, &[], &options);
            let names = |p: &str| out.contains(p);
            let (compute, storage) = (names("compute-only"), names("storage-only"));
            match format.grants() {
                Scope::Compute => assert!(compute && !storage, "{format:?}: {out}"),
                Scope::Storage => assert!(storage && !compute, "{format:?}: {out}"),
                Scope::All => unreachable!("no consumer grants everything"),
            }
            assert!(names("everything"), "{format:?}: {out}");
        }
    }

    #[test]
    fn xrootd_maps_the_issuers_suspended_subjects_to_the_banned_name() {
        let out = render(
            ExportFormat::Xrootd,
            "CERN-PROD",
            9,
            &entries(),
            &[],
            &xrootd_options(),
        );
        let rules: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
        assert_eq!(out.lines().count(), 2 + rules.len(), "one rule a line");
        assert_eq!(
            rules[0],
            serde_json::json!({"ignore": "", "comment": "tokenledger xrootd export for site CERN-PROD, \
                blocklist sequence 9, issuer https://atlas-auth.cern.ch/; the authdb must hold: u tlbanned / -a"})
        );
        // p1-aaaa (all): its sub of this issuer, not its X.509 DN; p1-bbbb (storage) is of
        // another issuer; p1-cccc (compute) is not storage's business.
        assert_eq!(
            rules[1..],
            [serde_json::json!({"sub": "a1b2", "result": "tlbanned", "comment": "p1-aaaa"})]
        );
        let named = ExportOptions {
            xrootd_name: Some("nobody-tl".into()),
            ..xrootd_options()
        };
        assert!(
            render(ExportFormat::Xrootd, "S", 1, &entries(), &[], &named)
                .contains(r#""result":"nobody-tl""#)
        );
    }

    #[test]
    fn options_are_refused_where_they_do_not_fit() {
        let xrootd = xrootd_options();
        assert_eq!(xrootd.check(ExportFormat::Xrootd), Ok(()));
        assert!(xrootd.check(ExportFormat::Text).is_err());
        assert!(options().check(ExportFormat::Arc).is_err());
        assert_eq!(options().check(ExportFormat::Dcache), Ok(()));
        let no_issuer = ExportOptions::default()
            .check(ExportFormat::Xrootd)
            .unwrap_err();
        assert!(no_issuer.contains("issuer="), "{no_issuer}");
        for bad in ["", "Root", "a b", "x\ny", &"n".repeat(33)] {
            let options = ExportOptions {
                xrootd_name: Some(bad.into()),
                ..xrootd_options()
            };
            assert!(options.check(ExportFormat::Xrootd).is_err(), "{bad:?}");
        }
    }

    /// One character of each kind that misleads or breaks a reader, with the reason a
    /// line-based export gives.
    const MISLEADING: [(char, &str); 16] = [
        ('\n', "contains a line break"),
        ('\r', "contains a line break"),
        ('\u{0b}', "contains a line break"),
        ('\u{0c}', "contains a line break"),
        ('\u{85}', "contains a line break"),
        ('\u{2028}', "contains a line break"),
        ('\u{2029}', "contains a line break"),
        ('\u{202e}', "contains a bidirectional formatting character"),
        ('\u{202a}', "contains a bidirectional formatting character"),
        ('\u{2066}', "contains a bidirectional formatting character"),
        ('\u{2069}', "contains a bidirectional formatting character"),
        ('\u{200f}', "contains a bidirectional formatting character"),
        ('\u{061c}', "contains a bidirectional formatting character"),
        ('\0', "contains a control character"),
        ('\u{1b}', "contains a control character"),
        ('\u{9b}', "contains a control character"),
    ];

    /// One person of scope `all` with `identity` and a plain one, rendered in `format`.
    fn render_identity(format: ExportFormat, identity: (&str, &str)) -> String {
        let entry = ExportEntry {
            label: "p1-odd".into(),
            scope: Scope::All,
            client: false,
            issued_before: None,
            identities: vec![
                (identity.0.into(), identity.1.into()),
                (ISS.into(), "plain".into()),
                (X509_ISSUER.into(), "/CN=plain".into()),
            ],
        };
        let options = match format {
            ExportFormat::Dcache => {
                let mut options = options();
                options.op_aliases.insert(identity.0.into(), "OTHER".into());
                options
            }
            ExportFormat::Xrootd => xrootd_options(),
            _ => ExportOptions::default(),
        };
        render(format, "S", 1, &[entry], &[], &options)
    }

    /// The identity a format would name, with `c` inside its `sub` (or its issuer).
    fn odd_identity(format: ExportFormat, c: char, in_issuer: bool) -> (String, String) {
        match (format, in_issuer) {
            (ExportFormat::Argus, false) => (X509_ISSUER.into(), format!("/CN=ev{c}il")),
            (_, false) => (ISS.into(), format!("ev{c}il")),
            (_, true) => (format!("https://ev{c}il/"), "a1b2".into()),
        }
    }

    #[test]
    fn line_based_exports_leave_out_identities_with_misleading_characters() {
        let line_based = FORMATS.iter().filter(|f| **f != ExportFormat::Xrootd);
        for &format in line_based {
            for (c, why) in MISLEADING {
                for in_issuer in [false, true] {
                    if in_issuer && format == ExportFormat::Argus {
                        continue; // Argus bans X.509 subjects only: no issuer is written.
                    }
                    let (iss, sub) = odd_identity(format, c, in_issuer);
                    let out = render_identity(format, (&iss, &sub));
                    let case = format!(
                        "{format:?}, U+{:04X} in the issuer: {in_issuer}",
                        u32::from(c)
                    );
                    assert!(out.lines().all(|l| !l.contains(c)), "{case}: {out:?}");
                    assert!(
                        !out.contains("ev"),
                        "{case}: the identity is not named: {out:?}"
                    );
                    let comment = format!("# p1-odd: an identity left out: {why}");
                    assert!(out.lines().any(|l| l == comment), "{case}: {out:?}");
                    assert!(
                        out.contains("plain"),
                        "{case}: other identities stay: {out:?}"
                    );
                    // The refused identity is one line less than a harmless one would give.
                    let fine =
                        render_identity(format, (&iss.replace(c, "-"), &sub.replace(c, "-")));
                    assert_eq!(
                        fine.lines().count(),
                        out.lines().count(),
                        "{case}: {fine:?}"
                    );
                    assert!(!fine.contains("left out"), "{case}: {fine:?}");
                }
            }
        }
    }

    #[test]
    fn argus_never_unbans_a_subject_it_could_not_ban() {
        for (c, _) in MISLEADING {
            let ended = ExportEntry {
                label: "p1-gone".into(),
                scope: Scope::All,
                client: false,
                issued_before: None,
                identities: vec![(X509_ISSUER.into(), format!("/CN=ev{c}il"))],
            };
            let out = render(ExportFormat::Argus, "S", 2, &[], &[ended], &options());
            assert_eq!(out.lines().count(), 1, "U+{:04X}: {out:?}", u32::from(c));
        }
    }

    #[test]
    fn the_xrootd_mapfile_escapes_misleading_characters_and_keeps_the_exact_sub() {
        for (c, _) in MISLEADING {
            let sub = format!("ev{c}il");
            let out = render_identity(ExportFormat::Xrootd, (ISS, &sub));
            let case = format!("U+{:04X}", u32::from(c));
            assert!(out.lines().all(|l| !l.contains(c)), "{case}: {out:?}");
            assert!(out.is_ascii(), "{case}: {out:?}");
            assert!(
                out.contains(&format!("\\u{:04x}", u32::from(c)))
                    || matches!(c, '\n' | '\r' | '\u{0c}'),
                "{case}: {out:?}"
            );
            let rules: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
            assert_eq!(
                out.lines().count(),
                2 + rules.len(),
                "{case}: one rule a line"
            );
            assert_eq!(
                rules[1]["sub"],
                sub.as_str(),
                "{case}: the exact sub is banned"
            );
            assert_eq!(rules[2]["sub"], "plain", "{case}");
        }
        let odd_issuer = ExportOptions {
            xrootd_issuer: Some("https://ev\u{202e}il/".into()),
            ..ExportOptions::default()
        };
        assert!(odd_issuer.check(ExportFormat::Xrootd).is_err());
    }

    #[test]
    fn harmless_non_ascii_identities_pass_unchanged() {
        for sub in ["müller", "محمد", "山田", "a\u{200d}b", "😀"] {
            for format in FORMATS {
                let identity = match format {
                    ExportFormat::Argus => (X509_ISSUER.to_string(), format!("/CN={sub}")),
                    _ => (ISS.to_string(), sub.to_string()),
                };
                let out = render_identity(format, (&identity.0, &identity.1));
                assert!(out.contains(sub), "{format:?} {sub}: {out:?}");
                assert!(!out.contains("left out"), "{format:?} {sub}: {out:?}");
            }
        }
    }

    const FORMATS: [ExportFormat; 6] = ExportFormat::ALL;

    #[test]
    fn formats_parse_by_name() {
        for f in ExportFormat::ALL {
            assert_eq!(f.as_str().parse::<ExportFormat>(), Ok(f));
        }
        assert!("json".parse::<ExportFormat>().is_err());
    }
}
