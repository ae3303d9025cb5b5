//! The test vectors in `tests/vectors/` (each file's public source: its README): RFC 6962
//! trees and proofs, the transparency-dev probes, a real CT proof, and C2SP / Go sumdb
//! signed notes.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokenledger_core::checkpoint::Checkpoint;
use tokenledger_core::merkle::{
    self, Frontier, Hash, MerkleError, consistency_proof, consistency_proof_indexes, empty_root,
    inclusion_proof, inclusion_proof_indexes, leaf_hash, stored_hash_index, tree_hash,
    tree_hash_indexes, verify_consistency, verify_inclusion,
};
use tokenledger_core::note::{self, NoteError, NoteSigner, NoteVerifier, key_id};

macro_rules! vector {
    ($file:literal) => {
        serde_json::from_str::<Value>(include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/vectors/",
            $file
        )))
        .expect("vector file is JSON")
    };
}

fn str_of(v: &Value) -> &str {
    v.as_str().expect("a JSON string")
}

fn u64_of(v: &Value) -> u64 {
    v.as_u64().expect("a JSON u64")
}

fn hex_hash(v: &Value) -> Hash {
    Hash::from_hex(str_of(v)).expect("a 32-byte hex hash")
}

fn hex_hashes(v: &Value) -> Vec<Hash> {
    v.as_array()
        .expect("an array")
        .iter()
        .map(hex_hash)
        .collect()
}

fn b64_hash(v: &Value) -> Hash {
    Hash::from_base64(str_of(v)).expect("a 32-byte base64 hash")
}

fn b64(s: &str) -> Vec<u8> {
    STANDARD.decode(s).expect("base64")
}

/// An in-memory stand-in for the server's stored-hash table.
#[derive(Default)]
struct Store {
    hashes: Vec<Hash>,
    frontier: Frontier,
}

impl Store {
    fn with_leaves(leaves: &[Vec<u8>]) -> Store {
        let mut store = Store::default();
        for leaf in leaves {
            store.append(leaf_hash(leaf));
        }
        store
    }

    fn append(&mut self, leaf: Hash) {
        for (index, hash) in self.frontier.append(leaf) {
            assert_eq!(
                index,
                self.hashes.len() as u64,
                "stored hashes come in order"
            );
            self.hashes.push(hash);
        }
    }

    fn read(&self, indexes: &[u64]) -> Vec<Hash> {
        indexes.iter().map(|&i| self.hashes[i as usize]).collect()
    }

    fn root(&self, size: u64) -> Hash {
        tree_hash(size, &self.read(&tree_hash_indexes(size))).unwrap()
    }

    fn inclusion(&self, index: u64, size: u64) -> Vec<Hash> {
        let indexes = inclusion_proof_indexes(index, size).unwrap();
        inclusion_proof(index, size, &self.read(&indexes)).unwrap()
    }

    fn consistency(&self, size1: u64, size2: u64) -> Vec<Hash> {
        let indexes = consistency_proof_indexes(size1, size2).unwrap();
        consistency_proof(size1, size2, &self.read(&indexes)).unwrap()
    }
}

fn rfc_leaves(v: &Value) -> Vec<Vec<u8>> {
    v["leaves"]
        .as_array()
        .unwrap()
        .iter()
        .map(|leaf| hex::decode(str_of(leaf)).unwrap())
        .collect()
}

fn rfc_roots(v: &Value) -> BTreeMap<u64, Hash> {
    v["roots"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(size, root)| (size.parse().unwrap(), hex_hash(root)))
        .collect()
}

#[test]
fn rfc6962_leaf_and_node_hashes() {
    let v = vector!("merkle_rfc6962.json");
    assert_eq!(empty_root(), hex_hash(&v["empty_root"]));
    let leaves = rfc_leaves(&v);
    let leaf_hashes = hex_hashes(&v["leaf_hashes"]);
    assert_eq!(leaves.len(), 8);
    for (leaf, expected) in leaves.iter().zip(&leaf_hashes) {
        assert_eq!(leaf_hash(leaf), *expected);
    }
    let store = Store::with_leaves(&leaves);
    for (level, nodes) in v["node_hashes_by_level"].as_object().unwrap() {
        for (n, node) in hex_hashes(nodes).into_iter().enumerate() {
            let index = stored_hash_index(level.parse().unwrap(), n as u64);
            assert_eq!(store.hashes[index as usize], node, "level {level} node {n}");
        }
    }
    assert_eq!(store.hashes.len() as u64, merkle::stored_hash_count(8));
}

