use serde::{Deserialize, Serialize};

/// A proposal number: a timestamp in microseconds made unique by the proposer's id. A committed
/// value's cells carry its ballot's timestamp, so later commits always win last-write-wins.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Ballot {
    pub micros: i64,
    pub node: u128,
}

impl Ballot {
    pub const ZERO: Ballot = Ballot { micros: 0, node: 0 };

    /// A ballot above `floor` (the highest this proposer has seen), from the clock when it is
    /// ahead: a slow clock must never make a proposer reuse old ballots.
    pub fn next(floor: Ballot, now_micros: i64, node: u128) -> Ballot {
        Ballot {
            micros: now_micros.max(floor.micros + 1),
            node,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_is_above_the_floor_even_with_a_slow_clock() {
        let floor = Ballot {
            micros: 1_000,
            node: 9,
        };
        let b = Ballot::next(floor, 10, 1);
        assert!(b > floor);
        assert_eq!(b.micros, 1_001);
        let b = Ballot::next(floor, 5_000, 1);
        assert_eq!(b.micros, 5_000);
    }

    #[test]
    fn ties_on_time_are_broken_by_node() {
        let a = Ballot { micros: 7, node: 1 };
        let b = Ballot { micros: 7, node: 2 };
        assert!(a < b);
    }
}
