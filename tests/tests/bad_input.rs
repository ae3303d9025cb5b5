//! Bad input against the real server: every refusal is the right 4xx with the API's JSON error
//! shape, and changes nothing (the log size from `/healthz` stays the same). Positive controls
//! beside the refusals show the same requests succeed when they are well formed.

use jsonwebtoken::Algorithm;
use serde_json::{Value, json};
use tokenledger_e2e::both_backends;
use tokenledger_e2e::issuer::TestIssuer;
use tokenledger_e2e::{Http, Reply, TestServer, batch, db, issuer_of, report};

/// A server with a few entries, an admin and two issuer credentials.
struct Fixture {
    server: TestServer,
    http: Http,
    admin: String,
    atlas: String,
    cms: String,
    /// The log size every refusal must leave behind.
    size: u64,
    _tmp: tempfile::TempDir,
}

impl Fixture {
    fn new(seed_entries: usize) -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let server = TestServer::start(tmp.path());
        let admin = server.admin_secret().to_string();
        let atlas = server.create_issuer("atlas");
        let cms = server.create_issuer("cms");
        let http = server.http();
        if seed_entries > 0 {
            let jtis: Vec<String> = (0..seed_entries).map(|i| format!("seed-{i}")).collect();
            let reply = http.append(&atlas, &batch(&jtis, "atlas"));
            assert_eq!(reply.status, 201, "{reply:?}");
        }
        let size = http.log_size();
        assert_eq!(size, seed_entries as u64);
        Fixture {
            server,
            http,
            admin,
            atlas,
            cms,
            size,
            _tmp: tmp,
        }
    }

    /// Asserts the refusal (status, code, JSON shape) and that the log did not change.
    fn refused(&self, what: &str, reply: Reply, status: u16, code: &str) {
        eprintln!("{what}: {} {}", reply.status, reply.body);
        reply.assert_error(status, code);
        assert_eq!(self.http.log_size(), self.size, "{what} changed the log");
    }

    fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.http.get(path, token)
    }

    /// `POST /v1/issuances` with raw bytes and a JSON content type.
    fn post_raw(&self, token: &str, body: &[u8]) -> Reply {
        self.http.send(
            "POST",
            "/v1/issuances",
            Some(token),
            Some("application/json"),
            Some(body),
        )
    }

    /// Appends that must succeed (201), growing the expected size.
    fn appended(&mut self, reply: Reply, entries: u64) -> Value {
        assert_eq!(reply.status, 201, "{reply:?}");
        self.size += entries;
        assert_eq!(self.http.log_size(), self.size);
        reply.json()
    }
}

both_backends!(a_page_of_entries_is_cut_at_1000);
/// A page asks for any range; it holds at most 1000 entries (as RFC 6962 `get-entries`), and
/// the next one starts where it ended.
fn a_page_of_entries_is_cut_at_1000() {
    let f = Fixture::new(1000);
    let reply = f.http.append(&f.atlas, &report("one-more", "atlas"));
    assert_eq!(reply.status, 201, "{reply:?}");
    let admin = Some(f.admin.as_str());
    let indexes = |path: &str| -> Vec<u64> {
        let reply = f.get(path, admin);
        assert_eq!(reply.status, 200, "{reply:?}");
        let json = reply.json();
        let entries = json["entries"].as_array().unwrap();
        entries
            .iter()
            .map(|e| e["index"].as_u64().unwrap())
            .collect()
    };
    let first = indexes("/v1/log/entries?start=0&end=1001");
    assert_eq!(first, (0..1000).collect::<Vec<u64>>());
    assert_eq!(indexes("/v1/log/entries?start=1000&end=5000"), [1000]);
}

