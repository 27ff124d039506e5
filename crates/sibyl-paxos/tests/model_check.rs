//! Model check of the Paxos rounds behind lightweight transactions, with stateright.
//!
//! What is checked: compare-and-set operations and serial reads on one register (initially 0),
//! run through the proposer algorithm of `sibyl-server` (prepare a ballot, finish an unfinished
//! proposal, catch up lagging replicas, read at quorum, propose the new value or the empty
//! proposal, commit), are linearizable. stateright's `LinearizabilityTester` records each
//! operation's invocation and return, and in every reachable state it must find a sequential
//! order of them that a plain register would produce. An operation whose outcome is unknown (a
//! proposal accepted by some replicas but not a quorum, or out of ballots: the server's CAS
//! timeout) never returns, so it may take effect or not, at any later time; its client goes on.
//!
//! The acceptors run the crate's real `AcceptorState::{prepare, propose, commit}` and the
//! coordinators decide with the crate's real `Ballot::next` and `read_promises`, so a bug in
//! them makes the check fail. The coordinator's own logic is a transcription of the server's
//! (`sibyl-server`'s `paxos.rs` and `run_paxos`), with its variations as `Rules`: `DESCRIBED`
//! is the algorithm as first specified, `SERVER` what the server does today.
//!
//! How big the models are (`models`): 3 replicas (quorum 2) and 2 clients, each sending one or
//! two operations to its own coordinator, which runs on a replica (served in place, as
//! `exchange` does) or apart from them; each operation may make 1 to 3 ballots. A node's clock
//! is a counter ticking once per ballot, so the nodes' clocks collide and only the node id
//! breaks ties. The network reorders messages and delays them without bound (losing a message
//! is the same as delaying it forever, for a safety property). Every reachable state is
//! explored (DFS), counting states that differ only in messages that can no longer change
//! anything as one (`without_dead_messages`): about 770,000 states in all, some 20 s in a debug
//! build on two cores.
//!
//! `broken_proposers_are_caught` shows the check has teeth: proposers that skip finishing
//! unfinished proposals, take one answer for a quorum, let ballot times tie with a commit's, or
//! call a proposal refused before its last vote is in are all caught.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::hash::{Hash, Hasher};
use std::time::Instant;

use sibyl_paxos::{read_promises, AcceptorState, Ballot, PrepareReply, Proposal};
use stateright::actor::{
    model_timeout, Actor, ActorModel, ActorModelState, Envelope, Id, Network, Out,
};
use stateright::semantics::{ConsistencyTester, LinearizabilityTester, SequentialSpec};
use stateright::{Checker, Expectation, HasDiscoveries, Model};

type Value = u8;

/// Replicas are actors `0..REPLICAS`, so a replica's `Id` is also its index.
const REPLICAS: usize = 3;

