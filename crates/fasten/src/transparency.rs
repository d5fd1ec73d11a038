//! Signed checkpoints over each node's chain (row contract §4).
//!
//! A hash chain alone cannot show that someone with write access re-sealed
//! the store from its first row, or cut off its newest rows. A checkpoint
//! can: it is a node's tree size and RFC 6962 Merkle root, signed with an
//! Ed25519 key as a C2SP signed note and published outside the store. Every
//! later state of the store must contain each published tree as a prefix;
//! [`check_checkpoints`] says which checkpoint a store contradicts.
//!
//! ```no_run
//! # fn main() -> fasten::Result<()> {
//! use fasten::{transparency, Dsn};
//! let keys = transparency::generate_key("audit.example/node-1")?;
//! let dsn = Dsn::parse("FASTEN_AUDIT_DSN", "sqlite:///audit.db")?;
//! let published = transparency::sign_checkpoints(&dsn, &keys.signing_key)?;
//! let notes: Vec<(String, String)> =
//!     published.iter().map(|c| (c.node.clone(), c.note.clone())).collect();
//! let checks = transparency::check_checkpoints(&dsn, &notes, &[keys.verifier_key])?;
//! assert!(checks.iter().all(|c| c.reason.is_none()));
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::io::Write as _;

use sha2::Digest as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;

use serde::{Deserialize, Serialize};

use crate::chain::{self, Row};
use crate::checkpoint::{Checkpoint, Signer, VerifierKey};
use crate::dsn::Dsn;
use crate::error::{Error, ErrorKind, Result};
use crate::merkle::{self, MerkleLog};
use crate::store::{self, Access, Store};

/// A new signing key and its public half.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyPair {
    /// `PRIVATE+KEY+<name>+<key id>+<base64>`: keep it where only its owner
    /// can read it.
    pub signing_key: String,
    /// `<name>+<key id>+<base64>`: give it to whoever verifies.
    pub verifier_key: String,
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPair")
            .field("verifier_key", &self.verifier_key)
            .finish_non_exhaustive()
    }
}

/// One node's signed checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SignedCheckpoint {
    /// The node (chain key).
    pub node: String,
    /// Rows in the node's tree.
    pub size: u64,
    /// The signed note, ready to publish.
    pub note: String,
}

/// How one published checkpoint compares with the store.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CheckpointCheck {
    /// Where the checkpoint came from (a file name), as the caller labelled it.
    pub label: String,
    /// The node it covers, when the note could be read.
    pub node: Option<String>,
    /// Its tree size, when the note could be read.
    pub size: Option<u64>,
    /// Why the store contradicts it, or why it could not be checked; `None`
    /// when the store contains the checkpoint's tree.
    pub reason: Option<String>,
}

fn checkpoint_error(message: String) -> Error {
    Error::new(ErrorKind::Checkpoint, message)
}

fn parse_keys(texts: &[String]) -> Result<Vec<VerifierKey>> {
    texts
        .iter()
        .map(|k| {
            VerifierKey::parse(k)
                .map_err(|e| checkpoint_error(format!("invalid verifier key: {e}")))
        })
        .collect()
}

/// Makes a new Ed25519 signing key named `name` (for example
/// `audit.example/node-1`).
///
/// # Errors
///
/// [`ErrorKind::Checkpoint`] when the name is empty or holds `+`, spaces or
/// control characters.
pub fn generate_key(name: &str) -> Result<KeyPair> {
    let signer = Signer::from_seed(name, &rand::random::<[u8; 32]>())
        .map_err(|e| checkpoint_error(format!("invalid key name {name:?}: {e}")))?;
    Ok(KeyPair {
        signing_key: signer.to_text(),
        verifier_key: signer.verifier_key().to_string(),
    })
}

/// Builds each node's Merkle tree from the store.
fn trees(store: &mut dyn Store) -> Result<HashMap<String, MerkleLog>> {
    let mut trees = HashMap::new();
    for node in store.nodes()? {
        let log = node_log(store, &node.node)?;
        trees.insert(node.node, log);
    }
    Ok(trees)
}

