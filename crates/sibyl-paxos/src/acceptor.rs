use serde::{Deserialize, Serialize};

use crate::{Ballot, Proposal};

/// What one replica remembers about one partition's Paxos instance. The server must make a
/// change durable before it answers, or a restarted replica could break a promise.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcceptorState<V> {
    pub promised: Ballot,
    pub accepted: Option<Proposal<V>>,
    pub committed: Option<Proposal<V>>,
}

impl<V> Default for AcceptorState<V> {
    fn default() -> Self {
        AcceptorState {
            promised: Ballot::ZERO,
            accepted: None,
            committed: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PrepareReply<V> {
    /// The ballot is promised; here is what this replica accepted and committed last.
    Promised {
        accepted: Option<Proposal<V>>,
        committed: Option<Proposal<V>>,
    },
    /// A ballot at least as high was already promised.
    Refused { promised: Ballot },
}

impl<V: Clone> AcceptorState<V> {
    /// Phase 1: promise to ignore every ballot below `ballot`. Returns the reply and whether the
    /// state changed (and must be persisted).
    pub fn prepare(&mut self, ballot: Ballot) -> (PrepareReply<V>, bool) {
        if ballot <= self.promised {
            return (
                PrepareReply::Refused {
                    promised: self.promised,
                },
                false,
            );
        }
        self.promised = ballot;
        (
            PrepareReply::Promised {
                accepted: self.accepted.clone(),
                committed: self.committed.clone(),
            },
            true,
        )
    }

    /// Phase 2: accept the proposal unless a higher ballot was promised since.
    pub fn propose(&mut self, proposal: Proposal<V>) -> bool {
        if proposal.ballot < self.promised {
            return false;
        }
        self.promised = proposal.ballot;
        self.accepted = Some(proposal);
        true
    }

    /// Learns a chosen value. Returns whether the state changed; the value's data is applied
    /// either way (it is timestamped, so applying it twice or late is harmless).
    pub fn commit(&mut self, proposal: Proposal<V>) -> bool {
        if self
            .committed
            .as_ref()
            .is_some_and(|c| c.ballot >= proposal.ballot)
        {
            return false;
        }
        if self
            .accepted
            .as_ref()
            .is_some_and(|a| a.ballot <= proposal.ballot)
        {
            self.accepted = None;
        }
        self.committed = Some(proposal);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(m: i64) -> Ballot {
        Ballot { micros: m, node: 0 }
    }

    #[test]
    fn promises_only_rising_ballots() {
        let mut s = AcceptorState::<u8>::default();
        assert!(matches!(s.prepare(b(2)).0, PrepareReply::Promised { .. }));
        assert_eq!(s.prepare(b(2)).0, PrepareReply::Refused { promised: b(2) });
        assert_eq!(s.prepare(b(1)).0, PrepareReply::Refused { promised: b(2) });
    }

    #[test]
    fn refuses_proposals_below_its_promise() {
        let mut s = AcceptorState::<u8>::default();
        s.prepare(b(5));
        assert!(!s.propose(Proposal {
            ballot: b(4),
            value: Some(1)
        }));
        assert!(s.propose(Proposal {
            ballot: b(5),
            value: Some(1)
        }));
        assert_eq!(s.accepted.as_ref().unwrap().value, Some(1));
    }

    #[test]
    fn commit_clears_what_it_supersedes_and_never_goes_back() {
        let mut s = AcceptorState::<u8>::default();
        s.prepare(b(5));
        s.propose(Proposal {
            ballot: b(5),
            value: Some(1),
        });
        assert!(s.commit(Proposal {
            ballot: b(5),
            value: Some(1)
        }));
        assert!(s.accepted.is_none());
        assert!(!s.commit(Proposal {
            ballot: b(3),
            value: Some(0)
        }));
        assert_eq!(s.committed.as_ref().unwrap().ballot, b(5));
    }
}
