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

mod checkpoints;
mod pack;
mod proof;
#[cfg(test)]
#[cfg(feature = "sqlite")]
mod tests;

pub use self::checkpoints::*;
pub use self::pack::*;
pub use self::proof::*;