/// One node's Merkle tree over every row's hash, in seq order.
pub(crate) fn node_log(store: &mut dyn Store, node: &str) -> Result<MerkleLog> {
    let mut log = MerkleLog::new();
    let mut bad = None;
    // Only the hash column: the tree needs nothing else, and the other
    // columns are what makes a full scan slow.
    store.scan_hashes(node, 0, i64::MAX, &mut |seq, hash| {
        let mut raw = [0u8; 32];
        if bad.is_none() {
            match hex::decode_to_slice(hash, &mut raw) {
                Ok(()) => log.push(&raw),
                Err(_) => bad = Some(format!("seq {seq}: hash is not 64 hex characters")),
            }
        }
        Ok(())
    })?;
    match bad {
        Some(reason) => Err(checkpoint_error(format!(
            "cannot build the Merkle tree of node {node}: {reason}"
        ))),
        None => Ok(log),
    }
}

/// Signs a checkpoint of every node's chain as the store holds it now, and
/// keeps each in the store's `<table>_checkpoints`.
///
/// # Errors
///
/// [`ErrorKind::Checkpoint`] for a malformed signing key or a row whose hash
/// is not hex; [`ErrorKind::Store`] when the store cannot be read.
pub fn sign_checkpoints(dsn: &Dsn, signing_key: &str) -> Result<Vec<SignedCheckpoint>> {
    let signer = Signer::parse(signing_key)
        .map_err(|e| checkpoint_error(format!("invalid signing key: {e}")))?;
    let mut store = store::open(dsn, Access::Write)?;
    let trees = trees(store.as_mut())?;
    let mut out: Vec<SignedCheckpoint> = trees
        .iter()
        .map(|(node, log)| {
            let node = node.clone();
            let checkpoint = Checkpoint::new(&node, log.len(), log.root())
                .map_err(|e| checkpoint_error(format!("node {node:?}: {e}")))?;
            Ok(SignedCheckpoint {
                size: log.len(),
                note: checkpoint.sign(&[&signer]),
                node,
            })
        })
        .collect::<Result<_>>()?;
    out.sort_by(|a, b| a.node.cmp(&b.node));
    // Kept beside the rows too, so `prove` finds them, with the subtree
    // roots it builds proofs from.
    for c in &out {
        let nodes = trees[&c.node].new_stored_nodes(&mut Vec::new());
        store.save_merkle_nodes(&c.node, &nodes)?;
        store.save_checkpoint(&c.node, c.size, &c.note)?;
    }
    Ok(out)
}

/// Checks published checkpoints (`(label, note)` pairs) against the store.
/// A checkpoint holds when one of `verifier_keys` signed it and the node's
/// first `size` rows in the store have its root.
///
/// # Errors
///
/// [`ErrorKind::Checkpoint`] for a malformed verifier key;
/// [`ErrorKind::Store`] when the store cannot be read. A checkpoint the
/// store contradicts is not an error: its [`CheckpointCheck::reason`] says
/// how.
pub fn check_checkpoints(
    dsn: &Dsn,
    notes: &[(String, String)],
    verifier_keys: &[String],
) -> Result<Vec<CheckpointCheck>> {
    let keys = parse_keys(verifier_keys)?;
    let mut store = store::open(dsn, Access::Read)?;
    let trees = trees(store.as_mut())?;
    Ok(check_against(&trees, notes, &keys))
}

/// [`crate::verify_with_progress`] and [`check_checkpoints`] in one pass
/// over the store: the trees the checkpoints are checked against are built
/// from the rows verify reads anyway.
///
/// # Errors
///
/// As [`crate::verify`] and [`check_checkpoints`].
pub fn verify_with_checkpoints(
    dsn: &Dsn,
    notes: &[(String, String)],
    verifier_keys: &[String],
    progress: impl FnMut(crate::Progress),
) -> Result<(crate::Report, Vec<CheckpointCheck>)> {
    let keys = parse_keys(verifier_keys)?;
    let mut store = store::open(dsn, Access::Read)?;
    let (mut report, trees) =
        crate::verify::verify_store_and_trees(store.as_mut(), progress, true)?;
    let checks = check_against(&trees, notes, &keys);
    // A node no checkpoint vouches for would pass on the store's word alone.
    let mut uncovered: Vec<String> = trees
        .iter()
        .filter(|(node, log)| {
            log.len() > 0
                && !checks
                    .iter()
                    .any(|c| c.reason.is_none() && c.node.as_deref() == Some(node.as_str()))
        })
        .map(|(node, _)| node.clone())
        .collect();
    uncovered.sort();
    report.uncovered_nodes = uncovered;
    Ok((report, checks))
}

