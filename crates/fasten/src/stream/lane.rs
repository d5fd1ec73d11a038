//! One stream: its ring in memory, its bounded queue and its writer thread.

use super::*;

/// How a lane starts.
#[derive(Debug, Clone)]
pub(crate) struct LaneSettings {
    pub(crate) ring: usize,
    pub(crate) queue: usize,
    pub(crate) stdout: bool,
    pub(crate) dsn: Option<Dsn>,
    pub(crate) dsn_var: &'static str,
}

/// The most bytes one ring holds (by an estimate of
/// each row's heap size): rows past it evict the oldest, as rows past the
/// ring's row count do. Each field is capped at [`MAX_FIELD_BYTES`] and a
/// sys row's fields at `FASTEN_MAX_DETAIL_BYTES`, so without this a ring
/// of 10,000 large rows could hold hundreds of MiB.
pub const MAX_RING_BYTES: usize = 32 * 1024 * 1024;

/// The newest rows, oldest first; pushes past the capacity (rows or
/// bytes) evict the oldest.
#[derive(Debug)]
pub(super) struct Ring<T> {
    rows: Mutex<RingRows<T>>,
    capacity: usize,
    max_bytes: usize,
}

#[derive(Debug)]
pub(super) struct RingRows<T> {
    rows: VecDeque<(Arc<T>, usize)>,
    bytes: usize,
}

impl<T> Ring<T> {
    pub(super) fn new(capacity: usize) -> Self {
        Self::with_max_bytes(capacity, MAX_RING_BYTES)
    }

    pub(super) fn with_max_bytes(capacity: usize, max_bytes: usize) -> Self {
        // Allocate up front (bounded by the capacity, itself bounded at
        // config time), so pushes never reallocate on the request path.
        Self {
            rows: Mutex::new(RingRows {
                rows: VecDeque::with_capacity(capacity),
                bytes: 0,
            }),
            capacity,
            max_bytes,
        }
    }

    /// Keeps `row`, which weighs `bytes`, evicting the oldest rows until
    /// both the row count and the bytes fit.
    pub(super) fn push(&self, row: Arc<T>, bytes: usize) {
        if self.capacity == 0 || bytes > self.max_bytes {
            return;
        }
        let mut ring = self.rows.lock().unwrap_or_else(PoisonError::into_inner);
        while ring.rows.len() >= self.capacity || ring.bytes + bytes > self.max_bytes {
            match ring.rows.pop_front() {
                Some((_, b)) => ring.bytes -= b,
                None => break,
            }
        }
        ring.bytes += bytes;
        ring.rows.push_back((row, bytes));
    }

    pub(super) fn len(&self) -> usize {
        self.rows
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .rows
            .len()
    }

    /// Up to `limit` rows, newest first, that `keep` accepts.
    pub(super) fn newest(&self, limit: usize, mut keep: impl FnMut(&T) -> bool) -> Vec<Arc<T>> {
        let ring = self.rows.lock().unwrap_or_else(PoisonError::into_inner);
        ring.rows
            .iter()
            .rev()
            .map(|(r, _)| r)
            .filter(|r| keep(r))
            .take(limit)
            .cloned()
            .collect()
    }
}

pub(super) enum Msg<T> {
    Row(Arc<T>),
    Flush(Sender<()>),
}

#[derive(Debug, Default)]
pub(super) struct Counters {
    pushed: AtomicU64,
    written: AtomicU64,
    dropped: AtomicU64,
    /// Dropped since the last `dropped` row was written.
    unreported: AtomicU64,
    failed: AtomicU64,
    last_error: Mutex<Option<String>>,
}

/// One stream: ring, queue and writer thread.
pub(crate) struct Lane<T: Record> {
    pub(super) ring: Ring<T::Stored>,
    pub(super) tx: Option<Sender<Msg<T::Stored>>>,
    pub(super) counters: Arc<Counters>,
    pub(super) store_kind: Option<&'static str>,
    /// The stream's table, for reads.
    pub(super) table: Option<TableReader<T>>,
    /// Where a copy of each row goes (OTLP export).
    pub(super) copy: Option<RowCopy<T::Stored>>,
}

impl<T: Record> std::fmt::Debug for Lane<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lane")
            .field("stream", &T::STREAM)
            .field("ring_capacity", &self.ring.capacity)
            .field("store", &self.store_kind)
            .finish_non_exhaustive()
    }
}