both_backends!(proof_and_entry_queries_out_of_range_are_400_and_beyond_the_log_404);
fn proof_and_entry_queries_out_of_range_are_400_and_beyond_the_log_404() {
    let f = Fixture::new(10);
    let admin = Some(f.admin.as_str());

    // Controls: the edges that are inside the log work.
    let ok = f.get("/v1/log/proof/inclusion?index=9&size=10", None);
    assert_eq!(ok.status, 200, "{ok:?}");
    assert_eq!(ok.json()["hashes"].as_array().unwrap().len(), 2);
    let ok = f.get("/v1/log/proof/consistency?from=0&to=10", None);
    assert_eq!(ok.status, 200, "{ok:?}");
    assert_eq!(ok.json()["hashes"], json!([]), "from 0 is an empty proof");
    let ok = f.get("/v1/log/proof/consistency?from=10&to=10", None);
    assert_eq!(ok.status, 200, "{ok:?}");
    let pages = [
        ("/v1/log/entries?start=9&end=1009", 1, "a full page"),
        ("/v1/log/entries?start=0&end=1001", 10, "a page of 1001"),
        (
            "/v1/log/entries?start=0&end=9223372036854775807",
            10,
            "a huge page",
        ),
    ];
    for (path, entries, what) in pages {
        let ok = f.get(path, admin);
        assert_eq!(ok.status, 200, "{what} is cut at the log's end: {ok:?}");
        assert_eq!(
            ok.json()["entries"].as_array().unwrap().len(),
            entries,
            "{what}"
        );
    }

    let bad = [
        ("/v1/log/proof/inclusion?index=10&size=10", "index = size"),
        ("/v1/log/proof/inclusion?index=11&size=10", "index > size"),
        ("/v1/log/proof/inclusion?index=0&size=0", "empty tree"),
        (
            "/v1/log/proof/inclusion?index=0&size=18446744073709551615",
            "size beyond int64",
        ),
        (
            "/v1/log/proof/inclusion?index=abc&size=10",
            "non-numeric index",
        ),
        ("/v1/log/proof/inclusion?index=-1&size=10", "negative index"),
        ("/v1/log/proof/inclusion?index=0", "missing size"),
        ("/v1/log/proof/inclusion", "no parameters"),
        ("/v1/log/proof/consistency?from=5&to=3", "from > to"),
        ("/v1/log/proof/consistency?from=x&to=3", "non-numeric from"),
        ("/v1/log/proof/consistency?from=1", "missing to"),
    ];
    for (path, what) in bad {
        f.refused(what, f.get(path, None), 400, "bad_request");
    }
    // A tree the log has not grown to yet is not found, like the proof asked of it.
    let beyond = [
        (
            "/v1/log/proof/inclusion?index=0&size=11",
            "size > current size",
        ),
        (
            "/v1/log/proof/inclusion?index=0&size=9223372036854775807",
            "size i64::MAX",
        ),
        (
            "/v1/log/proof/consistency?from=0&to=11",
            "to > current size",
        ),
        (
            "/v1/log/proof/consistency?from=11&to=11",
            "from = to > size",
        ),
    ];
    for (path, what) in beyond {
        f.refused(what, f.get(path, None), 404, "not_found");
    }

    let bad_pages = [
        (
            "/v1/log/entries?start=9223372036854775808&end=9223372036854775809",
            "start beyond int64",
        ),
        ("/v1/log/entries?start=5&end=5", "start = end"),
        ("/v1/log/entries?start=6&end=5", "start > end"),
        ("/v1/log/entries?start=zero&end=5", "non-numeric start"),
        ("/v1/log/entries?start=0", "missing end"),
    ];
    for (path, what) in bad_pages {
        f.refused(what, f.get(path, admin), 400, "bad_request");
    }
    // Paging bounds are int64 too: one beyond wrapped to a negative SQL bound (an empty page).
    f.refused(
        "a paging bound beyond int64",
        f.get(
            "/v1/vos/atlas/resolutions?before=9223372036854775808",
            admin,
        ),
        400,
        "bad_request",
    );
    for (path, what) in [
        ("/v1/log/entries?start=10&end=11", "start = size"),
        ("/v1/log/entries?start=500&end=600", "start > size"),
    ] {
        f.refused(what, f.get(path, admin), 404, "not_found");
    }

    // Entries carry personal data: no credential 401, an issuer 403.
    let path = "/v1/log/entries?start=0&end=1";
    f.refused(
        "entries without credential",
        f.get(path, None),
        401,
        "unauthenticated",
    );
    f.refused(
        "entries with an unknown credential",
        f.get(path, Some("tlk_notacredential")),
        401,
        "unauthenticated",
    );
    f.refused(
        "entries as an issuer",
        f.get(path, Some(&f.atlas)),
        403,
        "forbidden",
    );
}

