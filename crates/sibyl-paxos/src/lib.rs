//! Single-decree Paxos per partition, the protocol behind lightweight transactions: ballots,
//! the acceptor's state machine and the proposer's reading of a quorum of promises.
//!
//! This crate owns only the rules. It never touches the network, the disk or CQL: values are
//! opaque (`V`), the server persists `AcceptorState` and carries the messages, and the model
//! check in `tests/` drives the same functions through every interleaving.

mod acceptor;
mod ballot;
mod proposer;

pub use acceptor::{AcceptorState, PrepareReply};
pub use ballot::Ballot;
pub use proposer::{read_promises, Promises, Proposal};
