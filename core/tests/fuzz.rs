//! Fuzz targets of the core's parsers (see `fuzz/README.md`): signed notes and key strings,
//! checkpoints, and signed blocklists with the checks their consumers make. Each runs a
//! bounded number of raw and mutated inputs and asserts the parser's invariants: an error is a
//! value, never a panic; what parses prints back to the same text; what opens or verifies
//! under the test key is exactly what that key signed.

use std::collections::HashSet;

use tokenledger_core::blocklist::{
    Blocklist, BlocklistEntry, BlocklistIndex, Decision, Presented, Scope, SignedBlocklist,
    SignedDocument,
};
use tokenledger_core::checkpoint::Checkpoint;
use tokenledger_core::note::{self, NoteSigner, NoteVerifier};
use tokenledger_core::pseudonym::{LedgerSecret, SiteKey};
use tokenledger_fuzz::{Target, corpus};

const ORIGIN: &str = "tokenledger.test/log";

fn signer() -> NoteSigner {
    NoteSigner::from_seed(ORIGIN, [7; 32]).expect("a valid test key")
}

/// Another key of the same name, whose signatures the test key's verifier must not take.
fn impostor() -> NoteSigner {
    NoteSigner::from_seed(ORIGIN, [8; 32]).expect("a valid test key")
}

/// A cosigner: its signature line is ignored by the test key's verifier, but well formed.
fn witness() -> NoteSigner {
    NoteSigner::from_seed("witness.example/w1", [9; 32]).expect("a valid test key")
}

/// The text of an input: as it is, or with invalid UTF-8 replaced, so every input is used.
fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `note` with a cosigner's signature line appended.
fn cosigned(note: &str, text: &str) -> String {
    let witness_line = witness()
        .sign(text)
        .expect("a signable text")
        .rsplit_once("\n\n")
        .expect("a signed note")
        .1
        .to_string();
    format!("{note}{witness_line}")
}

/// The seeds of a target of signed texts: each text of its corpus signed with the test key
/// (by `sign`), a copy a witness cosigned, and one an impostor of the same name signed. Also
/// returns the texts the test key signed.
fn signed_corpus(
    name: &str,
    words: &[&str],
    sign: impl Fn(&NoteSigner, &str) -> String,
) -> (Target, HashSet<String>) {
    let mut target = Target::new(name, 200_000).words(words);
    let mut signed = HashSet::new();
    for (file, body) in corpus(name) {
        let body = String::from_utf8(body).unwrap_or_else(|_| panic!("{name}/{file}: not UTF-8"));
        let note = sign(&signer(), &body);
        target = target
            .seed(cosigned(&note, &body))
            .seed(sign(&impostor(), &body))
            .seed(note);
        signed.insert(body);
    }
    (target, signed)
}

#[test]
fn fuzz_signed_notes_and_key_strings() {
    let signer = signer();
    let verifier = signer.verifier();
    let words = [
        "\u{2014} tokenledger.test/log ",
        "\u{2014} witness.example/w1 ",
        "PRIVATE+KEY+",
        "+",
        "/",
        "==",
        ORIGIN,
    ];
    let (target, signed_texts) = signed_corpus("note", &words, |key, body| {
        key.sign(body).expect("the corpus holds signable texts")
    });
    let target = target
        .seed(verifier.to_string())
        .seed(witness().verifier().to_string())
        .seed(signer.to_skey_string());
    target.run(move |bytes| {
        let input = text(bytes);
        let opened = note::open(&input, &verifier);
        if let Ok(opened) = &opened {
            assert!(
                signed_texts.contains(opened),
                "opened a text the key never signed: {opened:?}"
            );
            assert!(input.starts_with(opened), "the text is the note's start");
        }
        let verifier_key = NoteVerifier::parse(&input);
        if let Ok(parsed) = &verifier_key {
            assert_eq!(parsed.to_string(), input, "a verifier key prints back");
        }
        let signer_key = NoteSigner::parse(&input);
        if let Ok(parsed) = &signer_key {
            assert_eq!(parsed.to_skey_string(), input, "a signer key prints back");
        }
        opened.is_ok() || verifier_key.is_ok() || signer_key.is_ok()
    });
}

#[test]
fn fuzz_checkpoints() {
    let verifier = signer().verifier();
    let words = [
        "\u{2014} tokenledger.test/log ",
        "18446744073709551615",
        "18446744073709551616",
        "00",
        "+1",
        "AAAA",
        "=",
    ];
    let (target, signed_bodies) = signed_corpus("checkpoint", &words, |key, body| {
        let checkpoint = Checkpoint::parse(body).expect("the corpus holds checkpoints");
        checkpoint.sign(key).expect("a signable checkpoint")
    });
    target.run(move |bytes| {
        let input = text(bytes);
        let parsed = Checkpoint::parse(&input);
        if let Ok(checkpoint) = &parsed {
            assert_eq!(checkpoint.to_text(), input, "a checkpoint prints back");
        }
        let opened = Checkpoint::open(&input, &verifier);
        if let Ok(checkpoint) = &opened {
            assert!(
                signed_bodies.contains(&checkpoint.to_text()),
                "opened a checkpoint the key never signed: {checkpoint:?}"
            );
        }
        parsed.is_ok() || opened.is_ok()
    });
}

