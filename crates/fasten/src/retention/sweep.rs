//! The sweep itself: candidates, holds, paced erasure and the lease.

use super::*;

// === the sweep ===

/// Erased and held rows, as a sweep or an erasure goes.
#[derive(Default)]
pub(super) struct Tally {
    pub(super) erased: u64,
    /// code → (class, node → range)
    codes: BTreeMap<String, (RetentionClass, BTreeMap<String, SeqRange>)>,
    held: BTreeMap<(String, HoldReason), u64>,
    longest_batch: Duration,
}

impl Tally {
    fn erased(&mut self, code: &str, class: RetentionClass, node: &str, seq: i64) {
        self.erased += 1;
        let (_, nodes) = self
            .codes
            .entry(code.to_owned())
            .or_insert_with(|| (class, BTreeMap::new()));
        let range = nodes.entry(node.to_owned()).or_insert_with(|| SeqRange {
            source_node_id: node.to_owned(),
            rows: 0,
            first_seq: seq,
            last_seq: seq,
        });
        range.rows += 1;
        range.first_seq = range.first_seq.min(seq);
        range.last_seq = range.last_seq.max(seq);
    }

    pub(super) fn hold(&mut self, code: &str, reason: HoldReason, rows: u64) {
        *self.held.entry((code.to_owned(), reason)).or_default() += rows;
    }

    pub(super) fn held(&self) -> Vec<HeldBack> {
        self.held
            .iter()
            .map(|((code, reason), rows)| HeldBack {
                code: code.clone(),
                reason: *reason,
                rows: *rows,
            })
            .collect()
    }

    fn codes(&self) -> Vec<CodeErasure> {
        self.codes
            .iter()
            .map(|(code, (class, nodes))| CodeErasure {
                code: code.clone(),
                retention_class: *class,
                rows: nodes.values().map(|r| r.rows).sum(),
                ranges: nodes.values().cloned().collect(),
            })
            .collect()
    }

    /// Per node, over every code.
    pub(super) fn all_ranges(&self) -> Vec<SeqRange> {
        let mut nodes: BTreeMap<&str, SeqRange> = BTreeMap::new();
        for (_, per_node) in self.codes.values() {
            for (node, r) in per_node {
                nodes
                    .entry(node)
                    .and_modify(|a| {
                        a.rows += r.rows;
                        a.first_seq = a.first_seq.min(r.first_seq);
                        a.last_seq = a.last_seq.max(r.last_seq);
                    })
                    .or_insert_with(|| r.clone());
            }
        }
        nodes.into_values().collect()
    }
}

/// Why `c` must be kept, if it must. `shipping` is `None` for erasure on
/// request, which does not wait for shipping.
pub(super) fn hold(
    policy: &Retention,
    c: &Candidate,
    shipping: Option<&HashSet<String>>,
) -> Option<HoldReason> {
    if policy.legal_hold_codes.contains(&c.code) {
        Some(HoldReason::LegalHoldCode)
    } else if c
        .tenant_id
        .as_ref()
        .is_some_and(|t| policy.legal_hold_tenants.contains(t))
    {
        Some(HoldReason::LegalHoldTenant)
    } else if !c.shipped && shipping.is_some_and(|s| s.contains(&c.node)) {
        Some(HoldReason::Unshipped)
    } else {
        None
    }
}

/// Erases `ids` (of `page`) in one transaction and tallies what it erased,
/// then pauses as long as the transaction held the store (at least
/// [`MIN_PAUSE`]), so the writer gets the store at least half the time.
pub(super) fn erase_paced(
    store: &mut dyn Store,
    ids: &[&str],
    page: &[Candidate],
    class: RetentionClass,
    tally: &mut Tally,
) -> Result<Duration> {
    if ids.is_empty() {
        return Ok(Duration::ZERO);
    }
    let erased = store.erase(ids)?;
    let codes: std::collections::HashMap<(&str, i64), &str> = page
        .iter()
        .map(|c| ((c.node.as_str(), c.seq), c.code.as_str()))
        .collect();
    for (node, seq) in &erased.rows {
        let code = codes.get(&(node.as_str(), *seq)).copied().unwrap_or("");
        tally.erased(code, class, node, *seq);
    }
    tally.longest_batch = tally.longest_batch.max(erased.held);
    tracing::debug!(target: "fasten::store", rows = erased.rows.len(), held_us = erased.held.as_micros() as u64, "erase batch committed");
    std::thread::sleep(erased.held.max(MIN_PAUSE));
    Ok(erased.held)
}

/// Per class, the newest `timestamp` that is due at `now`.
pub(super) fn cutoffs(
    policy: &Retention,
    now: jiff::Timestamp,
) -> BTreeMap<RetentionClass, String> {
    let cutoff = |class: RetentionClass| {
        let age = jiff::SignedDuration::from_secs(i64::from(policy.days(class)) * DAY as i64);
        format_timestamp(now.checked_sub(age).unwrap_or(jiff::Timestamp::MIN))
    };
    [
        RetentionClass::Short,
        RetentionClass::Medium,
        RetentionClass::Long,
    ]
    .into_iter()
    .map(|c| (c, cutoff(c)))
    .collect()
}

