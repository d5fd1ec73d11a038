//! Signed checkpoints: a node's tree size and Merkle root, as a C2SP
//! tlog-checkpoint in a signed note with Ed25519 keys (row contract §4).
//!
//! A checkpoint published outside the store (a directory, a witness) is what
//! makes re-sealing or truncating the store detectable: the store must stay
//! consistent with every root it ever signed. The note format is the one of
//! the Go checksum database and transparency-dev tooling, so published
//! checkpoints can be checked by tools other than fasten, and our keys are
//! written the way those tools write theirs.

// Until the writer, the CLI and the verifier call in (issue 7), only the tests
// use this module. The expectation stops holding once everything here is used:
// that is the moment to delete it.
#![cfg_attr(
    not(test),
    expect(dead_code, reason = "wired up by the issue 7 integration")
)]

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

/// The signed-note algorithm byte of Ed25519, first in every encoded key.
const ALG_ED25519: u8 = 0x01;
/// Every origin line is this followed by the node id.
const ORIGIN_PREFIX: &str = "fasten/";
/// Signature lines start with U+2014 EM DASH and a space.
const SIGNATURE_PREFIX: &str = "\u{2014} ";
/// Where signer key files start (the Go `note` package's format).
const PRIVATE_PREFIX: &str = "PRIVATE+KEY+";
/// More signatures than any real deployment has; bounds the work a hostile
/// note can cause.
const MAX_SIGNATURES: usize = 100;

/// Why a key text or key name was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KeyError {
    /// The text does not have the shape of a key.
    Malformed(&'static str),
    /// The key name is empty or holds a space, control character or `+`.
    InvalidName(String),
    /// The key is not an Ed25519 key.
    UnsupportedAlgorithm(u8),
    /// The public key is not a usable Ed25519 point.
    InvalidPublicKey,
    /// The key id written in the text is not the one of the name and key.
    IdMismatch {
        /// The id in the text, hex.
        stated: String,
        /// The id the name and key give, hex.
        computed: String,
    },
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed(what) => write!(f, "malformed key: {what}"),
            Self::InvalidName(name) => write!(
                f,
                "invalid key name {name:?}: it must be non-empty, without spaces, control characters or '+'"
            ),
            Self::UnsupportedAlgorithm(alg) => write!(
                f,
                "unsupported key algorithm {alg:#04x}: only Ed25519 ({ALG_ED25519:#04x}) is supported"
            ),
            Self::InvalidPublicKey => f.write_str("public key is not a usable Ed25519 key"),
            Self::IdMismatch { stated, computed } => write!(
                f,
                "key id {stated} does not match the key name and key (they give {computed})"
            ),
        }
    }
}

impl std::error::Error for KeyError {}

/// Why a checkpoint could not be made or opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CheckpointError {
    /// The node id cannot be written on the origin line.
    InvalidOrigin(String),
    /// The text is not a signed note.
    MalformedNote(&'static str),
    /// The note's body is not a fasten checkpoint.
    MalformedBody(&'static str),
    /// A signature by a known key does not verify: the note was altered or
    /// signed by someone else under that key's name and id.
    BadSignature(String),
    /// None of the signatures is by a known key.
    NoKnownSignature,
}

impl fmt::Display for CheckpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidOrigin(node) => write!(
                f,
                "node id {node:?} cannot be a checkpoint origin: it must be non-empty, without control characters"
            ),
            Self::MalformedNote(what) => write!(f, "malformed signed note: {what}"),
            Self::MalformedBody(what) => write!(f, "malformed checkpoint: {what}"),
            Self::BadSignature(name) => {
                write!(f, "signature by known key {name} does not verify")
            }
            Self::NoKnownSignature => f.write_str("no valid signature by a known key"),
        }
    }
}

impl std::error::Error for CheckpointError {}

/// Key names as the signed-note spec has them: non-empty, no Unicode
/// spaces, no `+` (the key texts are split at `+`). Control characters are
/// refused too, since they may not appear in a note.
fn check_name(name: &str) -> Result<(), KeyError> {
    if name.is_empty()
        || name
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '+')
    {
        return Err(KeyError::InvalidName(name.to_owned()));
    }
    Ok(())
}

/// The first 4 bytes of SHA-256(name ‖ "\n" ‖ 0x01 ‖ public key): lets a
/// verifier pick the key for a signature line without trying them all, and
/// binds the name to the key.
fn key_id(name: &str, public: &VerifyingKey) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([ALG_ED25519]);
    h.update(public.as_bytes());
    let digest = h.finalize();
    [digest[0], digest[1], digest[2], digest[3]]
}

