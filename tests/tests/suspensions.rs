//! Sites, pseudonyms, suspensions and signed blocklists end to end: a site acts against a
//! person without learning who it is; the VO suspends at every site at once; the signed
//! blocklist carries it all, with ETags, and drops lifted and expired suspensions by itself.

use std::collections::BTreeSet;

use jsonwebtoken::Algorithm;
use serde_json::{Value, json};
use tokenledger_core::blocklist::{BlocklistIndex, Decision, Scope, SignedBlocklist};
use tokenledger_core::note::NoteVerifier;
use tokenledger_core::pseudonym::SiteKey;
use tokenledger_e2e::both_backends;
use tokenledger_e2e::issuer::{TestIssuer, now_secs};
use tokenledger_e2e::{Reply, TestServer};

const ATLAS_ISS: &str = "https://atlas-auth.example/";
const CMS_ISS: &str = "https://cms-auth.example/";

struct Setup {
    server: TestServer,
    atlas: TestIssuer,
    cms: TestIssuer,
    cern_admin: String,
    ral_admin: String,
    _dir: tempfile::TempDir,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let atlas = TestIssuer::new(ATLAS_ISS);
    let cms = TestIssuer::new(CMS_ISS);
    let (atlas_jwks, cms_jwks) = (dir.path().join("atlas.json"), dir.path().join("cms.json"));
    atlas.write_jwks(&atlas_jwks);
    cms.write_jwks(&cms_jwks);
    let config = format!(
        "{}\n{}\n[[site]]\nname = \"CERN-PROD\"\nvos = [\"atlas\", \"cms\"]\n\n[[site]]\nname = \"RAL-LCG2\"\nvos = [\"atlas\"]\n\n[[site]]\nname = \"T2-CMS\"\nvos = [\"cms\"]\n",
        atlas.config_block(
            &format!("jwks_file = \"{}\"", atlas_jwks.display()),
            "[{ rule = \"fixed\", vo = \"atlas\" }]"
        ),
        cms.config_block(
            &format!("jwks_file = \"{}\"", cms_jwks.display()),
            "[{ rule = \"fixed\", vo = \"cms\" }]"
        ),
    );
    let server = TestServer::start_with_config(&dir.path().join("data"), &config);
    let cern_admin = server
        .credential(&["--role", "site-admin", "--site", "CERN-PROD"])
        .secret;
    let ral_admin = server
        .credential(&["--role", "site-admin", "--site", "RAL-LCG2"])
        .secret;
    Setup {
        server,
        atlas,
        cms,
        cern_admin,
        ral_admin,
        _dir: dir,
    }
}

impl Setup {
    fn ingest(&self, issuer: &TestIssuer, vo: &str, jti: &str, sub: &str) {
        let credential = self.server.create_credential("issuer", Some(vo));
        let token = issuer.mint(Algorithm::ES256, &issuer.claims(jti, sub));
        let reply = self.server.http().post_json(
            "/v1/issuances",
            Some(&credential),
            &json!({"token": token}),
        );
        assert_eq!(reply.status, 201, "{reply:?}");
    }

    fn get(&self, path: &str, token: &str) -> Reply {
        self.server.http().get(path, Some(token))
    }

    fn post(&self, path: &str, token: &str, body: Value) -> Reply {
        self.server.http().post_json(path, Some(token), &body)
    }

    /// A lift: `DELETE path?reason=...`.
    fn delete(&self, path: &str, token: &str, body: Value) -> Reply {
        let reason: String = body["reason"]
            .as_str()
            .unwrap()
            .bytes()
            .map(|b| format!("%{b:02X}"))
            .collect();
        self.server.http().send(
            "DELETE",
            &format!("{path}?reason={reason}"),
            Some(token),
            None,
            None,
        )
    }

    fn pseudonym(&self, site: &str, admin: &str, jti: &str) -> String {
        let reply = self.get(&format!("/v1/sites/{site}/tokens/{jti}/pseudonym"), admin);
        assert_eq!(reply.status, 200, "{reply:?}");
        reply.json()["pseudonym"].as_str().unwrap().to_string()
    }

