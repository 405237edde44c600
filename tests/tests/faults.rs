//! Three coordinators on loopback, under a steady load of enqueuers and
//! hosts, broken one way per test; after each, the checker (see
//! `harness/checker.rs`): every acknowledged enqueue exactly once, no job
//! completed twice or under a dead lease, one log head and one digest on
//! every node, and every node's chain verifies.
//!
//! - `killing_the_leader_moves_writes_to_a_new_leader`
//! - `a_paused_leader_steps_down_and_loses_nothing_it_acknowledged`
//! - `an_isolated_leader_acknowledges_nothing_and_catches_up_once_healed`
//! - `a_follower_behind_the_purged_log_catches_up_through_a_snapshot` (with
//!   ended jobs retired as it runs)
//! - `a_wiped_follower_rejoins_as_a_new_incarnation`
//! - `a_rolling_restart_under_load_loses_nothing`
//! - `members_are_removed_and_added_with_skyclaw_cluster`
//!
//! The harness runs these one at a time; see `harness::run`.

mod harness;
mod util;

use std::time::{Duration, Instant};

use harness::checker::{self, reported_anchor, Summary};
use harness::load::{job_body, Ledger, Load};
use skyclaw_api::{ClusterHello, JobResponse};
use skyclaw_testkit::{wait_until, Api, Cluster, Options};
use tokio::task::JoinSet;

const ENQUEUERS: usize = 4;
const HOSTS: usize = 3;
/// The most any one test may take.
const TEST_LIMIT: Duration = Duration::from_secs(110);
/// The most one wait for the cluster to do something may take.
const WAIT: Duration = Duration::from_secs(20);

fn others(cluster: &Cluster, node: usize) -> Vec<usize> {
    (0..cluster.nodes.len()).filter(|&i| i != node).collect()
}

fn report(test: &str, started: Instant, summary: &Summary) {
    println!(
        "{test}: passed in {:?}; head {}, {} jobs ({} acknowledged, {} unsure), {} completed, anchored: {:?}",
        started.elapsed(),
        summary.head_seq,
        summary.jobs,
        summary.acknowledged,
        summary.unsure,
        summary.completed,
        summary.anchored
    );
}

/// Every node's process is still the one the test left running: nothing
/// crashed along the way.
/// How many jobs node `i` retired since it started, by its metrics.
async fn retired_jobs(cluster: &Cluster, i: usize) -> f64 {
    let metrics = cluster
        .api
        .get(&cluster.nodes[i].url, "/metrics")
        .await
        .expect("the node answers");
    metrics
        .text()
        .lines()
        .find_map(|line| line.strip_prefix("skyclaw_jobs_retired_total "))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0.0)
}

fn assert_none_crashed(cluster: &mut Cluster) {
    for i in 0..cluster.nodes.len() {
        assert!(
            cluster.is_running(i),
            "{} is no longer running; log:\n{}",
            cluster.nodes[i].name,
            cluster.nodes[i].log_tail(60)
        );
    }
}

#[test]
fn killing_the_leader_moves_writes_to_a_new_leader() {
    const KILLS: usize = 10;
    harness::run(TEST_LIMIT, async {
        let started = Instant::now();
        let mut cluster = Cluster::start(harness::options()).await;
        let load = Load::start(cluster.urls(), "kill", ENQUEUERS, HOSTS);
        let mut probes = Ledger::default();
        let mut failovers = Vec::new();
        for round in 0..KILLS {
            load.wait_acknowledged(30, WAIT).await;
            let leader = cluster.wait_ready().await;
            cluster.kill(leader).await;
            let killed_at = Instant::now();
            let survivors = others(&cluster, leader);
            let key = format!("kill-probe-{round}");
            let (job, accepted_at) =
                harness::enqueue_until_acknowledged(&cluster, &survivors, &key, WAIT).await;
            probes.enqueued.insert(key, job);
            let failover = accepted_at - killed_at;
            let new_leader = cluster.wait_leader_among(&survivors, WAIT).await;
            println!(
                "kill {round}: {} was leader, {} leads now; first write accepted {failover:?} after the kill",
                cluster.nodes[leader].name, cluster.nodes[new_leader].name
            );
            failovers.push(failover);
            load.wait_acknowledged(30, WAIT).await;
            cluster.restart(leader).await;
        }
        cluster.wait_ready().await;
        let mut ledger = load.stop().await;
        ledger.merge(probes);
        let summary = checker::check(&cluster, &ledger).await;
        assert_none_crashed(&mut cluster);
        failovers.sort();
        println!(
            "failover over {KILLS} leader kills: median {:?}, worst {:?}",
            failovers[KILLS / 2],
            failovers[KILLS - 1]
        );
        report("kill the leader", started, &summary);
    });
}

