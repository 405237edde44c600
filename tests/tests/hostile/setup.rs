//! `scripts/setup` must install libclang whenever bindgen could not load
//! one: stock images ship `libclang-cpp.so.N`, which is another library.

use std::path::{Path, PathBuf};
use std::process::Command;

fn setup_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/setup")
}

/// Whether `scripts/setup` finds a loadable libclang among `files`.
fn detects(files: &[&str]) -> bool {
    let dir = tempfile::tempdir().unwrap();
    for file in files {
        std::fs::write(dir.path().join(file), b"").unwrap();
    }
    let status = Command::new("bash")
        .arg(setup_script())
        .arg("--check-libclang")
        .arg(dir.path())
        .status()
        .expect("run scripts/setup");
    match status.code() {
        Some(0) => true,
        Some(1) => false,
        other => panic!("scripts/setup --check-libclang exited {other:?}"),
    }
}

#[test]
fn libclang_cpp_alone_is_not_a_libclang_bindgen_can_load() {
    assert!(!detects(&[]));
    assert!(!detects(&["libclang-cpp.so.14"]));
    assert!(!detects(&["libclang-cpp.so.14", "libclangBasic.a"]));
}

#[test]
fn every_name_bindgen_loads_is_detected() {
    assert!(detects(&["libclang.so"]));
    assert!(detects(&["libclang-14.so"]));
    assert!(detects(&["libclang.so.1"]));
    assert!(detects(&["libclang-cpp.so.14", "libclang-16.so"]));
}