// ---------------------------------------------------------------------------------------------
// The specification: a register with compare-and-set and read, initially 0.

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Op {
    Cas { expected: Value, new: Value },
    Read,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Ret {
    Applied,
    NotApplied { current: Value },
    Read(Value),
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
struct Register(Value);

impl SequentialSpec for Register {
    type Op = Op;
    type Ret = Ret;

    fn invoke(&mut self, op: &Op) -> Ret {
        match *op {
            Op::Cas { expected, new } if self.0 == expected => {
                self.0 = new;
                Ret::Applied
            }
            Op::Cas { .. } => Ret::NotApplied { current: self.0 },
            Op::Read => Ret::Read(self.0),
        }
    }
}

/// Threads of the history are single operations, `(client, position in its script)`: an
/// operation with an unknown outcome stays in flight forever while its client goes on.
type History = LinearizabilityTester<(Id, u8), Register>;

// ---------------------------------------------------------------------------------------------
// What travels. stateright needs messages and states to be `Hash` (and messages `Ord`), which
// the crate's types do not derive; these mirrors convert losslessly at the boundary.

/// What a proposal carries: the register's new value, stamped with the time of the ballot that
/// made it. (The server's proposals carry mutations stamped so; a repair re-proposes them
/// unchanged.) Ordered as the storage engine reconciles cells: time, then the greater value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Write {
    micros: i64,
    value: Value,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct WireProposal {
    ballot: Ballot,
    write: Option<Write>,
}

impl From<Proposal<Write>> for WireProposal {
    fn from(p: Proposal<Write>) -> Self {
        WireProposal {
            ballot: p.ballot,
            write: p.value,
        }
    }
}

impl From<WireProposal> for Proposal<Write> {
    fn from(p: WireProposal) -> Self {
        Proposal {
            ballot: p.ballot,
            value: p.write,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum WirePrepareReply {
    Promised {
        accepted: Option<WireProposal>,
        committed: Option<WireProposal>,
    },
    Refused {
        promised: Ballot,
    },
}

impl From<PrepareReply<Write>> for WirePrepareReply {
    fn from(r: PrepareReply<Write>) -> Self {
        match r {
            PrepareReply::Promised {
                accepted,
                committed,
            } => WirePrepareReply::Promised {
                accepted: accepted.map(Into::into),
                committed: committed.map(Into::into),
            },
            PrepareReply::Refused { promised } => WirePrepareReply::Refused { promised },
        }
    }
}

impl From<WirePrepareReply> for PrepareReply<Write> {
    fn from(r: WirePrepareReply) -> Self {
        match r {
            WirePrepareReply::Promised {
                accepted,
                committed,
            } => PrepareReply::Promised {
                accepted: accepted.map(Into::into),
                committed: committed.map(Into::into),
            },
            WirePrepareReply::Refused { promised } => PrepareReply::Refused { promised },
        }
    }
}

/// What a coordinator tells its client. `Unknown` is the server's CAS timeout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Outcome {
    Done(Ret),
    Unknown,
}

/// Tells a coordinator's rounds apart: its clock when it made the round's ballot. Answers
/// carry their request's round, as the server matches an RPC reply to its request.
type Round = i64;

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Msg {
    /// Client → its coordinator: operation number `seq` of the client's script.
    Request {
        seq: u8,
        op: Op,
    },
    /// Coordinator → client.
    Reply {
        seq: u8,
        outcome: Outcome,
    },

    /// Coordinator → acceptor.
    Prepare {
        round: Round,
        ballot: Ballot,
    },
    Propose {
        round: Round,
        proposal: WireProposal,
    },
    /// `ack` asks for an acknowledgement; the final commit is not waited for.
    Commit {
        round: Round,
        proposal: WireProposal,
        ack: bool,
    },
    Read {
        round: Round,
    },

    /// Acceptor → coordinator.
    Prepared {
        round: Round,
        reply: WirePrepareReply,
    },
    Accepted {
        round: Round,
        ok: bool,
    },
    Committed {
        round: Round,
    },
    /// What the replica's data holds (see `Reads`).
    ReadReply {
        round: Round,
        data: Option<Newest>,
    },
}

/// What a quorum read compares: the newest answer wins.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Newest {
    /// The committed proposal, by ballot.
    Commit(Ballot, Write),
    /// The data cell, by timestamp then value.
    Cell(Write),
}

impl Newest {
    fn value(self) -> Value {
        match self {
            Newest::Commit(_, w) | Newest::Cell(w) => w.value,
        }
    }
}

impl Msg {
    /// The round of a message between a coordinator and an acceptor.
    fn round(&self) -> Option<Round> {
        match *self {
            Msg::Prepare { round, .. }
            | Msg::Propose { round, .. }
            | Msg::Commit { round, .. }
            | Msg::Read { round }
            | Msg::Prepared { round, .. }
            | Msg::Accepted { round, .. }
            | Msg::Committed { round }
            | Msg::ReadReply { round, .. } => Some(round),
            Msg::Request { .. } | Msg::Reply { .. } => None,
        }
    }

    fn is_request(&self) -> bool {
        matches!(
            self,
            Msg::Prepare { .. } | Msg::Propose { .. } | Msg::Commit { .. } | Msg::Read { .. }
        )
    }
}

// ---------------------------------------------------------------------------------------------
// The proposer's rules, as the server has them or broken on purpose.

/// What a quorum read returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reads {
    /// The value of the highest-ballot commit (the data is exactly the committed values).
    Commits,
    /// The data as the storage engine keeps it: each commit's write applied last-write-wins on
    /// its timestamp (ties: the greater value), whether or not the commit is the newest.
    Cells,
}

/// How a serial read runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SerialReads {
    /// Like a failed condition: read at quorum, then propose the empty proposal.
    ReadThenPropose,
    /// As `serial_barrier` does: the empty proposal first, then the quorum read.
    ProposeThenRead,
}

/// How a coordinator judges the votes on a proposal. A quorum of accepts always succeeds;
/// refused by all, it retries; otherwise the outcome is unknown, unless one of these applies.
#[derive(Clone, Copy, Debug)]
struct Verdicts {
    /// Stop waiting as soon as no quorum can accept, and call it refused by all when none of
    /// the answers in accepted and too few are missing to make a quorum (`Round::propose`).
    stop_when_no_quorum: bool,
    /// Retry an empty proposal accepted by some but not a quorum (`Round::propose`).
    retry_partly_accepted_empty: bool,
    /// The write timeout may cut the wait short, judging the answers in so far.
    timeouts: bool,
}

/// Wait for every vote, as the task describing this check puts it.
const ALL_VOTES: Verdicts = Verdicts {
    stop_when_no_quorum: false,
    retry_partly_accepted_empty: false,
    timeouts: false,
};

/// As `Round::propose` does.
const SERVER_VERDICTS: Verdicts = Verdicts {
    stop_when_no_quorum: false,
    retry_partly_accepted_empty: true,
    timeouts: true,
};

#[derive(Clone, Copy, Debug)]
struct Rules {
    /// Answers that make a quorum: 2 of 3 (1 in a broken variant).
    quorum: usize,
    /// Ballots one operation may make before giving up (the contention timeout).
    max_ballots: u8,
    /// The coordinator serves its own replica in place, first, as `exchange` does. Otherwise it
    /// talks to it over the network like to the others, as a coordinator that is no replica.
    local_in_place: bool,
    /// A ballot no later in time than a commit or unfinished proposal its prepare finds is
    /// dropped for a later one (`begin`), so that chosen writes get increasing timestamps.
    timestamps_above_commits: bool,
    verdicts: Verdicts,
    serial_reads: SerialReads,
    reads: Reads,
    /// Broken on purpose: ignore `in_progress`, never finish an unfinished proposal.
    skip_repair: bool,
}

/// The algorithm as the task describing this check puts it, with one ballot per operation.
const DESCRIBED: Rules = Rules {
    quorum: REPLICAS / 2 + 1,
    max_ballots: 1,
    local_in_place: true,
    timestamps_above_commits: false,
    verdicts: ALL_VOTES,
    serial_reads: SerialReads::ReadThenPropose,
    reads: Reads::Commits,
    skip_repair: false,
};

/// The rules of `sibyl-server`, with one ballot per operation.
const SERVER: Rules = Rules {
    quorum: REPLICAS / 2 + 1,
    max_ballots: 1,
    local_in_place: true,
    timestamps_above_commits: true,
    verdicts: SERVER_VERDICTS,
    serial_reads: SerialReads::ProposeThenRead,
    reads: Reads::Cells,
    skip_repair: false,
};

// ---------------------------------------------------------------------------------------------
// Replicas: the crate's `AcceptorState`, and the data its commits write.

#[derive(Clone, Debug, PartialEq)]
struct Acceptor {
    paxos: AcceptorState<Write>,
    data: Data,
}

/// The data a replica's reads see (`Reads`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Data {
    /// The value of the replica's commit.
    Commits,
    /// A cell that every commit writes to, last-write-wins.
    Cell(Option<Write>),
}

