//! The code registry: every audit event names a registered code that types it.
//!
//! A code (`ORDER_PLACED`) belongs to a domain (`sales`) and carries its
//! [`Meta`]: category, action, default severity, retention class and whether
//! the event's detail holds personal data. `emit` looks the code up on every
//! call and rejects codes that no registry declares, so the set of things an
//! audit trail can say is fixed and reviewable.
//!
//! Codes are declared in Rust with [`Registry::register`] or in YAML files
//! (`<domain>.codes.yaml`, usually listed in `FASTEN_CODES`) loaded with
//! [`Registry::load_file`]:
//!
//! ```yaml
//! domain: sales            # required, ^[a-z][a-z0-9_]*$, equals <name> of <name>.codes.yaml
//! emitter: order-service   # optional
//! codes:
//!   ORDER_PLACED:          # ^[A-Z][A-Z0-9_]*$, unique across every file and register call
//!     category: order       # required, non-empty
//!     action: create        # required, non-empty
//!     severity: info        # debug info warn error critical (default info)
//!     description: An order was placed
//!     retention_class: medium             # short medium long (default medium)
//!     pii_in_detail: false                # true forces retention_class short
//!     detail_passthrough_keys: [order_id]
//!     domain: sales                       # optional; must equal the file's domain
//! ```
//!
//! Every load or registration is all or nothing: one bad code and none of the
//! batch is added. Errors ([`CodeError`]) name the file and line, the code,
//! the field and the rule.
//!
//! # Lines of codes
//!
//! The YAML parser reports positions for syntax and type errors but not for
//! mapping keys, so the line of a code (used in [`Origin`] and in errors about
//! rules the parser cannot check, such as duplicates) is found by scanning the
//! text for the key at the first indentation level under the top-level
//! `codes:` line. Block-style YAML, which is what these files are written in,
//! is always found; for flow-style mappings (`codes: {A: {...}}`) errors go
//! without a line and [`Origin::File`] falls back to the line of `codes:`.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, LazyLock, PoisonError, RwLock, RwLockReadGuard};

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};

use crate::kind::{RetentionClass, Severity};

/// The pattern a code must match, as shown in errors.
const CODE_PATTERN: &str = "^[A-Z][A-Z0-9_]*$";
/// The pattern a domain must match, as shown in errors.
const DOMAIN_PATTERN: &str = "^[a-z][a-z0-9_]*$";
/// The file-name suffix whose stem must equal the file's domain.
const FILE_SUFFIX: &str = ".codes.yaml";

mod error;
mod meta;
mod registry;
#[cfg(test)]
mod tests;
mod validation;
mod yaml;

pub use self::error::*;
pub use self::meta::*;
pub use self::registry::*;
pub(crate) use self::validation::*;
use self::yaml::*;