#[test]
fn a_paused_leader_steps_down_and_loses_nothing_it_acknowledged() {
    harness::run(TEST_LIMIT, async {
        let started = Instant::now();
        let mut cluster = Cluster::start(harness::options()).await;
        let load = Load::start(cluster.urls(), "pause", ENQUEUERS, HOSTS);
        load.wait_acknowledged(30, WAIT).await;
        let leader = cluster.wait_ready().await;
        let term_before = cluster.status(leader).await.expect("leader status").term;
        cluster.pause(leader);
        let paused_at = Instant::now();

        // Writes sent to the frozen leader: it reads them once it runs
        // again, while it may still believe it leads. None may be
        // acknowledged unless a quorum committed it.
        let mut frozen_writes = JoinSet::new();
        for k in 0..5 {
            let url = cluster.nodes[leader].url.clone();
            frozen_writes.spawn(async move {
                let key = format!("to-the-paused-leader-{k}");
                let reply = Api::new(Duration::from_secs(30))
                    .post(&url, "/v1/jobs", &job_body(&key), Some(&key))
                    .await;
                (key, reply)
            });
        }

        let survivors = others(&cluster, leader);
        let mut probes = Ledger::default();
        let (job, accepted_at) =
            harness::enqueue_until_acknowledged(&cluster, &survivors, "pause-probe", WAIT).await;
        probes.enqueued.insert("pause-probe".into(), job);
        let new_leader = cluster.wait_leader_among(&survivors, WAIT).await;
        println!(
            "pause: {} paused, {} leads; first write accepted {:?} after the pause",
            cluster.nodes[leader].name,
            cluster.nodes[new_leader].name,
            accepted_at - paused_at
        );
        cluster.resume(leader);

        let new_leader_name = cluster.nodes[new_leader].name.clone();
        wait_until(
            "the resumed leader to follow the new one in a later term",
            WAIT,
            || async {
                let status = cluster.status(leader).await?;
                (status.leader.as_ref() == Some(&new_leader_name) && status.term > term_before)
                    .then_some(())
            },
        )
        .await;
        let answers = tokio::time::timeout(Duration::from_secs(40), frozen_writes.join_all())
            .await
            .expect("the writes sent to the paused leader were answered");
        for (key, reply) in answers {
            match reply {
                Ok(reply) if reply.status == 200 => {
                    let job: JobResponse = reply.json();
                    println!("pause: {key} acknowledged as {}", job.job.id);
                    probes.enqueued.insert(key, job.job.id);
                }
                Ok(reply) => {
                    assert_eq!(reply.status, 503, "{key}: {}", reply.text());
                    println!("pause: {key} refused: {}", reply.text());
                    probes.unsure.insert(key);
                }
                Err(e) => {
                    println!("pause: {key} unanswered: {e}");
                    probes.unsure.insert(key);
                }
            }
        }

        cluster.wait_ready().await;
        load.wait_acknowledged(30, WAIT).await;
        let mut ledger = load.stop().await;
        ledger.merge(probes);
        let summary = checker::check(&cluster, &ledger).await;
        assert_none_crashed(&mut cluster);
        report("pause the leader", started, &summary);
    });
}