/// Over all fields, as the derived `Eq` compares.
impl Hash for Acceptor {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.paxos.promised.hash(h);
        self.paxos.accepted.clone().map(WireProposal::from).hash(h);
        self.paxos.committed.clone().map(WireProposal::from).hash(h);
        self.data.hash(h);
    }
}

impl Acceptor {
    fn new(reads: Reads) -> Self {
        let data = match reads {
            Reads::Commits => Data::Commits,
            Reads::Cells => Data::Cell(None),
        };
        let paxos = AcceptorState::default();
        Acceptor { paxos, data }
    }

    /// Serves one request (`paxos::serve` in the server) and returns the answer, if one is due.
    fn serve(&mut self, request: &Msg) -> Option<Msg> {
        match *request {
            Msg::Prepare { round, ballot } => {
                let (reply, _) = self.paxos.prepare(ballot);
                let reply = reply.into();
                Some(Msg::Prepared { round, reply })
            }
            Msg::Propose { round, proposal } => {
                let ok = self.paxos.propose(proposal.into());
                Some(Msg::Accepted { round, ok })
            }
            Msg::Commit {
                round,
                proposal,
                ack,
            } => {
                // The data first, whether or not the commit is news (as the server does).
                if let Data::Cell(cell) = &mut self.data {
                    *cell = (*cell).max(proposal.write);
                }
                self.paxos.commit(proposal.into());
                ack.then_some(Msg::Committed { round })
            }
            Msg::Read { round } => {
                let data = match self.data {
                    // (Only proposals with a write are ever committed.)
                    Data::Commits => self
                        .paxos
                        .committed
                        .as_ref()
                        .and_then(|c| c.value.map(|w| Newest::Commit(c.ballot, w))),
                    Data::Cell(cell) => cell.map(Newest::Cell),
                };
                Some(Msg::ReadReply { round, data })
            }
            _ => None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Coordinators: the proposer algorithm of `sibyl-server` (`paxos.rs` and `run_paxos`).

#[derive(Clone)]
struct Coordinator {
    /// The replica it runs on: the index of its acceptor, and its node id for ballots.
    local: usize,
    rules: Rules,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
struct CoordinatorState {
    /// The node's clock: a counter that ticks once per ballot. Also the current round.
    clock: i64,
    job: Option<Job>,
}

/// The operation being coordinated.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Job {
    client: Id,
    seq: u8,
    op: Op,
    ballots_made: u8,
    /// The highest ballot this operation has made or seen refused (`Round::floor`).
    floor: Ballot,
    ballot: Ballot,
    step: Step,
}

/// Where the current round is; answers are kept by replica index.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Step {
    /// Waiting for a quorum of answers to the prepare.
    Prepare([Option<WirePrepareReply>; REPLICAS]),
    /// Re-proposing an unfinished proposal's write under our ballot.
    Repair {
        write: Option<Write>,
        votes: [Option<bool>; REPLICAS],
    },
    /// The repair was accepted: committing it, waiting for a quorum of acks (the server
    /// commits it at QUORUM).
    CommitRepair { acked: [bool; REPLICAS] },
    /// Sending the latest commit to the promising replicas that missed it; waiting for all.
    CatchUp { waiting: [bool; REPLICAS] },
    /// Waiting for a quorum of reads; `proposed` once the (empty) proposal was accepted.
    Read {
        answers: [Option<Option<Newest>>; REPLICAS],
        proposed: bool,
    },
    /// Proposing our write (`None`: the empty proposal); `result` answers the client once
    /// accepted, or `None` for a serial read that reads afterwards.
    Propose {
        write: Option<Write>,
        result: Option<Ret>,
        votes: [Option<bool>; REPLICAS],
    },
}

/// What a proposal's votes decide.
enum Verdict {
    Accepted,
    Refused,
    Unknown,
}

/// The coordinator's only timer.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Timer {
    /// The write timeout of the wait for votes on a proposal.
    Write,
}

/// What a replica keeps: its acceptor and, if a coordinator runs there, the coordinator's.
#[derive(Clone, Debug, PartialEq, Hash)]
struct ReplicaState {
    acceptor: Acceptor,
    coordinator: CoordinatorState,
}

fn answered<T>(answers: &[Option<T>]) -> usize {
    answers.iter().filter(|a| a.is_some()).count()
}

fn job(rs: &mut ReplicaState) -> &mut Job {
    rs.coordinator
        .job
        .as_mut()
        .expect("an operation in progress")
}

const ALL: [usize; REPLICAS] = [0, 1, 2];

impl Coordinator {
    /// Sends `request` to the `targets` replicas. The local one is served in place after the
    /// others are sent theirs: its answer may complete a quorum and start the next step.
    fn exchange(&self, rs: &mut ReplicaState, targets: &[usize], request: Msg, o: &mut Out<Node>) {
        let in_place = self.rules.local_in_place && targets.contains(&self.local);
        for &t in targets {
            if !(in_place && t == self.local) {
                o.send(Id::from(t), request.clone());
            }
        }
        if in_place {
            if let Some(answer) = rs.acceptor.serve(&request) {
                self.on_answer(rs, self.local, answer, o);
            }
        }
    }

    /// A client's operation starts.
    fn on_request(&self, rs: &mut ReplicaState, client: Id, seq: u8, op: Op, o: &mut Out<Node>) {
        assert!(rs.coordinator.job.is_none(), "one operation at a time");
        rs.coordinator.job = Some(Job {
            client,
            seq,
            op,
            ballots_made: 0,
            floor: Ballot::ZERO,
            ballot: Ballot::ZERO,
            step: Step::Prepare(Default::default()),
        });
        self.new_ballot(rs, o);
    }