/// Who asks `check` about a blocklist: each identity, with and without a token, a client and
/// an `iat`.
const ASKERS: [Presented<'static>; 4] = [
    Presented {
        iss: "https://atlas-auth.example/",
        sub: Some("alice"),
        jti: None,
        client_id: None,
        iat: None,
    },
    Presented {
        iss: "https://atlas-auth.example/",
        sub: Some("alice"),
        jti: Some("leaked-jti"),
        client_id: Some("rucio"),
        iat: Some(1_000),
    },
    Presented {
        iss: "https://atlas-auth.example/",
        sub: Some("carol"),
        jti: None,
        client_id: Some("rucio"),
        iat: Some(2_000_000_000),
    },
    Presented {
        iss: "https://cms-auth.example/",
        sub: Some("bob"),
        jti: Some("other-jti"),
        client_id: None,
        iat: Some(5),
    },
];

#[test]
fn fuzz_signed_blocklists_and_consumer_checks() {
    let signer = signer();
    let verifier = signer.verifier();
    let key = LedgerSecret::from_bytes([4; 32]).site_key("CERN-PROD");
    let mut signed_documents = Vec::new();
    let mut target = Target::new("blocklist", 200_000).words(&[
        "\"CERN-PROD\"",
        "\"sequence\":",
        "\"expires_at\":",
        "\"not_after\":",
        "\"scope\":\"compute\"",
        "\"tags\":[]",
        "\"client_tags\":[",
        "\"issued_before\":",
        "\"signer\":\"tokenledger.test/log+",
        "\"signature\":\"",
        "\"document\":",
        "\"entries\":[]",
    ]);
    for (_, bytes) in corpus("blocklist") {
        let mut document: Blocklist =
            serde_json::from_slice(&bytes).expect("the corpus holds blocklist documents");
        // Entries the askers match, so that decisions find suspensions.
        if let Some(entry) = document.entries.first_mut() {
            entry.tags.push(key.tag(ASKERS[0].iss, "alice"));
            entry
                .jti_hashes
                .push(key.jti_hash(ASKERS[1].iss, "leaked-jti"));
            entry
                .client_tags
                .push(key.client_tag(ASKERS[1].iss, "rucio"));
        }
        let signed = document.clone().sign(&signer);
        target = target
            .seed(serde_json::to_vec(&signed).expect("serializable"))
            .seed(serde_json::to_vec_pretty(&document.clone().sign(&impostor())).expect("ok"));
        signed_documents.push(document);
    }
    target.run(move |bytes| {
        let Ok(signed) = serde_json::from_slice::<SignedBlocklist>(bytes) else {
            return false;
        };
        let printed = serde_json::to_string(&signed).expect("a parsed blocklist serializes");
        let reread: SignedBlocklist = serde_json::from_str(&printed).expect("and parses again");
        assert_eq!(reread, signed, "a blocklist round-trips");
        if let Ok(document) = signed.verify(&verifier) {
            assert!(
                signed_documents.contains(document),
                "verified a document the key never signed: {document:?}"
            );
        }
        check_consumer_rules(&signed.document);
        check_decisions(&signed.document, &key);
        true
    });
}

/// `check_fresh` accepts exactly a document of the right site, not older than held, unexpired.
fn check_consumer_rules(document: &Blocklist) {
    let sequences = [None, Some(0), Some(document.sequence), Some(u64::MAX)];
    let times = [
        i64::MIN,
        0,
        document.expires_at,
        document.expires_at.saturating_add(1),
    ];
    for site in ["CERN-PROD", document.site.as_str()] {
        for have in sequences {
            for now in times {
                let fresh = document.site == site
                    && have.is_none_or(|have| document.sequence >= have)
                    && now <= document.expires_at;
                assert_eq!(
                    document.check_fresh(site, have, now).is_ok(),
                    fresh,
                    "check_fresh({site:?}, {have:?}, {now})"
                );
            }
        }
    }
}

/// A decision is "suspended" exactly when an entry matches the asker (by tag, by the token's
/// hash, or by its client's tag), covers the scope asked, has not ended, and reaches the
/// token's `iat` (before the cut-off, or unknown); and it names such an entry.
fn check_decisions(document: &Blocklist, key: &SiteKey) {
    let index = BlocklistIndex::new(document.clone());
    for token in ASKERS {
        let Presented {
            iss,
            sub,
            jti,
            client_id,
            iat,
        } = token;
        let tag = sub.map(|sub| key.tag(iss, sub));
        let jti_hash = jti.map(|j| key.jti_hash(iss, j));
        let client_tag = client_id.map(|c| key.client_tag(iss, c));
        for asked in [Scope::Compute, Scope::Storage, Scope::All] {
            for now in [0, document.issued_at, i64::MAX] {
                let applies = |entry: &BlocklistEntry| {
                    let matches = tag.as_ref().is_some_and(|t| entry.tags.contains(t))
                        || jti_hash
                            .as_ref()
                            .is_some_and(|h| entry.jti_hashes.contains(h))
                        || client_tag
                            .as_ref()
                            .is_some_and(|c| entry.client_tags.contains(c));
                    let reached = match (entry.issued_before, iat) {
                        (Some(cut_off), Some(iat)) => iat < cut_off,
                        _ => true,
                    };
                    matches
                        && reached
                        && entry.scope.blocks(asked)
                        && entry.not_after.is_none_or(|t| now <= t)
                };
                match index.decide_token(key, &token, asked, now) {
                    Decision::Suspended(entry) => assert!(applies(entry), "{entry:?}"),
                    Decision::Allowed => assert!(
                        !document.entries.iter().any(applies),
                        "{token:?} allowed for {asked:?} at {now}"
                    ),
                }
            }
        }
    }
}