#[test]
fn an_isolated_leader_acknowledges_nothing_and_catches_up_once_healed() {
    harness::run(TEST_LIMIT, async {
        let started = Instant::now();
        let mut cluster = Cluster::start(harness::options()).await;
        let load = Load::start(cluster.urls(), "isolate", ENQUEUERS, HOSTS);
        load.wait_acknowledged(30, WAIT).await;
        let isolated = cluster.wait_ready().await;
        cluster.isolate(isolated);
        let isolated_at = Instant::now();

        let majority = others(&cluster, isolated);
        let mut probes = Ledger::default();
        let (job, accepted_at) =
            harness::enqueue_until_acknowledged(&cluster, &majority, "majority-probe", WAIT).await;
        probes.enqueued.insert("majority-probe".into(), job.clone());
        let new_leader = cluster.wait_leader_among(&majority, WAIT).await;
        println!(
            "isolate: {} cut off, {} leads; first write accepted {:?} after the cut",
            cluster.nodes[isolated].name,
            cluster.nodes[new_leader].name,
            accepted_at - isolated_at
        );

        // The cut-off node can neither take a write nor answer a
        // linearizable read of what the majority wrote since: it says so.
        let api = Api::new(Duration::from_secs(30));
        let url = &cluster.nodes[isolated].url;
        let key = "to-the-isolated-node";
        let write = api
            .post(url, "/v1/jobs", &job_body(key), Some(key))
            .await
            .expect("the isolated node answers clients");
        assert_eq!(
            write.status,
            503,
            "a write on the minority side: {}",
            write.text()
        );
        probes.unsure.insert(key.into());
        let read = api
            .get(url, &format!("/v1/jobs/{job}"))
            .await
            .expect("the isolated node answers clients");
        assert_eq!(
            read.status,
            503,
            "a read on the minority side: {}",
            read.text()
        );

        // Meanwhile the majority keeps writing. (The load does too, but
        // slowly: every attempt it sends the cut-off node waits out the
        // node's 10 s write timeout.)
        for k in 0..50 {
            let key = format!("majority-{k}");
            let (job, _) =
                harness::enqueue_until_acknowledged(&cluster, &majority, &key, WAIT).await;
            probes.enqueued.insert(key, job);
        }
        cluster.heal();
        cluster.wait_ready().await;
        let head = cluster.head(new_leader).await.expect("leader head").seq;
        cluster.wait_head_at_least(isolated, head, WAIT).await;
        load.wait_acknowledged(30, WAIT).await;
        let mut ledger = load.stop().await;
        ledger.merge(probes);
        let summary = checker::check(&cluster, &ledger).await;
        assert_none_crashed(&mut cluster);
        report("isolate the leader", started, &summary);
    });
}

#[test]
fn a_follower_behind_the_purged_log_catches_up_through_a_snapshot() {
    const SNAPSHOT_EVERY: u64 = 50;
    harness::run(TEST_LIMIT, async {
        let started = Instant::now();
        // Ended jobs are retired two seconds on, so snapshots are made,
        // sent and installed while retirement runs, and every node must
        // still agree on the digest.
        let mut cluster = Cluster::start(Options {
            snapshot_every: Some(SNAPSHOT_EVERY),
            env: vec![("SKYCLAW_RETENTION_MS".into(), "2000".into())],
            ..harness::options()
        })
        .await;
        let load = Load::start(cluster.urls(), "snapshot", ENQUEUERS, HOSTS);
        load.wait_acknowledged(30, WAIT).await;
        let leader = cluster.wait_ready().await;
        let follower = (leader + 1) % cluster.nodes.len();
        cluster.kill(follower).await;
        let behind = cluster.head(leader).await.expect("leader head").seq;

        // Writes made one at a time each take a raft entry of their own:
        // four snapshots' worth puts the follower's last entry well behind
        // the purged log, whatever the load batches together.
        let survivors = others(&cluster, follower);
        let mut probes = Ledger::default();
        for k in 0..4 * SNAPSHOT_EVERY {
            let key = format!("past-the-purge-{k}");
            let (job, _) =
                harness::enqueue_until_acknowledged(&cluster, &survivors, &key, WAIT).await;
            probes.enqueued.insert(key, job);
        }
        cluster.restart(follower).await;
        let head = cluster.head(leader).await.expect("leader head").seq;
        cluster.wait_head_at_least(follower, head, WAIT).await;

        let events = cluster
            .api
            .get(&cluster.nodes[follower].url, "/v1/events?from=1&limit=1")
            .await
            .expect("the follower answers");
        assert_eq!(
            events.status,
            410,
            "the follower's log is not anchored at a snapshot: {}",
            events.text()
        );
        let anchor = reported_anchor(&cluster.nodes[follower].name, &events.text());
        assert!(
            anchor > behind,
            "anchored at {anchor}, not past the {behind} it had when it stopped"
        );
        println!(
            "snapshot: {} stopped at seq {behind}, restored from a snapshot at seq {anchor}",
            cluster.nodes[follower].name
        );

        load.wait_acknowledged(30, WAIT).await;
        let mut ledger = load.stop().await;
        ledger.merge(probes);
        let summary = checker::check(&cluster, &ledger).await;
        // With a snapshot every 50 entries, a follower a few entries behind
        // when the leader purges gets a newer snapshot: its anchor may move
        // on, never back.
        let follower_name = &cluster.nodes[follower].name;
        assert!(
            summary
                .anchored
                .iter()
                .any(|(name, seq)| name == follower_name && *seq >= anchor),
            "{follower_name} is not anchored at {anchor} or later: {:?}",
            summary.anchored
        );
        let retired = retired_jobs(&cluster, follower).await;
        assert!(retired > 0.0, "{follower_name} retired no job");
        assert_none_crashed(&mut cluster);
        report("snapshot catch-up", started, &summary);
    });
}

