//! The log's clock: turns the stamps leaders put on their proposals into
//! times that never go back and never stand still.
//!
//! A proposal's stamp is only a reading of one leader's clock, which may
//! have been stepped, or belong to a node whose clock is an hour off. So
//! the clock does not adopt stamps; it advances by how far each stamp is
//! past the one it last followed. One stamp an hour ahead moves time an
//! hour once, and time goes on from there at the pace of later stamps,
//! instead of standing still until the stamps catch up. A stamp behind the
//! one followed leaves time where it is; when it is far behind (a leader
//! whose clock is behind, or that was set back), the clock follows it from
//! then on, so time stands still for one proposal, not for the difference.

use serde::{Deserialize, Serialize};

/// How far behind the followed stamp a stamp may be and still be taken for
/// a proposal that overtook an earlier one on its way to the log (a leader
/// has several in flight): such a stamp neither moves time nor becomes the
/// one followed, so reordering adds nothing to time. Further behind, it is
/// another clock, and followed.
pub const REORDER_SLACK_MS: u64 = 1_000;

/// Where the log's time stands. Deterministic: every replica that applies
/// the same proposals gets the same times.
// Format: MessagePack map { at, stamp } (persisted as two `meta` values by
// the coordinator, and in snapshots).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogClock {
    /// The latest time given out, in milliseconds since the Unix epoch.
    pub at: u64,
    /// The stamp `at` advances from.
    pub stamp: u64,
}

impl LogClock {
    /// A clock resumed at `at` with no stamp to follow (state written before
    /// stamps were kept): the next stamp counts from `at`, as it always did.
    pub fn resumed(at: u64) -> LogClock {
        LogClock { at, stamp: at }
    }

    /// The time a proposal stamped `stamp` gets if it comes next.
    pub fn time_of(&self, stamp: u64) -> u64 {
        self.at + stamp.saturating_sub(self.stamp)
    }

    /// Moves the clock on for a proposal stamped `stamp`; returns its time.
    pub fn advance(&mut self, stamp: u64) -> u64 {
        self.at = self.time_of(stamp);
        if stamp >= self.stamp || self.stamp - stamp > REORDER_SLACK_MS {
            self.stamp = stamp;
        }
        self.at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: u64 = 3_600_000;
    const T: u64 = 1_700_000_000_000;

    fn advance_all(clock: &mut LogClock, stamps: &[u64]) -> Vec<u64> {
        stamps.iter().map(|stamp| clock.advance(*stamp)).collect()
    }

    #[test]
    fn steady_stamps_are_the_time() {
        let mut clock = LogClock::default();
        assert_eq!(
            advance_all(&mut clock, &[T, T + 5, T + 900]),
            [T, T + 5, T + 900]
        );
    }

    #[test]
    fn a_stamp_an_hour_ahead_moves_time_once_and_it_goes_on_from_there() {
        let mut clock = LogClock::resumed(T);
        let times = advance_all(&mut clock, &[T + HOUR, T + 10, T + 20, T + 1_020]);
        assert_eq!(times, [T + HOUR, T + HOUR, T + HOUR + 10, T + HOUR + 1_010]);
    }

    #[test]
    fn a_stamp_an_hour_behind_stops_time_for_one_proposal_only() {
        let mut clock = LogClock::resumed(T);
        let times = advance_all(&mut clock, &[T - HOUR, T - HOUR + 10, T - HOUR + 30]);
        assert_eq!(times, [T, T + 10, T + 30]);
    }

    #[test]
    fn reordered_stamps_add_nothing() {
        let mut clock = LogClock::resumed(T);
        let times = advance_all(&mut clock, &[T + 10, T + 8, T + 9, T + 12]);
        assert_eq!(times, [T + 10, T + 10, T + 10, T + 12]);
    }

    #[test]
    fn a_resumed_clock_counts_as_the_old_rule_did() {
        let clock = LogClock::resumed(T);
        assert_eq!(clock.time_of(T - 5), T);
        assert_eq!(clock.time_of(T + 5), T + 5);
    }
}
