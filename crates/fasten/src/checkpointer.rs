//! The writer's side of signed checkpoints: it keeps its node's Merkle tree
//! up to date as batches commit and signs a checkpoint every
//! `FASTEN_CHECKPOINT_EVERY` rows, every `FASTEN_CHECKPOINT_INTERVAL`, and
//! at flush and shutdown, whichever comes first. Each goes to the store's
//! `<table>_checkpoints`, when `FASTEN_CHECKPOINT_DIR` is set to a file there
//! (see [`crate::transparency::publish`]), and when
//! `FASTEN_CHECKPOINT_WITNESS_URL` is set, to that HTTP witness.
//!
//! The tree is built once at start-up from the node's chain (O(n)), then
//! grows with each commit (O(log n) a row). With each checkpoint the roots of
//! its newly completed subtrees of 1024 rows and more go to `<table>_merkle`,
//! from which `prove` builds proofs without reading every row. Rows of the same node written by
//! other processes show up as a gap before a batch's first seq; they are
//! read back from the store, so the tree always covers the whole chain.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
#[cfg(feature = "witness")]
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::chain::Row;
use crate::checkpoint::{Checkpoint, Signer};
use crate::error::{Error, ErrorKind, Result};
use crate::merkle::MerkleLog;
use crate::store::Store;

/// What the pipeline was configured with.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) signer: Signer,
    pub(crate) every: u64,
    pub(crate) interval: Duration,
    pub(crate) dir: Option<PathBuf>,
    #[cfg(feature = "witness")]
    pub(crate) witness: Option<Witness>,
}

/// An HTTP witness: each signed note is POSTed to it as `text/plain` by a
/// thread of its own, so a slow or unreachable witness never holds up the
/// writer. Notes wait in a bounded backlog; one that finds it full is not
/// sent (a later checkpoint covers its rows anyway). Both that and a failed
/// POST are counted ([`QueueStats::witness_failures`](crate::QueueStats)).
#[cfg(feature = "witness")]
#[derive(Debug, Clone)]
pub(crate) struct Witness {
    tx: crossbeam_channel::Sender<String>,
    failures: Arc<AtomicU64>,
}

#[cfg(feature = "witness")]
impl Witness {
    /// How long one POST may take (on the witness thread).
    const TIMEOUT: Duration = Duration::from_secs(5);
    /// Notes waiting for the witness thread at most.
    pub(crate) const BACKLOG: usize = 16;

    /// Starts the witness thread; it ends when the last handle is dropped.
    pub(crate) fn new(url: String) -> Result<Self> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Self::TIMEOUT))
            .build()
            .into();
        let (tx, rx) = crossbeam_channel::bounded::<String>(Self::BACKLOG);
        let failures = Arc::new(AtomicU64::new(0));
        let failed = Arc::clone(&failures);
        std::thread::Builder::new()
            .name("fasten-witness".into())
            .spawn(move || {
                for note in rx {
                    if let Err(e) = agent
                        .post(&url)
                        .header("content-type", "text/plain; charset=utf-8")
                        .send(note.as_str())
                    {
                        failed.fetch_add(1, Ordering::Relaxed);
                        tracing::error!(target: "fasten::writer", url = %url, error = %e, "the witness did not take the checkpoint");
                    }
                }
            })
            .map_err(|e| {
                Error::new(ErrorKind::Checkpoint, "cannot start the witness thread").with_source(e)
            })?;
        Ok(Self { tx, failures })
    }

    /// Hands the note to the witness thread without waiting.
    fn publish(&self, note: &str) {
        if self.tx.try_send(note.to_owned()).is_err() {
            self.failures.fetch_add(1, Ordering::Relaxed);
            tracing::error!(target: "fasten::writer", backlog = Self::BACKLOG, "the witness backlog is full; checkpoint not sent to the witness");
        }
    }

    /// The count of notes the witness did not take.
    pub(crate) fn failures(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.failures)
    }
}

#[derive(Debug)]
pub(crate) struct Checkpointer {
    settings: Settings,
    node: String,
    log: MerkleLog,
    signed: u64,
    last: Instant,
    /// Per tree level, how many subtree roots are kept in the store already
    /// (see [`MerkleLog::new_stored_nodes`]).
    kept: Vec<usize>,
}