    fn blocklist(&self, site: &str, admin: &str) -> (SignedBlocklist, Reply) {
        let reply = self.get(&format!("/v1/sites/{site}/blocklist"), admin);
        assert_eq!(reply.status, 200, "{reply:?}");
        let signed: SignedBlocklist = serde_json::from_str(&reply.body).unwrap();
        let verifier = NoteVerifier::parse(&self.server.log_key()).unwrap();
        let document = signed.verify(&verifier).expect("a valid signature").clone();
        document.check_fresh(site, None, now_secs()).unwrap();
        (signed, reply)
    }

    /// Suspends the person behind `jti` at `site` (all scopes); the suspension as answered.
    fn suspend_behind(&self, site: &str, admin: &str, jti: &str) -> Value {
        let pseudonym = self.pseudonym(site, admin, jti);
        let reply = self.post(
            &format!("/v1/sites/{site}/suspensions"),
            admin,
            json!({"pseudonym": pseudonym, "reason": "INC-9"}),
        );
        assert_eq!(reply.status, 201, "{reply:?}");
        reply.json()
    }

    fn site_key(&self, site: &str, admin: &str) -> SiteKey {
        use base64::Engine;
        let reply = self.get(&format!("/v1/sites/{site}/key"), admin);
        assert_eq!(reply.status, 200, "{reply:?}");
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(reply.json()["key"].as_str().unwrap())
            .unwrap();
        SiteKey::from_bytes(bytes.try_into().unwrap())
    }
}

fn assert_no_identity(reply: &Reply, forbidden: &[&str]) {
    for word in forbidden {
        assert!(
            !reply.body.contains(word),
            "the site API leaked `{word}`: {}",
            reply.body
        );
    }
    assert!(
        !reply.body.contains("pe-"),
        "the site API leaked a person id: {}",
        reply.body
    );
}