/// Decodes the `<8 hex key id>` part of a key text.
fn parse_id(hex_id: &str) -> Result<[u8; 4], KeyError> {
    let malformed = KeyError::Malformed("the key id is not 8 lowercase hex digits");
    if hex_id.len() != 8 || hex_id.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(malformed);
    }
    let mut id = [0; 4];
    hex::decode_to_slice(hex_id, &mut id).map_err(|_| malformed)?;
    Ok(id)
}

/// Decodes the `<base64(0x01 ‖ 32 bytes)>` part of a key text.
fn parse_key_bytes(b64: &str) -> Result<[u8; 32], KeyError> {
    let bytes = BASE64
        .decode(b64)
        .map_err(|_| KeyError::Malformed("the key is not valid base64"))?;
    let Some((&alg, key)) = bytes.split_first() else {
        return Err(KeyError::Malformed("the key is empty"));
    };
    if alg != ALG_ED25519 {
        return Err(KeyError::UnsupportedAlgorithm(alg));
    }
    key.try_into()
        .map_err(|_| KeyError::Malformed("an Ed25519 key is 32 bytes"))
}

/// `0x01 ‖ key`, base64: how keys are written in key texts.
fn encode_key(key: &[u8; 32]) -> String {
    let mut bytes = [0; 33];
    bytes[0] = ALG_ED25519;
    bytes[1..].copy_from_slice(key);
    BASE64.encode(bytes)
}

fn check_id(stated: [u8; 4], computed: [u8; 4]) -> Result<(), KeyError> {
    if stated != computed {
        return Err(KeyError::IdMismatch {
            stated: hex::encode(stated),
            computed: hex::encode(computed),
        });
    }
    Ok(())
}

/// A named Ed25519 key that signs checkpoints.
///
/// `Debug` shows the name and key id only, never the key.
#[derive(Clone)]
pub(crate) struct Signer {
    name: String,
    id: [u8; 4],
    key: SigningKey,
}

impl Signer {
    /// The signer named `name` whose Ed25519 key is derived from `seed`
    /// (the 32-byte private key of RFC 8032).
    pub(crate) fn from_seed(name: &str, seed: &[u8; 32]) -> Result<Self, KeyError> {
        check_name(name)?;
        let key = SigningKey::from_bytes(seed);
        Ok(Self {
            name: name.to_owned(),
            id: key_id(name, &key.verifying_key()),
            key,
        })
    }

    /// Reads a signer key text, `PRIVATE+KEY+<name>+<8 hex key id>+<base64(0x01
    /// ‖ seed)>` (the Go `note` package's format), as [`Self::to_text`]
    /// writes it. Surrounding whitespace, such as a file's final newline, is
    /// ignored.
    pub(crate) fn parse(text: &str) -> Result<Self, KeyError> {
        let rest = text
            .trim()
            .strip_prefix(PRIVATE_PREFIX)
            .ok_or(KeyError::Malformed(
                "a signer key is PRIVATE+KEY+<name>+<key id>+<base64 key>",
            ))?;
        let mut parts = rest.splitn(3, '+');
        let (Some(name), Some(hex_id), Some(b64)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(KeyError::Malformed(
                "a signer key is PRIVATE+KEY+<name>+<key id>+<base64 key>",
            ));
        };
        check_name(name)?;
        let stated = parse_id(hex_id)?;
        let signer = Self::from_seed(name, &parse_key_bytes(b64)?)?;
        check_id(stated, signer.id)?;
        Ok(signer)
    }

    /// The signer key text that [`Self::parse`] reads. It holds the private
    /// key: write it only where its owner alone can read it.
    pub(crate) fn to_text(&self) -> String {
        format!(
            "{PRIVATE_PREFIX}{}+{}+{}",
            self.name,
            hex::encode(self.id),
            encode_key(self.key.as_bytes())
        )
    }

    /// The key name, which is also the name on its signature lines.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The public half, to hand to whoever verifies.
    pub(crate) fn verifier_key(&self) -> VerifierKey {
        VerifierKey {
            name: self.name.clone(),
            id: self.id,
            key: self.key.verifying_key(),
        }
    }
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("name", &self.name)
            .field("id", &hex::encode(self.id))
            .finish_non_exhaustive()
    }
}

/// A named Ed25519 public key that checkpoints are verified with.
///
/// Written (by `Display`) and read as `<name>+<8 hex key id>+<base64(0x01 ‖
/// public key)>`, the signed-note verifier key format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VerifierKey {
    name: String,
    id: [u8; 4],
    key: VerifyingKey,
}