    /// An acceptor's answer; answers to a round this coordinator has left are ignored.
    fn on_answer(&self, rs: &mut ReplicaState, from: usize, answer: Msg, o: &mut Out<Node>) {
        if rs.coordinator.job.is_none() || answer.round() != Some(rs.coordinator.clock) {
            return;
        }
        match answer {
            Msg::Prepared { reply, .. } => self.on_prepared(rs, from, reply, o),
            Msg::Accepted { ok, .. } => self.on_accepted(rs, from, ok, o),
            Msg::Committed { .. } => self.on_committed(rs, from, o),
            Msg::ReadReply { data, .. } => self.on_read(rs, from, data, o),
            _ => {}
        }
    }

    /// Step 1: a ballot above the floor, or the contention timeout when out of ballots.
    fn new_ballot(&self, rs: &mut ReplicaState, o: &mut Out<Node>) {
        let CoordinatorState { clock, job } = &mut rs.coordinator;
        let job = job.as_mut().expect("an operation in progress");
        if job.ballots_made == self.rules.max_ballots {
            return self.finish(rs, Outcome::Unknown, o);
        }
        *clock += 1;
        let ballot = Ballot::next(job.floor, *clock, self.local as u128 + 1);
        job.floor = ballot;
        job.ballot = ballot;
        job.ballots_made += 1;
        job.step = Step::Prepare(Default::default());
        let round = *clock;
        self.exchange(rs, &ALL, Msg::Prepare { round, ballot }, o);
    }

    /// Steps 2 and 3: with a quorum of answers, read the promises with the crate's rules.
    fn on_prepared(
        &self,
        rs: &mut ReplicaState,
        from: usize,
        reply: WirePrepareReply,
        o: &mut Out<Node>,
    ) {
        let round = rs.coordinator.clock;
        let job = job(rs);
        let Step::Prepare(answers) = &mut job.step else {
            return; // a late answer: the round went on with a quorum of others
        };
        answers[from] = Some(reply);
        if answered(answers) < self.rules.quorum {
            return;
        }
        let (replicas, replies): (Vec<usize>, Vec<PrepareReply<Write>>) = answers
            .iter()
            .enumerate()
            .filter_map(|(i, a)| a.map(|a| (i, a.into())))
            .unzip();
        let promises = read_promises(&replies);
        if self.rules.timestamps_above_commits {
            let newest = [&promises.latest_commit, &promises.in_progress]
                .into_iter()
                .flatten()
                .map(|p| p.ballot.micros)
                .max();
            if let Some(newest) = newest.filter(|m| *m >= job.ballot.micros) {
                let node = u128::MAX;
                job.floor = job.floor.max(Ballot {
                    micros: newest,
                    node,
                });
                return self.new_ballot(rs, o);
            }
        }
        if promises.promised < self.rules.quorum {
            if let Some(refused_by) = promises.refused_by {
                job.floor = job.floor.max(refused_by);
            }
            return self.new_ballot(rs, o);
        }
        let unfinished = promises.in_progress.filter(|_| !self.rules.skip_repair);
        if let Some(unfinished) = unfinished {
            // It may have been chosen: finish it under our ballot, then start over.
            let proposal = WireProposal {
                ballot: job.ballot,
                write: unfinished.value,
            };
            job.step = Step::Repair {
                write: proposal.write,
                votes: Default::default(),
            };
            self.start_write_timeout(o);
            return self.exchange(rs, &ALL, Msg::Propose { round, proposal }, o);
        }
        if let (Some(latest), false) = (promises.latest_commit, promises.lagging.is_empty()) {
            // The quorum read that follows must see the latest commit wherever it looks.
            let lagging: Vec<usize> = promises.lagging.iter().map(|i| replicas[*i]).collect();
            let mut waiting = [false; REPLICAS];
            for &r in &lagging {
                waiting[r] = true;
            }
            job.step = Step::CatchUp { waiting };
            let proposal = latest.into();
            let ack = true;
            return self.exchange(
                rs,
                &lagging,
                Msg::Commit {
                    round,
                    proposal,
                    ack,
                },
                o,
            );
        }
        self.after_prepare(rs, o);
    }

    /// Steps 4 and 5 begin: read first, or for a serial read run as the server does it,
    /// propose the empty proposal first.
    fn after_prepare(&self, rs: &mut ReplicaState, o: &mut Out<Node>) {
        let job = job(rs);
        if job.op == Op::Read && self.rules.serial_reads == SerialReads::ProposeThenRead {
            self.propose(rs, None, None, o);
        } else {
            self.read(rs, false, o);
        }
    }

    /// Step 4: a quorum read.
    fn read(&self, rs: &mut ReplicaState, proposed: bool, o: &mut Out<Node>) {
        job(rs).step = Step::Read {
            answers: Default::default(),
            proposed,
        };
        let round = rs.coordinator.clock;
        self.exchange(rs, &ALL, Msg::Read { round }, o);
    }

    /// Steps 4 and 5: with a quorum of reads, the newest answer is the current value;
    /// evaluate the operation and propose its effect (or, read last, answer the client).
    fn on_read(&self, rs: &mut ReplicaState, from: usize, data: Option<Newest>, o: &mut Out<Node>) {
        let job = job(rs);
        let Step::Read { answers, proposed } = &mut job.step else {
            return;
        };
        answers[from] = Some(data);
        if answered(answers) < self.rules.quorum {
            return;
        }
        let current = answers.iter().flatten().max().copied().flatten();
        let current = current.map_or(0, Newest::value);
        if *proposed {
            return self.finish(rs, Outcome::Done(Ret::Read(current)), o);
        }
        let (write, result) = match job.op {
            Op::Cas { expected, new } if current == expected => {
                let micros = job.ballot.micros;
                let write = Write { micros, value: new };
                (Some(write), Ret::Applied)
            }
            Op::Cas { .. } => (None, Ret::NotApplied { current }),
            Op::Read => (None, Ret::Read(current)),
        };
        self.propose(rs, write, Some(result), o);
    }

