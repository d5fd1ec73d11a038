//! Deleting old rows of the sys and api stream tables.

use super::*;

// === stream stores ===

/// Deletes the rows of the stream table `table` (in the database `dsn`
/// names, e.g. `FASTEN_API_DSN`) whose `timestamp` is `days` days or more
/// before `now`, in transactions of at most 1000 rows. Returns how many it
/// deleted. Stream rows are not chained, so they are deleted, not erased.
///
/// # Errors
///
/// [`ErrorKind::Config`] naming `FASTEN_API_RETENTION_DAYS` when `days` is 0
/// or more than 36500; [`ErrorKind::Store`] when `table` is not a plain
/// identifier, is the DSN's audit table, or the store fails.
///
/// # Examples
///
/// ```no_run
/// let dsn = fasten::Dsn::parse("FASTEN_API_DSN", "sqlite:///fasten_api.db")?;
/// let deleted = fasten::retention::prune_stream(&dsn, "api_log", 30, std::time::SystemTime::now())?;
/// # let _ = deleted;
/// # Ok::<(), fasten::Error>(())
/// ```
pub fn prune_stream(dsn: &Dsn, table: &str, days: u32, now: SystemTime) -> Result<u64> {
    check_days(
        FASTEN_API_RETENTION_DAYS,
        &days.to_string(),
        u64::from(days),
    )?;
    let now = jiff::Timestamp::try_from(now)
        .map_err(|e| Error::new(ErrorKind::Store, "prune clock out of range").with_source(e))?;
    let age = jiff::SignedDuration::from_secs(i64::from(days) * DAY as i64);
    let cutoff = format_timestamp(now.checked_sub(age).unwrap_or(jiff::Timestamp::MIN));
    store::prune(dsn, table, &cutoff, PRUNE_BATCH)
}
