//! Where the test prerequisites live: the Python venv, the helper scripts, our binaries.
//!
//! Every function panics with the command that fixes the problem when its file is missing.

use std::env;
use std::path::{Path, PathBuf};

/// The name of the marker file `scripts/python-env.sh` writes into a complete venv.
const VENV_MARKER: &str = ".wormhole-test-pins";

/// The workspace root (the parent of this crate's folder `tests/`).
pub fn workspace_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate lives in a folder of the workspace")
        .to_path_buf()
}

/// The Python venv with the reference implementations: `$WORMHOLE_TEST_VENV`, else
/// `<workspace>/.venv`. A relative `$WORMHOLE_TEST_VENV` is taken from the workspace root.
///
/// Panics unless `scripts/python-env.sh` has completed there.
pub fn venv_dir() -> PathBuf {
    let venv = match env::var_os("WORMHOLE_TEST_VENV") {
        Some(dir) if !dir.is_empty() => workspace_dir().join(dir),
        _ => workspace_dir().join(".venv"),
    };
    assert!(
        venv.join(VENV_MARKER).is_file(),
        "no complete Python reference venv at {}: run scripts/python-env.sh \
         (or scripts/test), with the same WORMHOLE_TEST_VENV",
        venv.display()
    );
    venv
}

/// The venv's Python interpreter.
pub fn venv_python() -> PathBuf {
    let python = venv_dir().join("bin").join("python");
    assert!(
        python.is_file(),
        "no interpreter at {}: rerun scripts/python-env.sh",
        python.display()
    );
    python
}

/// A helper script in `tests/python/`, e.g. `python_script("mailbox_server.py")`.
pub fn python_script(name: &str) -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("python")
        .join(name);
    assert!(script.is_file(), "missing test script {}", script.display());
    script
}

/// One of the workspace's binaries (`wormholed`, `wormholectl`), from the target directory of
/// the running test executable (`<target>/<profile>/deps/<test>` → `<target>/<profile>/<name>`),
/// so it works with any `CARGO_TARGET_DIR` and profile.
///
/// Panics unless it was built: `cargo test` builds only the binaries of the package under test.
pub fn bin_path(name: &str) -> PathBuf {
    let exe = env::current_exe().expect("the path of the running test executable is known");
    let mut dir = exe
        .parent()
        .expect("an executable lives in a directory")
        .to_path_buf();
    if dir.file_name().is_some_and(|d| d == "deps") {
        dir.pop();
    }
    let bin = dir.join(format!("{name}{}", env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "no {name} binary at {}: run cargo build --workspace --bins (scripts/test does)",
        bin.display()
    );
    bin
}