    /// Step 5: propose our write, or the empty proposal.
    fn propose(
        &self,
        rs: &mut ReplicaState,
        write: Option<Write>,
        result: Option<Ret>,
        o: &mut Out<Node>,
    ) {
        let job = job(rs);
        let proposal = WireProposal {
            ballot: job.ballot,
            write,
        };
        job.step = Step::Propose {
            write,
            result,
            votes: Default::default(),
        };
        self.start_write_timeout(o);
        let round = rs.coordinator.clock;
        self.exchange(rs, &ALL, Msg::Propose { round, proposal }, o);
    }

    /// Judges the answers to a proposal so far (`Verdicts`); `None`: wait for more.
    fn verdict(&self, votes: &[Option<bool>], empty: bool, timed_out: bool) -> Option<Verdict> {
        let yes = votes.iter().filter(|v| **v == Some(true)).count();
        let no = votes.iter().filter(|v| **v == Some(false)).count();
        let (answers, quorum) = (yes + no, self.rules.quorum);
        if yes >= quorum {
            return Some(Verdict::Accepted);
        }
        let rules = self.rules.verdicts;
        let no_quorum = REPLICAS - no < quorum;
        if answers < REPLICAS && !timed_out && !(rules.stop_when_no_quorum && no_quorum) {
            return None;
        }
        let missing = REPLICAS - answers;
        let refused = if rules.stop_when_no_quorum {
            yes == 0 && missing < quorum
        } else {
            yes == 0 && missing == 0
        };
        if refused || (rules.retry_partly_accepted_empty && empty && answers >= quorum) {
            return Some(Verdict::Refused);
        }
        Some(Verdict::Unknown)
    }

    /// Step 6 (and the repair's proposal): an acceptor's vote.
    fn on_accepted(&self, rs: &mut ReplicaState, from: usize, ok: bool, o: &mut Out<Node>) {
        let votes = match &mut job(rs).step {
            Step::Repair { votes, .. } | Step::Propose { votes, .. } => votes,
            _ => return,
        };
        votes[from] = Some(ok);
        self.judge(rs, false, o);
    }

    /// The write timeout while waiting for votes: judge those in so far.
    fn on_timeout(&self, rs: &mut ReplicaState, o: &mut Out<Node>) {
        let waiting = rs.coordinator.job.as_ref().map(|j| &j.step);
        if let Some(Step::Repair { .. } | Step::Propose { .. }) = waiting {
            self.judge(rs, true, o);
        }
    }

    /// Acts on the verdict, if there is one yet: commit what a quorum accepted, retry with a
    /// new ballot what was refused, give up on anything else.
    fn judge(&self, rs: &mut ReplicaState, timed_out: bool, o: &mut Out<Node>) {
        let round = rs.coordinator.clock;
        let job = job(rs);
        let verdict = match &job.step {
            Step::Repair { votes, .. } => self.verdict(votes, false, timed_out),
            Step::Propose { votes, write, .. } => self.verdict(votes, write.is_none(), timed_out),
            _ => unreachable!("judging votes"),
        };
        let Some(verdict) = verdict else {
            return;
        };
        if self.rules.verdicts.timeouts {
            o.cancel_timer(Timer::Write);
        }
        match verdict {
            Verdict::Accepted => {}
            Verdict::Refused => return self.new_ballot(rs, o),
            Verdict::Unknown => return self.finish(rs, Outcome::Unknown, o),
        }
        let ballot = job.ballot;
        match job.step {
            Step::Repair { write, .. } => {
                job.step = Step::CommitRepair {
                    acked: [false; REPLICAS],
                };
                let proposal = WireProposal { ballot, write };
                let ack = true;
                self.exchange(
                    rs,
                    &ALL,
                    Msg::Commit {
                        round,
                        proposal,
                        ack,
                    },
                    o,
                );
            }
            Step::Propose { write, result, .. } => {
                if write.is_some() {
                    // Not waited for: the value is chosen, and a commit acknowledged by nobody
                    // is the hardest case for the rounds that follow.
                    let proposal = WireProposal { ballot, write };
                    let ack = false;
                    self.exchange(
                        rs,
                        &ALL,
                        Msg::Commit {
                            round,
                            proposal,
                            ack,
                        },
                        o,
                    );
                }
                match result {
                    Some(result) => self.finish(rs, Outcome::Done(result), o),
                    None => self.read(rs, true, o),
                }
            }
            _ => unreachable!(),
        }
    }

    /// Commit acknowledgements: a quorum for a repair (then a fresh ballot), every lagging
    /// replica for a catch-up (then on to the read).
    fn on_committed(&self, rs: &mut ReplicaState, from: usize, o: &mut Out<Node>) {
        match &mut job(rs).step {
            Step::CommitRepair { acked } => {
                acked[from] = true;
                if acked.iter().filter(|a| **a).count() == self.rules.quorum {
                    self.new_ballot(rs, o);
                }
            }
            Step::CatchUp { waiting } => {
                waiting[from] = false;
                if !waiting.contains(&true) {
                    self.after_prepare(rs, o);
                }
            }
            _ => {}
        }
    }

    /// The wait for votes may be cut short by the write timeout (`Verdicts::timeouts`).
    fn start_write_timeout(&self, o: &mut Out<Node>) {
        if self.rules.verdicts.timeouts {
            o.set_timer(Timer::Write, model_timeout());
        }
    }