#[test]
fn rfc6962_roots_by_frontier_and_stored_hashes() {
    for v in [
        vector!("merkle_rfc6962.json"),
        vector!("merkle_rfc6962_derived_all.json"),
    ] {
        let leaves = rfc_leaves(&v);
        let roots = rfc_roots(&v);
        assert_eq!(
            roots.keys().copied().collect::<Vec<_>>(),
            (0..=8).collect::<Vec<_>>()
        );
        let mut store = Store::default();
        for (size, root) in &roots {
            assert_eq!(store.frontier.size(), *size);
            assert_eq!(store.frontier.root(), *root, "frontier root at size {size}");
            assert_eq!(store.root(*size), *root, "stored-hash root at size {size}");
            if let Some(leaf) = leaves.get(*size as usize) {
                store.append(leaf_hash(leaf));
            }
        }
        for (size, root) in &roots {
            assert_eq!(store.root(*size), *root, "historical root at size {size}");
        }
    }
}

/// Checks one inclusion vector: generation from the store and verification.
fn check_inclusion(store: &Store, roots: &BTreeMap<u64, Hash>, case: &Value) {
    let index = u64_of(&case["leaf_index"]);
    let size = u64_of(&case["tree_size"]);
    let proof = hex_hashes(&case["proof"]);
    let leaf = store.hashes[stored_hash_index(0, index) as usize];
    let root = roots[&size];
    if let Some(expected) = case.get("leaf_hash") {
        assert_eq!(leaf, hex_hash(expected));
        assert_eq!(root, hex_hash(&case["root"]));
    }
    assert_eq!(
        store.inclusion(index, size),
        proof,
        "inclusion {index} in {size}"
    );
    verify_inclusion(index, size, &leaf, &proof, &root).unwrap();
}

/// Checks one consistency vector: generation from the store and verification.
fn check_consistency(store: &Store, roots: &BTreeMap<u64, Hash>, case: &Value) {
    let size1 = u64_of(&case["size1"]);
    let size2 = u64_of(&case["size2"]);
    let proof = hex_hashes(&case["proof"]);
    let (root1, root2) = (roots[&size1], roots[&size2]);
    if let Some(expected) = case.get("root1") {
        assert_eq!(root1, hex_hash(expected));
        assert_eq!(root2, hex_hash(&case["root2"]));
    }
    assert_eq!(
        store.consistency(size1, size2),
        proof,
        "consistency {size1} -> {size2}"
    );
    verify_consistency(size1, size2, &root1, &root2, &proof).unwrap();
}

#[test]
fn rfc6962_inclusion_and_consistency_proofs() {
    let v = vector!("merkle_rfc6962.json");
    let store = Store::with_leaves(&rfc_leaves(&v));
    let roots = rfc_roots(&v);
    let inclusion = v["inclusion"].as_array().unwrap();
    let consistency = v["consistency"].as_array().unwrap();
    assert_eq!((inclusion.len(), consistency.len()), (5, 5));
    for case in inclusion {
        check_inclusion(&store, &roots, case);
    }
    for case in consistency {
        check_consistency(&store, &roots, case);
    }
}

#[test]
fn rfc6962_every_proof_up_to_size_8() {
    let v = vector!("merkle_rfc6962_derived_all.json");
    let store = Store::with_leaves(&rfc_leaves(&v));
    let roots = rfc_roots(&v);
    let inclusion = v["inclusion"].as_array().unwrap();
    let consistency = v["consistency"].as_array().unwrap();
    assert_eq!(inclusion.len(), 36, "every 0 <= index < size <= 8");
    assert_eq!(consistency.len(), 36, "every 1 <= size1 <= size2 <= 8");
    for case in inclusion {
        check_inclusion(&store, &roots, case);
    }
    for case in consistency {
        check_consistency(&store, &roots, case);
    }
}

