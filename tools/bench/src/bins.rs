//! The binaries measured, and the scenarios that run them.
//!
//! **Problem.** The machine is shared: while the benchmark runs for minutes, someone may
//! rebuild `target/release/complex`, and the runs after that would measure another program
//! (or fail to start it half-written).
//!
//! **Fix.** The binaries are copied into a private directory first ([`Snapshot`]) and only
//! the copies run; `complex` re-executes itself for its workers, so they are copies too.
//! The directory is removed when the benchmark ends, even by Ctrl+C.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context as _;

use crate::latency::Scenario;

/// The suite's flags for every measured run: only the machinery, logs a tool can read,
/// and no per-call debug lines (lifecycle events are still logged at info).
const SUITE_FLAGS: [&str; 6] = ["--log-format", "json", "--time-scale", "0", "--log-level", "warn"];
/// The scale table's flags: the scale table's time scale, so calls take 30-50 ms and
/// the cost of the work shows next to the cost of the machinery.
const SCALE_FLAGS: [&str; 6] = [
    "--log-format",
    "json",
    "--time-scale",
    "0.1",
    "--log-level",
    "warn",
];
/// The scale table's `--workers` values (with `--busy-tasks 4`), and the floor's
/// `--children` values beside them.
pub const SCALE_WORKERS: [usize; 6] = [1, 4, 16, 64, 256, 1024];
/// The scale table's `--busy-tasks` values (with `--workers 4`).
pub const SCALE_BUSY: [usize; 4] = [4, 64, 1024, 4096];
/// The random pause between ready and SIGINT in the scale table: up to two calls at 0.1.
const SCALE_RAMP: Duration = Duration::from_millis(100);
/// The random pause between ready and SIGINT in the busy scenario.
const BUSY_RAMP: Duration = Duration::from_millis(20);

/// The snapshot directory, for the Ctrl+C handler (which exits without running `Drop`).
static SNAPSHOT_DIR: Mutex<Option<PathBuf>> = Mutex::new(None);