#[test]
fn a_wiped_follower_rejoins_as_a_new_incarnation() {
    harness::run(TEST_LIMIT, async {
        let started = Instant::now();
        // Snapshots every 50 entries: by the time the wiped node asks to
        // join, the log it would need is purged, so the new incarnation
        // catches up as a learner through a snapshot.
        let mut cluster = Cluster::start(Options {
            snapshot_every: Some(50),
            ..harness::options()
        })
        .await;
        let load = Load::start(cluster.urls(), "wipe", ENQUEUERS, HOSTS);
        load.wait_acknowledged(100, WAIT).await;
        let leader = cluster.wait_ready().await;
        let follower = (leader + 1) % cluster.nodes.len();
        let name = cluster.nodes[follower].name.clone();
        let old: ClusterHello = cluster
            .api
            .get_json(&cluster.nodes[follower].url, "/v1/cluster/hello")
            .await
            .expect("the follower says who it is");
        cluster.kill(follower).await;
        cluster.wipe(follower);
        load.wait_acknowledged(100, WAIT).await;
        cluster.restart(follower).await;
        let new: ClusterHello = cluster
            .api
            .get_json(&cluster.nodes[follower].url, "/v1/cluster/hello")
            .await
            .expect("the wiped follower says who it is");
        assert_ne!(new.raft_id, old.raft_id, "a wiped node came back as itself");

        let names: Vec<String> = cluster.nodes.iter().map(|n| n.name.clone()).collect();
        wait_until(
            &format!("{name} to be a voter again, once, as its new incarnation"),
            Duration::from_secs(40),
            || async {
                for i in 0..cluster.nodes.len() {
                    let status = cluster.status(i).await?;
                    let voters = status.voters();
                    let rejoined = status
                        .members
                        .iter()
                        .any(|m| m.name == name && m.raft_id == new.raft_id && m.voter);
                    if status.members.len() != names.len() || voters != names || !rejoined {
                        return None;
                    }
                }
                Some(())
            },
        )
        .await;
        load.wait_acknowledged(30, WAIT).await;
        let ledger = load.stop().await;
        let summary = checker::check(&cluster, &ledger).await;
        assert_none_crashed(&mut cluster);
        report("wipe a follower", started, &summary);
    });
}

#[test]
fn a_rolling_restart_under_load_loses_nothing() {
    harness::run(TEST_LIMIT, async {
        let started = Instant::now();
        let mut cluster = Cluster::start(harness::options()).await;
        let load = Load::start(cluster.urls(), "rolling", ENQUEUERS, HOSTS);
        let mut probes = Ledger::default();
        for node in 0..cluster.nodes.len() {
            load.wait_acknowledged(30, WAIT).await;
            let leader = cluster.wait_ready().await;
            cluster.stop(node).await;
            let stopped_at = Instant::now();
            let rest = others(&cluster, node);
            let key = format!("rolling-probe-{node}");
            let (job, accepted_at) =
                harness::enqueue_until_acknowledged(&cluster, &rest, &key, WAIT).await;
            probes.enqueued.insert(key, job);
            println!(
                "rolling: stopped {}{}; first write accepted {:?} after",
                cluster.nodes[node].name,
                if node == leader { " (the leader)" } else { "" },
                accepted_at - stopped_at
            );
            load.wait_acknowledged(30, WAIT).await;
            cluster.restart(node).await;
            let leader = cluster.wait_leader_among(&rest, WAIT).await;
            let head = cluster.head(leader).await.expect("leader head").seq;
            cluster.wait_head_at_least(node, head, WAIT).await;
        }
        cluster.wait_ready().await;
        let mut ledger = load.stop().await;
        ledger.merge(probes);
        let summary = checker::check(&cluster, &ledger).await;
        assert_none_crashed(&mut cluster);
        report("rolling restart", started, &summary);
    });
}