both_backends!(pseudonyms_are_stable_per_person_and_site_and_unlinkable_across_sites);
fn pseudonyms_are_stable_per_person_and_site_and_unlinkable_across_sites() {
    let mut s = setup();
    s.ingest(&s.atlas, "atlas", "t1", "alice");
    s.ingest(&s.atlas, "atlas", "t2", "alice");
    s.ingest(&s.atlas, "atlas", "t3", "bob");
    let p1 = s.pseudonym("CERN-PROD", &s.cern_admin, "t1");
    assert!(p1.starts_with("p1-"));
    assert_eq!(
        s.pseudonym("CERN-PROD", &s.cern_admin, "t2"),
        p1,
        "same person, another token"
    );
    assert_ne!(
        s.pseudonym("CERN-PROD", &s.cern_admin, "t3"),
        p1,
        "another person"
    );
    let ral = s.pseudonym("RAL-LCG2", &s.ral_admin, "t1");
    assert_ne!(ral, p1, "another site");

    let reply = s.get("/v1/sites/CERN-PROD/tokens/t1/pseudonym", &s.cern_admin);
    assert_no_identity(&reply, &["alice", ATLAS_ISS]);

    s.server.restart();
    let cern_admin = s.cern_admin.clone();
    assert_eq!(
        s.pseudonym("CERN-PROD", &cern_admin, "t1"),
        p1,
        "stable across restarts"
    );

    // A linked identity maps to the same pseudonym.
    let officer = s.server.create_credential("vo-security", Some("atlas"));
    let person = s
        .get("/v1/vos/atlas/tokens/t1?reason=link", &officer)
        .json()["person"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let reply = s.post(
        &format!("/v1/vos/atlas/persons/{person}/identities"),
        &officer,
        json!({"iss": ATLAS_ISS, "sub": "alice-2", "reason": "second account"}),
    );
    assert_eq!(reply.status, 200, "{reply:?}");
    s.ingest(&s.atlas, "atlas", "t4", "alice-2");

    // A VO cannot link another VO's identities (it could then suspend them at shared sites),
    // nor a DN a shell would interpret in an export.
    let link = |iss: &str, sub: &str| {
        s.post(
            &format!("/v1/vos/atlas/persons/{person}/identities"),
            &officer,
            json!({"iss": iss, "sub": sub, "reason": "test"}),
        )
    };
    link(CMS_ISS, "carol").assert_error(403, "forbidden");
    link("x509", "/CN=x$(touch /tmp/pwned)").assert_error(400, "bad_request");
    assert_eq!(
        s.pseudonym("CERN-PROD", &cern_admin, "t4"),
        p1,
        "linked identity, same pseudonym"
    );
}

both_backends!(a_site_suspension_reaches_the_blocklist_and_a_lift_removes_it);
fn a_site_suspension_reaches_the_blocklist_and_a_lift_removes_it() {
    let s = setup();
    s.ingest(&s.atlas, "atlas", "t1", "alice");
    let officer = s.server.create_credential("vo-security", Some("atlas"));
    let person = s
        .get("/v1/vos/atlas/tokens/t1?reason=prep", &officer)
        .json()["person"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    s.post(
        &format!("/v1/vos/atlas/persons/{person}/identities"),
        &officer,
        json!({"iss": "x509", "sub": "/DC=ch/CN=alice", "reason": "migration"}),
    );

    let (before, reply) = s.blocklist("CERN-PROD", &s.cern_admin);
    assert!(before.document.entries.is_empty());
    let etag = reply_etag(&reply);
    let not_modified = s.server.http().get_with_headers(
        "/v1/sites/CERN-PROD/blocklist",
        &s.cern_admin,
        &[("If-None-Match", &etag)],
    );
    assert_eq!(not_modified.status, 304);

    let pseudonym = s.pseudonym("CERN-PROD", &s.cern_admin, "t1");
    let reply = s.post("/v1/sites/CERN-PROD/suspensions", &s.cern_admin, json!({"pseudonym": pseudonym, "scope": "compute", "reason": "INC-9 mining", "reason_code": "misuse"}));
    assert_eq!(reply.status, 201, "{reply:?}");
    assert_no_identity(&reply, &["alice", ATLAS_ISS]);
    let suspension = reply.json();
    let id = suspension["id"].as_str().unwrap().to_string();
    assert_eq!(suspension["pseudonym"], pseudonym.as_str());
    assert_eq!(suspension["active"], true);

    let (after, reply) = s.blocklist("CERN-PROD", &s.cern_admin);
    assert!(after.document.sequence > before.document.sequence);
    assert_no_identity(&reply, &["alice", ATLAS_ISS, "DC=ch"]);
    let entry = &after.document.entries[0];
    assert_eq!(entry.pseudonym.as_ref(), Some(&pseudonym));
    assert_eq!(entry.scope, Scope::Compute);
    let key = s.site_key("CERN-PROD", &s.cern_admin);
    let tags: BTreeSet<&String> = entry.tags.iter().collect();
    assert_eq!(
        tags,
        BTreeSet::from([
            &key.tag(ATLAS_ISS, "alice"),
            &key.tag("x509", "/DC=ch/CN=alice")
        ]),
        "every identity of the person"
    );
    let index = BlocklistIndex::new(after.document.clone());
    assert!(matches!(
        index.decide(&key, ATLAS_ISS, "alice", None, Scope::Compute, now_secs()),
        Decision::Suspended(_)
    ));
    assert_eq!(
        index.decide(&key, ATLAS_ISS, "alice", None, Scope::Storage, now_secs()),
        Decision::Allowed
    );
    let not_modified = s.server.http().get_with_headers(
        "/v1/sites/CERN-PROD/blocklist",
        &s.cern_admin,
        &[("If-None-Match", &reply_etag(&reply))],
    );
    assert_eq!(not_modified.status, 304, "unchanged: 304");

    // RAL does not see CERN's suspension; a site reader of CERN can fetch, not export.
    let (ral, _) = s.blocklist("RAL-LCG2", &s.ral_admin);
    assert!(ral.document.entries.is_empty());
    let reader = s
        .server
        .credential(&["--role", "site-reader", "--site", "CERN-PROD"])
        .secret;
    assert_eq!(s.get("/v1/sites/CERN-PROD/blocklist", &reader).status, 200);
    s.get("/v1/sites/CERN-PROD/blocklist?format=htcondor", &reader)
        .assert_error(403, "forbidden");

    // Exports name identities, for the site's admins.
    let export = s
        .get(
            "/v1/sites/CERN-PROD/blocklist?format=htcondor",
            &s.cern_admin,
        )
        .json();
    let content = export["document"]["content"].as_str().unwrap();
    assert!(
        content.contains(&format!(
            "SCITOKENS {ATLAS_ISS},alice {pseudonym}@banned.htcondor.org"
        )),
        "{content}"
    );
    let argus = s
        .get("/v1/sites/CERN-PROD/blocklist?format=argus", &s.cern_admin)
        .json();
    assert!(
        argus["document"]["content"]
            .as_str()
            .unwrap()
            .contains("pap-admin ban --private subject '/DC=ch/CN=alice'")
    );

    // The dCache export's OP aliases: the parameter repeats (each value is read: a bad second
    // one is refused), or its values are comma-joined.
    let dcache = |aliases: &str| {
        let path = format!("/v1/sites/CERN-PROD/blocklist?format=dcache&{aliases}");
        s.get(&path, &s.cern_admin)
    };
    for aliases in [
        format!("op_alias=https://other.example/=OTHER&op_alias={ATLAS_ISS}=ATLAS"),
        format!("op_alias=https://other.example/=OTHER,{ATLAS_ISS}=ATLAS"),
    ] {
        let reply = dcache(&aliases);
        assert_eq!(reply.status, 200, "{aliases}: {reply:?}");
    }
    dcache(&format!("op_alias={ATLAS_ISS}=ATLAS&op_alias=no-alias"))
        .assert_error(400, "bad_request");

    // Export options that do not fit the format are refused, not ignored.
    for query in [
        "format=arc&format=text",
        "format=xrootd",
        "format=xrootd&issuer=",
        "format=xrootd&issuer=https://i/&xrootd_name=Root",
        "format=xrootd&issuer=https://i/&xrootd_name=a%20b",
        "format=text&issuer=https://i/",
        "format=arc&op_alias=https://i/=ATLAS",
        "issuer=https://i/",
        "op_alias=https://i/=ATLAS",
    ] {
        s.get(
            &format!("/v1/sites/CERN-PROD/blocklist?{query}"),
            &s.cern_admin,
        )
        .assert_error(400, "bad_request");
    }

    let lifted = s.delete(
        &format!("/v1/sites/CERN-PROD/suspensions/{id}"),
        &s.cern_admin,
        json!({"reason": "cleared"}),
    );
    assert_eq!(lifted.status, 200, "{lifted:?}");
    assert_eq!(lifted.json()["active"], false);
    s.delete(
        &format!("/v1/sites/CERN-PROD/suspensions/{id}"),
        &s.cern_admin,
        json!({"reason": "again"}),
    )
    .assert_error(409, "conflict");
    let (lifted_list, _) = s.blocklist("CERN-PROD", &s.cern_admin);
    assert!(lifted_list.document.entries.is_empty());
    assert!(lifted_list.document.sequence > after.document.sequence);
    let listed = s.get("/v1/sites/CERN-PROD/suspensions", &s.cern_admin);
    assert_eq!(listed.json()["suspensions"][0]["id"], id.as_str());
    assert_no_identity(&listed, &["alice", ATLAS_ISS]);
}

both_backends!(a_token_suspension_blocks_only_that_token_and_expired_suspensions_drop_out);
fn a_token_suspension_blocks_only_that_token_and_expired_suspensions_drop_out() {
    let s = setup();
    s.ingest(&s.atlas, "atlas", "leaked", "alice");
    s.ingest(&s.atlas, "atlas", "fine", "alice");
    let reply = s.post(
        "/v1/sites/CERN-PROD/suspensions",
        &s.cern_admin,
        json!({"jti": "leaked", "target": "token", "reason": "leaked in a log"}),
    );
    assert_eq!(reply.status, 201, "{reply:?}");
    let key = s.site_key("CERN-PROD", &s.cern_admin);
    let (doc, _) = s.blocklist("CERN-PROD", &s.cern_admin);
    let index = BlocklistIndex::new(doc.document.clone());
    let now = now_secs();
    assert!(matches!(
        index.decide(
            &key,
            ATLAS_ISS,
            "alice",
            Some("leaked"),
            Scope::Compute,
            now
        ),
        Decision::Suspended(_)
    ));
    assert_eq!(
        index.decide(&key, ATLAS_ISS, "alice", Some("fine"), Scope::Compute, now),
        Decision::Allowed
    );
    assert!(
        doc.document.entries[0].not_after.is_some(),
        "until the token expires"
    );

    let soon = now_secs() + 2;
    let reply = s.post(
        "/v1/sites/CERN-PROD/suspensions",
        &s.cern_admin,
        json!({"jti": "fine", "reason": "short", "expires_at": soon}),
    );
    assert_eq!(reply.status, 201, "{reply:?}");
    let (with, _) = s.blocklist("CERN-PROD", &s.cern_admin);
    assert_eq!(with.document.entries.len(), 2);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (doc, _) = s.blocklist("CERN-PROD", &s.cern_admin);
        if doc.document.entries.len() == 1 {
            assert!(doc.document.sequence > with.document.sequence);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the expired suspension never dropped out"
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}

both_backends!(a_vo_wide_suspension_reaches_every_site_of_the_vo_and_no_other);
fn a_vo_wide_suspension_reaches_every_site_of_the_vo_and_no_other() {
    let s = setup();
    s.ingest(&s.cms, "cms", "c1", "carol");
    let officer = s.server.create_credential("vo-security", Some("cms"));
    let t2_admin = s
        .server
        .credential(&["--role", "site-admin", "--site", "T2-CMS"])
        .secret;
    let reply = s.post(
        "/v1/vos/cms/suspensions",
        &officer,
        json!({"jti": "c1", "scope": "all", "reason": "INC-11"}),
    );
    assert_eq!(reply.status, 201, "{reply:?}");
    let id = reply.json()["id"].as_str().unwrap().to_string();
    let (cern, _) = s.blocklist("CERN-PROD", &s.cern_admin);
    let (t2, _) = s.blocklist("T2-CMS", &t2_admin);
    let (ral, _) = s.blocklist("RAL-LCG2", &s.ral_admin);
    assert_eq!(cern.document.entries.len(), 1);
    assert_eq!(t2.document.entries.len(), 1);
    assert!(ral.document.entries.is_empty(), "RAL serves only atlas");
    assert_ne!(
        cern.document.entries[0].pseudonym,
        t2.document.entries[0].pseudonym
    );
    assert_ne!(cern.document.entries[0].tags, t2.document.entries[0].tags);
    // A pseudonym a blocklist hands out for a VO-wide suspension resolves for the VO.
    let handed_out = cern.document.entries[0].pseudonym.as_ref().unwrap();
    let resolved = s.get(
        &format!("/v1/vos/cms/pseudonyms/{handed_out}?reason=INC-12"),
        &officer,
    );
    assert_eq!(resolved.status, 200, "{resolved:?}");
    assert_eq!(resolved.json()["identities"][0]["sub"], "carol");

    let listed = s.get("/v1/vos/cms/suspensions", &officer).json();
    assert_eq!(listed["suspensions"][0]["id"], id.as_str());
    let atlas_officer = s.server.create_credential("vo-security", Some("atlas"));
    s.get("/v1/vos/cms/suspensions", &atlas_officer)
        .assert_error(403, "forbidden");
    s.post(
        "/v1/vos/cms/suspensions",
        &atlas_officer,
        json!({"jti": "c1", "reason": "x"}),
    )
    .assert_error(403, "forbidden");

    let lifted = s.delete(
        &format!("/v1/vos/cms/suspensions/{id}"),
        &officer,
        json!({"reason": "resolved"}),
    );
    assert_eq!(lifted.status, 200, "{lifted:?}");
    let (cern, _) = s.blocklist("CERN-PROD", &s.cern_admin);
    assert!(cern.document.entries.is_empty());
}

both_backends!(sites_and_vos_cannot_reach_each_others_data);
fn sites_and_vos_cannot_reach_each_others_data() {
    let s = setup();
    s.ingest(&s.atlas, "atlas", "t1", "alice");
    s.ingest(&s.cms, "cms", "c1", "carol");
    let cern_pseudonym = s.pseudonym("CERN-PROD", &s.cern_admin, "t1");
    let ral = &s.ral_admin;
    for path in [
        "/v1/sites/CERN-PROD/suspensions",
        "/v1/sites/CERN-PROD/key",
        "/v1/sites/CERN-PROD/blocklist",
        "/v1/sites/CERN-PROD/blocklist?format=text",
        "/v1/sites/CERN-PROD/tokens/t1/pseudonym",
    ] {
        s.get(path, ral).assert_error(403, "forbidden");
    }
    s.post(
        "/v1/sites/CERN-PROD/suspensions",
        ral,
        json!({"jti": "t1", "reason": "x"}),
    )
    .assert_error(403, "forbidden");
    s.post(
        "/v1/sites/RAL-LCG2/suspensions",
        ral,
        json!({"pseudonym": cern_pseudonym, "reason": "x"}),
    )
    .assert_error(404, "not_found");
    s.get("/v1/sites/RAL-LCG2/tokens/c1/pseudonym", ral)
        .assert_error(404, "not_found");

    // The VO resolves a site's pseudonym only through the logged path.
    let officer = s.server.create_credential("vo-security", Some("atlas"));
    let size = s.server.log_size();
    let person = s.get(
        &format!("/v1/vos/atlas/pseudonyms/{cern_pseudonym}?reason=INC-1"),
        &officer,
    );
    assert_eq!(person.status, 200, "{person:?}");
    assert_eq!(person.json()["identities"][0]["sub"], "alice");
    assert_eq!(s.server.log_size(), size + 1, "the resolution was logged");
    s.get(
        &format!("/v1/vos/atlas/pseudonyms/{cern_pseudonym}"),
        &officer,
    )
    .assert_error(400, "bad_request");

    // A sighting is logged for the site's own VOs.
    let reporter = s
        .server
        .credential(&["--role", "reporter", "--site", "CERN-PROD"])
        .secret;
    let sighting = s.post(
        "/v1/sites/CERN-PROD/sightings",
        &reporter,
        json!({"jti": "t1", "seen_at": now_secs() - 60, "host": "ce01.cern.ch", "job_id": "123.0"}),
    );
    assert_eq!(sighting.status, 201, "{sighting:?}");
    s.post(
        "/v1/sites/RAL-LCG2/sightings",
        &reporter,
        json!({"jti": "t1", "seen_at": now_secs()}),
    )
    .assert_error(403, "forbidden");

    // The person's timeline shows the issuance, the sighting and a suspension, newest first.
    let suspended = s.post(
        "/v1/sites/CERN-PROD/suspensions",
        &s.cern_admin,
        json!({"pseudonym": cern_pseudonym, "reason": "INC-2"}),
    );
    assert_eq!(suspended.status, 201, "{suspended:?}");
    let person = person.json()["id"].as_str().unwrap().to_string();
    let timeline = s
        .get(
            &format!("/v1/vos/atlas/persons/{person}/timeline?reason=INC-3"),
            &officer,
        )
        .json();
    let kinds: Vec<&str> = timeline["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["suspension", "sighting", "issuance"], "{timeline}");
    assert_eq!(timeline["events"][1]["entry"]["host"], "ce01.cern.ch");
}

fn reply_etag(reply: &Reply) -> String {
    reply.etag.clone().expect("an ETag")
}

/// A gauge or counter of `/metrics`.
fn metric(s: &Setup, name: &str) -> u64 {
    let text = s.server.http().get("/metrics", None).body;
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}"))
        .parse()
        .unwrap()
}

/// Polls `/metrics` until `name` reads `value` (bounded: a wait, not a performance threshold).
fn await_metric(s: &Setup, name: &str, value: u64) {
    let started = std::time::Instant::now();
    while metric(s, name) != value {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "{name} never became {value}:\n{}",
            s.server.log_tail()
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Starts a long poll of `site`'s blocklist with `If-None-Match: etag` in a thread.
fn long_poll(
    s: &Setup,
    site: &str,
    token: &str,
    etag: &str,
    wait: u64,
) -> std::thread::JoinHandle<Reply> {
    let http = s.server.http();
    let (path, token, etag) = (
        format!("/v1/sites/{site}/blocklist?wait={wait}"),
        token.to_string(),
        etag.to_string(),
    );
    std::thread::spawn(move || http.get_with_headers(&path, &token, &[("If-None-Match", &etag)]))
}

both_backends!(a_long_poll_waits_for_its_own_sites_next_sequence);
fn a_long_poll_waits_for_its_own_sites_next_sequence() {
    let s = setup();
    s.ingest(&s.atlas, "atlas", "t1", "alice");
    let (before, reply) = s.blocklist("CERN-PROD", &s.cern_admin);
    let etag = reply_etag(&reply);

    // The wait's bounds, and no wait for exports.
    for bad in ["61", "-1", "3600", "soon", ""] {
        s.server
            .http()
            .get_with_headers(
                &format!("/v1/sites/CERN-PROD/blocklist?wait={bad}"),
                &s.cern_admin,
                &[("If-None-Match", &etag)],
            )
            .assert_error(400, "bad_request");
    }
    s.get(
        "/v1/sites/CERN-PROD/blocklist?format=text&wait=5",
        &s.cern_admin,
    )
    .assert_error(400, "bad_request");
    // Without If-None-Match, or with an ETag that is not the current one, a wait answers at
    // once with the document.
    let whole = s.get("/v1/sites/CERN-PROD/blocklist?wait=60", &s.cern_admin);
    assert_eq!(whole.status, 200, "{whole:?}");
    let stale = s.server.http().get_with_headers(
        "/v1/sites/CERN-PROD/blocklist?wait=60",
        &s.cern_admin,
        &[("If-None-Match", "\"CERN-PROD-0\"")],
    );
    assert_eq!(stale.status, 200, "{stale:?}");
    assert_eq!(metric(&s, "tokenledger_blocklist_waiting"), 0);

    // Nothing changes: held open, then 304 at the end of the wait.
    let quiet = long_poll(&s, "CERN-PROD", &s.cern_admin, &etag, 3);
    await_metric(&s, "tokenledger_blocklist_waiting", 1);
    let quiet = quiet.join().unwrap();
    assert_eq!(quiet.status, 304, "{quiet:?}");
    assert_eq!(quiet.etag.as_deref(), Some(etag.as_str()));
    await_metric(&s, "tokenledger_blocklist_waiting", 0);

    // A suspension at RAL wakes CERN's waiter, which looks at its own blocklist and keeps
    // waiting; CERN's own suspension then answers it with the new sequence.
    let waiter = long_poll(&s, "CERN-PROD", &s.cern_admin, &etag, 60);
    await_metric(&s, "tokenledger_blocklist_waiting", 1);
    let rechecks = metric(&s, "tokenledger_blocklist_rechecks_total");
    s.suspend_behind("RAL-LCG2", &s.ral_admin, "t1");
    let started = std::time::Instant::now();
    while metric(&s, "tokenledger_blocklist_rechecks_total") == rechecks {
        assert!(
            !waiter.is_finished(),
            "answered after a change elsewhere: {:?}",
            waiter.join()
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(60));
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(
        metric(&s, "tokenledger_blocklist_waiting"),
        1,
        "still waiting after a change elsewhere"
    );
    let cern = s.suspend_behind("CERN-PROD", &s.cern_admin, "t1");
    let answered = waiter.join().unwrap();
    assert_eq!(answered.status, 200, "{answered:?}");
    let signed: SignedBlocklist = serde_json::from_str(&answered.body).unwrap();
    assert_eq!(signed.document.sequence, before.document.sequence + 1);
    assert_eq!(
        signed.document.entries[0].suspension_id,
        cern["id"].as_str().unwrap()
    );
    assert_eq!(
        answered.etag,
        Some(format!("\"CERN-PROD-{}\"", signed.document.sequence))
    );

    // A suspension that ends on its own wakes the waiter when it ends: with a wait (8 s)
    // shorter than the periodic look (10 s), only that wake-up can answer 200.
    s.ingest(&s.atlas, "atlas", "t2", "bob");
    let bob = s.pseudonym("CERN-PROD", &s.cern_admin, "t2");
    let expiring = s.post(
        "/v1/sites/CERN-PROD/suspensions",
        &s.cern_admin,
        json!({"pseudonym": bob, "reason": "INC-10", "expires_at": now_secs() + 3}),
    );
    assert_eq!(expiring.status, 201, "{expiring:?}");
    let (with_bob, reply) = s.blocklist("CERN-PROD", &s.cern_admin);
    assert_eq!(with_bob.document.entries.len(), 2);
    let ended = long_poll(&s, "CERN-PROD", &s.cern_admin, &reply_etag(&reply), 8)
        .join()
        .unwrap();
    assert_eq!(ended.status, 200, "{ended:?}");
    let signed: SignedBlocklist = serde_json::from_str(&ended.body).unwrap();
    assert_eq!(signed.document.entries.len(), 1, "bob's suspension ended");
    assert!(signed.document.sequence > with_bob.document.sequence);
}
