//! The sweep and erasure as methods of a pipeline.

use super::*;

// === impl Fasten ===

impl Fasten {
    /// Runs one retention sweep over the whole store (every node): erases
    /// the detail of every due row, then appends one [`AUDIT_RETENTION_SWEPT`]
    /// event through this pipeline and waits until it is committed. See the
    /// [`retention`](crate::retention) module for what is due and what is kept.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Store`] when the store fails (what was erased before
    /// stays erased; the next sweep goes on), and the errors of
    /// [`emit_durable`](Self::emit_durable) for the event.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let dsn = fasten::Dsn::parse("FASTEN_AUDIT_DSN", &format!("sqlite:///{}", dir.path().join("a.db").display()))?;
    /// let fasten = fasten::Config::new().service_id("api").node_id("node-1").audit_dsn(dsn).build()?;
    /// let report = fasten.sweep(&fasten::retention::SweepOptions::new())?;
    /// assert_eq!(report.erased, 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn sweep(&self, options: &SweepOptions) -> Result<SweepReport> {
        let _one_at_a_time = self.sweep_lock();
        self.sweep_now(options, None)
    }

    pub(super) fn sweep_now(
        &self,
        options: &SweepOptions,
        stop: Option<&AtomicBool>,
    ) -> Result<SweepReport> {
        let now = jiff::Timestamp::try_from(options.now.unwrap_or_else(SystemTime::now))
            .map_err(|e| Error::new(ErrorKind::Store, "sweep clock out of range").with_source(e))?;
        let policy = self.retention();
        let mut store = store::open(self.dsn(), Access::Maintain)?;
        let service = (!options.all_services).then(|| self.service_id());
        // One node at a time sweeps the same rows: the others find the
        // lease held and skip. A dry run changes nothing and needs none.
        let lease = (!options.dry_run).then(|| Lease::new(service, self.node_id()));
        if let Some(lease) = &lease
            && !lease.hold(store.as_mut())?
        {
            let mut report = SweepReport::new(options.dry_run, now, cutoffs(policy, now));
            report.skipped = Some(format!(
                "another node holds the lease {:?}: it is sweeping these rows",
                lease.name
            ));
            tracing::info!(target: "fasten::store", lease = %lease.name, "retention sweep skipped: another node is sweeping");
            return Ok(report);
        }
        let (mut report, failed) = sweep_store(
            store.as_mut(),
            self.registry(),
            policy,
            now,
            options,
            Reach {
                service,
                lease: lease.as_ref(),
                stop,
            },
        );
        if let Some(lease) = &lease
            && let Err(e) = store.release(&lease.name, &lease.holder)
        {
            tracing::warn!(target: "fasten::store", error = %e, "could not release the sweep lease; it expires by itself");
        }
        drop(store);
        if !options.dry_run && failed.is_none() {
            // Stream rows are not chained: old ones are deleted outright.
            for (stream, dsn, days) in [
                ("sys", self.stream_dsn(false), policy.sys_days()),
                ("api", self.stream_dsn(true), policy.api_days()),
            ] {
                if let (Some(dsn), Some(days)) = (dsn, days) {
                    let now = options.now.unwrap_or_else(SystemTime::now);
                    match prune_stream(dsn, dsn.table(), days, now) {
                        Ok(n) => {
                            report.streams.insert(stream, n);
                        }
                        Err(e) => {
                            tracing::warn!(target: "fasten::store", stream, error = %e, "pruning the stream table failed; the next sweep retries");
                        }
                    }
                }
            }
        }
        // A sweep that failed half-way still records what it erased.
        if !options.dry_run && (failed.is_none() || report.erased > 0) {
            let detail = serde_json::to_value(&report)
                .map_err(|e| Error::new(ErrorKind::Store, "encode sweep report").with_source(e))?;
            let row = self.emit_durable(
                Event::new(AUDIT_RETENTION_SWEPT)
                    .actor("fasten-retention", ActorKind::Schedule)
                    .method(options.method)
                    .detail(detail),
            )?;
            report.event_id = Some(row.id);
        }
        if let Some(e) = failed {
            return Err(e);
        }
        tracing::info!(target: "fasten::store", erased = report.erased, dry_run = options.dry_run, "retention sweep done");
        Ok(report)
    }

    /// Erases the detail of every row about one subject (GDPR art. 17), on
    /// every node of the store, then appends one [`AUDIT_SUBJECT_ERASED`]
    /// event and waits until it is committed. Rows under legal hold are
    /// kept and reported. See the [`retention`](crate::retention) module.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidEvent`] naming `reason` when the reason is empty,
    /// or `actor`/`target` when the subject is empty; [`ErrorKind::Store`]
    /// when the store fails (rows erased before stay erased; run it again);
    /// the errors of [`emit_durable`](Self::emit_durable) for the event.
    ///
    /// # Examples
    ///
    /// ```
    /// use fasten::retention::Erasure;
    /// # let dir = tempfile::tempdir()?;
    /// # let dsn = fasten::Dsn::parse("FASTEN_AUDIT_DSN", &format!("sqlite:///{}", dir.path().join("a.db").display()))?;
    /// let fasten = fasten::Config::new().service_id("api").node_id("node-1").audit_dsn(dsn).build()?;
    /// let report = fasten.erase_subject(&Erasure::actor("u-42").reason("GDPR art. 17 request #7"))?;
    /// assert_eq!(report.erased, 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn erase_subject(&self, request: &Erasure) -> Result<ErasureReport> {
        let field = if request.by_actor { "actor" } else { "target" };
        if request.subject.trim().is_empty() {
            return Err(Error::invalid(
                field,
                format!("invalid {field}: the subject to erase must not be empty"),
            ));
        }
        if request.reason.trim().is_empty() {
            return Err(Error::invalid(
                "reason",
                "invalid reason: say why the subject is erased, e.g. \"GDPR art. 17 request #4711\"",
            ));
        }
        let policy = self.retention();
        let mut store = store::open(self.dsn(), Access::Maintain)?;
        let scope = if request.by_actor {
            Scope::Actor(&request.subject)
        } else {
            Scope::Target(&request.subject)
        };
        let mut tally = Tally::default();
        let mut run = |tally: &mut Tally| -> Result<()> {
            let mut cursor = (PAGE_START.0.to_owned(), PAGE_START.1.to_owned());
            let max = SweepOptions::new().batch_size;
            let mut batch = max.min(FIRST_BATCH);
            loop {
                let page = store.page(scope, (&cursor.0, &cursor.1), batch)?;
                let Some(last) = page.last() else { break };
                cursor = (last.timestamp.clone(), last.id.clone());
                let full = page.len() == batch;
                let mut ids = Vec::with_capacity(page.len());
                for c in &page {
                    if c.code == AUDIT_RETENTION_SWEPT || c.code == AUDIT_SUBJECT_ERASED {
                        continue;
                    }
                    match hold(policy, c, None) {
                        Some(reason) => tally.hold(&c.code, reason, 1),
                        None => ids.push(c.id.as_str()),
                    }
                }
                if !ids.is_empty() {
                    let held =
                        erase_paced(store.as_mut(), &ids, &page, RetentionClass::Short, tally)?;
                    batch = next_batch(ids.len(), held, max);
                }
                if !full {
                    break;
                }
            }
            Ok(())
        };
        let failed = run(&mut tally).err();
        drop(store);
        // Rows erased before a failure are recorded all the same.
        let failed = match failed {
            Some(e) if tally.erased == 0 => return Err(e),
            other => other,
        };
        let ranges = tally.all_ranges();
        let held = tally.held();
        let erased = tally.erased;
        let (who, kind) = request
            .requested_by
            .clone()
            .unwrap_or_else(|| ("system".to_owned(), ActorKind::Service));
        let row = self.emit_durable(
            Event::new(AUDIT_SUBJECT_ERASED)
                .actor(who.clone(), kind)
                .target(request.subject.clone())
                .method(request.method)
                .detail(serde_json::json!({
                    "subject": field,
                    "reason": request.reason,
                    "requested_by": who,
                    "erased": erased,
                    "ranges": ranges,
                    "held": held,
                    "error": failed.as_ref().map(|e| e.to_string()),
                })),
        )?;
        if let Some(e) = failed {
            return Err(e);
        }
        Ok(ErasureReport {
            subject: field,
            erased,
            ranges,
            held,
            event_id: row.id,
        })
    }
}

impl Fasten {
    /// `FASTEN_API_RETENTION_DAYS`: how many days api stream rows stay in
    /// their store, if set (pass it to [`prune_stream`]).
    pub fn api_retention_days(&self) -> Option<u32> {
        self.retention().api_days()
    }

    /// `FASTEN_SYS_RETENTION_DAYS`: how many days sys stream rows stay in
    /// their store, if set (pass it to [`prune_stream`]).
    pub fn sys_retention_days(&self) -> Option<u32> {
        self.retention().sys_days()
    }
}
