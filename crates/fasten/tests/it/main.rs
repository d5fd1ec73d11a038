//! Integration tests: the public API against real SQLite files, several OS
//! processes, and SIGKILL.

mod crash;
mod multiprocess;
mod pipeline;
mod support;
