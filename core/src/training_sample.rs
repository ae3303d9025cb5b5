//! Training samples for leaf compression dictionaries: canonical leaves with the same JSON
//! structure and keys but every value that may be personal data replaced by filler, so that a
//! dictionary trained on samples keeps how entries are written and nothing of whom they name.
//! A value is kept when it is on an allow-list or shared by enough subjects (k-anonymity).

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use crate::entry::canonical_json;

/// Top-level keys whose values are never personal data and stay whole in a sample: the entry
/// type, issuers, VOs, sites, fixed vocabularies (scope kind, report source, grant, feed,
/// resolution action). Any other value stays only if it is shared ([`K_SUBJECTS`]).
pub const KEPT_KEYS: [&str; 11] = [
    "action",
    "client_iss",
    "feed",
    "grant_type",
    "iss",
    "scope",
    "site",
    "source",
    "token_iss",
    "type",
    "vo",
];

/// Top-level keys whose values name an entry's author (an operator, a reporting site's
/// credential), not its subject: always filled, however many subjects share one. The
/// subjects an author acts on say nothing of whether the author is one person.
pub const AUTHOR_KEYS: [&str; 5] = [
    "created_by",
    "lifted_by",
    "linked_by",
    "reported_by",
    "requester",
];

/// Version claims kept among a token's other claims (`claims`).
pub const KEPT_CLAIMS: [&str; 1] = ["wlcg.ver"];

/// How many distinct subjects must have a value (at one path) among the leaves of a sample
/// set for it to stay whole in their samples: a value that many people share (an audience, a
/// VO-wide group, a portal's client id, a common claim) says nothing of any one of them, while
/// a subject, an e-mail, a person's own group or a personal client occurs with one subject
/// only. The subject of a leaf is its (`iss`, `sub`), else its (`vo`, `person_id`), else the
/// leaf itself.
pub const K_SUBJECTS: usize = 10;

/// The key of the token's scopes: each scope keeps its name up to the first `:`; a path
/// after it (which may name a user's directory) is filled unless the whole scope is shared.
const SCOPES: &str = "scopes";
/// The key of the token's other claims.
const CLAIMS: &str = "claims";

/// The training samples of canonical leaves `leaves`, in order; bytes that are no JSON object
/// give none. Sample `n` is leaf `n`'s canonical JSON with every string filled but under
/// [`KEPT_KEYS`], [`KEPT_CLAIMS`], the names of [`SCOPES`], and, but under [`AUTHOR_KEYS`], a
/// value the leaves of at least [`K_SUBJECTS`] subjects have at the same path (array
/// positions collapsed: `groups[0]` and `groups[3]` are one path). Filler keeps a string's length and its ASCII punctuation and
/// spaces; each other character becomes a pseudo-random one drawn from seed `n`, never from
/// the value, of one alphabet for the whole string (hex digits if the string is hex, else
/// a-z0-9): random like the jtis and digests of real leaves (the dictionary's entropy tables
/// learn their alphabet) yet repeated nowhere, so the dictionary keeps none of it. Numbers at
/// the top level (times, counts, the version) stay; numbers nested deeper (extra claims) stay
/// if shared, else become 0; booleans and nulls stay; keys stay at every level.
pub fn training_samples(leaves: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let leaves: Vec<Map<String, Value>> = leaves
        .iter()
        .filter_map(|leaf| match serde_json::from_slice(leaf) {
            Ok(Value::Object(fields)) => Some(fields),
            _ => None,
        })
        .collect();
    let shared = shared_values(&leaves);
    leaves
        .into_iter()
        .enumerate()
        .filter_map(|(n, fields)| {
            let mut sampler = Sampler {
                filler: Filler(n as u64),
                shared: &shared,
            };
            canonical_json(&Value::Object(sampler.leaf(fields))).ok()
        })
        .collect()
}

/// A value at a path: the path's keys as JSON strings, `[]` for an array position, then the
/// value's JSON text (so a string and a number of the same text differ).
type PathValue = (String, String);