both_backends!(malformed_bodies_are_refused);
fn malformed_bodies_are_refused() {
    let f = Fixture::new(3);
    let token = f.atlas.as_str();

    let bad_json: [(&str, &[u8]); 8] = [
        ("truncated JSON", br#"{"claims": {"jti": "a""#),
        ("trailing garbage", br#"{"claims": {}} x"#),
        ("empty body", b""),
        ("not UTF-8", b"{\"claims\": {\"jti\": \"\xff\xfe\"}}"),
        ("a string", br#""hello""#),
        ("a number", b"42"),
        ("null", b"null"),
        ("an empty array", b"[]"),
    ];
    for (what, body) in bad_json {
        f.refused(what, f.post_raw(token, body), 400, "bad_request");
    }

    let one_good = report("never-logged-1", "atlas");
    let too_many = Value::Array(vec![one_good.clone(); 1001]);
    let bad_shapes = [
        ("1001 reports", too_many),
        ("no claims", json!({})),
        (
            "unknown field beside claims",
            json!({"claims": one_good["claims"].clone(), "vo": "atlas"}),
        ),
        ("claims not an object", json!({"claims": ["jti", "x"]})),
        ("claims null", json!({"claims": null})),
        ("a batch with a non-object", json!([one_good.clone(), 5])),
        (
            "a batch with an unknown field",
            json!([one_good.clone(), {"claims": one_good["claims"].clone(), "extra": 1}]),
        ),
        ("nested arrays", json!([[one_good.clone()]])),
    ];
    for (what, body) in bad_shapes {
        f.refused(what, f.http.append(token, &body), 400, "bad_request");
    }

    // Content type: JSON only.
    let body = one_good.to_string();
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let reply = f.http.send(
            "POST",
            "/v1/issuances",
            Some(token),
            content_type,
            Some(body.as_bytes()),
        );
        f.refused(
            &format!("content type {content_type:?}"),
            reply,
            415,
            "unsupported_media_type",
        );
    }

    // Over the 8 MiB body limit.
    let mut big = report("too-big", "atlas");
    big["claims"]["padding"] = Value::String("x".repeat(9 * 1024 * 1024));
    // Each attempt on a client of its own. The server answers 413 without reading the rest of
    // the body and then closes the connection (without `Connection: close`): a pooled
    // connection would be dead for the next request, and a client still writing the body may
    // get a broken pipe instead of the answer (a few percent of attempts on a loaded machine;
    // see the report). So a transport error is retried, a bounded number of times, and the
    // 413 must come at least once.
    let body = big.to_string();
    let mut failures = Vec::new();
    let reply = (0..5)
        .find_map(|_| {
            Http::new(&f.http.url(""))
                .try_send(
                    "POST",
                    "/v1/issuances",
                    Some(token),
                    Some("application/json"),
                    Some(body.as_bytes()),
                )
                .map_err(|e| failures.push(e.to_string()))
                .ok()
        })
        .unwrap_or_else(|| panic!("no answer to an oversized body in 5 attempts: {failures:?}"));
    f.refused("9 MiB body", reply, 413, "payload_too_large");

    // Control: the very report used above is accepted when well formed.
    let reply = f.http.append(token, &one_good);
    assert_eq!(reply.status, 201, "{reply:?}");
}

both_backends!(invalid_claims_are_422_and_a_bad_report_spoils_its_whole_batch);
fn invalid_claims_are_422_and_a_bad_report_spoils_its_whole_batch() {
    let mut f = Fixture::new(2);
    let token = f.atlas.clone();
    let without = |claim: &str| {
        let mut r = report("claims-test", "atlas");
        r["claims"].as_object_mut().unwrap().remove(claim);
        r
    };
    let with = |claim: &str, value: Value| {
        let mut r = report("claims-test", "atlas");
        r["claims"][claim] = value;
        r
    };

    let invalid: Vec<(&str, Value)> = vec![
        ("missing jti", without("jti")),
        ("missing iss", without("iss")),
        ("missing sub", without("sub")),
        ("null jti", with("jti", Value::Null)),
        ("numeric jti", with("jti", json!(5))),
        ("object sub", with("sub", json!({}))),
        ("empty jti", with("jti", json!(""))),
        ("control character in jti", with("jti", json!("a\u{1}b"))),
        ("jti over 1024 bytes", with("jti", json!("j".repeat(1025)))),
        ("string iat", with("iat", json!("1700000000"))),
        ("negative exp", with("exp", json!(-1))),
        ("float iat", with("iat", json!(1.5))),
        ("float claim", with("weight", json!(0.5))),
        (
            "nested float claim",
            with("nested", json!({"a": [1, 2.25]})),
        ),
        ("numeric scope", with("scope", json!(7))),
    ];
    // Each refused from the VO's issuer and from the admin (who may report for any VO).
    for (what, body) in &invalid {
        f.refused(what, f.http.append(&token, body), 422, "invalid_claims");
        f.refused(what, f.http.append(&f.admin, body), 422, "invalid_claims");
    }
    // A boolean `iss` cannot be matched to the credential's issuer binding: 422 or 403.
    let reply = f.http.append(&token, &with("iss", json!(true)));
    assert!(matches!(reply.status, 403 | 422), "{reply:?}");
    f.refused(
        "boolean iss (admin)",
        f.http.append(&f.admin, &with("iss", json!(true))),
        422,
        "invalid_claims",
    );
    // The admin has no VO of its own: the claims must name one, as a string.
    for (what, body) in [
        ("missing vo", without("vo")),
        ("null vo", with("vo", Value::Null)),
        ("list vo", with("vo", json!(["atlas"]))),
        ("numeric vo", with("vo", json!(5))),
    ] {
        f.refused(what, f.http.append(&f.admin, &body), 422, "invalid_claims");
    }
    for vo in ["nosuchvo", "ATLAS", "atlas ", ""] {
        let reply = f.http.append(&f.admin, &with("vo", json!(vo)));
        assert_eq!(reply.status, 422, "vo {vo:?}: {reply:?}");
        let code = reply.json()["error"]["code"].clone();
        assert!(
            code == "unknown_vo" || code == "invalid_claims",
            "vo {vo:?}: {reply:?}"
        );
        assert_eq!(f.http.log_size(), f.size);
    }
    // An exponent is a float in JSON, whatever its value.
    let exponent = br#"{"claims": {"jti": "e", "iss": "https://atlas-auth.example.org/", "sub": "s", "vo": "atlas", "iat": 1e9}}"#;
    f.refused(
        "exponent iat",
        f.post_raw(&token, exponent),
        422,
        "invalid_claims",
    );

    let unknown_vo = report("unknown-vo", "nosuchvo");
    f.refused(
        "unknown VO",
        f.http.append(&f.admin, &unknown_vo),
        422,
        "unknown_vo",
    );

    // One float in the middle of a batch: the whole batch is refused, nothing appended.
    let mut reports: Vec<Value> = (0..5)
        .map(|i| report(&format!("batch-float-{i}"), "atlas"))
        .collect();
    reports[3]["claims"]["ratio"] = json!(0.75);
    let reply = f.http.append(&token, &Value::Array(reports));
    f.refused("a batch with a float", reply, 422, "invalid_claims");

    // Controls: the good reports of that batch, and large integers, are accepted.
    let good: Vec<String> = (0..5).map(|i| format!("batch-float-{i}")).collect();
    let json = f.appended(f.http.append(&token, &batch(&good, "atlas")), 5);
    let statuses: Vec<&Value> = json["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["status"])
        .collect();
    assert!(statuses.iter().all(|s| *s == "created"), "{json}");
    let mut ints = with("big", json!(u64::MAX));
    ints["claims"]["jti"] = json!("big-ints");
    ints["claims"]["small"] = json!(i64::MIN);
    f.appended(f.http.append(&token, &ints), 1);
}

both_backends!(credentials_are_checked_and_a_foreign_vo_spoils_its_whole_batch);
fn credentials_are_checked_and_a_foreign_vo_spoils_its_whole_batch() {
    let mut f = Fixture::new(1);
    let body = report("auth-test", "atlas");
    let body = body.to_string();
    let send_with_header = |header: Option<&str>| {
        f.http.send_with_authorization(
            "POST",
            "/v1/issuances",
            header,
            Some("application/json"),
            Some(body.as_bytes()),
        )
    };
    let atlas_auth = format!("Bearer {}", f.atlas);
    let unauthenticated = [
        ("no Authorization", None),
        (
            "unknown tlk_ secret",
            Some("Bearer tlk_aaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
        ),
        ("empty bearer", Some("Bearer ")),
        ("not a tlk_ secret", Some("Bearer eyJhbGciOiJub25lIn0.e30.")),
        ("basic scheme", Some("Basic YWRtaW46YWRtaW4=")),
        ("secret without scheme", Some(f.atlas.as_str())),
        ("two secrets", Some(&*format!("{atlas_auth} {atlas_auth}"))),
    ];
    for (what, header) in unauthenticated {
        f.refused(what, send_with_header(header), 401, "unauthenticated");
    }
    // Control: the same request with the right header is accepted.
    f.appended(send_with_header(Some(&atlas_auth)), 1);

    // Revocation works at once, while the server runs.
    let iss = issuer_of("atlas");
    let revocable = f
        .server
        .credential(&["--role", "issuer", "--vo", "atlas", "--issuer", &iss]);
    f.appended(
        f.http
            .append(&revocable.secret, &report("before-revoke", "atlas")),
        1,
    );
    f.server.revoke_credential(&revocable.id);
    f.refused(
        "revoked credential",
        f.http
            .append(&revocable.secret, &report("after-revoke", "atlas")),
        401,
        "unauthenticated",
    );

    // Another VO's issuer: 403 for a single report and for a batch holding one.
    f.refused(
        "cms issuer reporting atlas",
        f.http.append(&f.cms, &report("wrong-vo", "atlas")),
        403,
        "forbidden",
    );
    let mixed = json!([
        report("mixed-0", "atlas"),
        report("mixed-1", "atlas"),
        report("mixed-2", "cms"),
        report("mixed-3", "atlas"),
    ]);
    f.refused(
        "atlas issuer, batch with a cms report",
        f.http.append(&f.atlas, &mixed),
        403,
        "forbidden",
    );
    // An issuer credential that is not bound to the claims' `iss` may not report them.
    let unbound = f.server.create_credential("issuer", Some("atlas"));
    f.refused(
        "issuer credential without --issuer reporting claims",
        f.http.append(&unbound, &report("unbound", "atlas")),
        403,
        "forbidden",
    );
    let mut foreign_iss = report("foreign-iss", "atlas");
    foreign_iss["claims"]["iss"] = json!("https://somebody-else.example.org/");
    f.refused(
        "claims of another iss",
        f.http.append(&f.atlas, &foreign_iss),
        403,
        "forbidden",
    );
    // Roles that may not append at all.
    let auditor = f.server.create_credential("auditor", None);
    let security = f.server.create_credential("vo-security", Some("atlas"));
    for (what, token) in [("auditor", &auditor), ("vo-security", &security)] {
        f.refused(
            what,
            f.http.append(token, &report("not-an-issuer", "atlas")),
            403,
            "forbidden",
        );
    }
    // A VO-bound auditor may not read entries (they carry every VO's people); a ledger-wide
    // one may.
    let vo_auditor = f.server.create_credential("auditor", Some("atlas"));
    f.refused(
        "VO-bound auditor reading entries",
        f.get("/v1/log/entries?start=0&end=1", Some(&vo_auditor)),
        403,
        "forbidden",
    );
    let ok = f.get("/v1/log/entries?start=0&end=1", Some(&auditor));
    assert_eq!(ok.status, 200, "{ok:?}");

    // None of the refused batch was logged: each of its atlas reports is new now.
    let json = f.appended(
        f.http.append(
            &f.atlas,
            &batch(&["mixed-0", "mixed-1", "mixed-3", "wrong-vo"], "atlas"),
        ),
        4,
    );
    for r in json["results"].as_array().unwrap() {
        assert_eq!(r["status"], "created", "{json}");
    }
    // And the cms issuer may report cms.
    f.appended(f.http.append(&f.cms, &report("mixed-2", "cms")), 1);
}

both_backends!(sql_metacharacters_are_stored_as_data_and_round_trip);
fn sql_metacharacters_are_stored_as_data_and_round_trip() {
    let mut f = Fixture::new(4);
    let token = f.atlas.clone();
    let nasty = [
        "x'); DROP TABLE entries;--",
        "' OR '1'='1",
        "\" OR \"\"=\"",
        "%",
        "_",
        "a\\'b; DELETE FROM issuances WHERE 1=1; --",
        "Robert'); DROP TABLE credentials;-- ☃ 𝄞",
    ];
    let mut logged = Vec::new();
    for jti in nasty {
        let mut r = report(jti, "atlas");
        r["claims"]["sub"] = json!(format!("{jti} (sub)"));
        r["claims"]["note"] = json!({ "q": jti, "list": [jti] });
        let reply = f.http.append(&token, &r);
        let json = f.appended(reply, 1);
        assert_eq!(json["status"], "created", "{jti}: {json}");
        logged.push((jti, json["index"].as_u64().unwrap()));
    }

    for (jti, index) in &logged {
        let page = f.http.entries(&f.admin, *index, index + 1);
        let entry = &page[0].entry;
        assert_eq!(entry["jti"], *jti);
        assert_eq!(entry["sub"], format!("{jti} (sub)"));
        assert_eq!(entry["iss"], issuer_of("atlas"));
        assert_eq!(entry["claims"]["note"], json!({ "q": jti, "list": [jti] }));

        // The same report again is a duplicate of exactly this entry.
        let again = f.http.append(&token, &report(jti, "atlas"));
        assert_eq!(again.status, 200, "{jti}: {again:?}");
        assert_eq!(again.json()["status"], "duplicate");
        assert_eq!(again.json()["index"], *index);
    }
    // A near miss is another token, not a match.
    let near = f
        .http
        .append(&token, &report("x'); DROP TABLE entries;-- ", "atlas"));
    assert_eq!(f.appended(near, 1)["status"], "created");

    // The tables are all there and agree with the log.
    let (entries, _, issuances) = db::row_counts(&f.server.db());
    assert_eq!(entries, f.size);
    assert_eq!(issuances, f.size);
    let key = f.server.log_key();
    let index = logged[0].1.to_string();
    f.server
        .verify(&key, &["--entry", &index, "--token", &f.admin])
        .assert_verified();
}

both_backends!(a_conflicting_report_for_a_logged_jti_changes_nothing);
fn a_conflicting_report_for_a_logged_jti_changes_nothing() {
    let mut f = Fixture::new(2);
    let first = f.appended(f.http.append(&f.atlas, &report("conflict", "atlas")), 1);
    let index = first["index"].as_u64().unwrap();

    let mut other = report("conflict", "atlas");
    other["claims"]["sub"] = json!("somebody-else");
    let reply = f.http.append(&f.atlas, &other);
    match reply.status {
        200 => {
            let json = reply.json();
            assert_eq!(json["status"], "duplicate", "{json}");
            assert_eq!(json["index"], index, "{json}");
            assert_eq!(json["leaf_hash"], first["leaf_hash"], "{json}");
        }
        _ => reply.assert_error(409, "conflict"),
    }
    assert_eq!(f.http.log_size(), f.size);
    let stored = f.http.entries(&f.admin, index, index + 1);
    assert_eq!(
        stored[0].entry["sub"],
        report("conflict", "atlas")["claims"]["sub"]
    );

    // The key is (jti, iss): the same jti from another issuer is another token (reported by
    // the admin, who may report claims of any issuer).
    let mut elsewhere = report("conflict", "atlas");
    elsewhere["claims"]["iss"] = json!("https://other-atlas-issuer.example.org/");
    let json = f.appended(f.http.append(&f.admin, &elsewhere), 1);
    assert_eq!(json["status"], "created");
    assert_eq!(json["index"], index + 1);
}

both_backends!(unknown_routes_are_404_and_wrong_methods_405);
fn unknown_routes_are_404_and_wrong_methods_405() {
    let f = Fixture::new(1);
    let admin = Some(f.admin.as_str());
    for path in [
        "/",
        "/v1",
        "/v1/nope",
        "/v1/log/proof",
        "/v2/issuances",
        "/healthz/x",
    ] {
        f.refused(path, f.get(path, admin), 404, "not_found");
    }
    let body = report("method-test", "atlas").to_string();
    let wrong = [
        ("GET", "/v1/issuances"),
        ("DELETE", "/v1/issuances"),
        ("PUT", "/v1/issuances"),
        ("PATCH", "/v1/issuances"),
        ("POST", "/v1/log/checkpoint"),
        ("DELETE", "/v1/log/checkpoint"),
        ("POST", "/v1/log/entries"),
        ("PUT", "/v1/log/key"),
        ("POST", "/healthz"),
    ];
    for (method, path) in wrong {
        let with_body = matches!(method, "POST" | "PUT" | "PATCH").then_some(body.as_bytes());
        let reply = f
            .http
            .send(method, path, admin, Some("application/json"), with_body);
        f.refused(
            &format!("{method} {path}"),
            reply,
            405,
            "method_not_allowed",
        );
    }
    // Controls.
    assert_eq!(f.get("/metrics", None).status, 200);
    assert_eq!(f.get("/healthz", None).status, 200);
}

both_backends!(a_wrong_typed_vo_claim_is_422_even_from_a_vo_bound_issuer);
/// BUG (server, `claims_vo` in server/src/api/issuances.rs with `Issuance::from_claims` in
/// core/src/entry.rs): a `vo` claim that is not a string is silently dropped when the
/// credential is bound to a VO, and the report is logged (201) under the credential's VO.
/// Wrong-typed claims must be 422 `invalid_claims`, as they are from the admin credential.
fn a_wrong_typed_vo_claim_is_422_even_from_a_vo_bound_issuer() {
    let f = Fixture::new(1);
    for (i, vo) in [
        json!(["cms"]),
        json!(5),
        json!({"name": "atlas"}),
        json!(true),
    ]
    .into_iter()
    .enumerate()
    {
        let mut body = report(&format!("typed-vo-{i}"), "atlas");
        body["claims"]["vo"] = vo.clone();
        f.refused(
            &format!("vo {vo} from the atlas issuer"),
            f.http.append(&f.atlas, &body),
            422,
            "invalid_claims",
        );
    }
}

both_backends!(strings_with_u0000_are_400_on_either_engine);
/// U+0000 in any string a request carries (a JSON body, an NDJSON line, a path segment, a
/// query value, a signed token's claims) is 400 `bad_request` and changes nothing: the
/// PostgreSQL engine cannot store it in TEXT, so the edge refuses it on either engine. A
/// backslash before `u0000` (the text `\u0000`, no NUL) is data and is logged.
fn strings_with_u0000_are_400_on_either_engine() {
    const SITE: &str = "CERN-PROD";
    let dir = tempfile::tempdir().unwrap();
    let issuer = TestIssuer::new("https://atlas-nul.example/");
    let config = format!(
        "{}\n[[site]]\nname = \"{SITE}\"\nvos = [\"atlas\"]\n",
        issuer.file_config_block(
            &dir.path().join("jwks.json"),
            "[{ rule = \"fixed\", vo = \"atlas\" }]"
        )
    );
    let server = TestServer::start_with_config(&dir.path().join("data"), &config);
    let http = server.http();
    let atlas = server.create_issuer("atlas");
    let officer = server.create_credential("vo-security", Some("atlas"));
    let site_admin = server
        .credential(&["--role", "site-admin", "--site", SITE])
        .secret;
    assert_eq!(
        http.append(&atlas, &report("nul-seed", "atlas")).status,
        201
    );
    let pseudonym = http
        .get(
            &format!("/v1/sites/{SITE}/tokens/nul-seed/pseudonym"),
            Some(&site_admin),
        )
        .json()["pseudonym"]
        .as_str()
        .unwrap()
        .to_string();
    let suspension = http.post_json(
        &format!("/v1/sites/{SITE}/suspensions"),
        Some(&site_admin),
        &json!({"jti": "nul-seed", "target": "token", "reason": "NUL-1"}),
    );
    assert_eq!(suspension.status, 201, "{suspension:?}");
    let lift = format!(
        "/v1/sites/{SITE}/suspensions/{}",
        suspension.json()["id"].as_str().unwrap()
    );
    let mut size = http.log_size();
    let refused = |what: &str, reply: Reply, size: u64| {
        eprintln!("{what}: {} {}", reply.status, reply.body);
        reply.assert_error(400, "bad_request");
        let message = reply.json()["error"]["message"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(message.contains("U+0000"), "{what}: {message}");
        assert_eq!(http.log_size(), size, "{what} changed the log");
    };

    // JSON bodies: the fuzzer's request, an unsigned claims report, a batch (a lift's body:
    // a unit test of `lift_reason`, as the harness sends no DELETE body).
    let body = br#"{"scope":"compute","pseudonym":"\u00e5\u0000x","evidence":"a"}"#;
    let reply = http.send(
        "POST",
        &format!("/v1/sites/{SITE}/suspension-requests"),
        Some(&site_admin),
        Some("application/json"),
        Some(body),
    );
    refused("suspension request", reply, size);
    let request = json!({"pseudonym": pseudonym, "evidence": "a\u{0}"});
    let reply = http.post_json(
        &format!("/v1/sites/{SITE}/suspension-requests"),
        Some(&site_admin),
        &request,
    );
    refused("suspension request evidence", reply, size);
    let mut claims_report = report("nul-claims", "atlas");
    claims_report["claims"]["sub"] = json!("a\u{0}b");
    refused("claims report", http.append(&atlas, &claims_report), size);
    refused(
        "batch",
        http.append(&atlas, &json!([report("nul-ok", "atlas"), claims_report])),
        size,
    );

    // A signed token whose claims carry U+0000 (base64 in the body, so only its claims can).
    let mut claims = issuer.claims("nul-jwt", "person\u{0}1");
    let token = issuer.mint(Algorithm::ES256, &claims);
    refused(
        "token claims",
        http.append(&atlas, &json!({ "token": token })),
        size,
    );

    // NDJSON: the bad lines are refused on their own, the good line is logged.
    let mut lines = serde_json::to_vec(&report("nul-line-ok", "atlas")).unwrap();
    lines.push(b'\n');
    lines.extend(serde_json::to_vec(&claims_report).unwrap());
    lines.push(b'\n');
    lines.extend(serde_json::to_vec(&json!({ "token": token })).unwrap());
    lines.push(b'\n');
    let reply = http.send(
        "POST",
        "/v1/issuances",
        Some(&atlas),
        Some("application/x-ndjson"),
        Some(&lines),
    );
    assert_eq!(reply.status, 200, "{reply:?}");
    let results: Vec<Value> = reply
        .body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(results.len(), 3, "{results:?}");
    assert_eq!(results[0]["status"], "created", "{results:?}");
    for (result, line) in results[1..].iter().zip([2, 3]) {
        assert_eq!(result["line"], line, "{result}");
        assert_eq!(result["error"]["code"], "bad_request", "{result}");
    }
    size += 1;
    assert_eq!(http.log_size(), size);

    // Path segments and query values (%00).
    let officer_get = |path: &str| http.get(path, Some(&officer));
    refused(
        "jti in the path",
        officer_get("/v1/vos/atlas/tokens/nul%00seed?reason=NUL-1"),
        size,
    );
    refused(
        "site in the path",
        http.post_json(
            "/v1/sites/CERN%00PROD/suspension-requests",
            Some(&site_admin),
            &json!({"pseudonym": pseudonym, "evidence": "a"}),
        ),
        size,
    );
    refused(
        "reason in the query",
        officer_get("/v1/vos/atlas/tokens/nul-seed?reason=NUL%00-1"),
        size,
    );
    refused(
        "lift reason in the query",
        http.send(
            "DELETE",
            &format!("{lift}?reason=a%00b"),
            Some(&site_admin),
            None,
            None,
        ),
        size,
    );
    let audit = http.get("/v1/vos/atlas/resolutions", Some(&officer));
    assert_eq!(audit.status, 200, "{audit:?}");
    assert_eq!(
        audit.json()["resolutions"],
        json!([]),
        "a refused resolution was audited"
    );

    // Controls: the text `\u0000` (a backslash, then `u0000`) and `%2500` (the text `%00`)
    // are data, and the well-formed requests above succeed.
    let reply = officer_get("/v1/vos/atlas/tokens/nul-seed?reason=NUL%2500-1");
    assert_eq!(reply.status, 200, "{reply:?}");
    claims["sub"] = json!(r"person\u00001");
    let reply = http.append(
        &atlas,
        &json!({ "token": issuer.mint(Algorithm::ES256, &claims) }),
    );
    assert_eq!(reply.status, 201, "{reply:?}");
    claims_report["claims"]["sub"] = json!(r"a\u0000b");
    let reply = http.append(&atlas, &claims_report);
    assert_eq!(reply.status, 201, "{reply:?}");
    let index = reply.json()["index"].as_u64().unwrap();
    let page = http.entries(server.admin_secret(), index, index + 1);
    assert_eq!(page[0].entry["sub"], r"a\u0000b");
    let reply = http.send(
        "DELETE",
        &format!("{lift}?reason=NUL-1"),
        Some(&site_admin),
        None,
        None,
    );
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(
        !server.log_tail().contains("internal error"),
        "{}",
        server.log_tail()
    );
}