/// How each published note compares with the trees of the store's rows.
fn check_against(
    trees: &HashMap<String, MerkleLog>,
    notes: &[(String, String)],
    keys: &[VerifierKey],
) -> Vec<CheckpointCheck> {
    let b64 = base64::engine::general_purpose::STANDARD;
    notes
        .iter()
        .map(|(label, note)| {
            let (checkpoint, _) = match Checkpoint::open(note, keys) {
                Ok(opened) => opened,
                Err(e) => {
                    return CheckpointCheck {
                        label: label.clone(),
                        node: None,
                        size: None,
                        reason: Some(format!("not a valid checkpoint: {e}")),
                    };
                }
            };
            let node = checkpoint.origin().to_owned();
            let size = checkpoint.size();
            let held = trees.get(&node).map_or(0, MerkleLog::len);
            let reason = if held < size {
                Some(format!(
                    "the store holds {held} rows of node {node}, fewer than the {size} this checkpoint signed: rows were cut off or the store was rolled back"
                ))
            } else {
                match trees.get(&node).map(|log| log.root_at(size)) {
                    Some(Ok(root)) if &root == checkpoint.root() => None,
                    Some(Ok(root)) => Some(format!(
                        "the first {size} rows of node {node} have root {}, not the signed {}: history was rewritten or forked",
                        b64.encode(root),
                        b64.encode(checkpoint.root())
                    )),
                    Some(Err(e)) => Some(e.to_string()),
                    None => Some(format!("the store holds no rows of node {node}")),
                }
            };
            CheckpointCheck {
                label: label.clone(),
                node: Some(node),
                size: Some(size),
                reason,
            }
        })
        .collect()
}

/// Publishes a signed note as `dir/<node>/<size>.checkpoint`: temp file,
/// fsync, rename, fsync of the directory, so a reader sees the whole
/// checkpoint or none, even across a crash. Returns the file's path.
///
/// # Errors
///
/// [`ErrorKind::Checkpoint`] when the directory or file cannot be written.
pub fn publish(dir: &Path, node: &str, size: u64, note: &str) -> Result<PathBuf> {
    let io = |what: &str, path: &Path| {
        let what = format!("cannot {what} {}", path.display());
        move |e: std::io::Error| Error::new(ErrorKind::Checkpoint, what).with_source(e)
    };
    // The file name is built only from a node id that passed the rule, so
    // no id can climb out of `dir` or land on another node's files.
    crate::config::check_node_id(node).map_err(|rule| {
        Error::new(
            ErrorKind::Checkpoint,
            format!("cannot publish a checkpoint of node {node:?}: {rule}"),
        )
    })?;
    let node_dir = dir.join(node);
    crate::store::create_private_dir_all(&node_dir).map_err(io("create", &node_dir))?;
    let path = node_dir.join(format!("{size}.checkpoint"));
    let tmp = node_dir.join(format!(".{size}.checkpoint.tmp.{}", std::process::id()));
    {
        let mut file = crate::store::create_private_file(&tmp).map_err(io("create", &tmp))?;
        file.write_all(note.as_bytes()).map_err(io("write", &tmp))?;
        file.sync_all().map_err(io("sync", &tmp))?;
    }
    std::fs::rename(&tmp, &path).map_err(io("rename into", &path))?;
    std::fs::File::open(&node_dir)
        .and_then(|d| d.sync_all())
        .map_err(io("sync", &node_dir))?;
    Ok(path)
}

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

fn hex_path(path: &[[u8; 32]]) -> Vec<String> {
    path.iter().map(hex::encode).collect()
}

/// Subtree roots for proofs, read from the store rather than rebuilt from
/// every row: roots of [`merkle::STORED_FROM_LEVEL`] and up from
/// `<table>_merkle`, smaller ones from the row hashes of the block of 1024
/// rows they lie in. What it gives is checked against the signed root before
/// it is handed out (see [`inclusion_from_store`]).
struct StoredTree<'a> {
    store: &'a mut dyn Store,
    node: &'a str,
    /// Leaf blocks read so far, by block number.
    blocks: HashMap<usize, MerkleLog>,
}

