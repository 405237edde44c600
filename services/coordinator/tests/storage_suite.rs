//! openraft's storage conformance suite against the real RocksDB store:
//! the raft log and the state machine sharing one database, as a running
//! coordinator opens them.

use std::sync::{Arc, RwLock};

use openraft::testing::{StoreBuilder, Suite};
use skyclaw_coordinator::log_store::LogStore;
use skyclaw_coordinator::machine::StateMachine;
use skyclaw_coordinator::materialized::Materialized;
use skyclaw_coordinator::metrics::Metrics;
use skyclaw_coordinator::raft::{StorageError, TypeConfig};
use skyclaw_coordinator::store;
use tempfile::TempDir;
use tokio::sync::Notify;

/// Each case gets a fresh database in its own temporary directory, removed
/// when the case drops the guard.
struct RocksBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, TempDir> for RocksBuilder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachine), StorageError> {
        let dir = tempfile::tempdir().expect("creating a temporary directory");
        let db = store::open(dir.path()).expect("opening a fresh store");
        let shared = Arc::new(RwLock::new(
            Materialized::load(&db).expect("loading an empty store"),
        ));
        let metrics = Arc::new(Metrics::new());
        let log = LogStore::new(db.clone(), metrics.clone());
        let machine = StateMachine::new(db, shared, Arc::new(Notify::new()), metrics);
        Ok((dir, log, machine))
    }
}

// The suite starts a tokio runtime per case, so this is a plain test.
#[test]
fn openraft_storage_suite() {
    if let Err(e) = Suite::test_all(RocksBuilder) {
        panic!("a storage suite case failed: {e}");
    }
}
