//! weiquan's verifiable lottery draw, version 1 (`docs/draw.md`).
//!
//! Commit before, reveal after: `commitment = SHA-256(seed)` is published at
//! announcement; at the close the entrants are fixed as an RFC 6962 Merkle
//! root; the winners follow from `SHA-256(seed ‖ root ‖ counter)` by unbiased
//! rejection sampling, without replacement, prizes in announced order.
//! Anyone holding the seed and the entrant list can recompute the result.

use sha2::{Digest, Sha256};

/// Name of this algorithm, as carried in a draw's proof.
pub const ALGORITHM: &str = "weiquan-draw-v1";

/// Public key of drand's quicknet (chain `52db9ba7…e971`, scheme bls-unchained-g1-rfc9380).
pub const QUICKNET_PUBLIC_KEY: &str = "83cf0f2896adee7eb8b5f01fcad3912212c437e0073e911fb90022d3e760183c8c4b450b6a0a6c3ac6a5776a2d1064510d1fec758c921cc22b0e17e63aaf4bcb5ed66304de9cf809bd274ca73bab4af5a6e9c76a4bc09e76eae8991ef5ece45a";

/// The seed the draw runs on: the revealed seed, or — when a drand quicknet round was fixed at
/// announcement — the seed followed by `|drand:` and that round's randomness (hex SHA-256 of its
/// signature), once the signature verifies. Errors say what is wrong.
pub fn effective_seed(seed: &str, beacon_round: Option<u64>, beacon_signature: Option<&str>) -> Result<String, String> {
    let Some(round) = beacon_round else {
        return Ok(seed.to_owned());
    };
    let sig = beacon_signature.ok_or_else(|| format!("no drand beacon signature for round {round}"))?;
    let sig = hex::decode(sig).map_err(|_| format!("the drand beacon signature for round {round} is not hex"))?;
    use drand_verify::Pubkey;
    let key: [u8; 96] = hex::decode(QUICKNET_PUBLIC_KEY)
        .ok()
        .and_then(|k| k.try_into().ok())
        .ok_or("bad built-in drand key")?;
    let pk = drand_verify::G2PubkeyRfc::from_fixed(key).map_err(|e| e.to_string())?;
    match pk.verify(round, b"", &sig) {
        Ok(true) => Ok(format!(
            "{seed}|drand:{}",
            hex::encode(drand_verify::derive_randomness(&sig))
        )),
        _ => Err(format!(
            "the drand beacon signature does not verify for quicknet round {round}"
        )),
    }
}

/// Hex SHA-256 of the seed's UTF-8 bytes: what is published at announcement.
pub fn commitment(seed: &str) -> String {
    hex::encode(Sha256::digest(seed.as_bytes()))
}

fn leaf_hash(entrant: &str) -> [u8; 32] {
    Sha256::new()
        .chain_update([0u8])
        .chain_update(entrant.as_bytes())
        .finalize()
        .into()
}

fn node_hash(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    Sha256::new()
        .chain_update([1u8])
        .chain_update(left)
        .chain_update(right)
        .finalize()
        .into()
}

/// RFC 6962 Merkle tree hash of `hashes` (leaf hashes, in order).
fn tree_hash(hashes: &[[u8; 32]]) -> [u8; 32] {
    match hashes.len() {
        0 => Sha256::digest([]).into(),
        1 => hashes[0],
        n => {
            // The largest power of two smaller than n splits the tree (RFC 6962 §2.1).
            let k = 1usize << (usize::BITS - 1 - (n - 1).leading_zeros());
            node_hash(&tree_hash(&hashes[..k]), &tree_hash(&hashes[k..]))
        }
    }
}

/// The entrants root: RFC 6962 tree hash over the participant ids (UTF-8), in entry order.
pub fn entrants_root(entrants: &[&str]) -> [u8; 32] {
    let leaves: Vec<[u8; 32]> = entrants.iter().map(|e| leaf_hash(e)).collect();
    tree_hash(&leaves)
}

/// Audit path proving that entrant `index` is in the entrants root (RFC 6962 inclusion proof).
pub fn entrant_proof(entrants: &[&str], index: usize) -> Option<Vec<[u8; 32]>> {
    fn path(hashes: &[[u8; 32]], m: usize) -> Vec<[u8; 32]> {
        let n = hashes.len();
        if n <= 1 {
            return Vec::new();
        }
        let k = 1usize << (usize::BITS - 1 - (n - 1).leading_zeros());
        if m < k {
            let mut p = path(&hashes[..k], m);
            p.push(tree_hash(&hashes[k..]));
            p
        } else {
            let mut p = path(&hashes[k..], m - k);
            p.push(tree_hash(&hashes[..k]));
            p
        }
    }
    (index < entrants.len()).then(|| path(&entrants.iter().map(|e| leaf_hash(e)).collect::<Vec<_>>(), index))
}