/// Why [`StoredTree`] has no answer.
enum Miss {
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
fn inclusion_from_store(
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
fn consistency_from_store(
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

fn node_tree(store: &mut dyn Store, node: &str) -> Result<MerkleLog> {
    trees(store)?
        .remove(node)
        .ok_or_else(|| checkpoint_error(format!("the store holds no rows of node {node}")))
}

/// The row's leaf index in its node's tree, `monotonic_seq - 1`; a row at
/// seq 0 or below (which verification reports) has none.
fn leaf_index_of(row: &Row) -> Result<u64> {
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

fn parse_path(path: &[String]) -> Result<Vec<[u8; 32]>> {
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

fn open_note(note: &str, keys: &[VerifierKey]) -> Result<Checkpoint> {
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

/// Which rows an evidence pack holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PackFilter {
    /// Rows at or after this instant.
    pub since: Option<jiff::Timestamp>,
    /// Rows before this instant.
    pub until: Option<jiff::Timestamp>,
    /// Only this tenant's rows.
    pub tenant: Option<String>,
    /// Only these codes (any, when empty).
    pub codes: Vec<String>,
}

impl PackFilter {
    fn keeps(&self, row: &Row, since: Option<&str>, until: Option<&str>) -> bool {
        // The contract's timestamp text sorts as the instants do.
        since.is_none_or(|s| row.timestamp.as_str() >= s)
            && until.is_none_or(|u| row.timestamp.as_str() < u)
            && self
                .tenant
                .as_ref()
                .is_none_or(|t| row.tenant_id.as_ref() == Some(t))
            && (self.codes.is_empty() || self.codes.contains(&row.code))
    }
}

/// One row of a pack with its inclusion proof.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PackedRow {
    /// The row, every column.
    pub row: Row,
    /// Its leaf index in its node's tree.
    pub leaf_index: u64,
    /// The audit path to its node's checkpoint in the pack, hex.
    pub path: Vec<String>,
}

/// A self-contained evidence pack: rows, their proofs, the checkpoints the
/// proofs lead to, and the verifier keys. [`verify_pack`] checks it with
/// nothing else. Only sibling hashes of other rows appear in the proofs, so
/// a pack for one tenant reveals nothing of anyone else's rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Pack {
    /// The rows, with their proofs.
    pub rows: Vec<PackedRow>,
    /// One signed checkpoint per node that has rows in the pack.
    pub checkpoints: Vec<String>,
    /// The verifier keys that signed them.
    pub keys: Vec<String>,
}

/// Gathers an evidence pack from the store, proving each selected row
/// against the newest checkpoint kept for its node.
///
/// # Errors
///
/// [`ErrorKind::Checkpoint`] when a selected row is newer than every kept
/// checkpoint of its node (sign one first); [`ErrorKind::Store`] when the
/// store cannot be read.
pub fn export_pack(dsn: &Dsn, filter: &PackFilter, verifier_keys: &[String]) -> Result<Pack> {
    let mut store = store::open(dsn, Access::Read)?;
    let since = filter.since.map(crate::event::format_timestamp);
    let until = filter.until.map(crate::event::format_timestamp);
    let mut rows = Vec::new();
    let mut checkpoints = Vec::new();
    for node in store.nodes()? {
        let mut selected = Vec::new();
        let mut log = MerkleLog::new();
        let mut bad = None;
        store.scan_chain(&node.node, 0, &mut |row| {
            match row {
                Ok(row) => {
                    let mut hash = [0u8; 32];
                    if hex::decode_to_slice(&row.hash, &mut hash).is_err() {
                        bad.get_or_insert(format!("seq {}: hash is not hex", row.monotonic_seq));
                    }
                    log.push(&hash);
                    if filter.keeps(&row, since.as_deref(), until.as_deref()) {
                        selected.push(row);
                    }
                }
                Err(u) => {
                    bad.get_or_insert(u.reason);
                }
            }
            Ok(())
        })?;
        if let Some(reason) = bad {
            return Err(checkpoint_error(format!("node {}: {reason}", node.node)));
        }
        let Some(newest) = selected.last().map(|r| r.monotonic_seq) else {
            continue;
        };
        let (size, note) = store
            .checkpoints(&node.node)?
            .pop()
            .filter(|(size, _)| *size >= u64::try_from(newest).unwrap_or(u64::MAX))
            .ok_or_else(|| {
                checkpoint_error(format!(
                    "no checkpoint of node {} covers seq {newest} yet: sign one first",
                    node.node
                ))
            })?;
        for row in selected {
            let leaf_index = leaf_index_of(&row)?;
            let path = log
                .inclusion_proof(leaf_index, size)
                .map_err(|e| checkpoint_error(e.to_string()))?;
            rows.push(PackedRow {
                row,
                leaf_index,
                path: hex_path(&path),
            });
        }
        checkpoints.push(note);
    }
    Ok(Pack {
        rows,
        checkpoints,
        keys: verifier_keys.to_vec(),
    })
}

/// What [`verify_pack`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PackReport {
    /// Rows whose hash, commitment and inclusion proof hold.
    pub rows: u64,
    /// Of those, rows whose detail was erased.
    pub erased: u64,
    /// `(node, tree size, key names)` of each checkpoint.
    pub checkpoints: Vec<(String, u64, Vec<String>)>,
}

/// Checks an evidence pack with nothing else: every checkpoint is signed by
/// one of the pack's keys (compare those with the keys you trust), and
/// every row matches its hash and commitment and is in its node's tree.
///
/// # Errors
///
/// [`ErrorKind::Checkpoint`] naming the first thing that does not hold.
pub fn verify_pack(pack: &Pack) -> Result<PackReport> {
    let keys = pack
        .keys
        .iter()
        .map(|k| {
            VerifierKey::parse(k)
                .map_err(|e| checkpoint_error(format!("invalid verifier key in the pack: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut by_node = HashMap::new();
    let mut report = PackReport {
        rows: 0,
        erased: 0,
        checkpoints: Vec::new(),
    };
    for note in &pack.checkpoints {
        let (cp, names) = Checkpoint::open(note, &keys).map_err(|e| {
            checkpoint_error(format!("a checkpoint in the pack does not hold: {e}"))
        })?;
        report
            .checkpoints
            .push((cp.origin().to_owned(), cp.size(), names));
        by_node.insert(cp.origin().to_owned(), cp);
    }
    let mut buf = Vec::new();
    for packed in &pack.rows {
        let row = &packed.row;
        let fail = |what: &str| {
            checkpoint_error(format!(
                "row {} (node {}, seq {}): {what}",
                row.id, row.source_node_id, row.monotonic_seq
            ))
        };
        let cp = by_node
            .get(&row.source_node_id)
            .ok_or_else(|| fail("no checkpoint of its node in the pack"))?;
        if chain::row_hash(row, &mut buf) != row.hash {
            return Err(fail("its hash does not match its columns"));
        }
        match (&row.detail, &row.detail_salt) {
            (Some(detail), Some(salt)) => {
                if chain::commitment(salt, detail, &mut buf) != row.detail_commitment {
                    return Err(fail("its detail does not match its commitment"));
                }
            }
            (None, None) => report.erased += 1,
            _ => return Err(fail("detail and salt must be both present or both erased")),
        }
        let mut hash = [0u8; 32];
        hex::decode_to_slice(&row.hash, &mut hash).map_err(|_| fail("its hash is not hex"))?;
        if leaf_index_of(row).ok() != Some(packed.leaf_index) {
            return Err(fail("its leaf index is not seq - 1"));
        }
        merkle::verify_inclusion(
            &merkle::leaf_hash(&hash),
            packed.leaf_index,
            cp.size(),
            &parse_path(&packed.path)?,
            cp.root(),
        )
        .map_err(|e| fail(&format!("its inclusion proof does not hold: {e}")))?;
        report.rows += 1;
    }
    Ok(report)
}

const PACK_FORMAT: &str = "fasten-pack-1";

impl Pack {
    /// Writes the pack as a directory: `rows.jsonl` (each row with its
    /// proof), `checkpoints/<n>.checkpoint`, `keys.txt`, and `manifest.json`
    /// holding the SHA-256 of each of them.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Checkpoint`] when the directory exists or a file cannot
    /// be written.
    pub fn write_dir(&self, dir: &Path) -> Result<()> {
        let io = |what: String| {
            move |e: std::io::Error| Error::new(ErrorKind::Checkpoint, what).with_source(e)
        };
        std::fs::create_dir(dir).map_err(io(format!(
            "cannot create the pack directory {}",
            dir.display()
        )))?;
        std::fs::create_dir(dir.join("checkpoints"))
            .map_err(io("cannot create checkpoints/".to_owned()))?;
        let mut files: Vec<(String, Vec<u8>)> = Vec::new();
        let mut rows = Vec::new();
        for r in &self.rows {
            serde_json::to_writer(&mut rows, r).map_err(|e| {
                Error::new(ErrorKind::Checkpoint, "cannot encode a row").with_source(e)
            })?;
            rows.push(b'\n');
        }
        files.push(("rows.jsonl".to_owned(), rows));
        for (i, note) in self.checkpoints.iter().enumerate() {
            files.push((
                format!("checkpoints/{i}.checkpoint"),
                note.clone().into_bytes(),
            ));
        }
        files.push((
            "keys.txt".to_owned(),
            self.keys
                .iter()
                .map(|k| format!("{k}\n"))
                .collect::<String>()
                .into_bytes(),
        ));
        let mut manifest = serde_json::Map::new();
        for (name, bytes) in &files {
            std::fs::write(dir.join(name), bytes).map_err(io(format!("cannot write {name}")))?;
            manifest.insert(
                name.clone(),
                hex::encode(sha2::Sha256::digest(bytes)).into(),
            );
        }
        let manifest = serde_json::json!({ "format": PACK_FORMAT, "rows": self.rows.len(), "files": manifest });
        let text = serde_json::to_string_pretty(&manifest).map_err(|e| {
            Error::new(ErrorKind::Checkpoint, "cannot encode the manifest").with_source(e)
        })?;
        std::fs::write(dir.join("manifest.json"), text + "\n")
            .map_err(io("cannot write manifest.json".to_owned()))
    }

    /// Reads a pack directory, checking every file against the manifest
    /// (a missing, changed or unlisted file is an error).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Checkpoint`] naming the file that does not match.
    pub fn read_dir(dir: &Path) -> Result<Self> {
        let bad = |what: String| Error::new(ErrorKind::Checkpoint, what);
        let read = |name: &str| {
            std::fs::read(dir.join(name))
                .map_err(|e| bad(format!("cannot read {name} in the pack")).with_source(e))
        };
        let manifest: serde_json::Value =
            crate::canonical::parse_strict_slice(&read("manifest.json")?)
                .map_err(|e| bad("manifest.json is not JSON".to_owned()).with_source(e))?;
        if manifest["format"] != PACK_FORMAT {
            return Err(bad(format!("manifest.json: format is not {PACK_FORMAT}")));
        }
        let listed = manifest["files"]
            .as_object()
            .ok_or_else(|| bad("manifest.json lists no files".to_owned()))?;
        let mut present = vec!["rows.jsonl".to_owned(), "keys.txt".to_owned()];
        for entry in std::fs::read_dir(dir.join("checkpoints"))
            .map_err(|e| bad("cannot read checkpoints/".to_owned()).with_source(e))?
        {
            let name = entry
                .map_err(|e| bad("cannot read checkpoints/".to_owned()).with_source(e))?
                .file_name();
            present.push(format!("checkpoints/{}", name.to_string_lossy()));
        }
        present.sort();
        let mut names: Vec<&String> = listed.keys().collect();
        names.sort();
        if names
            .iter()
            .map(|s| s.as_str())
            .ne(present.iter().map(String::as_str))
        {
            return Err(bad(format!(
                "the pack's files {present:?} are not the ones manifest.json lists {names:?}"
            )));
        }
        let mut files = HashMap::new();
        for (name, want) in listed {
            let bytes = read(name)?;
            if Some(hex::encode(sha2::Sha256::digest(&bytes)).as_str()) != want.as_str() {
                return Err(bad(format!(
                    "{name} does not match its hash in manifest.json"
                )));
            }
            files.insert(name.clone(), bytes);
        }
        let text = |name: &str| {
            String::from_utf8(files[name].clone()).map_err(|_| bad(format!("{name} is not UTF-8")))
        };
        let rows = text("rows.jsonl")?
            .lines()
            .enumerate()
            .map(|(i, line)| {
                // Strictly first: a repeated key inside a detail would
                // otherwise be dropped silently on the way into the row.
                crate::canonical::parse_strict(line)
                    .and_then(serde_json::from_value)
                    .map_err(|e| {
                        bad(format!("rows.jsonl line {}: not a packed row", i + 1)).with_source(e)
                    })
            })
            .collect::<Result<Vec<PackedRow>>>()?;
        let mut checkpoints = Vec::new();
        for name in names.iter().filter(|n| n.starts_with("checkpoints/")) {
            checkpoints.push(text(name)?);
        }
        let keys = text("keys.txt")?
            .lines()
            .map(str::to_owned)
            .filter(|k| !k.is_empty())
            .collect();
        Ok(Self {
            rows,
            checkpoints,
            keys,
        })
    }
}

#[cfg(test)]
#[cfg(feature = "sqlite")]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::chain::Tip;
    use crate::code::{Meta, Registry};
    use crate::{Config, Event};

    /// A pipeline on node `n` of the store in `dir`, signing with `dir/k`
    /// and publishing to `dir/pub`.
    fn pipeline(dir: &Path, dsn: &Dsn) -> crate::Fasten {
        let registry = Registry::new();
        registry
            .register("t", [("THING_DONE", Meta::new("thing", "do"))])
            .unwrap();
        Config::new()
            .service_id("s")
            .node_id("n")
            .audit_dsn(dsn.clone())
            .registry(registry)
            .signing_key(dir.join("k"))
            .checkpoint_every(10)
            .audit_batch_size(5)
            .checkpoint_dir(dir.join("pub"))
            .build()
            .unwrap()
    }

    fn published(dir: &Path) -> Vec<(String, String)> {
        let mut notes: Vec<(String, String)> = std::fs::read_dir(dir.join("pub/n"))
            .unwrap()
            .map(|e| {
                let p = e.unwrap().path();
                (
                    p.display().to_string(),
                    std::fs::read_to_string(&p).unwrap(),
                )
            })
            .collect();
        notes.sort();
        notes
    }

    /// A store of `rows` rows on node `n`, signed as it was written, the
    /// published checkpoints, and the verifier key.
    fn signed_store(dir: &Path, rows: usize) -> (Dsn, Vec<(String, String)>, String) {
        let keys = generate_key("test.example/n").unwrap();
        std::fs::write(dir.join("k"), &keys.signing_key).unwrap();
        let dsn = Dsn::parse(
            "FASTEN_AUDIT_DSN",
            &format!("sqlite:///{}", dir.join("a.db").display()),
        )
        .unwrap();
        let fasten = pipeline(dir, &dsn);
        for i in 0..rows {
            fasten
                .emit(Event::new("THING_DONE").target(format!("t-{i}")))
                .unwrap();
        }
        fasten.shutdown(Duration::from_secs(10)).unwrap();
        (dsn, published(dir), keys.verifier_key)
    }

    #[test]
    fn replacing_an_old_row_and_resealing_from_there_is_caught() {
        let dir = tempfile::tempdir().unwrap();
        let (dsn, notes, key) = signed_store(dir.path(), 50);
        assert!(
            check_checkpoints(&dsn, &notes, std::slice::from_ref(&key))
                .unwrap()
                .iter()
                .all(|c| c.reason.is_none())
        );
        // The attacker changes row 10 and re-seals rows 10..50, so the hash
        // chain is whole again.
        let mut store = store::open(&dsn, Access::Read).unwrap();
        let mut rows = Vec::new();
        store
            .scan_chain("n", 0, &mut |r| {
                rows.push(r.unwrap());
                Ok(())
            })
            .unwrap();
        drop(store);
        let conn = rusqlite::Connection::open(dir.path().join("a.db")).unwrap();
        let mut tip = Tip {
            seq: 9,
            hash: rows[8].hash.clone(),
        };
        let mut buf = Vec::new();
        rows[9].target = "forged".to_owned();
        for row in &mut rows[9..] {
            chain::link(row, &mut tip, &mut buf).unwrap();
            conn.execute(
                "UPDATE audit_log SET target = ?1, prev_hash = ?2, hash = ?3 WHERE id = ?4",
                rusqlite::params![row.target, row.prev_hash, row.hash, row.id],
            )
            .unwrap();
        }
        assert!(crate::verify(&dsn).unwrap().ok, "the chain alone is fooled");
        let checks = check_checkpoints(&dsn, &notes, &[key]).unwrap();
        // Checkpoints before row 10 still hold; every later one names the rewrite.
        for c in &checks {
            let size = c.size.unwrap();
            if size < 10 {
                assert_eq!(c.reason, None, "{c:?}");
            } else {
                assert!(
                    c.reason
                        .as_deref()
                        .unwrap()
                        .contains("history was rewritten"),
                    "{c:?}"
                );
            }
        }
        assert!(checks.iter().any(|c| c.size.unwrap() >= 10));
    }

    #[test]
    fn proofs_read_kept_roots_and_fall_back_when_they_are_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let (dsn, _, key) = signed_store(dir.path(), 2100);
        let keys = std::slice::from_ref(&key);
        let conn = rusqlite::Connection::open(dir.path().join("a.db")).unwrap();
        // Blocks 0 and 1 of 1024 rows are complete, and the 2048 above them.
        let kept: Vec<(i64, i64)> = conn
            .prepare("SELECT level, idx FROM audit_log_merkle WHERE source_node_id = 'n' ORDER BY level, idx")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(kept, [(10, 0), (10, 1), (11, 0)]);
        let id = |seq: i64| -> String {
            conn.query_row(
                "SELECT id FROM audit_log WHERE monotonic_seq = ?1",
                [seq],
                |r| r.get(0),
            )
            .unwrap()
        };
        let proves = |seq: i64| {
            prove_row(&dsn, &id(seq))
                .and_then(|p| verify_proof(&p, keys))
                .map_err(|e| e.to_string())
        };
        for seq in [1, 5, 1024, 1025, 2048, 2049, 2100] {
            proves(seq).unwrap();
        }
        verify_proof(&prove_consistency(&dsn, "n", 1030, 2100).unwrap(), keys).unwrap();

        // A wrong kept root leads elsewhere than the signed root: the proof
        // is rebuilt from the rows and still holds.
        let good: String = conn
            .query_row(
                "SELECT hash FROM audit_log_merkle WHERE level = 10 AND idx = 1",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let set_root = |hash: &str| {
            conn.execute(
                "UPDATE audit_log_merkle SET hash = ?1 WHERE level = 10 AND idx = 1",
                [hash],
            )
            .unwrap()
        };
        set_root(&"00".repeat(32));
        proves(5).unwrap();
        verify_proof(&prove_consistency(&dsn, "n", 1030, 2100).unwrap(), keys).unwrap();
        set_root(&good);

        // With the roots kept, proving row 5 never reads the rows of block 1:
        // hashes there that no rebuild could read do not stop it, while a
        // row of that block, which needs them, can no longer be proven.
        conn.execute(
            "UPDATE audit_log SET hash = 'not hex' WHERE monotonic_seq BETWEEN 1100 AND 1200",
            [],
        )
        .unwrap();
        proves(5).unwrap();
        proves(2100).unwrap();
        assert!(proves(1150).unwrap_err().contains("not 64 hex"));
    }

    #[test]
    fn restoring_an_older_backup_is_caught() {
        let dir = tempfile::tempdir().unwrap();
        let (dsn, _, key) = signed_store(dir.path(), 20);
        // A backup of the first 20 rows, then 20 more rows are written and signed.
        std::fs::copy(dir.path().join("a.db"), dir.path().join("backup.db")).unwrap();
        std::fs::remove_dir_all(dir.path().join("pub")).unwrap();
        let fasten = pipeline(dir.path(), &dsn);
        for _ in 0..20 {
            fasten.emit(Event::new("THING_DONE")).unwrap();
        }
        fasten.shutdown(Duration::from_secs(10)).unwrap();
        let notes = published(dir.path());
        assert!(!notes.is_empty());
        // Roll the database back to the backup.
        let _ = std::fs::remove_file(dir.path().join("a.db-wal"));
        let _ = std::fs::remove_file(dir.path().join("a.db-shm"));
        std::fs::copy(dir.path().join("backup.db"), dir.path().join("a.db")).unwrap();
        assert!(crate::verify(&dsn).unwrap().ok, "the chain alone is fooled");
        let checks = check_checkpoints(&dsn, &notes, &[key]).unwrap();
        assert!(
            checks
                .iter()
                .all(|c| c.reason.as_deref().unwrap().contains("rolled back")),
            "{checks:?}"
        );
    }
}