impl SweepReport {
    /// A report of nothing done yet.
    pub(super) fn new(
        dry_run: bool,
        now: jiff::Timestamp,
        cutoffs: BTreeMap<RetentionClass, String>,
    ) -> Self {
        Self {
            dry_run,
            now: format_timestamp(now),
            cutoffs,
            erased: 0,
            codes: Vec::new(),
            held: Vec::new(),
            streams: BTreeMap::new(),
            error: None,
            longest_batch: Duration::ZERO,
            event_id: None,
            skipped: None,
        }
    }
}

/// The store's lease on one sweep's rows: `retention sweep <service>` (or
/// `*` for every service), held by one node at a time, renewed at each page
/// and given back at the end; a crashed holder's lease expires.
pub(super) struct Lease {
    pub(super) name: String,
    pub(super) holder: String,
}

/// How long a lease lasts without renewal: far longer than one page takes.
pub(super) const LEASE_TTL: Duration = Duration::from_secs(10 * 60);

impl Lease {
    pub(super) fn new(service: Option<&str>, node: &str) -> Self {
        Self {
            name: format!("retention sweep {}", service.unwrap_or("*")),
            holder: format!("{node}/{:016x}", rand::random::<u64>()),
        }
    }

    /// Takes or renews the lease by the wall clock (not the sweep's clock,
    /// which tests set to the future).
    pub(super) fn hold(&self, store: &mut dyn Store) -> Result<bool> {
        let now = jiff::Timestamp::now();
        let until = now
            .checked_add(jiff::SignedDuration::try_from(LEASE_TTL).unwrap_or_default())
            .unwrap_or(now);
        store.lease(
            &self.name,
            &self.holder,
            &format_timestamp(now),
            &format_timestamp(until),
        )
    }
}

/// Whose rows one sweep covers and what bounds it.
#[derive(Clone, Copy)]
pub(super) struct Reach<'a> {
    /// Only this service's rows, when given.
    pub(super) service: Option<&'a str>,
    /// The lease to renew at each page, when not dry.
    pub(super) lease: Option<&'a Lease>,
    /// Set when the pipeline shuts down.
    pub(super) stop: Option<&'a AtomicBool>,
}

/// Sweeps the store. A store failure stops the sweep; what it erased until
/// then is in the report, and the error beside it.
pub(super) fn sweep_store(
    store: &mut dyn Store,
    registry: &Registry,
    policy: &Retention,
    now: jiff::Timestamp,
    options: &SweepOptions,
    reach: Reach<'_>,
) -> (SweepReport, Option<Error>) {
    let Reach {
        service,
        lease,
        stop,
    } = reach;
    let cutoffs = cutoffs(policy, now);
    let mut tally = Tally::default();
    let mut run = |tally: &mut Tally| -> Result<()> {
        let groups = store.unerased_groups()?;
        let shipping: HashSet<String> = if groups.is_empty() {
            HashSet::new()
        } else {
            store.shipping_nodes()?.into_iter().collect()
        };
        let mut batch = options.batch_size.min(FIRST_BATCH);
        for (code, pii) in &groups {
            // Only a registry that declares the code decides its rows' age
            // limit. An unknown code's rows are counted (as due as they
            // could be: under the shortest class) and kept.
            let (class, known) = match registry.get(code) {
                Some(_) if *pii => (RetentionClass::Short, true),
                Some(info) => (info.meta().retention_class, true),
                None => (RetentionClass::Short, false),
            };
            let due = &cutoffs[&class];
            let scope = Scope::Due {
                code,
                pii: *pii,
                due,
                service,
            };
            let mut cursor = (PAGE_START.0.to_owned(), PAGE_START.1.to_owned());
            loop {
                if stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
                    tracing::info!(target: "fasten::store", "retention sweep stopped early: the pipeline is shutting down");
                    return Ok(());
                }
                if let Some(lease) = lease
                    && !lease.hold(store)?
                {
                    return Err(Error::new(
                        ErrorKind::Store,
                        format!(
                            "lost the lease {:?} to another node; it goes on with the sweep",
                            lease.name
                        ),
                    ));
                }
                let page = store.page(scope, (&cursor.0, &cursor.1), batch)?;
                let Some(last) = page.last() else { break };
                cursor = (last.timestamp.clone(), last.id.clone());
                let full = page.len() == batch;
                let mut ids = Vec::with_capacity(page.len());
                if !known {
                    tally.hold(code, HoldReason::UnknownCode, page.len() as u64);
                    if !full {
                        break;
                    }
                    continue;
                }
                for c in &page {
                    match hold(policy, c, Some(&shipping)) {
                        Some(reason) => tally.hold(code, reason, 1),
                        None if options.dry_run => tally.erased(code, class, &c.node, c.seq),
                        None => ids.push(c.id.as_str()),
                    }
                }
                if !ids.is_empty() {
                    let held = erase_paced(store, &ids, &page, class, tally)?;
                    batch = next_batch(ids.len(), held, options.batch_size);
                }
                if !full {
                    break;
                }
            }
        }
        Ok(())
    };
    let failed = run(&mut tally).err();
    let mut report = SweepReport::new(options.dry_run, now, cutoffs);
    report.erased = tally.erased;
    report.codes = tally.codes();
    report.held = tally.held();
    report.error = failed.as_ref().map(|e| e.to_string());
    report.longest_batch = tally.longest_batch;
    (report, failed)
}