/// Decodes a probe hash the way a client would: base64 of exactly 32 bytes.
fn probe_hash(v: &Value) -> Result<Hash, MerkleError> {
    Hash::from_base64(str_of(v))
}

fn probe_proof(v: &Value) -> Result<Vec<Hash>, MerkleError> {
    match v {
        Value::Null => Ok(Vec::new()),
        proof => proof.as_array().unwrap().iter().map(probe_hash).collect(),
    }
}

fn run_inclusion_probe(p: &Value) -> Result<(), MerkleError> {
    verify_inclusion(
        u64_of(&p["leafIdx"]),
        u64_of(&p["treeSize"]),
        &probe_hash(&p["leafHash"])?,
        &probe_proof(&p["proof"])?,
        &probe_hash(&p["root"])?,
    )
}

fn run_consistency_probe(p: &Value) -> Result<(), MerkleError> {
    verify_consistency(
        u64_of(&p["size1"]),
        u64_of(&p["size2"]),
        &probe_hash(&p["root1"])?,
        &probe_hash(&p["root2"])?,
        &probe_proof(&p["proof"])?,
    )
}

type ProbeRunner = fn(&Value) -> Result<(), MerkleError>;

/// Our outcome for each probe the vector file marks as policy-dependent. Three of
/// the four still agree with `wantErr` (they also carry non-32-byte hashes, which
/// we refuse); only the last one differs.
fn policy_outcomes() -> BTreeMap<&'static str, Result<(), MerkleError>> {
    BTreeMap::from([
        (
            "testdata/consistency/additional/size1-is-zero-and-size2-is-not-zero.json",
            Err(MerkleError::BadHashLength(12)),
        ),
        (
            "testdata/consistency/additional/sizes-are-equal-zero-and-proof-is-empty.json",
            Err(MerkleError::BadHashLength(12)),
        ),
        (
            "testdata/inclusion/single-entry/empty-root-and-leaf.json",
            Err(MerkleError::BadHashLength(0)),
        ),
        (
            // wantErr false: transparency-dev does not length-check root1 when the sizes are equal.
            "testdata/consistency/additional/sizes-are-equal-one-and-proof-is-empty.json",
            Err(MerkleError::BadHashLength(12)),
        ),
    ])
}