impl VerifierKey {
    /// Reads a verifier key text; surrounding whitespace is ignored. Only the
    /// first two `+` separate parts: the base64 key may itself hold `+`.
    pub(crate) fn parse(text: &str) -> Result<Self, KeyError> {
        let mut parts = text.trim().splitn(3, '+');
        let (Some(name), Some(hex_id), Some(b64)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(KeyError::Malformed(
                "a verifier key is <name>+<key id>+<base64 key>",
            ));
        };
        check_name(name)?;
        let stated = parse_id(hex_id)?;
        let key = VerifyingKey::from_bytes(&parse_key_bytes(b64)?)
            .map_err(|_| KeyError::InvalidPublicKey)?;
        // A small-order key would accept signatures made without any
        // private key.
        if key.is_weak() {
            return Err(KeyError::InvalidPublicKey);
        }
        check_id(stated, key_id(name, &key))?;
        Ok(Self {
            name: name.to_owned(),
            id: stated,
            key,
        })
    }

    /// The key name, as on the signature lines it verifies.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Display for VerifierKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}+{}+{}",
            self.name,
            hex::encode(self.id),
            encode_key(self.key.as_bytes())
        )
    }
}

/// A node's tree head: its tree size and the RFC 6962 root at that size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Checkpoint {
    /// The node (`source_node_id`) whose chain this is; the note's origin
    /// line is `fasten/` followed by it.
    origin: String,
    size: u64,
    root: [u8; 32],
}

impl Checkpoint {
    /// The checkpoint of `origin`'s tree at `size` rows with root `root`.
    /// The node id must be non-empty and free of control characters, so
    /// that it fits on the origin line.
    pub(crate) fn new(origin: &str, size: u64, root: [u8; 32]) -> Result<Self, CheckpointError> {
        if origin.is_empty() || origin.chars().any(char::is_control) {
            return Err(CheckpointError::InvalidOrigin(origin.to_owned()));
        }
        Ok(Self {
            origin: origin.to_owned(),
            size,
            root,
        })
    }

    /// The node whose tree this is.
    pub(crate) fn origin(&self) -> &str {
        &self.origin
    }

    /// The tree size: the number of rows covered.
    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    /// The Merkle root of the first `size` rows.
    pub(crate) fn root(&self) -> &[u8; 32] {
        &self.root
    }

    /// The signed text: `fasten/<node>\n<size>\n<base64 root>\n`.
    pub(crate) fn body(&self) -> String {
        format!(
            "{ORIGIN_PREFIX}{}\n{}\n{}\n",
            self.origin,
            self.size,
            BASE64.encode(self.root)
        )
    }

    /// The signed note: the body, a blank line, and one signature line per
    /// signer. With no signers the note has no signature, and
    /// [`Self::open`] refuses it.
    pub(crate) fn sign(&self, signers: &[&Signer]) -> String {
        sign_note(&self.body(), signers)
    }

    /// The body of a signed note, signatures not checked: only for checking
    /// our own work against a note the caller trusts for other reasons
    /// (`prove` compares the proof it built with the note it hands out; the
    /// receiver checks the signatures).
    pub(crate) fn parse_unverified(note: &str) -> Option<Self> {
        let split = note.rfind("\n\n")?;
        Self::parse_body(&note[..=split]).ok()
    }

    /// Opens a signed checkpoint note ([`open_note`]'s rules for the
    /// signatures) and reads its body strictly. Returns the checkpoint and
    /// the names of the keys that verified it.
    pub(crate) fn open(
        note: &str,
        verifiers: &[VerifierKey],
    ) -> Result<(Self, Vec<String>), CheckpointError> {
        open_note(note, verifiers, Self::parse_body)
    }

    /// Reads exactly the three lines [`Self::body`] writes, and nothing that
    /// would print differently: a checkpoint has one spelling.
    fn parse_body(body: &str) -> Result<Self, CheckpointError> {
        let malformed = CheckpointError::MalformedBody;
        let mut lines = body
            .strip_suffix('\n')
            .ok_or(malformed("the body does not end in a newline"))?
            .split('\n');
        let (Some(origin), Some(size), Some(root), None) =
            (lines.next(), lines.next(), lines.next(), lines.next())
        else {
            return Err(malformed(
                "the body is not exactly 3 lines (origin, tree size, root)",
            ));
        };
        let origin = origin
            .strip_prefix(ORIGIN_PREFIX)
            .filter(|node| !node.is_empty())
            .ok_or(malformed("the origin line is not fasten/<node id>"))?;
        let canonical =
            size == "0" || (!size.starts_with('0') && size.bytes().all(|b| b.is_ascii_digit()));
        let size = canonical
            .then(|| size.parse::<u64>().ok())
            .flatten()
            .ok_or(malformed(
                "the tree size is not a decimal number without sign or leading zeros",
            ))?;
        let root = BASE64
            .decode(root)
            .ok()
            .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
            .ok_or(malformed("the root is not the base64 of 32 bytes"))?;
        Self::new(origin, size, root)
    }
}

