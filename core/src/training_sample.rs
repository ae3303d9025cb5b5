//! Training samples for leaf compression dictionaries: a canonical leaf with the same JSON
//! structure and keys but every value that may be personal data replaced by filler, so that a
//! dictionary trained on samples keeps how entries are written and nothing of whom they name.

use serde_json::{Map, Value};

use crate::entry::{EntryError, canonical_json};

/// Top-level keys whose values are never personal data and stay whole in a sample: the entry
/// type, issuers, VOs, sites, fixed vocabularies (scope kind, report source, grant, feed,
/// resolution action). Everything else is filled, whatever the entry type: subjects, jtis,
/// clients, persons, pseudonyms, requesters, reasons, evidence, hosts, groups, audiences,
/// extra claims. A key that means something personal in one entry type (a resolution's
/// `target`) is not here.
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

/// Version claims kept among a token's other claims (`claims`).
pub const KEPT_CLAIMS: [&str; 1] = ["wlcg.ver"];

/// The key of the token's scopes: each scope keeps its name up to the first `:`; a path
/// after it (which may name a user's directory) is filled.
const SCOPES: &str = "scopes";
/// The key of the token's other claims.
const CLAIMS: &str = "claims";

/// The training sample of canonical leaf `leaf`: its canonical JSON with every string filled
/// but under [`KEPT_KEYS`], [`KEPT_CLAIMS`] and the names of [`SCOPES`]. Filler keeps a
/// string's length and its ASCII punctuation and spaces; each other character becomes a
/// pseudo-random one drawn from `seed`, never from the value, of one alphabet for the whole
/// string (hex digits if the string is hex, else a-z0-9): random like the jtis and digests of
/// real leaves (the dictionary's entropy tables learn their alphabet) yet repeated nowhere,
/// so the dictionary keeps none of it. Numbers at the top level (times, counts, the version) stay;
/// numbers nested deeper (extra claims) become 0; booleans and nulls stay; keys stay at every
/// level.
pub fn training_sample(leaf: &[u8], seed: u64) -> Result<Vec<u8>, EntryError> {
    let value: Value =
        serde_json::from_slice(leaf).map_err(|e| EntryError::NotCanonical(e.to_string()))?;
    let Value::Object(fields) = value else {
        return Err(EntryError::NotCanonical("a leaf is a JSON object".into()));
    };
    let mut filler = Filler(seed);
    let scrubbed: Map<String, Value> = fields
        .into_iter()
        .map(|(key, value)| {
            let value = if KEPT_KEYS.contains(&key.as_str()) {
                value
            } else if key == SCOPES {
                filler.scopes(value)
            } else if key == CLAIMS {
                filler.claims(value)
            } else {
                match value {
                    Value::Number(n) => Value::Number(n),
                    nested => filler.fill(nested),
                }
            };
            (key, value)
        })
        .collect();
    canonical_json(&Value::Object(scrubbed))
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

    /// Scopes with their paths filled: `storage.read:/home/alice` becomes
    /// `storage.read:/wxyz/qrstu`; a scope without a path stays. Anything but an array of
    /// strings is filled whole.
    fn scopes(&mut self, value: Value) -> Value {
        match value {
            Value::Array(items) => Value::Array(
                items
                    .into_iter()
                    .map(|item| match item {
                        Value::String(scope) => match scope.split_once(':') {
                            Some((name, path)) => {
                                Value::String(format!("{name}:{}", self.text(path)))
                            }
                            None => Value::String(scope),
                        },
                        other => self.fill(other),
                    })
                    .collect(),
            ),
            other => self.fill(other),
        }
    }

    /// A token's other claims filled, but for [`KEPT_CLAIMS`].
    fn claims(&mut self, value: Value) -> Value {
        match value {
            Value::Object(fields) => Value::Object(
                fields
                    .into_iter()
                    .map(|(k, v)| {
                        let v = if KEPT_CLAIMS.contains(&k.as_str()) {
                            v
                        } else {
                            self.fill(v)
                        };
                        (k, v)
                    })
                    .collect(),
            ),
            other => self.fill(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::entry::{EntryBody, Issuance, LogEntry, Source, Suspension};

    fn sample_of(value: Value, seed: u64) -> Value {
        let leaf = canonical_json(&value).unwrap();
        serde_json::from_slice(&training_sample(&leaf, seed).unwrap()).unwrap()
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
        let sample = training_sample(&leaf, 7).unwrap();
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
        assert_eq!(
            training_sample(&alice, 3).unwrap(),
            training_sample(&bob, 3).unwrap()
        );
        assert_ne!(
            training_sample(&alice, 3).unwrap(),
            training_sample(&alice, 4).unwrap()
        );
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
        let sample: Value = serde_json::from_slice(&training_sample(&leaf, 1).unwrap()).unwrap();
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
        let sample = sample_of(
            json!({
                "type": "issuance",
                "v": 1,
                "claims": {
                    "a": [{"b": ["xy", 1, null, false], "c": {"d": "y-z"}}],
                    "e": [],
                    "wlcg.ver": "1.0"
                },
                "scopes": ["s:/p", 3, {"k": "z"}],
            }),
            9,
        );
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
        let sample: Value = serde_json::from_slice(&training_sample(leaf, 0).unwrap()).unwrap();
        assert_eq!(sample["action"], "resolve_jti");
        assert_eq!(sample["revealed"], 2);
        assert!(!sample.to_string().contains("alice"), "{sample}");
        assert!(!sample.to_string().contains("credential"), "{sample}");
    }

    #[test]
    fn bytes_that_are_no_json_object_give_no_sample() {
        assert!(training_sample(b"not json", 0).is_err());
        assert!(training_sample(b"[\"alice\"]", 0).is_err());
        assert!(training_sample(b"\"alice\"", 0).is_err());
    }
}