#[test]
fn transparency_dev_probes() {
    let v = vector!("merkle_probes_transparency_dev.json");
    let policy = policy_outcomes();
    let marked: Vec<&str> = v["policy_dependent"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(marked, policy.keys().copied().collect::<Vec<_>>());
    let runs: [(&str, ProbeRunner); 2] = [
        ("inclusion", run_inclusion_probe),
        ("consistency", run_consistency_probe),
    ];
    let mut checked = 0;
    for (kind, run) in runs {
        for (name, probe) in v[kind].as_object().unwrap() {
            let outcome = run(probe);
            match policy.get(name.as_str()) {
                Some(expected) => assert_eq!(&outcome, expected, "{name}"),
                None => {
                    let want_err = probe["wantErr"].as_bool().unwrap();
                    assert_eq!(outcome.is_err(), want_err, "{name}: {outcome:?}");
                }
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 196);
}

#[test]
fn size_zero_policy_accepts_empty_proof_from_empty_tree() {
    let v = vector!("merkle_probes_transparency_dev.json");
    let name = "testdata/consistency/additional/size1-is-zero-and-size2-is-not-zero.json";
    let probe = &v["consistency"][name];
    let root1 = probe_hash(&probe["root1"]).unwrap();
    assert_eq!(root1, empty_root());
    let any_root2 = leaf_hash(b"anything");
    verify_consistency(0, 1, &root1, &any_root2, &[]).unwrap();
    verify_consistency(0, 0, &root1, &root1, &[]).unwrap();
    assert!(verify_consistency(0, 1, &any_root2, &any_root2, &[]).is_err());
    assert!(verify_consistency(0, 1, &root1, &any_root2, &[any_root2]).is_err());
}

/// The length of the proof we would generate, from stand-in stored hashes.
fn proof_length(
    indexes: &[u64],
    generate: impl Fn(&[Hash]) -> Result<Vec<Hash>, MerkleError>,
) -> usize {
    assert!(indexes.len() <= 2 * 64, "O(log n) stored hashes");
    generate(&vec![Hash([0; 32]); indexes.len()]).unwrap().len()
}

#[test]
fn real_ct_log_proofs() {
    let v = vector!("merkle_ct_argon2020_real.json");
    let leaf = leaf_hash(&b64(str_of(&v["leaf_input_b64"])));
    assert_eq!(leaf, b64_hash(&v["leaf_hash_b64"]));
    let inc = &v["inclusion"];
    let (index, size) = (u64_of(&inc["leaf_index"]), u64_of(&inc["tree_size"]));
    let root = b64_hash(&inc["root_b64"]);
    assert_eq!(root, b64_hash(&v["sth"]["sha256_root_hash"]));
    let path: Vec<Hash> = inc["audit_path_b64"]
        .as_array()
        .unwrap()
        .iter()
        .map(b64_hash)
        .collect();
    assert_eq!(
        proof_length(&inclusion_proof_indexes(index, size).unwrap(), |h| {
            inclusion_proof(index, size, h)
        }),
        path.len()
    );
    verify_inclusion(index, size, &leaf, &path, &root).unwrap();

    let con = &v["consistency"];
    let (size1, size2) = (u64_of(&con["size1"]), u64_of(&con["size2"]));
    assert_eq!(size2, size);
    let root1 = b64_hash(&con["root1_b64"]);
    let root2 = b64_hash(&con["root2_b64"]);
    let proof: Vec<Hash> = con["proof_b64"]
        .as_array()
        .unwrap()
        .iter()
        .map(b64_hash)
        .collect();
    assert_eq!(
        proof_length(&consistency_proof_indexes(size1, size2).unwrap(), |h| {
            consistency_proof(size1, size2, h)
        }),
        proof.len()
    );
    verify_consistency(size1, size2, &root1, &root2, &proof).unwrap();

    for i in 0..path.len() {
        let mut bad = path.clone();
        bad[i].0[i] ^= 0x80;
        assert!(verify_inclusion(index, size, &leaf, &bad, &root).is_err());
        let mut bad = proof.clone();
        bad[i].0[31 - i] ^= 0x01;
        assert!(verify_consistency(size1, size2, &root1, &root2, &bad).is_err());
    }
    assert!(verify_inclusion(index + 1, size, &leaf, &path, &root).is_err());
    assert!(verify_consistency(size1 + 1, size2, &root1, &root2, &proof).is_err());
}

// ---- signed notes ----

fn notes() -> Value {
    vector!("signed_note.json")["vectors"].clone()
}

fn verifier(v: &Value) -> NoteVerifier {
    NoteVerifier::parse(str_of(v)).expect("valid verifier key")
}

#[test]
fn c2sp_example_note() {
    let v = &notes()["c2sp_signed_note_example"];
    let vk = verifier(&v["verifier_key"]);
    assert_eq!(vk.to_string(), str_of(&v["verifier_key"]));
    assert_eq!(vk.name(), "example.com/foo");
    assert_eq!(
        hex::encode(vk.key_id()),
        str_of(&v["expected"]["key_id_hex"])
    );
    assert_eq!(key_id(vk.name(), &vk.public_key()), vk.key_id());
    let text = note::open(str_of(&v["signed_note"]), &vk).unwrap();
    assert_eq!(text, str_of(&v["note_text"]));
}

#[test]
fn go_note_signs_byte_for_byte() {
    let v = &notes()["go_note_peterneumann"];
    let vk = verifier(&v["verifier_key"]);
    assert_eq!(
        hex::encode(vk.key_id()),
        str_of(&v["expected"]["key_id_hex"])
    );
    let skey = str_of(&v["signer_key_if_published"]);
    let signer = NoteSigner::parse(skey).unwrap();
    assert_eq!(signer.name(), "PeterNeumann");
    assert_eq!(signer.to_skey_string(), skey);
    assert_eq!(signer.verifier(), vk);
    let signed = signer.sign(str_of(&v["note_text"])).unwrap();
    assert_eq!(signed, str_of(&v["signed_note"]));
    assert_eq!(note::open(&signed, &vk).unwrap(), str_of(&v["note_text"]));
}

#[test]
fn go_note_two_signers() {
    let v = &notes()["go_note_two_signers"];
    let signed = str_of(&v["signed_note"]);
    let keys = v["verifier_keys"].as_array().unwrap();
    for key in keys {
        let text = note::open(signed, &verifier(key)).unwrap();
        assert!(text.ends_with("don't know what your problem is.\n"));
    }
    let stranger = verifier(&notes()["published_test_keypairs"]["pairs"][0]["vkey"]);
    assert!(matches!(
        note::open(signed, &stranger),
        Err(NoteError::NotSignedBy(_))
    ));
}

#[test]
fn go_note_malformed_messages() {
    let v = &notes()["go_note_malformed"];
    let vk = verifier(&v["verifier_key"]);
    let messages = v["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 6);
    for msg in messages {
        let err = note::open(str_of(msg), &vk).unwrap_err();
        assert!(matches!(err, NoteError::Malformed(_)), "{msg:?}: {err}");
    }
}

#[test]
fn go_note_invalid_signature_from_known_key_rejects_note() {
    let v = &notes()["go_note_peterneumann"];
    let vk = verifier(&v["verifier_key"]);
    let signed = str_of(&v["signed_note"]);
    let line_start = signed.rfind("\n\n").unwrap() + 2;
    let mut bad = signed.to_owned();
    bad.insert_str(line_start + 60, "ABCD");
    let err = note::open(&bad, &vk).unwrap_err();
    assert!(matches!(err, NoteError::InvalidSignature(_)), "{err}");
    assert_eq!(err.to_string(), format!("invalid signature for key {vk}"));

    let two = str_of(&notes()["go_note_two_signers"]["signed_note"]).to_owned();
    let enoch = two.rfind("\u{2014} EnochRoot").unwrap();
    let mut bad = two.clone();
    bad.replace_range(enoch + 30..enoch + 31, "A");
    assert_ne!(bad, two);
    assert!(
        note::open(&bad, &vk).is_ok(),
        "a bad signature by an unknown key is ignored"
    );
}

#[test]
fn go_note_signature_line_limit() {
    let v = &notes()["go_note_peterneumann"];
    let vk = verifier(&v["verifier_key"]);
    let signed = str_of(&v["signed_note"]);
    let other = NoteSigner::from_seed("Other", [9; 32]).unwrap();
    let other_line = other.sign(str_of(&v["note_text"])).unwrap();
    let other_line = &other_line[other_line.rfind("\n\n").unwrap() + 2..];
    let with_lines = |n: usize| format!("{signed}{}", other_line.repeat(n - 1));
    assert!(note::open(&with_lines(100), &vk).is_ok());
    assert!(matches!(
        note::open(&with_lines(101), &vk),
        Err(NoteError::Malformed(_))
    ));
}

#[test]
fn go_vkey_manglings_are_refused() {
    let v = &notes()["go_note_malformed"];
    let vkey = str_of(&v["verifier_key"]);
    assert!(vkey.is_ascii());
    for i in 0..=vkey.len() {
        for j in i + 1..=vkey.len() {
            if (i, j) != (0, vkey.len()) {
                assert!(NoteVerifier::parse(&vkey[i..j]).is_err(), "{}", &vkey[i..j]);
            }
        }
    }
    for i in 0..vkey.len() {
        let mut bytes = vkey.as_bytes().to_vec();
        bytes[i] += 1;
        let mangled = String::from_utf8(bytes).unwrap();
        assert!(NoteVerifier::parse(&mangled).is_err(), "{mangled}");
    }
    let wrong_length = "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==";
    assert!(matches!(
        NoteVerifier::parse(wrong_length),
        Err(NoteError::MalformedKey(_))
    ));
    let unknown_type = "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    assert!(matches!(
        NoteVerifier::parse(unknown_type),
        Err(NoteError::UnsupportedKeyType(0x65))
    ));
}

#[test]
fn sumdb_real_checkpoint() {
    let v = &notes()["sumdb_real_checkpoint"];
    let vk = verifier(&v["verifier_key"]);
    let signed = str_of(&v["signed_note"]);
    let checkpoint = Checkpoint::open(signed, &vk).unwrap();
    assert_eq!(checkpoint.to_text(), str_of(&v["note_text"]));
    let expected = &v["expected"];
    assert_eq!(checkpoint.origin, str_of(&expected["origin"]));
    assert_eq!(checkpoint.size, u64_of(&expected["size"]));
    assert_eq!(checkpoint.root, b64_hash(&expected["root_b64"]));
    assert!(checkpoint.extensions.is_empty());

    let extra = &v["extra_ed25519_cosigners"];
    let all = str_of(&extra["signed_note_all"]);
    let mut expected_all = signed.to_owned();
    for line in extra["signature_lines"].as_array().unwrap() {
        expected_all.push_str(str_of(line));
    }
    assert_eq!(all, expected_all);
    assert_eq!(Checkpoint::open(all, &vk).unwrap(), checkpoint);
    for key in extra["verifier_keys"].as_array().unwrap() {
        let cosigner = verifier(key);
        assert_eq!(Checkpoint::open(all, &cosigner).unwrap(), checkpoint);
        assert!(
            Checkpoint::open(signed, &cosigner).is_err(),
            "{cosigner} did not sign"
        );
    }
}

#[test]
fn published_test_keypairs() {
    let pairs = notes()["published_test_keypairs"]["pairs"].clone();
    let pairs = pairs.as_array().unwrap();
    assert_eq!(pairs.len(), 4);
    for (i, pair) in pairs.iter().enumerate() {
        let vk = verifier(&pair["vkey"]);
        let skey = str_of(&pair["skey"]);
        let signer = NoteSigner::parse(skey).unwrap();
        assert_eq!(signer.verifier(), vk);
        assert_eq!(vk.to_string(), str_of(&pair["vkey"]));
        assert_eq!(signer.to_skey_string(), skey);
        let signed = signer.sign("example.com/log\n1\nAAAA\n").unwrap();
        assert_eq!(
            note::open(&signed, &vk).unwrap(),
            "example.com/log\n1\nAAAA\n"
        );
        let next = verifier(&pairs[(i + 1) % pairs.len()]["vkey"]);
        assert!(note::open(&signed, &next).is_err());
    }
    let skey = str_of(&pairs[0]["skey"]);
    let wrong_id = skey.replace("+2271c621+", "+2271c622+");
    assert!(matches!(
        NoteSigner::parse(&wrong_id),
        Err(NoteError::KeyIdMismatch(_))
    ));
    assert!(NoteSigner::parse(&skey["PRIVATE+".len()..]).is_err());
}

#[test]
fn rfc8032_ed25519_sanity() {
    let tests = notes()["rfc8032_ed25519_sanity"]["tests"].clone();
    for t in tests.as_array().unwrap() {
        let seed: [u8; 32] = hex::decode(str_of(&t["seed"])).unwrap().try_into().unwrap();
        let signer = NoteSigner::from_seed("rfc8032", seed).unwrap();
        let vk = signer.verifier();
        assert_eq!(hex::encode(vk.public_key()), str_of(&t["public"]));
        let msg = hex::decode(str_of(&t["message_hex"])).unwrap();
        let sig = signer.sign_bytes(&msg);
        assert_eq!(hex::encode(sig), str_of(&t["signature"]));
        vk.verify_bytes(&msg, &sig).unwrap();
        let mut bad = sig;
        bad[63] ^= 0x01;
        assert!(vk.verify_bytes(&msg, &bad).is_err());
    }
}

#[test]
fn derived_checkpoint_size8_signs_byte_for_byte() {
    let v = &notes()["derived_checkpoint_size8"];
    let signer = NoteSigner::parse(str_of(&v["log_signer_key_go_format"])).unwrap();
    let vk = verifier(&v["log_verifier_key"]);
    assert_eq!(signer.verifier(), vk);
    let expected = &v["expected"];
    assert_eq!(
        hex::encode(vk.key_id()),
        str_of(&expected["log_key_id_hex"])
    );

    let rfc = vector!("merkle_rfc6962.json");
    let store = Store::with_leaves(&rfc_leaves(&rfc));
    let checkpoint = Checkpoint {
        origin: str_of(&expected["origin"]).to_owned(),
        size: u64_of(&expected["size"]),
        root: store.frontier.root(),
        extensions: Vec::new(),
    };
    assert_eq!(checkpoint.root, hex_hash(&expected["root_hex"]));
    assert_eq!(checkpoint.to_text(), str_of(&v["note_text"]));
    let signed = checkpoint.sign(&signer).unwrap();
    assert_eq!(signed, str_of(&v["signed_checkpoint"]));
    let cosigned = str_of(&v["signed_checkpoint_with_cosignature"]);
    assert_eq!(Checkpoint::open(cosigned, &vk).unwrap(), checkpoint);
}

/// The witness cosignature (type 0x04) is not a note signature we verify, but its
/// bytes check out with our primitives: key ID, timestamp, Ed25519 signature.
#[test]
fn derived_checkpoint_cosignature_bytes() {
    let v = &notes()["derived_checkpoint_size8"];
    let cosigner_vkey = str_of(&v["cosigner_verifier_key_type04"]);
    assert!(matches!(
        NoteVerifier::parse(cosigner_vkey),
        Err(NoteError::UnsupportedKeyType(0x04))
    ));
    let name = "witness.example.com/grid-w1";
    let seed: [u8; 32] = hex::decode(str_of(&v["cosigner_seed_hex"]))
        .unwrap()
        .try_into()
        .unwrap();
    let cosigner = NoteSigner::from_seed(name, seed).unwrap().verifier();
    let vkey_bytes = b64(cosigner_vkey.rsplit('+').next().unwrap());
    assert_eq!(vkey_bytes[0], 0x04);
    assert_eq!(vkey_bytes[1..], cosigner.public_key());

    let line = str_of(&v["cosignature_line"]);
    let sig_b64 = line.strip_suffix('\n').unwrap().rsplit(' ').next().unwrap();
    let sig = b64(sig_b64);
    assert_eq!(sig.len(), 76);
    let id = Sha256::new()
        .chain_update(format!("{name}\n\u{4}"))
        .chain_update(cosigner.public_key())
        .finalize();
    assert_eq!(sig[..4], id[..4]);
    assert_eq!(
        hex::encode(&sig[..4]),
        str_of(&v["expected"]["cosigner_key_id_hex"])
    );
    let timestamp = u64::from_be_bytes(sig[4..12].try_into().unwrap());
    assert_eq!(timestamp, u64_of(&v["cosignature_timestamp"]));
    let message = format!(
        "cosignature/v1\ntime {timestamp}\n{}",
        str_of(&v["note_text"])
    );
    assert_eq!(message, str_of(&v["cosigned_message"]));
    cosigner
        .verify_bytes(message.as_bytes(), &sig[12..].try_into().unwrap())
        .unwrap();
}

#[test]
fn derived_checkpoint_empty_tree() {
    let v = &notes()["derived_checkpoint_empty_tree"];
    let signer = NoteSigner::parse(str_of(
        &notes()["derived_checkpoint_size8"]["log_signer_key_go_format"],
    ))
    .unwrap();
    let vk = verifier(&v["log_verifier_key"]);
    let checkpoint = Checkpoint {
        origin: "example.com/grid-tlog-test".to_owned(),
        size: 0,
        root: Frontier::new().root(),
        extensions: Vec::new(),
    };
    assert_eq!(checkpoint.root, empty_root());
    assert_eq!(checkpoint.to_text(), str_of(&v["note_text"]));
    let signed = checkpoint.sign(&signer).unwrap();
    assert_eq!(signed, str_of(&v["signed_checkpoint"]));
    assert_eq!(Checkpoint::open(&signed, &vk).unwrap(), checkpoint);
}

#[test]
fn cosignature_v1_timestamp_decode() {
    let v = &notes()["cosignature_v1_timestamp_decode"];
    let sig = b64(str_of(&v["signature_b64"]));
    let expected = &v["expected"];
    assert_eq!(sig.len() as u64, u64_of(&expected["decoded_len"]));
    assert_eq!(hex::encode(&sig[..4]), str_of(&expected["key_id_hex"]));
    let timestamp = u64::from_be_bytes(sig[4..12].try_into().unwrap());
    assert_eq!(timestamp, u64_of(&expected["timestamp"]));
}
