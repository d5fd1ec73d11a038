//! Signing, publishing and checking checkpoints.

use super::*;

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

pub(super) fn checkpoint_error(message: String) -> Error {
    Error::new(ErrorKind::Checkpoint, message)
}

pub(super) fn parse_keys(texts: &[String]) -> Result<Vec<VerifierKey>> {
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
pub(super) fn trees(store: &mut dyn Store) -> Result<HashMap<String, MerkleLog>> {
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
pub(super) fn check_against(
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
