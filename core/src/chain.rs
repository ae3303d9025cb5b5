//! Token chains: walking from any logged issuance up through its refresh and
//! token-exchange parents to the root token and the person who started it.

use serde::{Deserialize, Serialize};

/// Why a walk stopped early: the parent a link names was not found.
const PARENT_MISSING: &str = "parent not in the log";
/// Why a walk stopped early: a parent was already in the chain.
const CYCLE: &str = "cycle";
/// Why a walk stopped early: the chain reached [`ChainWalk::MAX_DEPTH`] links.
const TOO_DEEP: &str = "too deep";
/// Why a walk stopped early: the link fed in does not answer the lookup.
const WRONG_ANSWER: &str = "answer does not match the lookup";
/// Why a chain is incomplete: it was finished before the walk was.
const UNFINISHED: &str = "walk not finished";

/// Normalised name of the refresh grant.
const REFRESH_TOKEN: &str = "refresh_token";
/// Normalised name of the client-credentials grant (pilot and service tokens).
const CLIENT_CREDENTIALS: &str = "client_credentials";
/// Normalised name of the RFC 8693 token-exchange grant.
const TOKEN_EXCHANGE: &str = "token-exchange";
/// Longest grant type name kept.
const MAX_GRANT_TYPE_LEN: usize = 64;

/// What the chain walk needs to know about one logged issuance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChainLink {
    /// The issuance's index in the log.
    pub index: u64,
    /// The access token's `jti`.
    pub jti: String,
    /// The token's issuer.
    pub iss: String,
    /// The token's subject.
    pub sub: String,
    /// The client the token was issued to.
    pub client_id: Option<String>,
    /// The normalised grant type (see [`infer_grant_type`]).
    pub grant_type: Option<String>,
    /// The token this one was exchanged or refreshed from, as reported.
    pub parent_jti: Option<String>,
    /// The `jti` of the refresh token issued with, or used for, this token.
    pub refresh_jti: Option<String>,
}

/// The lookup the walk asks for next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChainLookup {
    /// The issuance of `jti` by `iss`.
    ByJti {
        /// The issuer.
        iss: String,
        /// The parent's `jti`.
        jti: String,
    },
    /// The earliest issuance by `iss` carrying `refresh_jti` with an index below
    /// `before_index`: the one from the grant that created the refresh token.
    FirstWithRefresh {
        /// The issuer.
        iss: String,
        /// The refresh token's `jti`.
        refresh_jti: String,
        /// The index of the refreshed issuance.
        before_index: u64,
    },
}

impl ChainLink {
    /// The lookup for this link's parent: `parent_jti` if set, else for a refreshed
    /// token the first issuance with the same refresh token; None for a root.
    fn parent_lookup(&self) -> Option<ChainLookup> {
        if let Some(jti) = &self.parent_jti {
            return Some(ChainLookup::ByJti {
                iss: self.iss.clone(),
                jti: jti.clone(),
            });
        }
        let refresh_jti = self.refresh_jti.as_ref()?;
        (self.grant_type.as_deref() == Some(REFRESH_TOKEN)).then(|| ChainLookup::FirstWithRefresh {
            iss: self.iss.clone(),
            refresh_jti: refresh_jti.clone(),
            before_index: self.index,
        })
    }

    /// Whether both links are the same token: same issuer and `jti`.
    fn same_token(&self, other: &ChainLink) -> bool {
        self.iss == other.iss && self.jti == other.jti
    }
}

impl ChainLookup {
    /// Whether `link` is a possible answer to this lookup.
    fn answered_by(&self, link: &ChainLink) -> bool {
        match self {
            ChainLookup::ByJti { iss, jti } => link.iss == *iss && link.jti == *jti,
            ChainLookup::FirstWithRefresh {
                iss,
                refresh_jti,
                before_index,
            } => {
                link.iss == *iss
                    && link.refresh_jti.as_ref() == Some(refresh_jti)
                    && link.index < *before_index
            }
        }
    }
}

