//! Lightweight transactions across replicas: Paxos per partition, as Cassandra runs it. The
//! coordinator prepares a ballot on the partition's replicas, finishes any proposal a quorum may
//! have accepted, reads the current row at QUORUM, checks the conditions, proposes the writes
//! (or an empty proposal when they do not apply, so later rounds cannot resurrect older
//! unfinished proposals) and commits them to every replica. The rules live in `sibyl-paxos`;
//! this module carries them over the network and keeps acceptor state in `paxos_store`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sibyl_cluster::messaging;
use sibyl_cluster::ring::{Replication, TokenRing};
use sibyl_paxos::{read_promises, Ballot, PrepareReply, Proposal};
use sibyl_protocol::consistency as cl;
use sibyl_storage::model::{Mutation, PartitionKey, TableId};
use uuid::Uuid;

use crate::coordinator::{block_for, unavailable, Cluster};
use crate::error::{QueryError, QueryResult};
use crate::node::Node;

pub const VERB_PAXOS_PREPARE: u16 = 8;
pub const VERB_PAXOS_PROPOSE: u16 = 9;
pub const VERB_PAXOS_COMMIT: u16 = 10;

#[derive(Serialize, Deserialize)]
struct PrepareRequest {
    table: TableId,
    key: Bytes,
    ballot: Ballot,
}

#[derive(Serialize, Deserialize)]
struct ProposalRequest {
    table: TableId,
    key: Bytes,
    proposal: Proposal<Bytes>,
}

/// Serves a Paxos verb on this replica (also called directly for the local replica).
pub fn serve(node: &Node, verb: u16, payload: &[u8]) -> Result<Bytes, String> {
    let err = |e: std::io::Error| e.to_string();
    match verb {
        VERB_PAXOS_PREPARE => {
            let r: PrepareRequest = messaging::decode(payload).map_err(|e| e.to_string())?;
            let reply = node
                .paxos
                .update(&node.engine, r.table, &r.key, |s| s.prepare(r.ballot))
                .map_err(err)?;
            Ok(messaging::encode(&reply))
        }
        VERB_PAXOS_PROPOSE => {
            let r: ProposalRequest = messaging::decode(payload).map_err(|e| e.to_string())?;
            let ok = node
                .paxos
                .update(&node.engine, r.table, &r.key, |s| {
                    let ok = s.propose(r.proposal);
                    (ok, ok)
                })
                .map_err(err)?;
            Ok(messaging::encode(&ok))
        }
        VERB_PAXOS_COMMIT => {
            let r: ProposalRequest = messaging::decode(payload).map_err(|e| e.to_string())?;
            // The data first: a crash in between leaves an accepted proposal that the next
            // round finishes again, never a commit whose data is missing.
            if let Some(v) = &r.proposal.value {
                let ms: Vec<Mutation> = messaging::decode(v).map_err(|e| e.to_string())?;
                for m in &ms {
                    node.engine.apply(m).map_err(|e| e.to_string())?;
                }
            }
            node.paxos
                .update(&node.engine, r.table, &r.key, |s| {
                    ((), s.commit(r.proposal))
                })
                .map_err(err)?;
            Ok(Bytes::new())
        }
        other => Err(format!("unknown paxos verb {other}")),
    }
}

/// The replicas of one partition a Paxos round talks to, and how many must answer.
pub struct Round<'a> {
    node: &'a Node,
    cluster: &'a Arc<Cluster>,
    ring: Arc<TokenRing>,
    replication: Replication,
    table: TableId,
    key: PartitionKey,
    serial: u16,
    /// Live replicas taking part (the local DC's only, for LOCAL_SERIAL).
    live: Vec<Uuid>,
    /// Every replica, for the commit.
    replicas: Vec<Uuid>,
    need: usize,
    contention_deadline: Instant,
    floor: Ballot,
}

/// How a proposal fared.
pub enum Accepted {
    Yes,
    /// Every replica refused: a newer ballot won, try again with a higher one.
    Refused,
}

impl Node {
    /// Plans a Paxos round on `key`: Unavailable when too few replicas are alive.
    pub fn paxos_round<'a>(
        &'a self,
        cluster: &'a Arc<Cluster>,
        replication: Replication,
        table: TableId,
        key: &PartitionKey,
        serial: u16,
    ) -> QueryResult<Round<'a>> {
        let ring = cluster.ring.read().clone();
        let replicas = cluster.replicas(&ring, &replication, key.token);
        let mut candidates: Vec<(Uuid, String)> = replicas
            .iter()
            .map(|id| (*id, cluster.dc_of(&ring, *id)))
            .collect();
        if serial == cl::LOCAL_SERIAL {
            candidates.retain(|(_, dc)| *dc == cluster.local_dc);
        }
        let need = block_for(
            if serial == cl::LOCAL_SERIAL {
                cl::LOCAL_SERIAL
            } else {
                cl::SERIAL
            },
            &replication,
            &candidates,
            &cluster.local_dc,
        );
        let live: Vec<Uuid> = candidates
            .iter()
            .map(|(id, _)| *id)
            .filter(|id| *id == cluster.local_id || cluster.membership.is_alive(*id))
            .collect();
        if live.len() < need {
            return Err(unavailable(serial, need, live.len()));
        }
        Ok(Round {
            node: self,
            cluster,
            ring,
            replication,
            table,
            key: key.clone(),
            serial,
            live,
            replicas,
            need,
            contention_deadline: Instant::now() + self.config.cas_contention_timeout,
            floor: Ballot::ZERO,
        })
    }
}

