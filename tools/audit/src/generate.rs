//! Synthetic logs for the benchmark and the tests. A [`LogBuilder`] runs
//! real commands through `State::decide` and `State::apply` and seals the
//! events that follow, exactly as a coordinator does, so its logs are valid
//! by construction; [`LogBuilder::seal_unchecked`] crafts the invalid ones.
//! [`generate`] drives a builder with a realistic mix of hosts, enqueues,
//! claims, renewals, completions, cancellations and expired leases; half
//! the hosts have keys and sign a receipt of each run, as host daemons do
//! (or none, to measure the rest apart from signature checks).

use std::collections::BTreeMap;

use ed25519_dalek::SigningKey;
use skyclaw_log_format::{
    BlobRef, ChainHead, Event, Hash32, JobSpec, Origin, Payload, Receipt, Record,
};
use skyclaw_state::{host_id_for, Command, HostKey, JobReport, Rejection, State};

/// Builds a valid log command by command.
pub struct LogBuilder {
    cluster_id: String,
    state: State,
    head: ChainHead,
    /// Stands in for the Raft index each command would have.
    index: u64,
}

impl LogBuilder {
    /// A log whose first record creates `cluster_id`, sealed at `at`.
    pub fn new(cluster_id: &str, at: u64) -> (LogBuilder, Record) {
        let mut builder = LogBuilder {
            cluster_id: cluster_id.to_owned(),
            state: State::new(),
            head: ChainHead::genesis(cluster_id),
            index: 0,
        };
        let create = Command::CreateCluster {
            cluster_id: cluster_id.to_owned(),
        };
        let mut records = builder
            .run(&create, at)
            .expect("a new cluster can be created");
        (builder, records.remove(0))
    }

    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    pub fn head(&self) -> ChainHead {
        self.head
    }

    /// Decides `command` at `at`, applies its events and seals them.
    pub fn run(&mut self, command: &Command, at: u64) -> Result<Vec<Record>, Rejection> {
        let at = self.state.tick(at);
        let decision = self.state.decide(command, at)?;
        self.index += 1;
        let origin = Origin {
            term: 1,
            index: self.index,
        };
        Ok(decision
            .events
            .iter()
            .map(|event| {
                self.state
                    .apply(event, at)
                    .expect("decided events fit the state");
                self.seal(event, at, origin)
            })
            .collect())
    }

    /// Seals `event` as the next record without deciding or applying it:
    /// how tests craft a log that breaks an invariant. The builder's state
    /// does not see the event.
    pub fn seal_unchecked(&mut self, event: &Event, at: u64) -> Record {
        self.index += 1;
        let origin = Origin {
            term: 1,
            index: self.index,
        };
        self.seal(event, at, origin)
    }

    fn seal(&mut self, event: &Event, at: u64, origin: Origin) -> Record {
        let record = Record::seal(
            &self.cluster_id,
            self.head.next_seq(),
            at,
            origin,
            self.head.hash,
            event.encode(),
        );
        self.head = record.head();
        record
    }
}

/// A small deterministic generator (xorshift64*), so a seed always makes
/// the same log.
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

const HOSTS: u64 = 32;
const LEASE_MS: u64 = 30_000;
const STEP_MS: u64 = 40;

