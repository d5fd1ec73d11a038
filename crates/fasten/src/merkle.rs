//! The per-node RFC 6962 Merkle tree over the chain's row hashes (row
//! contract §4), with inclusion and consistency proofs.
//!
//! A hash chain shows that a row was changed, but not that someone with write
//! access re-sealed everything, or cut off the newest rows. A signed tree head
//! (see `checkpoint`) plus these proofs does: a store that disagrees with
//! anything once published can no longer prove consistency with it. The tree
//! is the Certificate Transparency one, so its proofs can be checked by any
//! RFC 6962 / RFC 9162 implementation, and by [`verify_inclusion`] and
//! [`verify_consistency`] with nothing but the proof at hand.
//!
//! [`MerkleLog`] is kept incrementally: the writer pushes each sealed row and
//! asks for the root at every checkpoint, which must not rebuild the tree.

// Until the writer, the CLI and the verifier call in (issue 7), only the tests
// use this module. The expectation stops holding once everything here is used:
// that is the moment to delete it.
#![cfg_attr(
    not(test),
    expect(dead_code, reason = "wired up by the issue 7 integration")
)]

use std::fmt;

use sha2::{Digest, Sha256};

/// The smallest perfect subtrees whose roots a store keeps (in
/// `<table>_merkle`): 2^10 = 1024 leaves. A proof then reads at most two
/// runs of 1024 row hashes (the leaf's block and the tree's last, partial
/// one) and O(log n) kept roots, while the writer adds about one kept root
/// per 512 rows.
pub(crate) const STORED_FROM_LEVEL: u32 = 10;

/// The root of the empty tree: SHA-256 of nothing.
pub(crate) const EMPTY_ROOT: [u8; 32] = [
    0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
    0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
];

/// The RFC 6962 leaf hash of `leaf`: SHA-256(0x00 ‖ leaf). A row's leaf is
/// the 32 raw bytes of its `hash`; RFC 6962 allows any bytes, which is how
/// the certificate-transparency vectors exercise it.
///
/// The 0x00 / 0x01 prefixes keep a leaf from ever being passed off as an
/// inner node (the RFC 6962 second-preimage defence).
pub(crate) fn leaf_hash(leaf: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(leaf);
    h.finalize().into()
}

/// An inner node: SHA-256(0x01 ‖ left ‖ right).
fn node_hash(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([0x01]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// Why a proof could not be made or does not verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ProofError {
    /// The leaf index is not below the tree size.
    IndexOutOfRange {
        /// The leaf asked for.
        index: u64,
        /// The tree it was asked in.
        size: u64,
    },
    /// A proof was asked for a tree larger than the log holds.
    SizeTooLarge {
        /// The tree size asked for.
        size: u64,
        /// The leaves the log holds.
        len: u64,
    },
    /// A consistency proof from a larger tree to a smaller one.
    SizeMismatch {
        /// The old (first) tree size.
        old: u64,
        /// The new (second) tree size.
        new: u64,
    },
    /// The proof has the wrong number of hashes for its sizes.
    ProofLength {
        /// Hashes the sizes call for.
        expected: usize,
        /// Hashes given.
        actual: usize,
    },
    /// The proof leads to a root other than the one expected.
    RootMismatch {
        /// The size of the tree whose root does not match.
        size: u64,
    },
}

impl fmt::Display for ProofError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::IndexOutOfRange { index, size } => {
                write!(f, "leaf index {index} is out of range for tree size {size}")
            }
            Self::SizeTooLarge { size, len } => {
                write!(f, "tree size {size} exceeds the {len} leaves of the log")
            }
            Self::SizeMismatch { old, new } => {
                write!(f, "old tree size {old} is larger than new tree size {new}")
            }
            Self::ProofLength { expected, actual } => write!(
                f,
                "malformed proof length: expected {expected} hashes, got {actual}"
            ),
            Self::RootMismatch { size } => write!(
                f,
                "root mismatch: the proof does not lead to the expected root of tree size {size}"
            ),
        }
    }
}

impl std::error::Error for ProofError {}

/// The Merkle tree of one node's chain, grown one row at a time.
///
/// Every complete perfect subtree is kept: `levels[0]` holds the leaf hashes,
/// `levels[k][i]` the root of leaves `i·2^k .. (i+1)·2^k`. That costs about
/// twice the memory of the leaf hashes alone (64 bytes a row), and buys the
/// root of any size, and any proof, in O(log n) hashes with no rebuilding:
/// every subtree those need is either stored or a fold of at most log n
/// stored ones.
#[derive(Debug, Clone, Default)]
pub(crate) struct MerkleLog {
    levels: Vec<Vec<[u8; 32]>>,
}

