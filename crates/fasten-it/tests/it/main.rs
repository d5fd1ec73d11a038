//! Integration tests of fasten that need `lapin` or `tokio-cron-scheduler`,
//! kept out of the published crate's dev-dependencies.

// Helpers outside #[test] fns panic on failure by design, like the tests.
#![allow(clippy::unwrap_used)]

mod amqp;
mod cron;
mod support;
