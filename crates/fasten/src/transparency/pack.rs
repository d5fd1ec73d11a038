//! Evidence packs: rows with their proofs, verifiable without the store.

use super::*;

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

pub(super) const PACK_FORMAT: &str = "fasten-pack-1";

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