/// Checks an entrant's audit path against a root (RFC 9162 §2.1.3.2).
pub fn verify_entrant(entrant: &str, index: usize, size: usize, proof: &[[u8; 32]], root: &[u8; 32]) -> bool {
    if index >= size {
        return false;
    }
    let (mut f_n, mut s_n) = (index, size - 1);
    let mut r = leaf_hash(entrant);
    for p in proof {
        if s_n == 0 {
            return false;
        }
        if f_n & 1 == 1 || f_n == s_n {
            r = node_hash(p, &r);
            while f_n & 1 == 0 && f_n != 0 {
                f_n >>= 1;
                s_n >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    s_n == 0 && r == *root
}

/// The uniform random stream of a draw: `SHA-256(seed ‖ root ‖ counter)`, first 8 bytes big-endian.
struct Stream<'a> {
    seed: &'a [u8],
    root: [u8; 32],
    counter: u64,
}

impl Stream<'_> {
    fn next_u64(&mut self) -> u64 {
        let h = Sha256::new()
            .chain_update(self.seed)
            .chain_update(self.root)
            .chain_update(self.counter.to_be_bytes())
            .finalize();
        self.counter += 1;
        u64::from_be_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]])
    }

    /// Uniform in `0..n` (n > 0): values below `2^64 mod n` are rejected, so every index has the same chance.
    fn below(&mut self, n: u64) -> u64 {
        let reject_below = n.wrapping_neg() % n;
        loop {
            let x = self.next_u64();
            if x >= reject_below {
                return x % n;
            }
        }
    }
}

/// The winners of a draw as `(participant, prize name)` in slot order: the seed (with
/// the drand round mixed in when one was fixed), the entrants in entry order and the
/// prizes `(name, count)` in announced order. The one place LT-10, `weiquan verify draw`
/// and the server's draw compute it.
pub fn winners<'a>(
    seed: &str,
    beacon_round: Option<u64>,
    beacon_signature: Option<&str>,
    entrants: &[&'a str],
    prizes: &[(&'a str, u32)],
) -> Result<Vec<(&'a str, &'a str)>, String> {
    let seed = effective_seed(seed, beacon_round, beacon_signature)?;
    let counts: Vec<u32> = prizes.iter().map(|p| p.1).collect();
    Ok(draw(&seed, entrants, &counts)
        .into_iter()
        .map(|(e, p)| (entrants[e], prizes[p].0))
        .collect())
}

/// The first uniform value in `0..n` of the stream for `seed` and `root` (exposed for bias tests).
pub fn uniform_below(seed: &str, root: &[u8; 32], n: u64) -> u64 {
    Stream {
        seed: seed.as_bytes(),
        root: *root,
        counter: 0,
    }
    .below(n.max(1))
}

/// The winners: `(entrant index, prize index)` per prize slot, prizes in announced
/// order each repeated `count` times, until prizes or entrants run out.
pub fn draw(seed: &str, entrants: &[&str], prize_counts: &[u32]) -> Vec<(usize, usize)> {
    let mut stream = Stream {
        seed: seed.as_bytes(),
        root: entrants_root(entrants),
        counter: 0,
    };
    let mut pool: Vec<usize> = (0..entrants.len()).collect();
    let mut out = Vec::new();
    for (prize, &count) in prize_counts.iter().enumerate() {
        for _ in 0..count {
            if pool.is_empty() {
                return out;
            }
            let pick = stream.below(pool.len() as u64) as usize;
            // `remove`, not `swap_remove`: the remaining pool keeps entry order, which the spec states.
            out.push((pool.remove(pick), prize));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drand_quicknet_round_is_verified_and_mixed_in() {
        // https://api3.drand.sh/52db9ba7…e971/public/123 (also drand-verify's test vector)
        let sig = "b75c69d0b72a5d906e854e808ba7e2accb1542ac355ae486d591aa9d43765482e26cd02df835d3546d23c4b13e0dfc92";
        let mixed = effective_seed("s", Some(123), Some(sig)).expect("valid beacon");
        assert!(mixed.starts_with("s|drand:") && mixed.len() == "s|drand:".len() + 64);
        assert!(
            effective_seed("s", Some(124), Some(sig)).is_err(),
            "another round's signature"
        );
        assert!(effective_seed("s", Some(123), None).is_err());
        assert_eq!(effective_seed("s", None, None).as_deref(), Ok("s"));
    }

    #[test]
    fn entrant_proofs_verify_for_every_size_and_index() {
        for n in 1..40usize {
            let names: Vec<String> = (0..n).map(|i| format!("p{i}")).collect();
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            let root = entrants_root(&refs);
            for i in 0..n {
                let proof = entrant_proof(&refs, i).expect("in range");
                assert!(verify_entrant(refs[i], i, n, &proof, &root), "n={n} i={i}");
                assert!(!verify_entrant("intruder", i, n, &proof, &root));
            }
        }
    }

    #[test]
    fn draw_is_without_replacement_and_deterministic() {
        let names: Vec<String> = (0..7).map(|i| format!("p{i}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let a = draw("seed", &refs, &[2, 3, 5]);
        assert_eq!(a.len(), 7, "prizes stop when entrants run out");
        let mut seen: Vec<usize> = a.iter().map(|w| w.0).collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 7);
        assert_eq!(a, draw("seed", &refs, &[2, 3, 5]));
        assert_ne!(a, draw("seed2", &refs, &[2, 3, 5]));
    }
}