/// `skyclaw cluster status|remove|add` against a live cluster under load:
/// a follower is removed, then added back (as a learner that catches up,
/// then a voter); bad requests exit 1 naming the problem and change nothing.
#[test]
fn members_are_removed_and_added_with_skyclaw_cluster() {
    harness::run(TEST_LIMIT, async {
        let started = Instant::now();
        let cluster = Cluster::start(harness::options()).await;
        let load = Load::start(cluster.urls(), "members", ENQUEUERS, HOSTS);
        load.wait_acknowledged(50, WAIT).await;
        let leader = cluster.wait_ready().await;
        let follower = (leader + 1) % cluster.nodes.len();
        let name = cluster.nodes[follower].name.clone();
        let url = cluster.nodes[follower].url.clone();
        let dir = tempfile::tempdir().expect("a temporary directory");
        let urls = cluster.urls().join(",");
        let skyclaw = |args: &[&str]| {
            let dir = dir.path().to_path_buf();
            let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
            let urls = urls.clone();
            tokio::task::spawn_blocking(move || {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                let env = [
                    ("SKYCLAW_COORDINATOR_URLS", urls.as_str()),
                    ("SKYCLAW_TOKEN", skyclaw_testkit::TOKEN),
                ];
                util::run_skyclaw(&dir, &args, &env, Duration::from_secs(60))
            })
        };
        let voters_everywhere = |expected: Vec<String>| {
            let cluster = &cluster;
            async move {
                wait_until(
                    &format!("every live member to see voters {expected:?}"),
                    WAIT,
                    || async {
                        for i in 0..cluster.nodes.len() {
                            if !expected.contains(&cluster.nodes[i].name) {
                                continue;
                            }
                            let status = cluster.status(i).await?;
                            let voters = status.voters();
                            if voters != expected || status.members.len() != expected.len() {
                                return None;
                            }
                        }
                        Some(())
                    },
                )
                .await
            }
        };
        let all: Vec<String> = cluster.nodes.iter().map(|n| n.name.clone()).collect();

        let status = skyclaw(&["cluster", "status", "--json"]).await.unwrap();
        assert_eq!(status.code, Some(0), "{status:?}");
        let parsed: skyclaw_api::ClusterStatus =
            serde_json::from_str(&status.stdout).expect("cluster status --json is JSON");
        assert_eq!(parsed.members.len(), 3, "{parsed:?}");
        assert!(parsed.leader.is_some(), "{parsed:?}");
        let table = skyclaw(&["cluster", "status"]).await.unwrap();
        assert_eq!(table.code, Some(0), "{table:?}");
        assert!(table.stdout.contains("leader:"), "{}", table.stdout);
        for node in &cluster.nodes {
            assert!(table.stdout.contains(&node.name), "{}", table.stdout);
        }

        for (args, says) in [
            (vec!["cluster", "remove", "node-zz"], "no member is named"),
            (
                vec!["cluster", "add", "node-x", "http://127.0.0.1:9"],
                "no coordinator answered",
            ),
            (vec!["cluster", "add", "node-q", url.as_str()], "is named"),
        ] {
            let refused = skyclaw(&args).await.unwrap();
            assert_eq!(refused.code, Some(1), "{args:?}: {refused:?}");
            assert!(refused.stderr.contains(says), "{args:?}: {refused:?}");
        }
        voters_everywhere(all.clone()).await;

        let removed = skyclaw(&["cluster", "remove", &name]).await.unwrap();
        assert_eq!(removed.code, Some(0), "{removed:?}");
        let rest: Vec<String> = all.iter().filter(|n| **n != name).cloned().collect();
        voters_everywhere(rest).await;
        load.wait_acknowledged(30, WAIT).await;

        let added = skyclaw(&["cluster", "add", &name, &url]).await.unwrap();
        assert_eq!(added.code, Some(0), "{added:?}");
        assert!(added.stdout.contains("is a voting member"), "{added:?}");
        voters_everywhere(all).await;

        load.wait_acknowledged(30, WAIT).await;
        let ledger = load.stop().await;
        let summary = checker::check(&cluster, &ledger).await;
        report("remove and add a member", started, &summary);
    });
}
