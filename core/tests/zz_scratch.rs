use tokenledger_core::merkle::*;
#[test]
fn explore() {
    let mut f = Frontier::new();
    let mut store = Vec::new();
    let mut roots = vec![f.root()];
    for i in 0..64u64 {
        for (_, h) in f.append(leaf_hash(&i.to_be_bytes())) {
            store.push(h);
        }
        roots.push(f.root());
    }
    let read = |ix: Vec<u64>| ix.iter().map(|&i| store[i as usize]).collect::<Vec<_>>();
    let mut m_alias = 0;
    let mut n_alias = 0;
    let mut n_alias_same_len = 0;
    for n in 1..=40u64 {
        for m in 1..n {
            let p =
                consistency_proof(m, n, &read(consistency_proof_indexes(m, n).unwrap())).unwrap();
            for n2 in 1..=48u64 {
                for m2 in 1..=n2 {
                    if (m2, n2) == (m, n) {
                        continue;
                    }
                    if verify_consistency(m2, n2, &roots[m2 as usize], &roots[n2 as usize], &p)
                        .is_ok()
                    {
                        let p2 = consistency_proof(
                            m2,
                            n2,
                            &read(consistency_proof_indexes(m2, n2).unwrap()),
                        )
                        .unwrap();
                        if p2 != p {
                            println!("TRUE ROOT ALIAS {m},{n} {m2},{n2}");
                        }
                    }
                    if verify_consistency(m2, n2, &roots[m as usize], &roots[n as usize], &p)
                        .is_ok()
                    {
                        if m2 != m {
                            m_alias += 1;
                            println!("m alias {m},{n} -> {m2},{n2}");
                        } else {
                            n_alias += 1;
                            let l2 = consistency_proof(
                                m2,
                                n2,
                                &vec![
                                    Hash([0; 32]);
                                    consistency_proof_indexes(m2, n2).unwrap().len()
                                ],
                            )
                            .unwrap()
                            .len();
                            if l2 == p.len() {
                                n_alias_same_len += 1;
                            }
                        }
                    }
                }
            }
        }
    }
    println!("m_alias {m_alias} n_alias {n_alias} same_len {n_alias_same_len}");
    // inclusion
    let mut bad = 0;
    for n in 1..=40u64 {
        for i in 0..n {
            let p = inclusion_proof(i, n, &read(inclusion_proof_indexes(i, n).unwrap())).unwrap();
            let leaf = store[stored_hash_index(0, i) as usize];
            for n2 in 1..=48u64 {
                for i2 in 0..n2 {
                    let ok = verify_inclusion(i2, n2, &leaf, &p, &roots[n as usize]).is_ok();
                    let inner = |i: u64, n: u64| 64 - (i ^ (n - 1)).leading_zeros();
                    let expect = i2 == i && inner(i, n2) == inner(i, n);
                    if ok != expect {
                        bad += 1;
                        println!("incl {i},{n} as {i2},{n2}: {ok}");
                    }
                }
            }
        }
    }
    println!("incl bad {bad}");
}