/// The scalar values (strings, numbers) that the leaves of at least [`K_SUBJECTS`] subjects
/// have at the same path.
fn shared_values(leaves: &[Map<String, Value>]) -> HashSet<PathValue> {
    let mut subjects: HashMap<PathValue, HashSet<String>> = HashMap::new();
    for (n, fields) in leaves.iter().enumerate() {
        let subject = subject_of(n, fields);
        let mut values = Vec::new();
        for (key, value) in fields {
            path_values(&json_key(key), value, &mut values);
        }
        for path_value in values {
            let of = subjects.entry(path_value).or_default();
            if of.len() < K_SUBJECTS {
                of.insert(subject.clone());
            }
        }
    }
    subjects
        .into_iter()
        .filter(|(_, of)| of.len() >= K_SUBJECTS)
        .map(|(path_value, _)| path_value)
        .collect()
}

/// Leaf `n`'s subject: `s` and its (`iss`, `sub`), else `p` and its (`vo`, `person_id`), else
/// `l` and `n` (a leaf that names no one is a subject of its own).
fn subject_of(n: usize, fields: &Map<String, Value>) -> String {
    let pair = |a: &str, b: &Value| {
        let a = fields.get(a).cloned().unwrap_or(Value::Null);
        Value::Array(vec![a, b.clone()])
    };
    if let Some(sub) = fields.get("sub") {
        format!("s{}", pair("iss", sub))
    } else if let Some(person) = fields.get("person_id") {
        format!("p{}", pair("vo", person))
    } else {
        format!("l{n}")
    }
}

/// The JSON text of a key, a self-delimiting path segment.
fn json_key(key: &str) -> String {
    Value::String(key.into()).to_string()
}

/// The scalar values under `value` at `path`, each with its path.
fn path_values(path: &str, value: &Value, out: &mut Vec<PathValue>) {
    match value {
        Value::String(_) | Value::Number(_) => out.push((path.to_string(), value.to_string())),
        Value::Array(items) => {
            let path = format!("{path}[]");
            for item in items {
                path_values(&path, item, out);
            }
        }
        Value::Object(fields) => {
            for (key, item) in fields {
                path_values(&format!("{path}{}", json_key(key)), item, out);
            }
        }
        Value::Bool(_) | Value::Null => {}
    }
}

/// Makes the sample of one leaf: values kept or filled.
struct Sampler<'a> {
    filler: Filler,
    shared: &'a HashSet<PathValue>,
}

impl Sampler<'_> {
    fn leaf(&mut self, fields: Map<String, Value>) -> Map<String, Value> {
        fields
            .into_iter()
            .map(|(key, value)| {
                let path = json_key(&key);
                let value = if KEPT_KEYS.contains(&key.as_str()) {
                    value
                } else if AUTHOR_KEYS.contains(&key.as_str()) {
                    self.filler.fill(value)
                } else if key == SCOPES {
                    self.scopes(&path, value)
                } else if key == CLAIMS {
                    self.claims(&path, value)
                } else {
                    match value {
                        Value::Number(n) => Value::Number(n),
                        nested => self.value(&path, nested),
                    }
                };
                (key, value)
            })
            .collect()
    }

    fn is_shared(&self, path: &str, value: &Value) -> bool {
        self.shared.contains(&(path.to_string(), value.to_string()))
    }

    /// `value` at `path` with every string and number kept if shared, else filled (a string)
    /// or 0 (a number), at any depth; keys, booleans and nulls stay.
    fn value(&mut self, path: &str, value: Value) -> Value {
        match value {
            Value::String(_) | Value::Number(_) if self.is_shared(path, &value) => value,
            Value::String(s) => Value::String(self.filler.text(&s)),
            Value::Number(_) => Value::from(0),
            Value::Array(items) => {
                let path = format!("{path}[]");
                Value::Array(items.into_iter().map(|v| self.value(&path, v)).collect())
            }
            Value::Object(fields) => Value::Object(
                fields
                    .into_iter()
                    .map(|(k, v)| {
                        let v = self.value(&format!("{path}{}", json_key(&k)), v);
                        (k, v)
                    })
                    .collect(),
            ),
            other @ (Value::Bool(_) | Value::Null) => other,
        }
    }

    /// Scopes kept if shared, else with their paths filled: `storage.read:/home/alice` becomes
    /// `storage.read:/wxyz/qrstu`; a scope without a path stays. Anything but an array of
    /// strings is kept or filled as any value.
    fn scopes(&mut self, path: &str, value: Value) -> Value {
        match value {
            Value::Array(items) => {
                let path = format!("{path}[]");
                Value::Array(
                    items
                        .into_iter()
                        .map(|item| match item {
                            Value::String(_) if self.is_shared(&path, &item) => item,
                            Value::String(scope) => match scope.split_once(':') {
                                Some((name, scope_path)) => Value::String(format!(
                                    "{name}:{}",
                                    self.filler.text(scope_path)
                                )),
                                None => Value::String(scope),
                            },
                            other => self.value(&path, other),
                        })
                        .collect(),
                )
            }
            other => self.value(path, other),
        }
    }

    /// A token's other claims kept if shared or among [`KEPT_CLAIMS`], else filled.
    fn claims(&mut self, path: &str, value: Value) -> Value {
        match value {
            Value::Object(fields) => Value::Object(
                fields
                    .into_iter()
                    .map(|(k, v)| {
                        let v = if KEPT_CLAIMS.contains(&k.as_str()) {
                            v
                        } else {
                            self.value(&format!("{path}{}", json_key(&k)), v)
                        };
                        (k, v)
                    })
                    .collect(),
            ),
            other => self.value(path, other),
        }
    }
}