/// Generates a valid log of exactly `count` records (at least 1) of the
/// cluster `cluster_id`, handing each record to `sink` in order.
///
/// The workload: 32 hosts of mixed capabilities and parallelism, half of
/// them with keys when `keyed_hosts` (their completions carry signed
/// receipts, whose checks then dominate an audit's cost), a fifth of
/// them silent (their leases expire), enqueues in small batches with
/// priorities, capabilities and idempotency keys, claims, renewals,
/// completions with output, failures, and cancellations of queued and
/// running jobs.
pub fn generate<E>(
    cluster_id: &str,
    count: u64,
    seed: u64,
    keyed_hosts: bool,
    mut sink: impl FnMut(Record) -> Result<(), E>,
) -> Result<ChainHead, E> {
    let mut at = 1_700_000_000_000u64;
    let (mut log, first) = LogBuilder::new(cluster_id, at);
    let mut written = 0u64;
    // The head of the last record handed on: a command's later records may
    // be sealed yet left out.
    let mut head = log.head();
    let mut emit =
        |records: Vec<Record>, written: &mut u64, head: &mut ChainHead| -> Result<bool, E> {
            for record in records {
                if *written == count {
                    return Ok(false);
                }
                *head = record.head();
                sink(record)?;
                *written += 1;
            }
            Ok(*written < count)
        };
    if !emit(vec![first], &mut written, &mut head)? {
        return Ok(head);
    }
    let mut dice = Dice(seed | 1);
    let mut next_job = 0u64;
    // Jobs each host holds: id, lease epoch, and when the job will finish.
    let mut running: BTreeMap<String, Vec<(String, u32, u64)>> = BTreeMap::new();
    // Host ids by number, and the keys of those that have one.
    let mut host_ids = Vec::new();
    let mut keys: BTreeMap<String, SigningKey> = BTreeMap::new();

    for host in 0..HOSTS {
        let capabilities = if host % 4 == 0 {
            vec!["shell".into(), "automaton".into(), "gpu".into()]
        } else {
            vec!["shell".into(), "automaton".into()]
        };
        let signing =
            (keyed_hosts && host % 2 == 0).then(|| SigningKey::from_bytes(&[host as u8 + 1; 32]));
        let key = signing.as_ref().map(|signing| HostKey {
            public_key: Hash32(signing.verifying_key().to_bytes()),
            challenge_at: at,
            enroll_key: None,
            approved: true,
            signs_receipts: true,
        });
        let host_id = match &key {
            Some(key) => host_id_for(&key.public_key),
            None => format!("host-{host:02}"),
        };
        if let Some(signing) = signing {
            keys.insert(host_id.clone(), signing);
        }
        host_ids.push(host_id.clone());
        let command = Command::RegisterHost {
            host_id,
            name: format!("machine {host}"),
            capabilities,
            max_parallel: 1 + (host % 8) as u32,
            sandbox: None,
            key,
        };
        let records = log.run(&command, at).expect("valid host");
        if !emit(records, &mut written, &mut head)? {
            return Ok(head);
        }
    }

    loop {
        at += STEP_MS;
        let mut commands = Vec::new();

        let batch = 1 + dice.below(4);
        let jobs = (0..batch)
            .map(|_| {
                next_job += 1;
                job_spec(next_job, &mut dice)
            })
            .collect();
        commands.push(Command::Enqueue { jobs });

        let host = dice.below(HOSTS);
        let host_id = host_ids[host as usize].clone();
        commands.push(Command::Claim {
            host_id: host_id.clone(),
            max_jobs: 4,
            lease_ms: LEASE_MS,
            claim_key: None,
        });

        // Hosts whose number ends in 3 or 7 go silent: what they hold
        // expires. The others heartbeat (renewing leases past half their
        // life) and report the jobs that have finished.
        if host % 10 != 3 && host % 10 != 7 {
            let held = running.remove(&host_id).unwrap_or_default();
            if !held.is_empty() {
                commands.push(Command::Renew {
                    host_id: host_id.clone(),
                    running: held
                        .iter()
                        .map(|(job_id, epoch, _)| (job_id.clone(), *epoch))
                        .collect(),
                    lease_ms: LEASE_MS,
                });
            }
            let mut still_running = Vec::new();
            for (job_id, epoch, finish_at) in held {
                if finish_at > at {
                    still_running.push((job_id, epoch, finish_at));
                    continue;
                }
                let success = dice.chance(85);
                let mut report = JobReport {
                    job_id: job_id.clone(),
                    host_id: host_id.clone(),
                    lease_epoch: Some(epoch),
                    success,
                    duration_ms: 5 + dice.below(5_000),
                    exit_code: Some(if success { 0 } else { 1 }),
                    stdout: format!("{job_id} done\n"),
                    stderr: if success {
                        String::new()
                    } else {
                        "boom\n".into()
                    },
                    error: None,
                    receipt: None,
                };
                if let Some(key) = keys.get(&host_id) {
                    report.receipt = sign_receipt(log.state(), cluster_id, &report, at, key);
                }
                commands.push(Command::Complete(report));
            }
            if !still_running.is_empty() {
                running.insert(host_id.clone(), still_running);
            }
        }

        if dice.chance(5) && next_job > 10 {
            let job_id = format!("job-{:08}", next_job - dice.below(10));
            commands.push(Command::Cancel { job_id });
        }
        commands.push(Command::ExpireLeases);

        for command in &commands {
            let Ok(records) = log.run(command, at) else {
                continue;
            };
            for record in &records {
                if let Ok(Event::JobLeased {
                    job_id,
                    host_id,
                    lease_epoch,
                    ..
                }) = Event::decode(&record.event)
                {
                    // Most jobs take a few seconds; some run for longer
                    // than half a lease, and have their lease renewed.
                    let runs_for = if dice.chance(15) {
                        LEASE_MS / 2 + dice.below(LEASE_MS)
                    } else {
                        dice.below(3_000)
                    };
                    running
                        .entry(host_id)
                        .or_default()
                        .push((job_id, lease_epoch, at + runs_for));
                }
            }
            if !emit(records, &mut written, &mut head)? {
                return Ok(head);
            }
        }
    }
}

/// The receipt a keyed host signs for `report`, finishing at `at`; `None`
/// for a job no longer in the state (cancelled, say), whose completion the
/// state refuses anyway.
fn sign_receipt(
    state: &State,
    cluster_id: &str,
    report: &JobReport,
    at: u64,
    key: &SigningKey,
) -> Option<skyclaw_log_format::ReceiptSeal> {
    let job = state.job(&report.job_id)?;
    let receipt = Receipt {
        cluster_id: cluster_id.to_string(),
        job_id: report.job_id.clone(),
        lease_epoch: report.lease_epoch?,
        payload_hash: job.payload.digest(),
        exit_code: report.exit_code,
        started_at: at.saturating_sub(report.duration_ms),
        finished_at: at,
        stdout: BlobRef::of(report.stdout.as_bytes()),
        stderr: BlobRef::of(report.stderr.as_bytes()),
        host_id: report.host_id.clone(),
    };
    receipt.sign(key)
}

fn job_spec(number: u64, dice: &mut Dice) -> JobSpec {
    let job_id = format!("job-{number:08}");
    let payload = if dice.chance(80) {
        Payload::Shell {
            command: "bash".into(),
            args: vec!["-c".into(), format!("echo job {number}")],
            cwd: None,
            env: BTreeMap::new(),
            timeout_ms: Some(60_000),
        }
    } else {
        Payload::AutomatonRun {
            args: Some(vec!["--run".into()]),
            automaton_dir: None,
            env: BTreeMap::from([("TASK".into(), format!("t{number}"))]),
            timeout_ms: None,
        }
    };
    let keyed = dice.chance(30);
    JobSpec {
        job_id,
        payload,
        required_capabilities: if dice.chance(10) {
            vec!["gpu".into()]
        } else {
            vec![]
        },
        priority: dice.below(3) as i32 - 1,
        max_attempts: 3,
        idempotency_key: keyed.then(|| format!("key-{number}")),
        request_hash: keyed.then(|| Hash32(*blake3::hash(&number.to_be_bytes()).as_bytes())),
        account: None,
    }
}
