//! Finding the built binaries the kit starts (`skyclaw`, `skyclaw-audit`),
//! and commands for them that nothing of the caller's environment leaks
//! into.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::Command;

/// The binary `name`: `given`, else the one beside the running executable
/// (a binary such as the benchmark), else the one a level up (a test
/// executable: cargo puts those in `<target>/<profile>/deps/`).
pub fn locate(name: &str, given: Option<PathBuf>) -> PathBuf {
    let bin = given.unwrap_or_else(|| {
        let exe = std::env::current_exe().expect("the running executable's path");
        let dir = exe.parent().expect("an executable lives in a directory");
        let beside = dir.join(name);
        match dir.parent().map(|up| up.join(name)) {
            Some(up) if !beside.exists() && up.exists() => up,
            _ => beside,
        }
    });
    assert!(
        bin.exists(),
        "{} not found: build it (`cargo build --workspace`, or `cargo test --workspace`) \
         or pass its path",
        bin.display()
    );
    bin
}

/// A command for one of our binaries, with nothing of the caller's
/// `SKYCLAW_*` settings or HTTP proxies leaking in (coordinators talk to
/// each other directly, or through the kit's own proxies), killed when its
/// handle drops.
pub fn clean_command(bin: &Path) -> Command {
    let mut command = Command::new(bin);
    for (name, _) in std::env::vars() {
        let lower = name.to_ascii_lowercase();
        if name.starts_with("SKYCLAW_")
            || ["http_proxy", "https_proxy", "all_proxy"].contains(&lower.as_str())
        {
            command.env_remove(&name);
        }
    }
    command.stdin(Stdio::null()).kill_on_drop(true);
    command
}
