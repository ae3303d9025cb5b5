//! Same-run baselines: what the hardware and the libraries do alone, so each server figure
//! can be read as a ratio to the work it cannot avoid. JWT verification (jsonwebtoken with
//! aws-lc-rs, validated as the server validates) and receipt signing (Ed25519) on one core;
//! SQLite inserts of the very rows the sequencer writes, and single-entry durable commits,
//! through sqlx with the server's connection options (WAL, `synchronous=FULL`).

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode};
use serde_json::{Map, Value};
use tokenledger_core::merkle::leaf_hash;
use tokenledger_core::note::NoteSigner;
use tokenledger_core::receipt::Receipt;
use tokenledger_e2e::issuer::TestIssuer;
use tokenledger_server::store::sqlite::{self, SqliteStore};

use crate::block_on;
use crate::bulk::{BulkRow, BulkWriter, Timeline, preload_row};
use crate::report::Percentiles;
use crate::workload::{ISSUER, Workload};

/// Runs `op` on this thread until `budget` has passed (at least `min_ops` times); the rate
/// in operations per second.
fn rate_of(budget: Duration, min_ops: u64, mut op: impl FnMut(u64)) -> f64 {
    let start = Instant::now();
    let mut n = 0u64;
    while n < min_ops || start.elapsed() < budget {
        for _ in 0..16 {
            op(n);
            n += 1;
        }
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// The kid of the test issuer's key of `alg`.
pub fn kid_of(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::RS256 => "rsa-1",
        Algorithm::ES256 => "ec-1",
        _ => "ed-1",
    }
}

/// Verifications per second of `tokens` (all of `alg`) on one core: signature and claims
/// decoding, with the server's validation settings.
pub fn jwt_verify_rate(
    issuer: &TestIssuer,
    alg: Algorithm,
    tokens: &[String],
    budget: Duration,
) -> anyhow::Result<f64> {
    anyhow::ensure!(!tokens.is_empty(), "no tokens to verify");
    let set: JwkSet = serde_json::from_str(&issuer.jwks())?;
    let jwk = set
        .find(kid_of(alg))
        .ok_or_else(|| anyhow::anyhow!("no {alg:?} key in the JWKS"))?;
    let key = DecodingKey::from_jwk(jwk)?;
    let mut validation = Validation::new(alg);
    validation.set_issuer(&[ISSUER]);
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.required_spec_claims = HashSet::new();
    let mut failed = None;
    let rate = rate_of(budget, 32, |i| {
        let token = &tokens[i as usize % tokens.len()];
        if let Err(e) = decode::<Map<String, Value>>(token, &key, &validation) {
            failed.get_or_insert(e);
        }
    });
    match failed {
        Some(e) => Err(anyhow::anyhow!("a benchmark token did not verify: {e}")),
        None => Ok(rate),
    }
}

/// Ingest receipts signed per second on one core (Ed25519, the server's receipt message).
pub fn receipt_sign_rate(budget: Duration) -> anyhow::Result<f64> {
    let signer = NoteSigner::from_seed("bench.example/log", [7; 32])?;
    let leaf = leaf_hash(b"bench");
    let mut sink = 0usize;
    let rate = rate_of(budget, 32, |i| {
        sink += Receipt::sign(&signer, i, leaf, 1_700_000_000_000_000 + i as i64)
            .signature
            .len();
    });
    anyhow::ensure!(sink > 0, "no receipt was signed");
    Ok(rate)
}

/// A fresh, migrated database in `dir` with the sequencer's connection.
async fn fresh_writer(dir: &Path) -> anyhow::Result<BulkWriter> {
    let path = dir.join("commits.db");
    SqliteStore::open(&path, Default::default())
        .await?
        .close()
        .await;
    BulkWriter::open(&path).await
}

/// Rows per second written into a fresh database in transactions of `batch` rows, with the
/// sequencer's writer (`SqliteWriter`, `LedgerWriter::append`: one
/// round trip a transaction), fsync'd commits (`synchronous=FULL`) and a PASSIVE WAL checkpoint
/// each second, as the server's checkpointer runs. Only the writes and checkpoints are timed.
pub async fn sqlite_insert_rate(dir: &Path, rows: &[BulkRow], batch: usize) -> anyhow::Result<f64> {
    anyhow::ensure!(!rows.is_empty(), "no rows to insert");
    let path = dir.join("baseline.db");
    SqliteStore::open(&path, Default::default())
        .await?
        .close()
        .await;
    let mut writer = BulkWriter::open(&path).await?;
    let start = Instant::now();
    let mut checkpointed = Instant::now();
    for chunk in rows.chunks(batch.max(1)) {
        writer.write(chunk).await?;
        if checkpointed.elapsed() >= sqlite::CHECKPOINT_INTERVAL {
            sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(writer.conn())
                .await?;
            checkpointed = Instant::now();
        }
    }
    sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
        .execute(writer.conn())
        .await?;
    let elapsed = start.elapsed();
    writer.close().await?;
    Ok(rows.len() as f64 / elapsed.as_secs_f64())
}

/// Latency of `samples` durable one-entry transactions (an issuance entry, its stored hashes
/// and lookup rows, fsync'd), one after the other, in a fresh database in the temporary
/// directory (the same file system as the servers' data): the floor under any answer that
/// waits for a log append.
pub fn durable_commit(samples: usize) -> anyhow::Result<Percentiles> {
    let workload = Workload::standard();
    let timeline = Timeline::ending_at(1_700_000_000_000_000, samples as u64);
    let rows = (0..samples as u64)
        .map(|i| preload_row(&workload, &timeline, i))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let temp = tempfile::tempdir()?;
    let mut latencies = block_on(async {
        let mut writer = fresh_writer(temp.path()).await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let start = Instant::now();
            writer.write(std::slice::from_ref(row)).await?;
            out.push(start.elapsed());
        }
        writer.close().await?;
        anyhow::Ok(out)
    })?;
    Percentiles::of(&mut latencies).ok_or_else(|| anyhow::anyhow!("no commit was timed"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signing_and_verifying_rates_are_positive() {
        assert!(receipt_sign_rate(Duration::from_millis(10)).unwrap() > 0.0);
        let issuer = TestIssuer::new(ISSUER);
        let claims = crate::workload::Workload::standard().claims(0, 1_700_000_000);
        let token = issuer.mint(Algorithm::ES256, &Value::Object(claims));
        let rate = jwt_verify_rate(
            &issuer,
            Algorithm::ES256,
            &[token],
            Duration::from_millis(10),
        )
        .unwrap();
        assert!(rate > 0.0);
        let forged = issuer.mint(Algorithm::RS256, &serde_json::json!({"iss": "other"}));
        assert!(jwt_verify_rate(&issuer, Algorithm::RS256, &[forged], Duration::ZERO).is_err());
    }
}
