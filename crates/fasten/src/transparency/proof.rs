//! Inclusion and consistency proofs, made from the store and checked offline.

use super::*;

/// A proof, as `fasten prove` writes it and `fasten verify-proof` reads it:
/// everything needed to check it offline except the verifier key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Proof {
    /// One row is in the tree a checkpoint signed (RFC 6962 §2.1.1).
    Inclusion {
        /// The row, every column: its hash is recomputed, not trusted.
        row: Box<Row>,
        /// Its leaf index (`monotonic_seq - 1`).
        leaf_index: u64,
        /// The audit path, hex.
        path: Vec<String>,
        /// The signed checkpoint the path leads to.
        checkpoint: String,
    },
    /// A later checkpoint's tree extends an earlier one's (RFC 6962 §2.1.2).
    Consistency {
        /// The earlier signed checkpoint.
        old_checkpoint: String,
        /// The later signed checkpoint.
        new_checkpoint: String,
        /// The consistency proof, hex.
        path: Vec<String>,
    },
}

pub(super) fn hex_path(path: &[[u8; 32]]) -> Vec<String> {
    path.iter().map(hex::encode).collect()
}

/// Subtree roots for proofs, read from the store rather than rebuilt from
/// every row: roots of [`merkle::STORED_FROM_LEVEL`] and up from
/// `<table>_merkle`, smaller ones from the row hashes of the block of 1024
/// rows they lie in. What it gives is checked against the signed root before
/// it is handed out (see [`inclusion_from_store`]).
pub(super) struct StoredTree<'a> {
    store: &'a mut dyn Store,
    node: &'a str,
    /// Leaf blocks read so far, by block number.
    blocks: HashMap<usize, MerkleLog>,
}

/// Why [`StoredTree`] has no answer.
pub(super) enum Miss {
    /// The root is not kept, or the rows of its block are not a whole run
    /// of hex hashes: build the tree from every row instead.
    NotKept,
    /// The store failed.
    Store(Error),
}

impl StoredTree<'_> {
    fn perfect(&mut self, level: u32, index: usize) -> std::result::Result<[u8; 32], Miss> {
        if level >= merkle::STORED_FROM_LEVEL {
            let index = u64::try_from(index).map_err(|_| Miss::NotKept)?;
            let text = self
                .store
                .merkle_node(self.node, level, index)
                .map_err(Miss::Store)?
                .ok_or(Miss::NotKept)?;
            let mut root = [0u8; 32];
            hex::decode_to_slice(text, &mut root).map_err(|_| Miss::NotKept)?;
            return Ok(root);
        }
        let shift = merkle::STORED_FROM_LEVEL - level;
        let block = index >> shift;
        if !self.blocks.contains_key(&block) {
            let after =
                i64::try_from(block << merkle::STORED_FROM_LEVEL).map_err(|_| Miss::NotKept)?;
            let upto = after + (1 << merkle::STORED_FROM_LEVEL);
            let mut log = MerkleLog::new();
            let mut whole = true;
            self.store
                .scan_hashes(self.node, after, upto, &mut |seq, hash| {
                    let mut raw = [0u8; 32];
                    let next = after + 1 + i64::try_from(log.len()).unwrap_or(i64::MAX);
                    if whole && seq == next && hex::decode_to_slice(hash, &mut raw).is_ok() {
                        log.push(&raw);
                    } else {
                        whole = false;
                    }
                    Ok(())
                })
                .map_err(Miss::Store)?;
            if !whole {
                return Err(Miss::NotKept);
            }
            self.blocks.insert(block, log);
        }
        self.blocks[&block]
            .perfect(level, index - (block << shift))
            .ok_or(Miss::NotKept)
    }
}

/// The audit path of leaf `index` in the tree of `size` rows that `note`
/// signed: from kept roots when the path they give leads to the note's root
/// (O(log n) reads), else from the whole tree rebuilt from every row, as
/// before roots were kept.
pub(super) fn inclusion_from_store(
    store: &mut dyn Store,
    node: &str,
    index: u64,
    size: u64,
    note: &str,
) -> Result<Vec<[u8; 32]>> {
    if let (Some(cp), Ok(i), Ok(n)) = (
        Checkpoint::parse_unverified(note).filter(|cp| cp.size() == size && index < size),
        usize::try_from(index),
        usize::try_from(size),
    ) {
        let mut tree = StoredTree {
            store: &mut *store,
            node,
            blocks: HashMap::new(),
        };
        let path = merkle::inclusion_path(&mut |l, k| tree.perfect(l, k), i, n);
        match path.and_then(|path| Ok((tree.perfect(0, i)?, path))) {
            Ok((leaf, path)) => {
                if merkle::verify_inclusion(&leaf, index, size, &path, cp.root()).is_ok() {
                    return Ok(path);
                }
                tracing::debug!(target: "fasten::store", node, size, "kept Merkle roots do not lead to the signed root; rebuilding the tree");
            }
            Err(Miss::Store(e)) => return Err(e),
            Err(Miss::NotKept) => {}
        }
    }
    node_tree(store, node)?
        .inclusion_proof(index, size)
        .map_err(|e| checkpoint_error(e.to_string()))
}