/// A two-phase walk up a token chain: the caller asks [`ChainWalk::next_lookup`],
/// runs it against the log, and hands the answer to [`ChainWalk::feed`], until there
/// is no lookup left; then [`ChainWalk::finish`].
#[derive(Clone, Debug)]
pub struct ChainWalk {
    links: Vec<ChainLink>,
    stopped: Option<&'static str>,
}

impl ChainWalk {
    /// The most links a chain holds; a longer chain stops as "too deep".
    pub const MAX_DEPTH: usize = 32;

    /// Starts a walk at `start`.
    pub fn new(start: ChainLink) -> ChainWalk {
        ChainWalk {
            links: vec![start],
            stopped: None,
        }
    }

    fn last(&self) -> &ChainLink {
        self.links.last().expect("a walk always holds its start")
    }

    /// The next lookup to make, or None when the walk is finished.
    pub fn next_lookup(&self) -> Option<ChainLookup> {
        match self.stopped {
            Some(_) => None,
            None => self.last().parent_lookup(),
        }
    }

    /// Feeds the answer to the last lookup: None (not found) ends the walk with the
    /// chain incomplete, as does a link that does not answer the lookup or is already
    /// in the chain. Feeding a finished walk does nothing.
    pub fn feed(&mut self, found: Option<ChainLink>) {
        if let Some(lookup) = self.next_lookup() {
            self.stopped = self.step(&lookup, found);
        }
    }

    /// Adds `found` to the chain, or says why the walk stops.
    fn step(&mut self, lookup: &ChainLookup, found: Option<ChainLink>) -> Option<&'static str> {
        let Some(link) = found else {
            return Some(PARENT_MISSING);
        };
        if !lookup.answered_by(&link) {
            return Some(WRONG_ANSWER);
        }
        if self.links.iter().any(|seen| seen.same_token(&link)) {
            return Some(CYCLE);
        }
        self.links.push(link);
        let has_parent = self.last().parent_lookup().is_some();
        (has_parent && self.links.len() >= Self::MAX_DEPTH).then_some(TOO_DEEP)
    }

    /// The chain as walked so far; complete only if the walk reached a root.
    pub fn finish(self) -> Chain {
        let stopped = match (self.stopped, self.next_lookup()) {
            (Some(reason), _) => Some(reason),
            (None, Some(_)) => Some(UNFINISHED),
            (None, None) => None,
        };
        Chain {
            links: self.links,
            complete: stopped.is_none(),
            stopped: stopped.map(str::to_owned),
        }
    }
}

/// A token chain from a starting issuance up to its root.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Chain {
    /// The links, the starting issuance first and the root (or the topmost found) last.
    pub links: Vec<ChainLink>,
    /// Whether the root was reached (the last link has no parent).
    pub complete: bool,
    /// Why the chain is incomplete: "parent not in the log", "cycle", "too deep",
    /// "answer does not match the lookup" or "walk not finished".
    pub stopped: Option<String>,
}

impl Chain {
    /// The root link, or the topmost link found if the chain is incomplete.
    ///
    /// # Panics
    /// If `links` is empty, which a chain from [`ChainWalk::finish`] never is.
    pub fn root(&self) -> &ChainLink {
        self.links.last().expect("a chain holds at least its start")
    }

    /// `(iss, sub)` of the human at the root, unless the root is a client_credentials
    /// (pilot or service) token. For an incomplete chain this is the topmost link found.
    pub fn human_subject(&self) -> Option<(&str, &str)> {
        let root = self.root();
        (root.grant_type.as_deref() != Some(CLIENT_CREDENTIALS))
            .then_some((root.iss.as_str(), root.sub.as_str()))
    }
}