impl<T: Record> Lane<T> {
    /// Opens the stream's store now, so a bad DSN or an unreachable server
    /// fails `init` rather than the first request.
    pub(crate) fn start(
        settings: LaneSettings,
        origin: Origin,
        copy: Option<RowCopy<T::Stored>>,
    ) -> Result<Self> {
        let store = match &settings.dsn {
            Some(dsn) => Some(table::open::<T>(dsn).map_err(|e| {
                Error::new(
                    ErrorKind::Store,
                    format!(
                        "cannot open the {} stream store {dsn} ({})",
                        T::STREAM,
                        settings.dsn_var
                    ),
                )
                .with_source(e)
            })?),
            None => None,
        };
        let store_kind = store.as_ref().map(|s| s.kind());
        let counters = Arc::new(Counters::default());
        // Without stdout or a store there is nothing to write: no thread,
        // and pushes only touch the ring.
        let tx = if settings.stdout || store.is_some() {
            let (tx, rx) = crossbeam_channel::bounded(settings.queue.max(1));
            let worker = Worker::<T> {
                rx,
                counters: Arc::clone(&counters),
                stdout: settings.stdout,
                store,
                dsn: settings.dsn.clone(),
                origin,
                line: Vec::with_capacity(512),
            };
            // Detached: it ends when the lane (its only sender) is dropped,
            // after writing what is still queued.
            std::thread::Builder::new()
                .name(format!("fasten-{}", T::STREAM))
                .spawn(move || {
                    crate::quiet::mark_thread();
                    worker.run();
                })
                .map_err(|e| {
                    Error::new(ErrorKind::Store, "cannot start a stream writer").with_source(e)
                })?;
            Some(tx)
        } else {
            None
        };
        Ok(Self {
            ring: Ring::new(settings.ring),
            tx,
            counters,
            store_kind,
            table: settings.dsn.map(TableReader::new),
            copy,
        })
    }

