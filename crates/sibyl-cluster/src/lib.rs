//! Cluster membership and placement: the token ring, replica placement (SimpleStrategy,
//! NetworkTopologyStrategy), gossip membership with failure detection, and internode messaging
//! over TCP. Knows nothing of CQL, storage or the native protocol.
//!
//! - [`ring`]: [`TokenRing`] and [`Replication`]. Placement follows Cassandra 5's
//!   `SimpleStrategy` / `NetworkTopologyStrategy` and is checked against the Python driver's
//!   `make_token_replica_map` (the fixture in `tests/fixtures/`).
//! - [`allocation`]: [`allocate_tokens`], a joining node's vnode tokens chosen for balanced
//!   ownership.
//! - [`gossip`]: [`start_gossip`] runs chitchat (scuttlebutt anti-entropy over UDP with a phi
//!   accrual failure detector) and exposes it as the [`Membership`] trait.
//! - [`messaging`]: [`Messaging`], request/response over pooled, multiplexed TCP connections.

pub mod allocation;
pub mod gossip;
pub mod messaging;
pub mod ring;

pub use allocation::allocate_tokens;
pub use gossip::{start_gossip, GossipConfig, Membership, MembershipEvent, NodeState, NodeStatus};
pub use messaging::{decode, encode, Handler, Messaging, MessagingError, Verb};
pub use ring::{NodeInfo, Replication, TokenRing};

/// Errors of this crate's set-up and configuration paths.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// Invalid replication options (the message is Cassandra's `ConfigurationException` text).
    #[error("{0}")]
    Config(String),
    /// A socket could not be bound or used.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The gossip service failed to start.
    #[error("gossip: {0}")]
    Gossip(String),
}
