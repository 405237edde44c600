//! The command line itself, no coordinator needed: help everywhere, usage
//! errors exit 2, settings read their environment variables, secrets stay
//! out of help. (Having tests here also makes `cargo test --workspace`
//! build the binary that the black-box tests in `tests/` start.)
//!
//! - `every_subcommand_has_help`
//! - `usage_errors_exit_2`
//! - `help_names_the_environment_variables_but_hides_the_token`
//! - `without_a_token_a_coordinator_listens_on_loopback_only`

use std::process::{Command, Output};

fn skyclaw(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_skyclaw"));
    command.args(args);
    for (name, _) in std::env::vars() {
        if name.starts_with("SKYCLAW_") {
            command.env_remove(name);
        }
    }
    command
        .envs(env.iter().copied())
        .output()
        .expect("run skyclaw")
}

const SUBCOMMANDS: &[&[&str]] = &[
    &[],
    &["coordinator"],
    &["dev"],
    &["host"],
    &["enqueue-shell"],
    &["enqueue-automaton"],
    &["jobs"],
    &["jobs", "list"],
    &["jobs", "show"],
    &["jobs", "cancel"],
    &["jobs", "wait"],
    &["hosts"],
    &["hosts", "list"],
    &["status"],
];

#[test]
fn every_subcommand_has_help() {
    for subcommand in SUBCOMMANDS {
        let mut args = subcommand.to_vec();
        args.push("--help");
        let out = skyclaw(&args, &[]);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Usage: skyclaw"),
            "{args:?}"
        );
    }
}

#[test]
fn usage_errors_exit_2() {
    let cases: &[&[&str]] = &[
        &["no-such-command"],
        &["enqueue-shell"],
        &["enqueue-shell", "--env", "NOEQUALS", "sh"],
        &["jobs", "list", "--status", "bogus"],
        &["jobs", "show"],
        &["host", "--max-parallel", "many"],
    ];
    for args in cases {
        let out = skyclaw(args, &[]);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(!out.stderr.is_empty());
    }
}

#[test]
fn help_names_the_environment_variables_but_hides_the_token() {
    let out = skyclaw(&["host", "--help"], &[("SKYCLAW_TOKEN", "do-not-print-me")]);
    let help = String::from_utf8_lossy(&out.stdout);
    for variable in [
        "SKYCLAW_COORDINATOR_URLS",
        "SKYCLAW_COORDINATOR_URL",
        "SKYCLAW_TOKEN",
        "SKYCLAW_HOST_NAME",
        "SKYCLAW_HOST_ID",
        "SKYCLAW_CAPABILITIES",
        "SKYCLAW_ALLOWED_COMMANDS",
        "SKYCLAW_MAX_PARALLEL",
        "SKYCLAW_POLL_MS",
        "SKYCLAW_HEARTBEAT_MS",
        "SKYCLAW_TIMEOUT_MS",
        "SKYCLAW_MAX_OUTPUT_BYTES",
        "SKYCLAW_AUTOMATON_COMMAND",
        "SKYCLAW_KILL_GRACE_MS",
    ] {
        assert!(help.contains(variable), "host --help lacks {variable}");
    }
    assert!(!help.contains("do-not-print-me"));

    let out = skyclaw(
        &["coordinator", "--help"],
        &[("SKYCLAW_TOKEN", "do-not-print-me")],
    );
    let help = String::from_utf8_lossy(&out.stdout);
    for variable in [
        "SKYCLAW_COORDINATOR_NODE_ID",
        "SKYCLAW_COORDINATOR_HOST",
        "SKYCLAW_COORDINATOR_PORT",
        "SKYCLAW_PEER_URLS",
        "SKYCLAW_DB_PATH",
        "SKYCLAW_LEASE_MS",
        "SKYCLAW_TOKEN",
        "SKYCLAW_CHECKPOINT_MS",
        "SKYCLAW_CHECKPOINT_EVERY",
        "SKYCLAW_RAFT_HEARTBEAT_MS",
        "SKYCLAW_ELECTION_TIMEOUT_MS",
    ] {
        assert!(
            help.contains(variable),
            "coordinator --help lacks {variable}"
        );
    }
    assert!(!help.contains("do-not-print-me"));
}

/// Without a token every request is trusted, so a coordinator without one
/// listens where no one else can connect: loopback by default, and it
/// refuses an address others could reach, naming what to set.
#[test]
fn without_a_token_a_coordinator_listens_on_loopback_only() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let db = db.to_str().unwrap();
    for host in ["0.0.0.0", "::"] {
        let out = skyclaw(
            &[
                "coordinator",
                "--host",
                host,
                "--port",
                "0",
                "--db-path",
                db,
            ],
            &[],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{host}: {stderr}");
        assert!(stderr.contains("without a token"), "{stderr}");
        assert!(stderr.contains("SKYCLAW_TOKEN"), "{stderr}");
        assert!(out.stdout.is_empty(), "{host}: it must not have listened");
    }

    let mut coordinator = Command::new(env!("CARGO_BIN_EXE_skyclaw"))
        .args(["coordinator", "--port", "0", "--db-path", db])
        .env_remove("SKYCLAW_TOKEN")
        .env_remove("SKYCLAW_COORDINATOR_HOST")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(coordinator.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    coordinator.kill().ok();
    coordinator.wait().ok();
    assert!(
        line.starts_with("skyclaw coordinator listening on http://127.0.0.1:"),
        "{line}"
    );
}