/// The consistency proof between the trees two notes signed, as
/// [`inclusion_from_store`] does it.
pub(super) fn consistency_from_store(
    store: &mut dyn Store,
    node: &str,
    (old, old_note): (u64, &str),
    (new, new_note): (u64, &str),
) -> Result<Vec<[u8; 32]>> {
    let parsed = (
        Checkpoint::parse_unverified(old_note).filter(|cp| cp.size() == old),
        Checkpoint::parse_unverified(new_note).filter(|cp| cp.size() == new),
    );
    if let ((Some(o), Some(n)), Ok(m), Ok(k)) = (parsed, usize::try_from(old), usize::try_from(new))
        && m <= k
    {
        let mut tree = StoredTree {
            store: &mut *store,
            node,
            blocks: HashMap::new(),
        };
        match merkle::consistency_path(&mut |l, i| tree.perfect(l, i), m, k) {
            Ok(path) => {
                if merkle::verify_consistency(old, new, o.root(), n.root(), &path).is_ok() {
                    return Ok(path);
                }
            }
            Err(Miss::Store(e)) => return Err(e),
            Err(Miss::NotKept) => {}
        }
    }
    node_tree(store, node)?
        .consistency_proof(old, new)
        .map_err(|e| checkpoint_error(e.to_string()))
}

pub(super) fn node_tree(store: &mut dyn Store, node: &str) -> Result<MerkleLog> {
    trees(store)?
        .remove(node)
        .ok_or_else(|| checkpoint_error(format!("the store holds no rows of node {node}")))
}

/// The row's leaf index in its node's tree, `monotonic_seq - 1`; a row at
/// seq 0 or below (which verification reports) has none.
pub(super) fn leaf_index_of(row: &Row) -> Result<u64> {
    row.monotonic_seq
        .checked_sub(1)
        .and_then(|i| u64::try_from(i).ok())
        .ok_or_else(|| {
            checkpoint_error(format!(
                "row {} has monotonic_seq {}, outside its chain (seq starts at 1): it is in no Merkle tree and has no proof; run fasten verify",
                row.id, row.monotonic_seq
            ))
        })
}

/// An inclusion proof of row `id` against the newest checkpoint kept in the
/// store that covers it.
///
/// # Errors
///
/// [`ErrorKind::Checkpoint`] when there is no such row or no checkpoint
/// covers it yet; [`ErrorKind::Store`] when the store cannot be read.
pub fn prove_row(dsn: &Dsn, id: &str) -> Result<Proof> {
    let mut store = store::open(dsn, Access::Read)?;
    let row = store
        .get(id)?
        .ok_or_else(|| checkpoint_error(format!("no row with id {id:?}")))?;
    let node = row.source_node_id.clone();
    // Leaf i holds seq i + 1: a row at seq 0 or below is in no tree (and
    // fails verification), so it has no proof; never a wrapped index.
    let seq = leaf_index_of(&row)? + 1;
    let (size, note) = store
        .checkpoints(&node)?
        .into_iter()
        .rev()
        .find(|(size, _)| *size >= seq)
        .ok_or_else(|| {
            checkpoint_error(format!(
                "no checkpoint of node {node} covers seq {seq} yet (sign one with a FASTEN_SIGNING_KEY writer or `fasten checkpoint`)"
            ))
        })?;
    let path = inclusion_from_store(store.as_mut(), &node, seq - 1, size, &note)?;
    Ok(Proof::Inclusion {
        row: Box::new(row),
        leaf_index: seq - 1,
        path: hex_path(&path),
        checkpoint: note,
    })
}

