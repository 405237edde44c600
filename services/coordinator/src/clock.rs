//! This node's clock: what proposals are stamped with and host liveness is
//! timed by.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// This node's clock, in milliseconds since the Unix epoch (the unit of
/// every time in the log): the wall clock read when the clock is anchored,
/// advanced since by the monotonic clock.
///
/// It is anchored at start and whenever this node becomes leader, never
/// below the log's time then. So a step of the wall clock (an operator, a
/// resumed VM, NTP fixing a bad clock) changes no stamp of a sitting
/// leader: it counts from the next leadership on. Stamps of one node
/// therefore never go back, and a new leader whose wall clock is behind
/// goes on from the log's time instead of below it.
///
/// Tests move the wall clock with the hidden `SKYCLAW_CLOCK_OFFSET_FILE`:
/// a file holding a signed number of milliseconds added to every reading
/// of the wall clock (none when the file is absent or empty).
#[derive(Clone)]
pub struct NodeClock {
    /// Wall-clock milliseconds at the anchor, and the anchor's instant.
    anchor: Arc<Mutex<(u64, Instant)>>,
    offset_file: Option<Arc<PathBuf>>,
}

impl NodeClock {
    /// A clock anchored now, at `floor` if the wall clock reads earlier.
    pub fn new(floor: u64) -> NodeClock {
        let clock = NodeClock {
            anchor: Arc::new(Mutex::new((0, Instant::now()))),
            offset_file: std::env::var_os("SKYCLAW_CLOCK_OFFSET_FILE")
                .map(|path| Arc::new(PathBuf::from(path))),
        };
        clock.anchor(floor);
        clock
    }

    pub fn now_ms(&self) -> u64 {
        let (wall, since) = *self.anchor.lock().expect("clock lock");
        wall + since.elapsed().as_millis() as u64
    }

    /// Reads the wall clock again, never going below `floor`.
    pub fn anchor(&self, floor: u64) {
        let wall = self.wall_ms().max(floor);
        *self.anchor.lock().expect("clock lock") = (wall, Instant::now());
    }

    fn wall_ms(&self) -> u64 {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let offset = self.offset_file.as_ref().map_or(0, |path| {
            let text = std::fs::read_to_string(path.as_path()).unwrap_or_default();
            text.trim().parse::<i64>().unwrap_or_else(|_| {
                if !text.trim().is_empty() {
                    tracing::warn!("{}: not a number of milliseconds", path.display());
                }
                0
            })
        });
        wall.saturating_add_signed(offset)
    }
}
