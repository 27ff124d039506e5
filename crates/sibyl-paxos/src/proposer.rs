use serde::{Deserialize, Serialize};

use crate::{Ballot, PrepareReply};

/// A value proposed under a ballot. `None` is the empty proposal a read or a failed condition
/// makes: it changes no data but, once accepted, retires every older unfinished proposal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal<V> {
    pub ballot: Ballot,
    pub value: Option<V>,
}

/// What a proposer learns from the replies to its prepare.
#[derive(Debug, PartialEq, Eq)]
pub struct Promises<V> {
    /// Replicas that promised.
    pub promised: usize,
    /// The highest ballot a refusing replica had promised (retry above it), if any refused.
    pub refused_by: Option<Ballot>,
    /// An accepted proposal newer than every commit seen: it may have been chosen, so it must
    /// be finished (re-proposed under the new ballot and committed) before anything else.
    pub in_progress: Option<Proposal<V>>,
    /// The newest commit any replica reported.
    pub latest_commit: Option<Proposal<V>>,
    /// Indexes (into the replies) of promising replicas that missed `latest_commit`.
    pub lagging: Vec<usize>,
}

/// Summarizes prepare replies. The caller decides whether `promised` reaches its quorum.
pub fn read_promises<V: Clone>(replies: &[PrepareReply<V>]) -> Promises<V> {
    let mut out = Promises {
        promised: 0,
        refused_by: None,
        in_progress: None,
        latest_commit: None,
        lagging: vec![],
    };
    for r in replies {
        match r {
            PrepareReply::Refused { promised } => {
                out.refused_by = Some(out.refused_by.map_or(*promised, |b| b.max(*promised)));
            }
            PrepareReply::Promised {
                accepted,
                committed,
            } => {
                out.promised += 1;
                if let Some(c) = committed {
                    if out
                        .latest_commit
                        .as_ref()
                        .is_none_or(|l| c.ballot > l.ballot)
                    {
                        out.latest_commit = Some(c.clone());
                    }
                }
                if let Some(a) = accepted {
                    if out.in_progress.as_ref().is_none_or(|p| a.ballot > p.ballot) {
                        out.in_progress = Some(a.clone());
                    }
                }
            }
        }
    }
    let committed_ballot = out
        .latest_commit
        .as_ref()
        .map_or(Ballot::ZERO, |c| c.ballot);
    // Only a value newer than the latest commit can still be unfinished; an empty proposal
    // needs no finishing, it only retires what is older than itself.
    if out
        .in_progress
        .as_ref()
        .is_some_and(|p| p.ballot <= committed_ballot || p.value.is_none())
    {
        out.in_progress = None;
    }
    for (i, r) in replies.iter().enumerate() {
        if let PrepareReply::Promised { committed, .. } = r {
            if committed.as_ref().map_or(Ballot::ZERO, |c| c.ballot) < committed_ballot {
                out.lagging.push(i);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(m: i64) -> Ballot {
        Ballot { micros: m, node: 1 }
    }
    fn p(m: i64, v: Option<u32>) -> Option<Proposal<u32>> {
        Some(Proposal {
            ballot: b(m),
            value: v,
        })
    }

    #[test]
    fn newest_accepted_after_the_latest_commit_is_in_progress() {
        let replies = vec![
            PrepareReply::Promised {
                accepted: p(5, Some(1)),
                committed: p(3, Some(0)),
            },
            PrepareReply::Promised {
                accepted: None,
                committed: p(3, Some(0)),
            },
        ];
        let s = read_promises(&replies);
        assert_eq!(s.promised, 2);
        assert_eq!(s.in_progress, p(5, Some(1)));
        assert!(s.lagging.is_empty());
    }

    #[test]
    fn a_newer_empty_proposal_retires_an_older_value() {
        let replies = vec![
            PrepareReply::Promised {
                accepted: p(5, Some(1)),
                committed: None,
            },
            PrepareReply::Promised {
                accepted: p(6, None),
                committed: None,
            },
        ];
        assert_eq!(read_promises(&replies).in_progress, None);
    }

    #[test]
    fn accepted_values_older_than_a_commit_are_done_and_laggers_are_named() {
        let replies = vec![
            PrepareReply::Promised {
                accepted: p(4, Some(1)),
                committed: None,
            },
            PrepareReply::Promised {
                accepted: None,
                committed: p(4, Some(1)),
            },
            PrepareReply::Refused { promised: b(9) },
        ];
        let s = read_promises(&replies);
        assert_eq!(s.in_progress, None);
        assert_eq!(s.latest_commit, p(4, Some(1)));
        assert_eq!(s.lagging, vec![0]);
        assert_eq!(s.refused_by, Some(b(9)));
        assert_eq!(s.promised, 2);
    }
}
