//! The binaries under test, frozen for the round.
//!
//! **Problem.** The workspace is shared: a colleague's `cargo build --release` replaces
//! `target/release/complex` in the middle of a long round, and the trials after it test
//! other code than the trials before, so a failure cannot be pinned to a build.
//!
//! **Fix.** Copy `simple` and `complex` to a private directory before the first trial and
//! run only the copies (`complex` spawns its workers from its own executable, so they are
//! the copy too); name them by a hash of their bytes in the summary; remove the copies at
//! the end.

use std::path::{Path, PathBuf};

use crate::scenario::Binary;

/// Private copies of the binaries, removed on drop.
pub struct Snapshot {
    /// Where the copies are.
    pub dir: PathBuf,
    /// Per binary, a short hash of its bytes, to tell builds apart.
    pub hashes: Vec<(Binary, String)>,
}

impl Snapshot {
    /// Copies both binaries from `origin`.
    pub fn take(origin: &Path) -> std::io::Result<Self> {
        let dir = std::env::temp_dir().join(format!("torture-bins-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let mut snapshot = Self {
            dir,
            hashes: Vec::new(),
        };
        for binary in [Binary::Simple, Binary::Complex] {
            let bytes = std::fs::read(origin.join(binary.name()))?;
            snapshot.hashes.push((binary, format!("{:016x}", fnv1a(&bytes))));
            let copy = snapshot.dir.join(binary.name());
            std::fs::write(&copy, &bytes)?;
            let mut permissions = std::fs::metadata(origin.join(binary.name()))?.permissions();
            // Executable by us, whatever the umask made of the new file.
            use std::os::unix::fs::PermissionsExt;
            permissions.set_mode(permissions.mode() | 0o700);
            std::fs::set_permissions(&copy, permissions)?;
        }
        Ok(snapshot)
    }

    /// `simple 1a2b…, complex 3c4d…`, for the summary.
    pub fn describe(&self) -> String {
        self.hashes
            .iter()
            .map(|(binary, hash)| format!("{binary} {hash}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl Drop for Snapshot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// FNV-1a, 64 bits: enough to tell two builds apart, no dependency.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}