impl MerkleLog {
    /// An empty log.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Appends the row whose `hash` is `row_hash`. Amortised O(1), at most
    /// log n node hashes.
    pub(crate) fn push(&mut self, row_hash: &[u8; 32]) {
        self.push_leaf_hash(leaf_hash(row_hash));
    }

    /// Appends a leaf by its RFC 6962 leaf hash.
    fn push_leaf_hash(&mut self, mut hash: [u8; 32]) {
        let mut level = 0;
        loop {
            if self.levels.len() == level {
                self.levels.push(Vec::new());
            }
            let row = &mut self.levels[level];
            row.push(hash);
            // An odd count means the new node has no sibling yet: nothing
            // above it is complete.
            if row.len() % 2 == 1 {
                return;
            }
            hash = node_hash(&row[row.len() - 2], &row[row.len() - 1]);
            level += 1;
        }
    }

    /// The number of leaves (rows) in the log.
    pub(crate) fn len(&self) -> u64 {
        self.levels.first().map_or(0, |leaves| as_u64(leaves.len()))
    }

    /// The leaf hash at `index`, if the log holds it.
    pub(crate) fn leaf(&self, index: u64) -> Option<&[u8; 32]> {
        let index = usize::try_from(index).ok()?;
        self.levels.first()?.get(index)
    }

    /// The root of the whole log, O(log n).
    pub(crate) fn root(&self) -> [u8; 32] {
        self.subtree(0, self.levels.first().map_or(0, Vec::len))
    }

    /// The root the log had at `size` leaves, O(log n) like [`Self::root`],
    /// since the perfect subtrees of an older tree are all still stored.
    pub(crate) fn root_at(&self, size: u64) -> Result<[u8; 32], ProofError> {
        let size = self.check_size(size)?;
        Ok(self.subtree(0, size))
    }

    /// The RFC 6962 §2.1.1 audit path of leaf `index` in the tree of `size`
    /// leaves, leaf side first; O(log n) hashes.
    pub(crate) fn inclusion_proof(
        &self,
        index: u64,
        size: u64,
    ) -> Result<Vec<[u8; 32]>, ProofError> {
        if index >= size {
            return Err(ProofError::IndexOutOfRange { index, size });
        }
        let size = self.check_size(size)?;
        let index = usize::try_from(index).expect("index < size, and size fits in usize");
        let Ok(path) = inclusion_path(&mut self.nodes(), index, size);
        Ok(path)
    }

    /// The RFC 6962 §2.1.2 consistency proof from the tree of `old` leaves to
    /// the tree of `new` leaves; empty when `old` is 0 or equals `new`.
    /// O(log n) hashes.
    pub(crate) fn consistency_proof(
        &self,
        old: u64,
        new: u64,
    ) -> Result<Vec<[u8; 32]>, ProofError> {
        if old > new {
            return Err(ProofError::SizeMismatch { old, new });
        }
        let new = self.check_size(new)?;
        let old = usize::try_from(old).expect("old <= new, and new fits in usize");
        let Ok(path) = consistency_path(&mut self.nodes(), old, new);
        Ok(path)
    }

    /// The root of the perfect subtree of 2^`level` leaves starting at leaf
    /// `index << level`, if the log holds all of them.
    pub(crate) fn perfect(&self, level: u32, index: usize) -> Option<[u8; 32]> {
        let level = usize::try_from(level).ok()?;
        self.levels.get(level)?.get(index).copied()
    }

    /// The roots a store keeps (levels from [`STORED_FROM_LEVEL`]) that the
    /// log completed since `kept` (per level, how many were handed out
    /// before; updated), as `(level, index, root)`.
    pub(crate) fn new_stored_nodes(&self, kept: &mut Vec<usize>) -> Vec<(u32, u64, [u8; 32])> {
        let mut out = Vec::new();
        let from = usize::try_from(STORED_FROM_LEVEL).expect("a small constant");
        if kept.len() < self.levels.len() {
            kept.resize(self.levels.len(), 0);
        }
        for (level, nodes) in self.levels.iter().enumerate().skip(from) {
            let level_u32 = u32::try_from(level).expect("at most 64 levels");
            for (index, root) in nodes.iter().enumerate().skip(kept[level]) {
                out.push((level_u32, as_u64(index), *root));
            }
            kept[level] = nodes.len();
        }
        out
    }

    /// The log as a source of stored perfect subtrees, which it never lacks.
    fn nodes(&self) -> impl FnMut(u32, usize) -> Result<[u8; 32], std::convert::Infallible> + '_ {
        |level, index| {
            Ok(self
                .perfect(level, index)
                .expect("proofs ask only for subtrees inside the checked size"))
        }
    }

    /// `size` as an index type, once it is known not to exceed the log.
    fn check_size(&self, size: u64) -> Result<usize, ProofError> {
        let len = self.len();
        if size > len {
            return Err(ProofError::SizeTooLarge { size, len });
        }
        Ok(usize::try_from(size).expect("size <= len, which is a Vec length"))
    }

    /// MTH(D[start:start+n]), see [`subtree_root`].
    fn subtree(&self, start: usize, n: usize) -> [u8; 32] {
        let Ok(root) = subtree_root(&mut self.nodes(), start, n);
        root
    }
}