fn decode_hash(seq: i64, hex_hash: &str) -> Result<[u8; 32]> {
    let mut hash = [0u8; 32];
    hex::decode_to_slice(hex_hash, &mut hash).map_err(|_| {
        Error::new(
            ErrorKind::Checkpoint,
            format!("seq {seq}: hash is not 64 hex characters"),
        )
    })?;
    Ok(hash)
}

impl Checkpointer {
    /// The witness's failure count, when there is a witness.
    pub(crate) fn witness_failures(&self) -> Option<Arc<AtomicU64>> {
        #[cfg(feature = "witness")]
        return self.settings.witness.as_ref().map(Witness::failures);
        #[cfg(not(feature = "witness"))]
        None
    }

    /// Builds the node's tree from the store.
    pub(crate) fn load(store: &mut dyn Store, node: &str, settings: Settings) -> Result<Self> {
        let mut checkpointer = Self {
            settings,
            node: node.to_owned(),
            log: MerkleLog::new(),
            signed: 0,
            last: Instant::now(),
            kept: Vec::new(),
        };
        checkpointer.catch_up(store)?;
        // What was there at start-up was signed by whoever wrote it.
        checkpointer.signed = checkpointer.log.len();
        Ok(checkpointer)
    }

    /// Appends every stored row of the node the tree does not have yet.
    fn catch_up(&mut self, store: &mut dyn Store) -> Result<()> {
        let after = i64::try_from(self.log.len()).unwrap_or(i64::MAX);
        let log = &mut self.log;
        // Only the hash column: start-up reads the whole chain once.
        store.scan_hashes(&self.node, after, i64::MAX, &mut |seq, hash| {
            log.push(&decode_hash(seq, hash)?);
            Ok(())
        })
    }

    /// Takes in a committed batch (rows in seq order), then signs if due.
    pub(crate) fn committed(&mut self, store: &mut dyn Store, rows: &[Row]) -> Result<()> {
        let Some(first) = rows.first() else {
            return Ok(());
        };
        let next = i64::try_from(self.log.len()).unwrap_or(i64::MAX) + 1;
        if first.monotonic_seq == next {
            for row in rows {
                self.log.push(&decode_hash(row.monotonic_seq, &row.hash)?);
            }
        } else {
            // Other writers of this node got in between: read what we miss.
            self.catch_up(store)?;
        }
        if self.log.len() - self.signed >= self.settings.every {
            self.sign(store)?;
        }
        Ok(())
    }

    /// Signs when the interval has passed and there is something new (also
    /// rows other processes of this node wrote).
    pub(crate) fn tick(&mut self, store: &mut dyn Store) -> Result<()> {
        if self.last.elapsed() < self.settings.interval {
            return Ok(());
        }
        self.last = Instant::now();
        self.catch_up(store)?;
        if self.log.len() > self.signed {
            self.sign(store)?;
        }
        Ok(())
    }

    /// Signs now if anything is unsigned (flush, shutdown).
    pub(crate) fn sign_pending(&mut self, store: &mut dyn Store) -> Result<()> {
        if self.log.len() > self.signed {
            self.sign(store)?;
        }
        Ok(())
    }

    fn sign(&mut self, store: &mut dyn Store) -> Result<()> {
        let size = self.log.len();
        let checkpoint = Checkpoint::new(&self.node, size, self.log.root())
            .map_err(|e| Error::new(ErrorKind::Checkpoint, e.to_string()))?;
        let note = checkpoint.sign(&[&self.settings.signer]);
        // The subtree roots first, so that every kept checkpoint can be
        // proven from kept roots (the first time, all the tree has: rows
        // written before this process, or before roots were kept).
        let mut kept = self.kept.clone();
        store.save_merkle_nodes(&self.node, &self.log.new_stored_nodes(&mut kept))?;
        self.kept = kept;
        store.save_checkpoint(&self.node, size, &note)?;
        if let Some(dir) = &self.settings.dir {
            publish(dir, &self.node, size, &note)?;
        }
        // Last, and never waited for: the witness thread posts it.
        #[cfg(feature = "witness")]
        if let Some(witness) = &self.settings.witness {
            witness.publish(&note);
        }
        self.signed = size;
        self.last = Instant::now();
        tracing::debug!(target: "fasten::writer", node = %self.node, size, "checkpoint signed");
        Ok(())
    }
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