/// A consistency proof between two checkpoints of `node` kept in the store,
/// of tree sizes `old` and `new`.
///
/// # Errors
///
/// [`ErrorKind::Checkpoint`] when either checkpoint is not kept or
/// `old > new`; [`ErrorKind::Store`] when the store cannot be read.
pub fn prove_consistency(dsn: &Dsn, node: &str, old: u64, new: u64) -> Result<Proof> {
    let mut store = store::open(dsn, Access::Read)?;
    let kept = store.checkpoints(node)?;
    let note = |size: u64| {
        kept.iter()
            .find(|(s, _)| *s == size)
            .map(|(_, n)| n.clone())
            .ok_or_else(|| {
                checkpoint_error(format!(
                    "no checkpoint of size {size} is kept for node {node}"
                ))
            })
    };
    let (old_checkpoint, new_checkpoint) = (note(old)?, note(new)?);
    if old > new {
        return Err(checkpoint_error(
            merkle::ProofError::SizeMismatch { old, new }.to_string(),
        ));
    }
    let path = consistency_from_store(
        store.as_mut(),
        node,
        (old, &old_checkpoint),
        (new, &new_checkpoint),
    )?;
    Ok(Proof::Consistency {
        old_checkpoint,
        new_checkpoint,
        path: hex_path(&path),
    })
}

pub(super) fn parse_path(path: &[String]) -> Result<Vec<[u8; 32]>> {
    path.iter()
        .map(|h| {
            let mut out = [0u8; 32];
            hex::decode_to_slice(h, &mut out).map_err(|_| {
                checkpoint_error(format!("proof element {h:?} is not 64 hex characters"))
            })?;
            Ok(out)
        })
        .collect()
}

pub(super) fn open_note(note: &str, keys: &[VerifierKey]) -> Result<Checkpoint> {
    Checkpoint::open(note, keys)
        .map(|(c, _)| c)
        .map_err(|e| checkpoint_error(format!("not a valid checkpoint: {e}")))
}

/// Checks a proof offline against `verifier_keys`; returns what it proves,
/// in one sentence.
///
/// # Errors
///
/// [`ErrorKind::Checkpoint`] naming what does not hold: a checkpoint not
/// signed by a known key, a row whose hash or commitment does not match its
/// columns, or a path that does not lead to the signed root.
pub fn verify_proof(proof: &Proof, verifier_keys: &[String]) -> Result<String> {
    let keys = parse_keys(verifier_keys)?;
    match proof {
        Proof::Inclusion {
            row,
            leaf_index,
            path,
            checkpoint,
        } => {
            let cp = open_note(checkpoint, &keys)?;
            if cp.origin() != row.source_node_id {
                return Err(checkpoint_error(format!(
                    "the checkpoint covers node {}, the row is of node {}",
                    cp.origin(),
                    row.source_node_id
                )));
            }
            let mut buf = Vec::new();
            if chain::row_hash(row, &mut buf) != row.hash {
                return Err(checkpoint_error(
                    "the row's hash does not match its columns".to_owned(),
                ));
            }
            if let (Some(detail), Some(salt)) = (&row.detail, &row.detail_salt)
                && chain::commitment(salt, detail, &mut buf) != row.detail_commitment
            {
                return Err(checkpoint_error(
                    "the row's detail does not match its commitment".to_owned(),
                ));
            }
            let mut hash = [0u8; 32];
            hex::decode_to_slice(&row.hash, &mut hash)
                .map_err(|_| checkpoint_error("the row's hash is not hex".to_owned()))?;
            merkle::verify_inclusion(
                &merkle::leaf_hash(&hash),
                *leaf_index,
                cp.size(),
                &parse_path(path)?,
                cp.root(),
            )
            .map_err(|e| checkpoint_error(format!("the inclusion proof does not hold: {e}")))?;
            Ok(format!(
                "row {} (node {}, seq {}) is in the tree of size {} that the checkpoint signed",
                row.id,
                row.source_node_id,
                row.monotonic_seq,
                cp.size()
            ))
        }
        Proof::Consistency {
            old_checkpoint,
            new_checkpoint,
            path,
        } => {
            let old = open_note(old_checkpoint, &keys)?;
            let new = open_note(new_checkpoint, &keys)?;
            if old.origin() != new.origin() {
                return Err(checkpoint_error(format!(
                    "the checkpoints cover different nodes, {} and {}",
                    old.origin(),
                    new.origin()
                )));
            }
            merkle::verify_consistency(
                old.size(),
                new.size(),
                old.root(),
                new.root(),
                &parse_path(path)?,
            )
            .map_err(|e| checkpoint_error(format!("the consistency proof does not hold: {e}")))?;
            Ok(format!(
                "node {}'s tree of size {} extends its tree of size {}",
                new.origin(),
                new.size(),
                old.size()
            ))
        }
    }
}