    fn finish(&self, rs: &mut ReplicaState, outcome: Outcome, o: &mut Out<Node>) {
        let job = rs.coordinator.job.take().expect("an operation in progress");
        let seq = job.seq;
        o.send(job.client, Msg::Reply { seq, outcome });
    }
}

// ---------------------------------------------------------------------------------------------
// Clients: send their script's operations one after the other to their coordinator.

#[derive(Clone)]
struct Client {
    coordinator: Id,
    script: Vec<Op>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
struct ClientState {
    /// Operations sent; all but the last have been answered.
    sent: u8,
}

impl Client {
    fn send_next(&self, st: &mut ClientState, o: &mut Out<Node>) {
        let seq = st.sent;
        let op = self.script.get(usize::from(seq)).copied();
        // Past the script the count still moves, so the last reply is received (and recorded).
        st.sent += 1;
        if let Some(op) = op {
            o.send(self.coordinator, Msg::Request { seq, op });
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The actor system.

#[derive(Clone)]
enum Node {
    Replica {
        rules: Rules,
        coordinator: Option<Coordinator>,
    },
    Client(Client),
}

// stateright keeps each actor's state behind an `Arc` already; a box would only add a copy.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Hash)]
enum NodeState {
    Replica(ReplicaState),
    Client(ClientState),
}

impl Actor for Node {
    type Msg = Msg;
    type State = NodeState;
    type Timer = Timer;
    type Random = ();
    type Storage = ();

    fn on_start(&self, _id: Id, _storage: &Option<()>, o: &mut Out<Self>) -> NodeState {
        match self {
            Node::Replica { rules, .. } => NodeState::Replica(ReplicaState {
                acceptor: Acceptor::new(rules.reads),
                coordinator: CoordinatorState::default(),
            }),
            Node::Client(client) => {
                let mut st = ClientState::default();
                client.send_next(&mut st, o);
                NodeState::Client(st)
            }
        }
    }

    fn on_msg(&self, _id: Id, state: &mut Cow<NodeState>, src: Id, msg: Msg, o: &mut Out<Self>) {
        // Work on a copy and keep it only if something changed: a delivery that changes
        // nothing and sends nothing is then pruned by stateright (the message stays queued,
        // which for safety is the same as delivering it).
        let mut next = (**state).clone();
        match (self, &mut next) {
            (Node::Replica { coordinator, .. }, NodeState::Replica(rs)) => {
                match (msg, coordinator) {
                    (Msg::Request { seq, op }, Some(c)) => c.on_request(rs, src, seq, op, o),
                    (request, _) if request.is_request() => {
                        if let Some(answer) = rs.acceptor.serve(&request) {
                            o.send(src, answer);
                        }
                    }
                    (answer, Some(c)) => c.on_answer(rs, usize::from(src), answer, o),
                    _ => unreachable!("only coordinators get answers"),
                }
            }
            (Node::Client(c), NodeState::Client(s)) => {
                if let Msg::Reply { .. } = msg {
                    c.send_next(s, o);
                }
            }
            _ => unreachable!("actor and state kinds match"),
        }
        if next != **state {
            *state = Cow::Owned(next);
        }
    }

    fn on_timeout(&self, _id: Id, state: &mut Cow<NodeState>, _: &Timer, o: &mut Out<Self>) {
        let mut next = (**state).clone();
        if let (
            Node::Replica {
                coordinator: Some(c),
                ..
            },
            NodeState::Replica(rs),
        ) = (self, &mut next)
        {
            c.on_timeout(rs, o);
        }
        if next != **state {
            *state = Cow::Owned(next);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The model: actors, history, properties.

#[derive(Clone)]
struct Cfg {
    /// One script of operations per client; client `i`'s coordinator runs on replica `i`.
    scripts: Vec<Vec<Op>>,
    rules: Rules,
}

type LwtModel = ActorModel<Node, Cfg, History>;
type LwtState = ActorModelState<Node, History>;

/// Non-vacuity: each of these must hold somewhere across the checked models, so that every
/// path of the algorithm is known to be taken.
const SOMETIMES: [&str; 8] = [
    "a cas applies",
    "a cas does not apply",
    "a read sees a cas",
    "an outcome is unknown",
    "an operation makes a second ballot",
    "a proposal is refused everywhere",
    "an unfinished proposal is finished",
    "a lagging replica catches up",
];

impl Cfg {
    fn into_model(self) -> LwtModel {
        let clients = self.scripts.len();
        assert!(
            clients < REPLICAS,
            "each coordinator runs on its own replica"
        );
        let rules = self.rules;
        let replicas = (0..REPLICAS).map(|i| Node::Replica {
            rules,
            coordinator: (i < clients).then_some(Coordinator { local: i, rules }),
        });
        let clients = self.scripts.iter().enumerate().map(|(i, script)| {
            Node::Client(Client {
                coordinator: Id::from(i),
                script: script.clone(),
            })
        });
        ActorModel::new(self.clone(), History::new(Register::default()))
            .actors(replicas)
            .actors(clients)
            .init_network(Network::new_unordered_nonduplicating([]))
            .record_msg_out(record_invocation)
            .record_msg_in(record_return)
            .property(Expectation::Always, "linearizable", |_, s| {
                s.history.serialized_history().is_some()
            })
            .property(Expectation::Sometimes, SOMETIMES[0], |_, s| {
                replies(s).any(|o| o == Outcome::Done(Ret::Applied))
            })
            .property(Expectation::Sometimes, SOMETIMES[1], |_, s| {
                replies(s).any(|o| matches!(o, Outcome::Done(Ret::NotApplied { .. })))
            })
            .property(Expectation::Sometimes, SOMETIMES[2], |_, s| {
                replies(s).any(|o| matches!(o, Outcome::Done(Ret::Read(v)) if v != 0))
            })
            .property(Expectation::Sometimes, SOMETIMES[3], |_, s| {
                replies(s).any(|o| o == Outcome::Unknown)
            })
            .property(Expectation::Sometimes, SOMETIMES[4], |_, s| {
                jobs(s).any(|j| j.ballots_made > 1 && matches!(j.step, Step::Prepare(_)))
            })
            .property(Expectation::Sometimes, SOMETIMES[5], |_, s| {
                // Two refusals in, the third on its way.
                s.network.iter_deliverable().any(|e| {
                    let Msg::Accepted { ok: false, .. } = e.msg else {
                        return false;
                    };
                    let coordinator = &replica(s, e.dst).coordinator;
                    awaits(coordinator, e.msg)
                        && coordinator.job.as_ref().is_some_and(|j| {
                            matches!(j.step, Step::Propose { votes, .. }
                                if votes.iter().filter(|v| **v == Some(false)).count() == 2)
                        })
                })
            })
            .property(Expectation::Sometimes, SOMETIMES[6], |_, s| {
                jobs(s).any(|j| matches!(j.step, Step::CommitRepair { .. }))
            })
            .property(Expectation::Sometimes, SOMETIMES[7], |_, s| {
                jobs(s).any(|j| matches!(j.step, Step::CatchUp { .. }))
            })
    }
}

fn record_invocation(_: &Cfg, history: &History, env: Envelope<&Msg>) -> Option<History> {
    let Msg::Request { seq, op } = env.msg else {
        return None;
    };
    let mut history = history.clone();
    history
        .on_invoke((env.src, *seq), *op)
        .expect("one invocation per operation");
    Some(history)
}

fn record_return(_: &Cfg, history: &History, env: Envelope<&Msg>) -> Option<History> {
    let Msg::Reply {
        seq,
        outcome: Outcome::Done(ret),
    } = env.msg
    else {
        return None; // an unknown outcome never returns
    };
    let mut history = history.clone();
    history
        .on_return((env.dst, *seq), *ret)
        .expect("one return per invocation");
    Some(history)
}

/// Outcomes on their way to clients.
fn replies(s: &LwtState) -> impl Iterator<Item = Outcome> + '_ {
    s.network.iter_deliverable().filter_map(|e| match e.msg {
        Msg::Reply { outcome, .. } => Some(*outcome),
        _ => None,
    })
}

/// The operations coordinators are working on.
fn jobs(s: &LwtState) -> impl Iterator<Item = &Job> + '_ {
    s.actor_states.iter().filter_map(|a| match &**a {
        NodeState::Replica(rs) => rs.coordinator.job.as_ref(),
        NodeState::Client(_) => None,
    })
}

// ---------------------------------------------------------------------------------------------
// State-space reduction: dead messages.
//
// A message is dead when delivering it can never change anything: an answer to a round its
// coordinator has left, or a request the acceptor would not act on (a prepare or proposal below
// its promise, a commit it has already superseded, a read) whose answer would be dead. Both
// only ever become true (rounds, promises and commits only go up), so two states that differ
// only in dead messages behave the same, and the checker counts them as one. This goes through
// stateright's symmetry hook, which only keys the visited set: paths keep the real states.
// Exact on small models: the same (actor states, history) pairs are reached with it as without.

fn replica(s: &LwtState, id: Id) -> &ReplicaState {
    match &*s.actor_states[usize::from(id)] {
        NodeState::Replica(rs) => rs,
        NodeState::Client(_) => unreachable!("acceptors and coordinators run on replicas"),
    }
}

/// Whether the coordinator still waits for answers like `answer`, in `answer`'s round.
fn awaits(coordinator: &CoordinatorState, answer: &Msg) -> bool {
    let Some(job) = &coordinator.job else {
        return false;
    };
    answer.round() == Some(coordinator.clock)
        && matches!(
            (answer, &job.step),
            (Msg::Prepared { .. }, Step::Prepare(_))
                | (
                    Msg::Accepted { .. },
                    Step::Repair { .. } | Step::Propose { .. }
                )
                | (
                    Msg::Committed { .. },
                    Step::CommitRepair { .. } | Step::CatchUp { .. }
                )
                | (Msg::ReadReply { .. }, Step::Read { .. })
        )
}

fn is_live(s: &LwtState, env: &Envelope<&Msg>) -> bool {
    if env.msg.round().is_none() {
        return true; // client traffic
    }
    if !env.msg.is_request() {
        return awaits(&replica(s, env.dst).coordinator, env.msg);
    }
    let acceptor = &replica(s, env.dst).acceptor;
    let mut served = acceptor.clone();
    let answer = served.serve(env.msg);
    served != *acceptor || answer.is_some_and(|a| awaits(&replica(s, env.src).coordinator, &a))
}

/// The state with its dead messages dropped: the representative of its class.
fn without_dead_messages(s: &LwtState) -> LwtState {
    let live: Vec<Envelope<Msg>> = s
        .network
        .iter_all()
        .filter(|env| is_live(s, env))
        .map(|env| env.to_cloned_msg())
        .collect();
    let mut representative = s.clone();
    representative.network = Network::new_unordered_nonduplicating(live);
    representative
}

// ---------------------------------------------------------------------------------------------
// The checks.

fn cas(expected: Value, new: Value) -> Op {
    Op::Cas { expected, new }
}

/// The server's rules (they wait for every vote; kept as a name for the models below).
const SERVER_AWAITING_VOTES: Rules = SERVER;

/// The server's rules before the model check caught its early verdict on proposals: stop
/// waiting once no quorum can accept and call it refused if no answer so far accepted.
const EARLY_REFUSAL: Rules = Rules {
    verdicts: Verdicts {
        stop_when_no_quorum: true,
        ..SERVER_VERDICTS
    },
    ..SERVER
};

fn remote(rules: Rules) -> Rules {
    Rules {
        local_in_place: false,
        ..rules
    }
}

fn ballots(max_ballots: u8, rules: Rules) -> Rules {
    Rules {
        max_ballots,
        ..rules
    }
}

/// The models checked: each small, together taking every path of the algorithm.
fn models() -> Vec<(&'static str, Vec<Vec<Op>>, Rules)> {
    let contending = vec![vec![cas(0, 1)], vec![cas(0, 2)]];
    let chained = vec![vec![cas(0, 1)], vec![cas(1, 2)]];
    let cas_then_read = vec![vec![cas(0, 1), Op::Read], vec![cas(1, 2)]];
    let chained_reads = vec![vec![cas(0, 1), Op::Read], vec![cas(1, 2), Op::Read]];
    vec![
        (
            "as described: two contending CAS, up to 3 ballots each",
            contending.clone(),
            ballots(3, DESCRIBED),
        ),
        (
            "as described: two chained CAS, each followed by a serial read",
            chained_reads,
            DESCRIBED,
        ),
        (
            "as described, coordinators on no replica: two contending CAS",
            contending.clone(),
            remote(DESCRIBED),
        ),
        (
            "as described, coordinators on no replica: two chained CAS",
            chained,
            remote(DESCRIBED),
        ),
        (
            "the server's rules awaiting every vote: two contending CAS, up to 3 ballots each",
            contending,
            ballots(3, SERVER_AWAITING_VOTES),
        ),
        (
            "the server's rules awaiting every vote: a CAS then a serial read, and a chained CAS",
            cas_then_read,
            SERVER_AWAITING_VOTES,
        ),
    ]
}

/// Explores the whole model (or until `finish_when`), every core helping.
fn check(cfg: Cfg, finish_when: HasDiscoveries) -> impl Checker<LwtModel> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    cfg.into_model()
        .checker()
        .threads(threads)
        .symmetry_fn(without_dead_messages)
        .finish_when(finish_when)
        .spawn_dfs()
        .join()
}

/// Panics with the counterexample if the checker found a non-linearizable history.
fn assert_linearizable(name: &str, checker: &impl Checker<LwtModel>) {
    if let Some(path) = checker.discovery("linearizable") {
        let history = &path.last_state().history;
        panic!("{name}: not linearizable\n{path}history: {history:?}");
    }
}

#[test]
fn lwt_paxos_is_linearizable() {
    let mut examples = BTreeSet::new();
    for (name, scripts, rules) in models() {
        let start = Instant::now();
        let checker = check(Cfg { scripts, rules }, HasDiscoveries::AnyFailures);
        eprintln!(
            "{name}: {} states ({} generated, depth {}) in {:.1?}",
            checker.unique_state_count(),
            checker.state_count(),
            checker.max_depth(),
            start.elapsed()
        );
        assert_linearizable(name, &checker);
        assert!(checker.is_done(), "{name}: not fully explored");
        examples.extend(checker.discoveries().into_keys());
    }
    for property in SOMETIMES {
        assert!(
            examples.contains(property),
            "no model shows that {property}"
        );
    }
}

/// Larger bounds than the regular run, for occasional use: under a minute in a debug build.
#[test]
#[ignore = "slow: run with --ignored when the protocol changes"]
fn deeper_models_are_linearizable() {
    let deeper = [
        (
            "as described, coordinators on no replica: two contending CAS, up to 2 ballots each",
            vec![vec![cas(0, 1)], vec![cas(0, 2)]],
            ballots(2, remote(DESCRIBED)),
        ),
        (
            "the server's rules awaiting every vote: a CAS then a serial read, and a chained \
             CAS, up to 2 ballots each",
            vec![vec![cas(0, 1), Op::Read], vec![cas(1, 2)]],
            ballots(2, SERVER_AWAITING_VOTES),
        ),
    ];
    for (name, scripts, rules) in deeper {
        let checker = check(Cfg { scripts, rules }, HasDiscoveries::AnyFailures);
        eprintln!("{name}: {} states", checker.unique_state_count());
        assert_linearizable(name, &checker);
        assert!(checker.is_done(), "{name}: not fully explored");
    }
}

/// The check has teeth: proposers broken on purpose produce histories it rejects.
#[test]
fn broken_proposers_are_caught() {
    let cas_then_read = vec![vec![cas(0, 1), Op::Read], vec![cas(0, 2)]];
    let broken = [
        (
            "skipping the repair of unfinished proposals",
            cas_then_read.clone(),
            Rules {
                skip_repair: true,
                ..DESCRIBED
            },
        ),
        (
            "a quorum of one",
            cas_then_read,
            Rules {
                quorum: 1,
                ..DESCRIBED
            },
        ),
        (
            // Two ballots of the same microsecond, (t, a) < (t, b), can both get chosen: their
            // writes tie on timestamp, and the greater value wins even if it is the older.
            "ballot times not kept above the commits' (with timestamped data cells)",
            vec![vec![cas(0, 2), Op::Read], vec![cas(2, 1)]],
            Rules {
                timestamps_above_commits: false,
                ..SERVER_AWAITING_VOTES
            },
        ),
        (
            // See `server_rules_are_linearizable`.
            "calling a proposal refused before its last vote is in, as `Round::propose` did",
            vec![vec![cas(0, 1)], vec![cas(0, 2)]],
            ballots(3, EARLY_REFUSAL),
        ),
    ];
    for (name, scripts, rules) in broken {
        let start = Instant::now();
        let checker = check(Cfg { scripts, rules }, HasDiscoveries::AnyFailures);
        let path = checker
            .discovery("linearizable")
            .unwrap_or_else(|| panic!("{name}: no linearizability violation found"));
        eprintln!(
            "{name}: caught after {} states in {:.1?}\n{path}history: {:?}",
            checker.unique_state_count(),
            start.elapsed(),
            path.last_state().history
        );
    }
}

/// The server's rules as they are. (This check once caught `Round::propose` stopping as soon
/// as two replicas refused and calling the proposal refused while the last replica could still
/// accept it: the retry then finished its own proposal and read its own write, so a CAS that
/// applied answered `applied = false`. It now waits for every vote.)
#[test]
fn server_rules_are_linearizable() {
    let scripts = vec![vec![cas(0, 1)], vec![cas(0, 2)]];
    let rules = ballots(3, SERVER);
    let checker = check(Cfg { scripts, rules }, HasDiscoveries::AnyFailures);
    assert_linearizable("the server's rules", &checker);
    assert!(checker.is_done(), "not fully explored");
}
