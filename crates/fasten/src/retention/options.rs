//! What to sweep or erase: [`SweepOptions`], [`Erasure`].

use super::*;

// === options ===

/// How to run a [`Fasten::sweep`].
///
/// ## Defaults
///
/// | setter | default |
/// |---|---|
/// | [`now`](Self::now) | the system clock |
/// | [`dry_run`](Self::dry_run) | false |
/// | [`batch_size`](Self::batch_size) | 1000 rows per transaction |
/// | [`method`](Self::method) | `sdk` (the background sweep says `scheduler`) |
#[derive(Debug, Clone)]
#[must_use = "SweepOptions do nothing until passed to Fasten::sweep"]
pub struct SweepOptions {
    pub(super) now: Option<SystemTime>,
    pub(super) dry_run: bool,
    pub(super) batch_size: usize,
    pub(super) method: Method,
    pub(super) all_services: bool,
}

impl Default for SweepOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl SweepOptions {
    /// The defaults.
    pub fn new() -> Self {
        Self {
            now: None,
            dry_run: false,
            batch_size: 1000,
            method: Method::Sdk,
            all_services: false,
        }
    }

    /// Also sweeps rows other services wrote into the same store (an
    /// operator's sweep). By default a pipeline sweeps only its own
    /// `service_id`'s rows. Either way, rows of codes the pipeline's
    /// registry does not declare are never erased, only counted as held.
    pub fn all_services(mut self, all: bool) -> Self {
        self.all_services = all;
        self
    }

    /// Judges ages as if it were `now` (tests, or catching up with a
    /// backlog by date).
    pub fn now(mut self, now: SystemTime) -> Self {
        self.now = Some(now);
        self
    }

    /// Counts what would be erased; erases nothing, appends no event.
    pub fn dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    /// Most rows erased per transaction (at least 1). Below that the sweep
    /// sizes its batches (from 100 rows, down to 50) to hold the store for
    /// about 10 ms each, and pauses after each for as long as it held the
    /// store, so the writer always gets its turn soon.
    pub fn batch_size(mut self, rows: usize) -> Self {
        self.batch_size = rows.max(1);
        self
    }

    /// The method of the sweep's event (`cli` from `fasten sweep`).
    pub fn method(mut self, method: Method) -> Self {
        self.method = method;
        self
    }
}

/// Who an erasure is about, why, and who asked: see [`Fasten::erase_subject`].
#[derive(Debug, Clone)]
#[must_use = "an Erasure does nothing until passed to Fasten::erase_subject"]
pub struct Erasure {
    pub(super) by_actor: bool,
    pub(super) subject: String,
    pub(super) reason: String,
    pub(super) requested_by: Option<(String, ActorKind)>,
    pub(super) method: Method,
}

impl Erasure {
    /// Every row whose actor is `actor`.
    pub fn actor(actor: impl Into<String>) -> Self {
        Self::new(true, actor.into())
    }

    /// Every row whose target is `target`.
    pub fn target(target: impl Into<String>) -> Self {
        Self::new(false, target.into())
    }

    fn new(by_actor: bool, subject: String) -> Self {
        Self {
            by_actor,
            subject,
            reason: String::new(),
            requested_by: None,
            method: Method::Sdk,
        }
    }

    /// Why (required): `GDPR art. 17 request #4711`. Recorded in the event.
    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = reason.into();
        self
    }

    /// Who asked: the event's actor. Default `system`, kind `service`.
    pub fn requested_by(mut self, who: impl Into<String>, kind: ActorKind) -> Self {
        self.requested_by = Some((who.into(), kind));
        self
    }

    /// The method of the event (`cli` from `fasten erase`).
    pub fn method(mut self, method: Method) -> Self {
        self.method = method;
        self
    }
}