impl Round<'_> {
    fn cas_timeout(&self, received: usize) -> QueryError {
        QueryError::WriteTimeout {
            consistency: self.serial,
            received: received as i32,
            block_for: self.need as i32,
            write_type: "CAS".into(),
        }
    }

    /// Sends `verb` to `targets` and collects answers until `enough` says so, every target has
    /// answered, or the write timeout passes. The local replica is served in place.
    fn exchange(
        &self,
        verb: u16,
        payload: Bytes,
        targets: &[Uuid],
        enough: impl Fn(&[(Uuid, Bytes)]) -> bool,
    ) -> Vec<(Uuid, Bytes)> {
        let c = self.cluster;
        let timeout = c.write_timeout;
        let mut answers = vec![];
        let mut remote = vec![];
        for id in targets {
            if *id == c.local_id {
                if let Ok(b) = serve(self.node, verb, &payload) {
                    answers.push((*id, b));
                }
            } else if let Some(addr) = c.addr_of(&self.ring, *id) {
                remote.push((*id, addr));
            }
        }
        if remote.is_empty() || enough(&answers) {
            return answers;
        }
        c.runtime.block_on(async {
            let mut set = tokio::task::JoinSet::new();
            for (id, addr) in remote {
                let msg = c.messaging.clone();
                let payload = payload.clone();
                set.spawn(async move { (id, msg.request(addr, verb, payload, timeout).await) });
            }
            let deadline = tokio::time::Instant::now() + timeout;
            while !enough(&answers) {
                match tokio::time::timeout_at(deadline, set.join_next()).await {
                    Ok(Some(Ok((id, Ok(b))))) => answers.push((id, b)),
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => break,
                }
            }
            // Late answers are not needed; their requests finish or time out on their own.
            set.detach_all();
        });
        answers
    }

    /// Waits a random while after losing to another ballot; a CAS timeout once the
    /// contention timeout has passed.
    pub fn backoff(&self) -> QueryResult<()> {
        if Instant::now() >= self.contention_deadline {
            return Err(self.cas_timeout(0));
        }
        // Random, so that two contending coordinators stop colliding.
        let ms = (Uuid::new_v4().as_u128() % 100) as u64;
        std::thread::sleep(Duration::from_millis(ms));
        Ok(())
    }

    fn next_ballot(&mut self) -> Ballot {
        let b = Ballot::next(
            self.floor,
            sibyl_types::timeuuid::micros_now(),
            self.cluster.local_id.as_u128(),
        );
        self.floor = b;
        b
    }

    /// Prepares ballots until one is promised by a quorum and nothing older is left
    /// unfinished; returns that ballot.
    pub fn begin(&mut self) -> QueryResult<Ballot> {
        loop {
            let ballot = self.next_ballot();
            let payload = messaging::encode(&PrepareRequest {
                table: self.table,
                key: self.key.key.clone(),
                ballot,
            });
            let need = self.need;
            let answers = self.exchange(VERB_PAXOS_PREPARE, payload, &self.live.clone(), |a| {
                a.len() >= need
            });
            let mut replies: Vec<PrepareReply<Bytes>> = vec![];
            let mut from = vec![];
            for (id, b) in &answers {
                if let Ok(r) = messaging::decode::<PrepareReply<Bytes>>(b) {
                    replies.push(r);
                    from.push(*id);
                }
            }
            if replies.len() < need {
                return Err(self.cas_timeout(replies.len()));
            }
            let promises = read_promises(&replies);
            // The ballot's time becomes the data's write timestamp: it must be above every
            // commit's, or two commits in the same microsecond would tie on last-write-wins.
            let newest = [&promises.latest_commit, &promises.in_progress]
                .into_iter()
                .flatten()
                .map(|p| p.ballot.micros)
                .max()
                .unwrap_or(i64::MIN);
            if newest >= ballot.micros {
                self.floor = self.floor.max(Ballot {
                    micros: newest,
                    node: u128::MAX,
                });
                continue;
            }
            if promises.promised < need {
                if let Some(b) = promises.refused_by {
                    self.floor = self.floor.max(b);
                }
                self.backoff()?;
                continue;
            }
            if let Some(unfinished) = promises.in_progress {
                // It may have been chosen: finish it under our ballot, then start over.
                let redo = Proposal {
                    ballot,
                    value: unfinished.value,
                };
                match self.propose(&redo)? {
                    Accepted::Yes => self.commit(&redo, cl::QUORUM)?,
                    Accepted::Refused => self.backoff()?,
                }
                continue;
            }
            if let Some(latest) = promises.latest_commit {
                if !promises.lagging.is_empty() {
                    // The QUORUM read that follows must see the latest commit everywhere.
                    let targets: Vec<Uuid> = promises.lagging.iter().map(|i| from[*i]).collect();
                    let payload = messaging::encode(&ProposalRequest {
                        table: self.table,
                        key: self.key.key.clone(),
                        proposal: latest,
                    });
                    let want = targets.len();
                    let done =
                        self.exchange(VERB_PAXOS_COMMIT, payload, &targets, |a| a.len() >= want);
                    if done.len() < want {
                        return Err(self.cas_timeout(need - want + done.len()));
                    }
                }
            }
            return Ok(ballot);
        }
    }

    /// Phase 2. A proposal accepted by some replicas but not a quorum may still be chosen
    /// later: that is Cassandra's CAS write timeout (the outcome is unknown).
    pub fn propose(&mut self, proposal: &Proposal<Bytes>) -> QueryResult<Accepted> {
        let payload = messaging::encode(&ProposalRequest {
            table: self.table,
            key: self.key.key.clone(),
            proposal: proposal.clone(),
        });
        let need = self.need;
        let total = self.live.len();
        let answers = self.exchange(VERB_PAXOS_PROPOSE, payload, &self.live.clone(), |a| {
            let yes = a
                .iter()
                .filter(|(_, b)| messaging::decode::<bool>(b).unwrap_or(false))
                .count();
            // Every vote counts: a replica that has not answered yet may still accept, and a
            // proposal some replica accepted is not "refused" (the model check found this).
            yes >= need || a.len() == total
        });
        let yes = answers
            .iter()
            .filter(|(_, b)| messaging::decode::<bool>(b).unwrap_or(false))
            .count();
        if yes >= need {
            return Ok(Accepted::Yes);
        }
        // Refused by every replica: nothing of this proposal can survive, so a retry with a
        // higher ballot is safe.
        if yes == 0 && answers.len() == total {
            return Ok(Accepted::Refused);
        }
        // An empty proposal changes no data, so a partial acceptance is harmless: a newer
        // ballot preempted it, and retrying is safe.
        if proposal.value.is_none() && answers.len() >= need {
            return Ok(Accepted::Refused);
        }
        Err(self.cas_timeout(yes))
    }

    /// Applies a chosen proposal on every replica, waiting as the commit consistency asks
    /// (ANY waits for none: the value is already chosen); replicas that are down get hints.
    pub fn commit(&mut self, proposal: &Proposal<Bytes>, consistency: u16) -> QueryResult<()> {
        let c = self.cluster;
        let mut alive = vec![];
        for id in &self.replicas {
            if *id == c.local_id || c.membership.is_alive(*id) {
                alive.push(*id);
            } else if let Some(v) = proposal
                .value
                .as_ref()
                .filter(|_| c.within_hint_window(&self.node.config, *id))
            {
                if let Ok(ms) = messaging::decode::<Vec<Mutation>>(v) {
                    for m in &ms {
                        let _ = self.node.hints.store(*id, m);
                    }
                }
            }
        }
        let with_dc: Vec<(Uuid, String)> = self
            .replicas
            .iter()
            .map(|id| (*id, c.dc_of(&self.ring, *id)))
            .collect();
        let need = match consistency {
            cl::ANY => 0,
            _ => block_for(consistency, &self.replication, &with_dc, &c.local_dc),
        };
        if alive.len() < need {
            return Err(unavailable(consistency, need, alive.len()));
        }
        let payload = messaging::encode(&ProposalRequest {
            table: self.table,
            key: self.key.key.clone(),
            proposal: proposal.clone(),
        });
        let done = self.exchange(VERB_PAXOS_COMMIT, payload, &alive, |a| {
            a.len() >= need.max(1)
        });
        if done.len() < need {
            return Err(QueryError::WriteTimeout {
                consistency,
                received: done.len() as i32,
                block_for: need as i32,
                write_type: "SIMPLE".into(),
            });
        }
        Ok(())
    }

    /// After a serial read barrier or a failed condition: retire older unfinished proposals
    /// with an empty one, so what this round saw stays the linearizable truth.
    pub fn settle_empty(&mut self, ballot: Ballot) -> QueryResult<Accepted> {
        self.propose(&Proposal {
            ballot,
            value: None,
        })
    }
}

/// Serial read barrier: a Paxos round on the partition that finishes what is unfinished, so a
/// following QUORUM read returns the linearizable state. Timeouts are read timeouts here.
pub fn serial_barrier(
    node: &Node,
    cluster: &Arc<Cluster>,
    replication: Replication,
    table: TableId,
    key: &PartitionKey,
    serial: u16,
) -> QueryResult<()> {
    let as_read = |e: QueryError| match e {
        QueryError::WriteTimeout {
            received,
            block_for,
            ..
        } => QueryError::ReadTimeout {
            consistency: serial,
            received,
            block_for,
            data_present: false,
        },
        other => other,
    };
    let mut round = node.paxos_round(cluster, replication, table, key, serial)?;
    loop {
        let ballot = round.begin().map_err(as_read)?;
        match round.settle_empty(ballot).map_err(as_read)? {
            Accepted::Yes => return Ok(()),
            Accepted::Refused => round.backoff().map_err(as_read)?,
        }
    }
}