/// Removes the snapshot directory, if any: for the Ctrl+C handler.
pub fn remove_snapshot() {
    if let Some(dir) = SNAPSHOT_DIR.lock().unwrap_or_else(|p| p.into_inner()).take() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// A private copy of the binaries; removed on drop.
pub struct Snapshot {
    /// The copies.
    pub bins: Bins,
}

impl Drop for Snapshot {
    fn drop(&mut self) {
        remove_snapshot();
    }
}

/// The binaries measured.
pub struct Bins {
    /// `simple`.
    pub simple: PathBuf,
    /// `complex` (it re-executes itself as its workers).
    pub complex: PathBuf,
    /// The floor of `simple`.
    pub floor_ctrlc: PathBuf,
    /// The floor of `complex`'s start and stop.
    pub floor_children: PathBuf,
    /// The floor of `complex`'s calls.
    pub floor_pipes: PathBuf,
    /// examples/http.rs.
    pub http: PathBuf,
    /// The floor of the HTTP example: a bare axum hello-world.
    pub floor_axum: PathBuf,
}

impl Bins {
    /// Finds the binaries in `dir` (default: beside this executable) and copies them into a
    /// private directory.
    pub fn snapshot(dir: Option<&Path>) -> anyhow::Result<Snapshot> {
        let found = Bins::find(dir)?;
        let private = std::env::temp_dir().join(format!("graceful-bench-{}", std::process::id()));
        std::fs::create_dir_all(&private)
            .with_context(|| format!("failed to create {}", private.display()))?;
        *SNAPSHOT_DIR.lock().unwrap_or_else(|p| p.into_inner()) = Some(private.clone());
        let copy = |from: &Path| -> anyhow::Result<PathBuf> {
            let to = private.join(from.file_name().context("a binary without a name")?);
            std::fs::copy(from, &to).with_context(|| format!("failed to copy {}", from.display()))?;
            Ok(to)
        };
        let bins = Bins {
            simple: copy(&found.simple)?,
            complex: copy(&found.complex)?,
            floor_ctrlc: copy(&found.floor_ctrlc)?,
            floor_children: copy(&found.floor_children)?,
            floor_pipes: copy(&found.floor_pipes)?,
            http: copy(&found.http)?,
            floor_axum: copy(&found.floor_axum)?,
        };
        Ok(Snapshot { bins })
    }

    fn find(dir: Option<&Path>) -> anyhow::Result<Bins> {
        let dir = match dir {
            Some(dir) => dir.to_owned(),
            None => std::env::current_exe()
                .context("failed to find this executable")?
                .parent()
                .context("this executable has no directory")?
                .to_owned(),
        };
        let bin = |name: &str| {
            let path = dir.join(name);
            anyhow::ensure!(
                path.is_file(),
                "{} is missing: build with `cargo build --release --bins --examples -p graceful-shutdown` \
                 and `cargo build --release -p bench` (scripts/bench does)",
                path.display()
            );
            Ok(path)
        };
        Ok(Bins {
            simple: bin("simple")?,
            complex: bin("complex")?,
            floor_ctrlc: bin("floor-ctrlc")?,
            floor_children: bin("floor-children")?,
            floor_pipes: bin("floor-pipes")?,
            http: bin("examples/http")?,
            floor_axum: bin("floor-axum")?,
        })
    }

    /// The scale table's runs, in this order: `complex --workers` 1 to 1024 with 4 busy
    /// tasks, then `--busy-tasks` 4 to 4096 with 4 workers, all at `--time-scale 0.1`; then
    /// `floor-children --children` 1 to 1024, the floor of a worker's cost.
    pub fn scale_scenarios(&self) -> Vec<Scenario> {
        let complex = |name: String, workers: usize, busy: usize| Scenario {
            name,
            program: self.complex.clone(),
            args: SCALE_FLAGS
                .iter()
                .map(|s| s.to_string())
                .chain(["--workers".into(), workers.to_string()])
                .chain(["--busy-tasks".into(), busy.to_string()])
                .collect(),
            suite: true,
            children: workers,
            ramp: SCALE_RAMP,
        };
        SCALE_WORKERS
            .iter()
            .map(|&w| complex(format!("`--workers {w}` (`--busy-tasks 4`)"), w, 4))
            .chain(
                SCALE_BUSY
                    .iter()
                    .map(|&b| complex(format!("`--busy-tasks {b}` (`--workers 4`)"), 4, b)),
            )
            .chain(SCALE_WORKERS.iter().map(|&n| Scenario {
                name: format!("floor: `floor-children --children {n}`"),
                program: self.floor_children.clone(),
                args: vec!["--children".into(), n.to_string()],
                suite: false,
                children: n,
                ramp: Duration::ZERO,
            }))
            .collect()
    }

    /// In report order: simple, complex idle, complex busy, then the two floors.
    pub fn latency_scenarios(&self) -> Vec<Scenario> {
        let suite = |name: &str, program: &Path, extra: &[&str], children, ramp| Scenario {
            name: name.into(),
            program: program.to_owned(),
            args: SUITE_FLAGS.iter().chain(extra).map(|s| s.to_string()).collect(),
            suite: true,
            children,
            ramp,
        };
        let floor = |name: &str, program: &Path, args: &[&str], children| Scenario {
            name: name.into(),
            program: program.to_owned(),
            args: args.iter().map(|s| s.to_string()).collect(),
            suite: false,
            children,
            ramp: Duration::ZERO,
        };
        vec![
            suite("simple", &self.simple, &[], 0, Duration::ZERO),
            suite(
                "complex idle",
                &self.complex,
                &["--workers", "4", "--busy-tasks", "0"],
                4,
                Duration::ZERO,
            ),
            suite(
                "complex busy",
                &self.complex,
                &["--workers", "4", "--busy-tasks", "4"],
                4,
                BUSY_RAMP,
            ),
            floor("floor-ctrlc", &self.floor_ctrlc, &[], 0),
            floor("floor-children", &self.floor_children, &["--children", "4"], 4),
        ]
    }
}