/// MTH(D[start:start+n]) for a range the RFC 6962 recursion produces:
/// `start` is a multiple of the largest power of two not above `n`, so the
/// range splits into perfect subtrees, one per bit of `n`, largest first,
/// each read from `perfect(level, index)`. Folding them from the right
/// gives the RFC's shape.
///
/// The proof functions below take `perfect` as a parameter so that a proof
/// can come from the in-memory [`MerkleLog`] or from subtree roots a store
/// keeps (see `transparency`), by one and the same code.
pub(crate) fn subtree_root<E>(
    perfect: &mut impl FnMut(u32, usize) -> Result<[u8; 32], E>,
    start: usize,
    n: usize,
) -> Result<[u8; 32], E> {
    let mut acc: Option<[u8; 32]> = None;
    for k in 0..usize::BITS {
        let bit = 1_usize << k;
        if bit > n {
            break;
        }
        if n & bit == 0 {
            continue;
        }
        // The part of the range left of this subtree is the sum of the
        // higher bits of `n`.
        let offset = start + (n & !((bit << 1).wrapping_sub(1)));
        let stored = perfect(k, offset >> k)?;
        acc = Some(match acc {
            None => stored,
            Some(right) => node_hash(&stored, &right),
        });
    }
    Ok(acc.unwrap_or(EMPTY_ROOT))
}

/// The audit path of leaf `index` (< `size`), as [`MerkleLog::inclusion_proof`].
pub(crate) fn inclusion_path<E>(
    perfect: &mut impl FnMut(u32, usize) -> Result<[u8; 32], E>,
    index: usize,
    size: usize,
) -> Result<Vec<[u8; 32]>, E> {
    let mut m = index;
    // PATH(m, D[start:start+n]) descended iteratively from the root; the
    // siblings come out root side first, so the path is reversed at the
    // end. Only the first right-hand sibling can be an imperfect tree;
    // everything below it is perfect and read directly.
    let (mut start, mut n) = (0, size);
    let mut proof = Vec::new();
    while n > 1 {
        let k = split(n);
        if m < k {
            proof.push(subtree_root(perfect, start + k, n - k)?);
            n = k;
        } else {
            proof.push(subtree_root(perfect, start, k)?);
            m -= k;
            start += k;
            n -= k;
        }
    }
    proof.reverse();
    Ok(proof)
}

/// The consistency proof from `old` to `new` leaves (`old <= new`), as
/// [`MerkleLog::consistency_proof`].
pub(crate) fn consistency_path<E>(
    perfect: &mut impl FnMut(u32, usize) -> Result<[u8; 32], E>,
    old: usize,
    new: usize,
) -> Result<Vec<[u8; 32]>, E> {
    let mut m = old;
    let mut proof = Vec::new();
    if m == 0 || m == new {
        return Ok(proof);
    }
    // SUBPROOF(m, D[start:start+n], b), iteratively, as for inclusion.
    let (mut start, mut n, mut whole_old_tree) = (0, new, true);
    while m != n {
        let k = split(n);
        if m <= k {
            proof.push(subtree_root(perfect, start + k, n - k)?);
            n = k;
        } else {
            proof.push(subtree_root(perfect, start, k)?);
            m -= k;
            start += k;
            n -= k;
            whole_old_tree = false;
        }
    }
    // The old root itself is left out: the verifier has it.
    if !whole_old_tree {
        proof.push(subtree_root(perfect, start, n)?);
    }
    proof.reverse();
    Ok(proof)
}

/// The largest power of two strictly below `n` (n > 1): where RFC 6962 splits.
fn split(n: usize) -> usize {
    1 << (usize::BITS - 1 - (n - 1).leading_zeros())
}

fn as_u64(n: usize) -> u64 {
    u64::try_from(n).expect("usize is at most 64 bits")
}