/// The normalised grant type of an issuance. A given grant type is lowercased; known
/// names and aliases are normalised (`authorization_code`, `refresh_token`,
/// `token-exchange`, `client_credentials`, `device_code`); any other is kept if it is
/// 1-64 characters of `[a-z0-9_:.-]`, else None. With none given (or an empty one), a
/// token with an `act` claim is a token exchange and one whose `sub` is its `client_id`
/// is a client_credentials (pilot) token; otherwise None.
pub fn infer_grant_type(
    grant_type: Option<&str>,
    sub: &str,
    client_id: Option<&str>,
    has_act: bool,
) -> Option<String> {
    match grant_type.filter(|given| !given.is_empty()) {
        Some(given) => normalise_grant_type(&given.to_ascii_lowercase()),
        None if has_act => Some(TOKEN_EXCHANGE.to_owned()),
        None if client_id == Some(sub) => Some(CLIENT_CREDENTIALS.to_owned()),
        None => None,
    }
}

/// Normalises a lowercased grant type name.
fn normalise_grant_type(given: &str) -> Option<String> {
    let known = match given {
        "urn:ietf:params:oauth:grant-type:token-exchange" | "token_exchange" => TOKEN_EXCHANGE,
        "urn:ietf:params:oauth:grant-type:device_code" | "device-code" => "device_code",
        other => other,
    };
    let allowed = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_:.-".contains(&b);
    let valid =
        !known.is_empty() && known.len() <= MAX_GRANT_TYPE_LEN && known.bytes().all(allowed);
    valid.then(|| known.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISS: &str = "https://cms-auth.web.cern.ch/";

    fn link(index: u64, jti: &str, grant_type: &str) -> ChainLink {
        ChainLink {
            index,
            jti: jti.to_owned(),
            iss: ISS.to_owned(),
            sub: "alice-sub".to_owned(),
            client_id: Some("web-client".to_owned()),
            grant_type: Some(grant_type.to_owned()),
            parent_jti: None,
            refresh_jti: None,
        }
    }

    fn with_parent(mut link: ChainLink, parent: &str) -> ChainLink {
        link.parent_jti = Some(parent.to_owned());
        link
    }

    fn with_refresh(mut link: ChainLink, refresh: &str) -> ChainLink {
        link.refresh_jti = Some(refresh.to_owned());
        link
    }

    /// Answers a lookup the way the server's SQL would.
    fn lookup(log: &[ChainLink], query: &ChainLookup) -> Option<ChainLink> {
        log.iter()
            .filter(|candidate| query.answered_by(candidate))
            .min_by_key(|candidate| candidate.index)
            .cloned()
    }

    fn walk(log: &[ChainLink], start: &ChainLink) -> Chain {
        let mut walk = ChainWalk::new(start.clone());
        while let Some(query) = walk.next_lookup() {
            walk.feed(lookup(log, &query));
        }
        walk.finish()
    }

    fn jtis(chain: &Chain) -> Vec<&str> {
        chain.links.iter().map(|l| l.jti.as_str()).collect()
    }

    #[test]
    fn a_root_token_is_a_complete_chain_of_one() {
        let root = link(0, "a", "authorization_code");
        let chain = walk(std::slice::from_ref(&root), &root);
        assert_eq!(chain.links, vec![root]);
        assert!(chain.complete);
        assert_eq!(chain.stopped, None);
        assert_eq!(chain.human_subject(), Some((ISS, "alice-sub")));
    }

    #[test]
    fn exchange_then_refresh_walks_up_to_the_original_grant() {
        let log = vec![
            with_refresh(link(0, "a", "authorization_code"), "r1"),
            with_refresh(link(1, "b", "refresh_token"), "r1"),
            with_refresh(link(2, "c", "refresh_token"), "r1"),
            with_parent(link(3, "d", "token-exchange"), "c"),
        ];
        let chain = walk(&log, &log[3]);
        assert_eq!(jtis(&chain), ["d", "c", "a"]);
        assert!(chain.complete);
        assert_eq!(chain.root().jti, "a");
        assert_eq!(chain.human_subject(), Some((ISS, "alice-sub")));
    }

    #[test]
    fn lookups_follow_parent_jti_before_the_refresh_token() {
        let start = with_parent(with_refresh(link(5, "b", "refresh_token"), "r1"), "a");
        let mut walk = ChainWalk::new(start);
        assert_eq!(
            walk.next_lookup(),
            Some(ChainLookup::ByJti {
                iss: ISS.to_owned(),
                jti: "a".to_owned()
            })
        );
        walk.feed(Some(with_refresh(link(1, "a", "refresh_token"), "r0")));
        assert_eq!(
            walk.next_lookup(),
            Some(ChainLookup::FirstWithRefresh {
                iss: ISS.to_owned(),
                refresh_jti: "r0".to_owned(),
                before_index: 1
            })
        );
    }

    #[test]
    fn a_refresh_without_refresh_jti_or_a_code_grant_with_one_is_a_root() {
        let refresh = link(3, "b", "refresh_token");
        assert_eq!(ChainWalk::new(refresh).next_lookup(), None);
        let code = with_refresh(link(3, "b", "authorization_code"), "r1");
        assert_eq!(ChainWalk::new(code).next_lookup(), None);
    }

    #[test]
    fn a_missing_parent_leaves_the_chain_incomplete() {
        let log = vec![
            with_refresh(link(4, "b", "refresh_token"), "r1"),
            with_parent(link(5, "c", "token-exchange"), "b"),
        ];
        let chain = walk(&log, &log[1]);
        assert_eq!(jtis(&chain), ["c", "b"]);
        assert!(!chain.complete);
        assert_eq!(chain.stopped.as_deref(), Some("parent not in the log"));
        assert_eq!(chain.human_subject(), Some((ISS, "alice-sub")));
    }

    #[test]
    fn cycles_are_detected() {
        let log = vec![
            with_parent(link(0, "a", "token-exchange"), "b"),
            with_parent(link(1, "b", "token-exchange"), "a"),
        ];
        let chain = walk(&log, &log[1]);
        assert_eq!(jtis(&chain), ["b", "a"]);
        assert!(!chain.complete);
        assert_eq!(chain.stopped.as_deref(), Some("cycle"));

        let own_parent = vec![with_parent(link(0, "a", "token-exchange"), "a")];
        let chain = walk(&own_parent, &own_parent[0]);
        assert_eq!(jtis(&chain), ["a"]);
        assert_eq!(chain.stopped.as_deref(), Some("cycle"));
    }

    /// A chain of `len` exchanges: jti `t<i>` has parent `t<i-1>`; `t0` is a root.
    fn exchange_chain(len: u64) -> Vec<ChainLink> {
        (0..len)
            .map(|i| match i {
                0 => link(0, "t0", "authorization_code"),
                _ => with_parent(
                    link(i, &format!("t{i}"), "token-exchange"),
                    &format!("t{}", i - 1),
                ),
            })
            .collect()
    }

    #[test]
    fn walks_stop_at_the_depth_limit() {
        let log = exchange_chain(40);
        let chain = walk(&log, &log[39]);
        assert_eq!(chain.links.len(), ChainWalk::MAX_DEPTH);
        assert!(!chain.complete);
        assert_eq!(chain.stopped.as_deref(), Some("too deep"));

        let log = exchange_chain(ChainWalk::MAX_DEPTH as u64);
        let chain = walk(&log, log.last().unwrap());
        assert_eq!(chain.links.len(), ChainWalk::MAX_DEPTH);
        assert!(chain.complete);
    }

    #[test]
    fn a_pilot_root_has_no_human() {
        let mut pilot = link(0, "p", "client_credentials");
        pilot.sub = "pilot-client".to_owned();
        let log = vec![pilot, with_parent(link(1, "x", "token-exchange"), "p")];
        let chain = walk(&log, &log[1]);
        assert!(chain.complete);
        assert_eq!(chain.root().jti, "p");
        assert_eq!(chain.human_subject(), None);
    }

    #[test]
    fn an_answer_that_does_not_match_the_lookup_stops_the_walk() {
        let start = with_refresh(link(5, "b", "refresh_token"), "r1");
        for wrong in [
            with_refresh(link(7, "a", "authorization_code"), "r1"),
            with_refresh(link(1, "a", "authorization_code"), "r2"),
        ] {
            let mut walk = ChainWalk::new(start.clone());
            walk.feed(Some(wrong));
            assert_eq!(walk.next_lookup(), None);
            let chain = walk.finish();
            assert_eq!(jtis(&chain), ["b"]);
            assert_eq!(
                chain.stopped.as_deref(),
                Some("answer does not match the lookup")
            );
        }
    }

    #[test]
    fn feeding_a_finished_walk_does_nothing_and_early_finish_is_incomplete() {
        let root = link(0, "a", "authorization_code");
        let mut walk = ChainWalk::new(root.clone());
        walk.feed(Some(link(1, "z", "authorization_code")));
        assert_eq!(walk.finish().links, vec![root]);

        let unfinished = ChainWalk::new(with_parent(link(1, "b", "token-exchange"), "a")).finish();
        assert!(!unfinished.complete);
        assert_eq!(unfinished.stopped.as_deref(), Some("walk not finished"));
    }

    #[test]
    fn chains_serialize_for_the_api() {
        let root = link(0, "a", "authorization_code");
        let json = serde_json::to_value(walk(std::slice::from_ref(&root), &root)).unwrap();
        assert_eq!(json["complete"], true);
        assert_eq!(json["stopped"], serde_json::Value::Null);
        assert_eq!(json["links"][0]["jti"], "a");
        let back: ChainLink = serde_json::from_value(json["links"][0].clone()).unwrap();
        assert_eq!(back, root);
    }

    #[test]
    fn given_grant_types_are_normalised() {
        let cases = [
            ("authorization_code", Some("authorization_code")),
            ("refresh_token", Some("refresh_token")),
            ("Refresh_Token", Some("refresh_token")),
            (
                "urn:ietf:params:oauth:grant-type:token-exchange",
                Some("token-exchange"),
            ),
            ("token_exchange", Some("token-exchange")),
            ("token-exchange", Some("token-exchange")),
            ("client_credentials", Some("client_credentials")),
            (
                "urn:ietf:params:oauth:grant-type:device_code",
                Some("device_code"),
            ),
            ("device_code", Some("device_code")),
            ("device-code", Some("device_code")),
            ("password", Some("password")),
            (
                "urn:ietf:params:oauth:grant-type:jwt-bearer",
                Some("urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ),
            ("has space", None),
            ("é", None),
            (&"x".repeat(65), None),
        ];
        for (given, expected) in cases {
            let got = infer_grant_type(Some(given), "s", Some("s"), true);
            assert_eq!(got.as_deref(), expected, "{given}");
        }
        assert_eq!(
            infer_grant_type(Some(&"x".repeat(64)), "s", None, false),
            Some("x".repeat(64))
        );
    }

    #[test]
    fn missing_grant_types_are_inferred() {
        let infer = |grant, sub, client, act| infer_grant_type(grant, sub, client, act);
        assert_eq!(
            infer(None, "u", Some("c"), true).as_deref(),
            Some("token-exchange")
        );
        assert_eq!(
            infer(None, "c", Some("c"), true).as_deref(),
            Some("token-exchange")
        );
        assert_eq!(
            infer(None, "c", Some("c"), false).as_deref(),
            Some("client_credentials")
        );
        assert_eq!(
            infer(Some(""), "c", Some("c"), false).as_deref(),
            Some("client_credentials")
        );
        assert_eq!(infer(None, "u", Some("c"), false), None);
        assert_eq!(infer(None, "u", None, false), None);
    }
}