/// Pseudo-random filler characters (SplitMix64) from a seed.
struct Filler(u64);

impl Filler {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// `value` with every string filled and every number 0, at any depth; keys, booleans and
    /// nulls stay.
    fn fill(&mut self, value: Value) -> Value {
        match value {
            Value::String(s) => Value::String(self.text(&s)),
            Value::Number(_) => Value::from(0),
            Value::Array(items) => Value::Array(items.into_iter().map(|v| self.fill(v)).collect()),
            Value::Object(fields) => Value::Object(
                fields
                    .into_iter()
                    .map(|(k, v)| {
                        let v = self.fill(v);
                        (k, v)
                    })
                    .collect(),
            ),
            other @ (Value::Bool(_) | Value::Null) => other,
        }
    }

    /// `text` of the same length: ASCII punctuation and spaces kept, every other character
    /// random, of hex digits if all of them are hex digits, else of a-z0-9.
    fn text(&mut self, text: &str) -> String {
        let kept = |c: char| c.is_ascii_punctuation() || c == ' ';
        let alphabet: &[u8] = if text.chars().all(|c| kept(c) || c.is_ascii_hexdigit()) {
            b"0123456789abcdef"
        } else {
            b"abcdefghijklmnopqrstuvwxyz0123456789"
        };
        text.chars()
            .map(|c| {
                if kept(c) {
                    c
                } else {
                    char::from(alphabet[(self.next() % alphabet.len() as u64) as usize])
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::entry::{EntryBody, Issuance, LogEntry, Source, Suspension};

    /// The sample of `leaf` in a set of its own: nothing in it is shared.
    fn only_sample(leaf: &[u8]) -> Vec<u8> {
        let mut samples = training_samples(&[leaf.to_vec()]);
        assert_eq!(samples.len(), 1);
        samples.remove(0)
    }

    fn sample_of(value: Value) -> Value {
        let leaf = canonical_json(&value).unwrap();
        serde_json::from_slice(&only_sample(&leaf)).unwrap()
    }

    /// `value` with each string's characters but ASCII punctuation and spaces as `*`: what
    /// filler keeps of a string.
    fn shape(value: &Value) -> Value {
        match value {
            Value::String(s) => Value::String(
                s.chars()
                    .map(|c| {
                        if c.is_ascii_punctuation() || c == ' ' {
                            c
                        } else {
                            '*'
                        }
                    })
                    .collect(),
            ),
            Value::Array(items) => Value::Array(items.iter().map(shape).collect()),
            Value::Object(fields) => {
                Value::Object(fields.iter().map(|(k, v)| (k.clone(), shape(v))).collect())
            }
            other => other.clone(),
        }
    }

    fn issuance(sub: &str, email: &str) -> Issuance {
        Issuance {
            jti: "7f1c9a52-aaaa-4bbb-8ccc-0123456789ab".into(),
            iss: "https://iam.example.org/".into(),
            sub: sub.into(),
            vo: "atlas".into(),
            client_id: Some(format!("{sub}-laptop")),
            scopes: vec![
                "compute.read".into(),
                format!("storage.read:/home/{sub}"),
                "offline_access".into(),
            ],
            groups: vec![format!("/atlas/users/{sub}")],
            aud: vec!["https://alice.example.org".into()],
            iat: Some(1_700_000_000),
            nbf: None,
            exp: Some(1_700_003_600),
            grant_type: Some("refresh_token".into()),
            parent_jti: Some(format!("parent-of-{sub}")),
            refresh_jti: Some(format!("refresh-of-{sub}")),
            act: Some(json!({"sub": format!("{sub}-agent"), "act": {"sub": "Zoë"}})),
            source: Source::Claims,
            token_sha256: Some("ab".repeat(32)),
            feed: Some("iam-audit".into()),
            claims: [
                ("email".to_string(), json!(email)),
                ("name".to_string(), json!("Alice Liddell")),
                ("uidNumber".to_string(), json!(424242)),
                ("email_verified".to_string(), json!(true)),
                ("wlcg.ver".to_string(), json!("1.0")),
                (
                    "eduperson_entitlement".to_string(),
                    json!(["urn:mace:alice:group", {"owner": "alice", "n": [7, "alice"]}]),
                ),
            ]
            .into_iter()
            .collect(),
        }
    }

    fn leaf_of(issuance: Issuance) -> Vec<u8> {
        LogEntry::new(
            1_700_000_000_123_456,
            EntryBody::Issuance(Box::new(issuance)),
        )
        .canonical_bytes()
        .unwrap()
    }

    #[test]
    fn an_issuance_keeps_its_structure_and_loses_its_subject_jti_client_and_claims() {
        let leaf = leaf_of(issuance("alice-8d1e", "alice.liddell@example.org"));
        let sample = only_sample(&leaf);
        let text = String::from_utf8(sample.clone()).unwrap();
        for personal in [
            "alice",
            "Alice",
            "Liddell",
            "Zoë",
            "424242",
            "7f1c9a52",
            "0123456789ab",
            "abab",
            "8d1e",
            "laptop",
        ] {
            assert!(!text.contains(personal), "{personal} in {text}");
        }
        let sample: Value = serde_json::from_slice(&sample).unwrap();
        assert_eq!(sample["type"], "issuance");
        assert_eq!(sample["iss"], "https://iam.example.org/");
        assert_eq!(sample["vo"], "atlas");
        assert_eq!(sample["source"], "claims");
        assert_eq!(sample["feed"], "iam-audit");
        assert_eq!(sample["grant_type"], "refresh_token");
        assert_eq!(sample["logged_at"], 1_700_000_000_123_456u64);
        assert_eq!(sample["exp"], 1_700_003_600);
        assert_eq!(sample["claims"]["wlcg.ver"], "1.0");
        assert_eq!(sample["claims"]["uidNumber"], 0);
        assert_eq!(sample["claims"]["email_verified"], true);
        assert_eq!(sample["scopes"][0], "compute.read");
        assert_eq!(sample["scopes"][2], "offline_access");
        assert!(
            sample["scopes"][1]
                .as_str()
                .unwrap()
                .starts_with("storage.read:/")
        );

        // The same keys at every level; each filled string of the same length and
        // punctuation; nested numbers 0.
        let mut expected: Value = serde_json::from_slice(&leaf).unwrap();
        expected["claims"]["uidNumber"] = json!(0);
        expected["claims"]["eduperson_entitlement"][1]["n"][0] = json!(0);
        assert_eq!(shape(&sample), shape(&expected));
        // Still an issuance entry.
        assert!(LogEntry::from_canonical_bytes(&canonical_json(&sample).unwrap()).is_ok());
    }

    #[test]
    fn a_sample_depends_on_the_seed_never_on_the_values_it_fills() {
        // Values of the same length, punctuation and alphabet (not hex) give the same sample.
        let alice = leaf_of(issuance("alice-8d1e", "alice.liddell@example.org"));
        let bob = leaf_of(issuance("bobby-0000", "bobby.tablesx@example.net"));
        assert_ne!(alice, bob);
        assert_eq!(only_sample(&alice), only_sample(&bob));
        let twice = training_samples(&[alice.clone(), alice]);
        assert_ne!(twice[0], twice[1], "another seed");
    }

    #[test]
    fn a_suspension_keeps_its_vocabulary_and_loses_person_pseudonym_reason_and_author() {
        let leaf = LogEntry::new(
            1_700_000_000_000_000,
            EntryBody::Suspension(Box::new(Suspension {
                suspension_id: "su-alice".into(),
                site: Some("CERN-PROD".into()),
                vo: "atlas".into(),
                person_id: Some("pe-alice".into()),
                pseudonym: Some("p1-alice".into()),
                target: "person".into(),
                token_iss: Some("https://iam.example.org/".into()),
                token_jti: Some("jti-alice".into()),
                client_iss: None,
                client_id: None,
                scope: "compute".into(),
                reason: "alice mined coins".into(),
                reason_code: "alice".into(),
                created_by: "oidc:https://iam.example.org/#alice".into(),
                not_after: Some(1_800_000_000),
                issued_before: None,
            })),
        )
        .canonical_bytes()
        .unwrap();
        let sample: Value = serde_json::from_slice(&only_sample(&leaf)).unwrap();
        assert_eq!(
            shape(&sample),
            json!({
                "created_by": "****:*****://***.*******.***/#*****",
                "logged_at": 1_700_000_000_000_000u64, "not_after": 1_800_000_000u64,
                "person_id": "**-*****", "pseudonym": "**-*****", "reason": "***** ***** *****",
                "reason_code": "*****", "scope": "*******", "site": "****-****",
                "suspension_id": "**-*****", "target": "******",
                "token_iss": "*****://***.*******.***/", "token_jti": "***-*****",
                "type": "**********", "v": 1, "vo": "*****"
            })
        );
        assert_eq!(sample["scope"], "compute");
        assert_eq!(sample["site"], "CERN-PROD");
        assert_eq!(sample["token_iss"], "https://iam.example.org/");
        assert!(!sample.to_string().contains("alice"));
    }

    #[test]
    fn nested_objects_and_arrays_are_filled_at_every_depth_keys_kept() {
        let sample = sample_of(json!({
            "type": "issuance",
            "v": 1,
            "claims": {
                "a": [{"b": ["xy", 1, null, false], "c": {"d": "y-z"}}],
                "e": [],
                "wlcg.ver": "1.0"
            },
            "scopes": ["s:/p", 3, {"k": "z"}],
        }));
        assert_eq!(
            shape(&sample),
            json!({
                "type": "********",
                "v": 1,
                "claims": {
                    "a": [{"b": ["**", 0, null, false], "c": {"d": "*-*"}}],
                    "e": [],
                    "wlcg.ver": "*.*"
                },
                "scopes": ["*:/*", 0, {"k": "*"}],
            })
        );
        assert_eq!(sample["claims"]["wlcg.ver"], "1.0");
        assert_eq!(sample["type"], "issuance");
    }

    #[test]
    fn a_resolution_target_is_filled() {
        let leaf = br#"{"action":"resolve_jti","logged_at":5,"reason":"INC-1 alice","requester":"credential:7","revealed":2,"target":"jti-of-alice","type":"resolution","v":1,"vo":"cms"}"#;
        let sample: Value = serde_json::from_slice(&only_sample(leaf)).unwrap();
        assert_eq!(sample["action"], "resolve_jti");
        assert_eq!(sample["revealed"], 2);
        assert!(!sample.to_string().contains("alice"), "{sample}");
        assert!(!sample.to_string().contains("credential"), "{sample}");
    }

    /// The samples of a set of leaves, as JSON.
    fn samples_of(leaves: &[Value]) -> Vec<Value> {
        let leaves: Vec<Vec<u8>> = leaves.iter().map(|v| canonical_json(v).unwrap()).collect();
        training_samples(&leaves)
            .iter()
            .map(|s| serde_json::from_slice(s).unwrap())
            .collect()
    }

    /// An issuance-shaped leaf of subject `sub` with audience `aud`, client `client`, groups
    /// `groups` and claims `claims`.
    fn token(sub: &str, aud: &str, client: &str, groups: &[&str], claims: Value) -> Value {
        json!({
            "type": "issuance", "v": 1, "iss": "https://iam.example.org/", "sub": sub,
            "aud": [aud], "client_id": client, "groups": groups, "claims": claims,
        })
    }

    #[test]
    fn a_value_of_k_subjects_is_kept_and_of_k_minus_one_filled() {
        // Subjects 0..K share `shared-portal` and dept 7; subjects 0..K-1 (each with three
        // leaves) share `small-portal` and team 3.
        let mut leaves = Vec::new();
        for n in 0..K_SUBJECTS {
            let sub = format!("user-{n:04}");
            leaves.push(token(
                &sub,
                "https://wlcg.cern.ch/jwt/v1/any",
                "shared-portal",
                &[],
                json!({"dept": 7}),
            ));
            if n + 1 < K_SUBJECTS {
                for _ in 0..3 {
                    leaves.push(token(
                        &sub,
                        "https://storage-04.example.org",
                        "small-portal",
                        &[],
                        json!({"team": 3}),
                    ));
                }
            }
        }
        let samples = samples_of(&leaves);
        assert_eq!(samples.len(), leaves.len());
        for (leaf, sample) in leaves.iter().zip(&samples) {
            for key in ["aud", "client_id", "sub"] {
                assert_eq!(shape(&sample[key]), shape(&leaf[key]), "same lengths");
            }
            assert_ne!(sample["sub"], leaf["sub"], "a sub has one subject");
            if leaf["client_id"] == "shared-portal" {
                assert_eq!(sample["client_id"], "shared-portal");
                assert_eq!(sample["aud"], json!(["https://wlcg.cern.ch/jwt/v1/any"]));
                assert_eq!(sample["claims"]["dept"], 7);
            } else {
                assert_ne!(sample["client_id"], "small-portal");
                assert_ne!(sample["aud"], leaf["aud"]);
                assert_eq!(sample["claims"]["team"], 0);
            }
        }
    }

    #[test]
    fn the_sub_e_mail_and_own_group_of_a_frequent_user_are_filled() {
        // Alice has most leaves, yet she is one subject; `/atlas` is everyone's.
        let mut leaves: Vec<Value> = (0..100)
            .map(|_| {
                token(
                    "alice-8d1e",
                    "https://wlcg.cern.ch/jwt/v1/any",
                    "alice-laptop",
                    &["/atlas", "/atlas/users/alice"],
                    json!({"email": "alice.liddell@example.org"}),
                )
            })
            .collect();
        for n in 0..2 * K_SUBJECTS {
            let sub = format!("user-{n:04}");
            leaves.push(token(
                &sub,
                "https://wlcg.cern.ch/jwt/v1/any",
                "shared-portal",
                &["/atlas"],
                json!({"email": format!("{sub}@example.org")}),
            ));
        }
        let samples = samples_of(&leaves);
        for sample in &samples {
            let text = sample.to_string();
            assert!(!text.contains("alice"), "{text}");
            assert!(!text.contains("user-"), "{text}");
            assert_eq!(sample["groups"][0], "/atlas");
            assert_eq!(sample["aud"][0], "https://wlcg.cern.ch/jwt/v1/any");
        }
        assert_eq!(samples[100]["client_id"], "shared-portal");
    }

    #[test]
    fn a_value_counts_at_its_path_whatever_its_array_position() {
        // `/cms` is at position 0, 1 or 2 of each subject's groups: one path, K subjects. The
        // same text under another key is another path, of one subject.
        let mut leaves: Vec<Value> = (0..K_SUBJECTS)
            .map(|n| {
                let own = format!("/cms/users/u{n}");
                let groups: Vec<&str> = match n % 3 {
                    0 => vec!["/cms", &own],
                    1 => vec![&own, "/cms"],
                    _ => vec![&own, "/cms/prod", "/cms"],
                };
                token(&format!("u{n}"), "a", "c", &groups, json!({}))
            })
            .collect();
        leaves.push(token("u0", "a", "c", &[], json!({"group": "/cms"})));
        let samples = samples_of(&leaves);
        for (leaf, sample) in leaves.iter().zip(&samples) {
            for (g, group) in leaf["groups"].as_array().unwrap().iter().enumerate() {
                assert_eq!(sample["groups"][g] == "/cms", group == "/cms", "{sample}");
            }
        }
        assert_ne!(samples[K_SUBJECTS]["claims"]["group"], "/cms");
    }

    #[test]
    fn a_leaf_without_sub_or_person_is_a_subject_of_its_own() {
        let resolution = |reason: &str| json!({"type": "resolution", "v": 1, "vo": "cms", "action": "resolve_jti", "reason": reason, "target": "t"});
        // K-1 resolutions with one reason: K-1 subjects. K with another: kept.
        let mut leaves: Vec<Value> = (1..K_SUBJECTS).map(|_| resolution("INC-0001")).collect();
        leaves.extend((0..K_SUBJECTS).map(|_| resolution("INC-0002")));
        // K suspensions of one person (`person_id`, then `vo`): one subject.
        let suspension = |vo: &str| json!({"type": "suspension", "v": 1, "vo": vo, "person_id": "pe-0001", "reason": "INC-0003"});
        leaves.extend((0..K_SUBJECTS).map(|_| suspension("cms")));
        let samples = samples_of(&leaves);
        let reasons = |range: std::ops::Range<usize>| {
            samples[range]
                .iter()
                .map(|s| s["reason"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        };
        let n = K_SUBJECTS - 1;
        assert!(reasons(0..n).iter().all(|r| r != "INC-0001"));
        assert!(reasons(n..n + K_SUBJECTS).iter().all(|r| r == "INC-0002"));
        assert!(
            reasons(n + K_SUBJECTS..samples.len())
                .iter()
                .all(|r| r != "INC-0003")
        );
        assert!(
            samples[n + K_SUBJECTS..]
                .iter()
                .all(|s| s["person_id"] != "pe-0001")
        );
        // The same person_id in K VOs is K subjects.
        let vos: Vec<Value> = (0..K_SUBJECTS)
            .map(|v| suspension(&format!("vo{v}")))
            .collect();
        assert!(samples_of(&vos).iter().all(|s| s["reason"] == "INC-0003"));
    }

    #[test]
    fn an_author_is_filled_however_many_subjects_share_it() {
        // One operator suspends K persons for one reason code: the code is shared, the
        // operator is one person.
        let leaves: Vec<Value> = (0..K_SUBJECTS)
            .map(|n| {
                json!({"type": "suspension", "v": 1, "vo": "cms", "person_id": format!("pe-{n:04}"),
                       "reason_code": "abuse", "created_by": "oidc:https://iam.example.org/#op-bob"})
            })
            .collect();
        for sample in samples_of(&leaves) {
            assert_eq!(sample["reason_code"], "abuse");
            assert!(
                !sample["created_by"].as_str().unwrap().contains("bob"),
                "{sample}"
            );
        }
    }

    #[test]
    fn bytes_that_are_no_json_object_give_no_sample() {
        let leaf = br#"{"type":"x","v":1}"#.to_vec();
        let samples = training_samples(&[
            b"not json".to_vec(),
            leaf.clone(),
            b"[\"alice\"]".to_vec(),
            b"\"alice\"".to_vec(),
        ]);
        assert_eq!(samples, vec![leaf]);
    }
}
