//! The issuances every benchmark uses: WLCG-profile access tokens of one INDIGO IAM issuer
//! (one VO), shaped like the ones IAM mints. Everything is a pure function of the token's
//! number, so the resolve benchmark can name a random preloaded `jti` without keeping ten
//! million strings, and the bulk loader and the HTTP ingest build the same claims.

use serde_json::{Map, Value, json};

/// The issuer of every benchmark token.
pub const ISSUER: &str = "https://atlas-auth.example.org/";
/// The VO it reports for (a `fixed` VO rule).
pub const VO: &str = "atlas";

/// A population of token holders and OAuth clients.
#[derive(Clone, Copy, Debug)]
pub struct Workload {
    /// Distinct subjects (`sub`): each is one person of the VO.
    pub users: u64,
    /// Distinct OAuth clients (`client_id`).
    pub clients: u64,
    /// Makes `jti`s differ between runs that share a database (never the case today, but
    /// a fixed seed keeps preloads reproducible).
    pub seed: u64,
}

impl Workload {
    /// The benchmark population: 10,000 users (a large LHC VO has 5,000 to 10,000 members) of
    /// 50 OAuth clients.
    pub fn standard() -> Workload {
        Workload {
            users: 10_000,
            clients: 50,
            seed: 0x746f_6b65_6e6c_6564,
        }
    }

    /// The `jti` of token `i`: a random-looking UUID, as IAM issues.
    pub fn jti(&self, i: u64) -> String {
        uuid(self.seed ^ 0x6a74_6900, i)
    }

    /// The `sub` of token `i`'s holder: a UUID, as IAM issues.
    pub fn sub(&self, i: u64) -> String {
        uuid(self.seed ^ 0x7375_6200, mix(self.seed ^ i) % self.users)
    }

    fn client(&self, i: u64) -> String {
        uuid(self.seed ^ 0x636c_6900, mix(i ^ 0x5555) % self.clients)
    }

    /// The claims of token `i`, issued at `iat` (unix seconds), valid for an hour: what an
    /// IAM access token with the WLCG profile carries (storage and compute scopes, groups).
    pub fn claims(&self, i: u64, iat: i64) -> Map<String, Value> {
        let value = json!({
            "iss": ISSUER,
            "jti": self.jti(i),
            "sub": self.sub(i),
            "client_id": self.client(i),
            "scope": "storage.read:/ storage.modify:/ compute.read compute.create wlcg.groups",
            "wlcg.groups": ["/atlas"],
            "wlcg.ver": "1.0",
            "aud": "https://wlcg.cern.ch/jwt/v1/any",
            "iat": iat,
            "nbf": iat,
            "exp": iat + 3600,
        });
        match value {
            Value::Object(map) => map,
            _ => unreachable!("json! of an object literal"),
        }
    }
}

/// The seed of sample number `sample` of a draw whose sample 0 has seed `base`: the same
/// number draws the same values, another number others (so a run can ask for what earlier
/// runs did not bring into the page cache).
pub fn sample_seed(base: u64, sample: u64) -> u64 {
    base ^ sample.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// `count` pseudo-random numbers below `n` (reproducible for a `seed`).
pub fn sample_below(n: u64, count: usize, seed: u64) -> Vec<u64> {
    (0..count as u64)
        .map(|k| mix(seed.wrapping_mul(0x1000_0000_01b3) ^ k) % n.max(1))
        .collect()
}

/// SplitMix64: a fast, well-mixed bijection of u64.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A version-4-shaped UUID derived from `(domain, n)`.
fn uuid(domain: u64, n: u64) -> String {
    let hi = mix(domain ^ mix(n));
    let lo = mix(hi ^ n);
    let hi = (hi & 0xffff_ffff_ffff_0fff) | 0x4000;
    let lo = (lo & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
    let h = format!("{hi:016x}{lo:016x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn jtis_are_distinct_uuids_and_reproducible() {
        let w = Workload::standard();
        let jtis: HashSet<String> = (0..100_000).map(|i| w.jti(i)).collect();
        assert_eq!(jtis.len(), 100_000);
        let j = w.jti(42);
        assert_eq!(j, w.jti(42));
        assert_eq!(j.len(), 36);
        assert_eq!(&j[14..15], "4", "{j}");
    }

    #[test]
    fn subjects_and_clients_come_from_the_population() {
        let w = Workload {
            users: 10,
            clients: 3,
            seed: 1,
        };
        let subs: HashSet<String> = (0..1_000).map(|i| w.sub(i)).collect();
        let clients: HashSet<String> = (0..1_000).map(|i| w.client(i)).collect();
        assert_eq!(subs.len(), 10);
        assert_eq!(clients.len(), 3);
        let picks = sample_below(10, 1_000, 3);
        assert!(picks.iter().all(|p| *p < 10));
        assert_eq!(picks.iter().collect::<HashSet<_>>().len(), 10);
        assert_eq!(picks, sample_below(10, 1_000, 3));
        let claims = w.claims(5, 1_700_000_000);
        assert_eq!(claims["jti"], w.jti(5));
        assert_eq!(claims["exp"], 1_700_003_600);
    }

    #[test]
    fn sample_zero_draws_as_before_and_other_samples_draw_others() {
        let draw = |sample| sample_below(10_000_000, 1_000, sample_seed(0x7265_736f, sample));
        assert_eq!(draw(0), sample_below(10_000_000, 1_000, 0x7265_736f));
        assert_eq!(draw(1), draw(1));
        let first: HashSet<u64> = draw(0).into_iter().collect();
        let shared = draw(1).iter().filter(|p| first.contains(p)).count();
        assert!(shared < 10, "{shared} of 1,000 picks shared");
    }
}