    /// Never blocks on the writer: a full queue sheds the row (counted).
    pub(crate) fn push(&self, row: T) {
        let row = Arc::new(row.pack());
        self.counters.pushed.fetch_add(1, Ordering::Relaxed);
        if let Some(tx) = &self.tx {
            match tx.try_send(Msg::Row(Arc::clone(&row))) {
                Ok(()) => {}
                Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                    self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                    self.counters.unreported.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        if let Some(copy) = &self.copy {
            copy(&row);
        }
        let bytes = T::weight(&row);
        self.ring.push(row, bytes);
    }

    /// A page from the store when the stream has one, else from the ring.
    pub(crate) fn read(&self, q: &StreamQuery) -> Result<StreamPage<T>> {
        match &self.table {
            Some(table) => table.read(q),
            None => Ok(page(
                self.ring
                    .newest(q.limit, |r| q.matches::<T>(r))
                    .into_iter()
                    .map(|r| T::unpack(&r))
                    .collect(),
                Source::Ring,
                q.limit,
            )),
        }
    }

    /// Waits until every row pushed before the call is written.
    pub(crate) fn flush(&self, timeout: Duration) -> Result<()> {
        let Some(tx) = &self.tx else { return Ok(()) };
        let (ack, done) = crossbeam_channel::bounded(1);
        let timed_out = || {
            Error::new(
                ErrorKind::Timeout,
                format!("the {} stream did not drain within {timeout:?}", T::STREAM),
            )
        };
        // `Duration::MAX` means wait for ever; it does not fit an Instant.
        match Instant::now().checked_add(timeout) {
            Some(deadline) => {
                tx.send_deadline(Msg::Flush(ack), deadline)
                    .map_err(|_| timed_out())?;
                done.recv_deadline(deadline).map_err(|_| timed_out())
            }
            None => {
                tx.send(Msg::Flush(ack)).map_err(|_| timed_out())?;
                done.recv().map_err(|_| timed_out())
            }
        }
    }

    /// The stream's table, when it has one.
    pub(crate) fn table_dsn(&self) -> Option<&Dsn> {
        self.table.as_ref().map(|t| &t.dsn)
    }

    pub(crate) fn stats(&self) -> StreamStats {
        let c = &self.counters;
        StreamStats {
            ring_len: self.ring.len(),
            ring_capacity: self.ring.capacity,
            pushed: c.pushed.load(Ordering::Relaxed),
            queue_depth: self.tx.as_ref().map_or(0, Sender::len),
            written: c.written.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            last_error: c
                .last_error
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
            store: self.store_kind,
        }
    }
}

pub(super) struct Worker<T: Record> {
    rx: Receiver<Msg<T::Stored>>,
    counters: Arc<Counters>,
    stdout: bool,
    store: Option<Box<dyn StreamStore>>,
    dsn: Option<Dsn>,
    origin: Origin,
    line: Vec<u8>,
}

impl<T: Record> Worker<T> {
    fn run(mut self) {
        let mut batch: Vec<Arc<T::Stored>> = Vec::with_capacity(BATCH);
        let mut acks: Vec<Sender<()>> = Vec::new();
        loop {
            // Block for the first message, then take what else is there. The
            // timeout bounds how late a `dropped` row is when shedding
            // happened and then the stream went quiet.
            let first = match self.rx.recv_timeout(Duration::from_millis(250)) {
                Ok(m) => Some(m),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let mut next = first;
            while let Some(msg) = next {
                match msg {
                    Msg::Row(r) => batch.push(r),
                    Msg::Flush(ack) => acks.push(ack),
                }
                next = if batch.len() < BATCH {
                    self.rx.try_recv().ok()
                } else {
                    None
                };
            }
            let shed = self.counters.unreported.swap(0, Ordering::Relaxed);
            if shed > 0 {
                batch.push(Arc::new(T::dropped(shed, &self.origin).pack()));
            }
            if !batch.is_empty() {
                self.write(&batch);
                batch.clear();
            }
            for ack in acks.drain(..) {
                let _ = ack.send(());
            }
        }
        if !batch.is_empty() {
            self.write(&batch);
        }
    }

    fn write(&mut self, batch: &[Arc<T::Stored>]) {
        let batch: Vec<T> = batch.iter().map(|r| T::unpack(r)).collect();
        if self.stdout {
            self.line.clear();
            for row in &batch {
                write_line(&mut self.line, T::STREAM, row);
            }
            // A closed stdout (a daemon, a pipe whose reader left) must not
            // stop the store; there is nowhere to report it but the counter.
            let _ = std::io::stdout().lock().write_all(&self.line);
        }
        let n = batch.len() as u64;
        if self.store.is_none() {
            self.counters.written.fetch_add(n, Ordering::Relaxed);
            return;
        }
        let values: Vec<Value> = batch
            .iter()
            .filter_map(|r| serde_json::to_value(r).ok())
            .collect();
        let mut result = self.insert(&values);
        if result.is_err() {
            // One reconnect: a restarted server or a dropped connection.
            self.store = self.dsn.as_ref().and_then(|d| table::open::<T>(d).ok());
            result = self.insert(&values);
        }
        match result {
            Ok(()) => {
                self.counters.written.fetch_add(n, Ordering::Relaxed);
            }
            Err(e) => {
                self.counters.failed.fetch_add(n, Ordering::Relaxed);
                let first = self
                    .counters
                    .last_error
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .replace(e.to_string())
                    .is_none();
                if first {
                    tracing::warn!(target: "fasten::stream", stream = T::STREAM, error = %e, rows = n, "stream store failed; rows shed (counted in stream_stats().failed)");
                }
            }
        }
    }

    fn insert(&mut self, values: &[Value]) -> Result<()> {
        match self.store.as_mut() {
            Some(store) => store.insert(values),
            None => Err(Error::new(ErrorKind::Store, "stream store unavailable")),
        }
    }
}

/// One JSON object and a newline, with `"stream"` first.
pub(crate) fn write_line<T: Serialize>(out: &mut Vec<u8>, stream: &str, row: &T) {
    out.extend_from_slice(b"{\"stream\":\"");
    out.extend_from_slice(stream.as_bytes());
    out.extend_from_slice(b"\",");
    let start = out.len();
    if serde_json::to_writer(&mut *out, row).is_err() || out.get(start) != Some(&b'{') {
        out.truncate(start - 1);
        out.extend_from_slice(b"}\n");
        return;
    }
    // Splice the row's object after our `"stream":…,` prefix.
    out.remove(start);
    out.push(b'\n');
}
