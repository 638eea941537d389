//! The right edge of an RFC 6962 tree: enough to append and to hash the root
//! without reading storage.

use tlog_tiles::{node_hash, record_hash, Hash, EMPTY_HASH};

/// The last stored hash at each level of a tree of `size` leaves.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Frontier {
    size: u64,
    /// `last[l]` is node `(l, (size >> l) - 1)`, present while `size >> l > 0`.
    last: Vec<Hash>,
}

impl Frontier {
    /// The empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// A frontier from its nodes, as loaded from storage (`last[l]` for each level with `size >> l > 0`).
    pub fn from_parts(size: u64, last: Vec<Hash>) -> Self {
        Frontier { size, last }
    }

    /// Which node each level's entry is: `(level, leaf whose row stores it)`.
    pub fn node_rows(size: u64) -> Vec<(u8, u64)> {
        (0..64u8)
            .take_while(|&l| size >> l > 0)
            .map(|l| (l, ((size >> l) << l) - 1))
            .collect()
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends a leaf; returns the stored hashes it completes, level 0 first.
    pub fn append(&mut self, data: &[u8]) -> Vec<Hash> {
        self.append_record(record_hash(data))
    }

    /// [`Frontier::append`] of a leaf whose record hash is `h` (computed
    /// beforehand, perhaps on another thread).
    pub fn append_record(&mut self, mut h: Hash) -> Vec<Hash> {
        let mut out = vec![h];
        let mut k = self.size;
        let mut l = 0usize;
        loop {
            if self.last.len() <= l {
                self.last.push(h);
            }
            if k & 1 == 0 {
                self.last[l] = h;
                break;
            }
            let left = self.last[l];
            self.last[l] = h;
            h = node_hash(left, h);
            out.push(h);
            l += 1;
            k >>= 1;
        }
        self.size += 1;
        out
    }

    /// The tree hash (RFC 6962 root) of the current size.
    pub fn root(&self) -> Hash {
        let mut root: Option<Hash> = None;
        for l in 0..self.last.len() {
            if self.size >> l & 1 == 1 {
                root = Some(match root {
                    None => self.last[l],
                    Some(right) => node_hash(self.last[l], right),
                });
            }
        }
        root.unwrap_or(EMPTY_HASH)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use tlog_tiles::{stored_hash_index, stored_hashes, tree_hash, Error, HashReader};

    struct Mem(HashMap<u64, Hash>);
    impl HashReader for Mem {
        fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, Error> {
            indexes
                .iter()
                .map(|i| self.0.get(i).copied().ok_or(Error::IndexesNotInTree))
                .collect()
        }
    }

    #[test]
    fn matches_the_reference_implementation() {
        let mut f = Frontier::new();
        let mut mem = Mem(HashMap::new());
        for n in 0..300u64 {
            let data = format!("leaf {n}").into_bytes();
            let reference = stored_hashes(n, &data, &mem).expect("reference");
            let ours = f.append(&data);
            assert_eq!(ours, reference, "stored hashes of leaf {n}");
            for (i, h) in reference.into_iter().enumerate() {
                mem.0.insert(stored_hash_index(0, n) + i as u64, h);
            }
            assert_eq!(
                f.root(),
                tree_hash(n + 1, &mem).expect("tree hash"),
                "root at size {}",
                n + 1
            );
        }
    }
}