/// Checks an inclusion proof (RFC 9162 §2.1.3.2): that the leaf whose leaf
/// hash (see [`leaf_hash`]) is `leaf_hash` is leaf `index` of the tree of
/// `size` leaves whose root is `root`.
///
/// The tree size itself is not bound by the proof, only the tree's shape: a
/// caller must take `size` and `root` from the same signed checkpoint.
pub(crate) fn verify_inclusion(
    leaf_hash: &[u8; 32],
    index: u64,
    size: u64,
    proof: &[[u8; 32]],
    root: &[u8; 32],
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    // Checked up front so that a truncated or padded proof says so, rather
    // than showing up as a root mismatch.
    let (inner, border) = decompose_inclusion(index, size);
    if proof.len() != inner + border {
        return Err(ProofError::ProofLength {
            expected: inner + border,
            actual: proof.len(),
        });
    }
    let (mut fn_, mut sn) = (index, size - 1);
    let mut r = *leaf_hash;
    for p in proof {
        if sn == 0 {
            return Err(ProofError::ProofLength {
                expected: inner + border,
                actual: proof.len(),
            });
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(ProofError::ProofLength {
            expected: inner + border,
            actual: proof.len(),
        });
    }
    if r != *root {
        return Err(ProofError::RootMismatch { size });
    }
    Ok(())
}

/// Checks a consistency proof (RFC 9162 §2.1.4.2): that the tree of
/// `old_size` leaves with root `old_root` is a prefix of the tree of
/// `new_size` leaves with root `new_root`.
///
/// The empty tree (whose root must be [`EMPTY_ROOT`]) is a prefix of every
/// tree, and a tree of its own, each with an empty proof.
pub(crate) fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &[u8; 32],
    new_root: &[u8; 32],
    proof: &[[u8; 32]],
) -> Result<(), ProofError> {
    if old_size > new_size {
        return Err(ProofError::SizeMismatch {
            old: old_size,
            new: new_size,
        });
    }
    if old_size == 0 || old_size == new_size {
        if !proof.is_empty() {
            return Err(ProofError::ProofLength {
                expected: 0,
                actual: proof.len(),
            });
        }
        if old_size == 0 && *old_root != EMPTY_ROOT {
            return Err(ProofError::RootMismatch { size: 0 });
        }
        // Two roots of one tree: blame the newer claim.
        if old_size == new_size && old_root != new_root {
            return Err(ProofError::RootMismatch { size: new_size });
        }
        return Ok(());
    }
    // Now 0 < old_size < new_size. The proof is the inclusion path of leaf
    // old_size - 1, from the largest perfect subtree that ends there (left
    // out when that subtree is the whole old tree: the verifier has it).
    let shift = old_size.trailing_zeros();
    let (inner, border) = decompose_inclusion(old_size - 1, new_size);
    let old_is_perfect = old_size == 1 << shift;
    let expected =
        usize::from(!old_is_perfect) + inner + border - usize::try_from(shift).expect("shift < 64");
    let bad_length = ProofError::ProofLength {
        expected,
        actual: proof.len(),
    };
    if proof.len() != expected {
        return Err(bad_length);
    }

    // RFC 9162 §2.1.4.2, step by step.
    let mut path = proof.iter();
    let seed = if old_is_perfect {
        *old_root
    } else {
        *path.next().ok_or(bad_length.clone())?
    };
    let (mut fn_, mut sn) = (old_size - 1, new_size - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let (mut fr, mut sr) = (seed, seed);
    for c in path {
        if sn == 0 {
            return Err(bad_length);
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(bad_length);
    }
    if fr != *old_root {
        return Err(ProofError::RootMismatch { size: old_size });
    }
    if sr != *new_root {
        return Err(ProofError::RootMismatch { size: new_size });
    }
    Ok(())
}

/// How many hashes the inclusion path of leaf `index` in a tree of `size`
/// leaves has (index < size): `inner` below the point where the path to the
/// leaf and the path to the last leaf part, and `border` above it.
fn decompose_inclusion(index: u64, size: u64) -> (usize, usize) {
    let inner = u64::BITS - (index ^ (size - 1)).leading_zeros();
    // `inner` is 64 for sizes above 2^63: a plain shift would overflow.
    let border = index.checked_shr(inner).unwrap_or(0).count_ones();
    let to_usize = |n: u32| usize::try_from(n).expect("at most 64");
    (to_usize(inner), to_usize(border))
}

#[cfg(test)]
pub(crate) mod tests {
    use proptest::prelude::*;
    use serde_json::Value;

    use super::*;

    pub(crate) use crate::chain::tests::vectors;

    pub(crate) fn hash32(v: &Value) -> [u8; 32] {
        let text = v.as_str().expect("hex string");
        hex::decode(text)
            .expect("hex")
            .try_into()
            .expect("32 bytes")
    }

    fn hashes(v: &Value) -> Vec<[u8; 32]> {
        v.as_array().expect("array").iter().map(hash32).collect()
    }

    /// The log over the vector chain's rows, in `monotonic_seq` order.
    pub(crate) fn vector_log(v: &Value) -> MerkleLog {
        let mut log = MerkleLog::new();
        for (i, row) in v["chain"].as_array().expect("chain").iter().enumerate() {
            assert_eq!(row["monotonic_seq"].as_u64(), Some(as_u64(i) + 1));
            log.push(&hash32(&row["hash"]));
        }
        log
    }

    /// MTH straight from RFC 6962 §2.1, over leaf hashes.
    fn reference_root(leaves: &[[u8; 32]]) -> [u8; 32] {
        match leaves.len() {
            0 => Sha256::digest(b"").into(),
            1 => leaves[0],
            n => {
                let k = split(n);
                node_hash(&reference_root(&leaves[..k]), &reference_root(&leaves[k..]))
            }
        }
    }

    /// PATH(m, D[n]) straight from RFC 6962 §2.1.1.
    fn reference_path(m: usize, leaves: &[[u8; 32]]) -> Vec<[u8; 32]> {
        let n = leaves.len();
        if n <= 1 {
            return Vec::new();
        }
        let k = split(n);
        let (mut path, sibling) = if m < k {
            (
                reference_path(m, &leaves[..k]),
                reference_root(&leaves[k..]),
            )
        } else {
            (
                reference_path(m - k, &leaves[k..]),
                reference_root(&leaves[..k]),
            )
        };
        path.push(sibling);
        path
    }

    /// SUBPROOF(m, D[n], b) straight from RFC 6962 §2.1.2.
    fn reference_subproof(m: usize, leaves: &[[u8; 32]], b: bool) -> Vec<[u8; 32]> {
        let n = leaves.len();
        if m == n {
            return if b {
                Vec::new()
            } else {
                vec![reference_root(leaves)]
            };
        }
        let k = split(n);
        let (mut proof, sibling) = if m <= k {
            (
                reference_subproof(m, &leaves[..k], b),
                reference_root(&leaves[k..]),
            )
        } else {
            (
                reference_subproof(m - k, &leaves[k..], false),
                reference_root(&leaves[..k]),
            )
        };
        proof.push(sibling);
        proof
    }

    /// A log of `n` distinct rows (distinct, so that no two hashes in a
    /// proof can stand in for each other by accident).
    fn log_of(n: usize) -> MerkleLog {
        let mut log = MerkleLog::new();
        for i in 0..n {
            log.push(&Sha256::digest(as_u64(i).to_be_bytes()).into());
        }
        log
    }

    fn leaves(log: &MerkleLog) -> &[[u8; 32]] {
        log.levels.first().map_or(&[], Vec::as_slice)
    }

    fn flip(hash: &[u8; 32], byte: usize, mask: u8) -> [u8; 32] {
        let mut h = *hash;
        h[byte] ^= mask;
        h
    }

    /// The certificate-transparency project's RFC 6962 roots over arbitrary
    /// leaves (`spec/vectors/external.json`), every tree size: fasten's tree
    /// is the standard one, not merely self-consistent.
    #[test]
    fn rfc6962_roots_of_certificate_transparency() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../spec/vectors/external.json"
        );
        let v: Value = serde_json::from_str(&std::fs::read_to_string(path).expect("external.json"))
            .expect("external.json parses");
        let case = &v["rfc6962_merkle_roots"];
        let leaves: Vec<Vec<u8>> = case["leaves_hex"]
            .as_array()
            .expect("leaves")
            .iter()
            .map(|l| hex::decode(l.as_str().expect("hex")).expect("hex"))
            .collect();
        let roots = case["roots_by_size_hex"].as_object().expect("roots");
        assert_eq!(roots.len(), leaves.len());
        let mut log = MerkleLog::new();
        for leaf in &leaves {
            log.push_leaf_hash(leaf_hash(leaf));
        }
        for (size, root) in roots {
            let size: u64 = size.parse().expect("size");
            assert_eq!(
                log.root_at(size).expect("size in range"),
                hash32(root),
                "size {size}"
            );
        }
        assert_eq!(
            hex::encode(log.root()),
            roots["8"].as_str().expect("root 8")
        );
    }

    #[test]
    fn leaf_hashes_match_the_vectors() {
        let v = vectors();
        let log = vector_log(&v);
        let want = hashes(&v["merkle"]["leaf_hashes"]);
        assert_eq!(want.len(), 7);
        assert_eq!(leaves(&log), want.as_slice());
        for (i, row) in v["chain"].as_array().expect("chain").iter().enumerate() {
            assert_eq!(leaf_hash(&hash32(&row["hash"])), want[i]);
            assert_eq!(log.leaf(as_u64(i)), Some(&want[i]));
        }
        assert_eq!(log.leaf(7), None);
    }

    #[test]
    fn roots_by_size_match_the_vectors_incrementally_and_after_the_fact() {
        let v = vectors();
        let full = vector_log(&v);
        let roots = v["merkle"]["roots_by_size"].as_object().expect("roots");
        assert_eq!(roots.len(), 8);
        let mut log = MerkleLog::new();
        let rows = v["chain"].as_array().expect("chain");
        for size in 0..=rows.len() {
            let want = hash32(&roots[&size.to_string()]);
            assert_eq!(log.root(), want, "incremental root at {size}");
            assert_eq!(full.root_at(as_u64(size)), Ok(want), "root_at({size})");
            if let Some(row) = rows.get(size) {
                log.push(&hash32(&row["hash"]));
            }
        }
        assert_eq!(EMPTY_ROOT, hash32(&roots["0"]));
    }

    #[test]
    fn inclusion_vector_is_reproduced_and_verifies() {
        let v = vectors();
        let log = vector_log(&v);
        let case = &v["merkle"]["inclusion"];
        let index = case["leaf_index"].as_u64().expect("leaf_index");
        let size = case["tree_size"].as_u64().expect("tree_size");
        let want = hashes(&case["path"]);
        assert_eq!(log.inclusion_proof(index, size), Ok(want.clone()));
        let leaf = hash32(&v["merkle"]["leaf_hashes"][usize::try_from(index).expect("small")]);
        let root = hash32(&v["merkle"]["roots_by_size"][size.to_string()]);
        assert_eq!(verify_inclusion(&leaf, index, size, &want, &root), Ok(()));
    }

    #[test]
    fn consistency_vector_is_reproduced_and_verifies() {
        let v = vectors();
        let log = vector_log(&v);
        let case = &v["merkle"]["consistency"];
        let old = case["old_size"].as_u64().expect("old_size");
        let new = case["new_size"].as_u64().expect("new_size");
        let want = hashes(&case["proof"]);
        assert_eq!(log.consistency_proof(old, new), Ok(want.clone()));
        let roots = &v["merkle"]["roots_by_size"];
        let (old_root, new_root) = (
            hash32(&roots[old.to_string()]),
            hash32(&roots[new.to_string()]),
        );
        assert_eq!(
            verify_consistency(old, new, &old_root, &new_root, &want),
            Ok(())
        );
    }

    #[test]
    fn every_proof_of_small_trees_matches_the_rfc_and_dies_of_any_flipped_hash() {
        let log = log_of(33);
        let all = leaves(&log);
        for size in 0..=all.len() {
            let s = as_u64(size);
            let root = reference_root(&all[..size]);
            assert_eq!(log.root_at(s), Ok(root));
            for i in 0..size {
                let index = as_u64(i);
                let proof = log.inclusion_proof(index, s).expect("proof");
                assert_eq!(proof, reference_path(i, &all[..size]), "{i} in {size}");
                assert_eq!(verify_inclusion(&all[i], index, s, &proof, &root), Ok(()));
                for e in 0..proof.len() {
                    let mut bad = proof.clone();
                    bad[e] = flip(&bad[e], e % 32, 0x80);
                    assert!(verify_inclusion(&all[i], index, s, &bad, &root).is_err());
                }
            }
            for old in 0..=size {
                let o = as_u64(old);
                let proof = log.consistency_proof(o, s).expect("proof");
                let want = if old == 0 {
                    Vec::new()
                } else {
                    reference_subproof(old, &all[..size], true)
                };
                assert_eq!(proof, want, "{old} to {size}");
                let old_root = reference_root(&all[..old]);
                assert_eq!(verify_consistency(o, s, &old_root, &root, &proof), Ok(()));
                for e in 0..proof.len() {
                    let mut bad = proof.clone();
                    bad[e] = flip(&bad[e], 31 - e % 32, 0x01);
                    assert!(verify_consistency(o, s, &old_root, &root, &bad).is_err());
                }
            }
        }
    }

    #[test]
    fn incremental_root_equals_the_recursive_one_at_every_size() {
        let mut log = MerkleLog::new();
        let mut all = Vec::new();
        for i in 0..160_u64 {
            assert_eq!(log.root(), reference_root(&all));
            assert_eq!(log.len(), i);
            let row: [u8; 32] = Sha256::digest(i.to_le_bytes()).into();
            log.push(&row);
            all.push(leaf_hash(&row));
        }
        assert_eq!(log.root(), reference_root(&all));
    }

    #[test]
    fn empty_and_degenerate_cases() {
        let log = MerkleLog::new();
        assert_eq!(log.len(), 0);
        assert_eq!(log.root(), EMPTY_ROOT);
        assert_eq!(log.root_at(0), Ok(EMPTY_ROOT));
        assert_eq!(log.consistency_proof(0, 0), Ok(Vec::new()));
        assert_eq!(
            verify_consistency(0, 0, &EMPTY_ROOT, &EMPTY_ROOT, &[]),
            Ok(())
        );
        let log = log_of(5);
        let root5 = log.root();
        // The empty tree is a prefix of everything, but only under its root.
        assert_eq!(verify_consistency(0, 5, &EMPTY_ROOT, &root5, &[]), Ok(()));
        assert_eq!(
            verify_consistency(0, 5, &root5, &root5, &[]),
            Err(ProofError::RootMismatch { size: 0 })
        );
        assert_eq!(verify_consistency(5, 5, &root5, &root5, &[]), Ok(()));
        assert_eq!(
            verify_consistency(5, 5, &root5, &EMPTY_ROOT, &[]),
            Err(ProofError::RootMismatch { size: 5 })
        );
        assert_eq!(
            verify_consistency(5, 5, &root5, &root5, &[root5]),
            Err(ProofError::ProofLength {
                expected: 0,
                actual: 1
            })
        );
        let leaf = leaves(&log)[0];
        assert_eq!(verify_inclusion(&leaf, 0, 1, &[], &leaf), Ok(()));
    }

    #[test]
    fn hostile_sizes_are_refused_without_overflow() {
        let (top, max) = (1_u64 << 63, u64::MAX);
        let h = [7; 32];
        let proofs = [vec![h; 64], vec![h; 63], Vec::new()];
        for proof in &proofs {
            for (index, size) in [(0, top + 1), (top, top + 1), (max - 1, max), (0, max)] {
                assert!(verify_inclusion(&h, index, size, proof, &h).is_err());
            }
            for (old, new) in [(1, max), (top, max), (top - 1, top), (max - 1, max)] {
                assert!(verify_consistency(old, new, &h, &h, proof).is_err());
            }
        }
        assert_eq!(decompose_inclusion(0, top + 1), (64, 0));
        assert_eq!(decompose_inclusion(max - 1, max), (0, 63));
    }

    #[test]
    fn error_messages() {
        let log = log_of(7);
        insta::assert_snapshot!(
            log.inclusion_proof(7, 7).unwrap_err(),
            @"leaf index 7 is out of range for tree size 7"
        );
        insta::assert_snapshot!(
            log.inclusion_proof(0, 8).unwrap_err(),
            @"tree size 8 exceeds the 7 leaves of the log"
        );
        insta::assert_snapshot!(
            log.root_at(9).unwrap_err(),
            @"tree size 9 exceeds the 7 leaves of the log"
        );
        insta::assert_snapshot!(
            log.consistency_proof(5, 3).unwrap_err(),
            @"old tree size 5 is larger than new tree size 3"
        );
        let root = log.root();
        let proof = log.inclusion_proof(2, 7).expect("proof");
        let leaf = leaves(&log)[2];
        insta::assert_snapshot!(
            verify_inclusion(&leaf, 2, 7, &proof[1..], &root).unwrap_err(),
            @"malformed proof length: expected 3 hashes, got 2"
        );
        insta::assert_snapshot!(
            verify_inclusion(&leaf, 2, 7, &proof, &EMPTY_ROOT).unwrap_err(),
            @"root mismatch: the proof does not lead to the expected root of tree size 7"
        );
        insta::assert_snapshot!(
            verify_consistency(7, 3, &root, &root, &[]).unwrap_err(),
            @"old tree size 7 is larger than new tree size 3"
        );
        let old_root = log.root_at(3).expect("root");
        let proof = log.consistency_proof(3, 7).expect("proof");
        insta::assert_snapshot!(
            verify_consistency(3, 7, &root, &root, &proof).unwrap_err(),
            @"root mismatch: the proof does not lead to the expected root of tree size 3"
        );
        insta::assert_snapshot!(
            verify_consistency(3, 7, &old_root, &old_root, &proof).unwrap_err(),
            @"root mismatch: the proof does not lead to the expected root of tree size 7"
        );
        let mut long = proof.clone();
        long.push(root);
        insta::assert_snapshot!(
            verify_consistency(3, 7, &old_root, &root, &long).unwrap_err(),
            @"malformed proof length: expected 4 hashes, got 5"
        );
    }

    /// The most rows a property test looks at.
    const MAX_ROWS: usize = 2048;

    /// One log of `MAX_ROWS` rows shared by the property tests, which look
    /// at its prefixes: building a log per case would dominate their time
    /// (SHA-256 is slow in test builds), and `root_at` and the proofs of a
    /// prefix are exactly those of a log of that size.
    fn shared_log() -> &'static MerkleLog {
        static LOG: std::sync::OnceLock<MerkleLog> = std::sync::OnceLock::new();
        LOG.get_or_init(|| log_of(MAX_ROWS))
    }

    /// A tree size up to `MAX_ROWS`, an index below it, and a byte to flip.
    fn tree_and_index() -> impl Strategy<Value = (usize, usize, usize, u8)> {
        (1..=MAX_ROWS).prop_flat_map(|n| (Just(n), 0..n, 0_usize..32, 1_u8..=255))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        #[test]
        fn inclusion_proofs_verify_and_fail_when_altered(
            (n, i, byte, mask) in tree_and_index(),
            element in any::<prop::sample::Index>(),
            other in any::<prop::sample::Index>(),
        ) {
            let log = shared_log();
            let all = &leaves(log)[..n];
            let (size, index) = (as_u64(n), as_u64(i));
            let root = log.root_at(size).expect("root");
            prop_assert_eq!(root, reference_root(all));
            let leaf = all[i];
            let proof = log.inclusion_proof(index, size).expect("proof");
            prop_assert_eq!(&proof, &reference_path(i, all));
            prop_assert_eq!(verify_inclusion(&leaf, index, size, &proof, &root), Ok(()));

            if !proof.is_empty() {
                let mut bad = proof.clone();
                let e = element.index(bad.len());
                bad[e] = flip(&bad[e], byte, mask);
                prop_assert!(verify_inclusion(&leaf, index, size, &bad, &root).is_err());
                let mut short = proof.clone();
                short.remove(e);
                prop_assert!(verify_inclusion(&leaf, index, size, &short, &root).is_err());
            }
            let mut long = proof.clone();
            long.push(root);
            prop_assert!(verify_inclusion(&leaf, index, size, &long, &root).is_err());
            prop_assert!(
                verify_inclusion(&flip(&leaf, byte, mask), index, size, &proof, &root).is_err()
            );
            prop_assert!(
                verify_inclusion(&leaf, index, size, &proof, &flip(&root, byte, mask)).is_err()
            );
            let j = other.index(n);
            if j != i {
                prop_assert!(verify_inclusion(&leaf, as_u64(j), size, &proof, &root).is_err());
            }
            prop_assert!(verify_inclusion(&leaf, size, size, &proof, &root).is_err());
        }

        #[test]
        fn consistency_proofs_fail_when_altered(
            (n, old, byte, mask) in tree_and_index(),
            element in any::<prop::sample::Index>(),
        ) {
            let log = shared_log();
            let all = &leaves(log)[..n];
            let (old, new) = (as_u64(old), as_u64(n));
            let (old_root, root) = (log.root_at(old).expect("root"), log.root_at(new).expect("root"));
            let proof = log.consistency_proof(old, new).expect("proof");
            let want = if old == 0 {
                Vec::new()
            } else {
                reference_subproof(usize::try_from(old).expect("small"), all, true)
            };
            prop_assert_eq!(&proof, &want);
            prop_assert_eq!(verify_consistency(old, new, &old_root, &root, &proof), Ok(()));

            if !proof.is_empty() {
                let mut bad = proof.clone();
                let e = element.index(bad.len());
                bad[e] = flip(&bad[e], byte, mask);
                prop_assert!(verify_consistency(old, new, &old_root, &root, &bad).is_err());
                let mut short = proof.clone();
                short.remove(e);
                prop_assert!(verify_consistency(old, new, &old_root, &root, &short).is_err());
            }
            let mut long = proof.clone();
            long.push(root);
            prop_assert!(verify_consistency(old, new, &old_root, &root, &long).is_err());
            let bad_old = flip(&old_root, byte, mask);
            prop_assert!(verify_consistency(old, new, &bad_old, &root, &proof).is_err());
            // Every tree extends the empty one, so from size 0 no new root
            // can be inconsistent; past that, an altered one must fail.
            if old == 0 {
                return Ok(());
            }
            let bad_new = flip(&root, byte, mask);
            prop_assert!(verify_consistency(old, new, &old_root, &bad_new, &proof).is_err());
            // A history that differs after the old tree is no extension of it.
            let mut forked = all.to_vec();
            forked[n - 1] = flip(&forked[n - 1], byte, mask);
            prop_assert!(
                verify_consistency(old, new, &old_root, &reference_root(&forked), &proof).is_err()
            );
        }
    }

    proptest! {
        // Each case checks every old size, some 40 hashes each.
        #![proptest_config(ProptestConfig::with_cases(4))]

        #[test]
        fn consistency_proofs_verify_for_every_old_size(n in 0..=MAX_ROWS) {
            let log = shared_log();
            let new = as_u64(n);
            let root = log.root_at(new).expect("root");
            prop_assert_eq!(root, reference_root(&leaves(log)[..n]));
            for old in 0..=new {
                let proof = log.consistency_proof(old, new).expect("proof");
                let old_root = log.root_at(old).expect("root");
                prop_assert_eq!(verify_consistency(old, new, &old_root, &root, &proof), Ok(()));
            }
        }
    }
}