/// A signed note (C2SP signed-note, the Go `note` package's format) over
/// `text`, which must end in a newline: the text, a blank line, and one
/// signature line per signer. With no signers the note has no signature,
/// and [`open_note`] refuses it.
pub(crate) fn sign_note(text: &str, signers: &[&Signer]) -> String {
    let mut note = text.to_owned();
    note.push('\n');
    for signer in signers {
        let signature = signer.key.sign(text.as_bytes());
        let mut bytes = [0; 68];
        bytes[..4].copy_from_slice(&signer.id);
        bytes[4..].copy_from_slice(&signature.to_bytes());
        note.push_str(SIGNATURE_PREFIX);
        note.push_str(&signer.name);
        note.push(' ');
        note.push_str(&BASE64.encode(bytes));
        note.push('\n');
    }
    note
}

/// Parses a signed note strictly and checks its signatures. `read_body`
/// reads the signed text (before any signature is verified, so a malformed
/// body is named as such); returns what it read and the names of the keys
/// that verified the note.
///
/// Signatures by keys not in `verifiers` (matched by name and key id) are
/// skipped, so that a note can carry a witness's cosignature or a rotated
/// key's; at least one signature must be by a known key, and every
/// signature by a known key must verify.
pub(crate) fn open_note<'n, T>(
    note: &'n str,
    verifiers: &[VerifierKey],
    read_body: impl FnOnce(&'n str) -> Result<T, CheckpointError>,
) -> Result<(T, Vec<String>), CheckpointError> {
    let malformed = CheckpointError::MalformedNote;
    if note.chars().any(|c| c.is_control() && c != '\n') {
        return Err(malformed("it holds a control character other than newline"));
    }
    // The signature block cannot hold a blank line, so the last one ends
    // the body.
    let split = note.rfind("\n\n").ok_or(malformed(
        "no blank line between the body and the signatures",
    ))?;
    let (body, signatures) = (&note[..=split], &note[split + 2..]);
    if signatures.is_empty() {
        return Err(malformed("no signature lines"));
    }
    if !signatures.ends_with('\n') {
        return Err(malformed(
            "the last signature line does not end in a newline",
        ));
    }

    let mut lines = Vec::new();
    for line in signatures.split_terminator('\n') {
        if lines.len() == MAX_SIGNATURES {
            return Err(malformed("more than 100 signature lines"));
        }
        let line = line.strip_prefix(SIGNATURE_PREFIX).ok_or(malformed(
            "a signature line does not start with an em dash and a space",
        ))?;
        let (name, b64) = line.split_once(' ').ok_or(malformed(
            "a signature line is not a key name, a space and a signature",
        ))?;
        if check_name(name).is_err() {
            return Err(malformed("a signature line has an invalid key name"));
        }
        let bytes = BASE64
            .decode(b64)
            .map_err(|_| malformed("a signature is not valid base64"))?;
        // A key id and at least one byte of signature, whatever the
        // algorithm of a key we do not know.
        if bytes.len() < 5 {
            return Err(malformed("a signature is shorter than 5 bytes"));
        }
        lines.push((name, bytes));
    }
    let read = read_body(body)?;

    let mut verified: Vec<String> = Vec::new();
    for (name, bytes) in &lines {
        let (id, signature) = bytes.split_at(4);
        let Some(key) = verifiers
            .iter()
            .find(|k| k.name == *name && k.id[..] == *id)
        else {
            continue;
        };
        let good = Signature::from_slice(signature)
            .is_ok_and(|s| key.key.verify_strict(body.as_bytes(), &s).is_ok());
        if !good {
            return Err(CheckpointError::BadSignature(key.name.clone()));
        }
        if !verified.contains(&key.name) {
            verified.push(key.name.clone());
        }
    }
    if verified.is_empty() {
        return Err(CheckpointError::NoKnownSignature);
    }
    Ok((read, verified))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::merkle::MerkleLog;
    use crate::merkle::tests::{vector_log, vectors};

    struct Vector {
        seed: [u8; 32],
        verifier_key: String,
        note: String,
        node: String,
        log: MerkleLog,
    }

    fn vector() -> Vector {
        let v = vectors();
        let c = &v["checkpoint"];
        let seed = hex::decode(c["ed25519_seed_hex"].as_str().expect("seed"))
            .expect("hex")
            .try_into()
            .expect("32 bytes");
        Vector {
            seed,
            verifier_key: c["verifier_key"].as_str().expect("key").to_owned(),
            note: c["note"].as_str().expect("note").to_owned(),
            node: v["chain"][0]["source_node_id"]
                .as_str()
                .expect("node")
                .to_owned(),
            log: vector_log(&v),
        }
    }

    impl Vector {
        fn key_name(&self) -> &str {
            self.verifier_key.split('+').next().expect("name")
        }
        fn signer(&self) -> Signer {
            Signer::from_seed(self.key_name(), &self.seed).expect("signer")
        }
        fn checkpoint(&self) -> Checkpoint {
            Checkpoint::new(&self.node, self.log.len(), self.log.root()).expect("checkpoint")
        }
        fn verifier(&self) -> VerifierKey {
            VerifierKey::parse(&self.verifier_key).expect("verifier key")
        }
    }

    fn other_signer(name: &str) -> Signer {
        Signer::from_seed(name, &[7; 32]).expect("signer")
    }

    /// The Go `sumdb/note` known answer (`spec/vectors/external.json`): our
    /// keys parse the Go key texts, signing gives Go's note byte for byte,
    /// opening gives back the text, and any changed byte fails.
    #[test]
    fn go_sumdb_note_known_answer() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../spec/vectors/external.json"
        );
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).expect("external.json"))
                .expect("external.json parses");
        let kat = &v["signed_note_go_sumdb"];
        let text = kat["text"].as_str().expect("text");
        let note = kat["note"].as_str().expect("note");
        let signer = Signer::parse(kat["signer_key"].as_str().expect("signer")).expect("signer");
        let verifier =
            VerifierKey::parse(kat["verifier_key"].as_str().expect("verifier")).expect("verifier");
        assert_eq!(signer.verifier_key(), verifier);
        assert_eq!(
            verifier.to_string(),
            kat["verifier_key"].as_str().expect("verifier")
        );

        assert_eq!(sign_note(text, &[&signer]), note);
        let (opened, names) = open_note(note, std::slice::from_ref(&verifier), Ok).expect("opens");
        assert_eq!(opened, text);
        assert_eq!(names, [signer.name()]);

        for (i, byte) in note.bytes().enumerate() {
            if !byte.is_ascii() {
                continue;
            }
            let mut changed = note.as_bytes().to_vec();
            changed[i] = if byte == b'A' { b'B' } else { b'A' };
            let changed = String::from_utf8(changed).expect("still UTF-8");
            assert!(
                open_note(&changed, std::slice::from_ref(&verifier), Ok).is_err(),
                "the note changed at byte {i} still opens"
            );
        }
    }

    #[test]
    fn vector_key_and_note_are_reproduced() {
        let v = vector();
        let signer = v.signer();
        assert_eq!(signer.name(), v.key_name());
        assert_eq!(signer.verifier_key().to_string(), v.verifier_key);
        assert_eq!(signer.verifier_key(), v.verifier());
        let checkpoint = v.checkpoint();
        assert_eq!(checkpoint.sign(&[&signer]), v.note);
        assert_eq!(
            v.note
                .split_once("\n\n")
                .map(|(body, _)| format!("{body}\n")),
            Some(checkpoint.body())
        );
    }

    #[test]
    fn vector_note_opens() {
        let v = vector();
        let (checkpoint, names) = Checkpoint::open(&v.note, &[v.verifier()]).expect("opens");
        assert_eq!(checkpoint, v.checkpoint());
        assert_eq!(checkpoint.origin(), v.node);
        assert_eq!(checkpoint.size(), 7);
        assert_eq!(checkpoint.root(), &v.log.root());
        assert_eq!(
            hex::encode(checkpoint.root()),
            vectors()["merkle"]["roots_by_size"]["7"]
        );
        assert_eq!(names, [v.key_name()]);
    }

    #[test]
    fn changing_any_character_of_the_note_fails() {
        let v = vector();
        let verifiers = [v.verifier()];
        let chars: Vec<char> = v.note.chars().collect();
        for i in 0..chars.len() {
            let mut tampered = chars.clone();
            tampered[i] = if chars[i] == 'A' { 'B' } else { 'A' };
            let tampered: String = tampered.into_iter().collect();
            assert!(
                Checkpoint::open(&tampered, &verifiers).is_err(),
                "character {i} changed: {tampered:?}"
            );
        }
    }

    #[test]
    fn changing_any_bit_of_the_signature_fails() {
        let v = vector();
        let verifiers = [v.verifier()];
        let (head, b64) = v.note.trim_end().rsplit_once(' ').expect("signature");
        let bytes = BASE64.decode(b64).expect("base64");
        assert_eq!(bytes.len(), 68);
        // One bit a byte, a different one each time: every bit would be 544
        // verifications, slow in test builds, and every character of the
        // base64 is changed by the test above already.
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 1 << (i % 8);
            let note = format!("{head} {}\n", BASE64.encode(&bad));
            let err = Checkpoint::open(&note, &verifiers).unwrap_err();
            // A changed key id makes the signature one by an unknown key.
            let want = if i < 4 {
                CheckpointError::NoKnownSignature
            } else {
                CheckpointError::BadSignature(v.key_name().to_owned())
            };
            assert_eq!(err, want, "byte {i}");
        }
    }

    #[test]
    fn a_wrong_key_fails() {
        let v = vector();
        // Another key under another name: the signature is by no known key.
        let other = other_signer("other.example/node-1").verifier_key();
        assert_eq!(
            Checkpoint::open(&v.note, std::slice::from_ref(&other)),
            Err(CheckpointError::NoKnownSignature)
        );
        // Another key under the same name: a different key id, so unknown too.
        let same_name = other_signer(v.key_name()).verifier_key();
        assert_eq!(
            Checkpoint::open(&v.note, &[same_name]),
            Err(CheckpointError::NoKnownSignature)
        );
        // A key claiming the vector key's name and id (a forged key text
        // cannot, but a colliding id could): its signature check fails.
        let mut impostor = other_signer(v.key_name()).verifier_key();
        impostor.id = v.verifier().id;
        assert_eq!(
            Checkpoint::open(&v.note, &[other, impostor]),
            Err(CheckpointError::BadSignature(v.key_name().to_owned()))
        );
        assert_eq!(
            Checkpoint::open(&v.note, &[]),
            Err(CheckpointError::NoKnownSignature)
        );
    }

    #[test]
    fn unknown_signatures_are_ignored_and_known_ones_all_checked() {
        let v = vector();
        let (signer, witness) = (v.signer(), other_signer("witness.example"));
        let checkpoint = v.checkpoint();
        let foreign = format!(
            "{SIGNATURE_PREFIX}other.alg {}\n",
            BASE64.encode([0xab; 40])
        );
        let note = format!("{}{foreign}", checkpoint.sign(&[&witness, &signer]));
        let (opened, names) = Checkpoint::open(&note, &[v.verifier()]).expect("opens");
        assert_eq!(opened, checkpoint);
        assert_eq!(names, [v.key_name()]);
        let (_, names) =
            Checkpoint::open(&note, &[witness.verifier_key(), v.verifier()]).expect("opens");
        assert_eq!(names, ["witness.example", v.key_name()]);

        // A bad signature by a known key is fatal even next to a good one.
        let other_body = Checkpoint::new(&v.node, 8, [0; 32])
            .expect("checkpoint")
            .sign(&[&signer]);
        let bad_line = other_body.split_once("\n\n").expect("signatures").1;
        let note = format!("{}{bad_line}", v.note);
        assert_eq!(
            Checkpoint::open(&note, &[v.verifier()]),
            Err(CheckpointError::BadSignature(v.key_name().to_owned()))
        );
    }

    #[test]
    fn key_texts_round_trip() {
        let v = vector();
        let key = v.verifier();
        assert_eq!(key.name(), v.key_name());
        assert_eq!(key.to_string(), v.verifier_key);
        assert_eq!(
            VerifierKey::parse(&format!(" {}\n", v.verifier_key)),
            Ok(key)
        );
        // The vector's base64 key holds a '+', which must not split it.
        assert!(
            v.verifier_key
                .splitn(3, '+')
                .nth(2)
                .expect("key")
                .contains('+')
        );

        let signer = v.signer();
        let text = signer.to_text();
        assert!(text.starts_with("PRIVATE+KEY+fasten.example/node-1+"));
        let parsed = Signer::parse(&format!("{text}\n")).expect("signer key");
        assert_eq!(parsed.to_text(), text);
        assert_eq!(parsed.verifier_key(), signer.verifier_key());
        assert_eq!(v.checkpoint().sign(&[&parsed]), v.note);
        let debug = format!("{signer:?}");
        assert_eq!(
            debug,
            r#"Signer { name: "fasten.example/node-1", id: "4f7e1b6b", .. }"#
        );
    }

    #[test]
    fn key_texts_are_those_of_go_signed_note_tools() {
        // A published test key pair of the transparency-dev tools (Go
        // `note.GenerateKey` output), so the formats agree byte for byte.
        let skey = "PRIVATE+KEY+Test-Betty+df84580a+Afge8kCzBXU7jb3cV2Q363oNXCufJ6u9mjOY1BGRY9E2";
        let vkey = "Test-Betty+df84580a+AQQASqPUZoIHcJAF5mBOryctwFdTV1E0GRY4kEAtTzwB";
        let signer = Signer::parse(skey).expect("go signer key");
        assert_eq!(signer.to_text(), skey);
        assert_eq!(signer.verifier_key().to_string(), vkey);
    }

    #[test]
    fn key_errors() {
        let v = vector();
        let parse = |text: &str| VerifierKey::parse(text).unwrap_err();
        let (name, rest) = v.verifier_key.split_once('+').expect("name");
        let (id, b64) = rest.split_once('+').expect("id");
        insta::assert_snapshot!(parse("fasten.example"), @"malformed key: a verifier key is <name>+<key id>+<base64 key>");
        insta::assert_snapshot!(parse(&format!("{name}+{id}")), @"malformed key: a verifier key is <name>+<key id>+<base64 key>");
        insta::assert_snapshot!(parse(&format!("+{id}+{b64}")), @r#"invalid key name "": it must be non-empty, without spaces, control characters or '+'"#);
        insta::assert_snapshot!(parse(&format!("a b+{id}+{b64}")), @r#"invalid key name "a b": it must be non-empty, without spaces, control characters or '+'"#);
        insta::assert_snapshot!(parse(&format!("{name}+{}+{b64}", id.to_uppercase())), @"malformed key: the key id is not 8 lowercase hex digits");
        insta::assert_snapshot!(parse(&format!("{name}+{id}0+{b64}")), @"malformed key: the key id is not 8 lowercase hex digits");
        insta::assert_snapshot!(parse(&format!("{name}+00000000+{b64}")), @"key id 00000000 does not match the key name and key (they give 4f7e1b6b)");
        insta::assert_snapshot!(parse(&format!("other+{id}+{b64}")), @"key id 4f7e1b6b does not match the key name and key (they give ac1563dc)");
        insta::assert_snapshot!(parse(&format!("{name}+{id}+{}", &b64[1..])), @"malformed key: the key is not valid base64");
        insta::assert_snapshot!(parse(&format!("{name}+{id}+")), @"malformed key: the key is empty");
        insta::assert_snapshot!(parse(&format!("{name}+{id}+{}", BASE64.encode([2; 33]))), @"unsupported key algorithm 0x02: only Ed25519 (0x01) is supported");
        insta::assert_snapshot!(parse(&format!("{name}+{id}+{}", BASE64.encode([1; 32]))), @"malformed key: an Ed25519 key is 32 bytes");
        // The identity point: a small-order key that any signature fools.
        let mut identity = [0; 33];
        identity[0] = ALG_ED25519;
        identity[1] = 1;
        insta::assert_snapshot!(parse(&format!("{name}+{id}+{}", BASE64.encode(identity))), @"public key is not a usable Ed25519 key");

        let text = v.signer().to_text();
        insta::assert_snapshot!(Signer::parse(&v.verifier_key).unwrap_err(), @"malformed key: a signer key is PRIVATE+KEY+<name>+<key id>+<base64 key>");
        insta::assert_snapshot!(Signer::parse("PRIVATE+KEY+name+4f7e1b6b").unwrap_err(), @"malformed key: a signer key is PRIVATE+KEY+<name>+<key id>+<base64 key>");
        insta::assert_snapshot!(Signer::parse(&text.replace(id, "4f7e1b6c")).unwrap_err(), @"key id 4f7e1b6c does not match the key name and key (they give 4f7e1b6b)");
        insta::assert_snapshot!(Signer::from_seed("a+b", &v.seed).unwrap_err(), @r#"invalid key name "a+b": it must be non-empty, without spaces, control characters or '+'"#);
    }

    #[test]
    fn malformed_notes_are_refused() {
        let v = vector();
        let verifiers = [v.verifier()];
        let open = |note: &str| Checkpoint::open(note, &verifiers).unwrap_err();
        let (body, sig) = v.note.split_once("\n\n").expect("blank line");
        let body = format!("{body}\n");
        let mut lines = body.lines();
        let (origin, size, root) = (
            lines.next().expect("origin"),
            lines.next().expect("size"),
            lines.next().expect("root"),
        );
        let with_body = |o: &str, s: &str, r: &str| format!("{o}\n{s}\n{r}\n\n{sig}");

        insta::assert_snapshot!(open(&format!("{body}{sig}")), @"malformed signed note: no blank line between the body and the signatures");
        insta::assert_snapshot!(open(&format!("{body}\n")), @"malformed signed note: no signature lines");
        insta::assert_snapshot!(open(v.note.trim_end()), @"malformed signed note: the last signature line does not end in a newline");
        insta::assert_snapshot!(open(&format!("{}\n", v.note)), @"malformed signed note: no signature lines");
        insta::assert_snapshot!(open(&v.note.replace('\u{2014}', "-")), @"malformed signed note: a signature line does not start with an em dash and a space");
        insta::assert_snapshot!(open(&v.note.replace("node-1 ", "node-1\u{a0}")), @"malformed signed note: a signature line is not a key name, a space and a signature");
        insta::assert_snapshot!(open(&v.note.replace("node-1 ", "node+1 ")), @"malformed signed note: a signature line has an invalid key name");
        insta::assert_snapshot!(open(&v.note.replace("node-1 ", "node-1  ")), @"malformed signed note: a signature is not valid base64");
        insta::assert_snapshot!(open(&format!("{body}\n{SIGNATURE_PREFIX}k AAAA\n")), @"malformed signed note: a signature is shorter than 5 bytes");
        insta::assert_snapshot!(open(&v.note.replace('\n', "\r\n")), @"malformed signed note: it holds a control character other than newline");
        insta::assert_snapshot!(open(&format!("{body}\n{}", sig.repeat(101))), @"malformed signed note: more than 100 signature lines");

        insta::assert_snapshot!(open(&format!("{origin}\n{size}\n\n{sig}")), @"malformed checkpoint: the body is not exactly 3 lines (origin, tree size, root)");
        insta::assert_snapshot!(open(&format!("{body}extension\n\n{sig}")), @"malformed checkpoint: the body is not exactly 3 lines (origin, tree size, root)");
        insta::assert_snapshot!(open(&with_body("node-1", size, root)), @"malformed checkpoint: the origin line is not fasten/<node id>");
        insta::assert_snapshot!(open(&with_body("fasten/", size, root)), @"malformed checkpoint: the origin line is not fasten/<node id>");
        insta::assert_snapshot!(open(&with_body("sumdb/node-1", size, root)), @"malformed checkpoint: the origin line is not fasten/<node id>");
        for bad in ["07", "+7", "-7", "7 ", "", "0x7", "18446744073709551616"] {
            assert_eq!(
                open(&with_body(origin, bad, root)),
                CheckpointError::MalformedBody(
                    "the tree size is not a decimal number without sign or leading zeros"
                ),
                "{bad:?}"
            );
        }
        insta::assert_snapshot!(open(&with_body(origin, "07", root)), @"malformed checkpoint: the tree size is not a decimal number without sign or leading zeros");
        insta::assert_snapshot!(open(&with_body(origin, size, &root[1..])), @"malformed checkpoint: the root is not the base64 of 32 bytes");
        insta::assert_snapshot!(open(&with_body(origin, size, root.trim_end_matches('='))), @"malformed checkpoint: the root is not the base64 of 32 bytes");
        insta::assert_snapshot!(open(&with_body(origin, size, &BASE64.encode([0; 31]))), @"malformed checkpoint: the root is not the base64 of 32 bytes");
        // Non-zero padding bits: a second spelling of the same root.
        let mut loose = root.to_owned();
        let last = loose.len() - 2;
        loose.replace_range(last..=last, "9");
        assert_ne!(loose, root);
        insta::assert_snapshot!(open(&with_body(origin, size, &loose)), @"malformed checkpoint: the root is not the base64 of 32 bytes");

        // A well-formed body that is not the one signed.
        insta::assert_snapshot!(open(&with_body("fasten/node-2", size, root)), @"signature by known key fasten.example/node-1 does not verify");
        insta::assert_snapshot!(open(&with_body(origin, "8", root)), @"signature by known key fasten.example/node-1 does not verify");
        insta::assert_snapshot!(Checkpoint::open(&v.note, &[]).unwrap_err(), @"no valid signature by a known key");
    }

    #[test]
    fn origins_that_cannot_be_written_are_refused() {
        insta::assert_snapshot!(Checkpoint::new("", 1, [0; 32]).unwrap_err(), @r#"node id "" cannot be a checkpoint origin: it must be non-empty, without control characters"#);
        insta::assert_snapshot!(Checkpoint::new("a\nb", 1, [0; 32]).unwrap_err(), @r#"node id "a\nb" cannot be a checkpoint origin: it must be non-empty, without control characters"#);
        // An unsigned note is refused.
        let v = vector();
        assert_eq!(
            Checkpoint::open(&v.checkpoint().sign(&[]), &[v.verifier()]),
            Err(CheckpointError::MalformedNote("no signature lines"))
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(16))]

        #[test]
        fn any_checkpoint_round_trips(
            node in "[^\\p{Cc}]{1,24}",
            size in any::<u64>(),
            root in any::<[u8; 32]>(),
            seed in any::<[u8; 32]>(),
            name in "[a-z0-9./-]{1,20}",
        ) {
            let signer = Signer::from_seed(&name, &seed).expect("signer");
            let key = VerifierKey::parse(&signer.verifier_key().to_string()).expect("key");
            prop_assert_eq!(&key, &signer.verifier_key());
            let checkpoint = Checkpoint::new(&node, size, root).expect("checkpoint");
            let note = checkpoint.sign(&[&signer]);
            let (opened, names) = Checkpoint::open(&note, &[key]).expect("opens");
            prop_assert_eq!(opened, checkpoint);
            prop_assert_eq!(names, vec![name]);
        }
    }
}
