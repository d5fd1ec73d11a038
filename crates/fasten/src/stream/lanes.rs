//! A pipeline's two streams and their counters ([`StreamStats`]).

use super::*;

/// A stream's counters, from [`Fasten::sys_stats`](crate::Fasten::sys_stats) and
/// [`Fasten::api_stats`](crate::Fasten::api_stats).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StreamStats {
    /// Rows in the ring now.
    pub ring_len: usize,
    /// The ring's size (`FASTEN_SYS_RING_SIZE` / `FASTEN_API_RING_SIZE`).
    pub ring_capacity: usize,
    /// Rows pushed into the stream since start.
    pub pushed: u64,
    /// Rows waiting for the writer thread.
    pub queue_depth: usize,
    /// Rows handed to stdout and the store.
    pub written: u64,
    /// Rows shed because the writer could not keep up (each shed run is
    /// reported by a `dropped` row in the stream).
    pub dropped: u64,
    /// Rows the store refused (after one reconnect).
    pub failed: u64,
    /// The store's last error, if it ever failed.
    pub last_error: Option<String>,
    /// `sqlite` or `postgres` when the stream has a store.
    pub store: Option<&'static str>,
}

/// Takes a copy of each row a lane is pushed (OTLP export); must not
/// block.
pub(crate) type RowCopy<S> = Arc<dyn Fn(&Arc<S>) + Send + Sync + std::panic::RefUnwindSafe>;

/// The copies each stream's rows go to, besides the lane.
#[derive(Default)]
pub(crate) struct Copies {
    pub(crate) sys: Option<RowCopy<PackedSys>>,
    pub(crate) api: Option<RowCopy<ApiRow>>,
}

/// Both streams of a pipeline.
#[derive(Debug)]
pub(crate) struct Streams {
    pub(crate) origin: Origin,
    pub(crate) sys: Lane<SysRow>,
    pub(crate) api: Lane<ApiRow>,
    pub(crate) sys_level: tracing::Level,
    skip_paths: Vec<String>,
}

impl Streams {
    pub(crate) fn start(config: &crate::Config, origin: Origin, copies: Copies) -> Result<Self> {
        let lane = |ring, stdout, dsn: &Option<Dsn>, dsn_var| LaneSettings {
            ring,
            queue: config.stream_queue_capacity,
            stdout,
            dsn: dsn.clone(),
            dsn_var,
        };
        Ok(Self {
            sys: Lane::start(
                lane(
                    config.sys_ring_size,
                    config.stdout.sys,
                    &config.sys_dsn,
                    crate::env::FASTEN_SYS_DSN,
                ),
                origin.clone(),
                copies.sys,
            )?,
            api: Lane::start(
                lane(
                    config.api_ring_size,
                    config.stdout.api,
                    &config.api_dsn,
                    crate::env::FASTEN_API_DSN,
                ),
                origin.clone(),
                copies.api,
            )?,
            origin,
            sys_level: config.sys_level,
            skip_paths: config.api_skip_paths.clone(),
        })
    }

    /// Whether `path` gets no api row: an exact entry, or a prefix entry
    /// ending in `*`.
    #[cfg_attr(not(feature = "http"), allow(dead_code))]
    pub(crate) fn skips(&self, path: &str) -> bool {
        self.skip_paths.iter().any(|p| match p.strip_suffix('*') {
            Some(prefix) => path.starts_with(prefix),
            None => p == path,
        })
    }

    pub(crate) fn flush(&self, timeout: Duration) -> Result<()> {
        let start = Instant::now();
        self.sys.flush(timeout)?;
        self.api.flush(timeout.saturating_sub(start.elapsed()))
    }
}
