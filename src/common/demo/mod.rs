//! What the two demos share and an embedder does not need (feature `demo`, on by default).
//!
//! `simple` and `complex` simulate work: their delays scale with `--time-scale`, and
//! `--fail-start` makes a chosen component's start fail so the reverse stop can be seen.
//! Those knobs belong to the demo's services, not to the library: a real service has no
//! time scale, and its failures are its own. Keeping them here, behind a feature, also keeps
//! clap out of a program that embeds the library with a command line of its own.

mod args;
mod dummy;
mod time_scale;

pub use args::{CommonArgs, EXIT_STATUS_HELP, check_fail_start};
pub use dummy::Dummy;
pub use time_scale::{PERIOD_FLOOR, TimeScale};
